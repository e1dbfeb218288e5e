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

``LI`` (leaky integrator; the readout trace): ``y = kappa y + leak + gain I``.
``Delay``: ``y_i[t] = x_i[t - steps_i]`` through a ring of ``max(steps) + 1`` rows.
Projections (``propagate_*``, ``add_into``) are in :mod:`rtsnn.snn.kernels` / here.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def spiking_update(cur: np.ndarray, v: np.ndarray, isyn: np.ndarray, a: np.ndarray, z: np.ndarray,
                   refr: np.ndarray, alpha: np.ndarray, alpha_syn: np.ndarray, rho: np.ndarray,
                   beta: np.ndarray, v_th: np.ndarray, gain: np.ndarray, leak: np.ndarray,
                   v_reset: np.ndarray, reset_zero: np.ndarray, n_ref: np.ndarray, cuba: bool,
                   adaptive: bool, reset_now: bool, strict: bool = False, clamp: bool = False) -> int:
    """Advance the spiking neurons one tick from input ``cur``; returns the number of spikes.
    ``z`` holds ``z[t-1]`` on entry and ``z[t]`` on return (see the module docstring)."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    n_spikes = 0
    for i in range(v.shape[0]):
        zp = z[i]
        u = cur[i]
        if cuba:
            u = alpha_syn[i] * isyn[i] + u
            isyn[i] = u
        thr = v_th[i]
        if adaptive:
            ai = rho[i] * a[i] + zp
            a[i] = ai
            thr = v_th[i] + beta[i] * ai
        if reset_now:
            vi = alpha[i] * v[i] + leak[i] + gain[i] * u
        elif clamp and reset_zero[i] != 0:
            vi = v_reset[i] if zp != zero else alpha[i] * v[i] + leak[i] + gain[i] * u
        elif reset_zero[i] != 0:
            vp = v_reset[i] if zp != zero else v[i]
            vi = alpha[i] * vp + leak[i] + gain[i] * u
        else:
            vi = alpha[i] * v[i] + leak[i] + gain[i] * u - v_th[i] * zp
        ref = refr[i]
        spike = ((vi > thr) if strict else (vi >= thr)) & (ref <= 0)
        if reset_now and spike:
            vi = v_reset[i] if reset_zero[i] != 0 else vi - v_th[i]
        v[i] = vi
        refr[i] = n_ref[i] if spike else max(ref - np.int32(1), np.int32(0))
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
