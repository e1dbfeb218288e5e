"""``rtsnn record`` and ``rtsnn replay``.

    rtsnn record --streams NAME... --out FILE [--duration S] [--json]
    rtsnn replay FILE [--speed 1.0|max] [--loop] [--streams NAME...] [--timestamps raw|synced] [--json]

``replay`` takes XDF (also .xdfz / .xdf.gz), EDF/BDF, Chewie npz and MC_Maze CSV. With
``--json`` it ends with one JSON line: streams, samples per stream, duration, repairs made
and a digest of what was published (see :mod:`rtsnn.stream.replay`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import threading

from rtsnn.stream.speed import parse_speed


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
        print(json.dumps(summary))
    else:
        print(f"recorded {summary['samples']} to {summary['path']} ({summary['bytes']} bytes)")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from rtsnn.stream.readers import load_recording
    from rtsnn.stream.replay import LslReplayer

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    rec = load_recording(args.file)
    rp = LslReplayer(rec, args.streams, speed=args.speed, timestamps=args.timestamps, loop=args.loop,
                     max_loops=args.max_loops, name_prefix=args.prefix, duration_s=args.duration)
    rp.open(wait_consumers_s=args.wait_consumers)
    if not args.json:
        print(f"replaying {len(rp.names)} streams ({', '.join(rp.names)}) of {args.file}, "
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
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"published {summary['samples']} in {summary['wall_s']} s; repairs {summary['repairs']}; "
              f"digest {summary['digest']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("record", help="record LSL streams to XDF")
    p.add_argument("--streams", nargs="+", required=True, metavar="NAME", help="LSL stream names")
    p.add_argument("--out", required=True, help="output .xdf file")
    p.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C)")
    p.add_argument("--resolve-timeout", type=float, default=5.0, help="seconds to find every stream")
    p.add_argument("--json", action="store_true", help="print a JSON summary line")
    p.set_defaults(func=cmd_record)

    r = subparsers.add_parser("replay", help="re-publish a recording (XDF, EDF/BDF, Chewie npz, MC_Maze CSV) over LSL")
    r.add_argument("file")
    r.add_argument("--speed", type=lambda text: parse_speed(text, what="--speed"), default=1.0,
                   help="playback speed factor, or 'max' (default 1.0)")
    r.add_argument("--loop", action="store_true", help="start over at the end")
    r.add_argument("--max-loops", type=int, default=None, help="with --loop: stop after this many loops")
    r.add_argument("--streams", nargs="+", default=None, metavar="NAME", help="stream names (default: all)")
    r.add_argument("--timestamps", choices=("raw", "synced"), default="raw",
                   help="raw recorded timestamps, or clock-synchronised (+ dejittered for regular streams)")
    r.add_argument("--prefix", default="", help="prepended to every outlet name")
    r.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    r.add_argument("--wait-consumers", type=float, default=0.0,
                   help="wait up to this many seconds for every outlet to have a consumer before starting")
    r.add_argument("--json", action="store_true", help="end with one JSON summary line")
    r.set_defaults(func=cmd_replay)
