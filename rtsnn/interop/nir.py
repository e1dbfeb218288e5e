"""Export / import rtsnn models as NIR graphs (``pip install nir``).

Graph written by :func:`to_nir`::

    input -> w_in (Linear, weight = w_in^T) -> lif (LIF | CubaLIF) -> output_spikes
                                              lif <-> w_rec (Linear, w_rec^T)     (recurrence)
                                              lif -> w_out (Linear, w_out^T) -> li (LI) -> b_out (Affine I, b_out) -> output

NIR's neurons are continuous (``tau dv/dt = (v_leak - v) + r I``); rtsnn's are discrete
(``v[t] = alpha v[t-1] + I[t] - v_th z[t-1]``, REFERENCES section 1). A *convention* says
how the two correspond, and the importer must know which one a file used:

* ``'snntorch'`` (forward Euler): ``alpha = 1 - dt/tau``, unit input gain when ``r = tau/dt``;
  exported as ``tau = dt/(1-alpha)``, ``r = tau/dt``. snnTorch's importer fixes ``dt = 1e-4`` s,
  so export with ``dt_s=1e-4`` for snnTorch (the discrete dynamics are what must match).
* ``'rockpool'`` (exact exponential): ``alpha = exp(-dt/tau)``, unit gain when
  ``r = tau e^{-dt/tau} / dt``; exported as ``tau = tau_mem_s`` and that ``r``.

On import any other ``r`` becomes an input gain ``g`` (``g = r dt/tau`` for snnTorch,
``r dt/(tau e^{-dt/tau})`` for Rockpool) folded exactly into the incoming weights.
CubaLIF is accepted when its synaptic current is instantaneous under the convention
(decay 0, i.e. ``tau_syn = dt`` for snnTorch) -- rtsnn has no synaptic state -- and
exported that way with ``neuron='cubalif'``.

Threshold: NIR (and snnTorch) spike when ``v > v_threshold`` (strict); rtsnn when
``v >= v_th``. For float32 membranes ``v >= th`` is exactly ``v > nextafter(th, -inf)``,
so the exporter writes ``v_threshold = nextafter(float32(v_th), -inf)`` and the importer
inverts it. NIR's LIF resets to ``v_reset``; rtsnn resets by subtraction, which NIR cannot
express: the exporter writes ``v_reset = 0`` and records ``rtsnn.reset = 'subtract'`` in the
graph metadata (a peer must be set to subtractive reset to match spikes). ALIF adaptation
and refractory periods have no NIR counterpart and are refused on export.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rtsnn.extras import require
from rtsnn.snn.params import Model, NeuronSettings, Weights

CONVENTIONS = ("snntorch", "rockpool")
NEURONS = ("lif", "cubalif")
FORMAT = 1


def _nir() -> Any:
    return require("nir", "NIR import and export")


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")


def decay_to_tau_r(alpha: float, dt_s: float, convention: str) -> tuple[float, float]:
    """``(tau, r)`` that a convention reads back as per-step decay ``alpha`` with unit input gain."""
    _check_convention(convention)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"decay alpha must be in (0, 1), got {alpha}")
    if convention == "snntorch":
        tau = dt_s / (1.0 - alpha)
        return tau, tau / dt_s
    tau = -dt_s / math.log(alpha)
    return tau, tau * math.exp(-dt_s / tau) / dt_s


def tau_r_to_decay(tau: np.ndarray, r: np.ndarray, dt_s: float, convention: str) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha, gain)`` of NIR ``tau``, ``r`` under a convention (inverse of :func:`decay_to_tau_r`)."""
    _check_convention(convention)
    tau = np.asarray(tau, np.float64)
    r = np.asarray(r, np.float64)
    if np.any(~np.isfinite(tau)) or np.any(tau <= 0):
        raise ValueError(f"NIR tau must be finite and > 0, got {tau.ravel()[:4].tolist()}")
    if convention == "snntorch":
        return 1.0 - dt_s / tau, r * dt_s / tau
    alpha = np.exp(-dt_s / tau)
    return alpha, r * dt_s / (tau * alpha)


def _uniform(name: str, arr: Any) -> float:
    a = np.asarray(arr, np.float64).ravel()
    if a.size == 0 or not np.allclose(a, a[0], rtol=1e-6, atol=0):
        raise ValueError(f"{name} must be the same for every neuron (rtsnn settings are shared), got "
                         f"{a[:4].tolist()}{' ...' if a.size > 4 else ''}")
    return float(a[0])


def to_nir(model: Model, convention: str = "snntorch", dt_s: float | None = None, neuron: str = "lif",
           include_readout: bool = True) -> Any:
    """The model as a ``nir.NIRGraph`` (see the module docstring). ``dt_s`` (default: the
    model's) is the step the convention's time constants refer to."""
    nir = _nir()
    _check_convention(convention)
    if neuron not in NEURONS:
        raise ValueError(f"neuron must be one of {', '.join(NEURONS)}, got {neuron!r}")
    s, w = model.settings, model.weights
    if s.adaptive and s.beta_adapt > 0:
        raise ValueError(f"NIR has no adaptive-threshold neuron: model 'alif' with beta_adapt = {s.beta_adapt} "
                         f"cannot be exported (allowed: 'lif', or beta_adapt = 0)")
    if s.n_ref > 0:
        raise ValueError(f"NIR has no refractory period: refractory_s = {s.refractory_s} cannot be exported "
                         f"(allowed: 0)")
    dt = float(s.dt_s if dt_s is None else dt_s)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt_s must be a finite number > 0, got {dt_s!r}")
    n_rec, n_out = model.n_rec, model.n_out
    f32 = np.float32
    tau, r = decay_to_tau_r(float(f32(s.alpha)), dt, convention)
    thr = np.nextafter(f32(s.v_th), f32(-np.inf))
    ones = np.ones(n_rec, f32)
    common = dict(r=(ones * r).astype(np.float64), v_leak=np.zeros(n_rec), v_threshold=np.full(n_rec, thr, f32),
                  v_reset=np.zeros(n_rec))
    if neuron == "lif":
        lif = nir.LIF(tau=np.full(n_rec, tau), **common)
    else:
        if convention == "snntorch":
            tau_syn, w_syn = dt, 1.0  # syn = 0*syn + I: instantaneous
        else:
            raise ValueError("neuron='cubalif' is exported only under the snntorch convention (an instantaneous "
                             "synapse needs tau_syn -> 0 under rockpool's exponential one)")
        lif = nir.CubaLIF(tau_syn=np.full(n_rec, tau_syn), tau_mem=np.full(n_rec, tau), w_in=np.full(n_rec, w_syn),
                          **common)
    nodes: dict[str, Any] = {
        "input": nir.Input(input_type={"input": np.array([model.n_in])}),
        "w_in": nir.Linear(weight=w.w_in.T.astype(np.float64)),
        "lif": lif,
    }
    edges = [("input", "w_in"), ("w_in", "lif")]
    if np.any(w.w_rec):  # a feed-forward model gets no recurrent node (and no cycle)
        nodes["w_rec"] = nir.Linear(weight=w.w_rec.T.astype(np.float64))
        edges += [("lif", "w_rec"), ("w_rec", "lif")]
    if include_readout:
        tau_o, r_o = decay_to_tau_r(float(f32(s.kappa)), dt, convention)
        nodes["w_out"] = nir.Linear(weight=w.w_out.T.astype(np.float64))
        nodes["li"] = nir.LI(tau=np.full(n_out, tau_o), r=np.full(n_out, r_o), v_leak=np.zeros(n_out))
        nodes["b_out"] = nir.Affine(weight=np.eye(n_out), bias=w.b_out.astype(np.float64))
        nodes["output"] = nir.Output(output_type={"output": np.array([n_out])})
        edges += [("lif", "w_out"), ("w_out", "li"), ("li", "b_out"), ("b_out", "output")]
    else:
        nodes["output"] = nir.Output(output_type={"output": np.array([n_rec])})
        edges.append(("lif", "output"))
    meta = {"rtsnn.format": FORMAT, "rtsnn.convention": convention, "rtsnn.dt_s": dt,
            "rtsnn.model_dt_s": float(s.dt_s), "rtsnn.reset": "subtract", "rtsnn.threshold": "nextafter_down",
            # labels as one JSON string: HDF5 attributes turn lists into byte arrays
            "rtsnn.outputs": json.dumps({"labels": model.output_labels, "units": model.output_units})}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def _flatten(nir: Any, graph: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Inline nested NIRGraph nodes (snnTorch wraps recurrent layers in sub-graphs)."""
    nodes: dict[str, Any] = {}
    edges = list(graph.edges)
    for key, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[key] = node
            continue
        sub_nodes, sub_edges = _flatten(nir, node)
        ins = [k for k, v in sub_nodes.items() if isinstance(v, nir.Input)]
        outs = [k for k, v in sub_nodes.items() if isinstance(v, nir.Output)]
        name = lambda k: f"{key}/{k}"  # noqa: E731
        for k, v in sub_nodes.items():
            if k not in ins and k not in outs:
                nodes[name(k)] = v
        firsts = [name(b) for a, b in sub_edges if a in ins]
        lasts = [name(a) for a, b in sub_edges if b in outs]
        new_edges = [(name(a), name(b)) for a, b in sub_edges if a not in ins and b not in outs]
        for a, b in edges:
            if b == key:
                new_edges += [(a, f) for f in firsts]
            elif a == key:
                new_edges += [(last, b) for last in lasts]
            else:
                new_edges.append((a, b))
        edges = new_edges
    return nodes, edges


def from_nir(graph: Any, convention: str | None = None, dt_s: float | None = None) -> tuple[Model, list[str]]:
    """A rtsnn Model from a NIR graph of the shape :func:`to_nir` writes (snnTorch's
    sub-graph wrapping of recurrent layers is accepted; ``w_rec``, the readout and the bias
    are optional). ``convention``/``dt_s`` default to the graph's ``rtsnn.*`` metadata and
    are required otherwise. Returns ``(model, notes)``; ``notes`` lists lossy assumptions."""
    nir = _nir()
    meta = dict(getattr(graph, "metadata", {}) or {})
    convention = convention or (str(meta["rtsnn.convention"]) if "rtsnn.convention" in meta else None)
    if convention is None:
        raise ValueError("this NIR graph has no rtsnn metadata: pass convention='snntorch' or 'rockpool'")
    _check_convention(convention)
    dt = dt_s if dt_s is not None else meta.get("rtsnn.dt_s")
    if dt is None:
        raise ValueError("this NIR graph has no rtsnn metadata: pass dt_s (the step its time constants refer to)")
    dt = float(dt)
    model_dt = float(meta.get("rtsnn.model_dt_s", dt))
    notes: list[str] = []
    nodes, edges = _flatten(nir, graph)
    succ: dict[str, list[str]] = {}
    pred: dict[str, list[str]] = {}
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise ValueError(f"NIR edge ({a!r}, {b!r}) names a node that does not exist")
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    neurons = [k for k, v in nodes.items() if isinstance(v, (nir.LIF, nir.CubaLIF))]
    if len(neurons) != 1:
        raise ValueError(f"expected exactly one LIF/CubaLIF population, found {len(neurons)} "
                         f"({', '.join(type(v).__name__ for v in nodes.values())})")
    lk = neurons[0]
    lif = nodes[lk]
    dense = (nir.Linear, nir.Affine)

    def weight(key: str, allow_bias: bool = False) -> np.ndarray:
        n = nodes[key]
        if isinstance(n, nir.Affine) and not allow_bias and np.any(np.asarray(n.bias) != 0):
            raise ValueError(f"NIR node {key!r}: Affine bias into the hidden layer is not supported by rtsnn "
                             f"(allowed: zero bias or Linear)")
        return np.asarray(n.weight, np.float64)

    rec = [k for k in succ.get(lk, []) if isinstance(nodes[k], dense) and lk in succ.get(k, [])]
    into = [k for k in pred.get(lk, []) if isinstance(nodes[k], dense) and k not in rec]
    if len(into) != 1:
        raise ValueError(f"expected one Linear/Affine input projection into {lk!r}, found {len(into)}")
    w_in_t = weight(into[0])
    n_rec, n_in = w_in_t.shape
    w_rec_t = weight(rec[0]) if rec else np.zeros((n_rec, n_rec))
    if isinstance(lif, nir.LIF):
        tau, r = lif.tau, lif.r
    else:
        tau, r = lif.tau_mem, lif.r
        a_syn, _ = tau_r_to_decay(lif.tau_syn, np.ones_like(np.asarray(lif.tau_syn, np.float64)), dt, convention)
        if np.any(np.abs(a_syn) > 1e-6):
            raise ValueError(f"CubaLIF tau_syn = {np.ravel(lif.tau_syn)[:2].tolist()} s gives a synaptic decay of "
                             f"{float(np.max(a_syn)):.3g} per step; rtsnn has no synaptic state (allowed: an "
                             f"instantaneous synapse, tau_syn = dt under the snntorch convention)")
        syn_gain = np.asarray(lif.w_in, np.float64) * (dt / np.asarray(lif.tau_syn, np.float64)
                                                        if convention == "snntorch" else 1.0)
        r = np.asarray(r, np.float64) * syn_gain
        if not np.allclose(np.asarray(lif.r) , np.asarray(lif.tau_mem) / dt):
            notes.append("CubaLIF r != tau_mem/dt: folded into the input weights")
    if np.any(np.asarray(lif.v_leak) != 0):
        raise ValueError(f"NIR {lk!r}: v_leak must be 0 for rtsnn (got {np.ravel(lif.v_leak)[:4].tolist()})")
    alpha, gain = tau_r_to_decay(tau, r, dt, convention)
    alpha_u = _uniform(f"{lk} decay (from tau)", alpha)
    gain = np.broadcast_to(np.asarray(gain, np.float64), (n_rec,))
    if not np.allclose(gain, 1.0, rtol=1e-6):
        notes.append(f"input gain r*dt/tau = {gain[:2].tolist()} folded into w_in and w_rec")
    w_in = (w_in_t * gain[:, None]).T
    w_rec = (w_rec_t * gain[:, None]).T
    thr = _uniform(f"{lk} v_threshold", lif.v_threshold)
    v_th = float(np.nextafter(np.float32(thr), np.float32(np.inf)))  # v > thr  <=>  v >= next float up
    if str(meta.get("rtsnn.reset", "")) != "subtract":
        notes.append("NIR resets to v_reset; rtsnn resets by subtraction (spike times can differ)")
    # readout: lif -> dense -> LI [-> Affine(I, b)] (optional)
    outs = [k for k in succ.get(lk, []) if isinstance(nodes[k], dense) and k not in rec]
    tau_out_s = 20e-3
    if outs:
        w_out = weight(outs[0], allow_bias=True).T
        b_out = (np.asarray(nodes[outs[0]].bias, np.float64) if isinstance(nodes[outs[0]], nir.Affine)
                 else np.zeros(w_out.shape[1]))
        li = [k for k in succ.get(outs[0], []) if isinstance(nodes[k], nir.LI)]
        if li:
            kappa, g_out = tau_r_to_decay(nodes[li[0]].tau, nodes[li[0]].r, dt, convention)
            kappa_u = _uniform(f"{li[0]} decay", kappa)
            w_out = w_out * np.broadcast_to(g_out, (w_out.shape[1],))[None, :]
            tau_out_s = -model_dt / math.log(kappa_u)
            post = [k for k in succ.get(li[0], []) if isinstance(nodes[k], nir.Affine)]
            if post:
                wb = np.asarray(nodes[post[0]].weight, np.float64)
                if not np.allclose(wb, np.eye(wb.shape[0])):
                    raise ValueError(f"NIR node {post[0]!r} after the readout must be an identity Affine (bias only)")
                b_out = b_out + np.asarray(nodes[post[0]].bias, np.float64)
        else:
            notes.append("no LI readout after the output projection: readout tau_out_s set to 20 ms")
    else:
        w_out, b_out = np.zeros((n_rec, 1)), np.zeros(1)
        notes.append("no readout in the graph: w_out is one zero output")
    if np.any(np.diagonal(w_rec)):
        np.fill_diagonal(w_rec, 0.0)
        notes.append("self-connections in w_rec dropped (rtsnn has no autapses)")
    tau_mem_s = -model_dt / math.log(alpha_u)
    settings = NeuronSettings(model="lif", dt_s=model_dt, tau_mem_s=tau_mem_s, v_th=v_th, tau_out_s=tau_out_s)
    labels = units = None
    if "rtsnn.outputs" in meta:
        outs_meta = json.loads(str(meta["rtsnn.outputs"]))
        if len(outs_meta.get("labels") or []) == w_out.shape[1]:
            labels, units = outs_meta["labels"], outs_meta.get("units")
    model = Model(settings, Weights(w_in, w_rec, w_out, b_out),
                  provenance={"method": "nir_import", "convention": convention, "dt_s": dt, "notes": notes},
                  output_labels=list(labels) if labels else None, output_units=list(units) if units else None)
    return model, notes


def save_nir(model: Model, path: str | Path, **kw: Any) -> None:
    """:func:`to_nir` then ``nir.write`` (HDF5)."""
    _nir().write(str(path), to_nir(model, **kw))


def load_nir(path: str | Path, **kw: Any) -> tuple[Model, list[str]]:
    """``nir.read`` then :func:`from_nir`."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"NIR file {str(p)!r} does not exist")
    return from_nir(_nir().read(str(p)), **kw)
