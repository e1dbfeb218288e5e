"""A plain-numpy reference simulator of a model graph, written from the tick's semantics
(:mod:`rtsnn.snn.graph`) and the node equations (:mod:`rtsnn.snn.nodes`), for the tests to
check :class:`rtsnn.snn.graph_network.GraphNetwork` against. Slow and simple on purpose:
no buffers shared between nodes, no fused projections, no in-place inputs.

Per tick ``t``, for each node in :meth:`Graph.order`:

* its input ``I[t]`` is the float32 sum, in edge order starting from zeros, of its sources'
  outputs: this tick's, or the previous tick's for a recurrent edge (zeros at ``t = 0``);
* projections: ``y = W^T I (+ b)``, the rows of ``W`` scaled by ``I[j]`` added in increasing
  ``j`` to zeros (the kernels' dense order), then the bias;
* neurons (LIF / CubaLIF / ALIF / IF), ``LI`` and ``Delay`` follow the equations of
  :mod:`rtsnn.snn.nodes` in float32, with the per-tick decays from the graph's integration
  rule computed in float64 and rounded to float32 (as every engine does).

Per-node arithmetic is the kernels' order, so a node fed by one edge matches the compiled
network bit for bit; a node summing several projections differs by float rounding only (the
compiled network adds the second projection's rows onto the first's instead of adding two
finished sums). Convolution and pooling kinds are not covered here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtsnn.snn.graph import GraphModel
from rtsnn.snn.nodes import GraphError, Node

F32 = np.float32


def _f32(a: Any) -> np.ndarray:
    return np.asarray(np.asarray(a, np.float64), F32)


class _NeuronRef:
    def __init__(self, node: Node, graph: Any):
        n = node.n  # type: ignore[attr-defined]
        kind = node.kind
        alpha64 = np.ones(n) if kind == "IF" else graph.decay(node.tau_mem_s)  # type: ignore[attr-defined]
        self.alpha = _f32(alpha64)
        self.leak = _f32((1.0 - alpha64) * node.v_leak)  # type: ignore[attr-defined]
        self.alpha_syn = _f32(graph.decay(node.tau_syn_s)) if kind == "CubaLIF" else None  # type: ignore[attr-defined]
        self.rho = _f32(graph.decay(node.tau_adapt_s)) if kind == "ALIF" else None  # type: ignore[attr-defined]
        self.beta = _f32(node.beta_adapt) if kind == "ALIF" else None  # type: ignore[attr-defined]
        self.v_th, self.gain = _f32(node.v_th), _f32(node.gain)  # type: ignore[attr-defined]
        self.v_reset = _f32(node.v_reset)  # type: ignore[attr-defined]
        self.zero_reset = np.asarray(node.reset) == 1  # type: ignore[attr-defined]
        self.now = node.reset_at == "now"  # type: ignore[attr-defined]
        self.clamp = node.reset_at == "next_clamp"  # type: ignore[attr-defined]
        self.strict = getattr(node, "spike_if", ">=") == ">"
        self.n_ref = np.rint(node.refractory_s / graph.dt_s).astype(np.int64)  # type: ignore[attr-defined]
        self.v = np.zeros(n, F32)
        self.isyn = np.zeros(n, F32)
        self.a = np.zeros(n, F32)
        self.z = np.zeros(n, F32)
        self.refr = np.zeros(n, np.int64)

    def step(self, current: np.ndarray) -> np.ndarray:
        zp = self.z
        u = current
        if self.alpha_syn is not None:  # CubaLIF: i[t] = alpha_syn i[t-1] + I[t]
            self.isyn = self.alpha_syn * self.isyn + u
            u = self.isyn
        thr = self.v_th
        if self.rho is not None:  # ALIF: a[t] = rho a[t-1] + z[t-1]; threshold v_th + beta a[t]
            self.a = self.rho * self.a + zp
            thr = self.v_th + self.beta * self.a
        if self.now:
            v = self.alpha * self.v + self.leak + self.gain * u
        else:  # the previous tick's spike resets now: subtract v_th, or start from v_reset
            v_sub = self.alpha * self.v + self.leak + self.gain * u - self.v_th * zp
            if self.clamp:  # 'next_clamp': the tick after a spike is v_reset itself, input dropped
                v_zero = np.where(zp != 0, self.v_reset, self.alpha * self.v + self.leak + self.gain * u)
            else:
                v_zero = self.alpha * np.where(zp != 0, self.v_reset, self.v) + self.leak + self.gain * u
            v = np.where(self.zero_reset, v_zero, v_sub)
        spike = ((v > thr) if self.strict else (v >= thr)) & (self.refr <= 0)
        if self.now:  # this tick's spike resets in this tick
            v = np.where(spike, np.where(self.zero_reset, self.v_reset, v - self.v_th), v)
        self.v = v.astype(F32)
        self.refr = np.where(spike, self.n_ref, np.maximum(self.refr - 1, 0))
        self.z = spike.astype(F32)
        return self.z


def reference_run(model: GraphModel, xs: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run ``model`` over inputs ``xs`` (T, n_in) from zero state: ``(y (T, n_out), per-node
    outputs {name: (T, size)})``."""
    g = model.graph
    xs = np.asarray(xs, F32)
    if xs.ndim != 2 or xs.shape[1] != g.n_in:
        raise ValueError(f"xs must be (T, {g.n_in}), got {xs.shape}")
    order = g.order()
    state: dict[str, Any] = {}
    for name in order:
        node = g.nodes[name]
        if node.kind in ("LIF", "CubaLIF", "ALIF", "IF"):
            state[name] = _NeuronRef(node, g)
        elif node.kind == "LI":
            kappa64 = g.decay(node.tau_s)  # type: ignore[attr-defined]
            state[name] = {"kappa": _f32(kappa64), "leak": _f32((1.0 - kappa64) * node.v_leak),  # type: ignore[attr-defined]
                           "gain": _f32(node.gain), "y": np.zeros(node.n, F32)}  # type: ignore[attr-defined]
        elif node.kind == "Delay":
            state[name] = []  # history of inputs, newest last
        elif node.kind in ("Conv2d", "SumPool2d", "AvgPool2d"):
            raise GraphError(f"node {name!r}: kind {node.kind} is not covered by the reference simulator")
    prev = {name: np.zeros(g.nodes[name].output_size(), F32) for name in order}
    record = {name: np.zeros((xs.shape[0], g.nodes[name].output_size()), F32) for name in order}
    for t in range(xs.shape[0]):
        cur: dict[str, np.ndarray] = {}
        for name in order:
            node = g.nodes[name]
            if node.kind == "Input":
                cur[name] = xs[t].copy()
                record[name][t] = cur[name]
                continue
            inp = np.zeros(node.input_size(), F32)
            for src in g.predecessors(name):
                inp = inp + (prev[src] if g.is_recurrent(src, name) else cur[src])
            k = node.kind
            if k in ("Linear", "Affine"):
                w = node.weight  # type: ignore[attr-defined]
                out = np.zeros(w.shape[1], F32)
                for j in range(w.shape[0]):
                    out = out + w[j] * inp[j]
                if k == "Affine":
                    out = out + node.bias  # type: ignore[attr-defined]
            elif k in ("LIF", "CubaLIF", "ALIF", "IF"):
                out = state[name].step(inp).copy()
            elif k == "LI":
                s = state[name]
                s["y"] = s["kappa"] * s["y"] + s["leak"] + s["gain"] * inp
                out = s["y"].copy()
            elif k == "Delay":
                hist = state[name]
                hist.append(inp)
                steps = node.steps  # type: ignore[attr-defined]
                out = np.array([hist[-1 - s][i] if s < len(hist) else 0.0 for i, s in enumerate(steps)], F32)
                del hist[:max(0, len(hist) - int(steps.max()) - 1)]
            elif k in ("Output", "Flatten"):
                out = inp
            else:  # pragma: no cover - every kind is handled above or refused before the loop
                raise GraphError(f"node {name!r}: kind {k} is not covered by the reference simulator")
            cur[name] = out.astype(F32)
            record[name][t] = cur[name]
        prev = cur
    return record[g.output_name].copy(), record
