"""What ``rtsnn model info`` and ``rtsnn model simulate`` do, as functions (no printing).

* :func:`describe_model` reads a model file (any format version) and returns its graph as
  rows (one per node, in evaluation order: name, kind, shape, inputs with recurrent ones
  marked), edges, output labels and units, input contract, provenance and the raw header;
  :func:`format_description` turns that into the text ``model info`` prints.
* :func:`read_input_array` reads a ``.npy`` input array (ticks x channels) for a model with
  ``n_in`` inputs, checking its .npy header (shape, dtype, bytes held) before reading any data,
  then every value finite; every refusal is a ValueError naming the file and what is wrong.
* :func:`simulate_file` runs a model file over such an array from a fresh state and writes
  the Output node's values per tick (float32, ticks x n_out) to a ``.npy`` atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from rtsnn.snn.graph import GraphModel
from rtsnn.snn.model_file import load_graph_model, load_model, read_header, read_npy_header, write_atomic
from rtsnn.snn.nodes import NEURON_KINDS, Node

# an input array may hold at most this many bytes once converted to float32 (raise it here)
MAX_INPUT_BYTES = 8 << 30


def _span(arr: np.ndarray, unit_s: bool = False) -> str:
    """``'20 ms'`` for a uniform array, ``'10 ms..40 ms'`` otherwise (seconds shown in ms when
    ``unit_s``)."""
    def fmt(x: float) -> str:
        return f"{x * 1e3:.3g} ms" if unit_s else f"{x:.3g}"

    lo, hi = float(np.min(arr)), float(np.max(arr))
    return fmt(lo) if lo == hi else f"{fmt(lo)}..{fmt(hi)}"


def node_details(node: Node) -> str:
    """A few words on a node's parameters (time constants, threshold, reset, weights)."""
    k = node.kind
    if k in NEURON_KINDS:
        parts = []
        for fld, short in (("tau_mem_s", "tau_mem"), ("tau_syn_s", "tau_syn"), ("tau_adapt_s", "tau_adapt")):
            if hasattr(node, fld):
                parts.append(f"{short} {_span(getattr(node, fld), True)}")
        if k == "ALIF":
            parts.append(f"beta {_span(node.beta_adapt)}")  # type: ignore[attr-defined]
        parts.append(f"v_th {_span(node.v_th)}" + (" (spikes at v > v_th)"
                                                     if getattr(node, "spike_if", ">=") == ">" else ""))  # type: ignore[attr-defined]
        modes = sorted({("subtract", "zero")[int(r)] for r in node.reset})  # type: ignore[attr-defined]
        parts.append(f"reset {'/'.join(modes)} at {node.reset_at}")  # type: ignore[attr-defined]
        if np.any(node.refractory_s > 0):  # type: ignore[attr-defined]
            parts.append(f"refractory {_span(node.refractory_s, True)}")  # type: ignore[attr-defined]
        return ", ".join(parts)
    if k == "LI":
        return f"tau {_span(node.tau_s, True)}"  # type: ignore[attr-defined]
    if k == "Delay":
        return f"steps {_span(node.steps)}"  # type: ignore[attr-defined]
    if k in ("SumPool2d", "AvgPool2d"):
        (kh, kw), (sy, sx) = node.kernel_size, node.stride  # type: ignore[attr-defined]
        return f"kernel {kh}x{kw}, stride {sy}x{sx}"
    if k in ("Linear", "Affine", "Conv2d"):
        w = node.weight  # type: ignore[attr-defined]
        return f"weight {'x'.join(str(d) for d in w.shape)}" + (" + bias" if hasattr(node, "bias") else "")
    return ""


def describe_model(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The graph of the model file at ``path`` (read and validated in full) as plain data."""
    header = read_header(path)
    gm: GraphModel = load_graph_model(path)
    g = gm.graph
    rows = []
    for name in g.order():
        node = g.nodes[name]
        preds = g.predecessors(name)
        rows.append({"name": name, "kind": node.kind, "shape": list(node.output_shape()), "inputs": preds,
                     "recurrent_inputs": [s for s in preds if g.is_recurrent(s, name)],
                     "n_params": int(sum(a.size for a in node.arrays().values())),
                     "details": node_details(node)})
    contract = gm.input_contract.to_dict() if gm.input_contract is not None else None
    return {"file": str(path), "format_version": header["format_version"], "dt_s": g.dt_s,
            "integration": g.integration, "n_in": gm.n_in, "n_out": gm.n_out,
            "n_params": sum(r["n_params"] for r in rows), "nodes": rows,
            "edges": [{"source": s, "target": d, "recurrent": g.is_recurrent(s, d)} for s, d in g.edges],
            "output_labels": list(gm.output_labels or []), "output_units": list(gm.output_units or []),
            "input_contract": contract, "provenance": dict(gm.provenance), "header": header}


def format_description(d: dict[str, Any]) -> list[str]:
    """The lines ``rtsnn model info`` prints for :func:`describe_model`'s result."""
    v = d["format_version"]
    lines = [f"{d['file']}: rtsnn model, format_version {v}" + (" (single layer, read as the graph below)"
                                                                 if v == 1 else "")
             + f"; tick {d['dt_s'] * 1e3:g} ms ({d['integration']}); {d['n_in']} inputs -> {d['n_out']} outputs; "
             f"{len(d['nodes'])} nodes, {len(d['edges'])} edges, {d['n_params']} parameter values"]
    table = [("node", "kind", "shape", "inputs", "parameters")]
    for r in d["nodes"]:
        ins = ", ".join(s + (" (t-1)" if s in r["recurrent_inputs"] else "") for s in r["inputs"]) or "-"
        table.append((r["name"], r["kind"], "[" + ", ".join(str(x) for x in r["shape"]) + "]", ins, r["details"]))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4])
    lines[-len(table):] = [ln.rstrip() for ln in lines[-len(table):]]
    outs = [f"{lab} ({unit})" for lab, unit in zip(d["output_labels"], d["output_units"])]
    lines.append("outputs: " + ", ".join(outs))
    c = d["input_contract"]
    if c is None:
        lines.append("input contract: none (no checks against a session config)")
    else:
        enc = c["encoder"]
        opts = ", ".join(f"{k}={val}" for k, val in (enc.get("options") or {}).items())
        src = c.get("source") or {}
        src_txt = ", ".join(f"{k} {src[k]}" for k in ("kind", "name", "type") if src.get(k))
        lines.append(f"input contract: {c['n_channels']} channels at {c['dt_s'] * 1e3:g} ms ticks, encoder "
                     f"{enc['kind']}" + (f" ({opts})" if opts else "") + (f"; source {src_txt}" if src_txt else ""))
    prov = d["provenance"]
    keys = [k for k in ("method", "created_utc", "saved_utc", "rtsnn_version") if k in prov]
    extra = len(prov) - len(keys)
    lines.append("provenance: " + ", ".join(f"{k} {prov[k]}" for k in keys)
                 + (f" (+{extra} more keys: --json)" if extra > 0 else ""))
    return lines


def read_input_array(path: str | os.PathLike[str], n_in: int, what: str = "--input") -> np.ndarray:
    """A (ticks, n_in) float32 array from the ``.npy`` file at ``path``; ValueError naming
    ``what`` and the file for a missing file, not a .npy, not numeric, not 2-D, the wrong
    channel count, no ticks, truncated data or a NaN/inf value."""
    path = Path(path)
    where = f"{what} {path}"
    if not path.exists():
        raise ValueError(f"{where}: not found")
    if not path.is_file():
        raise ValueError(f"{where}: not a regular file")
    with open(path, "rb") as f:
        try:
            shape, dtype, offset = read_npy_header(f)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"{where}: not a .npy file (numpy.save format): {err}") from None
    if dtype.kind not in "biuf":
        raise ValueError(f"{where}: must hold numbers, got dtype {dtype}")
    if len(shape) != 2:
        raise ValueError(f"{where}: must be 2-D (ticks x channels), got shape {list(shape)}")
    ticks, channels = shape
    if channels != n_in:
        raise ValueError(f"{where}: has {channels} channels (shape {list(shape)}), the model takes {n_in} inputs")
    if ticks < 1:
        raise ValueError(f"{where}: has no ticks (shape {list(shape)})")
    if ticks * channels * 4 > MAX_INPUT_BYTES:
        raise ValueError(f"{where}: {ticks} x {channels} values exceed the limit of {MAX_INPUT_BYTES >> 30} GiB "
                         f"(rtsnn.snn.model_tools.MAX_INPUT_BYTES)")
    held = path.stat().st_size - offset
    if ticks * channels * dtype.itemsize > held:
        raise ValueError(f"{where}: claims shape {list(shape)} of {dtype} but holds only {held} bytes of data "
                         f"(truncated?)")
    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{where}: cannot be read: {err}") from None
    with np.errstate(over="ignore", invalid="ignore"):
        xs = np.ascontiguousarray(raw, dtype=np.float32)
    bad = ~np.isfinite(xs)
    if bad.any():
        t, c = (int(i) for i in np.argwhere(bad)[0])
        what_bad = "out of float32 range" if np.isfinite(raw[t, c]) else repr(float(raw[t, c]))
        raise ValueError(f"{where}: has {int(bad.sum())} non-finite value(s) (NaN/inf or beyond float32); the "
                         f"first at tick {t}, channel {c}: {what_bad}")
    return xs


def write_npy_atomic(path: str | os.PathLike[str], arr: np.ndarray) -> Path:
    """``np.save`` to a temporary file beside ``path``, fsync, then ``os.replace``."""
    return write_atomic(path, lambda f: np.save(f, arr, allow_pickle=False))


def simulate_file(model_path: str | os.PathLike[str], input_path: str | os.PathLike[str],
                  output_path: str | os.PathLike[str], propagation: str = "auto") -> dict[str, Any]:
    """Run the model file over the input array from a fresh state; write the Output node's
    values per tick to ``output_path``; return a summary (ticks, outputs, labels, spikes)."""
    from rtsnn.snn.graph_network import build_network

    out = Path(output_path)
    if out.suffix != ".npy":
        raise ValueError(f"--output {out}: must end in .npy (it is written with numpy.save)")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise ValueError(f"--output {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise ValueError(f"--output {out}: is a folder")
    model = load_model(model_path)
    xs = read_input_array(input_path, model.n_in)
    net = build_network(model, propagation=propagation)
    buf = np.zeros(model.n_in, np.float32)
    ys = np.zeros((xs.shape[0], model.n_out), np.float32)
    spikes = 0
    for t in range(xs.shape[0]):
        buf[...] = xs[t]
        net.step(buf)
        ys[t] = net.readout()
        spikes += int(np.count_nonzero(net.spikes()))
    write_npy_atomic(out, ys)
    dt_s = model.dt_s
    return {"model": str(model_path), "input": str(input_path), "output": str(out), "ticks": int(xs.shape[0]),
            "n_in": int(model.n_in), "n_out": int(model.n_out), "dt_s": float(dt_s),
            "output_labels": list(model.output_labels or []), "output_units": list(model.output_units or []),
            "spikes": spikes, "propagation": propagation}
