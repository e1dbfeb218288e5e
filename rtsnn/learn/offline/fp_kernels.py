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
from numba import njit, types
from numba.extending import overload

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



@njit(cache=True, nogil=True, inline="always")
def _bracket(v0: float, i0: float, s_end: float, alpha: float, beta: float, theta: float):
    """The start of :func:`first_crossing`: ``(code, hi, v_hi)`` with code 0 (no crossing in
    [0, s_end]), 1 (crossing at s = 0) or 2 (a crossing in ``(0, hi]``, ``V(hi) = v_hi >=
    theta``: solve it with :func:`_newton_start` and :func:`_newton_step`)."""
    if v0 >= theta:
        return 1, 0.0, 0.0
    if i0 <= 0.0 or s_end < 0.0:
        return 0, 0.0, 0.0
    # h(s) <= s, so V(s) <= max(V0, 0) + I0 s on [0, s_end]: no crossing when that stays below
    # theta (with a margin far above rounding, so this only skips work: same result)
    if (v0 if v0 > 0.0 else 0.0) + i0 * s_end < theta * (1.0 - 1e-9):
        return 0, 0.0, 0.0
    d = beta - alpha
    if d == 0.0:
        s_star = 1.0 / alpha - v0 / i0
    else:
        u = -d * v0 / i0
        if u <= -1.0:
            return 0, 0.0, 0.0
        s_star = (math.log1p(d / alpha) + math.log1p(u)) / d
    if s_star <= 0.0:
        return 0, 0.0, 0.0
    hi = s_star if s_star < s_end else s_end
    v_hi = _v_at(v0, i0, hi, alpha, beta)
    if v_hi < theta:
        return 0, 0.0, 0.0
    return 2, hi, v_hi


@njit(cache=True, nogil=True, inline="always")
def _newton_start(v0: float, hi: float, v_hi: float, theta: float) -> float:
    """Regula-falsi start on the bracket ``[0, hi]`` (its midpoint when that falls outside)."""
    lo = 0.0
    s = lo + (hi - lo) * (theta - v0) / (v_hi - v0)
    if not (s > lo and s < hi):
        s = 0.5 * (lo + hi)
    return s


@njit(cache=True, nogil=True, inline="always")
def _newton_step(v0: float, i0: float, alpha: float, beta: float, theta: float, s: float,
                 lo: float, hi: float):
    """One safeguarded Newton step of :func:`first_crossing` at ``s`` in ``[lo, hi]``:
    ``(done, root, s_next, lo, hi)`` (``root`` valid when done)."""
    v = _v_at(v0, i0, s, alpha, beta)
    f = v - theta
    if f == 0.0:
        return True, s, s, lo, hi
    if f < 0.0:
        lo = s
    else:
        hi = s
    dv = i0 * math.exp(-alpha * s) - beta * v
    sn = s - f / dv if dv > 0.0 else -1.0
    if not (sn > lo and sn < hi):
        sn = 0.5 * (lo + hi)
    if sn == s or hi - lo <= 2.3e-16 * hi:
        return True, (hi if f < 0.0 else s), s, lo, hi
    if abs(sn - s) <= 1.2e-16 * s:
        return True, sn, sn, lo, hi
    return False, 0.0, sn, lo, hi


NEWTON_MAX_STEPS = 200  # then the bracket's upper end (never reached in practice)


@njit(cache=True, nogil=True)
def first_crossing(v0: float, i0: float, s_end: float, alpha: float, beta: float,
                   theta: float) -> float:
    """First s in [0, s_end] with ``V0 e^{-beta s} + I0 h(s) = theta`` (upward), or -1.0."""
    code, hi, v_hi = _bracket(v0, i0, s_end, alpha, beta, theta)
    if code == 0:
        return -1.0
    if code == 1:
        return 0.0
    # regula-falsi start, then Newton kept inside the bracket (bisection when it leaves it)
    s = _newton_start(v0, hi, v_hi, theta)
    lo = 0.0
    for _ in range(NEWTON_MAX_STEPS):
        done, root, s, lo, hi = _newton_step(v0, i0, alpha, beta, theta, s, lo, hi)
        if done:
            return root
    return hi


# ============================================================================ per-neuron parameters
#
# Every kernel below takes the rates and the threshold either as one number shared by all
# neurons (the classifier of :mod:`rtsnn.learn.offline.fp`: alpha, beta, theta fixed, only
# weights trained) or per neuron (:mod:`rtsnn.learn.offline.fp_regression`, issue 18 items 3
# and 4). The shared case is the special case alpha_i = alpha, beta_i = beta, theta_i = theta
# with no derivatives by them; which one a call is is decided by numba at compile time from
# the argument's type (:func:`_nrn`, :func:`_per_neuron`), so the shared case compiles to the
# same arithmetic as a kernel written for scalars. The per-neuron generalisation:
#
# * every neuron i has its own synaptic rate alpha_i, membrane rate beta_i and threshold
#   theta_i (the synapse belongs to the receiving neuron, as in a CubaLIF node: the kernel
#   of a spike from j into i is h_i(s) = (exp(-alpha_i s) - exp(-beta_i s)) / (beta_i - alpha_i));
# * an input event carries an amplitude ``a`` (``a`` coincident spikes: a bin of ``a`` counts;
#   ``None`` instead of the amplitudes: every event is one spike);
# * the last layer may be linear (non-spiking, no reset; the paper's regression output)::
#
#       V_o(t) = b_o + sum_j W_jo sum_{g in F_j, g < t} a_g h_o(t - g)
#
# Parameter vector ``p`` (float64): the weights as above (W, R per layer at off_w / off_r), then
# per neuron over all layers (global index ``nrn_off[l] + i``, ``nrn_off`` the cumulative sum of
# the layer sizes) theta at ``off_th``, alpha at ``off_al``, beta at ``off_be``, then the output
# bias at ``off_b`` (linear output only).
#
# Exact rows (implicit function theorem at each spike, F = V_i(f) - theta_i = 0)::
#
#   V'_i(f-) df/dp = -dF/dp|direct + sum_parents W_ji h_i'(f - g) dg/dp
#                    + sum_{own f' < f} theta_i beta_i exp(-beta_i (f - f')) df'/dp
#   -dF/dtheta_i = 1 + sum_{own f'} exp(-beta_i (f - f'))
#   -dF/dalpha_i = -sum_parents W_ji a_g dh_i/dalpha(f - g)
#   -dF/dbeta_i  = -sum_parents W_ji a_g dh_i/dbeta(f - g) - theta_i sum_{own f'} (f - f') exp(-beta_i (f - f'))
#
# with dh/dalpha = (h - s exp(-alpha s)) / (beta - alpha) and dh/dbeta = -s h - dh/dalpha.
# The regression loss (the paper's  int l_V(V_o(t)) dt  sampled at the readout times t_m)::
#
#   L = sum_m sum_o mask_m 0.5 (V_o(t_m) - y_mo)^2
#   dL/dp = sum_m,o e_mo [ dV_o(t_m)/dp|direct - sum_{g < t_m} W_jo a_g h_o'(t_m - g) dg/dp ],
#   e_mo = mask_m (V_o(t_m) - y_mo)


@njit(cache=True, nogil=True, inline="always")
def psp_dalpha(s: float, alpha: float, beta: float) -> float:
    """``dh/dalpha`` at fixed beta (0 for s <= 0): ``(h(s) - s exp(-alpha s)) / (beta - alpha)``,
    and for ``|(beta - alpha) s| < 0.5`` the series ``-exp(-beta s) s^2 g'(x)``, ``x = (beta -
    alpha) s``, ``g'(x) = sum_{n>=1} n x^(n-1) / (n+1)!`` (no cancellation as alpha -> beta)."""
    if s <= 0.0:
        return 0.0
    d = beta - alpha
    x = d * s
    if abs(x) < 0.5:
        term = 0.5
        tot = 0.5
        for n in range(2, 24):
            term = term * x * n / ((n - 1) * (n + 1))
            tot += term
        return -math.exp(-beta * s) * s * s * tot
    return (psp(s, alpha, beta) - s * math.exp(-alpha * s)) / d


@njit(cache=True, nogil=True, inline="always")
def psp_dbeta(s: float, alpha: float, beta: float) -> float:
    """``dh/dbeta`` at fixed alpha: ``-s h(s) - dh/dalpha`` (0 for s <= 0)."""
    if s <= 0.0:
        return 0.0
    return -s * psp(s, alpha, beta) - psp_dalpha(s, alpha, beta)


# Compile-time switches (numba picks the body from the argument's type; no run-time test).
def _nrn(x, k):
    """Neuron ``k``'s value: ``x[k]`` of a per-neuron array, ``x`` itself when shared."""
    return x if np.ndim(x) == 0 else x[k]


def _span(x, a, b):
    """A layer's slice ``x[a:b]`` of a per-neuron array over all layers, ``x`` when shared."""
    return x if np.ndim(x) == 0 else x[a:b]


def _amp(amps, e):
    """Amplitude of event ``e``: ``amps[e]``, or 1.0 when ``amps`` is None (single spikes)."""
    return 1.0 if amps is None else amps[e]


def _per_neuron(x) -> bool:
    """True when ``x`` is per neuron (its derivatives enter the rows), False when shared."""
    return np.ndim(x) > 0


@overload(_nrn, inline="always")
def _nrn_nb(x, k):
    if isinstance(x, types.Array):
        return lambda x, k: x[k]
    return lambda x, k: x


@overload(_span, inline="always")
def _span_nb(x, a, b):
    if isinstance(x, types.Array):
        return lambda x, a, b: x[a:b]
    return lambda x, a, b: x


@overload(_amp, inline="always")
def _amp_nb(amps, e):
    if isinstance(amps, types.NoneType):
        return lambda amps, e: 1.0
    return lambda amps, e: amps[e]


@overload(_per_neuron, inline="always")
def _per_neuron_nb(x):
    if isinstance(x, types.Array):
        return lambda x: True
    return lambda x: False


# ============================================================================ simulation
# The small helpers below that take arrays and run inside the hot loops (per spike, per input,
# per row entry) are compiled with ``_nrt=False`` and not inlined by numba: an array argument of
# a numba-inlined helper (``inline="always"``) or of an ordinary call costs an atomic
# reference-count increment and decrement per array per call (~25 ns for three arrays), which
# was over half of an epoch's time; without NRT the helper touches no reference counts and
# LLVM still inlines it. Same arithmetic, same results bit for bit. They must not allocate.
@njit(cache=True, nogil=True, _nrt=False)
def _advance(k: int, t: float, v0: np.ndarray, i0: np.ndarray, tref: np.ndarray,
             alpha: float, beta: float) -> None:
    d = t - tref[k]
    if d > 0.0:
        v0[k] = v0[k] * math.exp(-beta * d) + i0[k] * psp(d, alpha, beta)
        i0[k] = i0[k] * math.exp(-alpha * d)
        tref[k] = t


@njit(cache=True, nogil=True, _nrt=False)
def _predict(k: int, horizon: float, v0: np.ndarray, i0: np.ndarray, tref: np.ndarray,
             alpha, beta, theta) -> float:
    s = first_crossing(v0[k], i0[k], horizon - tref[k], _nrn(alpha, k), _nrn(beta, k),
                       _nrn(theta, k))
    if s < 0.0:
        return INF
    return tref[k] + s


@njit(cache=True, nogil=True, _nrt=False)
def _predict_all(n_post: int, max_per_neuron: int, nspk: np.ndarray, horizon: float,
                 v0: np.ndarray, i0: np.ndarray, tref: np.ndarray, alpha, beta, theta,
                 pred: np.ndarray, s_k: np.ndarray, s_s: np.ndarray, s_lo: np.ndarray,
                 s_hi: np.ndarray) -> None:
    """``pred[k] = _predict(k, horizon, ...)`` for every neuron below ``max_per_neuron``
    spikes, with the same arithmetic per neuron, bit for bit; but the Newton solves of all
    bracketed neurons advance in lockstep (one step of each per sweep): a solve is a chain of
    dependent exp / divide latencies, and independent neurons side by side keep the CPU's
    pipelines full (measured 170 against 250 ns a solve). ``s_*`` (n_post) scratch."""
    n_s = 0
    for k in range(n_post):
        if nspk[k] < max_per_neuron:
            code, hi, v_hi = _bracket(v0[k], i0[k], horizon - tref[k], _nrn(alpha, k),
                                      _nrn(beta, k), _nrn(theta, k))
            if code == 0:
                pred[k] = INF
            elif code == 1:
                pred[k] = tref[k] + 0.0
            else:
                s_k[n_s] = k
                s_s[n_s] = _newton_start(v0[k], hi, v_hi, _nrn(theta, k))
                s_lo[n_s] = 0.0
                s_hi[n_s] = hi
                n_s += 1
    for _ in range(NEWTON_MAX_STEPS):
        if n_s == 0:
            return
        q = 0
        for a in range(n_s):
            k = s_k[a]
            done, root, sn, lo, hi = _newton_step(v0[k], i0[k], _nrn(alpha, k), _nrn(beta, k),
                                                  _nrn(theta, k), s_s[a], s_lo[a], s_hi[a])
            if done:
                pred[k] = tref[k] + root
            else:  # still running: keep it, packed at the front
                s_k[q] = k
                s_s[q] = sn
                s_lo[q] = lo
                s_hi[q] = hi
                q += 1
        n_s = q
    for a in range(n_s):
        pred[s_k[a]] = tref[s_k[a]] + s_hi[a]


@njit(cache=True, nogil=True, _nrt=False)
def _earlier(a: int, b: int, pred: np.ndarray) -> bool:
    """(pred[a], a) < (pred[b], b): the earlier prediction, the lower index on a tie."""
    return pred[a] < pred[b] or (pred[a] == pred[b] and a < b)


@njit(cache=True, nogil=True, _nrt=False)
def _heap_down(heap: np.ndarray, nh: int, q: int, pred: np.ndarray) -> None:
    """Sift ``heap[q]`` down the binary min-heap ``heap[:nh]`` of neurons keyed by pred."""
    while True:
        c = 2 * q + 1
        if c >= nh:
            return
        if c + 1 < nh and _earlier(heap[c + 1], heap[c], pred):
            c += 1
        if not _earlier(heap[c], heap[q], pred):
            return
        tmp = heap[c]
        heap[c] = heap[q]
        heap[q] = tmp
        q = c


@njit(cache=True, nogil=True)
def simulate_layer(ev_t: np.ndarray, ev_src: np.ndarray, ev_amp, n_ev: int, w: np.ndarray,
                   off_w: int, off_r: int, n_post: int, alpha, beta, theta, t_max: float,
                   max_per_neuron: int, v0: np.ndarray, i0: np.ndarray, tref: np.ndarray,
                   pred: np.ndarray, nspk: np.ndarray, out_t: np.ndarray, out_nrn: np.ndarray,
                   out_vdot: np.ndarray, out_start: int) -> int:
    """Simulate one layer on sorted input events; write its spikes from ``out_start``.

    ``ev_t[:n_ev]`` sorted times, ``ev_src`` presynaptic index (row of W), ``ev_amp`` their
    amplitudes (None: 1). ``alpha``, ``beta``, ``theta``: numbers shared by the layer or arrays
    of its ``n_post`` neurons. Spikes after ``t_max`` and beyond ``max_per_neuron`` per neuron
    are not emitted. Returns the index one past the last spike written, or -1 if ``out_t`` is
    too small. ``out_vdot`` gets ``V'(f-) = I(f) - beta_i theta_i`` (> 0 except at tangential
    crossings). A neuron that reached ``max_per_neuron`` is no longer advanced (its state
    cannot matter any more) and the layer stops once every neuron has: the spikes are the
    same, bit for bit, as when every neuron is advanced to the end.
    """
    cap = out_t.shape[0]
    for k in range(n_post):
        v0[k] = 0.0
        i0[k] = 0.0
        tref[k] = 0.0
        pred[k] = INF
        nspk[k] = 0
    n_out = out_start
    n_capped = 0  # neurons at max_per_neuron: their state no longer matters
    ptr = 0
    horizon = t_max
    if n_ev > 0 and ev_t[0] < horizon:
        horizon = ev_t[0]
    # Without recurrence a prediction changes only for the neuron that fired and, after an
    # input, for all: the earliest (pred[k], k) is then kept in a binary heap (``heap[:nh]``,
    # rebuilt after each input) instead of a scan of all neurons per spike; the order (time,
    # then the lower index) is the scan's.
    use_heap = off_r < 0
    shared = not _per_neuron(alpha)  # compile-time: one alpha, beta for the layer
    heap = np.empty(n_post if use_heap else 0, dtype=np.int64)
    s_k = np.empty(n_post, dtype=np.int64)  # scratch of _predict_all
    s_s = np.empty(n_post)
    s_lo = np.empty(n_post)
    s_hi = np.empty(n_post)
    nh = 0
    while True:
        t_in = ev_t[ptr] if ptr < n_ev else INF
        best = INF
        bk = -1
        if use_heap:
            if nh > 0:
                bk = heap[0]
                best = pred[bk]
        else:
            for k in range(n_post):
                if pred[k] < best:
                    best = pred[k]
                    bk = k
        if bk >= 0 and best <= t_in and best <= t_max:
            if nspk[bk] + 1 < max_per_neuron:
                _advance(bk, best, v0, i0, tref, _nrn(alpha, bk), _nrn(beta, bk))
            else:  # its last spike: only V'(f-) below needs its current (same value as _advance)
                d_last = best - tref[bk]
                if d_last > 0.0:
                    i0[bk] = i0[bk] * math.exp(-_nrn(alpha, bk) * d_last)
            if n_out >= cap:
                return -1
            out_t[n_out] = best
            out_nrn[n_out] = bk
            out_vdot[n_out] = i0[bk] - _nrn(beta, bk) * _nrn(theta, bk)
            n_out += 1
            v0[bk] -= _nrn(theta, bk)
            nspk[bk] += 1
            if nspk[bk] == max_per_neuron:
                n_capped += 1
            if off_r >= 0:
                base = off_r + bk * n_post
                for j in range(n_post):
                    r = w[base + j]
                    if r != 0.0 and j != bk and nspk[j] < max_per_neuron:
                        _advance(j, best, v0, i0, tref, _nrn(alpha, j), _nrn(beta, j))
                        i0[j] += r
                        if nspk[j] < max_per_neuron:
                            pred[j] = _predict(j, horizon, v0, i0, tref, alpha, beta, theta)
            if nspk[bk] < max_per_neuron:
                pred[bk] = _predict(bk, horizon, v0, i0, tref, alpha, beta, theta)
            else:
                pred[bk] = INF
            if use_heap:  # bk is at the top: replace it by its next prediction, or drop it
                if pred[bk] < INF:
                    _heap_down(heap, nh, 0, pred)
                else:
                    nh -= 1
                    heap[0] = heap[nh]
                    _heap_down(heap, nh, 0, pred)
            continue
        if ptr >= n_ev or t_in > t_max or n_capped == n_post:
            break
        base = off_w + ev_src[ptr] * n_post
        amp = _amp(ev_amp, ptr)
        if shared:
            # rates shared by the layer: neurons last advanced at the same time decay by the
            # same factors, computed once per distinct gap (same values as _advance's)
            c_d = -1.0
            c_eb = c_h = c_ea = 0.0
            for j in range(n_post):
                wv = w[base + j]
                if wv != 0.0 and nspk[j] < max_per_neuron:
                    d = t_in - tref[j]
                    if d > 0.0:
                        if d != c_d:
                            c_d = d
                            c_eb = math.exp(-_nrn(beta, 0) * d)
                            c_h = psp(d, _nrn(alpha, 0), _nrn(beta, 0))
                            c_ea = math.exp(-_nrn(alpha, 0) * d)
                        v0[j] = v0[j] * c_eb + i0[j] * c_h
                        i0[j] = i0[j] * c_ea
                        tref[j] = t_in
                    i0[j] += wv * amp
        else:
            for j in range(n_post):
                wv = w[base + j]
                if wv != 0.0 and nspk[j] < max_per_neuron:
                    _advance(j, t_in, v0, i0, tref, _nrn(alpha, j), _nrn(beta, j))
                    i0[j] += wv * amp
        ptr += 1
        horizon = t_max
        if ptr < n_ev and ev_t[ptr] < horizon:
            horizon = ev_t[ptr]
        _predict_all(n_post, max_per_neuron, nspk, horizon, v0, i0, tref, alpha, beta, theta,
                     pred, s_k, s_s, s_lo, s_hi)
        if use_heap:
            nh = 0
            for k in range(n_post):
                if pred[k] < INF:
                    heap[nh] = k
                    nh += 1
            for q in range(nh // 2 - 1, -1, -1):
                _heap_down(heap, nh, q, pred)
    return n_out


@njit(cache=True, nogil=True)
def _simulate_layers(in_t: np.ndarray, in_src: np.ndarray, in_amp, n_in_ev: int, w: np.ndarray,
                     n_post: np.ndarray, off_w: np.ndarray, off_r: np.ndarray, alpha, beta, theta,
                     n_spiking: int, t_max: float, max_hidden: int, max_out: int,
                     work: np.ndarray, iwork: np.ndarray, spk_t: np.ndarray,
                     spk_nrn: np.ndarray, spk_vdot: np.ndarray, layer_start: np.ndarray) -> int:
    """The first ``n_spiking`` layers in order (:func:`simulate_network`); ``alpha``, ``beta``,
    ``theta`` shared numbers or arrays over all neurons (layer l's at ``nrn_off[l]:``)."""
    n_layers = n_post.shape[0]
    layer_start[0] = 0
    a0 = 0
    for l in range(n_spiking):
        mpn = max_out if l == n_layers - 1 else max_hidden
        a1 = a0 + n_post[l]
        al = _span(alpha, a0, a1)
        be = _span(beta, a0, a1)
        th = _span(theta, a0, a1)
        if l == 0:
            end = simulate_layer(in_t, in_src, in_amp, n_in_ev, w, off_w[l], off_r[l], n_post[l],
                                 al, be, th, t_max, mpn, work[0], work[1], work[2], work[3],
                                 iwork, spk_t, spk_nrn, spk_vdot, layer_start[l])
        else:
            a = layer_start[l - 1]
            b = layer_start[l]
            end = simulate_layer(spk_t[a:b], spk_nrn[a:b], None, b - a, w, off_w[l], off_r[l],
                                 n_post[l], al, be, th, t_max, mpn, work[0], work[1], work[2],
                                 work[3], iwork, spk_t, spk_nrn, spk_vdot, layer_start[l])
        if end < 0:
            return STATUS_SPIKE_OVERFLOW
        layer_start[l + 1] = end
        a0 = a1
    return STATUS_OK


@njit(cache=True, nogil=True)
def simulate_network(in_t: np.ndarray, in_src: np.ndarray, n_in_ev: int, w: np.ndarray,
                     n_post: np.ndarray, off_w: np.ndarray, off_r: np.ndarray, alpha: float,
                     beta: float, theta: float, t_max: float, max_hidden: int, max_out: int,
                     work: np.ndarray, iwork: np.ndarray, spk_t: np.ndarray,
                     spk_nrn: np.ndarray, spk_vdot: np.ndarray, layer_start: np.ndarray) -> int:
    """All layers in order. Layer l's spikes are ``spk_*[layer_start[l]:layer_start[l+1]]``
    (``spk_nrn`` local to the layer). ``work`` (4, max n_post) float64 and ``iwork``
    (max n_post) int64 are scratch. Returns STATUS_OK or STATUS_SPIKE_OVERFLOW."""
    return _simulate_layers(in_t, in_src, None, n_in_ev, w, n_post, off_w, off_r, alpha, beta,
                            theta, n_post.shape[0], t_max, max_hidden, max_out, work, iwork,
                            spk_t, spk_nrn, spk_vdot, layer_start)


@njit(cache=True, nogil=True)
def simulate_network_pn(in_t: np.ndarray, in_src: np.ndarray, in_amp: np.ndarray, n_in_ev: int,
                        p: np.ndarray, n_post: np.ndarray, off_w: np.ndarray, off_r: np.ndarray,
                        nrn_off: np.ndarray, off_th: int, off_al: int, off_be: int,
                        n_spiking: int, t_max: float, max_hidden: int, max_out: int,
                        work: np.ndarray, iwork: np.ndarray, spk_t: np.ndarray,
                        spk_nrn: np.ndarray, spk_vdot: np.ndarray, layer_start: np.ndarray) -> int:
    """The first ``n_spiking`` layers (all of them, or all but a linear output) with per-neuron
    parameters read from ``p``; input events carry amplitudes ``in_amp``. Layer l's spikes are
    ``spk_*[layer_start[l]:layer_start[l+1]]``; the last spiking layer fires at most
    ``max_out`` times per neuron when it is the network's last layer, else ``max_hidden``.
    Returns STATUS_OK or STATUS_SPIKE_OVERFLOW."""
    n_all = nrn_off[n_post.shape[0]]
    return _simulate_layers(in_t, in_src, in_amp, n_in_ev, p, n_post, off_w, off_r,
                            p[off_al:off_al + n_all], p[off_be:off_be + n_all],
                            p[off_th:off_th + n_all], n_spiking, t_max, max_hidden, max_out, work,
                            iwork, spk_t, spk_nrn, spk_vdot, layer_start)


# ============================================================================ FP rows
@njit(cache=True, nogil=True, _nrt=False)
def _touch(idx: int, stamp: int, mark: np.ndarray, acc: np.ndarray, touched: np.ndarray,
           nt: int) -> int:
    if mark[idx] != stamp:
        mark[idx] = stamp
        acc[idx] = 0.0
        touched[nt] = idx
        nt += 1
    return nt


@njit(cache=True, nogil=True, _nrt=False)
def _add_row(g: int, c: float, row_ptr: np.ndarray, row_idx: np.ndarray, row_val: np.ndarray,
             stamp: int, mark: np.ndarray, acc: np.ndarray, touched: np.ndarray, nt: int) -> int:
    """``acc += c * row_g`` (the sparse row of an earlier spike g)."""
    for q in range(row_ptr[g], row_ptr[g + 1]):
        pp = row_idx[q]
        nt = _touch(pp, stamp, mark, acc, touched, nt)
        acc[pp] += c * row_val[q]
    return nt


@njit(cache=True, nogil=True, _nrt=False)
def _store_row(k: int, nt: int, nnz: int, spk_vdot: np.ndarray, acc: np.ndarray,
               touched: np.ndarray, row_ptr: np.ndarray, row_idx: np.ndarray,
               row_val: np.ndarray) -> int:
    """Append row k ``acc[touched[:nt]] / V'(f_k-)`` at ``nnz``: the new nnz, or -1 when
    ``row_idx`` is full (stamps are left in ``mark``: the caller zeroes it before it retries;
    clearing them here measured 10-20 % slower rows)."""
    if nnz + nt > row_idx.shape[0]:
        return -1
    inv = 1.0 / spk_vdot[k]
    for q in range(nt):
        pp = touched[q]
        row_idx[nnz] = pp
        row_val[nnz] = acc[pp] * inv
        nnz += 1
    row_ptr[k + 1] = nnz
    return nnz


@njit(cache=True, nogil=True)
def _fp_rows(in_t: np.ndarray, in_src: np.ndarray, in_amp, n_in_ev: int, w: np.ndarray,
             n_post: np.ndarray, off_w: np.ndarray, off_r: np.ndarray, alpha, beta, theta,
             off_th: int, off_al: int, off_be: int, n_spiking: int, spk_t: np.ndarray,
             spk_nrn: np.ndarray, spk_vdot: np.ndarray, layer_start: np.ndarray,
             row_ptr: np.ndarray, row_idx: np.ndarray, row_val: np.ndarray, acc: np.ndarray,
             mark: np.ndarray, touched: np.ndarray, t_cut: float = INF) -> int:
    """Rows of the first ``n_spiking`` layers' spikes (:func:`fp_rows`, :func:`fp_rows_pn`).
    ``alpha``, ``beta``, ``theta``: shared numbers (rows over the weights only) or arrays over
    all neurons (rows also over theta / alpha / beta at ``off_th`` / ``off_al`` / ``off_be``).
    Spikes at ``t >= t_cut`` below the last of these layers get empty rows: a row depends only
    on earlier spikes' rows, so when the caller reads rows of the last layer's spikes before
    ``t_cut`` only, those are the same, bit for bit."""
    pn = _per_neuron(theta)
    nnz = 0
    row_ptr[0] = 0
    a0 = 0
    for l in range(n_spiking):
        n = n_post[l]
        ow = off_w[l]
        orr = off_r[l]
        k0 = layer_start[l]
        if orr < 0:  # each neuron's spikes as a list: first, next (by index - k0), last
            first_own = np.full(n, -1, dtype=np.int64)
            last_own = np.full(n, -1, dtype=np.int64)
            next_own = np.empty(layer_start[l + 1] - k0, dtype=np.int64)
        else:
            first_own = last_own = next_own = np.empty(0, dtype=np.int64)
        for k in range(k0, layer_start[l + 1]):
            f = spk_t[k]
            if f >= t_cut and l < n_spiking - 1:
                row_ptr[k + 1] = nnz
                continue
            i = spk_nrn[k]
            gi = a0 + i
            al = _nrn(alpha, gi)
            be = _nrn(beta, gi)
            th = _nrn(theta, gi)
            q_th = off_th + gi
            q_al = off_al + gi
            q_be = off_be + gi
            stamp = k + 1
            nt = 0
            if pn:
                nt = _touch(q_th, stamp, mark, acc, touched, nt)
                nt = _touch(q_al, stamp, mark, acc, touched, nt)
                nt = _touch(q_be, stamp, mark, acc, touched, nt)
                acc[q_th] += 1.0
            if l == 0:
                for e in range(n_in_ev):
                    tg = in_t[e]
                    if tg >= f:
                        break
                    s = f - tg
                    amp = _amp(in_amp, e)
                    idx = ow + in_src[e] * n + i
                    nt = _touch(idx, stamp, mark, acc, touched, nt)
                    acc[idx] -= amp * psp(s, al, be)
                    if pn:
                        wa = w[idx] * amp
                        acc[q_al] -= wa * psp_dalpha(s, al, be)
                        acc[q_be] -= wa * psp_dbeta(s, al, be)
            else:
                for g in range(layer_start[l - 1], layer_start[l]):
                    tg = spk_t[g]
                    if tg >= f:
                        break
                    s = f - tg
                    idx = ow + spk_nrn[g] * n + i
                    nt = _touch(idx, stamp, mark, acc, touched, nt)
                    acc[idx] -= psp(s, al, be)
                    wv = w[idx]
                    if wv != 0.0:
                        if pn:
                            acc[q_al] -= wv * psp_dalpha(s, al, be)
                            acc[q_be] -= wv * psp_dbeta(s, al, be)
                        nt = _add_row(g, wv * psp_dot(s, al, be), row_ptr, row_idx, row_val,
                                      stamp, mark, acc, touched, nt)
            if orr < 0:
                # no recurrence: of the layer's earlier spikes only the neuron's own couple;
                # walk just those (in spike order, as the scan below would) instead of all
                g = first_own[i]
                while g >= 0:
                    tg = spk_t[g]
                    if tg >= f:
                        break
                    s = f - tg
                    e = math.exp(-be * s)
                    if pn:
                        acc[q_th] += e
                        acc[q_be] -= th * s * e
                    c = th * be * e
                    if c != 0.0:
                        nt = _add_row(g, c, row_ptr, row_idx, row_val, stamp, mark, acc, touched,
                                      nt)
                    g = next_own[g - k0]
                next_own[k - k0] = -1
                if last_own[i] < 0:
                    first_own[i] = k
                else:
                    next_own[last_own[i] - k0] = k
                last_own[i] = k
            else:
                for g in range(layer_start[l], k):
                    tg = spk_t[g]
                    if tg >= f:
                        break
                    s = f - tg
                    j = spk_nrn[g]
                    if j == i:
                        e = math.exp(-be * s)
                        if pn:
                            acc[q_th] += e
                            acc[q_be] -= th * s * e
                        c = th * be * e
                    else:
                        idx = orr + j * n + i
                        nt = _touch(idx, stamp, mark, acc, touched, nt)
                        acc[idx] -= psp(s, al, be)
                        wv = w[idx]
                        if pn:
                            acc[q_al] -= wv * psp_dalpha(s, al, be)
                            acc[q_be] -= wv * psp_dbeta(s, al, be)
                        c = wv * psp_dot(s, al, be)
                    if c != 0.0:
                        nt = _add_row(g, c, row_ptr, row_idx, row_val, stamp, mark, acc, touched,
                                      nt)
            nnz = _store_row(k, nt, nnz, spk_vdot, acc, touched, row_ptr, row_idx, row_val)
            if nnz < 0:
                return STATUS_ROW_OVERFLOW
        a0 += n
    # clear stamps so the scratch can be reused by the next call
    for q in range(nnz):
        mark[row_idx[q]] = 0
    return STATUS_OK


@njit(cache=True, nogil=True)
def fp_rows(in_t: np.ndarray, in_src: np.ndarray, n_in_ev: int, w: np.ndarray,
            n_post: np.ndarray, off_w: np.ndarray, off_r: np.ndarray, alpha: float, beta: float,
            theta: float, spk_t: np.ndarray, spk_nrn: np.ndarray, spk_vdot: np.ndarray,
            layer_start: np.ndarray, row_ptr: np.ndarray, row_idx: np.ndarray,
            row_val: np.ndarray, acc: np.ndarray, mark: np.ndarray, touched: np.ndarray) -> int:
    """Forward-substitution rows ``df_k/dw`` (CSR in ``row_ptr/row_idx/row_val``) for every
    spike of a simulated network (see module docstring). ``acc``/``mark``/``touched`` are
    scratch of the parameter vector's length (``mark`` must hold values < 1 on entry; it does
    again after STATUS_OK, and after STATUS_ROW_OVERFLOW once the caller zeroes it).
    Returns STATUS_OK or STATUS_ROW_OVERFLOW."""
    return _fp_rows(in_t, in_src, None, n_in_ev, w, n_post, off_w, off_r, alpha, beta, theta,
                    -1, -1, -1, n_post.shape[0], spk_t, spk_nrn, spk_vdot, layer_start, row_ptr,
                    row_idx, row_val, acc, mark, touched)


@njit(cache=True, nogil=True)
def fp_rows_pn(in_t: np.ndarray, in_src: np.ndarray, in_amp: np.ndarray, n_in_ev: int,
               p: np.ndarray, n_post: np.ndarray, off_w: np.ndarray, off_r: np.ndarray,
               nrn_off: np.ndarray, off_th: int, off_al: int, off_be: int, n_spiking: int,
               spk_t: np.ndarray, spk_nrn: np.ndarray, spk_vdot: np.ndarray,
               layer_start: np.ndarray, row_ptr: np.ndarray, row_idx: np.ndarray,
               row_val: np.ndarray, acc: np.ndarray, mark: np.ndarray,
               touched: np.ndarray) -> int:
    """Rows ``df_k/dp`` (CSR) of every spike of the first ``n_spiking`` layers, over weights
    and the per-neuron theta / alpha / beta (equations above). Scratch as :func:`fp_rows`.
    Returns STATUS_OK or STATUS_ROW_OVERFLOW."""
    n_all = nrn_off[n_post.shape[0]]
    return _fp_rows(in_t, in_src, in_amp, n_in_ev, p, n_post, off_w, off_r,
                    p[off_al:off_al + n_all], p[off_be:off_be + n_all], p[off_th:off_th + n_all],
                    off_th, off_al, off_be, n_spiking, spk_t, spk_nrn, spk_vdot, layer_start,
                    row_ptr, row_idx, row_val, acc, mark, touched)


# ============================================================================ losses and batches
@njit(cache=True, nogil=True, _nrt=False)
def _count_spikes(n_layers: int, layer_start: np.ndarray, spk_nrn: np.ndarray,
                  nrn_off: np.ndarray, counts: np.ndarray) -> None:
    """``counts[nrn_off[l] + i] += 1`` for every spike of neuron i in the first n_layers."""
    for l in range(n_layers):
        for k in range(layer_start[l], layer_start[l + 1]):
            counts[nrn_off[l] + spk_nrn[k]] += 1


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
def _fp_batch(in_times: np.ndarray, labels: np.ndarray, w: np.ndarray, n_post: np.ndarray,
              off_w: np.ndarray, off_r: np.ndarray, alpha, beta, theta, off_th: int, off_al: int,
              off_be: int, t_max: float, max_hidden: int, tau0: float, tau1: float,
              gamma: float, want_grad: bool, grad: np.ndarray, t_first: np.ndarray,
              losses: np.ndarray, counts: np.ndarray, silent_label: np.ndarray,
              spk_t: np.ndarray, spk_nrn: np.ndarray, spk_vdot: np.ndarray, row_ptr: np.ndarray,
              row_idx: np.ndarray, row_val: np.ndarray, work: np.ndarray, iwork: np.ndarray,
              acc: np.ndarray, mark: np.ndarray, touched: np.ndarray) -> int:
    """:func:`fp_batch` (``alpha``, ``beta``, ``theta`` shared numbers, offsets -1) and
    :func:`fp_batch_pn` (arrays over all neurons, rows also over them)."""
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
        st = _simulate_layers(in_t, in_src, None, n_ev, w, n_post, off_w, off_r, alpha, beta,
                              theta, n_layers, t_max, max_hidden, 1, work, iwork, spk_t,
                              spk_nrn, spk_vdot, layer_start)
        if st != STATUS_OK:
            return st
        _count_spikes(n_layers, layer_start, spk_nrn, nrn_off, counts)
        for o in range(n_out):
            t_first[b, o] = t_max
            out_spike[o] = -1
        t_last = -INF  # the last output spike: no row of a later hidden spike is needed
        for k in range(layer_start[n_layers - 1], layer_start[n_layers]):
            o = spk_nrn[k]
            t_first[b, o] = spk_t[k]
            out_spike[o] = k
            if spk_t[k] > t_last:
                t_last = spk_t[k]
        lab = labels[b]
        losses[b] = ttfs_loss(t_first[b], lab, tau0, tau1, gamma, dl_dt)
        silent_label[b] = 1 if out_spike[lab] < 0 else 0
        if not want_grad:
            continue
        st = _fp_rows(in_t, in_src, None, n_ev, w, n_post, off_w, off_r, alpha, beta, theta,
                      off_th, off_al, off_be, n_layers, spk_t, spk_nrn, spk_vdot, layer_start,
                      row_ptr, row_idx, row_val, acc, mark, touched, t_last)
        if st != STATUS_OK:
            return st
        for o in range(n_out):
            k = out_spike[o]
            if k >= 0:
                c = dl_dt[o]
                for q in range(row_ptr[k], row_ptr[k + 1]):
                    grad[row_idx[q]] += c * row_val[q]
    return STATUS_OK


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
    return _fp_batch(in_times, labels, w, n_post, off_w, off_r, alpha, beta, theta, -1, -1, -1,
                     t_max, max_hidden, tau0, tau1, gamma, want_grad, grad, t_first, losses,
                     counts, silent_label, spk_t, spk_nrn, spk_vdot, row_ptr, row_idx, row_val,
                     work, iwork, acc, mark, touched)


@njit(cache=True, nogil=True)
def fp_batch_pn(in_times: np.ndarray, labels: np.ndarray, p: np.ndarray, n_post: np.ndarray,
                off_w: np.ndarray, off_r: np.ndarray, nrn_off: np.ndarray, off_th: int,
                off_al: int, off_be: int, t_max: float, max_hidden: int, tau0: float,
                tau1: float, gamma: float, want_grad: bool, grad: np.ndarray,
                t_first: np.ndarray, losses: np.ndarray, counts: np.ndarray,
                silent_label: np.ndarray, spk_t: np.ndarray, spk_nrn: np.ndarray,
                spk_vdot: np.ndarray, row_ptr: np.ndarray, row_idx: np.ndarray,
                row_val: np.ndarray, work: np.ndarray, iwork: np.ndarray, acc: np.ndarray,
                mark: np.ndarray, touched: np.ndarray) -> int:
    """:func:`fp_batch` with per-neuron thresholds and rates read from ``p`` (the layout of
    section "per-neuron parameters": weights, then theta at ``off_th``, alpha at ``off_al``,
    beta at ``off_be``, each over all neurons, hidden and output); ``grad`` (len(p)) gets the
    exact TTFS-loss gradient by the weights and by every neuron's theta, alpha and beta."""
    n_all = nrn_off[n_post.shape[0]]
    return _fp_batch(in_times, labels, p, n_post, off_w, off_r, p[off_al:off_al + n_all],
                     p[off_be:off_be + n_all], p[off_th:off_th + n_all], off_th, off_al, off_be,
                     t_max, max_hidden, tau0, tau1, gamma, want_grad, grad, t_first, losses,
                     counts, silent_label, spk_t, spk_nrn, spk_vdot, row_ptr, row_idx, row_val,
                     work, iwork, acc, mark, touched)


# ============================================================================ linear readout
@njit(cache=True, nogil=True, _nrt=False)
def _pre_event(e: int, m0: int, pre_t: np.ndarray, pre_src: np.ndarray, pre_amp: np.ndarray,
               has_amp: bool, off_w: int, n_out: int, t_read: np.ndarray, n_read: int):
    """Presynaptic event e (time-sorted, after readout ``m0 - 1``): (the first readout index
    after it, or n_read; its amplitude; the start of its row of W_out in ``p``)."""
    tg = pre_t[e]
    while m0 < n_read and t_read[m0] <= tg:
        m0 += 1
    return m0, (pre_amp[e] if has_amp else 1.0), off_w + pre_src[e] * n_out


@njit(cache=True, nogil=True)
def linear_readout(pre_t: np.ndarray, pre_src: np.ndarray, pre_amp: np.ndarray, has_amp: bool,
                   n_pre: int, p: np.ndarray, off_w: int, n_out: int, alpha: np.ndarray,
                   beta: np.ndarray, bias: np.ndarray, t_read: np.ndarray, n_read: int,
                   v_out: np.ndarray) -> None:
    """``v_out[m, o] = V_o(t_read[m])`` of the linear output (equation above) for the first
    ``n_read`` readout times (sorted); presynaptic events ``pre_*[:n_pre]`` time-sorted."""
    for m in range(n_read):
        for o in range(n_out):
            v_out[m, o] = bias[o]
    m0 = 0
    for e in range(n_pre):
        m0, amp, base = _pre_event(e, m0, pre_t, pre_src, pre_amp, has_amp, off_w, n_out, t_read,
                                   n_read)
        if m0 >= n_read:
            break
        for o in range(n_out):
            wa = p[base + o] * amp
            if wa == 0.0:
                continue
            for m in range(m0, n_read):
                v_out[m, o] += wa * psp(t_read[m] - pre_t[e], alpha[o], beta[o])


@njit(cache=True, nogil=True)
def linear_readout_grad(pre_t: np.ndarray, pre_src: np.ndarray, pre_amp: np.ndarray,
                        has_amp: bool, n_pre: int, pre_rows: bool, p: np.ndarray, off_w: int,
                        n_out: int, q_al: int, q_be: int, q_b: int, alpha: np.ndarray,
                        beta: np.ndarray, t_read: np.ndarray, n_read: int, err: np.ndarray,
                        row_ptr: np.ndarray, row_idx: np.ndarray, row_val: np.ndarray,
                        row0: int, grad: np.ndarray) -> None:
    """Adds ``sum_m,o err[m, o] dV_o(t_read[m])/dp`` to ``grad``: the direct terms (W, alpha_o
    at ``q_al + o``, beta_o at ``q_be + o``, bias at ``q_b + o``) and, when ``pre_rows``, the
    presynaptic spikes' own dependence through their rows (``row_*``, spike e's row at
    ``row0 + e``): ``dV_o(t)/dg = -W_jo h_o'(t - g)``."""
    m0 = 0
    for m in range(n_read):
        for o in range(n_out):
            grad[q_b + o] += err[m, o]
    for e in range(n_pre):
        m0, amp, base = _pre_event(e, m0, pre_t, pre_src, pre_amp, has_amp, off_w, n_out, t_read,
                                   n_read)
        if m0 >= n_read:
            break
        coef = 0.0
        for o in range(n_out):
            wv = p[base + o]
            gw = 0.0
            ga = 0.0
            gb = 0.0
            gt = 0.0
            al = alpha[o]
            be = beta[o]
            for m in range(m0, n_read):
                er = err[m, o]
                if er == 0.0:
                    continue
                s = t_read[m] - pre_t[e]
                gw += er * psp(s, al, be)
                ga += er * psp_dalpha(s, al, be)
                gb += er * psp_dbeta(s, al, be)
                gt += er * psp_dot(s, al, be)
            grad[base + o] += amp * gw
            grad[q_al + o] += wv * amp * ga
            grad[q_be + o] += wv * amp * gb
            coef -= wv * amp * gt
        if pre_rows and coef != 0.0:
            k = row0 + e
            for q in range(row_ptr[k], row_ptr[k + 1]):
                grad[row_idx[q]] += coef * row_val[q]


@njit(cache=True, nogil=True)
def fp_regression_batch(ev_ptr: np.ndarray, ev_t: np.ndarray, ev_src: np.ndarray,
                        ev_amp: np.ndarray, t_read: np.ndarray, n_read: np.ndarray,
                        y: np.ndarray, mask: np.ndarray, p: np.ndarray, n_post: np.ndarray,
                        off_w: np.ndarray, off_r: np.ndarray, nrn_off: np.ndarray, off_th: int,
                        off_al: int, off_be: int, off_b: int, max_hidden: int, want_grad: bool,
                        grad: np.ndarray, v_out: np.ndarray, losses: np.ndarray,
                        counts: np.ndarray, spk_t: np.ndarray, spk_nrn: np.ndarray,
                        spk_vdot: np.ndarray, row_ptr: np.ndarray, row_idx: np.ndarray,
                        row_val: np.ndarray, work: np.ndarray, iwork: np.ndarray,
                        acc: np.ndarray, mark: np.ndarray, touched: np.ndarray,
                        err: np.ndarray) -> int:
    """A batch of regression samples through a network whose last layer is linear.

    Sample b: input events ``ev_*[ev_ptr[b]:ev_ptr[b+1]]`` (time-sorted), readout times
    ``t_read[:n_read[b]]`` (sorted, shared), targets ``y`` (B, M, n_out), ``mask`` (B, M).
    Writes ``v_out`` (B, M, n_out) (0 past ``n_read[b]``), ``losses[b] = sum_m,o mask 0.5
    (V - y)^2``, adds spikes per neuron to ``counts`` and (``want_grad``) the summed gradient
    of the losses to ``grad``. Spiking layers are simulated up to the last readout time.
    ``err`` is (M, n_out) scratch. Returns STATUS_OK or an overflow status (nothing valid)."""
    n_b = ev_ptr.shape[0] - 1
    n_layers = n_post.shape[0]
    n_spk = n_layers - 1
    n_out = n_post[n_layers - 1]
    layer_start = np.zeros(n_layers + 1, dtype=np.int64)
    lo = nrn_off[n_layers - 1]
    al_o = p[off_al + lo:off_al + lo + n_out]
    be_o = p[off_be + lo:off_be + lo + n_out]
    bias = p[off_b:off_b + n_out]
    for b in range(n_b):
        a = ev_ptr[b]
        z = ev_ptr[b + 1]
        nr = n_read[b]
        for m in range(v_out.shape[1]):
            for o in range(n_out):
                v_out[b, m, o] = 0.0
        if nr <= 0:
            losses[b] = 0.0
            continue
        t_end = t_read[nr - 1]
        st = simulate_network_pn(ev_t[a:z], ev_src[a:z], ev_amp[a:z], z - a, p, n_post, off_w,
                                 off_r, nrn_off, off_th, off_al, off_be, n_spk, t_end,
                                 max_hidden, max_hidden, work, iwork, spk_t, spk_nrn, spk_vdot,
                                 layer_start)
        if st != STATUS_OK:
            return st
        _count_spikes(n_spk, layer_start, spk_nrn, nrn_off, counts)
        if n_spk > 0:
            s0 = layer_start[n_spk - 1]
            s1 = layer_start[n_spk]
            pre_t = spk_t[s0:s1]
            pre_src = spk_nrn[s0:s1]
            linear_readout(pre_t, pre_src, ev_amp, False, s1 - s0, p, off_w[n_layers - 1], n_out,
                           al_o, be_o, bias, t_read, nr, v_out[b])
        else:
            s0 = 0
            s1 = z - a
            pre_t = ev_t[a:z]
            pre_src = ev_src[a:z]
            linear_readout(pre_t, pre_src, ev_amp[a:z], True, s1, p, off_w[0], n_out, al_o, be_o,
                           bias, t_read, nr, v_out[b])
        loss = 0.0
        for m in range(nr):
            mk = mask[b, m]
            for o in range(n_out):
                d = v_out[b, m, o] - y[b, m, o]
                err[m, o] = mk * d
                loss += 0.5 * mk * d * d
        losses[b] = loss
        if not want_grad:
            continue
        if n_spk > 0:
            st = fp_rows_pn(ev_t[a:z], ev_src[a:z], ev_amp[a:z], z - a, p, n_post, off_w, off_r,
                            nrn_off, off_th, off_al, off_be, n_spk, spk_t, spk_nrn, spk_vdot,
                            layer_start, row_ptr, row_idx, row_val, acc, mark, touched)
            if st != STATUS_OK:
                return st
            linear_readout_grad(pre_t, pre_src, ev_amp, False, s1 - s0, True, p,
                                off_w[n_layers - 1], n_out, off_al + lo, off_be + lo, off_b,
                                al_o, be_o, t_read, nr, err, row_ptr, row_idx, row_val, s0, grad)
        else:
            linear_readout_grad(pre_t, pre_src, ev_amp[a:z], True, s1, False, p, off_w[0], n_out,
                                off_al + lo, off_be + lo, off_b, al_o, be_o, t_read, nr, err,
                                row_ptr, row_idx, row_val, 0, grad)
    return STATUS_OK
