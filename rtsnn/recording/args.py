"""Command-line options that say how to read a recording, shared by ``rtsnn replay`` and
``rtsnn recording info``: ``--rate-hz`` / ``--bin-s``, ``--format``, and for tables (npz,
CSV, MATLAB) ``--time-column``, ``--group NAME=COL[,COL...]`` and ``--markers NAME=COL[,COL...]``."""

from __future__ import annotations

import argparse
from typing import Any

from rtsnn.recording.detect import FORMATS


def _positive(flag: str):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a number, got {text!r}") from None
        if not (v > 0 and v != float("inf")):
            raise argparse.ArgumentTypeError(f"{flag} must be a positive finite number, got {text!r}")
        return v
    return parse


def add_layout_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of :func:`layout_kwargs` to ``p``."""
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--rate-hz", type=_positive("--rate-hz"), default=None, metavar="R",
                      help="sampling rate in Hz for a table without one (checked against the file's when it has one)")
    rate.add_argument("--bin-s", type=_positive("--bin-s"), default=None, metavar="S",
                      help="bin width in s (= 1 / rate), e.g. 0.1 for the Chewie npz")
    p.add_argument("--format", dest="fmt", default=None, metavar="F",
                   help=f"read as this format: {', '.join(FORMATS)} or a plugin's (rtsnn plugins lists "
                        f"rtsnn.recording_formats; default: from the file's content and suffix)")
    p.add_argument("--time-column", default=None, metavar="NAME",
                   help="npz / CSV / MATLAB: the column of timestamps in s (default: time_s or timestamp if present)")
    p.add_argument("--group", action="append", default=None, metavar="NAME=COL[,COL...]",
                   help="npz / CSV / MATLAB: a stream NAME of these columns (names or shell patterns such as "
                        "'unit_*'; each column goes to the first group matching it); repeatable")
    p.add_argument("--markers", action="append", default=None, metavar="NAME=COL[,COL...]",
                   help="npz / CSV / MATLAB: a marker stream NAME with a marker wherever these columns change; "
                        "repeatable")


def parse_mapping(items: list[str] | None, flag: str) -> dict[str, list[str]] | None:
    """``["a=x,y", "b=z"]`` -> ``{"a": ["x", "y"], "b": ["z"]}``; ValueError naming the flag."""
    if not items:
        return None
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, cols = item.partition("=")
        names = [c.strip() for c in cols.split(",") if c.strip()]
        if not sep or not name.strip() or not names:
            raise ValueError(f"{flag} {item!r}: expected NAME=COL[,COL...]")
        if name.strip() in out:
            raise ValueError(f"{flag}: stream {name.strip()!r} given twice")
        out[name.strip()] = names
    return out


def layout_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`rtsnn.recording.open_recording` from parsed options."""
    return {"rate_hz": args.rate_hz, "bin_s": args.bin_s, "fmt": args.fmt, "time_column": args.time_column,
            "groups": parse_mapping(args.group, "--group"), "markers": parse_mapping(args.markers, "--markers")}
