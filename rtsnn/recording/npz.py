"""npz archives (``numpy.savez``) as a :class:`~rtsnn.recording.table.Table`; the layout is
documented in docs/recordings.md.

- a 0-d number is a scalar; ``rate_hz`` or ``bin_s`` states the rate;
- a 1-D or 2-D array of numbers (rows = samples) is a column, named by its key;
- ``<key>_labels`` / ``<key>_units`` (1-D text, one entry per channel of the numeric
  ``<key>``) name its channels and their units (of another length: an ordinary text column);
- any other 1-D text array is a text column (a marker stream by default);
- everything else (3-D arrays, text scalars) is left out and listed as ``skipped``.

The archive is always opened with ``allow_pickle=False``: an object array is refused with
its key named, never unpickled.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from rtsnn.recording.table import Column, Table

_META_SUFFIXES = ("_labels", "_units")


def read_npz_table(path: str | Path) -> Table:
    """The columns, scalars and channel names of one npz archive."""
    p = Path(path)
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - numpy and zipfile raise many types for damaged files
        raise ValueError(f"{p}: not a readable npz archive, damaged or cut short? ({type(err).__name__}: {err})") \
            from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{p}: a single .npy array, not an npz archive of named arrays")
    table = Table(path=p, fmt="npz", noun="key", columns={})
    meta: dict[str, np.ndarray] = {}
    with z:
        for key in z.files:
            try:
                a = z[key]
            except ValueError as err:
                if "allow_pickle" in str(err) or "Object arrays" in str(err):
                    raise ValueError(f"{p}: key {key!r} holds Python objects (a pickled object array); rtsnn never "
                                     f"unpickles: save it as a number or text array") from None
                raise ValueError(f"{p}: key {key!r} cannot be read ({err})") from None
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as err:
                raise ValueError(f"{p}: key {key!r} cannot be read, the archive is damaged or cut short "
                                 f"({type(err).__name__}: {err})") from None
            if not isinstance(a, np.ndarray):
                table.skipped.append((key, "not a .npy array inside the archive"))
                continue
            text = a.dtype.kind in "US"
            if a.ndim == 0:
                if a.dtype.kind in "biuf":
                    table.scalars[key] = float(a)
                else:
                    table.skipped.append((key, f"a scalar of type {a.dtype}"))
            elif text and a.ndim == 1 and key.endswith(_META_SUFFIXES):
                meta[key] = a
            elif (a.dtype.kind in "biuf" and a.ndim in (1, 2)) or (text and a.ndim == 1):
                table.columns[key] = Column(key, a.astype(str) if a.dtype.kind == "S" else a)
            else:
                table.skipped.append((key, f"{a.dtype} array of shape {a.shape}: a column is a 1-D or 2-D array "
                                           f"of numbers (rows = samples) or a 1-D text array"))
    for key, a in meta.items():
        base, what = key.rsplit("_", 1)
        col = table.columns.get(base)
        if col is None or col.is_text or len(a) != col.n_channels:
            table.columns[key] = Column(key, a.astype(str))  # not channel names: an ordinary text column
            continue
        setattr(col, what, [str(v) for v in a.tolist()])
    return table
