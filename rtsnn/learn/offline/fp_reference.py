"""Plain-numpy references of :mod:`rtsnn.learn.offline.fp_kernels` (for tests, not speed).

The simulator evaluates the membrane from its defining sum over all past spikes (no
incremental state) and finds crossings by plain bisection; the gradient builds the dense
implicit-function system ``L dF/dw = -D`` (L lower triangular, K x K; D, K x |w|) and solves it
with ``numpy.linalg.solve``: O(K^3 + K^2 |w|), independent of the sparse forward substitution.
"""

from __future__ import annotations

import math

import numpy as np


def _positive_part(s, alpha: float, beta: float, equal, unequal):
    """``equal(s)`` (alpha == beta) or ``unequal(s)`` where s > 0, 0 elsewhere (float64)."""
    s = np.asarray(s, dtype=np.float64)
    out = np.zeros_like(s)
    pos = s > 0
    out[pos] = (equal if alpha == beta else unequal)(s[pos])
    return out


def _h(sp, alpha: float, beta: float):
    """h(s) = (exp(-alpha s) - exp(-beta s)) / (beta - alpha) for alpha != beta."""
    return (np.exp(-alpha * sp) - np.exp(-beta * sp)) / (beta - alpha)


def psp_ref(s: np.ndarray | float, alpha: float, beta: float):
    """h(s) from its definition (limit form when alpha == beta); 0 for s <= 0."""
    return _positive_part(s, alpha, beta, lambda sp: sp * np.exp(-alpha * sp),
                          lambda sp: _h(sp, alpha, beta))


def psp_dot_ref(s, alpha: float, beta: float):
    """dh/ds from its definition; 0 for s <= 0."""
    return _positive_part(
        s, alpha, beta, lambda sp: (1.0 - alpha * sp) * np.exp(-alpha * sp),
        lambda sp: (-alpha * np.exp(-alpha * sp) + beta * np.exp(-beta * sp)) / (beta - alpha))


class _Layer:
    def __init__(self, w, r):
        self.w = w
        self.r = r


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
    """One layer: returns (times, neurons) sorted by time (see the kernel's docstring); the
    per-neuron twin :func:`simulate_layer_pn_ref` with every neuron's alpha, beta, theta equal
    and single spikes (amplitude 1)."""
    n = w.shape[1]
    layer = {"w": w, "r": r, "alpha": np.full(n, float(alpha)), "beta": np.full(n, float(beta)),
             "theta": np.full(n, float(theta))}
    return simulate_layer_pn_ref(pre_t, pre_src, None, layer, t_max, max_per_neuron)


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


# ============================================================================ per-neuron parameters
# Twins of fp_kernels.simulate_network_pn / fp_rows_pn / linear_readout / fp_regression_batch:
# per-neuron alpha, beta, theta, event amplitudes, an optional linear output. A network is a
# list of layer dicts {"w": (n_pre, n_post), "r": (n_post, n_post) or None, "alpha", "beta",
# "theta": (n_post,)} and, for a linear output, "bias" on the last layer.


def psp_dalpha_ref(s, alpha: float, beta: float):
    """dh/dalpha from the closed form (limit ``-s^2 exp(-alpha s) / 2`` at alpha == beta)."""
    return _positive_part(s, alpha, beta, lambda sp: -0.5 * sp * sp * np.exp(-alpha * sp),
                          lambda sp: (_h(sp, alpha, beta) - sp * np.exp(-alpha * sp)) / (beta - alpha))


def psp_dbeta_ref(s, alpha: float, beta: float):
    """dh/dbeta from the closed form (limit ``-s^2 exp(-alpha s) / 2`` at alpha == beta)."""
    return _positive_part(s, alpha, beta, lambda sp: -0.5 * sp * sp * np.exp(-alpha * sp),
                          lambda sp: (sp * np.exp(-beta * sp) - _h(sp, alpha, beta)) / (beta - alpha))


def _potential_pn(t, i, pre_t, pre_src, pre_amp, w, own_t, own_nrn, r, a, b, th):
    """V_i(t), I_i(t) of neuron i (rates a, b, threshold th) from the sums over spikes < t."""
    m = pre_t < t
    wa = w[pre_src[m], i] * pre_amp[m]
    v = float(np.sum(wa * psp_ref(t - pre_t[m], a, b)))
    cur = float(np.sum(wa * np.exp(-a * (t - pre_t[m]))))
    mo = own_t < t
    if r is not None:
        mr = mo & (own_nrn != i)
        v += float(np.sum(r[own_nrn[mr], i] * psp_ref(t - own_t[mr], a, b)))
        cur += float(np.sum(r[own_nrn[mr], i] * np.exp(-a * (t - own_t[mr]))))
    ms = mo & (own_nrn == i)
    v -= th * float(np.sum(np.exp(-b * (t - own_t[ms]))))
    return v, cur


def simulate_layer_pn_ref(pre_t, pre_src, pre_amp, layer, t_max, max_per_neuron):
    """One spiking layer with per-neuron parameters: (times, neurons) sorted by time."""
    pre_t = np.asarray(pre_t, dtype=np.float64)
    pre_src = np.asarray(pre_src, dtype=np.int64)
    pre_amp = np.ones_like(pre_t) if pre_amp is None else np.asarray(pre_amp, np.float64)
    w, r = layer["w"], layer.get("r")
    al, be, th = layer["alpha"], layer["beta"], layer["theta"]
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
            a, b, thi = float(al[i]), float(be[i]), float(th[i])
            v0, i0 = _potential_pn(t_now, i, pre_t, pre_src, pre_amp, w, own_t, own_nrn, r, a, b,
                                   thi)
            m = pre_t == t_now
            i0 += float(np.sum(w[pre_src[m], i] * pre_amp[m]))
            if r is not None:
                mr = (own_t == t_now) & (own_nrn != i)
                i0 += float(np.sum(r[own_nrn[mr], i]))
            if np.any((own_t == t_now) & (own_nrn == i)):
                v0 -= thi

            def vfun(t, i=i, a=a, b=b, thi=thi):
                pm = pre_t <= t_now
                om = own_t <= t_now
                return _potential_pn(t, i, pre_t[pm], pre_src[pm], pre_amp[pm], w, own_t[om],
                                     own_nrn[om], r, a, b, thi)[0]

            tc = _crossing_ref(t_now, horizon, vfun, v0, i0, a, b, thi)
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


def simulate_network_pn_ref(in_t, in_src, in_amp, layers, t_max, max_hidden, linear_out):
    """Spikes per spiking layer (all layers, or all but the last when ``linear_out``)."""
    out = []
    order = np.argsort(np.asarray(in_t, float), kind="stable")
    pre_t = np.asarray(in_t, float)[order]
    pre_src = np.asarray(in_src, np.int64)[order]
    pre_amp = np.asarray(in_amp, float)[order]
    n_spk = len(layers) - 1 if linear_out else len(layers)
    for li in range(n_spk):
        t, nrn = simulate_layer_pn_ref(pre_t, pre_src, pre_amp, layers[li], t_max, max_hidden)
        out.append((t, nrn))
        pre_t, pre_src, pre_amp = t, nrn, np.ones_like(t)
    return out


def param_layout_pn(layers, linear_out):
    """Offsets of the flat vector (as the kernels): per layer (off_w, off_r), then off_th,
    off_al, off_be, off_b (-1 without a linear output), nrn_off, total size."""
    offs, p = [], 0
    for L in layers:
        ow = p
        p += L["w"].size
        orr = -1
        if L.get("r") is not None:
            orr = p
            p += L["r"].size
        offs.append((ow, orr))
    nrn_off = np.concatenate([[0], np.cumsum([L["w"].shape[1] for L in layers])]).astype(int)
    n_all = int(nrn_off[-1])
    off_th, off_al, off_be = p, p + n_all, p + 2 * n_all
    p += 3 * n_all
    off_b = -1
    if linear_out:
        off_b = p
        p += layers[-1]["w"].shape[1]
    return offs, off_th, off_al, off_be, off_b, nrn_off, p


def spike_jacobian_pn_ref(in_t, in_src, in_amp, layers, spikes, linear_out):
    """Dense dF/dp (K x |p|) of every spike of the spiking layers (layer order, time order),
    p laid out as :func:`param_layout_pn`: the implicit-function system ``L dF/dp = -D``
    assembled densely and solved with numpy."""
    offs, off_th, off_al, off_be, off_b, nrn_off, n_p = param_layout_pn(layers, linear_out)
    gl = [(li, int(nn), float(tt)) for li, (t, nrn) in enumerate(spikes) for tt, nn in zip(t, nrn)]
    k_tot = len(gl)
    index = {key: k for k, key in enumerate(gl)}
    Lm = np.zeros((k_tot, k_tot))
    D = np.zeros((k_tot, n_p))
    in_t = np.asarray(in_t, float)
    in_src = np.asarray(in_src, np.int64)
    in_amp = np.asarray(in_amp, float)
    for k, (li, i, f) in enumerate(gl):
        lay = layers[li]
        w, r = lay["w"], lay.get("r")
        ow, orr = offs[li]
        n = w.shape[1]
        gi = nrn_off[li] + i
        a, b, th = float(lay["alpha"][i]), float(lay["beta"][i]), float(lay["theta"][i])
        if li == 0:
            pre = [(tt, int(s), am, None) for tt, s, am in zip(in_t, in_src, in_amp)]
        else:
            pre = [(tt, int(s), 1.0, index[(li - 1, int(s), float(tt))])
                   for tt, s in zip(*spikes[li - 1])]
        vdot = -b * th
        D[k, off_th + gi] -= 1.0  # dF/dtheta: the -theta of F = V - theta
        for tg, j, am, g in pre:
            if tg < f:
                s = np.array([f - tg])
                D[k, ow + j * n + i] += am * psp_ref(s, a, b)[0]
                D[k, off_al + gi] += w[j, i] * am * psp_dalpha_ref(s, a, b)[0]
                D[k, off_be + gi] += w[j, i] * am * psp_dbeta_ref(s, a, b)[0]
                vdot += w[j, i] * am * math.exp(-a * (f - tg))
                if g is not None:
                    Lm[k, g] += -w[j, i] * psp_dot_ref(s, a, b)[0]
        for tg, j in zip(*spikes[li]):
            tg, j = float(tg), int(j)
            if tg >= f:
                continue
            g = index[(li, j, tg)]
            s = np.array([f - tg])
            if j == i:
                e = math.exp(-b * (f - tg))
                D[k, off_th + gi] -= e
                D[k, off_be + gi] += th * (f - tg) * e
                Lm[k, g] += -th * b * e
            elif r is not None:
                D[k, orr + j * n + i] += psp_ref(s, a, b)[0]
                D[k, off_al + gi] += r[j, i] * psp_dalpha_ref(s, a, b)[0]
                D[k, off_be + gi] += r[j, i] * psp_dbeta_ref(s, a, b)[0]
                vdot += r[j, i] * math.exp(-a * (f - tg))
                Lm[k, g] += -r[j, i] * psp_dot_ref(s, a, b)[0]
        Lm[k, k] = vdot
    if k_tot == 0:
        return np.zeros((0, n_p))
    return np.linalg.solve(Lm, -D)


def linear_readout_ref(pre_t, pre_src, pre_amp, layer, t_read):
    """V_o(t_m) = b_o + sum_{g < t_m} W_jo a_g h_o(t_m - g): (M, n_out)."""
    pre_t = np.asarray(pre_t, float)
    pre_src = np.asarray(pre_src, np.int64)
    pre_amp = np.ones_like(pre_t) if pre_amp is None else np.asarray(pre_amp, float)
    w = layer["w"]
    out = np.tile(np.asarray(layer["bias"], float), (len(t_read), 1))
    for m, t in enumerate(t_read):
        for o in range(w.shape[1]):
            out[m, o] += float(np.sum(w[pre_src, o] * pre_amp *
                                      psp_ref(t - pre_t, layer["alpha"][o], layer["beta"][o])))
    return out


def regression_loss_grad_ref(in_t, in_src, in_amp, layers, t_read, y, mask, max_hidden):
    """(V (M, n_out), loss = sum mask 0.5 (V - y)^2, dloss/dp) for one sample of a network with
    a linear output; the gradient is the direct dV/dp plus dV/dg times the dense rows of
    :func:`spike_jacobian_pn_ref`."""
    offs, off_th, off_al, off_be, off_b, nrn_off, n_p = param_layout_pn(layers, True)
    t_read = np.asarray(t_read, float)
    spikes = simulate_network_pn_ref(in_t, in_src, in_amp, layers, float(t_read[-1]), max_hidden,
                                     True)
    out_l = layers[-1]
    if len(layers) > 1:
        pre_t, pre_src = spikes[-1]
        pre_amp = np.ones_like(pre_t)
    else:
        pre_t, pre_src, pre_amp = (np.asarray(in_t, float), np.asarray(in_src, np.int64),
                                   np.asarray(in_amp, float))
    v = linear_readout_ref(pre_t, pre_src, pre_amp, out_l, t_read)
    err = np.asarray(mask, float)[:, None] * (v - y)
    loss = float(np.sum(0.5 * np.asarray(mask, float)[:, None] * (v - y) ** 2))
    grad = np.zeros(n_p)
    ow = offs[-1][0]
    n_out = out_l["w"].shape[1]
    lo = nrn_off[-2]
    grad[off_b:off_b + n_out] += err.sum(axis=0)
    dv_dg = np.zeros(len(pre_t))
    for e, (tg, j, am) in enumerate(zip(pre_t, pre_src, pre_amp)):
        for o in range(n_out):
            a, b = float(out_l["alpha"][o]), float(out_l["beta"][o])
            s = t_read - tg
            wv = out_l["w"][j, o]
            grad[ow + j * n_out + o] += am * float(np.sum(err[:, o] * psp_ref(s, a, b)))
            grad[off_al + lo + o] += wv * am * float(np.sum(err[:, o] * psp_dalpha_ref(s, a, b)))
            grad[off_be + lo + o] += wv * am * float(np.sum(err[:, o] * psp_dbeta_ref(s, a, b)))
            dv_dg[e] -= wv * am * float(np.sum(err[:, o] * psp_dot_ref(s, a, b)))
    if len(layers) > 1:
        jac = spike_jacobian_pn_ref(in_t, in_src, in_amp, layers, spikes, True)
        k0 = sum(len(t) for t, _ in spikes[:-1])
        grad += dv_dg @ jac[k0:k0 + len(pre_t)]
    return v, loss, grad
