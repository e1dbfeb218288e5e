"""Model files: one ``.npz`` (never pickled) with the weight arrays and a JSON header.

Layout (``np.savez``, uncompressed zip; zip CRCs catch flipped bytes)::

    w_in (n_in, n_rec) float32, w_rec (n_rec, n_rec), w_out (n_rec, n_out), b_out (n_out,)
    header.json   uint8 array holding UTF-8 JSON:
        format "rtsnn-model", format_version 1, neuron_model, dt_s,
        settings {every NeuronSettings field}, shapes {array name: [dims]},
        n_in, n_rec, n_out, output_labels, output_units,
        provenance {created_utc, rtsnn_version, method / how trained, ...},
        input_contract (optional) {n_channels, channel_labels, dt_s, encoder {kind, options},
                                   source {kind, name, type} | null}

``input_contract`` (:class:`rtsnn.snn.contract.InputContract`, schema in that module) says
what the model expects at its input; ``rtsnn run`` and ``rtsnn config check`` compare a
session config with it. It is optional and additive, so it does not change
``format_version``: files without it (every file written before it existed, NIR imports)
load as before and get no contract checks, and an rtsnn that predates it reads a file that
has one and ignores it. A malformed contract is refused naming the file and the key.

Files are written atomically (temp file in the same directory, fsync, ``os.replace``) so a
crash mid-write never leaves a half-written model under the final name. Every way a file
can be wrong raises :class:`ModelFileError` saying which file and why.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from rtsnn.snn.contract import InputContract
from rtsnn.snn.params import Model, NeuronSettings, Weights

FORMAT = "rtsnn-model"
FORMAT_VERSION = 1
HEADER_KEY = "header.json"
ARRAY_KEYS = ("w_in", "w_rec", "w_out", "b_out")
_REQUIRED_HEADER = ("format", "format_version", "settings", "shapes", "output_labels", "output_units",
                    "provenance")


class ModelFileError(ValueError):
    """A model file is missing, corrupt, from a newer rtsnn, or inconsistent."""


def _rtsnn_version() -> str:
    try:
        from importlib.metadata import version

        return version("rtsnn")
    except Exception:  # not installed (running from a source tree)
        return "unknown"


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def build_header(model: Model) -> dict[str, Any]:
    """The JSON header :func:`save_model` writes for ``model``."""
    w = model.weights
    prov = dict(model.provenance)
    prov.setdefault("method", "unspecified")  # how the weights were made / trained
    prov.setdefault("created_utc", _utc_now())
    prov["saved_utc"] = _utc_now()
    prov["rtsnn_version"] = _rtsnn_version()
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "neuron_model": model.settings.model,
        "dt_s": model.settings.dt_s,
        "settings": model.settings.to_dict(),
        "shapes": {k: list(getattr(w, k).shape) for k in ARRAY_KEYS},
        "n_in": model.n_in,
        "n_rec": model.n_rec,
        "n_out": model.n_out,
        "output_labels": list(model.output_labels or []),
        "output_units": list(model.output_units or []),
        "provenance": prov,
    }
    if model.input_contract is not None:
        header["input_contract"] = model.input_contract.to_dict()
    return header


def save_model(path: str | os.PathLike[str], model: Model) -> Path:
    """Write ``model`` to ``path`` (exactly that name; ``.npz`` recommended) atomically."""
    model.validate()
    path = Path(path)
    header = build_header(model)
    try:
        blob = json.dumps(header, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise ValueError(f"model header is not JSON-serialisable (check provenance): {err}") from err
    arrays: dict[str, np.ndarray] = {k: getattr(model.weights, k) for k in ARRAY_KEYS}
    arrays[HEADER_KEY] = np.frombuffer(blob, dtype=np.uint8)
    return write_npz_atomic(path, arrays)


def write_npz_atomic(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez`` to a temporary file beside ``path``, fsync, then ``os.replace``: readers see
    the old file or the complete new one, never a partial write (crash-safe checkpoints)."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _open_npz(path: Path) -> Any:
    if not path.exists():
        raise ModelFileError(f"model file {path} not found")
    if not path.is_file():
        raise ModelFileError(f"model file {path} is not a regular file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"model file {path} is not an .npz (zip) archive; it is corrupt, "
                             f"truncated, or not a model file")
    try:
        return np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as err:
        raise ModelFileError(f"model file {path} cannot be opened as .npz (corrupt or truncated?): {err}") from err


def _read_array(npz: Any, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error, KeyError) as err:
        raise ModelFileError(f"model file {path}: array {key!r} cannot be read (corrupt or truncated?): "
                             f"{err}") from err


def _parse_header(npz: Any, path: Path) -> dict[str, Any]:
    if HEADER_KEY not in npz.files:
        raise ModelFileError(f"model file {path} has no {HEADER_KEY!r} entry; not an rtsnn model file "
                             f"(entries: {', '.join(npz.files) or 'none'})")
    raw = _read_array(npz, HEADER_KEY, path)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(f"model file {path}: {HEADER_KEY!r} must be a 1-D uint8 array, "
                             f"got {raw.dtype} with shape {raw.shape}")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"model file {path}: header is not valid UTF-8 JSON: {err}") from err
    if not isinstance(header, dict):
        raise ModelFileError(f"model file {path}: header must be a JSON object, got {type(header).__name__}")
    if header.get("format") != FORMAT:
        raise ModelFileError(f"model file {path}: format tag is {header.get('format')!r}, expected {FORMAT!r}")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"model file {path}: format_version must be an integer >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"model file {path} has format_version {version}, but this rtsnn "
                             f"({_rtsnn_version()}) reads up to format_version {FORMAT_VERSION}; "
                             f"upgrade rtsnn to load it")
    missing = [k for k in _REQUIRED_HEADER if k not in header]
    if missing:
        raise ModelFileError(f"model file {path}: header lacks required key(s) {', '.join(missing)}")
    _parse_contract(header, path)  # a malformed contract is refused by read_header too
    return header


def _parse_contract(header: dict[str, Any], path: Path) -> InputContract | None:
    """The header's ``input_contract`` (None when absent or null); ModelFileError naming the key."""
    raw = header.get("input_contract")
    if raw is None:
        return None
    try:
        contract = InputContract.from_dict(raw)
    except ValueError as err:
        raise ModelFileError(f"model file {path}: {err}") from None
    dt_s = header.get("dt_s")
    if isinstance(dt_s, (int, float)) and not isinstance(dt_s, bool) and abs(contract.dt_s - dt_s) > 1e-9 * dt_s:
        raise ModelFileError(f"model file {path}: input_contract.dt_s: {contract.dt_s:g} s differs from the "
                             f"model's dt_s {dt_s:g} s")
    return contract


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a model file (checked: format tag, version, required keys, and the
    input contract when there is one)."""
    path = Path(path)
    with _open_npz(path) as npz:
        return _parse_header(npz, path)


def load_model(path: str | os.PathLike[str]) -> Model:
    """Read a model file; raises :class:`ModelFileError` saying why when it is not usable."""
    path = Path(path)
    with _open_npz(path) as npz:
        header = _parse_header(npz, path)
        missing = [k for k in ARRAY_KEYS if k not in npz.files]
        if missing:
            raise ModelFileError(f"model file {path} lacks array(s) {', '.join(missing)}")
        arrays = {k: _read_array(npz, k, path) for k in ARRAY_KEYS}
    shapes = header["shapes"]
    if not isinstance(shapes, dict):
        raise ModelFileError(f"model file {path}: header 'shapes' must be an object, got {shapes!r}")
    for k, arr in arrays.items():
        if k not in shapes:
            raise ModelFileError(f"model file {path}: header 'shapes' lacks {k!r}")
        if list(arr.shape) != list(shapes[k]):
            raise ModelFileError(f"model file {path}: array {k!r} has shape {list(arr.shape)} but the "
                                 f"header says {shapes[k]}")
        if arr.dtype.kind != "f":
            raise ModelFileError(f"model file {path}: array {k!r} must be floating point, got {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            n_bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise ModelFileError(f"model file {path}: array {k!r} has {n_bad} non-finite (NaN/inf) value(s)")
    settings_d = header["settings"]
    if not isinstance(settings_d, dict):
        raise ModelFileError(f"model file {path}: header 'settings' must be an object, got {settings_d!r}")
    if not isinstance(header["provenance"], dict):
        raise ModelFileError(f"model file {path}: header 'provenance' must be an object")
    try:
        settings = NeuronSettings.from_dict(settings_d)
        weights = Weights(**arrays)
        return Model(settings, weights, provenance=dict(header["provenance"]),
                     output_labels=header["output_labels"], output_units=header["output_units"],
                     input_contract=_parse_contract(header, path))
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"model file {path}: {err}") from err
