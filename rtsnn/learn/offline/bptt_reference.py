"""Plain-numpy reference of the BPTT engine (float64, one step at a time, whole network).

Same equations as :mod:`rtsnn.learn.offline.bptt_kernels` (see there), written as directly
as possible for tests: forward keeps every state; backward walks t = T-1 .. 0 over all layers
at once, carrying the adjoints of v, a (per layer) and of the readout trace r.
"""

from __future__ import annotations

import numpy as np

from rtsnn.learn.offline.bptt_graph import BpttOptions, compile_graph
from rtsnn.learn.offline.surrogate import surrogate_grad_np, surrogate_id


def forward_reference(graph, params: dict[str, np.ndarray], x: np.ndarray,
                      options: BpttOptions | None = None) -> dict:
    """The layered ``graph`` (:mod:`rtsnn.learn.offline.bptt_graph`; reset by subtraction, a
    single-exponential readout, no delays) run with ``params``: a dict with ``y`` (T, B,
    n_output) and per-layer lists ``v, a, z, m`` of (T, B, n) arrays, plus ``r`` (T, B, n_L)
    when there is a readout."""
    spec = compile_graph(graph, options)
    x = np.asarray(x, dtype=np.float64)
    T, B, _ = x.shape
    L = len(spec.layers)
    rec = {k: [np.zeros((T, B, n)) for n in spec.layers] for k in ("v", "a", "z", "m")}
    v = [np.zeros((B, n)) for n in spec.layers]
    a = [np.zeros((B, n)) for n in spec.layers]
    z = [np.zeros((B, n)) for n in spec.layers]
    refr = [np.zeros((B, n), dtype=np.int64) for n in spec.layers]
    r = np.zeros((B, spec.layers[-1]))
    rs = np.zeros((T, B, spec.layers[-1]))
    for t in range(T):
        h = x[t]
        for l in range(L):
            cur = h @ params[f"w{l}"]
            if spec.recurrent[l]:
                cur = cur + z[l] @ params[f"r{l}"]
            vth = params[f"vth{l}"]
            v_new = params[f"alpha{l}"] * v[l] + cur - vth * z[l]
            a_new = spec.rho * a[l] + z[l] if spec.model == "alif" else np.zeros_like(a[l])
            ok = refr[l] <= 0
            spike = ok & (v_new >= vth + spec.beta * a_new)
            refr[l] = np.where(spike, spec.n_ref, np.maximum(refr[l] - 1, 0))
            v[l], a[l], z[l] = v_new, a_new, spike.astype(np.float64)
            rec["v"][l][t], rec["a"][l][t], rec["z"][l][t], rec["m"][l][t] = v[l], a[l], z[l], ok
            h = z[l]
        if spec.n_out is not None:
            r = params["kappa"][0] * r + h
            rs[t] = r
    out = dict(rec)
    if spec.n_out is not None:
        out["r"] = rs
        out["y"] = rs @ params["w_out"] + params["b_out"]
    else:
        out["y"] = rec["z"][-1].copy()
    return out


def backward_reference(graph, params: dict[str, np.ndarray], x: np.ndarray, fwd: dict,
                       dy: np.ndarray, calib: list[float] | None = None,
                       options: BpttOptions | None = None) -> dict[str, np.ndarray]:
    """Gradients of a loss with ``dL/dy = dy`` (T, B, n_output), float64 (``graph``, ``options``
    as for :func:`forward_reference`)."""
    spec = compile_graph(graph, options)
    x = np.asarray(x, dtype=np.float64)
    T, B, _ = x.shape
    L = len(spec.layers)
    kind, p = surrogate_id(spec.surrogate, spec.surrogate_param)
    calib = calib or [1.0] * L
    g = {k: np.zeros_like(np.asarray(v, dtype=np.float64)) for k, v in params.items()}
    ev = [np.zeros((B, n)) for n in spec.layers]  # adjoint of v[t+1]
    ea = [np.zeros((B, n)) for n in spec.layers]
    er = np.zeros((B, spec.layers[-1]))
    zero = [np.zeros((B, n)) for n in spec.layers]
    for t in range(T - 1, -1, -1):
        if spec.n_out is not None:
            er = dy[t] @ params["w_out"].T + params["kappa"][0] * er
            g["w_out"] += fwd["r"][t].T @ dy[t]
            g["b_out"] += dy[t].sum(axis=0)
            rprev = fwd["r"][t - 1] if t > 0 else np.zeros_like(er)
            g["kappa"][0] += np.sum(er * rprev)
            ext = er.copy()
        else:
            ext = dy[t].copy()
        for l in range(L - 1, -1, -1):
            vth = params[f"vth{l}"]
            ez = ext.copy()
            if spec.recurrent[l]:
                ez += ev[l] @ params[f"r{l}"].T
            if spec.model == "alif":
                ez += ea[l]
            if not spec.detach_reset:
                ez -= vth * ev[l]
            u = fwd["v"][l][t] - (vth + spec.beta * fwd["a"][l][t])
            h = ez * fwd["m"][l][t] * calib[l] * surrogate_grad_np(u, kind, p)
            ev_t = h + params[f"alpha{l}"] * ev[l]
            zprev = fwd["z"][l][t - 1] if t > 0 else zero[l]
            vprev = fwd["v"][l][t - 1] if t > 0 else zero[l]
            inp = x[t] if l == 0 else fwd["z"][l - 1][t]
            g[f"w{l}"] += inp.T @ ev_t
            if spec.recurrent[l]:
                gr = zprev.T @ ev_t
                np.fill_diagonal(gr, 0.0)
                g[f"r{l}"] += gr
            g[f"alpha{l}"] += np.sum(ev_t * vprev, axis=0)
            g[f"vth{l}"] += np.sum(-h - ev_t * zprev, axis=0)
            if spec.model == "alif":
                ea[l] = -spec.beta * h + spec.rho * ea[l]
            ev[l] = ev_t
            ext = ev_t @ params[f"w{l}"].T  # dL/dz[t] of layer l-1 through this layer's input
    return g
