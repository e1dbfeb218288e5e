"""Tabular recordings (npz, CSV, MATLAB) turned into :class:`Recording` streams.

A format reader produces a :class:`Table`: named columns of ``n`` rows (npz keys, CSV
columns, MATLAB variables; a column holds one channel ``(n,)`` or several ``(n, C)``),
scalars (``rate_hz``, ``bin_s``) and what it left out. :func:`build_recording` then, the same
way for every format:

- takes the time column (``time_column``, else ``time_s`` or ``timestamp`` when present) as
  the rows' timestamps, or ``k / rate`` from the rate (see :mod:`rtsnn.recording.rate`);
- forms streams: ``groups`` maps a stream name to a list of column names or shell patterns
  (``unit_*``), each column going to the first stream whose pattern matches it; without
  ``groups`` every numeric column is a stream of its own (npz, MATLAB) or all of them form
  one stream (CSV, ``Table.default_stream``);
- forms marker streams: ``markers`` maps a marker-stream name to 1-D columns; a marker is
  placed at the first row and at every row where any of them changes, its label the value
  (one column) or ``"key value key value"`` (several); text columns are marker streams by
  default. Columns used for markers are left out of the default streams.

Channel labels: a CSV column's name; a 1-D key's name; ``<key>_<j>`` for column ``j`` of a
2-D key unless the file gives ``<key>_labels``. Values keep their type (floats as float32 /
float64, integers as int8..int64, bools as int8; CSV values are float32); timestamps are
float64 seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np

from rtsnn.recording.rate import Rate, agree, caller_rate, scalar_rate, times_rate
from rtsnn.recording.xdf_reader import Recording, StreamData
from rtsnn.recording.xdf_writer import StreamInfoData

TIME_COLUMNS = ("time_s", "timestamp")

_XDF_FORMAT = {np.dtype(np.int8): "int8", np.dtype(np.int16): "int16", np.dtype(np.int32): "int32",
               np.dtype(np.int64): "int64", np.dtype(np.float32): "float32", np.dtype(np.float64): "double64"}


@dataclass
class Column:
    """One named column: ``values`` (n,) or (n, C), numeric or text (numpy ``U``/``S``)."""

    key: str
    values: np.ndarray
    labels: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_channels(self) -> int:
        return 1 if self.values.ndim == 1 else int(self.values.shape[1])

    @property
    def is_text(self) -> bool:
        return self.values.dtype.kind in "US"

    def channel_labels(self) -> list[str]:
        if len(self.labels) == self.n_channels:
            return list(self.labels)
        return [self.key] if self.values.ndim == 1 else [f"{self.key}_{j}" for j in range(self.n_channels)]

    def channel_units(self) -> list[str]:
        return list(self.units) if len(self.units) == self.n_channels else [""] * self.n_channels


@dataclass
class Table:
    """What a tabular format reader found in one file."""

    path: Path
    fmt: str
    noun: str  # what a column is called in this format: "key", "column", "variable"
    columns: dict[str, Column]
    scalars: dict[str, float] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why it is not a column)
    default_stream: str | None = None  # all numeric columns as one stream of this name (CSV)
    repairs: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail) found while reading
    float_dtype: np.dtype | None = None  # floats of every stream in this dtype (CSV: float32)

    def found(self) -> str:
        return ", ".join(repr(k) for k in self.columns) or "(none)"


def _stream_dtype(where: str, cols: list[Column], float_dtype: np.dtype | None) -> np.dtype:
    """One dtype for a stream of these columns that XDF / LSL can carry."""
    dt = np.result_type(*[c.values.dtype for c in cols])
    if float_dtype is not None and dt.kind == "f":
        return float_dtype
    if dt.kind == "b":
        return np.dtype(np.int8)
    if dt.kind == "u":
        return np.dtype({1: np.int16, 2: np.int32, 4: np.int64}.get(dt.itemsize, np.float64))
    if dt.kind == "i":
        return np.dtype(dt.type)
    if dt.kind == "f":
        return np.dtype(np.float32 if dt.itemsize <= 4 else np.float64)
    names = ", ".join(repr(c.key) for c in cols)
    raise ValueError(f"{where}: {names}: values of type {dt} cannot form a stream (numbers only)")


def _label_text(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _resolve(table: Table, stream: str, patterns: list[str], free: list[str]) -> list[str]:
    """The columns of ``free`` that ``patterns`` name, in pattern order then file order."""
    where = str(table.path)
    if isinstance(patterns, str) or not patterns or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f"{where}: stream {stream!r}: give a non-empty list of {table.noun} names, got {patterns!r}")
    out: list[str] = []
    for pat in patterns:
        hits = [pat] if pat in free else [k for k in free if fnmatchcase(k, pat)]
        hits = [k for k in hits if k not in out]
        if not hits:
            taken = pat in table.columns or any(fnmatchcase(k, pat) for k in table.columns)
            skipped = dict(table.skipped)
            why = ("already taken by an earlier stream" if taken else "a scalar, not a column"
                   if pat in table.scalars else f"not readable as a column ({skipped[pat]})" if pat in skipped
                   else "no such " + table.noun)
            raise ValueError(f"{where}: stream {stream!r}: {table.noun} {pat!r}: {why}; {table.noun}s found: "
                             f"{table.found()}")
        out += hits
    return out


def _check_rows(table: Table, keys: list[str], n: int) -> None:
    for k in keys:
        if table.columns[k].n_rows != n:
            raise ValueError(f"{table.path}: {table.noun} {k!r} has {table.columns[k].n_rows} rows, other "
                             f"{table.noun}s have {n}; every {table.noun} of a stream needs one row per sample")


def _time(table: Table, time_column: str | None) -> tuple[str | None, np.ndarray | None]:
    where = str(table.path)
    if time_column is not None:
        if time_column not in table.columns:
            raise ValueError(f"{where}: no time {table.noun} {time_column!r}; {table.noun}s found: {table.found()}")
        key = time_column
    else:
        key = next((k for k in TIME_COLUMNS if k in table.columns), None)
        if key is None:
            return None, None
    col = table.columns[key]
    if col.is_text or col.values.ndim != 1 or col.values.dtype.kind not in "iuf":
        raise ValueError(f"{where}: time {table.noun} {key!r} must hold one number per row (seconds), got "
                         f"{col.values.dtype} of shape {col.values.shape}")
    t = np.asarray(col.values, np.float64)
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{where}: time {table.noun} {key!r} has {int((~np.isfinite(t)).sum())} non-finite values")
    return key, t


def build_recording(table: Table, *, rate_hz: float | None = None, bin_s: float | None = None,
                    time_column: str | None = None, groups: dict[str, list[str]] | None = None,
                    markers: dict[str, list[str]] | None = None) -> Recording:
    """A :class:`Recording` of ``table`` (see the module docstring for the rules)."""
    where = str(table.path)
    rec = Recording(path=where, streams=[])
    for kind, detail in table.repairs:
        rec.repair(kind, "", detail)
    for name, why in table.skipped:
        rec.repair("skipped", name, why, warn=False)
    given = caller_rate(where, rate_hz, bin_s)
    tkey, times = _time(table, time_column)
    stated = scalar_rate(where, table.scalars)
    if times is not None:
        from_times = times_rate(times, tkey or "")
        if stated is not None and from_times is not None:
            agree(where, from_times, stated, rel_tol=1e-3)
        if stated is not None:
            rate = agree(where, stated, given)
        elif from_times is not None:
            rate = agree(where, from_times, given, rel_tol=1e-3)
        else:
            rate = given or Rate(0.0, f"time {table.noun} {tkey!r} with one row")
    else:
        rate = agree(where, stated, given)

    free = [k for k in table.columns if k != tkey]
    marker_keys: dict[str, list[str]] = {}
    for name, pats in (markers or {}).items():
        keys = _resolve(table, name, pats, free)
        for k in keys:
            if table.columns[k].values.ndim != 1:
                raise ValueError(f"{where}: markers {name!r}: {table.noun} {k!r} has {table.columns[k].n_channels} "
                                 f"channels; markers are made from one-channel {table.noun}s")
        marker_keys[name] = keys
        free = [k for k in free if k not in keys]
    if groups is not None:
        if not isinstance(groups, dict) or not groups:
            raise ValueError(f"{where}: groups must map stream names to lists of {table.noun}s, got {groups!r}")
        stream_keys: dict[str, list[str]] = {}
        for name, pats in groups.items():
            if name in marker_keys:
                raise ValueError(f"{where}: {name!r} names both a stream and a marker stream")
            keys = _resolve(table, name, pats, free)
            for k in keys:
                if table.columns[k].is_text:
                    raise ValueError(f"{where}: stream {name!r}: {table.noun} {k!r} holds text; name it in "
                                     f"markers instead")
            stream_keys[name] = keys
            free = [k for k in free if k not in keys]
    else:
        numeric = [k for k in free if not table.columns[k].is_text]
        if markers is None:
            for k in free:
                if table.columns[k].is_text and table.columns[k].values.ndim == 1:
                    marker_keys[k] = [k]
        if table.default_stream is not None:
            stream_keys = {table.default_stream: numeric} if numeric else {}
        else:
            stream_keys = {k: [k] for k in numeric}
    if not stream_keys and not marker_keys:
        raise ValueError(f"{where}: no numeric {table.noun} to read; {table.noun}s found: {table.found()}")

    used = [k for keys in (*stream_keys.values(), *marker_keys.values()) for k in keys]
    n = times.shape[0] if times is not None else (table.columns[used[0]].n_rows if used else 0)
    _check_rows(table, used, n)
    if n == 0:
        raise ValueError(f"{where}: no rows of data")
    if times is None:
        ts = np.arange(n, dtype=np.float64) / rate.hz
    else:
        ts = times
        back = int(np.sum(np.diff(ts) <= 0))
        if back:
            rec.repair("ts_backwards", "", f"{back} rows not later than the previous row in time {table.noun} "
                                           f"{tkey!r} (kept in file order)")
    file_name = table.path.name
    for name, keys in stream_keys.items():
        cols = [table.columns[k] for k in keys]
        dt = _stream_dtype(where, cols, table.float_dtype)
        parts = [c.values.reshape(n, -1) for c in cols]
        x = np.asarray(parts[0], dt) if len(parts) == 1 else np.concatenate([p.astype(dt, copy=False) for p in parts],
                                                                             axis=1)
        x = np.ascontiguousarray(x)
        labels = [lab for c in cols for lab in c.channel_labels()]
        units = [u for c in cols for u in c.channel_units()]
        info = StreamInfoData(name=name, type="", channel_count=x.shape[1], nominal_srate_hz=rate.hz,
                              channel_format=_XDF_FORMAT[dt], source_id=f"file:{file_name}:{name}",
                              channel_labels=labels, channel_units=units if any(units) else [])
        if dt.kind == "f":
            bad = int((~np.isfinite(x)).sum())
            if bad:
                rec.repair("nonfinite_values", name, f"{bad} non-finite values kept as they are (the session's "
                                                     f"sources repair them)", warn=False)
        rec.streams.append(StreamData(len(rec.streams), info, ts, x))
    for name, keys in marker_keys.items():
        vals = [table.columns[k].values for k in keys]
        change = np.zeros(n, bool)
        change[0] = True
        for v in vals:
            change[1:] |= v[1:] != v[:-1]
        rows = np.flatnonzero(change)
        lists = [v[rows].tolist() for v in vals]
        if len(keys) == 1:
            texts = [_label_text(a) for a in lists[0]]
        else:
            texts = [" ".join(f"{k} {_label_text(v[i])}" for k, v in zip(keys, lists)) for i in range(len(rows))]
        arr = np.empty((len(texts), 1), dtype=object)
        arr[:, 0] = texts
        info = StreamInfoData(name=name, type="Markers", channel_count=1, nominal_srate_hz=0.0,
                              channel_format="string", source_id=f"file:{file_name}:{name}", channel_labels=[name])
        rec.streams.append(StreamData(len(rec.streams), info, ts[rows].copy(), arr))
    return rec
