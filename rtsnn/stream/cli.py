"""``rtsnn streams``, ``rtsnn record`` and ``rtsnn replay``.

    rtsnn streams [--wait S] [--name GLOB] [--type TYPE] [--json]
    rtsnn record --streams NAME... --out FILE [--duration S] [--json]
    rtsnn replay FILE [--speed 1.0|max] [--loop] [--streams NAME...] [--timestamps raw|synced] [--json]
                 [--rate-hz R | --bin-s S] [--format F] [--time-column C] [--group NAME=COL,...]
                 [--markers NAME=COL,...]

``replay`` reads the file through :mod:`rtsnn.recording` (XDF, EDF/BDF, npz, CSV, MATLAB
.mat; the layout options say how a table forms streams, see docs/recordings.md). With
``--json`` it ends with one JSON line: streams, samples per stream, duration, repairs made
and a digest of what was published (see :mod:`rtsnn.stream.replay`). ``streams`` lists the
LSL streams visible from this machine (name, type, channels, nominal rate, format, source_id,
host) as an aligned table, or with ``--json`` as one JSON line (a list of objects).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import threading
from fnmatch import fnmatchcase
from typing import Any

from rtsnn.cli import count_arg, number_arg
from rtsnn.jsonout import dumps_strict
from rtsnn.stream.speed import parse_speed


def _display_path(path: Any) -> str:
    """A path as the user should read it: ``a/./b`` and ``x/../y`` folded, relative stays relative."""
    return os.path.normpath(str(path))


STREAM_FIELDS = ("name", "type", "n_channels", "nominal_srate_hz", "channel_format", "source_id", "host")


def discover_streams(wait_s: float, name: str | None = None, type_: str | None = None) -> list[dict[str, Any]]:
    """The LSL streams that answer within ``wait_s`` seconds, as dicts with :data:`STREAM_FIELDS`,
    sorted by name then source_id. ``name`` is a shell-style pattern (``rtsnn-*``) matched
    against the whole stream name, ``type_`` the exact stream type; both are case-sensitive,
    as LSL's own predicates are."""
    import pylsl

    rows = []
    for info in pylsl.resolve_streams(wait_time=wait_s):
        if name is not None and not fnmatchcase(info.name(), name):
            continue
        if type_ is not None and info.type() != type_:
            continue
        rows.append({"name": info.name(), "type": info.type(), "n_channels": int(info.channel_count()),
                     "nominal_srate_hz": float(info.nominal_srate()),
                     "channel_format": pylsl.lib.fmt2string[info.channel_format()],
                     "source_id": info.source_id(), "host": info.hostname()})
    rows.sort(key=lambda r: (r["name"], r["source_id"], r["host"]))
    return rows


def format_stream_table(rows: list[dict[str, Any]]) -> str:
    """An aligned text table of :func:`discover_streams` rows (rate 0 shows as ``irregular``)."""
    header = ("NAME", "TYPE", "CHANNELS", "RATE_HZ", "FORMAT", "SOURCE_ID", "HOST")
    cells = [header] + [
        (r["name"], r["type"], str(r["n_channels"]),
         "irregular" if r["nominal_srate_hz"] == 0 else f"{r['nominal_srate_hz']:g}",
         r["channel_format"], r["source_id"] or "-", r["host"]) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    numeric = (2, 3)  # right-aligned columns
    lines = []
    for c in cells:
        parts = [c[i].rjust(widths[i]) if i in numeric else c[i].ljust(widths[i]) for i in range(len(c))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def cmd_streams(args: argparse.Namespace) -> int:
    if not (args.wait > 0 and math.isfinite(args.wait)):
        raise ValueError(f"--wait must be a positive number of seconds, got {args.wait}")
    rows = discover_streams(args.wait, name=args.name, type_=args.type)
    if args.json:
        print(dumps_strict(rows))
    elif rows:
        print(format_stream_table(rows))
    else:
        wanted = [f"{k} {v!r}" for k, v in (("name", args.name), ("type", args.type)) if v is not None]
        which = f" matching {' and '.join(wanted)}" if wanted else ""
        print(f"no LSL streams{which} found within {float(args.wait)} s")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from rtsnn.stream.recorder import record_lsl

    if args.duration is not None and not args.duration > 0:
        raise ValueError(f"--duration must be > 0, got {args.duration}")
    stop = threading.Event()
    try:
        summary = record_lsl(args.streams, args.out, duration_s=args.duration,
                             resolve_timeout_s=args.resolve_timeout, stop=stop)
    except KeyboardInterrupt:  # pragma: no cover - interactive stop; the file is closed in record_lsl
        stop.set()
        return 0
    if args.json:
        print(dumps_strict({**summary, "path": _display_path(summary["path"])}))
    else:
        print(f"recorded {summary['samples']} to {_display_path(summary['path'])} ({summary['bytes']} bytes)")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from rtsnn.recording import open_recording
    from rtsnn.recording.args import layout_kwargs
    from rtsnn.stream.replay import LslReplayer

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    rec = open_recording(args.file, **layout_kwargs(args))
    rp = LslReplayer(rec, args.streams, speed=args.speed, timestamps=args.timestamps, loop=args.loop,
                     max_loops=args.max_loops, name_prefix=args.prefix, duration_s=args.duration)
    rp.open(wait_consumers_s=args.wait_consumers)
    if not args.json:
        print(f"replaying {len(rp.names)} streams ({', '.join(rp.names)}) of {_display_path(args.file)}, "
              f"{rp.timeline.duration_s:.3f} s, speed {'max' if math.isinf(args.speed) else args.speed}",
              file=sys.stderr)
    stop = threading.Event()
    try:
        summary = rp.run(stop)
    except KeyboardInterrupt:
        stop.set()
        summary = rp.summary()
    finally:
        rp.close()
    summary = {**summary, "file": _display_path(summary["file"])}
    if args.json:
        print(dumps_strict(summary))
    else:
        print(f"published {summary['samples']} in {summary['wall_s']} s; repairs {summary['repairs']}; "
              f"digest {summary['digest']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    st = subparsers.add_parser("streams", help="list the LSL streams on the network")
    st.add_argument("--wait", type=float, default=1.0, help="seconds to wait for streams to answer (default 1.0)")
    st.add_argument("--name", default=None, metavar="GLOB",
                    help="only streams whose name matches this shell pattern, e.g. 'rtsnn-*'")
    st.add_argument("--type", default=None, help="only streams of this type, e.g. EEG")
    st.add_argument("--json", action="store_true", help="one JSON line: a list of objects")
    st.set_defaults(func=cmd_streams)

    p = subparsers.add_parser("record", help="record LSL streams to XDF")
    p.add_argument("--streams", nargs="+", required=True, metavar="NAME",
                   help="LSL stream names, or quoted shell patterns such as 'rtsnn-demo-*'")
    p.add_argument("--out", required=True, help="output .xdf file")
    p.add_argument("--duration", type=number_arg(), default=None, help="seconds (default: until Ctrl-C)")
    p.add_argument("--resolve-timeout", type=number_arg(), default=5.0, help="seconds to find every stream")
    p.add_argument("--json", action="store_true", help="print a JSON summary line")
    p.set_defaults(func=cmd_record)

    from rtsnn.recording.args import add_layout_arguments

    r = subparsers.add_parser("replay", help="re-publish a recording (XDF, EDF/BDF, npz, CSV, MATLAB .mat) over LSL")
    r.add_argument("file")
    add_layout_arguments(r)
    r.add_argument("--speed", type=lambda text: parse_speed(text, what="--speed"), default=1.0,
                   help="playback speed factor, or 'max' (default 1.0)")
    r.add_argument("--loop", action="store_true", help="start over at the end")
    r.add_argument("--max-loops", type=count_arg, default=None, help="with --loop: stop after this many loops")
    r.add_argument("--streams", nargs="+", default=None, metavar="NAME", help="stream names (default: all)")
    r.add_argument("--timestamps", choices=("raw", "synced"), default="raw",
                   help="raw recorded timestamps, or clock-synchronised (+ dejittered for regular streams)")
    r.add_argument("--prefix", default="", help="prepended to every outlet name")
    r.add_argument("--duration", type=number_arg(), default=None, help="stop after this many seconds")
    r.add_argument("--wait-consumers", type=number_arg(zero=True), default=0.0,
                   help="wait up to this many seconds for every outlet to have a consumer before starting")
    r.add_argument("--json", action="store_true", help="end with one JSON summary line")
    r.set_defaults(func=cmd_replay)
