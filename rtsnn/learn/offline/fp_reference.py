"""Plain-numpy references of :mod:`rtsnn.learn.offline.fp_kernels` (for tests, not speed).

The simulator evaluates the membrane from its defining sum over all past spikes (no
incremental state) and finds crossings by plain bisection; the gradient builds the dense
implicit-function system ``L dF/dw = -D`` (L lower triangular, K x K; D, K x |w|) and solves it
with ``numpy.linalg.solve``: O(K^3 + K^2 |w|), independent of the sparse forward substitution.
"""

from __future__ import annotations

import math

import numpy as np


def psp_ref(s: np.ndarray | float, alpha: float, beta: float):
    """h(s) from its definition (limit form when alpha == beta); 0 for s <= 0."""
    s = np.asarray(s, dtype=np.float64)
    out = np.zeros_like(s)
    pos = s > 0
    sp = s[pos]
    if alpha == beta:
        out[pos] = sp * np.exp(-alpha * sp)
    else:
        out[pos] = (np.exp(-alpha * sp) - np.exp(-beta * sp)) / (beta - alpha)
    return out


def psp_dot_ref(s, alpha: float, beta: float):
    """dh/ds from its definition; 0 for s <= 0."""
    s = np.asarray(s, dtype=np.float64)
    out = np.zeros_like(s)
    pos = s > 0
    sp = s[pos]
    if alpha == beta:
        out[pos] = (1.0 - alpha * sp) * np.exp(-alpha * sp)
    else:
        out[pos] = (-alpha * np.exp(-alpha * sp) + beta * np.exp(-beta * sp)) / (beta - alpha)
    return out


class _Layer:
    def __init__(self, w, r):
        self.w = w
        self.r = r


def _potential(t, i, pre_t, pre_src, w, own_t, own_nrn, r, alpha, beta, theta):
    """V_i(t) and I_i(t) from the defining sums over spikes strictly before t."""
    m = pre_t < t
    v = float(np.sum(w[pre_src[m], i] * psp_ref(t - pre_t[m], alpha, beta)))
    cur = float(np.sum(w[pre_src[m], i] * np.exp(-alpha * (t - pre_t[m]))))
    mo = own_t < t
    if r is not None:
        mr = mo & (own_nrn != i)
        v += float(np.sum(r[own_nrn[mr], i] * psp_ref(t - own_t[mr], alpha, beta)))
        cur += float(np.sum(r[own_nrn[mr], i] * np.exp(-alpha * (t - own_t[mr]))))
    ms = mo & (own_nrn == i)
    v -= theta * float(np.sum(np.exp(-beta * (t - own_t[ms]))))
    return v, cur


def _crossing_ref(t0, t1, vfun, v0, i0, alpha, beta, theta):
    """First upward crossing of theta in (t0, t1] by bisection, or None."""
    if v0 >= theta:
        return t0
    if i0 <= 0:
        return None
    # the single extremum of A e^{-alpha s} + B e^{-beta s} (maximum since I0 > 0)
    if alpha == beta:
        s_star = 1.0 / alpha - v0 / i0
    else:
        arg = beta * (i0 - (beta - alpha) * v0) / (alpha * i0)
        if arg <= 0:
            return None
        s_star = math.log(arg) / (beta - alpha)
    if s_star <= 0:
        return None
    hi = min(t0 + s_star, t1)
    if vfun(hi) < theta:
        return None
    lo = t0
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if vfun(mid) < theta:
            lo = mid
        else:
            hi = mid
    return hi


def simulate_layer_ref(pre_t, pre_src, w, r, alpha, beta, theta, t_max, max_per_neuron):
    """One layer: returns (times, neurons) sorted by time (see the kernel's docstring)."""
    pre_t = np.asarray(pre_t, dtype=np.float64)
    pre_src = np.asarray(pre_src, dtype=np.int64)
    n = w.shape[1]
    own_t = np.zeros(0)
    own_nrn = np.zeros(0, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    t_now = 0.0
    ev_times = sorted(set(pre_t[pre_t <= t_max].tolist()))
    while True:
        nxt = [e for e in ev_times if e > t_now]
        horizon = min(nxt[0], t_max) if nxt else t_max
        best, bi = None, -1
        for i in range(n):
            if counts[i] >= max_per_neuron:
                continue
            v0, i0 = _potential(t_now, i, pre_t, pre_src, w, own_t, own_nrn, r, alpha, beta,
                                theta)
            # include events exactly at t_now (they act from t_now on)
            m = pre_t == t_now
            i0 += float(np.sum(w[pre_src[m], i]))
            if r is not None:
                mr = (own_t == t_now) & (own_nrn != i)
                i0 += float(np.sum(r[own_nrn[mr], i]))
            if np.any((own_t == t_now) & (own_nrn == i)):
                v0 -= theta

            def vfun(t, i=i):
                pm = pre_t <= t_now
                om = own_t <= t_now
                return _potential(t, i, pre_t[pm], pre_src[pm], w, own_t[om], own_nrn[om], r,
                                  alpha, beta, theta)[0]

            tc = _crossing_ref(t_now, horizon, vfun, v0, i0, alpha, beta, theta)
            if tc is not None and (best is None or tc < best):
                best, bi = tc, i
        if best is not None:
            own_t = np.append(own_t, best)
            own_nrn = np.append(own_nrn, bi)
            counts[bi] += 1
            t_now = best
            continue
        if not nxt or nxt[0] > t_max:
            break
        t_now = nxt[0]
    return own_t, own_nrn


def simulate_network_ref(in_t, in_src, layers, alpha, beta, theta, t_max, max_hidden, max_out):
    """``layers``: list of (W, R or None). Returns a list of (times, neurons) per layer."""
    out = []
    pre_t, pre_src = np.asarray(in_t, float), np.asarray(in_src, np.int64)
    order = np.argsort(pre_t, kind="stable")
    pre_t, pre_src = pre_t[order], pre_src[order]
    for li, (w, r) in enumerate(layers):
        mpn = max_out if li == len(layers) - 1 else max_hidden
        t, nrn = simulate_layer_ref(pre_t, pre_src, w, r, alpha, beta, theta, t_max, mpn)
        out.append((t, nrn))
        pre_t, pre_src = t, nrn
    return out


def spike_jacobian_ref(in_t, in_src, layers, spikes, alpha, beta, theta, own_coupling=True):
    """Dense dF/dw (K x |w|), spikes in layer order, w flattened as in the kernels
    (per layer W row-major, then R row-major if present). ``own_coupling=False`` drops the
    coupling of a spike to its neuron's earlier spikes, as the public FP code does (for tests
    that show the difference)."""
    offs, p = [], 0
    for w, r in layers:
        ow = p
        p += w.size
        orr = -1
        if r is not None:
            orr = p
            p += r.size
        offs.append((ow, orr))
    gl = []  # (layer, neuron, time)
    for li, (t, nrn) in enumerate(spikes):
        for tt, nn in zip(t, nrn):
            gl.append((li, int(nn), float(tt)))
    k_tot = len(gl)
    L = np.zeros((k_tot, k_tot))
    D = np.zeros((k_tot, p))
    index = {}
    for k, key in enumerate(gl):
        index[(key[0], key[1], key[2])] = k
    in_t = np.asarray(in_t, float)
    in_src = np.asarray(in_src, np.int64)
    for k, (li, i, f) in enumerate(gl):
        w, r = layers[li]
        ow, orr = offs[li]
        n = w.shape[1]
        if li == 0:
            pre = [(tt, int(s), None) for tt, s in zip(in_t, in_src)]
        else:
            pre = [(tt, int(s), index[(li - 1, int(s), float(tt))])
                   for tt, s in zip(*spikes[li - 1])]
        vdot = -beta * theta
        for tg, j, g in pre:
            if tg < f:
                D[k, ow + j * n + i] += psp_ref(f - tg, alpha, beta)
                vdot += w[j, i] * math.exp(-alpha * (f - tg))
                if g is not None:
                    L[k, g] += -w[j, i] * psp_dot_ref(f - tg, alpha, beta)
        for tg, j in zip(*spikes[li]):
            tg, j = float(tg), int(j)
            if tg >= f:
                continue
            g = index[(li, j, tg)]
            if j == i:
                if own_coupling:
                    L[k, g] += -theta * beta * math.exp(-beta * (f - tg))
            elif r is not None:
                D[k, orr + j * n + i] += psp_ref(f - tg, alpha, beta)
                vdot += r[j, i] * math.exp(-alpha * (f - tg))
                L[k, g] += -r[j, i] * psp_dot_ref(f - tg, alpha, beta)
        L[k, k] = vdot
    if k_tot == 0:
        return np.zeros((0, p))
    return np.linalg.solve(L, -D)
