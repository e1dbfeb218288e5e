"""Numba kernels of e-prop (Bellec et al. 2020): traces, gradients, optimisers, and a forward step.

All kernels write into preallocated buffers and never allocate; they are generic over the
float dtype of the arrays (float32 in the live runtime, float64 for the NEST comparison).
Scalars travel in one float64 vector ``p`` (slots ``P_*``) because each numba argument costs
dispatch time per call.

Per tick ``t`` (after the network step that produced ``v[t], a[t], z[t]``), for presynaptic
``i`` and postsynaptic ``j``::

    zbar_in_i[t]  = alpha zbar_in_i[t-1]  + zeta x_i[t]           presynaptic traces
    zbar_rec_i[t] = alpha zbar_rec_i[t-1] + zeta z_i[t-1]
    A_j[t]        = v_th + beta_j a_j[t]                            threshold (beta_j = 0: LIF)
    psi_j[t]      = (gamma / v_th) max(0, 1 - |v_j[t] - A_j[t]| / v_th), 0 while refractory
    e_ji[t]       = psi_j[t] (zbar_i[t] - beta_j eps_ji[t-1])      eligibility trace
    eps_ji[t]     = rho eps_ji[t-1] + e_ji[t]                       ALIF adaptation trace
    ebar_ji[t]    = kappa ebar_ji[t-1] + g_e e_ji[t]                readout-filtered trace
    L_j[t]        = sum_k B_jk err_k[t]                             learning signal
    grad_ji      += L_j[t] ebar_ji[t] + c_j[t] e_ji[t]              (c_j: online rate regulariser)
    esum_ji      += e_ji[t]                                         (for the windowed regulariser)
    zbar_out_j[t] = kappa zbar_out_j[t-1] + g_out z_j[t]            readout trace
    grad_out_jk  += err_k[t] zbar_out_j[t],  grad_b_k += err_k[t]

``eps_ji = rho eps + e`` equals the paper's ``(rho - beta psi_j) eps + psi_j zbar_i``.
Refractoriness follows the runtime (:mod:`rtsnn.snn.kernels`): a neuron that spiked is
silent for ``n_ref`` steps; ``psi`` is 0 on those steps. Conventions: native rtsnn has
``zeta = g_e = g_out = 1``; NEST's ``eprop_*_bsshslm_2020`` has ``zeta = 1 - alpha`` (or 1 with
``regular_spike_arrival``) and ``g_e = g_out = 1 - kappa``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rtsnn.snn.neuron_kernels import spiking_element

# slots of the float64 parameter vector p of eprop_tick
(P_ALPHA, P_KAPPA, P_RHO, P_VTH, P_GAMMA, P_ZETA, P_GE, P_GOUT, P_NREF, P_ADAPTIVE,
 P_KREG, P_FTARGET, P_CREG_TICK) = range(13)
N_PARAMS = 13

# slots of the int64 counters of eprop_tick
C_TICKS = 0  # ticks accumulated into the gradient since the last reset
C_BAD_ERR = 1  # ticks skipped because the error (teaching signal) was not finite
N_COUNTERS = 2


@njit(cache=True, nogil=True)
def pseudo_derivative(v: np.ndarray, a: np.ndarray, beta: np.ndarray, refc: np.ndarray, z: np.ndarray,
                      psi: np.ndarray, v_th: float, gamma: float, n_ref: int) -> None:
    """``psi_j = (gamma/v_th) max(0, 1 - |v_j - (v_th + beta_j a_j)| / v_th)``, 0 while refractory.

    ``refc`` is the learner's own refractory countdown (runtime semantics): read before the
    step's spikes (``> 0``: the neuron could not spike this step, so ``psi = 0``), then set to
    ``n_ref`` where ``z_j = 1`` and decremented elsewhere.
    """
    height = gamma / v_th
    for j in range(v.shape[0]):
        thr = v_th + beta[j] * a[j]
        ps = height * max(0.0, 1.0 - abs(v[j] - thr) / v_th)
        ref = refc[j]
        psi[j] = 0.0 if ref > 0 else ps
        refc[j] = n_ref if z[j] != 0 else max(ref - 1, 0)


@njit(cache=True, nogil=True)
def _synapse_block(zbar: np.ndarray, psi: np.ndarray, L: np.ndarray, creg: np.ndarray, beta: np.ndarray,
                   eps: np.ndarray, ebar: np.ndarray, esum: np.ndarray, grad: np.ndarray,
                   kappa: float, rho: float, g_e: float, adaptive: bool, track_esum: bool) -> None:
    """Eligibility, filtered eligibility and gradient for one (pre, post) weight block."""
    n_post = psi.shape[0]
    dt = ebar.dtype.type
    k = dt(kappa)
    ge = dt(g_e)
    r = dt(rho)
    for i in range(zbar.shape[0]):
        zi = dt(zbar[i])
        if adaptive:
            for j in range(n_post):
                e = psi[j] * (zi - beta[j] * eps[i, j])
                eps[i, j] = r * eps[i, j] + e
                eb = k * ebar[i, j] + ge * e
                ebar[i, j] = eb
                grad[i, j] += L[j] * eb + creg[j] * e
                if track_esum:
                    esum[i, j] += e
        else:
            for j in range(n_post):
                e = psi[j] * zi
                eb = k * ebar[i, j] + ge * e
                ebar[i, j] = eb
                grad[i, j] += L[j] * eb + creg[j] * e
                if track_esum:
                    esum[i, j] += e


@njit(cache=True, nogil=True)
def eprop_tick(x: np.ndarray, z_prev: np.ndarray, z: np.ndarray, v: np.ndarray, a: np.ndarray,
               err: np.ndarray, beta: np.ndarray, B: np.ndarray, refc: np.ndarray,
               vec: np.ndarray, zbar_in: np.ndarray,
               eps_in: np.ndarray, ebar_in: np.ndarray, esum_in: np.ndarray, grad_in: np.ndarray,
               eps_rec: np.ndarray, ebar_rec: np.ndarray, esum_rec: np.ndarray, grad_rec: np.ndarray,
               grad_out: np.ndarray, grad_b: np.ndarray, count: np.ndarray, counters: np.ndarray,
               p: np.ndarray, track_esum: bool, learn_rec: bool) -> bool:
    """One e-prop tick (module docstring). Returns False (and only advances the traces) when
    ``err`` has a non-finite entry; that tick adds nothing to the gradients (counted).

    ``vec`` (6, n_rec) holds per-neuron vectors in rows: 0 ``zbar_rec``, 1 ``psi``, 2 ``L``,
    3 ``zbar_out``, 4 online-regulariser rate estimate ``fbar`` (spikes/step, EMA with decay
    ``k_reg``), 5 regulariser coefficient ``c = c_tick (fbar - f_target)``; ``count`` (n_rec)
    accumulates spikes (for the windowed regulariser). ``z_prev`` is overwritten with ``z`` at the end (ready for the next
    tick). ``learn_rec=False`` skips the recurrent block (no recurrent weights to train).
    """
    alpha = p[P_ALPHA]
    kappa = p[P_KAPPA]
    rho = p[P_RHO]
    zeta = p[P_ZETA]
    g_out = p[P_GOUT]
    adaptive = p[P_ADAPTIVE] != 0.0
    n_rec = v.shape[0]
    n_out = err.shape[0]
    zbar_rec = vec[0]
    psi = vec[1]
    L = vec[2]
    zbar_out = vec[3]
    fbar = vec[4]
    creg = vec[5]
    ok = True
    for k in range(n_out):
        if not np.isfinite(err[k]):
            ok = False
    for i in range(x.shape[0]):
        zbar_in[i] = alpha * zbar_in[i] + zeta * x[i]
    for i in range(n_rec):
        zbar_rec[i] = alpha * zbar_rec[i] + zeta * z_prev[i]
    pseudo_derivative(v, a, beta, refc, z, psi, p[P_VTH], p[P_GAMMA], int(p[P_NREF]))
    k_reg = p[P_KREG]
    f_t = p[P_FTARGET]
    c_tick = p[P_CREG_TICK]
    for j in range(n_rec):
        zbar_out[j] = kappa * zbar_out[j] + g_out * z[j]
        count[j] += z[j]
        fbar[j] = k_reg * fbar[j] + (1.0 - k_reg) * z[j]
        creg[j] = c_tick * (fbar[j] - f_t)
    if not ok:
        counters[C_BAD_ERR] += 1
        # traces still advance (they depend on the network, not on the teacher); the
        # eligibility state is advanced with a zero learning signal and no regulariser
        for j in range(n_rec):
            L[j] = 0.0
            creg[j] = 0.0
    else:
        for j in range(n_rec):
            acc = 0.0
            for k in range(n_out):
                acc += B[j, k] * err[k]
            L[j] = acc
        for j in range(n_rec):
            zo = zbar_out[j]
            for k in range(n_out):
                grad_out[j, k] += err[k] * zo
        for k in range(n_out):
            grad_b[k] += err[k]
        counters[C_TICKS] += 1
    _synapse_block(zbar_in, psi, L, creg, beta, eps_in, ebar_in, esum_in, grad_in, kappa, rho,
                   p[P_GE], adaptive, track_esum)
    if learn_rec:
        _synapse_block(zbar_rec, psi, L, creg, beta, eps_rec, ebar_rec, esum_rec, grad_rec, kappa, rho,
                       p[P_GE], adaptive, track_esum)
    for i in range(n_rec):
        z_prev[i] = z[i]
    return ok


@njit(cache=True, nogil=True)
def add_window_regulariser(grad: np.ndarray, esum: np.ndarray, coef: np.ndarray) -> None:
    """``grad_ji += coef_j esum_ji`` (NEST's windowed firing-rate regulariser)."""
    for i in range(grad.shape[0]):
        for j in range(grad.shape[1]):
            grad[i, j] += coef[j] * esum[i, j]


@njit(cache=True, nogil=True)
def gd_update(w: np.ndarray, grad: np.ndarray, lr: float, scale: float, w_min: float, w_max: float) -> None:
    """``w <- clip(w - lr * scale * grad, w_min, w_max)`` elementwise (any shape, flat view)."""
    wf = w.reshape(-1)
    gf = grad.reshape(-1)
    for i in range(wf.shape[0]):
        wf[i] = min(max(wf[i] - lr * scale * gf[i], w_min), w_max)


@njit(cache=True, nogil=True)
def adam_update(w: np.ndarray, grad: np.ndarray, m: np.ndarray, s: np.ndarray, lr: float, scale: float,
                beta1: float, beta2: float, eps: float, step: int, w_min: float, w_max: float) -> None:
    """Adam (NEST's form, ``step`` counted from 1)::

        g = scale * grad;  m <- b1 m + (1-b1) g;  s <- b2 s + (1-b2) g^2
        w <- clip(w - lr sqrt(1 - b2^step) / (1 - b1^step) * m / (sqrt(s) + eps), w_min, w_max)
    """
    lr_t = lr * np.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step)
    wf = w.reshape(-1)
    gf = grad.reshape(-1)
    mf = m.reshape(-1)
    sf = s.reshape(-1)
    for i in range(wf.shape[0]):
        g = scale * gf[i]
        mi = beta1 * mf[i] + (1.0 - beta1) * g
        si = beta2 * sf[i] + (1.0 - beta2) * g * g
        mf[i] = mi
        sf[i] = si
        wf[i] = min(max(wf[i] - lr_t * mi / (np.sqrt(si) + eps), w_min), w_max)


@njit(cache=True, nogil=True)
def all_finite_bounded(w: np.ndarray, max_abs: float) -> bool:
    """True when every entry is finite and ``|w| <= max_abs``."""
    wf = w.reshape(-1)
    for i in range(wf.shape[0]):
        x = wf[i]
        if not (abs(x) <= max_abs):  # also catches NaN
            return False
    return True


@njit(cache=True, nogil=True)
def forward_step(x: np.ndarray, w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray, beta: np.ndarray,
                 v: np.ndarray, a: np.ndarray, z: np.ndarray, refr: np.ndarray, y: np.ndarray,
                 cur: np.ndarray, p: np.ndarray) -> None:
    """One network step with per-neuron adaptation ``beta_j`` (LIF and ALIF neurons mixed)::

        v[t] = alpha v[t-1] + zeta (w_in^T x[t] + w_rec^T z[t-1]) - v_th z[t-1]
        a[t] = rho a[t-1] + z[t-1];  z[t] = H(v[t] - v_th - beta a[t]) unless refractory
        y[t] = kappa y[t-1] + g_out w_out^T z[t]

    With ``zeta = g_out = 1`` and equal ``beta`` this is the runtime's
    :func:`rtsnn.snn.kernels.network_step` written with the leaky readout; it exists for
    the offline NEST-convention runs (mixed LIF/ALIF populations, float64). The neuron step is
    the live tick's (:func:`rtsnn.learn.offline.bptt_kernels.spiking_element`, the element of
    :func:`rtsnn.snn.neuron_kernels.spiking_update`) with ``gain = zeta``, ``leak = 0``,
    subtractive reset at the next tick and adaptation always on (``beta_j = 0``: LIF); the
    scalars are float64, so the membrane sum and the threshold test are float64.
    """
    alpha = p[P_ALPHA]
    rho = p[P_RHO]
    kappa = p[P_KAPPA]
    v_th = p[P_VTH]
    zeta = p[P_ZETA]
    g_out = p[P_GOUT]
    n_ref = int(p[P_NREF])
    n_rec = v.shape[0]
    for j in range(n_rec):
        cur[j] = 0.0
    for i in range(x.shape[0]):
        xi = x[i]
        if xi != 0:
            for j in range(n_rec):
                cur[j] += w_in[i, j] * xi
    for i in range(n_rec):
        zi = z[i]
        if zi != 0:
            for j in range(n_rec):
                cur[j] += w_rec[i, j] * zi
    zero = 0.0
    for j in range(n_rec):
        vj, _, aj, spike, ref_new = spiking_element(cur[j], v[j], zero, a[j], z[j], refr[j], alpha, zero, rho,
                                                    beta[j], v_th, zeta, zero, zero, False, n_ref, False, True,
                                                    False, False, False)
        v[j] = vj
        a[j] = aj
        z[j] = 1.0 if spike else 0.0
        refr[j] = ref_new
    for k in range(y.shape[0]):
        acc = 0.0
        for j in range(n_rec):
            acc += w_out[j, k] * z[j]
        y[k] = kappa * y[k] + g_out * acc


@njit(cache=True, nogil=True)
def run_sequence(xs: np.ndarray, targets: np.ndarray, mask: np.ndarray, cross_entropy: bool,
                 w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray, beta: np.ndarray, B: np.ndarray,
                 v: np.ndarray, a: np.ndarray, z: np.ndarray, refr: np.ndarray, y: np.ndarray, cur: np.ndarray,
                 err: np.ndarray, refc: np.ndarray, vec: np.ndarray, zbar_in: np.ndarray,
                 eps_in: np.ndarray, ebar_in: np.ndarray, esum_in: np.ndarray, grad_in: np.ndarray,
                 eps_rec: np.ndarray, ebar_rec: np.ndarray, esum_rec: np.ndarray, grad_rec: np.ndarray,
                 grad_out: np.ndarray, grad_b: np.ndarray, count: np.ndarray, counters: np.ndarray,
                 z_prev: np.ndarray, p: np.ndarray, track_esum: bool, learn_rec: bool, ys: np.ndarray) -> None:
    """A whole sequence in one call: :func:`forward_step` then :func:`eprop_tick` per step,
    with ``err = y - target`` (or ``softmax(y) - target``) where ``mask`` is set, 0 elsewhere.
    Writes the outputs to ``ys`` (T, n_out). Same arithmetic as the per-step calls."""
    n_out = y.shape[0]
    for t in range(xs.shape[0]):
        forward_step(xs[t], w_in, w_rec, w_out, beta, v, a, z, refr, y, cur, p)
        for k in range(n_out):
            ys[t, k] = y[k]
        if mask[t]:
            if cross_entropy:
                m = y[0]
                for k in range(n_out):
                    m = max(m, y[k])
                tot = 0.0
                for k in range(n_out):
                    err[k] = np.exp(y[k] - m)
                    tot += err[k]
                for k in range(n_out):
                    err[k] = err[k] / tot - targets[t, k]
            else:
                for k in range(n_out):
                    err[k] = y[k] - targets[t, k]
        else:
            for k in range(n_out):
                err[k] = 0.0
        eprop_tick(xs[t], z_prev, z, v, a, err, beta, B, refc, vec, zbar_in, eps_in, ebar_in, esum_in, grad_in,
                   eps_rec, ebar_rec, esum_rec, grad_rec, grad_out, grad_b, count, counters, p, track_esum,
                   learn_rec)
