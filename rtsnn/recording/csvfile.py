"""CSV files as a :class:`~rtsnn.recording.table.Table`; the layout is documented in
docs/recordings.md: UTF-8, comma-separated, one header row of unique column names, then one
row of numbers per sample. Every column is a one-channel column named by its header; by
default all columns but the time column form one stream named after the file's stem.

A last row with fewer fields than the header (a file cut short) is left out and reported as
a ``truncated`` repair; any other bad row is a ValueError naming the file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from rtsnn.recording.table import Column, Table


def read_csv_table(path: str | Path) -> Table:
    """Every column of one CSV file (values as float64 here; streams carry float32)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{p}: not UTF-8 text, so not a CSV file ({err})") from None
    lines = text.splitlines()
    header = next(csv.reader(lines[:1]), None)
    if not header:
        raise ValueError(f"{p}: empty CSV (no header row)")
    header = [h.strip() for h in header]
    if any(not h for h in header):
        raise ValueError(f"{p}: header column {header.index('') + 1} has no name; every column needs one")
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        raise ValueError(f"{p}: header names {dups} more than once; column names must be unique")
    body = [ln for ln in lines[1:] if ln.strip()]
    table = Table(path=p, fmt="csv", noun="column", columns={}, default_stream=p.stem)
    if body and body[-1].count(",") + 1 < len(header):
        table.repairs.append(("truncated", f"the last row has {body[-1].count(',') + 1} of {len(header)} fields "
                                           f"(the file was cut short); left out"))
        body.pop()
    if not body:
        raise ValueError(f"{p}: no data rows under the header")
    try:
        values = np.loadtxt(body, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise ValueError(f"{p}: a data row is not numeric or has the wrong number of fields ({err})") from None
    if values.shape[1] != len(header):
        raise ValueError(f"{p}: rows have {values.shape[1]} fields, the header {len(header)}")
    for i, h in enumerate(header):
        table.columns[h] = Column(h, values[:, i])
    table.float_dtype = np.dtype(np.float32)
    return table
