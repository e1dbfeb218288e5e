"""Model files: one ``.npz`` (never pickled) with the parameter arrays and a JSON header.

Format version 2 (written by this rtsnn) stores a model graph (:mod:`rtsnn.snn.graph`)::

    <node>/<field>   one array per array-valued node field (weights float32, per-neuron
                     parameters float64, Delay steps int32, reset modes uint8)
    header.json      format "rtsnn-model", format_version 2, dt_s, n_in, n_out,
                     graph {integration, nodes {name: {kind, scalar fields}}, edges [[src, dst]],
                            order [evaluation order]},
                     shapes {"<node>/<field>": [dims]}, output_labels, output_units,
                     provenance, input_contract (optional)

Before any array is read, every entry's .npy header (shape, dtype) is checked against
``shapes``, against the bytes the zip entry actually holds, and the total against
:data:`MAX_MODEL_BYTES`, so a file that claims a huge array costs nothing to refuse (the
header entry itself is limited to :data:`MAX_HEADER_BYTES`). Every array field of every node
must be in the file (a missing one is never replaced by a default), and a stored evaluation
``order`` must be the one this rtsnn derives from the nodes and edges. :func:`load_model` returns a :class:`rtsnn.snn.params.Model` when the
graph is today's single recurrent layer and a :class:`rtsnn.snn.graph.GraphModel` otherwise;
:func:`load_graph_model` always returns the graph.

Format version 1 (every file written before the graph existed; still read):

Layout (``np.savez``, uncompressed zip; zip CRCs catch flipped bytes)::

    w_in (n_in, n_rec) float32, w_rec (n_rec, n_rec), w_out (n_rec, n_out), b_out (n_out,)
    header.json   uint8 array holding UTF-8 JSON:
        format "rtsnn-model", format_version 1, neuron_model, dt_s,
        settings {model, dt_s, tau_mem_s, tau_adapt_s, beta_adapt, v_th, refractory_s,
                  tau_out_s}, shapes {array name: [dims]},
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
import secrets
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from rtsnn.errors import RtsnnValueError
from rtsnn.snn.contract import InputContract
from rtsnn.snn.graph import Graph, GraphModel, graph_from_model, model_from_graph
from rtsnn.snn.nodes import GraphError, node_from_parts
from rtsnn.snn.params import NEURON_MODELS, Model, Weights, single_layer

FORMAT = "rtsnn-model"
FORMAT_VERSION = 2
# refuse files whose arrays would decode to more than this (raise it with RTSNN_MAX_MODEL_BYTES)
MAX_MODEL_BYTES = int(os.environ.get("RTSNN_MAX_MODEL_BYTES", str(4 << 30)))
HEADER_KEY = "header.json"
# the JSON header entry may hold at most this many bytes (a graph of MAX_NODES nodes needs far less)
MAX_HEADER_BYTES = 16 << 20
ARRAY_KEYS = ("w_in", "w_rec", "w_out", "b_out")
_REQUIRED_HEADER = ("format", "format_version", "settings", "shapes", "output_labels", "output_units",
                    "provenance")
_REQUIRED_HEADER_V2 = ("format", "format_version", "dt_s", "graph", "shapes", "output_labels", "output_units",
                       "provenance")


# what reading a damaged zip member raises: bad CRC / structure, truncation, a corrupt deflate
# stream, and RuntimeError / NotImplementedError for a member flagged encrypted or compressed
# with a method zipfile lacks (a flipped flag bit does that)
_ZIP_READ_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error, RuntimeError, NotImplementedError)


class ModelFileError(RtsnnValueError):
    """A model file is missing, corrupt, from a newer rtsnn, or inconsistent."""


def _rtsnn_version() -> str:
    try:
        from importlib.metadata import version

        return version("rtsnn")
    except Exception:  # not installed (running from a source tree)
        return "unknown"


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _as_graph_model(model: Model | GraphModel) -> GraphModel:
    if isinstance(model, GraphModel):
        return model
    if isinstance(model, Model):
        return graph_from_model(model)
    raise ValueError(f"expected a Model or GraphModel, got {type(model).__name__}")


def _graph_arrays(gm: GraphModel) -> dict[str, np.ndarray]:
    return {f"{name}/{k}": arr for name, node in gm.graph.nodes.items() for k, arr in node.arrays().items()}


def build_header(model: Model | GraphModel) -> dict[str, Any]:
    """The JSON header :func:`save_model` writes for ``model`` (format version 2)."""
    gm = _as_graph_model(model)
    g = gm.graph
    prov = dict(gm.provenance)
    prov.setdefault("method", "unspecified")  # how the weights were made / trained
    prov.setdefault("created_utc", _utc_now())
    prov["saved_utc"] = _utc_now()
    prov["rtsnn_version"] = _rtsnn_version()
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dt_s": g.dt_s,
        "n_in": gm.n_in,
        "n_out": gm.n_out,
        "graph": {"integration": g.integration,
                  "nodes": {name: node.meta() for name, node in g.nodes.items()},
                  "edges": [list(e) for e in g.edges],
                  "order": g.order()},
        "shapes": {k: list(a.shape) for k, a in _graph_arrays(gm).items()},
        "output_labels": list(gm.output_labels or []),
        "output_units": list(gm.output_units or []),
        "provenance": prov,
    }
    if gm.input_contract is not None:
        header["input_contract"] = gm.input_contract.to_dict()
    return header


def save_model(path: str | os.PathLike[str], model: Model | GraphModel) -> Path:
    """Write ``model`` (a single-layer Model or any GraphModel) to ``path`` (exactly that name;
    ``.npz`` recommended) atomically, as format version 2."""
    model.validate()
    path = Path(path)
    gm = _as_graph_model(model)
    header = build_header(gm)
    try:
        blob = json.dumps(header, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise ValueError(f"model header is not JSON-serialisable (check provenance): {err}") from err
    arrays = _graph_arrays(gm)
    arrays[HEADER_KEY] = np.frombuffer(blob, dtype=np.uint8)
    return write_npz_atomic(path, arrays)


def create_temp_beside(path: Path) -> tuple[int, str]:
    """A new, empty temporary file in ``path``'s folder, opened for writing: ``(fd, name)``.
    Created with mode 0o666 less the umask, as any file the user writes (``tempfile.mkstemp``
    would make it 0o600, and ``os.replace`` keeps that: a model nobody else could read)."""
    directory = path.parent if str(path.parent) else Path(".")
    for _ in range(100):
        tmp = str(directory / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def write_npz_atomic(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez`` to a temporary file beside ``path``, fsync, then ``os.replace``: readers see
    the old file or the complete new one, never a partial write (crash-safe checkpoints)."""
    return write_atomic(path, lambda f: np.savez(f, **arrays))


def write_atomic(path: str | os.PathLike[str], write: Any) -> Path:
    """Call ``write(f)`` on a binary temporary file beside ``path``, fsync, then ``os.replace``
    it onto ``path`` (the temporary file is removed if anything fails)."""
    path = Path(path)
    fd, tmp = create_temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
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
    except _ZIP_READ_ERRORS as err:
        raise ModelFileError(f"model file {path} cannot be opened as .npz (corrupt or truncated?): {err}") from err


def _read_array(npz: Any, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except (*_ZIP_READ_ERRORS, KeyError) as err:
        raise ModelFileError(f"model file {path}: array {key!r} cannot be read (corrupt or truncated?): "
                             f"{err}") from err


def _parse_header(npz: Any, path: Path) -> dict[str, Any]:
    if HEADER_KEY not in npz.files:
        raise ModelFileError(f"model file {path} has no {HEADER_KEY!r} entry; not an rtsnn model file "
                             f"(entries: {', '.join(npz.files) or 'none'})")
    shape, dtype, _held = _entry_header(npz, HEADER_KEY, path)
    if dtype != np.uint8 or len(shape) != 1:
        raise ModelFileError(f"model file {path}: {HEADER_KEY!r} must be a 1-D uint8 array, "
                             f"got {dtype} with shape {list(shape)}")
    if shape[0] > MAX_HEADER_BYTES:
        raise ModelFileError(f"model file {path}: {HEADER_KEY!r} claims {shape[0]} bytes, more than the limit "
                             f"{MAX_HEADER_BYTES} (rtsnn.snn.model_file.MAX_HEADER_BYTES)")
    _check_held(HEADER_KEY, shape, dtype, _held, path)
    raw = _read_array(npz, HEADER_KEY, path)
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
    missing = [k for k in (_REQUIRED_HEADER if version == 1 else _REQUIRED_HEADER_V2) if k not in header]
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


def read_npy_header(f: Any) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, offset)`` from the ``.npy`` header at the start of binary file ``f``,
    ``offset`` being where the data begins; reads no data. ValueError for anything that is not
    a ``.npy`` header (numpy's parser also raises SyntaxError and tokenizer errors: all mapped)."""
    try:
        major, _minor = np.lib.format.read_magic(f)
        if major == 1:
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif major in (2, 3):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {major} is not supported")
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error):
        raise
    except Exception as err:  # noqa: BLE001 - numpy's header parser: ValueError, SyntaxError, TokenError, ...
        raise ValueError(f"not a .npy header: {err}") from None
    return tuple(int(d) for d in shape), np.dtype(dtype), int(f.tell())


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str,
                path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and the data bytes the entry holds (its size after the .npy header), from
    the entry's .npy header alone: no array data is read or allocated."""
    try:
        with zf.open(info) as f:
            shape, dtype, offset = read_npy_header(f)
    except _ZIP_READ_ERRORS as err:
        raise ModelFileError(f"model file {path}: array {key!r} cannot be read (corrupt or truncated?): "
                             f"{err}") from None
    return tuple(int(d) for d in shape), np.dtype(dtype), int(info.file_size) - int(offset)


def _entry_header(npz: Any, key: str, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    try:
        info = npz.zip.getinfo(f"{key}.npy")
    except KeyError:
        raise ModelFileError(f"model file {path} lacks array {key!r}") from None
    return _npy_header(npz.zip, info, key, path)


def _check_held(key: str, shape: tuple[int, ...], dtype: np.dtype, held: int, path: Path) -> None:
    """Refuse an entry whose .npy header claims more data than the entry holds (a truncated
    or forged file): reading it would allocate the claimed size first."""
    if any(d < 0 for d in shape):
        raise ModelFileError(f"model file {path}: array {key!r} has a negative dimension {list(shape)}")
    claimed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if claimed > held:
        raise ModelFileError(f"model file {path}: array {key!r} claims shape {list(shape)} ({claimed} bytes of "
                             f"{dtype}) but its entry holds {max(held, 0)} bytes (corrupt, truncated or forged)")


def _entry_shapes(npz: Any, path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype, int]]:
    """Shape, dtype and held data bytes of every array entry from its .npy header, reading no data."""
    out = {}
    zf = npz.zip
    for info in zf.infolist():
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if key == HEADER_KEY:
            continue
        out[key] = _npy_header(zf, info, key, path)
    return out


def _check_shapes(header: dict[str, Any], npz: Any, path: Path, keys: list[str] | None = None) -> None:
    """Compare every array's .npy header with the model header's ``shapes`` before reading, and
    refuse more than :data:`MAX_MODEL_BYTES` in all."""
    shapes = header["shapes"]
    if not isinstance(shapes, dict):
        raise ModelFileError(f"model file {path}: header 'shapes' must be an object, got {type(shapes).__name__}")
    entries = _entry_shapes(npz, path)
    total = 0
    for key in (keys if keys is not None else list(shapes)):
        if key not in entries:
            raise ModelFileError(f"model file {path} lacks array {key!r}")
        if key not in shapes:
            raise ModelFileError(f"model file {path}: header 'shapes' lacks {key!r}")
        want = shapes[key]
        if not isinstance(want, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in want):
            raise ModelFileError(f"model file {path}: header 'shapes'.{key} must be a list of ints, got {want!r}")
        shape, dtype, held = entries[key]
        if list(shape) != want:
            raise ModelFileError(f"model file {path}: array {key!r} has shape {list(shape)} but the header "
                                 f"says {want}")
        if dtype.kind not in "fiu" or dtype.itemsize > 8:
            raise ModelFileError(f"model file {path}: array {key!r} must be numeric, got {dtype}")
        _check_held(key, shape, dtype, held, path)
        total += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if total > MAX_MODEL_BYTES:
        raise ModelFileError(f"model file {path}: its arrays would take {total / 2**30:.1f} GiB, more than the "
                             f"limit {MAX_MODEL_BYTES / 2**30:.1f} GiB (set RTSNN_MAX_MODEL_BYTES to raise it)")


def _load_v1(npz: Any, header: dict[str, Any], path: Path) -> Model:
    _check_shapes(header, npz, path, list(ARRAY_KEYS))
    arrays = {k: _read_array(npz, k, path) for k in ARRAY_KEYS}
    for k, arr in arrays.items():
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
    dt_s, layer = _v1_settings(settings_d, path)
    # the v1 writer repeated two settings at the top of the header: they must agree
    top_dt, top_model = header.get("dt_s", dt_s), header.get("neuron_model", layer["model"])
    if not isinstance(top_dt, (int, float)) or isinstance(top_dt, bool) or not np.isclose(top_dt, dt_s, rtol=1e-12):
        raise ModelFileError(f"model file {path}: header 'dt_s' ({top_dt!r}) disagrees with 'settings'.dt_s ({dt_s!r})")
    if top_model != layer["model"]:
        raise ModelFileError(f"model file {path}: header 'neuron_model' ({top_model!r}) disagrees with "
                             f"'settings'.model ({layer['model']!r})")
    try:
        hidden, trace = single_layer(layer.pop("model"), arrays["w_in"].shape[1], **layer)
        weights = Weights(**arrays)
        return Model(hidden, trace, weights, dt_s, provenance=dict(header["provenance"]),
                     output_labels=header["output_labels"], output_units=header["output_units"],
                     input_contract=_parse_contract(header, path))
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"model file {path}: {err}") from err


# the neuron settings a v1 header holds, and the values a v1 reader took for a missing one
V1_SETTINGS_DEFAULTS: dict[str, Any] = {"model": "lif", "dt_s": 1e-3, "tau_mem_s": 20e-3, "tau_adapt_s": 200e-3,
                                        "beta_adapt": 0.0, "v_th": 1.0, "refractory_s": 0.0, "tau_out_s": 20e-3}


def _v1_settings(d: dict[str, Any], path: Path) -> tuple[float, dict[str, Any]]:
    """``(dt_s, single_layer keyword arguments with 'model')`` of a v1 header's ``settings``,
    every value checked (errors name the file and the key)."""
    unknown = sorted(set(d) - set(V1_SETTINGS_DEFAULTS))
    if unknown:
        raise ModelFileError(f"model file {path}: header 'settings': unknown key(s) {', '.join(unknown)}; expected "
                             f"some of {', '.join(V1_SETTINGS_DEFAULTS)}")
    out = {**V1_SETTINGS_DEFAULTS, **d}

    def bad(key: str, what: str) -> ModelFileError:
        return ModelFileError(f"model file {path}: header 'settings'.{key}: {what}, got {out[key]!r}")

    if out["model"] not in NEURON_MODELS:
        raise bad("model", f"must be one of {', '.join(NEURON_MODELS)}")
    for key in V1_SETTINGS_DEFAULTS:
        if key == "model":
            continue
        v = out[key]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v):
            raise bad(key, "must be a finite number")
        if key in ("beta_adapt", "refractory_s") and v < 0:
            raise bad(key, "must be >= 0")
        if key not in ("beta_adapt", "refractory_s") and v <= 0:
            raise bad(key, "must be > 0")
    dt_s = float(out.pop("dt_s"))
    for key in ("tau_mem_s", "tau_adapt_s", "tau_out_s"):
        if not out[key] > dt_s:
            raise bad(key, f"must be larger than dt_s ({dt_s:g} s; are the units seconds?)")
    if out["model"] == "lif":
        del out["tau_adapt_s"], out["beta_adapt"]  # a LIF layer has no adaptation
    return dt_s, out


def _load_v2(npz: Any, header: dict[str, Any], path: Path) -> GraphModel:
    graph = header["graph"]
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), dict) \
            or not isinstance(graph.get("edges"), list):
        raise ModelFileError(f"model file {path}: header 'graph' must be an object with 'nodes' (object) and "
                             f"'edges' (list)")
    _check_shapes(header, npz, path)
    per_node: dict[str, dict[str, np.ndarray]] = {name: {} for name in graph["nodes"]}
    for key in header["shapes"]:
        node, _, fld = key.rpartition("/")  # a field name has no '/', a node name may
        if node not in per_node or not fld:
            raise ModelFileError(f"model file {path}: array {key!r} belongs to no node of the graph")
        per_node[node][fld] = _read_array(npz, key, path)
    if not isinstance(header["provenance"], dict):
        raise ModelFileError(f"model file {path}: header 'provenance' must be an object")
    try:
        nodes = {name: node_from_parts(name, meta, per_node[name]) for name, meta in graph["nodes"].items()}
        for name, node in nodes.items():
            given = set(per_node[name]) | set(graph["nodes"][name])
            missing = [fld for fld in node.arrays() if fld not in given]
            if missing:
                raise GraphError(f"node {name!r}: {missing[0]}: array {name}/{missing[0]} is not in the file "
                                 f"(header 'shapes' lists no such entry)")
        edges = graph["edges"]
        if not all(isinstance(e, list) and len(e) == 2 for e in edges):
            raise GraphError("graph: edges must be [source, target] pairs")
        g = Graph(nodes, [tuple(e) for e in edges], dt_s=header["dt_s"],
                  integration=graph.get("integration", "exact"))
        order = graph.get("order")
        if order is not None and order != g.order():
            raise GraphError(f"graph: order: the file's evaluation order {order} differs from the one this rtsnn "
                             f"derives from the nodes and edges, {g.order()}")
        return GraphModel(g, provenance=dict(header["provenance"]), output_labels=header["output_labels"],
                          output_units=header["output_units"], input_contract=_parse_contract(header, path))
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"model file {path}: {err}") from None


def load_graph_model(path: str | os.PathLike[str]) -> GraphModel:
    """Read any model file (v1 or v2) as a :class:`GraphModel`."""
    model = _load(Path(path))
    return model if isinstance(model, GraphModel) else graph_from_model(model)


def _load(path: Path) -> Model | GraphModel:
    with _open_npz(path) as npz:
        header = _parse_header(npz, path)
        if header["format_version"] == 1:
            return _load_v1(npz, header, path)
        return _load_v2(npz, header, path)


def load_model(path: str | os.PathLike[str]) -> Model | GraphModel:
    """Read a model file: a :class:`Model` when it holds today's single recurrent layer (every
    v1 file, and v2 files of that shape), else a :class:`GraphModel`. Raises
    :class:`ModelFileError` saying why when the file is not usable."""
    model = _load(Path(path))
    if isinstance(model, GraphModel):
        single = model_from_graph(model)
        return single if single is not None else model
    return model
