"""Without recurrent weights, e-prop with symmetric feedback IS the gradient of BPTT (same
pseudo-derivative, reset path detached). The BPTT gradient is computed here independently,
by the adjoint (backward-in-time) recursion in plain numpy."""

import numpy as np
from hypothesis import given, settings, strategies as st

from rtsnn.learn.online.eprop import EpropOptions, train_sequences
from rtsnn.snn.params import layer_constants, single_layer


def _constants():
    """The LIF layer of these tests: tau_mem 20 ms, readout tau 15 ms, v_th 0.4, dt 1 ms."""
    return layer_constants(*single_layer("lif", 1, tau_mem_s=20e-3, tau_out_s=15e-3, v_th=0.4), 1e-3)


def _forward(alpha, kappa, v_th, zeta, g_out, w_in, w_out, x):
    n_t, n_rec = x.shape[0], w_in.shape[1]
    v = np.zeros(n_rec); z = np.zeros(n_rec); y = np.zeros(w_out.shape[1])
    V, Z, Y = np.zeros((n_t, n_rec)), np.zeros((n_t, n_rec)), np.zeros((n_t, w_out.shape[1]))
    for t in range(n_t):
        v = alpha * v + zeta * (x[t] @ w_in) - v_th * z
        z = (v >= v_th).astype(float)
        y = kappa * y + g_out * (z @ w_out)
        V[t], Z[t], Y[t] = v, z, y
    return V, Z, Y


def bptt_gradient(alpha, kappa, v_th, gamma, zeta, g_out, w_in, w_out, x, target):
    """dE/dw for E = 0.5 sum_t |y_t - y*_t|^2 by backpropagation through time.

    Adjoints: a_y[t] = (y_t - y*_t) + kappa a_y[t+1]; dE/dz_t = g_out w_out a_y[t];
    a_v[t] = dE/dz_t psi_t + alpha a_v[t+1] (the reset -v_th z_{t-1} is detached);
    dE/dw_in = sum_t zeta x_t a_v[t]^T, dE/dw_out = sum_t g_out z_t a_y[t]^T.
    """
    V, Z, Y = _forward(alpha, kappa, v_th, zeta, g_out, w_in, w_out, x)
    psi = gamma / v_th * np.maximum(0.0, 1.0 - np.abs(V - v_th) / v_th)
    n_t = x.shape[0]
    a_y = np.zeros(w_out.shape[1]); a_v = np.zeros(w_in.shape[1])
    g_in = np.zeros_like(w_in); g_out_w = np.zeros_like(w_out)
    for t in range(n_t - 1, -1, -1):
        a_y = (Y[t] - target[t]) + kappa * a_y
        dz = g_out * (w_out @ a_y)
        a_v = dz * psi[t] + alpha * a_v
        g_in += zeta * np.outer(x[t], a_v)
        g_out_w += g_out * np.outer(Z[t], a_y)
    return g_in, g_out_w, Y


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 8), st.integers(1, 8), st.integers(1, 3), st.integers(5, 80),
       st.sampled_from(["native", "nest_bsshslm_2020"]))
def test_eprop_equals_bptt_without_recurrence(seed, n_in, n_rec, n_out, n_t, conventions):
    rng = np.random.default_rng(seed)
    s = _constants()
    alpha, kappa = s.alpha, s.kappa
    zeta, g = (1 - alpha, 1 - kappa) if conventions != "native" else (1.0, 1.0)
    w_in = rng.normal(0, 1.0 / (zeta * np.sqrt(n_in)), (n_in, n_rec))
    w_out = rng.normal(0, 1, (n_rec, n_out))
    x = (rng.random((n_t, n_in)) < 0.3).astype(float)
    target = rng.normal(size=(n_t, n_out))
    g_in, g_out_w, Y = bptt_gradient(alpha, kappa, s.v_th, 0.3, zeta, g, w_in, w_out, x, target)
    # one GD step of size lr exposes the gradient exactly: w1 = w0 - lr * grad
    lr = 1e-3
    o = EpropOptions(lr=lr, feedback="symmetric", optimizer="gd", update_every_ticks=n_t, conventions=conventions,
                     train_rec=False, w_min=-1e9, w_max=1e9, max_abs_weight=1e12)
    res = train_sequences(s, o, w_in, np.zeros((n_rec, n_rec)), w_out, x[None], target[None])
    core = res["core"]
    np.testing.assert_allclose((w_in - core.w_in) / lr, g_in, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose((w_out - core.w_out) / lr, g_out_w, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res["losses"][0], 0.5 * np.sum((Y - target) ** 2), rtol=1e-12)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 8), st.integers(1, 8), st.integers(1, 3), st.integers(5, 80))
def test_eprop_equals_the_offline_bptt_engine_without_recurrence(seed, n_in, n_rec, n_out, n_t):
    """The same claim against the package's own offline BPTT (rtsnn.learn.offline.bptt_engine):
    triangular surrogate of half width v_th (e-prop's pseudo-derivative with gamma = 1), reset
    detached, no recurrence, readout y_t = kappa y_{t-1} + z_t w_out (b_out = 0)."""
    from rtsnn.learn.offline.bptt_engine import Engine, init_params
    from rtsnn.learn.offline.bptt_graph import BpttOptions, layered_graph

    rng = np.random.default_rng(seed)
    s = _constants()
    w_in = rng.normal(0, 1.0 / np.sqrt(n_in), (n_in, n_rec))
    w_out = rng.normal(0, 1, (n_rec, n_out))
    x = (rng.random((n_t, n_in)) < 0.3).astype(float)
    target = rng.normal(size=(n_t, n_out))
    graph = layered_graph(n_in, (n_rec,), (False,), n_out, dt_s=s.dt_s, tau_mem_s=s.tau_mem_s,
                          tau_out_s=s.tau_out_s, v_th=s.v_th)
    opts = BpttOptions(surrogate="triangular", surrogate_param=s.v_th, detach_reset=True)
    params = init_params(graph, 0, opts)
    assert set(params) >= {"w0", "w_out", "b_out", "kappa"} and "r0" not in params
    params.update(w0=w_in.copy(), w_out=w_out.copy(), b_out=np.zeros(n_out), kappa=np.array([s.kappa]))
    eng = Engine(graph, opts, dtype=np.float64)
    tape = eng.forward(params, x[:, None, :])
    grads = eng.backward(params, tape, tape.y - target[:, None, :])

    lr = 1e-3
    o = EpropOptions(lr=lr, feedback="symmetric", optimizer="gd", update_every_ticks=n_t, conventions="native",
                     gamma=1.0, train_rec=False, w_min=-1e9, w_max=1e9, max_abs_weight=1e12)
    res = train_sequences(s, o, w_in, np.zeros((n_rec, n_rec)), w_out, x[None], target[None])
    core = res["core"]
    np.testing.assert_allclose(res["losses"][0], 0.5 * np.sum((tape.y[:, 0] - target) ** 2), rtol=1e-12)
    np.testing.assert_allclose((w_in - core.w_in) / lr, grads["w0"], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose((w_out - core.w_out) / lr, grads["w_out"], rtol=1e-7, atol=1e-9)
