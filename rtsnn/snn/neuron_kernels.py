"""One kernel per node kind of the model graph (numba, float32 state, no allocation), each with a
plain-numpy twin (``*_np``) that the tests compare bit for bit.

Spiking nodes (``LIF``, ``CubaLIF``, ``ALIF``, ``IF``), per neuron ``i``, with ``I`` the summed
input of the tick, ``zp = z[t-1]``, per-neuron float32 parameters ``alpha`` (membrane decay),
``alpha_syn`` (synaptic decay, CubaLIF), ``rho`` (adaptation decay, ALIF), ``beta`` (adaptation
strength), ``v_th``, ``gain``, ``leak = (1 - alpha) v_leak``, ``v_reset``, ``reset_zero``
(0 subtract, 1 to ``v_reset``) and ``n_ref`` (refractory ticks)::

    isyn = alpha_syn isyn + I;  u = isyn            (CubaLIF; u = I otherwise)
    a    = rho a + zp;          thr = v_th + beta a (ALIF; thr = v_th otherwise)
    reset at the next tick (reset_now = False):
        subtract: v = alpha v + leak + gain u - v_th zp
        zero:     v = alpha (v_reset if zp else v) + leak + gain u
    reset in the tick of the spike (reset_now = True):
        v = alpha v + leak + gain u;  after the test below, on a spike v = v - v_th | v_reset
    reset at the next tick, clamping (clamp = True, reset_now = False; snnTorch's Synaptic,
    RLeaky and RSynaptic with reset_mechanism='zero'):
        zero:     v = v_reset if zp else alpha v + leak + gain u   (the tick's input is dropped too)
        subtract: as without clamp
    z = 1 if v >= thr (v > thr when strict) and refr <= 0 else 0;
    refr = n_ref on a spike, else max(refr - 1, 0)

With ``gain = 1``, ``leak = 0`` and subtractive reset at the next tick this is exactly the
arithmetic of :func:`rtsnn.snn.kernels.neuron_update` (``alpha v + 0 + 1 u`` rounds as
``alpha v + u`` in IEEE float32), so a graph reproduces today's single-layer network bit for bit.
``IF`` is the spiking kernel with ``alpha = 1`` and no leak.

The per-neuron arithmetic is written once, in :func:`spiking_element`; the live tick
(:func:`spiking_update`, every switch; :func:`spiking_update_subtract`, the branch-free fast path
for subtractive reset at the next tick), BPTT's forward pass and e-prop's forward pass inline it.

``LI`` (leaky integrator; the readout trace): ``y = kappa y + leak + gain I``.
``Delay``: ``y_i[t] = x_i[t - steps_i]`` through a ring of ``max(steps) + 1`` rows.
Projections: :func:`add_into`, :func:`bias_into` here; the graph's one-call projection and
accumulator kernels in :mod:`rtsnn.snn.projection_kernels`; the row kernels in
:mod:`rtsnn.snn.kernels`.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(inline="always", nogil=True)
def spiking_element(u, v, isyn, a, zp, ref, alpha, alpha_syn, rho, beta, v_th, gain, leak, v_reset,
                    reset_zero, n_ref, cuba, adaptive, reset_now, strict, clamp):
    """One spiking neuron for one tick: the equations of this module's docstring for scalar
    state ``v, isyn, a``, previous spike ``zp``, refractory count ``ref`` and scalar parameters
    (``reset_zero`` a bool). Returns ``(v, isyn, a, spike, ref)`` after the tick (``isyn``,
    ``a`` unchanged without ``cuba``, ``adaptive``)::

        isyn = alpha_syn isyn + u;  u = isyn              (cuba)
        a    = rho a + zp;          thr = v_th + beta a   (adaptive; thr = v_th otherwise)
        v    = alpha v + leak + gain u - v_th zp          (reset at the next tick, subtract)
        v    = alpha (v_reset if zp else v) + leak + gain u   (reset at the next tick, to v_reset)
        v    = alpha v + leak + gain u, then on a spike v - v_th | v_reset   (reset_now)
        v    = v_reset if zp else alpha v + leak + gain u   (clamp, reset to v_reset at the next tick)
        spike = v >= thr (v > thr if strict) and ref <= 0;  ref = n_ref on a spike, else max(ref - 1, 0)

    The one per-neuron body of every engine: the live tick (:func:`spiking_update`,
    :func:`spiking_update_subtract`), BPTT's forward pass
    (:func:`rtsnn.learn.offline.bptt_kernels.layer_forward`) and e-prop's
    (:func:`rtsnn.learn.online.eprop_kernels.forward_step`) all call it, inlined into their
    loops (``inline='always'``: a call per neuron would cost more than the neuron).

    Generic over the float types of its arguments: the result of each operation has the
    wider type of its operands, as in ``spiking_update`` on arrays of those types."""
    if cuba:
        u = alpha_syn * isyn + u
        isyn = u
    thr = v_th
    if adaptive:
        a = rho * a + zp
        thr = v_th + beta * a
    if reset_now:
        vi = alpha * v + leak + gain * u
    elif clamp and reset_zero:
        vi = v_reset if zp != 0 else alpha * v + leak + gain * u
    elif reset_zero:
        vp = v_reset if zp != 0 else v
        vi = alpha * vp + leak + gain * u
    else:
        vi = alpha * v + leak + gain * u - v_th * zp
    spike = ((vi > thr) if strict else (vi >= thr)) & (ref <= 0)
    if reset_now and spike:
        vi = v_reset if reset_zero else vi - v_th
    ref_new = n_ref if spike else max(ref - 1, 0)
    return vi, isyn, a, spike, ref_new


@njit(cache=True, nogil=True)
def spiking_update(cur: np.ndarray, v: np.ndarray, isyn: np.ndarray, a: np.ndarray, z: np.ndarray,
                   refr: np.ndarray, alpha: np.ndarray, alpha_syn: np.ndarray, rho: np.ndarray,
                   beta: np.ndarray, v_th: np.ndarray, gain: np.ndarray, leak: np.ndarray,
                   v_reset: np.ndarray, reset_zero: np.ndarray, n_ref: np.ndarray, cuba: bool,
                   adaptive: bool, reset_now: bool, strict: bool = False, clamp: bool = False) -> int:
    """Advance the spiking neurons one tick from input ``cur``; returns the number of spikes.
    ``z`` holds ``z[t-1]`` on entry and ``z[t]`` on return (see the module docstring). Every
    switch, per-neuron reset modes; the body is :func:`spiking_element`."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    n_spikes = 0
    for i in range(v.shape[0]):
        vi, si, ai, spike, ref = spiking_element(
            cur[i], v[i], isyn[i], a[i], z[i], refr[i], alpha[i], alpha_syn[i], rho[i], beta[i], v_th[i], gain[i],
            leak[i], v_reset[i], reset_zero[i] != 0, n_ref[i], cuba, adaptive, reset_now, strict, clamp)
        v[i] = vi
        if cuba:
            isyn[i] = si
        if adaptive:
            a[i] = ai
        refr[i] = ref
        z[i] = one if spike else zero
        n_spikes += np.int64(spike)
    return n_spikes


def spiking_update_np(cur, v, isyn, a, z, refr, alpha, alpha_syn, rho, beta, v_th, gain, leak, v_reset,
                      reset_zero, n_ref, cuba, adaptive, reset_now, strict=False, clamp=False) -> int:
    """Numpy twin of :func:`spiking_update` (same float32 operations, vectorised)."""
    f = np.float32
    zp = z.copy()
    u = cur.astype(f)
    if cuba:
        u = (alpha_syn * isyn + u).astype(f)
        isyn[...] = u
    thr = v_th
    if adaptive:
        a[...] = (rho * a + zp).astype(f)
        thr = (v_th + beta * a).astype(f)
    if reset_now:
        vi = ((alpha * v + leak) + gain * u).astype(f)
    else:
        vp = np.where((reset_zero != 0) & (zp != 0), v_reset, v).astype(f)
        base = ((alpha * vp + leak) + gain * u).astype(f)
        vi = np.where(reset_zero != 0, base, (base - v_th * zp).astype(f)).astype(f)
        if clamp:
            plain = ((alpha * v + leak) + gain * u).astype(f)
            vi = np.where(reset_zero != 0, np.where(zp != 0, v_reset, plain), vi).astype(f)
    spike = ((vi > thr) if strict else (vi >= thr)) & (refr <= 0)
    if reset_now:
        vi = np.where(spike, np.where(reset_zero != 0, v_reset, (vi - v_th).astype(f)), vi).astype(f)
    v[...] = vi
    refr[...] = np.where(spike, n_ref, np.maximum(refr - 1, 0)).astype(np.int32)
    z[...] = spike.astype(f)
    return int(spike.sum())


# ---------------------------------------------------------------- the fast path
# rows of the float32 state block (4, n) and parameter block (7, n) of spiking_update_subtract
S_V, S_ISYN, S_A, S_Z = range(4)
N_STATE_ROWS = 4
P_ALPHA, P_ALPHA_SYN, P_RHO, P_BETA, P_VTH, P_GAIN, P_LEAK = range(7)
N_PARAM_ROWS = 7
# bits of its ``flags``
F_CUBA, F_ADAPTIVE, F_STRICT = 1, 2, 4


@njit(inline="always", nogil=True)
def _subtract_loop(cur, st, refr, n_ref, p, cuba, adaptive, strict):
    # called with literal switches only, so after inlining every `if` on them is decided at
    # compile time and the loop body is straight-line code (selects, no branches)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    n_spikes = 0
    for i in range(cur.shape[0]):
        vi, si, ai, spike, ref = spiking_element(
            cur[i], st[S_V, i], st[S_ISYN, i], st[S_A, i], st[S_Z, i], refr[i], p[P_ALPHA, i], p[P_ALPHA_SYN, i],
            p[P_RHO, i], p[P_BETA, i], p[P_VTH, i], p[P_GAIN, i], p[P_LEAK, i], zero, False, n_ref[i], cuba,
            adaptive, False, strict, False)
        st[S_V, i] = vi
        if cuba:
            st[S_ISYN, i] = si
        if adaptive:
            st[S_A, i] = ai
        refr[i] = ref
        st[S_Z, i] = one if spike else zero
        n_spikes += np.int64(spike)
    return n_spikes


@njit(cache=True, nogil=True)
def spiking_update_subtract(cur: np.ndarray, st: np.ndarray, refr: np.ndarray, n_ref: np.ndarray,
                            p: np.ndarray, flags: int) -> int:
    """:func:`spiking_update` for the common setting, bit for bit: every neuron resets by
    subtraction at the next tick (``reset_at`` ``'next'`` or ``'next_clamp'``, which differ only
    for a reset to ``v_reset``); CubaLIF, ALIF, refractoriness and ``spike_if`` are allowed.

    State ``st`` (4, n) float32, rows ``S_V, S_ISYN, S_A, S_Z`` (``z`` holds ``z[t-1]`` on entry);
    ``refr`` (n,) int32; parameters ``p`` (7, n) float32, rows ``P_ALPHA, P_ALPHA_SYN, P_RHO,
    P_BETA, P_VTH, P_GAIN, P_LEAK``; ``n_ref`` (n,) int32; ``flags``: ``F_CUBA | F_ADAPTIVE |
    F_STRICT``. The switches select one of eight loops here, outside the loop, so each loop is
    straight-line code over the same :func:`spiking_element` (no per-neuron reset-mode test),
    and the blocks cost one argument each (the call from Python pays per argument). Returns
    the number of spikes."""
    cuba = (flags & F_CUBA) != 0
    adaptive = (flags & F_ADAPTIVE) != 0
    if (flags & F_STRICT) != 0:
        if cuba:
            if adaptive:
                return _subtract_loop(cur, st, refr, n_ref, p, True, True, True)
            return _subtract_loop(cur, st, refr, n_ref, p, True, False, True)
        if adaptive:
            return _subtract_loop(cur, st, refr, n_ref, p, False, True, True)
        return _subtract_loop(cur, st, refr, n_ref, p, False, False, True)
    if cuba:
        if adaptive:
            return _subtract_loop(cur, st, refr, n_ref, p, True, True, False)
        return _subtract_loop(cur, st, refr, n_ref, p, True, False, False)
    if adaptive:
        return _subtract_loop(cur, st, refr, n_ref, p, False, True, False)
    return _subtract_loop(cur, st, refr, n_ref, p, False, False, False)


def spiking_update_subtract_np(cur, st, refr, n_ref, p, flags) -> int:
    """Numpy twin of :func:`spiking_update_subtract`: :func:`spiking_update_np` on the rows with
    every reset by subtraction at the next tick."""
    n = st.shape[1]
    return spiking_update_np(cur, st[S_V], st[S_ISYN], st[S_A], st[S_Z], refr, p[P_ALPHA], p[P_ALPHA_SYN],
                             p[P_RHO], p[P_BETA], p[P_VTH], p[P_GAIN], p[P_LEAK], np.zeros(n, np.float32),
                             np.zeros(n, np.uint8), n_ref, bool(flags & F_CUBA), bool(flags & F_ADAPTIVE), False,
                             strict=bool(flags & F_STRICT))


@njit(cache=True, nogil=True)
def li_update(cur: np.ndarray, y: np.ndarray, kappa: np.ndarray, gain: np.ndarray, leak: np.ndarray) -> None:
    """Leaky integrator: ``y = kappa y + leak + gain I`` per element."""
    for i in range(y.shape[0]):
        y[i] = kappa[i] * y[i] + leak[i] + gain[i] * cur[i]


def li_update_np(cur, y, kappa, gain, leak) -> None:
    f = np.float32
    y[...] = ((kappa * y + leak) + gain * cur.astype(f)).astype(f)


@njit(cache=True, nogil=True)
def delay_update(x: np.ndarray, ring: np.ndarray, head: np.ndarray, steps: np.ndarray, y: np.ndarray) -> None:
    """``y_i[t] = x_i[t - steps_i]``: writes ``x`` into row ``head[0]`` of ``ring`` (D+1, n),
    reads each element ``steps_i`` rows back, then advances ``head``."""
    depth = ring.shape[0]
    h = head[0]
    for i in range(x.shape[0]):
        ring[h, i] = x[i]
    for i in range(x.shape[0]):
        k = h - steps[i]
        if k < 0:
            k += depth
        y[i] = ring[k, i]
    head[0] = (h + 1) % depth


def delay_update_np(x, ring, head, steps, y) -> None:
    depth = ring.shape[0]
    h = int(head[0])
    ring[h] = x
    y[...] = ring[(h - steps) % depth, np.arange(x.shape[0])]
    head[0] = (h + 1) % depth


@njit(cache=True, nogil=True)
def add_into(src: np.ndarray, acc: np.ndarray) -> None:
    """``acc += src`` (an edge with no projection into a node that sums several inputs)."""
    for i in range(acc.shape[0]):
        acc[i] += src[i]


@njit(cache=True, nogil=True)
def fill(acc: np.ndarray, value: np.float32) -> None:
    for i in range(acc.shape[0]):
        acc[i] = value


@njit(cache=True, nogil=True)
def bias_into(bias: np.ndarray, acc: np.ndarray) -> None:
    """``acc += b``."""
    for i in range(acc.shape[0]):
        acc[i] += bias[i]

