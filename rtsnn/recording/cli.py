"""``rtsnn recording info FILE``: what the recording layer sees in a file.

    rtsnn recording info FILE [--rate-hz R | --bin-s S] [--format F] [--time-column C]
                              [--group NAME=COL,...] [--markers NAME=COL,...] [--json]

Prints the format and, per stream, name, type, channels, nominal rate, samples, duration,
the channel labels and units, and for marker streams their labels with counts; then the
repairs made while reading. ``--json``: one strict JSON line ``{"file", "format",
"streams": [describe() dicts], "repairs": [{"kind", "stream", "detail"}]}``.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def _strict_json(obj: Any) -> str:
    from rtsnn.jsonout import json_safe

    return json.dumps(json_safe(obj), allow_nan=False)


def _short(items: list[str], limit: int = 8) -> str:
    if not items:
        return "-"
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def format_info(file: str, fmt: str, streams: list[dict[str, Any]], repairs: list[dict[str, str]]) -> str:
    """The text report of ``rtsnn recording info``: a table of streams, then per-stream details."""
    lines = [f"{file}: {fmt}, {len(streams)} stream{'s' if len(streams) != 1 else ''}"]
    header = ("NAME", "TYPE", "CHANNELS", "FORMAT", "RATE_HZ", "SAMPLES", "DURATION_S")
    rows = [header] + [(d["name"], d["type"] or "-", str(d["channel_count"]), d["channel_format"],
                        "irregular" if d["nominal_srate_hz"] == 0 else f"{d['nominal_srate_hz']:g}",
                        str(d["n_samples"]), f"{d['duration_s']:.3f}") for d in streams]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  ".join(c.rjust(w) if i in (2, 4, 5, 6) else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    for d in streams:
        lines.append(f"{d['name']}:")
        lines.append(f"  labels: {_short(d['channel_labels'])}")
        if "width" in d and "height" in d:
            lines.append(f"  sensor: {d['width']} x {d['height']} pixels")
        if any(d["channel_units"]):
            lines.append(f"  units:  {_short(d['channel_units'])}")
        if "markers" in d:
            labels = [f"{k} x{v}" for k, v in d["markers"]["labels"].items()]
            lines.append(f"  markers: {d['markers']['count']}, labels: {_short(labels, 12)}")
    lines.append("repairs: " + ("none" if not repairs else "; ".join(
        f"{r['kind']}{' [' + r['stream'] + ']' if r['stream'] else ''}: {r['detail']}" for r in repairs)))
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    from rtsnn.recording import describe, detect_format, open_recording
    from rtsnn.recording.args import layout_kwargs

    kwargs = layout_kwargs(args)
    fmt = detect_format(args.file, kwargs["fmt"])
    rec = open_recording(args.file, **kwargs)
    streams = describe(rec)
    repairs = [{"kind": r.kind, "stream": r.stream, "detail": r.detail} for r in rec.repairs]
    file = os.path.normpath(args.file)
    if args.json:
        print(_strict_json({"file": file, "format": fmt, "streams": streams, "repairs": repairs}))
    else:
        print(format_info(file, fmt, streams, repairs))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from rtsnn.recording.args import add_layout_arguments

    p = subparsers.add_parser("recording", help="inspect recordings (XDF, EDF/BDF, npz, CSV, MATLAB .mat; "
                                                      "event-camera files with rtsnn-dvs)")
    sub = p.add_subparsers(dest="recording_cmd", required=True)
    info = sub.add_parser("info", help="list a recording's streams as the recording layer reads them")
    info.add_argument("file")
    add_layout_arguments(info)
    info.add_argument("--json", action="store_true", help="one strict JSON line")
    info.set_defaults(func=cmd_info)
