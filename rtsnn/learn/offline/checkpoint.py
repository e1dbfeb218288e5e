"""Atomic training checkpoints: one ``.npz`` of named float arrays plus a JSON header (no
pickle). Written to a temporary file in the same folder, flushed and ``os.replace``-d over
the target, so a crash or Ctrl-C during the write never leaves a truncated checkpoint: the
file on disk is always the previous complete one or the new complete one.

A BPTT checkpoint (:func:`rtsnn.learn.offline.bptt.fit`) also holds what was trained: the
model graph (its nodes' scalar fields and edges in ``meta['graph']``, its nodes' arrays as
``graph/<node>/<field>``, the model file's layout) and the training options in
``meta['bptt_options']``; :func:`checkpoint_graph` reads them back. Version 1 checkpoints
(written before the graph) stored the architecture as ``meta['spec']``, a flat dict (n_in,
layers, recurrent, n_out, model, dt_s, tau_mem_s, ...); they still load, the dict converted
to the equivalent layered graph.
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
VERSION = 2
READABLE_VERSIONS = (1, 2)
GRAPH_PREFIX = "graph/"


class CheckpointError(RtsnnValueError):
    """An unreadable or foreign checkpoint file."""


def save_checkpoint(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], meta: dict[str, Any],
                    graph: Any = None) -> Path:
    """Write ``arrays`` and the JSON-serialisable ``meta`` atomically to ``path``; with ``graph``
    (a :class:`rtsnn.snn.graph.Graph`) also the graph (``meta['graph']`` and ``graph/...`` arrays)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    if graph is not None:
        from rtsnn.learn.offline.bptt_graph import graph_to_parts

        g_meta, g_arrays = graph_to_parts(graph)
        meta = {**meta, "graph": g_meta}
        payload.update({GRAPH_PREFIX + k: np.asarray(v) for k, v in g_arrays.items()})
    header = json.dumps({"format": FORMAT, "version": VERSION, "meta": meta})
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
    if not isinstance(header, dict) or not isinstance(header.get("meta"), dict):
        raise CheckpointError(f"{path}: corrupt checkpoint header (not an object with a 'meta' object)")
    if header.get("format") != FORMAT or header.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(f"{path}: expected format {FORMAT} v{'/v'.join(map(str, READABLE_VERSIONS))}, got "
                              f"{header.get('format')!r} v{header.get('version')!r}")
    return arrays, header["meta"]


def checkpoint_graph(path: str | os.PathLike[str]) -> tuple[Any, Any]:
    """``(graph, options)`` a checkpoint was trained with (:class:`rtsnn.snn.graph.Graph`,
    :class:`rtsnn.learn.offline.bptt_graph.BpttOptions`); a version 1 checkpoint's
    ``meta['spec']`` is converted to the equivalent layered graph. CheckpointError when the
    checkpoint holds neither."""
    arrays, meta = load_checkpoint(path)
    return network_of(arrays, meta, path)


def network_of(arrays: dict[str, np.ndarray], meta: dict[str, Any], path: str | os.PathLike[str]) -> tuple[Any, Any]:
    """``(graph, options)`` of a checkpoint's ``(arrays, meta)`` as :func:`load_checkpoint` gave
    them (``path`` names the file in errors). With ``meta['graph']`` (version 2) the graph and
    ``meta['bptt_options']`` must both be complete (nothing taken by default, no unknown
    option); a version 1 ``meta['spec']`` is converted. One-line CheckpointError otherwise."""
    from rtsnn.learn.offline.bptt_graph import BpttOptions, graph_from_parts, graph_from_spec_dict

    try:
        if "graph" in meta:
            if "bptt_options" not in meta:
                raise ValueError("bptt_options: missing (a checkpoint with a graph holds its training options)")
            g_arrays = {k[len(GRAPH_PREFIX):]: v for k, v in arrays.items() if k.startswith(GRAPH_PREFIX)}
            return graph_from_parts(meta["graph"], g_arrays), BpttOptions.from_dict(meta["bptt_options"])
        if "spec" in meta:
            return graph_from_spec_dict(meta["spec"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: the checkpoint's network is unreadable: {err}") from None
    raise CheckpointError(f"{path}: the checkpoint holds no network (neither 'graph' nor 'spec' in its header)")
