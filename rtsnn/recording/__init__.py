"""One recording layer: open a file, list its streams, read them as arrays with timestamps.

    rec = open_recording("run.xdf")                       # XDF: rates from the stream headers
    rec = open_recording("chewie.npz", bin_s=0.1)         # npz without a rate key: say the bin width
    rec = open_recording("maze.csv", groups={"spikes": ["unit_*"], "kinematics": ["*"]})
    for d in describe(rec): print(d["name"], d["channel_count"], d["nominal_srate_hz"])

``open_recording`` returns a :class:`~rtsnn.recording.xdf_reader.Recording` (streams of
``StreamData``: ``time_stamps`` float64 s, ``time_series`` (n, channels), the stream header
as ``info``) and every repair made while reading; ``rtsnn replay``, the ``xdf_file`` source
and ``rtsnn recording info`` all read through it. Formats (docs/recordings.md has the
layouts): XDF (.xdf, .xdfz, .xdf.gz: LabRecorder's and rtsnn's own ``recording.xdf``),
EDF / BDF (MNE; annotations as a marker stream), npz, CSV and MATLAB .mat (v5 and v7.3);
plugins add more through the entry-point group ``rtsnn.recording_formats``
(:mod:`rtsnn.recording.plugins`; rtsnn-dvs: event-camera files).

The format comes from the file's content and suffix (``fmt`` to name it); the rate from the
file (stream headers, a ``rate_hz`` / ``bin_s`` scalar, a time column) or from the caller's
``rate_hz`` / ``bin_s``; nothing is read from words in the file name. A caller rate that
contradicts the file's, or no rate at all for a table without one, is a ValueError that
names the file and both values.

This package sits at the stream level: it imports :mod:`rtsnn.recording.xdf_reader` and
:mod:`rtsnn.recording.xdf_writer` (the Recording types) and nothing above them.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from rtsnn.recording.detect import FORMATS, detect_format
from rtsnn.recording.rate import caller_rate
from rtsnn.recording.xdf_reader import Recording, StreamData

__all__ = ["FORMATS", "Recording", "StreamData", "describe", "detect_format", "open_recording"]


def _check_header_rates(rec: Recording, rate_hz: float | None, bin_s: float | None) -> None:
    """A caller rate for a file whose streams state their own: it must match every regular stream."""
    given = caller_rate(rec.path, rate_hz, bin_s)
    if given is None:
        return
    regular = [s for s in rec.streams if s.info.nominal_srate_hz > 0]
    if not regular:
        raise ValueError(f"{rec.path}: {given.source}, but every stream of the file is irregular (nominal rate 0); "
                         f"drop the option")
    for s in regular:
        if not math.isclose(s.info.nominal_srate_hz, given.hz, rel_tol=1e-6):
            raise ValueError(f"{rec.path}: {given.source} ({given.hz:g} Hz) contradicts stream {s.name!r}'s nominal "
                             f"rate {s.info.nominal_srate_hz:g} Hz in the file; drop the option")


def open_recording(path: str | Path, *, rate_hz: float | None = None, bin_s: float | None = None,
                   fmt: str | None = None, time_column: str | None = None,
                   groups: dict[str, list[str]] | None = None,
                   markers: dict[str, list[str]] | None = None) -> Recording:
    """Read every stream of a recording file.

    ``rate_hz`` / ``bin_s``: the sampling rate (Hz) or bin width (s) for a table that states
    none; when the file states one, a check (a contradiction is a ValueError). ``fmt``: one of
    :data:`FORMATS` or an installed plugin's format instead of the suffix. For npz, CSV and MATLAB only: ``time_column`` (the
    column / key / variable of timestamps in s; default ``time_s`` or ``timestamp`` when
    present), ``groups`` (stream name -> column names or shell patterns forming it) and
    ``markers`` (marker-stream name -> columns whose changes are the markers); see
    :mod:`rtsnn.recording.table`.
    """
    p = Path(path)
    kind = detect_format(p, fmt)
    if kind not in ("npz", "csv", "mat"):
        given = [n for n, v in (("time_column", time_column), ("groups", groups), ("markers", markers)) if v]
        if given:
            raise ValueError(f"{p}: {', '.join(given)} apply to npz, CSV and MATLAB files; the streams of an "
                             f"{kind.upper()} file come from the file")
        if kind not in FORMATS:
            from rtsnn.recording.plugins import read as read_plugin

            rec = read_plugin(kind, p)
        elif kind == "xdf":
            from rtsnn.recording.xdf_reader import load_xdf

            rec = load_xdf(p)
        else:
            from rtsnn.recording.edf import read_edf

            rec = read_edf(p, kind)
        _check_header_rates(rec, rate_hz, bin_s)
        return rec
    if kind == "npz":
        from rtsnn.recording.npz import read_npz_table as read
    elif kind == "csv":
        from rtsnn.recording.csvfile import read_csv_table as read
    else:
        from rtsnn.recording.matfile import read_mat_table as read
    from rtsnn.recording.table import build_recording

    return build_recording(read(p), rate_hz=rate_hz, bin_s=bin_s, time_column=time_column, groups=groups,
                           markers=markers)


def describe(rec: Recording) -> list[dict[str, Any]]:
    """One dict per stream: name, type, stream_id, channel_format, channel_count, channel_labels,
    channel_units, nominal_srate_hz (0 = irregular), n_samples, first / last timestamp (s, None
    when empty), duration_s (last - first, plus one sample period for a regular stream), and for
    string streams ``markers``: count and the distinct labels (first channel) with their counts,
    most frequent first; for an event stream whose header gives them, the sensor's ``width`` and
    ``height`` in pixels."""
    out = []
    for s in rec.streams:
        info = s.info
        n = s.n_samples
        first = float(s.time_stamps[0]) if n else None
        last = float(s.time_stamps[-1]) if n else None
        dur = 0.0 if not n else (last - first) + (1.0 / info.nominal_srate_hz if info.nominal_srate_hz > 0 else 0.0)
        d: dict[str, Any] = {
            "name": info.name, "type": info.type, "stream_id": int(s.stream_id),
            "channel_format": info.channel_format, "channel_count": int(info.channel_count),
            "channel_labels": list(info.channel_labels), "channel_units": list(info.channel_units),
            "nominal_srate_hz": float(info.nominal_srate_hz), "n_samples": n,
            "first_timestamp_s": first, "last_timestamp_s": last, "duration_s": dur,
        }
        for key in ("width", "height"):  # an event stream's sensor size (pixels)
            if info.extra.get(key, "").isdigit():
                d[key] = int(info.extra[key])
        if s.is_string:
            counts = Counter(str(v) for v in (s.time_series[:, 0] if n else []))
            d["markers"] = {"count": n, "labels": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))}
        out.append(d)
    return out
