"""Export / import rtsnn model graphs as NIR graphs (``pip install nir``); see docs/nir.md.

Every node kind maps to its NIR primitive (weights transposed: rtsnn stores ``(n_in, n_out)``,
NIR ``(n_out, n_in)``); a recurrent projection is a cycle in the NIR graph::

    Input  Output  Linear  Affine  LIF  CubaLIF  IF  LI  Delay  Conv2d  SumPool2d  AvgPool2d  Flatten

``ALIF`` (adaptive threshold) and refractory periods have no NIR primitive and are refused.

NIR's neurons are continuous (``tau dv/dt = (v_leak - v) + r I``) and a NIR file carries no
tick and no reset timing, so both directions take a *convention*: how a library turns the
time constants into per-tick updates, scales the input, and when the reset applies.

=============  =========================  ======================  ============================
convention     per-tick decay of ``tau``  input gain              reset
=============  =========================  ======================  ============================
``snntorch``   ``1 - 1e-4/tau`` (fixed)   ``r 1e-4/tau``          next tick (``reset_delay``)
``norse``      ``1 - dt/tau``             ``r dt/tau``            same tick, to ``v_reset``
``nir``        ``1 - dt/tau``             ``r dt/tau``            same tick, to ``v_reset``
``rockpool``   ``exp(-dt/tau)``           ``r dt/(tau decay)``    same tick, to ``v_reset``
=============  =========================  ======================  ============================

* Import (:func:`from_nir`) needs the tick ``dt_s`` and the convention; it refuses to guess
  either unless the file's own ``rtsnn.*`` metadata (written by :func:`to_nir`) names them.
* Every imported spiking node spikes on ``v > v_threshold`` (``spike_if='>'``), as NIR says.
  An rtsnn node with ``spike_if='>='`` is exported with ``v_threshold = nextafter(v_th, -inf)``
  (for float32 membranes ``v >= th`` is exactly ``v > nextafter(th, -inf)``); the metadata
  lets the importer restore it.
* NIR resets to ``v_reset``; ``reset='subtract'`` (a keyword of :func:`from_nir`) reads the
  file as reset by subtraction (snnTorch's export loses ``reset_mechanism``).
* snnTorch, reset to zero at the next tick: ``Leaky`` sets the previous membrane to 0 and
  decays it (``v = I``); ``Synaptic``, ``RLeaky``, ``RSynaptic`` zero the whole membrane of that
  tick (``reset_at='next_clamp'``): a ``CubaLIF``, or a ``LIF`` on a cycle, gets ``next_clamp``.
* ``norse``: Norse's exporter writes ``tau = dt/tau_inv`` (``dt * tau``, not ``tau``) and its
  ``LIFCell`` (exported as ``CubaLIF``) adds the input to the synaptic current unscaled; the
  importer undoes both for files without rtsnn metadata. Files rtsnn writes for Norse follow
  NIR's equations, which Norse's importer reads correctly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rtsnn.extras import require

CONVENTIONS = ("snntorch", "norse", "nir", "rockpool")
RESET_OVERRIDES = ("zero", "subtract")
SNNTORCH_DT_S = 1e-4  # snntorch/export_nir.py and import_nir.py: ``dt = 1e-4``
FORMAT = 2
NEURONS = ("lif", "cubalif")
_F32 = np.float32
# snnTorch writes r = tau/dt in float32, which reads back as a gain of 1 +- 3e-7; gains this
# close to 1 are taken as exactly 1 (snnTorch's own importer does the same with np.allclose)
_UNIT_GAIN_RTOL = 1e-5


def _nir() -> Any:
    return require("nir", "NIR import and export")


def _check_convention(convention: Any) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    return str(convention)


def _check_dt(dt_s: Any, what: str = "dt_s") -> float:
    try:
        dt = float(dt_s)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number of seconds, got {dt_s!r}") from None
    if not (math.isfinite(dt) and 0 < dt <= 10):
        raise ValueError(f"{what} must be a number of seconds in (0, 10], got {dt_s!r}")
    return dt


# ---------------------------------------------------------------------------------------------
# per-tick decay <-> NIR time constant, per convention


def _ref_dt(convention: str, dt_s: float) -> float:
    """The step the convention's time constants refer to (snnTorch hard-codes 1e-4 s)."""
    return SNNTORCH_DT_S if convention == "snntorch" else dt_s


def decay_to_tau_r(alpha: float, dt_s: float, convention: str) -> tuple[float, float]:
    """``(tau, r)`` that ``convention`` reads back as per-tick decay ``alpha`` with unit input gain."""
    convention = _check_convention(convention)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"decay alpha must be in (0, 1), got {alpha}")
    ref = _ref_dt(convention, dt_s)
    if convention == "rockpool":
        tau = -ref / math.log(alpha)
        return tau, tau * alpha / ref
    tau = ref / (1.0 - alpha)
    return tau, tau / ref


def tau_r_to_decay(tau: Any, r: Any, dt_s: float, convention: str) -> tuple[np.ndarray, np.ndarray]:
    """``(decay, gain)`` per tick of NIR ``tau``, ``r`` under ``convention`` (float64)."""
    convention = _check_convention(convention)
    tau = np.asarray(tau, np.float64)
    r = np.asarray(r, np.float64)
    if np.any(~np.isfinite(tau)) or np.any(tau <= 0):
        raise ValueError(f"NIR tau must be finite and > 0, got {tau.ravel()[:4].tolist()}")
    ref = _ref_dt(convention, dt_s)
    if convention == "rockpool":
        alpha = np.exp(-ref / tau)
        return alpha, r * ref / (tau * alpha)
    return 1.0 - ref / tau, r * ref / tau


def _snntorch_beta(tau: np.ndarray) -> np.ndarray:
    """snnTorch's ``beta`` behind an exported ``tau = float32(1e-4 / float32(1 - beta))``: the
    float32 ``beta`` whose export gives back exactly ``tau``, nearest to ``1 - 1e-4/tau``
    (float64 arithmetic alone misses the last bit for about one tau in six)."""
    d_ref = _F32(SNNTORCH_DT_S)
    t32 = np.asarray(tau, _F32)
    out = (1.0 - SNNTORCH_DT_S / t32.astype(np.float64)).astype(_F32)
    for val in np.unique(t32):
        est = 1.0 - SNNTORCH_DT_S / float(val)
        best = None
        b = _F32(est)
        for _ in range(4):
            b = np.nextafter(b, _F32(-np.inf))
        for _ in range(9):
            one_minus = _F32(1) - b
            if _F32(d_ref / one_minus) == val and (best is None or abs(float(b) - est) < abs(float(best) - est)):
                best = b
            b = np.nextafter(b, _F32(np.inf))
        if best is not None:
            out[t32 == val] = best
    return out.astype(np.float64)


def _snntorch_tau(alpha32: np.ndarray) -> np.ndarray:
    """float32 ``tau`` that snnTorch's importer (``beta = 1 - dt/tau`` in float32) reads back as
    exactly ``alpha32``; ``1e-4/(1 - alpha)`` nudged by a few float32 steps where needed."""
    d_ref = _F32(SNNTORCH_DT_S)
    out = np.empty(alpha32.shape, _F32)
    for val in np.unique(alpha32):
        t0 = _F32(SNNTORCH_DT_S / (1.0 - float(val)))
        found = t0
        for k in range(9):
            cand = t0
            step = (k + 1) // 2
            for _ in range(step):
                cand = np.nextafter(cand, _F32(np.inf if k % 2 else -np.inf))
            if _F32(_F32(1) - _F32(d_ref / cand)) == val:
                found = cand
                break
        out[alpha32 == val] = found
    return out


# ---------------------------------------------------------------------------------------------
# export


def _as_graph_model(model: Any) -> Any:
    from rtsnn.snn.graph import GraphModel, graph_from_model
    from rtsnn.snn.params import Model

    if isinstance(model, GraphModel):
        return model
    if isinstance(model, Model):
        return graph_from_model(model)
    raise ValueError(f"to_nir needs a Model or GraphModel, got {type(model).__name__}")


def _tau_for(alpha32: np.ndarray, dt: float, convention: str, integration_tau: np.ndarray | None) -> np.ndarray:
    """NIR ``tau`` for per-tick decay ``alpha32`` (float32 as the kernels use it)."""
    a = alpha32.astype(np.float64)
    if np.any(a <= 0) or np.any(a >= 1):
        raise ValueError(f"per-tick decay must be in (0, 1) for NIR, got {a.ravel()[:4].tolist()}")
    if convention == "snntorch":
        return _snntorch_tau(alpha32).astype(np.float64)
    if integration_tau is not None:
        return integration_tau  # same discretisation on both sides: the time constant as it is
    if convention == "rockpool":
        return -dt / np.log(a)
    return dt / (1.0 - a)


def to_nir(model: Any, convention: str = "nir", dt_s: float | None = None, neuron: str = "lif") -> Any:
    """``model`` (:class:`~rtsnn.snn.params.Model` or :class:`~rtsnn.snn.graph.GraphModel`) as a
    ``nir.NIRGraph`` whose numbers ``convention`` reads back as the model's per-tick dynamics.

    ``dt_s`` must equal the model's tick (NIR files carry none; it is recorded in the metadata).
    ``neuron='cubalif'`` writes each ``LIF`` as a ``CubaLIF`` with an instantaneous synapse.
    Spiking nodes with ``reset='subtract'`` or a reset at the next tick are written with
    ``v_reset`` and their rtsnn reset recorded in the graph metadata (NIR cannot express them).
    """
    nir = _nir()
    convention = _check_convention(convention)
    if neuron not in NEURONS:
        raise ValueError(f"neuron must be one of {', '.join(NEURONS)}, got {neuron!r}")
    gm = _as_graph_model(model)
    g = gm.graph
    dt = g.dt_s if dt_s is None else _check_dt(dt_s)
    if not math.isclose(dt, g.dt_s, rel_tol=1e-9):
        raise ValueError(f"dt_s = {dt:g} s differs from the model's tick ({g.dt_s:g} s): the per-tick dynamics "
                         f"are what NIR carries, so export at the model's own tick")
    ref = _ref_dt(convention, dt)
    same_integration = (g.integration == "exact") == (convention == "rockpool") and convention != "snntorch"
    f64 = lambda a: np.ascontiguousarray(np.asarray(a, np.float64))  # noqa: E731
    f32 = lambda a: np.ascontiguousarray(np.asarray(a, _F32))  # noqa: E731
    nodes: dict[str, Any] = {}
    rt_nodes: dict[str, Any] = {}
    for name in g.order():
        node = g.nodes[name]
        kind = node.kind
        if kind == "Input":
            nodes[name] = nir.Input(input_type={"input": np.array(node.shape)})  # type: ignore[attr-defined]
        elif kind == "Output":
            nodes[name] = nir.Output(output_type={"output": np.array(node.shape)})  # type: ignore[attr-defined]
        elif kind == "Linear":
            nodes[name] = nir.Linear(weight=f32(node.weight.T))  # type: ignore[attr-defined]
        elif kind == "Affine":
            nodes[name] = nir.Affine(weight=f32(node.weight.T), bias=f32(node.bias))  # type: ignore[attr-defined]
        elif kind == "ALIF":
            raise ValueError(f"node {name!r}: NIR has no adaptive-threshold neuron (ALIF) and no metadata per node "
                             f"to carry one; export a graph without ALIF (LIF, CubaLIF, IF)")
        elif kind in ("LIF", "CubaLIF", "IF"):
            if np.any(node.refractory_s > 0):  # type: ignore[attr-defined]
                raise ValueError(f"node {name!r}: NIR has no refractory period: refractory_s = "
                                 f"{float(np.max(node.refractory_s)):g} s cannot be exported (allowed: 0)")  # type: ignore[attr-defined]
            nodes[name] = _shaped(nir, _export_neuron(nir, node, g, convention, dt, ref, same_integration, neuron),
                                  _map_shape(g, name))
            rt_nodes[name] = {"spike_if": node.spike_if, "reset_at": node.reset_at,  # type: ignore[attr-defined]
                              "reset": [("subtract", "zero")[int(k)] for k in node.reset]}  # type: ignore[attr-defined]
        elif kind == "LI":
            kappa = _F32(1) * f32(g.decay(node.tau_s))  # type: ignore[attr-defined]
            tau = _tau_for(kappa, dt, convention, node.tau_s if same_integration else None)  # type: ignore[attr-defined]
            _, k = tau_r_to_decay(tau, np.ones_like(tau), dt, convention)
            nodes[name] = _shaped(nir, nir.LI(tau=f32(tau), r=f32(node.gain / k), v_leak=f32(node.v_leak)),  # type: ignore[attr-defined]
                                  _map_shape(g, name))
        elif kind == "Delay":
            nodes[name] = _shaped(nir, nir.Delay(delay=f64(node.steps * dt)), _map_shape(g, name))  # type: ignore[attr-defined]
        elif kind == "Conv2d":
            nodes[name] = nir.Conv2d(input_shape=tuple(node.input_shape[1:]), weight=f32(node.weight),  # type: ignore[attr-defined]
                                     stride=tuple(node.stride), padding=tuple(node.padding),  # type: ignore[attr-defined]
                                     dilation=tuple(node.dilation), groups=int(node.groups),  # type: ignore[attr-defined]
                                     bias=f32(node.bias))  # type: ignore[attr-defined]
            rt_nodes[name] = {"input_shape": list(node.input_shape)}  # type: ignore[attr-defined]
        elif kind in ("SumPool2d", "AvgPool2d"):
            cls = nir.SumPool2d if kind == "SumPool2d" else nir.AvgPool2d
            nodes[name] = cls(kernel_size=np.array(node.kernel_size), stride=np.array(node.stride),  # type: ignore[attr-defined]
                              padding=np.array(node.padding))  # type: ignore[attr-defined]
            rt_nodes[name] = {"input_shape": list(node.input_shape)}  # type: ignore[attr-defined]
        elif kind == "Flatten":
            nodes[name] = nir.Flatten(input_type={"input": np.array(node.input_shape)}, start_dim=0,  # type: ignore[attr-defined]
                                      end_dim=-1)
        else:
            raise ValueError(f"node {name!r}: kind {kind} has no NIR counterpart")
    meta = {"rtsnn.format": FORMAT, "rtsnn.convention": convention, "rtsnn.dt_s": dt,
            "rtsnn.integration": g.integration,
            # JSON strings: HDF5 attributes turn nested lists and dicts into byte arrays
            "rtsnn.nodes": json.dumps(rt_nodes),
            "rtsnn.outputs": json.dumps({"labels": gm.output_labels, "units": gm.output_units})}
    return nir.NIRGraph(nodes=nodes, edges=[tuple(e) for e in g.edges], metadata=meta)


def _map_shape(g: Any, name: str) -> tuple[int, ...]:
    """The (c, h, w) shape of the map feeding element-wise node ``name`` (NIR shapes neuron
    parameters like their input), else its flat size."""
    n = g.nodes[name].output_size()
    for p in g.predecessors(name):
        if not g.is_recurrent(p, name):
            shape = tuple(g.nodes[p].output_shape())
            if len(shape) > 1 and math.prod(shape) == n:
                return shape
    return (n,)


def _shaped(nir: Any, node: Any, shape: tuple[int, ...]) -> Any:
    """``node`` with every per-neuron array reshaped to ``shape`` (a no-op for flat ones)."""
    if len(shape) == 1:
        return node
    kw = {}
    for fld in node.__dataclass_fields__:
        v = getattr(node, fld)
        if isinstance(v, np.ndarray) and v.size == math.prod(shape) and fld not in ("input_type", "output_type"):
            kw[fld] = v.reshape(shape)
        elif fld not in ("input_type", "output_type", "metadata"):
            kw[fld] = v
    return type(node)(**kw)


def _export_neuron(nir: Any, node: Any, g: Any, convention: str, dt: float, ref: float, same_integration: bool,
                   neuron: str) -> Any:
    f32 = lambda a: np.ascontiguousarray(np.asarray(a, _F32))  # noqa: E731
    thr = f32(node.v_th)
    if node.spike_if == ">=":
        thr = np.nextafter(thr, _F32(-np.inf))  # v >= th  <=>  v > nextafter(th, -inf) for float32 v
    common = dict(v_threshold=thr, v_reset=f32(node.v_reset))
    if node.kind == "IF":
        return nir.IF(r=f32(node.gain), **common)
    alpha = f32(g.decay(node.tau_mem_s))
    tau = _tau_for(alpha, dt, convention, node.tau_mem_s if same_integration else None)
    _, k = tau_r_to_decay(tau, np.ones_like(tau), dt, convention)
    r = np.asarray(node.gain, np.float64) / k
    if node.kind == "LIF" and neuron == "lif":
        return nir.LIF(tau=f32(tau), r=f32(r), v_leak=f32(node.v_leak), **common)
    if node.kind == "LIF":  # neuron='cubalif': an instantaneous synapse (decay 0)
        tau_syn = np.full(node.n, ref if convention != "rockpool" else 1e-9 * dt)
        if convention == "rockpool":
            raise ValueError(f"node {node.name!r}: neuron='cubalif' needs a synaptic decay of 0, which the rockpool "
                             f"convention's exp(-dt/tau) cannot give; use snntorch, norse or nir")
    else:
        a_syn = f32(g.decay(node.tau_syn_s))
        if np.any(a_syn <= 0):
            tau_syn = np.where(a_syn <= 0, ref, 0.0)
            pos = a_syn > 0
            if np.any(pos):
                tau_syn[pos] = _tau_for(a_syn[pos], dt, convention, None)
            if convention == "rockpool":
                raise ValueError(f"node {node.name!r}: a synaptic decay of 0 has no rockpool time constant")
        else:
            tau_syn = _tau_for(a_syn, dt, convention, node.tau_syn_s if same_integration else None)
    _, k_syn = tau_r_to_decay(tau_syn, np.ones_like(tau_syn), dt, convention)
    w_in = 1.0 / k_syn  # the synaptic current jumps by the input: i = decay i + I
    if convention == "snntorch":
        w_in = tau_syn / ref
    return nir.CubaLIF(tau_syn=f32(tau_syn), tau_mem=f32(tau), r=f32(r), v_leak=f32(node.v_leak), w_in=f32(w_in),
                       **common)


# ---------------------------------------------------------------------------------------------
# import


def _flatten(nir: Any, graph: Any, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]], str, str]:
    """Inline nested NIRGraph nodes (snnTorch wraps recurrent layers in sub-graphs); returns the
    nodes, the edges and the names of the graph's Input and Output."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    ports: dict[str, tuple[list[str], list[str]]] = {}  # sub-graph -> (its input's targets, its output's sources)
    raw_nodes = getattr(graph, "nodes", None)
    raw_edges = getattr(graph, "edges", None)
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        raise ValueError(f"NIR graph {prefix.rstrip('/') or '(top)'}: has no nodes")
    if not isinstance(raw_edges, (list, tuple)):
        raise ValueError(f"NIR graph {prefix.rstrip('/') or '(top)'}: edges must be a list of pairs")
    inputs = [k for k, v in raw_nodes.items() if isinstance(v, nir.Input)]
    outputs = [k for k, v in raw_nodes.items() if isinstance(v, nir.Output)]
    for key, node in raw_nodes.items():
        name = f"{prefix}{key}"
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges, sub_in, sub_out = _flatten(nir, node, f"{name}/")
            firsts = [b for a, b in sub_edges if a == sub_in]
            lasts = [a for a, b in sub_edges if b == sub_out]
            sub_edges = [(a, b) for a, b in sub_edges if a != sub_in and b != sub_out]
            nodes.update({k: v for k, v in sub_nodes.items() if k not in (sub_in, sub_out)})
            edges += sub_edges
            ports[name] = (firsts, lasts)
        else:
            nodes[name] = node
    for e in raw_edges:
        if isinstance(e, (str, bytes)) or len(e) != 2:
            raise ValueError(f"NIR edge {e!r}: must be a pair of node names")
        a, b = (f"{prefix}{x}" for x in e)
        for end in (a, b):
            if end not in nodes and end not in ports:
                raise ValueError(f"NIR edge ({e[0]!r}, {e[1]!r}): no node named {end[len(prefix):]!r}")
        srcs = ports[a][1] if a in ports else [a]
        dsts = ports[b][0] if b in ports else [b]
        edges += [(s, d) for s in srcs for d in dsts]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"NIR graph {prefix.rstrip('/') or '(top)'}: needs one Input and one Output node, got "
                         f"inputs {inputs} and outputs {outputs}")
    return nodes, list(dict.fromkeys(edges)), f"{prefix}{inputs[0]}", f"{prefix}{outputs[0]}"


def _arr(name: str, fld: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"NIR node {name!r}: {fld}: must be numeric ({err})") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"NIR node {name!r}: {fld}: must be finite, got NaN or inf")
    return arr


def _vec(name: str, fld: str, value: Any, n: int) -> np.ndarray:
    arr = _arr(name, fld, value).ravel()
    if arr.size == 1:
        return np.full(n, arr[0])
    if arr.size != n:
        raise ValueError(f"NIR node {name!r}: {fld}: has {arr.size} values, the node has {n} neurons")
    return arr


def _snap_unit(gain: np.ndarray) -> np.ndarray:
    return np.where(np.abs(gain - 1.0) <= _UNIT_GAIN_RTOL, 1.0, gain)


def _shape_of(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, dict):
        if len(value) != 1:
            return None
        value = next(iter(value.values()))
    if value is None:
        return None
    try:
        shape = tuple(int(d) for d in np.asarray(value).ravel())
    except (TypeError, ValueError):
        return None
    return shape or None


def _node_size(nir: Any, name: str, node: Any) -> int | None:
    """Neurons in ``node`` when its own parameters say (arrays with more than one value)."""
    fields = {nir.LIF: "v_threshold", nir.CubaLIF: "v_threshold", nir.IF: "v_threshold", nir.LI: "tau",
              nir.Delay: "delay"}
    fld = fields.get(type(node))
    if fld is None:
        return None
    arr = _arr(name, fld, getattr(node, fld))
    return int(arr.size) if arr.size > 1 else None


SUPPORTED = ("Input", "Output", "Linear", "Affine", "LIF", "CubaLIF", "IF", "LI", "Delay", "Conv2d", "SumPool2d",
             "AvgPool2d", "Flatten")


def from_nir(graph: Any, convention: str | None = None, dt_s: float | None = None,
             reset: str | None = None) -> tuple[Any, list[str]]:
    """A :class:`~rtsnn.snn.graph.GraphModel` from a NIR graph; returns ``(model, notes)`` with
    ``notes`` listing each assumption made.

    ``convention`` (``'snntorch'``, ``'norse'``, ``'nir'``, ``'rockpool'``) and ``dt_s`` (the tick)
    are required unless the graph's ``rtsnn.*`` metadata names them; nothing is guessed.
    ``reset``: ``None`` (the file's: NIR's reset to ``v_reset``, or rtsnn's recorded reset),
    ``'zero'`` or ``'subtract'`` for every spiking node (snnTorch's export drops its
    ``reset_mechanism``)."""
    nir = _nir()
    from rtsnn.snn import nodes as N
    from rtsnn.snn.graph import Graph, GraphModel

    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"from_nir needs a nir.NIRGraph, got {type(graph).__name__}")
    meta = dict(getattr(graph, "metadata", None) or {})
    by_rtsnn = "rtsnn.format" in meta
    if convention is None:
        if "rtsnn.convention" not in meta:
            raise ValueError("this NIR graph has no rtsnn metadata: pass convention= one of "
                             f"{', '.join(CONVENTIONS)} (the library that wrote it)")
        convention = str(meta["rtsnn.convention"])
    convention = _check_convention(convention)
    if dt_s is None:
        if "rtsnn.dt_s" not in meta:
            raise ValueError("this NIR graph has no rtsnn metadata: pass dt_s (the tick, in seconds; NIR files "
                             "carry none)")
        dt_s = meta["rtsnn.dt_s"]
    dt = _check_dt(dt_s)
    if reset is not None and reset not in RESET_OVERRIDES:
        raise ValueError(f"reset must be one of {', '.join(RESET_OVERRIDES)} or None, got {reset!r}")
    try:
        rt_nodes = json.loads(str(meta.get("rtsnn.nodes", "{}"))) if by_rtsnn else {}
        outs_meta = json.loads(str(meta["rtsnn.outputs"])) if "rtsnn.outputs" in meta else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"NIR graph metadata rtsnn.nodes / rtsnn.outputs: not JSON ({err})") from None
    if not isinstance(rt_nodes, dict) or not isinstance(outs_meta, dict):
        raise ValueError("NIR graph metadata rtsnn.nodes / rtsnn.outputs: must be JSON objects")
    integration = str(meta.get("rtsnn.integration", "exact" if convention == "rockpool" else "euler"))
    if integration not in ("exact", "euler"):
        raise ValueError(f"NIR graph metadata rtsnn.integration: must be exact or euler, got {integration!r}")
    norse_quirks = convention == "norse" and not by_rtsnn
    notes: list[str] = []

    nodes, edges, in_name, out_name = _flatten(nir, graph)
    for name, node in nodes.items():
        if type(node).__name__ not in SUPPORTED or not isinstance(node, getattr(nir, type(node).__name__)):
            raise ValueError(f"NIR node {name!r}: kind {type(node).__name__} has no rtsnn counterpart (supported: "
                             f"{', '.join(SUPPORTED)})")
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)
    # depth-first from the input: evaluation order and the nodes on a cycle (recurrent)
    order, on_cycle = _walk(in_name, succ)
    unreached = [n for n in nodes if n not in set(order)]
    if unreached:
        raise ValueError(f"NIR node {unreached[0]!r}: not reachable from the input {in_name!r}")

    def to_tau_s(decay: np.ndarray, name: str, fld: str) -> np.ndarray:
        d = np.asarray(decay, np.float64)
        if np.any(d <= 0) or np.any(d >= 1):
            bad = float(d.ravel()[np.flatnonzero((d <= 0) | (d >= 1))[0]])
            raise ValueError(f"NIR node {name!r}: {fld} gives a per-tick decay of {bad:g} under the {convention} "
                             f"convention at dt_s = {dt:g} s (allowed: in (0, 1); is dt_s right?)")
        return -dt / np.log(d) if integration == "exact" else dt / (1.0 - d)

    def decay_gain(name: str, fld: str, tau: Any, r: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        t = _vec(name, fld, tau, n)
        if norse_quirks:
            t = t / dt  # Norse's to_nir writes dt / tau_inv = dt * tau
        if np.any(t <= 0):
            raise ValueError(f"NIR node {name!r}: {fld}: must be > 0, got {float(t.min()):g}")
        d, g = tau_r_to_decay(t, _vec(name, "r", r, n), dt, convention)
        if convention == "snntorch":
            # rtsnn's own files: invert snnTorch's importer exactly (float32 1 - 1e-4/tau);
            # snnTorch's exports: the float32 beta its exporter started from
            d = (_F32(1) - (_F32(SNNTORCH_DT_S) / t.astype(_F32))).astype(np.float64) if by_rtsnn \
                else _snntorch_beta(t)
        return d, _snap_unit(g)

    shapes: dict[str, tuple[int, ...]] = {}
    out: dict[str, Any] = {}
    for name in order:
        node = nodes[name]
        kind = type(node).__name__
        ins = [p for p in pred[name] if p in shapes]
        in_shape = shapes[ins[0]] if ins else None
        n = _node_size(nir, name, node) or (math.prod(in_shape) if in_shape else None)
        rt = rt_nodes.get(name, {}) if isinstance(rt_nodes.get(name, {}), dict) else {}
        try:
            if kind == "Input":
                shape = _shape_of(node.input_type)
                if shape is None:
                    raise ValueError(f"NIR node {name!r}: input_type: needs one shape, got {node.input_type!r}")
                if len(shape) in (2, 4) and shape[0] == 1 and not by_rtsnn:
                    shape = shape[1:]  # a batch dimension (nirtorch's tracer keeps it)
                rn = N.Input(shape=shape)
            elif kind == "Output":
                rn = N.Output(shape=(int(math.prod(in_shape)),) if in_shape else _shape_of(node.output_type) or (1,))
                if by_rtsnn and _shape_of(node.output_type) and math.prod(_shape_of(node.output_type)) == rn.input_size():
                    rn = N.Output(shape=_shape_of(node.output_type))
            elif kind in ("Linear", "Affine"):
                w = _arr(name, "weight", node.weight)
                if w.ndim != 2:
                    raise ValueError(f"NIR node {name!r}: weight: must be 2-D, got shape {list(w.shape)}")
                rn = (N.Linear(weight=w.T) if kind == "Linear"
                      else N.Affine(weight=w.T, bias=_arr(name, "bias", node.bias).ravel()))
            elif kind in ("LIF", "CubaLIF", "IF"):
                if n is None:
                    raise ValueError(f"NIR node {name!r}: cannot tell how many neurons it has")
                rn = _import_neuron(N, nir, name, node, n, convention, dt, reset, rt, name in on_cycle, decay_gain,
                                    to_tau_s, norse_quirks, integration, notes)
            elif kind == "LI":
                if n is None:
                    raise ValueError(f"NIR node {name!r}: cannot tell how many neurons it has")
                d, g = decay_gain(name, "tau", node.tau, node.r, n)
                rn = N.LI(tau_s=to_tau_s(d, name, "tau"), gain=g, v_leak=_vec(name, "v_leak", node.v_leak, n), n=n)
            elif kind == "Delay":
                if n is None:
                    raise ValueError(f"NIR node {name!r}: cannot tell how many elements it has")
                steps = _vec(name, "delay", node.delay, n) / dt
                if np.any(np.abs(steps - np.round(steps)) > 1e-6 * np.maximum(1.0, steps)):
                    raise ValueError(f"NIR node {name!r}: delay: {float(steps.ravel()[0]) * dt:g} s is not a whole "
                                     f"number of ticks of {dt:g} s")
                rn = N.Delay(steps=np.round(steps).astype(np.int64), n=n)
            elif kind == "Conv2d":
                w = _arr(name, "weight", node.weight)
                if w.ndim != 4:
                    raise ValueError(f"NIR node {name!r}: weight: must be 4-D, got shape {list(w.shape)}")
                ishape = tuple(rt.get("input_shape") or ())
                if len(ishape) != 3:
                    hw = _shape_of(node.input_shape)
                    if hw is None and in_shape is not None and len(in_shape) == 3:
                        hw = in_shape[1:]
                    if hw is None or len(hw) != 2:
                        raise ValueError(f"NIR node {name!r}: input_shape: needs (height, width), got "
                                         f"{node.input_shape!r}")
                    ishape = (int(w.shape[1]) * int(node.groups), *hw)
                if isinstance(node.padding, str):
                    raise ValueError(f"NIR node {name!r}: padding: {node.padding!r} is not supported (give pixels)")
                rn = N.Conv2d(weight=w, bias=_arr(name, "bias", node.bias).ravel(), input_shape=ishape,
                              stride=_pair_of(node.stride), padding=_pair_of(node.padding),
                              dilation=_pair_of(node.dilation), groups=int(node.groups))
            elif kind in ("SumPool2d", "AvgPool2d"):
                ishape = tuple(rt.get("input_shape") or (in_shape or ()))
                if len(ishape) != 3:
                    raise ValueError(f"NIR node {name!r}: needs a (channels, height, width) input, got "
                                     f"{list(ishape)}")
                cls = N.SumPool2d if kind == "SumPool2d" else N.AvgPool2d
                rn = cls(kernel_size=_pair_of(node.kernel_size), stride=_pair_of(node.stride),
                         padding=_pair_of(node.padding), input_shape=ishape)
            else:  # Flatten
                ishape = in_shape or _shape_of(node.input_type)
                if ishape is None:
                    raise ValueError(f"NIR node {name!r}: input_type: unknown input shape")
                rn = N.Flatten(input_shape=ishape)
        except N.GraphError as err:
            raise ValueError(f"NIR node {name!r}: {err}") from None
        out[name] = rn
        shapes[name] = rn.output_shape() if kind != "Flatten" else (rn.output_size(),)
    labels = outs_meta.get("labels") if isinstance(outs_meta.get("labels"), list) else None
    units = outs_meta.get("units") if isinstance(outs_meta.get("units"), list) else None
    try:
        g = Graph(out, edges, dt_s=dt, integration=integration)
        n_out = g.n_out
        model = GraphModel(g, provenance={"method": "nir_import", "convention": convention, "dt_s": dt,
                                          "notes": list(notes)},
                           output_labels=labels if labels and len(labels) == n_out else None,
                           output_units=units if units and len(units) == n_out else None)
    except N.GraphError as err:
        raise ValueError(f"NIR graph: {err}") from None
    return model, notes


def _pair_of(value: Any) -> tuple[int, int]:
    arr = np.asarray(value).ravel()
    if arr.size == 1:
        return int(arr[0]), int(arr[0])
    if arr.size != 2:
        raise ValueError(f"expected an int or a pair, got {value!r}")
    return int(arr[0]), int(arr[1])


def _walk(start: str, succ: dict[str, list[str]]) -> tuple[list[str], set[str]]:
    """Reverse post-order from ``start`` (back edges ignored) and the nodes on any cycle."""
    state: dict[str, int] = {start: 1}
    post: list[str] = []
    path: list[str] = [start]
    on_cycle: set[str] = set()
    work: list[tuple[str, int]] = [(start, 0)]
    while work:
        node, k = work[-1]
        if k < len(succ[node]):
            work[-1] = (node, k + 1)
            nxt = succ[node][k]
            st = state.get(nxt, 0)
            if st == 0:
                state[nxt] = 1
                path.append(nxt)
                work.append((nxt, 0))
            elif st == 1:
                on_cycle.update(path[path.index(nxt):])
        else:
            work.pop()
            path.pop()
            state[node] = 2
            post.append(node)
    return post[::-1], on_cycle


def _import_neuron(N: Any, nir: Any, name: str, node: Any, n: int, convention: str, dt: float, reset: str | None,
                   rt: dict[str, Any], recurrent: bool, decay_gain: Any, to_tau_s: Any, norse_quirks: bool,
                   integration: str, notes: list[str]) -> Any:
    thr = _vec(name, "v_threshold", node.v_threshold, n)
    v_reset = _vec(name, "v_reset", node.v_reset if node.v_reset is not None else 0.0, n)
    spike_if = ">"
    if rt.get("spike_if") == ">=":  # written by rtsnn from a '>=' node: undo the nextafter
        thr = np.nextafter(thr.astype(_F32), _F32(np.inf)).astype(np.float64)
        spike_if = ">="
    if reset is not None:
        mode = [reset] * n
    elif isinstance(rt.get("reset"), list) and len(rt["reset"]) == n:
        mode = [str(m) for m in rt["reset"]]
    else:
        mode = ["zero"] * n
    cuba = isinstance(node, nir.CubaLIF)
    if rt.get("reset_at") in N.RESET_AT:
        reset_at = str(rt["reset_at"])
    elif convention == "snntorch":
        # snnTorch's modules reset at the next tick (reset_delay=True); Leaky's reset to zero
        # zeroes the previous membrane, Synaptic/RLeaky/RSynaptic's the whole new one
        reset_at = "next_clamp" if (cuba or recurrent) else "next"
    else:
        reset_at = "now"
    common = dict(v_th=thr, v_reset=v_reset, reset=mode, reset_at=reset_at, spike_if=spike_if, n=n)
    if isinstance(node, nir.IF):
        return N.IF(gain=_vec(name, "r", node.r, n), **common)
    v_leak = _vec(name, "v_leak", node.v_leak, n)
    if not cuba:
        d, g = decay_gain(name, "tau", node.tau, node.r, n)
        return N.LIF(tau_mem_s=to_tau_s(d, name, "tau"), gain=g, v_leak=v_leak, **common)
    d_mem, g_mem = decay_gain(name, "tau_mem", node.tau_mem, node.r, n)
    w_in = _vec(name, "w_in", node.w_in, n)
    if norse_quirks:  # Norse's LIFCell: i = i + I (the input is not scaled by dt/tau_syn)
        d_syn, _ = decay_gain(name, "tau_syn", node.tau_syn, np.ones(n), n)
        g_syn = w_in
    else:
        d_syn, g_syn = decay_gain(name, "tau_syn", node.tau_syn, w_in, n)
    gain = _snap_unit(g_mem * g_syn)  # i_rtsnn = i_nir / g_syn: the synaptic gain moves onto the membrane's
    tau_syn_s = np.empty(n)
    pos = d_syn > 0
    if np.any(pos):
        tau_syn_s[pos] = to_tau_s(d_syn[pos], name, "tau_syn")
    if np.any(~pos):
        if np.any(d_syn[~pos] < -1e-6):
            raise ValueError(f"NIR node {name!r}: tau_syn gives a negative synaptic decay under the {convention} "
                             f"convention at dt_s = {dt:g} s (allowed: tau_syn >= the convention's step)")
        notes.append(f"{name}: synaptic decay 0 (tau_syn = one step): an instantaneous synapse")
        # decay 0: 1 - dt/dt under euler; exp(-1000) rounds to 0 in float32 under exact
        tau_syn_s[~pos] = dt if integration == "euler" else dt * 1e-3
    return N.CubaLIF(tau_mem_s=to_tau_s(d_mem, name, "tau_mem"), tau_syn_s=tau_syn_s, gain=gain, v_leak=v_leak,
                     **common)


# ---------------------------------------------------------------------------------------------
# files


def save_nir(model: Any, path: str | Path, **kw: Any) -> None:
    """:func:`to_nir` then ``nir.write`` (HDF5)."""
    _nir().write(str(path), to_nir(model, **kw))


def load_nir(path: str | Path, convention: str | None = None, dt_s: float | None = None,
             reset: str | None = None) -> tuple[Any, list[str]]:
    """``nir.read`` then :func:`from_nir`. Returns ``(model, notes)``: a
    :class:`~rtsnn.snn.params.Model` when the graph is the single-layer pattern, else a
    :class:`~rtsnn.snn.graph.GraphModel` (as :func:`rtsnn.snn.load_model` does). A file that
    cannot be read raises a one-line :class:`~rtsnn.snn.model_file.ModelFileError`."""
    from rtsnn.snn.graph import model_from_graph
    from rtsnn.snn.model_file import ModelFileError

    nir = _nir()
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"NIR file {str(p)!r} does not exist")
    try:
        graph = nir.read(str(p))
    except Exception as err:  # noqa: BLE001 - h5py/nir raise many kinds; the user gets one line
        msg = " ".join(str(err).split())[:200] or type(err).__name__
        raise ModelFileError(f"NIR file {str(p)!r}: cannot be read as NIR ({type(err).__name__}: {msg})") from None
    try:
        gm, notes = from_nir(graph, convention=convention, dt_s=dt_s, reset=reset)
    except ValueError as err:
        raise ModelFileError(f"NIR file {str(p)!r}: {' '.join(str(err).split())}") from None
    except Exception as err:  # noqa: BLE001 - a malformed node (missing field, odd type)
        raise ModelFileError(f"NIR file {str(p)!r}: malformed graph ({type(err).__name__}: "
                             f"{' '.join(str(err).split())[:200]})") from None
    spiking = [v for v in gm.graph.nodes.values() if v.spiking]
    single = model_from_graph(gm) if all(v.spike_if == ">=" for v in spiking) else None
    return (single if single is not None else gm), notes
