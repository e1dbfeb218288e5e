"""Plain-numpy references of the actor-critic kernels in :mod:`ac_kernels` (vectorised per step,
same equations, same uniforms), used by the agreement tests."""

from __future__ import annotations

import numpy as np

from rtsnn.learn.online import ac_kernels as K


def _sigmoid(h: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * h))


def _population(psp, w, b, extra, u, rho_dt, mode):
    """Spikes, eligibility source and firing probabilities of one population; in mode 3
    ('decision') the returned source is the candidate increment (the filter source is 0)."""
    h = b + extra + psp @ w
    q = _sigmoid(h)
    p = 1.0 - np.exp(-rho_dt * q)
    y = (u < p).astype(np.float64)
    if mode == 0.0:
        post = y
    elif mode == 1.0:
        safe = np.where(p > 1e-12, p, 1.0)
        g = np.where(p > 1e-12, rho_dt * q * (1.0 - q) * (1.0 - p) / safe, 1.0 - q)
        post = (y - p) * g
    else:
        post = (1.0 - p) * rho_dt * q * (1.0 - q)
    return y, np.outer(psp, post), p


def ac_window_reference(n_steps, rates_hz, uniforms, reward_rate, w_act, b_act, w_lat, w_cri, b_cri,
                        syn_in, psp_in, syn_act, psp_act, elig_act, elig_cri, filt_cri, counts_act, cand_act,
                        scal, prm):
    """Same contract as :func:`ac_kernels.ac_window` (scratch arrays not needed)."""
    dt = prm[K.P_DT]
    a_m, a_s, psp_norm = prm[K.P_AM], prm[K.P_AS], prm[K.P_PSPN]
    a_k, a_n, k_norm = prm[K.P_AK], prm[K.P_AN], prm[K.P_KN]
    rho_dt = prm[K.P_RHO] * dt
    n_in, n_act = rates_hz.shape[0], b_act.shape[0]
    w_clip = prm[K.P_WCLIP]
    for t in range(n_steps):
        u = uniforms[t]
        x = (u[:n_in] < rates_hz * dt).astype(np.float64)
        syn_in[0] = a_m * syn_in[0] + x
        syn_in[1] = a_s * syn_in[1] + x
        psp_in[:] = (syn_in[0] - syn_in[1]) * psp_norm
        lat = psp_act @ w_lat
        y_a, c_a, p_a = _population(psp_in, w_act, b_act, lat, u[n_in:n_in + n_act], rho_dt, prm[K.P_MODE_A])
        y_c, c_c, _ = _population(psp_in, w_cri, b_cri, 0.0, u[n_in + n_act:], prm[K.P_RHO_C] * dt,
                                  prm[K.P_MODE_C])
        if prm[K.P_MODE_A] == 3.0:
            cand_act += c_a
            c_a = 0.0
        elig_act[0] = a_k * elig_act[0] + c_a
        elig_act[1] = a_n * elig_act[1] + c_a
        elig_cri[0] = a_k * elig_cri[0] + c_c
        elig_cri[1] = a_n * elig_cri[1] + c_c
        counts_act[0] += y_a
        counts_act[1] += p_a
        syn_act[0] = a_m * syn_act[0] + y_a
        syn_act[1] = a_s * syn_act[1] + y_a
        psp_act[:] = (syn_act[0] - syn_act[1]) * psp_norm
        filt_cri[0] = a_k * filt_cri[0] + y_c
        filt_cri[1] = a_n * filt_cri[1] + y_c
        v = prm[K.P_NU_N] * k_norm * (filt_cri[0] - filt_cri[1]).sum() + prm[K.P_V0]
        scal[K.S_V] = v
        if prm[K.P_LEARN] != 0.0:
            if scal[K.S_HAVE_V] != 0.0:
                delta = (v - scal[K.S_VPREV]) / dt - v / prm[K.P_TAUR] + reward_rate
                scal[K.S_DELTA_SUM] += delta * dt
                scal[K.S_DELTA_ABS] += abs(delta) * dt
                scal[K.S_NSTEPS] += 1.0
                g = delta * dt * k_norm
                if prm[K.P_ETA_A] != 0.0:
                    w_act[:] = np.clip(w_act + prm[K.P_ETA_A] * g * (elig_act[0] - elig_act[1]), -w_clip, w_clip)
                if prm[K.P_ETA_C] != 0.0:
                    w_cri[:] = np.clip(w_cri + prm[K.P_ETA_C] * g * (elig_cri[0] - elig_cri[1]), -w_clip, w_clip)
            scal[K.S_HAVE_V] = 1.0
        scal[K.S_VPREV] = v


def gaussian_rates_reference(obs, low, high, n_per_dim, width, rate_max_hz) -> np.ndarray:
    """Reference of :func:`ac_kernels.gaussian_rates` (returns a new array)."""
    obs = np.asarray(obs, np.float64)
    finite = np.isfinite(obs)
    z = np.clip(np.where(finite, (np.where(finite, obs, 0.0) - low) / (high - low), 0.0), 0.0, 1.0)
    c = np.arange(n_per_dim) / max(n_per_dim - 1, 1)
    r = rate_max_hz * np.exp(-(z[:, None] - c[None, :]) ** 2 / (2.0 * width * width))
    r[~finite] = 0.0
    return r.ravel()


def inject_decision_reference(elig, cand, sign) -> None:
    c = cand * sign[None, :]
    elig[0] += c
    elig[1] += c
    cand[:] = 0.0


def terminal_update_reference(w_act, elig_act, w_cri, elig_cri, delta_int, eta_a, eta_c, k_norm, w_clip) -> None:
    g = delta_int * k_norm
    if eta_a != 0.0:
        w_act[:] = np.clip(w_act + eta_a * g * (elig_act[0] - elig_act[1]), -w_clip, w_clip)
    if eta_c != 0.0:
        w_cri[:] = np.clip(w_cri + eta_c * g * (elig_cri[0] - elig_cri[1]), -w_clip, w_clip)


def perturbation_step_reference(r, xi, elig, w_out, b_out, inv_var, a_k, a_n, k_norm, scale, w_clip) -> None:
    x = np.append(np.asarray(r, np.float64), 1.0)
    c = np.outer(x, xi * inv_var)
    elig[0] = a_k * elig[0] + c
    elig[1] = a_n * elig[1] + c
    if scale != 0.0:
        w = np.vstack([w_out.astype(np.float64), b_out[None, :].astype(np.float64)])
        w = np.clip(w + scale * (elig[0] - elig[1]) * k_norm, -w_clip, w_clip)
        w_out[:] = w[:-1]
        b_out[:] = w[-1]
