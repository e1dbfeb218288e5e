"""Numba kernels of the spiking three-factor actor-critic (Fremaux, Sprekeler & Gerstner 2013).

Discrete time, step ``dt`` (s). Per step ``t`` of a decision window (float64 throughout)::

    x_i[t]   = 1[u_i < f_i dt]                               Poisson input spikes (place cells)
    s1 <- a_m s1 + x,  s2 <- a_s s2 + x                      double-exponential PSP
    psp_i    = (s1_i - s2_i) * psp_norm                      psp_norm = 1 / ((tau_m - tau_s) f_ref):
                                                             a steady input at rate f gives psp ~ f / f_ref
    h_j      = sum_i W_ij psp_i + b_j (+ sum_k L_kj pspA_k)  actor: fixed lateral weights L on actor PSPs
    q_j      = sigmoid(h_j),  p_j = 1 - exp(-rho_max q_j dt)  escape noise (firing intensity rho_max q_j;
                                                             the critic's own rho_max_c, P_RHO_C)
    Y_j[t]   = 1[u_j < p_j]                                   output spikes
    c_ij     = Y_j psp_i                                      trace 'tdltp' (PSP sampled at post spikes), or
    c_ij     = (Y_j - p_j) g_j psp_i                          trace 'policy_gradient': d log P(Y_j) / d h_j
                                                             with g_j = rho_max dt q_j (1 - q_j) (1 - p_j) / p_j
                                                             (zero mean: the unbiased escape-noise likelihood), or
    c_ij     = dp_j/dh_j psp_i                                trace 'expected': the mean of TD-LTP's
                                                             post term, dp/dh = rho_max dt q (1-q) (1-p), so
                                                             E[dV/dW] for the critic; stays alive when silent
    cand_ij += dp_j/dh_j psp_i,  c_ij = 0                    trace 'decision' (actor only): the window's
                                                             candidate, injected into the eligibility once the
                                                             action is chosen (:func:`inject_decision`)
    P_j     += p_j                                            expected spike count of actor neuron j
    e1 <- a_k e1 + c,  e2 <- a_n e2 + c,  E = (e1 - e2) k_norm   eligibility = c filtered by kappa
    y1 <- a_k y1 + Y,  y2 <- a_n y2 + Y,  ybar = (y1 - y2) k_norm critic spike trains filtered by kappa
    V[t]     = (nu / N) sum_j ybar_j + V0                     value (reward units)
    delta[t] = (V[t] - V[t-1]) / dt - V[t] / tau_r + r(t)     continuous TD error (reward rate r, 1/s)
    W       += eta delta[t] dt E                              three-factor update, actor and critic

``kappa(s) = (exp(-s/tau_k) - exp(-s/nu_k)) / (tau_k - nu_k)`` has unit area, so with
``a_k = exp(-dt/tau_k)``, ``a_n = exp(-dt/nu_k)`` the discrete filter uses
``k_norm = 1 / (tau_k - nu_k)`` (a spike adds ``kappa`` sampled at the step). Weights are
clipped to ``+-w_clip``.

The uniforms ``u`` are drawn by the caller (one row per step: inputs, actor, critic), so the
kernel is deterministic given them and the plain-numpy reference (:mod:`ac_reference`)
reproduces it exactly.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# slots of the float64 parameter vector
(P_DT, P_AM, P_AS, P_PSPN, P_AK, P_AN, P_KN, P_RHO, P_NU_N, P_V0, P_TAUR, P_ETA_A, P_ETA_C,
 P_MODE_A, P_MODE_C, P_WCLIP, P_LEARN, P_RHO_C) = range(18)
N_PARAMS = 18
# slots of the float64 scalar state vector
S_VPREV, S_HAVE_V, S_DELTA_SUM, S_V, S_NSTEPS, S_DELTA_ABS = range(6)
N_SCALARS = 6


@njit(cache=True, nogil=True)
def _sigmoid(h):
    if h >= 0.0:
        return 1.0 / (1.0 + math.exp(-h))
    e = math.exp(h)
    return e / (1.0 + e)


@njit(cache=True, nogil=True)
def _population_step(psp, w, b, extra, u_row, off, q, p, g, y, elig1, elig2, rho_dt, a_k, a_n, mode, cand):
    """Membrane, escape-noise spikes and eligibility source/filter for one population
    (``cand`` is only used, and only needs the full shape, in mode 3 'decision')."""
    n_in = psp.shape[0]
    n = b.shape[0]
    for j in range(n):
        h = b[j] + extra[j]
        for i in range(n_in):
            h += w[i, j] * psp[i]
        qj = _sigmoid(h)
        pj = 1.0 - math.exp(-rho_dt * qj)
        q[j] = qj
        p[j] = pj
        # limit p -> 0 (q -> 0): g -> 1 - q
        g[j] = rho_dt * qj * (1.0 - qj) * (1.0 - pj) / pj if pj > 1e-12 else 1.0 - qj
        y[j] = 1.0 if u_row[off + j] < pj else 0.0
    for i in range(n_in):
        pi = psp[i]
        for j in range(n):
            if mode == 0.0:
                c = y[j] * pi
            elif mode == 1.0:
                c = (y[j] - p[j]) * g[j] * pi
            elif mode == 2.0:
                c = (1.0 - p[j]) * rho_dt * q[j] * (1.0 - q[j]) * pi
            else:
                cand[i, j] += (1.0 - p[j]) * rho_dt * q[j] * (1.0 - q[j]) * pi
                c = 0.0
            elig1[i, j] = a_k * elig1[i, j] + c
            elig2[i, j] = a_n * elig2[i, j] + c


@njit(cache=True, nogil=True)
def _apply_update(w, elig1, elig2, scale, w_clip):
    n_in, n = w.shape
    for i in range(n_in):
        for j in range(n):
            v = w[i, j] + scale * (elig1[i, j] - elig2[i, j])
            if v > w_clip:
                v = w_clip
            elif v < -w_clip:
                v = -w_clip
            w[i, j] = v


@njit(cache=True, nogil=True)
def ac_window(n_steps: int, rates_hz: np.ndarray, uniforms: np.ndarray, reward_rate: float,
              w_act: np.ndarray, b_act: np.ndarray, w_lat: np.ndarray,
              w_cri: np.ndarray, b_cri: np.ndarray,
              syn_in: np.ndarray, psp_in: np.ndarray, syn_act: np.ndarray, psp_act: np.ndarray,
              elig_act: np.ndarray, elig_cri: np.ndarray, filt_cri: np.ndarray,
              scr_act: np.ndarray, scr_cri: np.ndarray, counts_act: np.ndarray, cand_act: np.ndarray,
              scal: np.ndarray, prm: np.ndarray) -> None:
    """Run ``n_steps`` steps of the actor-critic (see module docstring), learning if
    ``prm[P_LEARN] != 0``.

    State (updated in place): ``syn_in`` (2, n_in), ``psp_in`` (n_in), ``syn_act`` (2, n_act),
    ``psp_act`` (n_act), ``elig_act`` (2, n_in, n_act), ``elig_cri`` (2, n_in, n_cri),
    ``filt_cri`` (2, n_cri), ``scal`` (N_SCALARS). ``counts_act`` (2, n_act) accumulates actor
    spikes (row 0) and expected spikes ``sum_t p_j`` (row 1); ``cand_act`` (n_in, n_act) the
    'decision' candidate (any 2-D shape in the other actor modes). ``uniforms``
    (>= n_steps, n_in + n_act + n_cri). Scratch: ``scr_act`` (5, n_act)
    and ``scr_cri`` (5, n_cri), rows q, p, g, Y, extra input (row 4 of ``scr_cri`` must be 0).
    """
    dt = prm[P_DT]
    a_m, a_s, psp_norm = prm[P_AM], prm[P_AS], prm[P_PSPN]
    a_k, a_n, k_norm = prm[P_AK], prm[P_AN], prm[P_KN]
    rho_dt = prm[P_RHO] * dt
    rho_dt_c = prm[P_RHO_C] * dt
    nu_n, v0, tau_r = prm[P_NU_N], prm[P_V0], prm[P_TAUR]
    eta_a, eta_c = prm[P_ETA_A], prm[P_ETA_C]
    mode_a, mode_c = prm[P_MODE_A], prm[P_MODE_C]
    w_clip = prm[P_WCLIP]
    learn = prm[P_LEARN] != 0.0
    n_in = rates_hz.shape[0]
    n_act = b_act.shape[0]
    n_cri = b_cri.shape[0]
    off_a = n_in
    off_c = n_in + n_act
    e1a, e2a = elig_act[0], elig_act[1]
    e1c, e2c = elig_cri[0], elig_cri[1]
    q_act, p_act, g_act, y_act, lat_cur = scr_act[0], scr_act[1], scr_act[2], scr_act[3], scr_act[4]
    q_cri, p_cri, g_cri, y_cri, zero_cri = scr_cri[0], scr_cri[1], scr_cri[2], scr_cri[3], scr_cri[4]
    for t in range(n_steps):
        u_row = uniforms[t]
        # input spikes and PSPs
        for i in range(n_in):
            x = 1.0 if u_row[i] < rates_hz[i] * dt else 0.0
            syn_in[0, i] = a_m * syn_in[0, i] + x
            syn_in[1, i] = a_s * syn_in[1, i] + x
            psp_in[i] = (syn_in[0, i] - syn_in[1, i]) * psp_norm
        # lateral input to the actor from the actor's own PSPs (previous step's spikes)
        for j in range(n_act):
            acc = 0.0
            for k in range(n_act):
                acc += w_lat[k, j] * psp_act[k]
            lat_cur[j] = acc
        _population_step(psp_in, w_act, b_act, lat_cur, u_row, off_a, q_act, p_act, g_act, y_act,
                         e1a, e2a, rho_dt, a_k, a_n, mode_a, cand_act)
        _population_step(psp_in, w_cri, b_cri, zero_cri, u_row, off_c, q_cri, p_cri, g_cri, y_cri,
                         e1c, e2c, rho_dt_c, a_k, a_n, mode_c, cand_act)
        for j in range(n_act):
            ya = y_act[j]
            counts_act[0, j] += ya
            counts_act[1, j] += p_act[j]
            syn_act[0, j] = a_m * syn_act[0, j] + ya
            syn_act[1, j] = a_s * syn_act[1, j] + ya
            psp_act[j] = (syn_act[0, j] - syn_act[1, j]) * psp_norm
        # value from the filtered critic spike trains
        acc = 0.0
        for j in range(n_cri):
            filt_cri[0, j] = a_k * filt_cri[0, j] + y_cri[j]
            filt_cri[1, j] = a_n * filt_cri[1, j] + y_cri[j]
            acc += filt_cri[0, j] - filt_cri[1, j]
        v = nu_n * k_norm * acc + v0
        scal[S_V] = v
        if learn:
            if scal[S_HAVE_V] != 0.0:
                delta = (v - scal[S_VPREV]) / dt - v / tau_r + reward_rate
                scal[S_DELTA_SUM] += delta * dt
                scal[S_DELTA_ABS] += abs(delta) * dt
                scal[S_NSTEPS] += 1.0
                g = delta * dt * k_norm
                if eta_a != 0.0:
                    _apply_update(w_act, e1a, e2a, eta_a * g, w_clip)
                if eta_c != 0.0:
                    _apply_update(w_cri, e1c, e2c, eta_c * g, w_clip)
            scal[S_HAVE_V] = 1.0
        scal[S_VPREV] = v


@njit(cache=True, nogil=True)
def inject_decision(elig: np.ndarray, cand: np.ndarray, sign: np.ndarray) -> None:
    """'decision' actor trace: once the action is chosen, ``c_ij = sign_j cand_ij`` enters the
    kappa filter of the eligibility (``e1 += c``, ``e2 += c``: an impulse, so the eligibility
    then follows kappa) and the candidate is cleared. ``sign_j`` is the derivative of the log
    probability of the chosen action with respect to neuron j's expected spike count (see
    the readouts' ``decision_signs``)."""
    n_in, n = cand.shape
    for i in range(n_in):
        for j in range(n):
            c = sign[j] * cand[i, j]
            elig[0, i, j] += c
            elig[1, i, j] += c
            cand[i, j] = 0.0


@njit(cache=True, nogil=True)
def terminal_update(w_act: np.ndarray, elig_act: np.ndarray, w_cri: np.ndarray, elig_cri: np.ndarray,
                    delta_int: float, eta_a: float, eta_c: float, k_norm: float, w_clip: float) -> None:
    """End of an episode in a terminal state: the value drops to 0 at once, so the TD error
    integrates to ``delta_int = r - V`` over the jump; ``W += eta delta_int E``."""
    g = delta_int * k_norm
    if eta_a != 0.0:
        _apply_update(w_act, elig_act[0], elig_act[1], eta_a * g, w_clip)
    if eta_c != 0.0:
        _apply_update(w_cri, elig_cri[0], elig_cri[1], eta_c * g, w_clip)


@njit(cache=True, nogil=True)
def gaussian_rates(obs: np.ndarray, low: np.ndarray, high: np.ndarray, n_per_dim: int,
                   width: float, rate_max_hz: float, out: np.ndarray) -> None:
    """Place cells with Gaussian receptive fields, ``n_per_dim`` per observation dimension.

    ``z_d = clip((obs_d - low_d) / (high_d - low_d), 0, 1)``; cell ``k`` of dimension ``d`` has
    centre ``c_k = k / (n_per_dim - 1)`` and fires at
    ``out[d n + k] = rate_max_hz exp(-(z_d - c_k)^2 / (2 width^2))`` (``width`` in units of the
    normalised range). Non-finite observations give rate 0 for that dimension.
    """
    n_dim = obs.shape[0]
    denom = max(n_per_dim - 1, 1)
    for d in range(n_dim):
        o = obs[d]
        finite = math.isfinite(o)
        z = (o - low[d]) / (high[d] - low[d]) if finite else 0.0
        if z < 0.0:
            z = 0.0
        elif z > 1.0:
            z = 1.0
        for k in range(n_per_dim):
            if not finite:
                out[d * n_per_dim + k] = 0.0
                continue
            dz = z - k / denom
            out[d * n_per_dim + k] = rate_max_hz * math.exp(-dz * dz / (2.0 * width * width))


@njit(cache=True, nogil=True)
def perturbation_step(r: np.ndarray, xi: np.ndarray, elig: np.ndarray, w_out: np.ndarray, b_out: np.ndarray,
                      inv_var: float, a_k: float, a_n: float, k_norm: float, scale: float, w_clip: float) -> None:
    """Reward-modulated node perturbation of a linear readout ``y = W^T r + b`` explored with
    Gaussian noise ``xi`` (variance ``1/inv_var``): the eligibility source is
    ``d log N(y + xi; y) / dW_jk = xi_k inv_var r_j`` (bias: ``r_j = 1``, row ``n_rec``),
    filtered by kappa into ``elig`` (2, n_rec + 1, n_out); then
    ``W += scale (e1 - e2) k_norm`` with ``scale = eta delta dt`` (0: no update), clipped."""
    n_rec = r.shape[0]
    n_out = xi.shape[0]
    for j in range(n_rec + 1):
        rj = 1.0 if j == n_rec else np.float64(r[j])
        for k in range(n_out):
            c = xi[k] * inv_var * rj
            e1 = a_k * elig[0, j, k] + c
            e2 = a_n * elig[1, j, k] + c
            elig[0, j, k] = e1
            elig[1, j, k] = e2
            if scale != 0.0:
                v = (w_out[j, k] if j < n_rec else b_out[k]) + scale * (e1 - e2) * k_norm
                if v > w_clip:
                    v = w_clip
                elif v < -w_clip:
                    v = -w_clip
                if j < n_rec:
                    w_out[j, k] = v
                else:
                    b_out[k] = v
