"""e-prop numba kernels agree with the plain-numpy references (hypothesis)."""

import numpy as np
from hypothesis import given, settings, strategies as st

from rtsnn.learn.online import eprop_kernels as K
from rtsnn.learn.online.eprop_reference import (ConventionScalars, adam_reference, eprop_gradients_reference,
                                                forward_reference, pseudo_derivative_reference)


def _params(c: ConventionScalars, adaptive: bool, c_tick=0.0, k_reg=0.0, f_t=0.0):
    p = np.zeros(K.N_PARAMS)
    p[K.P_ALPHA], p[K.P_KAPPA], p[K.P_RHO], p[K.P_VTH] = c.alpha, c.kappa, c.rho, c.v_th
    p[K.P_GAMMA], p[K.P_ZETA], p[K.P_GE], p[K.P_GOUT] = c.gamma, c.zeta, c.g_e, c.g_out
    p[K.P_NREF], p[K.P_ADAPTIVE] = c.n_ref, float(adaptive)
    p[K.P_KREG], p[K.P_FTARGET], p[K.P_CREG_TICK] = k_reg, f_t, c_tick
    return p


def _case(seed, n_in, n_rec, n_out, n_t, n_ref, nest_like, mixed):
    rng = np.random.default_rng(seed)
    alpha, kappa, rho = np.exp(-1 / 20), np.exp(-1 / 15), np.exp(-1 / 200)
    zeta = 1 - alpha if nest_like else 1.0
    g = 1 - kappa if nest_like else 1.0
    c = ConventionScalars(alpha=alpha, kappa=kappa, rho=rho, v_th=0.5, zeta=zeta, g_e=g, g_out=g, n_ref=n_ref)
    beta = np.where(rng.random(n_rec) < 0.5, 0.3, 0.0) if mixed else np.zeros(n_rec)
    w_in = rng.normal(0, 1.5 / (zeta * np.sqrt(n_in)), (n_in, n_rec))
    w_rec = rng.normal(0, 0.5 / (zeta * np.sqrt(n_rec)), (n_rec, n_rec))
    np.fill_diagonal(w_rec, 0)
    w_out = rng.normal(0, 1, (n_rec, n_out))
    x = (rng.random((n_t, n_in)) < 0.2).astype(float)
    return rng, c, beta, w_in, w_rec, w_out, x


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.integers(1, 7), st.integers(1, 3), st.integers(1, 40),
       st.integers(0, 3), st.booleans(), st.booleans())
def test_forward_step_matches_reference(seed, n_in, n_rec, n_out, n_t, n_ref, nest_like, mixed):
    _, c, beta, w_in, w_rec, w_out, x = _case(seed, n_in, n_rec, n_out, n_t, n_ref, nest_like, mixed)
    V, A, Z, Y = forward_reference(c, beta, w_in, w_rec, w_out, x)
    p = _params(c, mixed)
    v, a, z, y, cur = (np.zeros(n_rec), np.zeros(n_rec), np.zeros(n_rec), np.zeros(n_out), np.zeros(n_rec))
    refr = np.zeros(n_rec, np.int32)
    for t in range(n_t):
        K.forward_step(x[t], w_in, w_rec, w_out, beta, v, a, z, refr, y, cur, p)
        np.testing.assert_array_equal(z, Z[t])
        np.testing.assert_allclose(v, V[t], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(y, Y[t], rtol=1e-10, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.integers(1, 7), st.integers(1, 3), st.integers(1, 40),
       st.integers(0, 3), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_eprop_tick_matches_reference(seed, n_in, n_rec, n_out, n_t, n_ref, nest_like, mixed, online_reg, nan_rows):
    rng, c, beta, w_in, w_rec, w_out, x = _case(seed, n_in, n_rec, n_out, n_t, n_ref, nest_like, mixed)
    V, A, Z, Y = forward_reference(c, beta, w_in, w_rec, w_out, x)
    err = rng.normal(size=(n_t, n_out))
    if nan_rows:
        err[rng.random(n_t) < 0.2, 0] = np.nan
    B = rng.normal(size=(n_rec, n_out))
    k_reg, f_t, c_tick = (0.9, 0.05, 2.0) if online_reg else (0.0, 0.0, 0.0)
    # online regulariser coefficient per step, computed from the spike trains
    fbar = np.zeros(n_rec)
    creg = np.zeros((n_t, n_rec))
    for t in range(n_t):
        fbar = k_reg * fbar + (1 - k_reg) * Z[t]
        creg[t] = c_tick * (fbar - f_t)
    psi_ref = pseudo_derivative_reference(c, beta, V, A, Z)
    ref = eprop_gradients_reference(c, beta, x, Z, psi_ref, err, B, creg)

    p = _params(c, mixed, c_tick, k_reg, f_t)
    zbar_in = np.zeros(n_in)
    vec = np.zeros((6, n_rec))
    z_prev = np.zeros(n_rec)
    refc = np.zeros(n_rec, np.int32)
    eps_in, ebar_in, esum_in, g_in = (np.zeros((n_in, n_rec)) for _ in range(4))
    eps_rec, ebar_rec, esum_rec, g_rec = (np.zeros((n_rec, n_rec)) for _ in range(4))
    g_out, g_b, count = np.zeros((n_rec, n_out)), np.zeros(n_out), np.zeros(n_rec)
    counters = np.zeros(K.N_COUNTERS, np.int64)
    for t in range(n_t):
        ok = K.eprop_tick(x[t], z_prev, Z[t], V[t], A[t], err[t], beta, B, refc, vec, zbar_in, eps_in, ebar_in,
                          esum_in, g_in, eps_rec, ebar_rec, esum_rec, g_rec, g_out, g_b, count, counters, p,
                          True, True)
        assert ok == bool(np.all(np.isfinite(err[t])))
        np.testing.assert_allclose(vec[1], psi_ref[t], rtol=1e-12, atol=1e-12)
    for got, want in zip((g_in, g_rec, g_out, g_b, esum_in, esum_rec), ref):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)
    assert counters[K.C_BAD_ERR] == int(np.sum(~np.all(np.isfinite(err), axis=1)))
    np.testing.assert_array_equal(count, Z.sum(0))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 5), st.floats(1e-4, 1e-1), st.integers(1, 20))
def test_adam_and_gd_match_reference(seed, n, lr, steps):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, 3)); m = np.zeros_like(w); s = np.zeros_like(w)
    w2, m2, s2 = w.copy(), m.copy(), s.copy()
    for k in range(1, steps + 1):
        g = rng.normal(size=w.shape) * 10
        K.adam_update(w, g, m, s, lr, 1.0, 0.9, 0.999, 1e-8, k, -2.0, 2.0)
        w2, m2, s2 = adam_reference(w2, g, m2, s2, lr, 0.9, 0.999, 1e-8, k, -2.0, 2.0)
    np.testing.assert_allclose(w, w2, rtol=1e-12, atol=1e-12)
    g = rng.normal(size=w.shape)
    w3 = w.copy()
    K.gd_update(w3, g, lr, 1.0, -2.0, 2.0)
    np.testing.assert_allclose(w3, np.clip(w - lr * g, -2, 2), rtol=1e-12)


def test_float32_kernels_run_and_agree_with_float64():
    rng, c, beta, w_in, w_rec, w_out, x = _case(3, 5, 6, 2, 50, 1, False, True)
    V, A, Z, Y = forward_reference(c, beta, w_in, w_rec, w_out, x)
    err = rng.normal(size=(50, 2))
    B = rng.normal(size=(6, 2))
    out = {}
    for dt in (np.float32, np.float64):
        p = _params(c, True)
        bufs = [np.zeros(5, dt), np.zeros((6, 6), dt), np.zeros(6, dt), np.zeros(6, np.int32)]
        mats_in = [np.zeros((5, 6), dt) for _ in range(4)]
        mats_rec = [np.zeros((6, 6), dt) for _ in range(4)]
        g_out, g_b, count = np.zeros((6, 2), dt), np.zeros(2, dt), np.zeros(6, dt)
        cnt = np.zeros(K.N_COUNTERS, np.int64)
        for t in range(50):
            K.eprop_tick(x[t].astype(dt), bufs[2], Z[t].astype(dt), V[t].astype(dt), A[t].astype(dt),
                         err[t].astype(dt), beta.astype(dt), B.astype(dt), bufs[3], bufs[1], bufs[0], *mats_in,
                         *mats_rec, g_out, g_b, count, cnt, p, True, True)
        out[dt] = mats_in[3].astype(np.float64)
    np.testing.assert_allclose(out[np.float32], out[np.float64], rtol=2e-4, atol=1e-5)


def _old_forward_step_np(x, w_in, w_rec, w_out, beta, v, a, z, refr, y, cur, p):
    """forward_step as it was before it called the live tick's neuron element, in plain numpy
    with the kernel's types: the current in the arrays' dtype, float64 scalars, so the membrane
    sum, the adaptation and the threshold test are float64, rounded when stored."""
    f8 = np.float64
    dt = v.dtype.type
    alpha, rho, kappa, v_th, zeta, g_out = (f8(p[k]) for k in (K.P_ALPHA, K.P_RHO, K.P_KAPPA, K.P_VTH, K.P_ZETA,
                                                               K.P_GOUT))
    cur[:] = 0
    for i in np.flatnonzero(x):
        cur[:] = cur + w_in[i] * x[i]
    for i in np.flatnonzero(z):
        cur[:] = cur + w_rec[i] * z[i]
    zp = z.astype(f8)
    vj = alpha * v.astype(f8) + zeta * cur.astype(f8) - v_th * zp
    aj = rho * a.astype(f8) + zp
    spike = (vj >= v_th + beta.astype(f8) * aj) & (refr <= 0)
    v[:], a[:], z[:] = vj, aj, spike
    refr[:] = np.where(spike, int(p[K.P_NREF]), np.maximum(refr - 1, 0))
    acc = np.zeros(y.shape[0])
    for j in range(v.shape[0]):
        acc = acc + (w_out[j] * z[j]).astype(f8)
    y[:] = (kappa * y.astype(f8) + g_out * acc).astype(dt)


def test_forward_step_equals_previous_loop():
    """forward_step (now the live tick's neuron element) gives bit for bit what the previous
    loop gave, float32 and float64, LIF/ALIF mixed, both conventions, refractory steps."""
    for dt in (np.float32, np.float64):
        for nest_like in (False, True):
            _, c, beta, w_in, w_rec, w_out, x = _case(7, 12, 25, 3, 300, 2, nest_like, True)
            p = _params(c, True)
            arrays = [x, w_in, w_rec, w_out, beta]
            x, w_in, w_rec, w_out, beta = (np.ascontiguousarray(m, dt) for m in arrays)
            runs = []
            for fn in (K.forward_step, _old_forward_step_np):
                v, a, z, cur = (np.zeros(25, dt) for _ in range(4))
                y = np.zeros(3, dt)
                refr = np.zeros(25, np.int32)
                rec = []
                for t in range(x.shape[0]):
                    fn(x[t], w_in, w_rec, w_out, beta, v, a, z, refr, y, cur, p)
                    rec.append(np.concatenate([v, a, z, refr, y]).astype(np.float64))
                runs.append(np.array(rec))
            np.testing.assert_array_equal(runs[0], runs[1], err_msg=f"{dt} {nest_like}")
            zs = runs[0][:, 50:75]
            assert 0.01 < zs.mean() < 0.5, zs.mean()
