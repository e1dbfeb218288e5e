"""Numba kernels of the exact event-based simulator and of Forward-Propagation (FP) gradients.

Model (continuous time, float64; Lee, Haghighatshoar, Karbasi). Synaptic rate ``alpha``,
membrane rate ``beta`` (1 / time unit), threshold ``theta > 0``. Neuron i of a layer::

    V_i(t) = sum_j W_ji sum_{g in F_j, g < t} h(t - g)
             - theta sum_{f in F_i, f < t} exp(-beta (t - f))
    h(s)   = (exp(-alpha s) - exp(-beta s)) / (beta - alpha)    (s exp(-alpha s) if alpha == beta)

Presynaptic spikes come from the layer below (or the network input) through ``W`` and, in a
recurrent layer, from the same layer one spike earlier through ``R`` (zero diagonal). A spike
is emitted when V crosses theta upwards; it then subtracts theta from the membrane.

Between events each neuron is kept as the pair (V0, I0) at its reference time ``tref``::

    V(tref + s) = V0 exp(-beta s) + I0 h(s),     I(tref + s) = I0 exp(-alpha s),     V' = I - beta V

An input spike of weight w adds w to I0 (V is continuous); an own spike subtracts theta from
V0. ``h`` is evaluated as ``exp(-beta s) * s * expm1(d s) / (d s)`` with ``d = beta - alpha``,
which is exact for ``alpha == beta`` and keeps full precision when alpha ~ beta (the A/B form
``W/(beta-alpha)`` loses ~log10(1/|d|) digits to cancellation there).

Spike times: V has at most one extremum on s >= 0, at
``s* = (log1p(d/alpha) + log1p(-d V0 / I0)) / d`` (limit ``1/alpha - V0/I0`` for d = 0), a
maximum when I0 > 0 (I0 <= 0 never reaches theta > 0 from below). So the first crossing in
[0, S] is bracketed by [0, min(s*, S)] whenever V there >= theta, and a safeguarded Newton
(bisection fallback) solves V(s) = theta to full double precision.

FP gradients (forward in time). Each spike k of neuron i at time f_k satisfies V_i(f_k) = theta.
With spikes sorted causally the implicit-function equations are lower triangular::

    V'_i(f_k-) df_k/dW = -dV_i/dW|_direct + sum_{g parent} W_ji h'(f_k - g) dg/dW
                          + sum_{f' in F_i, f' < f_k} theta beta exp(-beta (f_k - f')) df'/dW

where ``dV_i(f_k)/dW_ji = sum_{g in F_j, g < f_k} h(f_k - g)`` (the direct term, only in the
column of neuron i) and the last sum is the coupling to the neuron's own earlier spikes. Rows
are solved by forward substitution in spike order, each stored sparsely (CSR: only the weights
the spike actually depends on). Cost: time
``O(sum_k [P_k + sum_{p in parents(k)} nnz(row_p)])`` and memory ``O(sum_k nnz(row_k))``, with P_k
the presynaptic, recurrent and own earlier spikes of spike k and nnz(row_p) <= weights into
the ancestors of p. For one hidden layer with single spikes this is
``O(K_h n_in + K_o K_h n_in)`` instead of the dense ``O(K^2 |W|)``.

Parameter vector: the weights of all layers flattened, layer l at ``off_w[l]`` (W, row-major
``(n_pre, n_post)``) and ``off_r[l]`` (R, ``(n_post, n_post)``, -1 if not recurrent).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

STATUS_OK = 0
STATUS_SPIKE_OVERFLOW = 1  # spike buffer too small: caller grows it and retries
STATUS_ROW_OVERFLOW = 2  # gradient-row buffer too small: caller grows it and retries

INF = np.inf


@njit(cache=True, nogil=True, inline="always")
def psp(s: float, alpha: float, beta: float) -> float:
    """``h(s)`` of the module docstring (0 for s <= 0)."""
    if s <= 0.0:
        return 0.0
    d = beta - alpha
    x = d * s
    if x == 0.0:
        return s * math.exp(-beta * s)
    if abs(x) < 0.5:
        return math.exp(-beta * s) * s * (math.expm1(x) / x)
    return (math.exp(-alpha * s) - math.exp(-beta * s)) / d


@njit(cache=True, nogil=True, inline="always")
def psp_dot(s: float, alpha: float, beta: float) -> float:
    """``h'(s) = exp(-alpha s) - beta h(s)`` (0 for s <= 0)."""
    if s <= 0.0:
        return 0.0
    return math.exp(-alpha * s) - beta * psp(s, alpha, beta)


@njit(cache=True, nogil=True, inline="always")
def _v_at(v0: float, i0: float, s: float, alpha: float, beta: float) -> float:
    return v0 * math.exp(-beta * s) + i0 * psp(s, alpha, beta)


@njit(cache=True, nogil=True)
def first_crossing(v0: float, i0: float, s_end: float, alpha: float, beta: float,
                   theta: float) -> float:
    """First s in [0, s_end] with ``V0 e^{-beta s} + I0 h(s) = theta`` (upward), or -1.0."""
    if v0 >= theta:
        return 0.0
    if i0 <= 0.0 or s_end < 0.0:
        return -1.0
    d = beta - alpha
    if d == 0.0:
        s_star = 1.0 / alpha - v0 / i0
    else:
        u = -d * v0 / i0
        if u <= -1.0:
            return -1.0
        s_star = (math.log1p(d / alpha) + math.log1p(u)) / d
    if s_star <= 0.0:
        return -1.0
    hi = s_star if s_star < s_end else s_end
    v_hi = _v_at(v0, i0, hi, alpha, beta)
    if v_hi < theta:
        return -1.0
    lo = 0.0
    v_lo = v0
    # regula-falsi start, then Newton kept inside the bracket (bisection when it leaves it)
    s = lo + (hi - lo) * (theta - v_lo) / (v_hi - v_lo)
    if not (s > lo and s < hi):
        s = 0.5 * (lo + hi)
    for _ in range(200):
        v = _v_at(v0, i0, s, alpha, beta)
        f = v - theta
        if f == 0.0:
            return s
        if f < 0.0:
            lo = s
        else:
            hi = s
        dv = i0 * math.exp(-alpha * s) - beta * v
        sn = s - f / dv if dv > 0.0 else -1.0
        if not (sn > lo and sn < hi):
            sn = 0.5 * (lo + hi)
        if sn == s or hi - lo <= 2.3e-16 * hi:
            return hi if f < 0.0 else s
        if abs(sn - s) <= 1.2e-16 * s:
            return sn
        s = sn
    return hi


@njit(cache=True, nogil=True, inline="always")
def _advance(k: int, t: float, v0: np.ndarray, i0: np.ndarray, tref: np.ndarray,
             alpha: float, beta: float) -> None:
    d = t - tref[k]
    if d > 0.0:
        v0[k] = v0[k] * math.exp(-beta * d) + i0[k] * psp(d, alpha, beta)
        i0[k] = i0[k] * math.exp(-alpha * d)
        tref[k] = t


@njit(cache=True, nogil=True, inline="always")
def _predict(k: int, horizon: float, v0: np.ndarray, i0: np.ndarray, tref: np.ndarray,
             alpha: float, beta: float, theta: float) -> float:
    s = first_crossing(v0[k], i0[k], horizon - tref[k], alpha, beta, theta)
    if s < 0.0:
        return INF
    return tref[k] + s


@njit(cache=True, nogil=True)
def simulate_layer(ev_t: np.ndarray, ev_src: np.ndarray, n_ev: int, w: np.ndarray, off_w: int,
                   off_r: int, n_post: int, alpha: float, beta: float, theta: float,
                   t_max: float, max_per_neuron: int, v0: np.ndarray, i0: np.ndarray,
                   tref: np.ndarray, pred: np.ndarray, nspk: np.ndarray, out_t: np.ndarray,
                   out_nrn: np.ndarray, out_vdot: np.ndarray, out_start: int) -> int:
    """Simulate one layer on sorted input events; write its spikes from ``out_start``.

    ``ev_t[:n_ev]`` sorted times, ``ev_src`` presynaptic index (row of W). Spikes after
    ``t_max`` and beyond ``max_per_neuron`` per neuron are not emitted. Returns the index one
    past the last spike written, or -1 if ``out_t`` is too small.
    ``out_vdot`` gets ``V'(f-) = I(f) - beta theta`` (> 0 except at tangential crossings).
    """
    cap = out_t.shape[0]
    for k in range(n_post):
        v0[k] = 0.0
        i0[k] = 0.0
        tref[k] = 0.0
        pred[k] = INF
        nspk[k] = 0
    n_out = out_start
    ptr = 0
    horizon = t_max
    if n_ev > 0 and ev_t[0] < horizon:
        horizon = ev_t[0]
    while True:
        t_in = ev_t[ptr] if ptr < n_ev else INF
        best = INF
        bk = -1
        for k in range(n_post):
            if pred[k] < best:
                best = pred[k]
                bk = k
        if bk >= 0 and best <= t_in and best <= t_max:
            _advance(bk, best, v0, i0, tref, alpha, beta)
            if n_out >= cap:
                return -1
            out_t[n_out] = best
            out_nrn[n_out] = bk
            out_vdot[n_out] = i0[bk] - beta * theta
            n_out += 1
            v0[bk] -= theta
            nspk[bk] += 1
            if off_r >= 0:
                base = off_r + bk * n_post
                for j in range(n_post):
                    r = w[base + j]
                    if r != 0.0 and j != bk:
                        _advance(j, best, v0, i0, tref, alpha, beta)
                        i0[j] += r
                        if nspk[j] < max_per_neuron:
                            pred[j] = _predict(j, horizon, v0, i0, tref, alpha, beta, theta)
            if nspk[bk] < max_per_neuron:
                pred[bk] = _predict(bk, horizon, v0, i0, tref, alpha, beta, theta)
            else:
                pred[bk] = INF
            continue
        if ptr >= n_ev or t_in > t_max:
            break
        base = off_w + ev_src[ptr] * n_post
        for j in range(n_post):
            wv = w[base + j]
            if wv != 0.0:
                _advance(j, t_in, v0, i0, tref, alpha, beta)
                i0[j] += wv
        ptr += 1
        horizon = t_max
        if ptr < n_ev and ev_t[ptr] < horizon:
            horizon = ev_t[ptr]
        for k in range(n_post):
            if nspk[k] < max_per_neuron:
                pred[k] = _predict(k, horizon, v0, i0, tref, alpha, beta, theta)
    return n_out


@njit(cache=True, nogil=True)
def simulate_network(in_t: np.ndarray, in_src: np.ndarray, n_in_ev: int, w: np.ndarray,
                     n_post: np.ndarray, off_w: np.ndarray, off_r: np.ndarray, alpha: float,
                     beta: float, theta: float, t_max: float, max_hidden: int, max_out: int,
                     work: np.ndarray, iwork: np.ndarray, spk_t: np.ndarray,
                     spk_nrn: np.ndarray, spk_vdot: np.ndarray, layer_start: np.ndarray) -> int:
    """All layers in order. Layer l's spikes are ``spk_*[layer_start[l]:layer_start[l+1]]``
    (``spk_nrn`` local to the layer). ``work`` (4, max n_post) float64 and ``iwork``
    (max n_post) int64 are scratch. Returns STATUS_OK or STATUS_SPIKE_OVERFLOW."""
    n_layers = n_post.shape[0]
    layer_start[0] = 0
    for l in range(n_layers):
        mpn = max_out if l == n_layers - 1 else max_hidden
        if l == 0:
            ev_t = in_t
            ev_src = in_src
            n_ev = n_in_ev
        else:
            a = layer_start[l - 1]
            b = layer_start[l]
            ev_t = spk_t[a:b]
            ev_src = spk_nrn[a:b]
            n_ev = b - a
        end = simulate_layer(ev_t, ev_src, n_ev, w, off_w[l], off_r[l], n_post[l], alpha, beta,
                             theta, t_max, mpn, work[0], work[1], work[2], work[3], iwork,
                             spk_t, spk_nrn, spk_vdot, layer_start[l])
        if end < 0:
            return STATUS_SPIKE_OVERFLOW
        layer_start[l + 1] = end
    return STATUS_OK


@njit(cache=True, nogil=True, inline="always")
def _touch(idx: int, stamp: int, mark: np.ndarray, acc: np.ndarray, touched: np.ndarray,
           nt: int) -> int:
    if mark[idx] != stamp:
        mark[idx] = stamp
        acc[idx] = 0.0
        touched[nt] = idx
        nt += 1
    return nt


@njit(cache=True, nogil=True)
def fp_rows(in_t: np.ndarray, in_src: np.ndarray, n_in_ev: int, w: np.ndarray,
            n_post: np.ndarray, off_w: np.ndarray, off_r: np.ndarray, alpha: float, beta: float,
            theta: float, spk_t: np.ndarray, spk_nrn: np.ndarray, spk_vdot: np.ndarray,
            layer_start: np.ndarray, row_ptr: np.ndarray, row_idx: np.ndarray,
            row_val: np.ndarray, acc: np.ndarray, mark: np.ndarray, touched: np.ndarray) -> int:
    """Forward-substitution rows ``df_k/dw`` (CSR in ``row_ptr/row_idx/row_val``) for every
    spike of a simulated network (see module docstring). ``acc``/``mark``/``touched`` are
    scratch of the parameter vector's length (``mark`` must hold values < 1 on entry).
    Returns STATUS_OK or STATUS_ROW_OVERFLOW."""
    n_layers = n_post.shape[0]
    cap = row_idx.shape[0]
    nnz = 0
    row_ptr[0] = 0
    for l in range(n_layers):
        n = n_post[l]
        ow = off_w[l]
        orr = off_r[l]
        for k in range(layer_start[l], layer_start[l + 1]):
            f = spk_t[k]
            i = spk_nrn[k]
            stamp = k + 1
            nt = 0
            if l == 0:
                for e in range(n_in_ev):
                    tg = in_t[e]
                    if tg >= f:
                        break
                    idx = ow + in_src[e] * n + i
                    nt = _touch(idx, stamp, mark, acc, touched, nt)
                    acc[idx] -= psp(f - tg, alpha, beta)
            else:
                for g in range(layer_start[l - 1], layer_start[l]):
                    tg = spk_t[g]
                    if tg >= f:
                        break
                    j = spk_nrn[g]
                    idx = ow + j * n + i
                    nt = _touch(idx, stamp, mark, acc, touched, nt)
                    acc[idx] -= psp(f - tg, alpha, beta)
                    wv = w[idx]
                    if wv != 0.0:
                        c = wv * psp_dot(f - tg, alpha, beta)
                        for q in range(row_ptr[g], row_ptr[g + 1]):
                            p = row_idx[q]
                            nt = _touch(p, stamp, mark, acc, touched, nt)
                            acc[p] += c * row_val[q]
            for g in range(layer_start[l], k):
                tg = spk_t[g]
                if tg >= f:
                    break
                j = spk_nrn[g]
                if j == i:
                    c = theta * beta * math.exp(-beta * (f - tg))
                elif orr >= 0:
                    idx = orr + j * n + i
                    nt = _touch(idx, stamp, mark, acc, touched, nt)
                    acc[idx] -= psp(f - tg, alpha, beta)
                    c = w[idx] * psp_dot(f - tg, alpha, beta)
                else:
                    continue
                if c != 0.0:
                    for q in range(row_ptr[g], row_ptr[g + 1]):
                        p = row_idx[q]
                        nt = _touch(p, stamp, mark, acc, touched, nt)
                        acc[p] += c * row_val[q]
            if nnz + nt > cap:
                return STATUS_ROW_OVERFLOW
            inv = 1.0 / spk_vdot[k]
            for q in range(nt):
                p = touched[q]
                row_idx[nnz] = p
                row_val[nnz] = acc[p] * inv
                nnz += 1
            row_ptr[k + 1] = nnz
    # clear stamps so the scratch can be reused by the next call
    for q in range(nnz):
        mark[row_idx[q]] = 0
    return STATUS_OK


@njit(cache=True, nogil=True)
def ttfs_loss(t_out: np.ndarray, label: int, tau0: float, tau1: float, gamma: float,
              dl_dt: np.ndarray) -> float:
    """``L = -log softmax(-t/tau0)_label + gamma (exp(t_label/tau1) - 1)``; writes dL/dt."""
    m = INF
    for o in range(t_out.shape[0]):
        if t_out[o] < m:
            m = t_out[o]
    z = 0.0
    for o in range(t_out.shape[0]):
        z += math.exp(-(t_out[o] - m) / tau0)
    loss = (t_out[label] - m) / tau0 + math.log(z)
    for o in range(t_out.shape[0]):
        p = math.exp(-(t_out[o] - m) / tau0) / z
        dl_dt[o] = ((1.0 if o == label else 0.0) - p) / tau0
    e = math.exp(t_out[label] / tau1)
    loss += gamma * (e - 1.0)
    dl_dt[label] += gamma * e / tau1
    return loss


@njit(cache=True, nogil=True)
def fp_batch(in_times: np.ndarray, labels: np.ndarray, w: np.ndarray, n_post: np.ndarray,
             off_w: np.ndarray, off_r: np.ndarray, alpha: float, beta: float, theta: float,
             t_max: float, max_hidden: int, tau0: float, tau1: float, gamma: float,
             want_grad: bool, grad: np.ndarray, t_first: np.ndarray, losses: np.ndarray,
             counts: np.ndarray, silent_label: np.ndarray, spk_t: np.ndarray,
             spk_nrn: np.ndarray, spk_vdot: np.ndarray, row_ptr: np.ndarray,
             row_idx: np.ndarray, row_val: np.ndarray, work: np.ndarray, iwork: np.ndarray,
             acc: np.ndarray, mark: np.ndarray, touched: np.ndarray) -> int:
    """Simulate a batch (one input spike per channel, ``inf`` = none) and accumulate the
    TTFS loss gradient into ``grad`` (summed over samples).

    ``t_first`` (B, n_out) first output spike time (``t_max`` if silent), ``losses`` (B,),
    ``counts`` (total neurons,) spikes per neuron summed over the batch, ``silent_label``
    (B,) 1 where the label neuron stayed silent. Output neurons fire at most once (only the
    first spike enters the loss). Returns STATUS_OK or an overflow status (nothing valid).
    """
    n_b = in_times.shape[0]
    n_in = in_times.shape[1]
    n_layers = n_post.shape[0]
    n_out = n_post[n_layers - 1]
    in_t = np.empty(n_in)
    in_src = np.empty(n_in, dtype=np.int64)
    layer_start = np.empty(n_layers + 1, dtype=np.int64)
    dl_dt = np.empty(n_out)
    out_spike = np.empty(n_out, dtype=np.int64)
    nrn_off = np.zeros(n_layers + 1, dtype=np.int64)
    for l in range(n_layers):
        nrn_off[l + 1] = nrn_off[l] + n_post[l]
    for b in range(n_b):
        order = np.argsort(in_times[b])
        n_ev = 0
        for q in range(n_in):
            c = order[q]
            tv = in_times[b, c]
            if tv < INF:
                in_t[n_ev] = tv
                in_src[n_ev] = c
                n_ev += 1
        st = simulate_network(in_t, in_src, n_ev, w, n_post, off_w, off_r, alpha, beta, theta,
                              t_max, max_hidden, 1, work, iwork, spk_t, spk_nrn, spk_vdot,
                              layer_start)
        if st != STATUS_OK:
            return st
        for l in range(n_layers):
            for k in range(layer_start[l], layer_start[l + 1]):
                counts[nrn_off[l] + spk_nrn[k]] += 1
        for o in range(n_out):
            t_first[b, o] = t_max
            out_spike[o] = -1
        for k in range(layer_start[n_layers - 1], layer_start[n_layers]):
            o = spk_nrn[k]
            t_first[b, o] = spk_t[k]
            out_spike[o] = k
        lab = labels[b]
        losses[b] = ttfs_loss(t_first[b], lab, tau0, tau1, gamma, dl_dt)
        silent_label[b] = 1 if out_spike[lab] < 0 else 0
        if not want_grad:
            continue
        st = fp_rows(in_t, in_src, n_ev, w, n_post, off_w, off_r, alpha, beta, theta, spk_t,
                     spk_nrn, spk_vdot, layer_start, row_ptr, row_idx, row_val, acc, mark,
                     touched)
        if st != STATUS_OK:
            return st
        for o in range(n_out):
            k = out_spike[o]
            if k >= 0:
                c = dl_dt[o]
                for q in range(row_ptr[k], row_ptr[k + 1]):
                    grad[row_idx[q]] += c * row_val[q]
    return STATUS_OK
