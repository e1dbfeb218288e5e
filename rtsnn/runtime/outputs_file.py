"""A session folder's recorded outputs: ``outputs.json`` (what the columns are) + ``outputs.f64``.

The session writes ``outputs.json`` once when it makes its folder (:func:`outputs_description`)
and then appends one row per tick to ``outputs.f64``: little-endian float64 values, one per
column, no header. The columns are always
``[tick, t_source_s, t_emit_s, y_<label>..., target_<label>...]`` with one target per output.
:func:`read_outputs` is the one reader of both files (``rtsnn.load_outputs`` and ``rtsnn plot``
use it); it checks the description strictly and leaves out the partial last row a crash
leaves. numpy only, so that reading a folder loads nothing of the live path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

OUTPUTS_JSON = "outputs.json"
OUTPUTS_DATA = "outputs.f64"
TIME_COLUMNS = ("tick", "t_source_s", "t_emit_s")
TIME_UNITS = ("", "s", "s")  # tick is a count; t_* on the LSL clock
DTYPE = "float64"
_ROW_DTYPE = "<f8"
LAYOUT = "[tick, t_source_s, t_emit_s, y_<label>..., target_<label>...] with one target per output"


def outputs_description(output_labels: Sequence[str], output_units: Sequence[str]) -> dict[str, Any]:
    """The content of ``outputs.json`` for a model's outputs: file, dtype, columns and their
    units. Without ``output_units`` every output's unit is ``""`` (unknown)."""
    labels = [str(label) for label in output_labels]
    cols = list(TIME_COLUMNS) + [f"y_{label}" for label in labels] + [f"target_{label}" for label in labels]
    out_units = [str(u) for u in output_units] or [""] * len(labels)
    units = list(TIME_UNITS) + out_units + out_units
    return {"file": OUTPUTS_DATA, "dtype": DTYPE, "columns": cols, "units": dict(zip(cols, units)),
            "note": "rows are little-endian float64; t_* on the LSL clock (s)"}


@dataclass(frozen=True)
class RecordedOutputs:
    """What :func:`read_outputs` found. ``rows`` is ``(n, len(columns))`` float64, n = 0 when the
    data file is missing (the session stopped before its first tick) or shorter than a row;
    ``units`` names every column (None: the folder predates units in outputs.json);
    ``dropped_partial_bytes`` is the size of the cut-off row at the end (0 when none)."""

    columns: list[str]
    units: dict[str, str | None]
    rows: np.ndarray
    dropped_partial_bytes: int
    data_path: Path
    data_found: bool

    @property
    def labels(self) -> list[str]:
        """The output labels: the ``y_<label>`` columns without their prefix."""
        n_out = (len(self.columns) - len(TIME_COLUMNS)) // 2
        return [c[2:] for c in self.columns[len(TIME_COLUMNS):len(TIME_COLUMNS) + n_out]]


def _check_columns(path: Path, columns: Any) -> list[str]:
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise ValueError(f"{path}: columns: expected a non-empty list of column names (strings), "
                         f"got {columns!r:.200}")
    n_time = len(TIME_COLUMNS)
    n_out = (len(columns) - n_time) // 2
    ys, targets = columns[n_time:n_time + n_out], columns[n_time + n_out:]
    if (tuple(columns[:n_time]) != TIME_COLUMNS or n_out < 1 or len(targets) != n_out
            or not all(c.startswith("y_") for c in ys)
            or [c[2:] for c in ys] != [c[len("target_"):] if c.startswith("target_") else None for c in targets]):
        raise ValueError(f"{path}: columns: expected {LAYOUT}, got {columns!r:.200}")
    if len(set(columns)) != len(columns):
        raise ValueError(f"{path}: columns: names repeat, got {columns!r:.200}")
    return list(columns)


def _check_units(path: Path, units: Any, columns: list[str]) -> dict[str, str | None]:
    # folders written before outputs.json carried units: times are seconds, outputs unknown
    known = dict(zip(TIME_COLUMNS, TIME_UNITS))
    if units is None:
        return {c: known.get(c) for c in columns}
    if not isinstance(units, dict):
        raise ValueError(f"{path}: units: expected an object {{column: unit}}, got {units!r:.100}")
    for key, unit in units.items():
        if key not in columns:
            raise ValueError(f"{path}: units.{key}: no such column (columns: {', '.join(columns)})")
        if not isinstance(unit, str):
            raise ValueError(f"{path}: units.{key}: expected a string, got {unit!r:.60}")
    return {c: units.get(c, known.get(c)) for c in columns}


def _check_file_name(path: Path, name: Any) -> str:
    """``file`` must name a file in the folder itself: a path (``../x``, ``/abs``, ``sub/x``)
    would let an outputs.json read anything the user can read."""
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name
            or Path(name).is_absolute() or Path(name).name != name):
        raise ValueError(f"{path}: file: expected a plain file name in the session folder "
                         f"(e.g. {OUTPUTS_DATA!r}), got {name!r:.100}")
    return name


def read_outputs(folder: str | Path) -> RecordedOutputs:
    """Read a session folder's ``outputs.json`` and its rows (``outputs.f64``).

    Rows: the data file's bytes as little-endian float64, ``n = size // (8 * len(columns))``
    whole rows; the ``size % (8 * len(columns))`` bytes after them (a row cut off by a crash)
    are left out and counted in ``dropped_partial_bytes``. A missing data file gives 0 rows.
    Raises ValueError (one line naming the folder or file, and the key) when the folder is not
    a session's or ``outputs.json`` is not one this module writes."""
    folder = Path(folder)
    if not folder.exists():
        raise ValueError(f"{folder}: no such session folder")
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder (expected a session folder)")
    meta_path = folder / OUTPUTS_JSON
    if not meta_path.is_file():
        raise ValueError(f"{folder}: not a session folder (no {OUTPUTS_JSON}; `rtsnn run` and `rtsnn demo` "
                         f"write one per session under sessions/)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{meta_path}: not readable as JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    columns = _check_columns(meta_path, meta.get("columns"))
    if meta.get("dtype") != DTYPE:
        raise ValueError(f"{meta_path}: dtype: expected {DTYPE!r}, got {meta.get('dtype')!r:.60}")
    data_path = folder / _check_file_name(meta_path, meta.get("file"))
    units = _check_units(meta_path, meta.get("units"), columns)

    row_bytes = 8 * len(columns)
    n_bytes, found = 0, data_path.exists()
    if found:
        if not data_path.is_file():
            raise ValueError(f"{data_path}: not a file (expected the rows named by {meta_path.name})")
        n_bytes = data_path.stat().st_size
    n_rows = n_bytes // row_bytes
    if n_rows:
        try:
            raw = np.fromfile(data_path, _ROW_DTYPE, count=n_rows * len(columns))
        except OSError as err:
            raise ValueError(f"{data_path}: not readable ({err})") from None
        n_rows = raw.size // len(columns)  # the file may have shrunk since stat()
        rows = raw[:n_rows * len(columns)].astype(np.float64).reshape(n_rows, len(columns))
    else:
        rows = np.zeros((0, len(columns)), np.float64)
    return RecordedOutputs(columns=columns, units=units, rows=rows, dropped_partial_bytes=n_bytes % row_bytes,
                           data_path=data_path, data_found=found)
