"""Numba kernels of BPTT with surrogate gradients for the runtime's LIF / ALIF dynamics.

One spiking layer (batch ``B``, ``n`` neurons, time-major arrays ``(T, B, n)``), exactly the
dynamics of :mod:`rtsnn.snn.kernels` with per-neuron leak ``alpha`` and threshold ``v_th``::

    I[t] = Iff[t] + w_rec^T z[t-1]                 Iff = W^T x[t] precomputed by the caller
    v[t] = alpha v[t-1] + I[t] - v_th z[t-1]       reset by subtraction
    v[t] = alpha (1 - z[t-1]) v[t-1] + I[t]        reset to zero (``reset_zero``)
    a[t] = rho a[t-1] + z[t-1]                     (ALIF; a = 0 for LIF)
    z[t] = H(v[t] - v_th - beta a[t]) m[t]         m[t] = 1 unless refractory (n_ref steps)

Backward (adjoints ``e_v = dL/dv``, ``e_a = dL/da``; ``ext[t] = dL/dz[t]`` from outside the
layer, i.e. from the next layer, the readout or the loss; ``g`` the surrogate, ``s`` the
per-layer calibration scale)::

    e_z[t] = ext[t] + w_rec e_v[t+1] + e_a[t+1] - v_th e_v[t+1]   (last term dropped when the
                                                                  reset path is detached)
    h[t]   = e_z[t] m[t] s g(v[t] - v_th - beta a[t])
    e_v[t] = h[t] + alpha e_v[t+1]
    e_a[t] = -beta h[t] + rho e_a[t+1]
    dL/dI[t] = e_v[t];  dL/dalpha += e_v[t] v[t-1];  dL/dv_th += -h[t] - e_v[t] z[t-1]

Reset to zero (``v[t+1] = alpha (1 - z[t]) v[t] + I[t+1]``: the membrane a spike left is
dropped, the live tick's ``reset_zero`` with ``v_reset = 0`` at the next tick), the same
adjoints with the reset terms of that equation::

    e_z[t] = ext[t] + w_rec e_v[t+1] + e_a[t+1] - alpha v[t] e_v[t+1]   (last term dropped when
                                                                       the reset is detached)
    e_v[t] = h[t] + alpha (1 - z[t]) e_v[t+1]
    dL/dalpha += e_v[t] (1 - z[t-1]) v[t-1];  dL/dv_th += -h[t]

(snnTorch's ``Leaky(reset_mechanism='zero')`` is this equation with the reset detached.)

The neuron step of the forward pass is :func:`rtsnn.snn.neuron_kernels.spiking_element`, the
per-neuron body of the live tick's :func:`rtsnn.snn.neuron_kernels.spiking_update` (also called
by e-prop's forward).
The refractory gate ``m`` is treated as a constant (it depends on spikes only). Kernels work
on a time segment: they take the state before the segment (forward) and the adjoints after
it (backward, updated in place to the adjoints at the segment start), so a long sequence can
be recomputed segment by segment from checkpointed states (see :mod:`rtsnn.learn.offline.bptt_engine`).

Readout (leaky trace of the last spiking layer, as in the runtime)::

    r[t] = kappa r[t-1] + z[t];   y[t] = w_out^T r[t] + b_out
    e_r[t] = dL/dr[t] (direct) + kappa e_r[t+1];  dL/dz[t] += e_r[t];  dL/dkappa += e_r[t] r[t-1]
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rtsnn.learn.offline.surrogate import surrogate_grad
# the per-neuron body of every engine's forward pass (the live tick's, e-prop's and this one's);
# calling spiking_update on each (t, b) row instead was measured 25-30 % slower here (per-call
# argument and view overhead), hence the inlined element
from rtsnn.snn.neuron_kernels import spiking_element


@njit(cache=True, nogil=True)
def layer_forward(iff: np.ndarray, w_rec: np.ndarray, recurrent: bool, alpha: np.ndarray, v_th: np.ndarray,
                  rho: float, beta: float, n_ref: int, adaptive: bool,
                  v: np.ndarray, a: np.ndarray, z: np.ndarray, refr: np.ndarray,
                  vs: np.ndarray, as_: np.ndarray, zs: np.ndarray, ms: np.ndarray,
                  reset_zero: bool = False) -> None:
    """Run one layer over ``iff`` (T, B, n) from state ``v, a, z, refr`` (B, n; updated in place).

    Writes membrane ``vs``, adaptation ``as_``, spikes ``zs`` and not-refractory mask ``ms``
    (all (T, B, n), dtype of ``iff``). Recurrent input is added event-driven (rows of ``w_rec``
    of the neurons that spiked at t-1) into a float64 current. The neuron step is the live
    tick's (:func:`spiking_element`) with reset at the next tick (by subtraction, or to
    ``v_reset = 0`` with ``reset_zero``), ``gain = 1``,
    ``leak = 0``, no synaptic current; ``rho``, ``beta`` and the current are float64, so the
    membrane sum and the threshold test are float64 and ``v`` is rounded to the state dtype
    when stored. Without adaptation ``a`` is held at 0."""
    T, B, n = iff.shape
    cur = np.empty(n, dtype=np.float64)
    zero = 0.0
    for t in range(T):
        for b in range(B):
            for i in range(n):
                cur[i] = iff[t, b, i]
            if recurrent:
                for j in range(n):
                    zj = z[b, j]
                    if zj != 0:
                        for i in range(n):
                            cur[i] += w_rec[j, i] * zj
            for i in range(n):
                ref = refr[b, i]
                vi, _, ai, spike, ref_new = spiking_element(
                    cur[i], v[b, i], zero, a[b, i] if adaptive else zero, z[b, i], ref, alpha[i], zero, rho, beta,
                    v_th[i], 1.0, zero, zero, reset_zero, n_ref, False, adaptive, False, False, False)
                zi = 1.0 if spike else 0.0
                v[b, i] = vi
                a[b, i] = ai
                z[b, i] = zi
                refr[b, i] = ref_new
                vs[t, b, i] = vi
                as_[t, b, i] = ai
                zs[t, b, i] = zi
                ms[t, b, i] = 1.0 if ref <= 0 else 0.0


@njit(cache=True, nogil=True)
def layer_backward(ext: np.ndarray, vs: np.ndarray, as_: np.ndarray, zs: np.ndarray, ms: np.ndarray,
                   z0: np.ndarray, v0: np.ndarray, w_rec: np.ndarray, recurrent: bool,
                   alpha: np.ndarray, v_th: np.ndarray, rho: float, beta: float, adaptive: bool,
                   kind: int, p: float, scale: float, detach_reset: bool,
                   ev_n: np.ndarray, ea_n: np.ndarray, d_cur: np.ndarray,
                   d_alpha: np.ndarray, d_vth: np.ndarray, reset_zero: bool = False) -> None:
    """Backward through one layer over a segment (see module docstring; ``reset_zero``: the
    reset-to-zero adjoints).

    ``ext`` (T, B, n): dL/dz from outside; ``vs, as_, zs, ms``: the forward record of the
    segment; ``z0, v0`` (B, n): spikes and membrane just before the segment. ``ev_n, ea_n``
    (B, n, float64): adjoints of v and a at the step after the segment, updated in place to
    those at its first step. Writes ``d_cur`` (T, B, n) = dL/dI and accumulates ``d_alpha``,
    ``d_vth`` (n, float64)."""
    T, B, n = ext.shape
    rec = np.zeros(n, dtype=np.float64)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            if recurrent:
                for j in range(n):
                    acc = 0.0
                    for i in range(n):
                        acc += w_rec[j, i] * ev_n[b, i]
                    rec[j] = acc
            for i in range(n):
                evn = ev_n[b, i]
                ez = ext[t, b, i] + rec[i]
                if adaptive:
                    ez += ea_n[b, i]
                vt = vs[t, b, i]
                if not detach_reset:
                    if reset_zero:
                        ez -= alpha[i] * vt * evn
                    else:
                        ez -= v_th[i] * evn
                thr = v_th[i] + beta * as_[t, b, i]
                h = 0.0
                if ms[t, b, i] != 0 and ez != 0:
                    h = ez * scale * surrogate_grad(vt - thr, kind, p)
                if reset_zero:
                    ev = h + (alpha[i] * evn if zs[t, b, i] == 0 else 0.0)
                else:
                    ev = h + alpha[i] * evn
                if t > 0:
                    zprev = zs[t - 1, b, i]
                    vprev = vs[t - 1, b, i]
                else:
                    zprev = z0[b, i]
                    vprev = v0[b, i]
                d_cur[t, b, i] = ev
                if reset_zero:
                    if zprev == 0:
                        d_alpha[i] += ev * vprev
                    d_vth[i] += -h
                else:
                    d_alpha[i] += ev * vprev
                    d_vth[i] += -h - ev * zprev
                if adaptive:
                    ea_n[b, i] = -beta * h + rho * ea_n[b, i]
                ev_n[b, i] = ev


@njit(cache=True, nogil=True)
def readout_forward(zs: np.ndarray, kappa: float, r: np.ndarray, rs: np.ndarray) -> None:
    """Leaky trace ``r[t] = kappa r[t-1] + z[t]`` over ``zs`` (T, B, n) from ``r`` (B, n,
    updated in place); writes ``rs`` (T, B, n)."""
    T, B, n = zs.shape
    for t in range(T):
        for b in range(B):
            for i in range(n):
                ri = kappa * r[b, i] + zs[t, b, i]
                r[b, i] = ri
                rs[t, b, i] = ri


@njit(cache=True, nogil=True)
def readout_backward(d_rs: np.ndarray, rs: np.ndarray, r0: np.ndarray, kappa: float,
                     er_n: np.ndarray, ext: np.ndarray) -> float:
    """Adjoint of :func:`readout_forward`: ``d_rs`` (T, B, n) = direct dL/dr[t] (from the
    output weights); ``er_n`` (B, n, float64) the adjoint after the segment (updated in place);
    adds ``e_r[t]`` into ``ext`` (dL/dz of the last layer). Returns this segment's dL/dkappa."""
    T, B, n = d_rs.shape
    dk = 0.0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            for i in range(n):
                er = d_rs[t, b, i] + kappa * er_n[b, i]
                rprev = rs[t - 1, b, i] if t > 0 else r0[b, i]
                dk += er * rprev
                ext[t, b, i] += er
                er_n[b, i] = er
    return dk


# ---------------------------------------------------------------- products over (T, B, .)
# Written as loops rather than BLAS calls: the left operands are spike rasters (mostly
# zeros, skipped), the sizes are small, and a multithreaded BLAS on a shared 2-core machine
# spends more time spinning than computing (measured 8x slower than single-threaded).

@njit(cache=True, nogil=True)
def sparse_matmul(h: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """``out[t, b] = h[t, b] @ w`` (h (T, B, n_in), w (n_in, n), out (T, B, n)), skipping
    zero entries of ``h``."""
    T, B, n_in = h.shape
    n = w.shape[1]
    for t in range(T):
        for b in range(B):
            for i in range(n):
                out[t, b, i] = 0.0
            for j in range(n_in):
                hj = h[t, b, j]
                if hj != 0:
                    for i in range(n):
                        out[t, b, i] += hj * w[j, i]


@njit(cache=True, nogil=True)
def outer_accumulate(h: np.ndarray, d: np.ndarray, g: np.ndarray) -> None:
    """``g += sum_{t,b} h[t, b]^T d[t, b]`` (h (T, B, n_in), d (T, B, n), g (n_in, n), float64),
    skipping zero entries of ``h``."""
    T, B, n_in = h.shape
    n = d.shape[2]
    for t in range(T):
        for b in range(B):
            for j in range(n_in):
                hj = h[t, b, j]
                if hj != 0:
                    for i in range(n):
                        g[j, i] += hj * d[t, b, i]


@njit(cache=True, nogil=True)
def matmul_transposed(d: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """``out[t, b] = w @ d[t, b]`` (d (T, B, n), w (n_in, n), out (T, B, n_in))."""
    T, B, n = d.shape
    n_in = w.shape[0]
    for t in range(T):
        for b in range(B):
            for j in range(n_in):
                acc = 0.0
                for i in range(n):
                    acc += w[j, i] * d[t, b, i]
                out[t, b, j] = acc
