"""``rtsnn plot``: PNG pictures of a finished session or of a training run.

    rtsnn plot SESSION_DIR [--out DIR] [--r2-window-s S] [--json]
        outputs.png, r2.png, latency.png, misses.png in DIR (default SESSION_DIR/plots)
    rtsnn plot MODEL.npz | MODEL.history.json | FOLDER [--out DIR] [--json]
        <model stem>.training.png: loss and metric per epoch, train and held-out
        (default: beside the history file)

What PATH is, is told by its content (a session folder holds config.yaml with outputs.json
or summary.json), not by its name. Prints the written files, one per line, or with
``--json`` one JSON line ``{"kind", "input", "written", "notes"}``; notes (what could not be
drawn and why) go to stderr. Needs the ``plot`` extra (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def cmd_plot(args: argparse.Namespace) -> int:
    from rtsnn.viz.plot import plot_path

    result = plot_path(args.path, args.out, args.r2_window_s)
    written = [str(p.resolve()) for p in result["written"]]
    if args.json:
        print(json.dumps({"kind": result["kind"], "input": str(result["input"].resolve()), "written": written,
                          "notes": result["notes"]}, allow_nan=False))
        return 0
    for note in result["notes"]:
        print(f"note: {note}", file=sys.stderr)
    for p in written:
        print(p)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("plot", help="PNGs of a session folder or a training run (matplotlib)",
                              description="Draw a session folder (decoded vs target, R^2 over time, latency "
                                          "per stage, deadline misses) or a training run (loss and metric "
                                          "per epoch) to PNG files.")
    p.add_argument("path", help="a session folder, a model file (.npz) with its .history.json beside it, "
                                "a .history.json, or a folder holding one")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for the PNGs (default: SESSION_DIR/plots, or beside the history file)")
    p.add_argument("--r2-window-s", type=float, default=None, metavar="S",
                   help="sliding R^2 window in seconds (default: a tenth of the run on a 1-2-5 grid, "
                        "within 1-10 s, at most half the run, at least 20 ticks)")
    p.add_argument("--json", action="store_true", help="print one JSON line listing the written files")
    p.set_defaults(func=cmd_plot)
