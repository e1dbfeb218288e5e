"""Atomic training checkpoints: one ``.npz`` of named float arrays plus a JSON header (no
pickle). Written to a temporary file in the same folder, flushed and ``os.replace``-d over
the target, so a crash or Ctrl-C during the write never leaves a truncated checkpoint: the
file on disk is always the previous complete one or the new complete one.
"""

from __future__ import annotations

from rtsnn.errors import RtsnnValueError

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rtsnn.snn.model_file import write_npz_atomic

FORMAT = "rtsnn-bptt-checkpoint"
VERSION = 1


class CheckpointError(RtsnnValueError):
    """An unreadable or foreign checkpoint file."""


def save_checkpoint(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write ``arrays`` and the JSON-serialisable ``meta`` atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"format": FORMAT, "version": VERSION, "meta": meta})
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload["__header__"] = np.frombuffer(header.encode(), dtype=np.uint8)
    return write_npz_atomic(path, payload)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(arrays, meta)`` of a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.array(npz[k]) for k in npz.files}
    except Exception as err:  # noqa: BLE001 - any read failure is a bad checkpoint
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from None
    raw = arrays.pop("__header__", None)
    if raw is None:
        raise CheckpointError(f"{path}: not an rtsnn BPTT checkpoint (no header)")
    try:
        header = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: corrupt checkpoint header ({err})") from None
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise CheckpointError(f"{path}: expected format {FORMAT} v{VERSION}, got "
                              f"{header.get('format')!r} v{header.get('version')!r}")
    return arrays, header["meta"]
