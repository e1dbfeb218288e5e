"""MATLAB .mat files as a :class:`~rtsnn.recording.table.Table`: v5 (``save -v7`` and
older, through ``scipy.io.loadmat``) and v7.3 (HDF5 behind a 512-byte text header, through
h5py). The layout is documented in docs/recordings.md:

- a numeric or logical matrix is a column named by its variable, rows = samples; a
  1 x n or n x 1 vector is one channel of n samples; a 1 x 1 value is a scalar
  (``rate_hz`` / ``bin_s`` state the rate);
- a char matrix or a cell array of strings is a text column (or the channel names of
  ``<var>`` when named ``<var>_labels`` / ``<var>_units`` and as long as its channels);
- structs, other cells, complex and N-D (N > 2) arrays are left out and listed as ``skipped``.

v7.3 stores a MATLAB m x n matrix as an HDF5 dataset of shape (n, m) (column-major), so
datasets are transposed back; ``#refs#`` and ``#subsystem#`` are MATLAB's own bookkeeping.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtsnn.extras import require
from rtsnn.recording.detect import HDF5_SIGNATURE
from rtsnn.recording.table import Column, Table

_META_SUFFIXES = ("_labels", "_units")


def mat_version(path: Path) -> str:
    """'5' or '7.3' from the file's header; ValueError for anything else (v4 has no header)."""
    with open(path, "rb") as f:
        head = f.read(520)
    if head.startswith(b"MATLAB 7.3 MAT-file") or head.startswith(HDF5_SIGNATURE) or head[512:520] == HDF5_SIGNATURE:
        return "7.3"
    if head.startswith(b"MATLAB 5.0 MAT-file"):
        return "5"
    raise ValueError(f"{path}: not a MATLAB v5 or v7.3 MAT-file (header {head[:20]!r}); save it in MATLAB with "
                     f"'-v7' or '-v7.3'")


def _add(table: Table, name: str, a: np.ndarray) -> None:
    """File one variable (already in MATLAB's row-major view) as scalar, column, text or skipped."""
    if a.dtype.kind in "biuf":
        if a.size == 1:
            table.scalars[name] = float(a.reshape(-1)[0])
        elif a.ndim == 2 and 1 in a.shape:
            table.columns[name] = Column(name, a.reshape(-1))
        elif a.ndim == 2 and a.size:
            table.columns[name] = Column(name, a)
        else:
            table.skipped.append((name, f"{a.dtype} array of shape {a.shape}: a stream is a vector or a 2-D matrix "
                                        f"(rows = samples)"))
    else:
        table.skipped.append((name, f"a MATLAB {_kind(a)}: only numeric / logical matrices, char matrices and "
                                    f"cell arrays of strings are read"))


def _kind(a: np.ndarray) -> str:
    if a.dtype.names:
        return "struct"
    if a.dtype.kind == "c":
        return "complex array"
    if a.dtype.kind == "O":
        return "cell array"
    return f"{a.dtype} array"


def _file_text(table: Table, meta: dict[str, list[str]], name: str, texts: list[str]) -> None:
    if name.endswith(_META_SUFFIXES):
        meta[name] = texts
    elif len(texts) > 1:
        table.columns[name] = Column(name, np.asarray(texts, dtype=str))
    else:
        table.skipped.append((name, "a single string"))


def _attach(table: Table, meta: dict[str, list[str]]) -> None:
    for name, texts in meta.items():
        base, what = name.rsplit("_", 1)
        col = table.columns.get(base)
        if col is None or col.is_text or len(texts) != col.n_channels:
            if len(texts) > 1:
                table.columns[name] = Column(name, np.asarray(texts, dtype=str))
            continue
        setattr(col, what, texts)


def _cellstr(a: np.ndarray) -> list[str] | None:
    """The strings of a v5 cell array of char rows, None when it holds anything else."""
    out = []
    for el in a.reshape(-1, order="F"):
        if not (isinstance(el, np.ndarray) and el.dtype.kind == "U" and el.size <= 1):
            return None
        out.append(str(el.reshape(-1)[0]) if el.size else "")
    return out


def _read_v5(p: Path) -> Table:
    sio = require("scipy.io", f"{p}: reading a MATLAB v5 .mat file")
    try:
        data = sio.loadmat(str(p), squeeze_me=False, chars_as_strings=True)
    except Exception as err:  # noqa: BLE001 - scipy raises many types for damaged files
        raise ValueError(f"{p}: not a readable MATLAB v5 file, damaged or cut short? ({type(err).__name__}: {err})") \
            from None
    table = Table(path=p, fmt="mat", noun="variable", columns={})
    meta: dict[str, list[str]] = {}
    for name, a in data.items():
        if name.startswith("__"):
            continue  # __header__, __version__, __globals__
        if a.dtype.kind == "U":
            _file_text(table, meta, name, [str(t) for t in a.reshape(-1)])
        elif a.dtype.kind == "O" and (texts := _cellstr(a)) is not None:
            _file_text(table, meta, name, texts)
        else:
            _add(table, name, a)
    _attach(table, meta)
    return table


def _h5_text(ds) -> list[str]:
    """A v7.3 char matrix (uint16 codes, stored transposed) as one string per row."""
    codes = np.asarray(ds[()]).T
    codes = codes.reshape(1, -1) if codes.ndim == 1 else codes
    return ["".join(map(chr, row)) for row in codes]


def _read_v73(p: Path) -> Table:
    h5py = require("h5py", f"{p}: reading a MATLAB v7.3 .mat file")
    try:
        f = h5py.File(str(p), "r")
    except Exception as err:  # noqa: BLE001 - h5py raises OSError and others for damaged files
        raise ValueError(f"{p}: not a readable MATLAB v7.3 (HDF5) file, damaged or cut short? "
                         f"({type(err).__name__}: {err})") from None
    table = Table(path=p, fmt="mat", noun="variable", columns={})
    meta: dict[str, list[str]] = {}
    try:
        with f:
            for name, obj in f.items():
                if name.startswith("#"):
                    continue
                if isinstance(obj, h5py.Group):
                    table.skipped.append((name, "a MATLAB struct"))
                    continue
                cls = obj.attrs.get("MATLAB_class", b"")
                cls = cls.decode() if isinstance(cls, bytes) else str(cls)
                if obj.attrs.get("MATLAB_empty", 0):
                    table.skipped.append((name, "an empty MATLAB value"))
                elif cls == "char":
                    _file_text(table, meta, name, _h5_text(obj))
                elif cls == "cell":
                    refs = np.asarray(obj[()]).T.reshape(-1)
                    try:
                        texts = [_h5_text(f[r])[0] for r in refs]
                    except Exception:  # noqa: BLE001 - a cell of anything but strings
                        table.skipped.append((name, "a MATLAB cell array (not of strings)"))
                        continue
                    _file_text(table, meta, name, texts)
                else:
                    a = np.asarray(obj[()])
                    _add(table, name, a.T if a.ndim == 2 else a)
    except ValueError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged dataset inside a readable file
        raise ValueError(f"{p}: a variable of this MATLAB v7.3 file cannot be read, damaged or cut short? "
                         f"({type(err).__name__}: {err})") from None
    _attach(table, meta)
    return table


def read_mat_table(path: str | Path) -> Table:
    """The variables of one .mat file (v5 or v7.3) as columns and scalars."""
    p = Path(path)
    return _read_v73(p) if mat_version(p) == "7.3" else _read_v5(p)
