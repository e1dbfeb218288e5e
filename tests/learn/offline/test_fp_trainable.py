"""FP with per-neuron thresholds and time constants (issue 18, item 4).

The per-neuron kernels (fp_kernels.simulate_network_pn / fp_rows_pn) against their numpy
twins (fp_reference), against the scalar kernels when every neuron shares its parameters, and
the exact spike-time gradients w.r.t. theta_i, alpha_i = 1/tau_syn_i, beta_i = 1/tau_mem_i
against central finite differences in float64; several spikes per hidden neuron; clamping."""

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings, strategies as st

from rtsnn.learn.offline import fp
from rtsnn.learn.offline import fp_kernels as K
from rtsnn.learn.offline import fp_reference as R
from rtsnn.learn.offline import fp_regression as F


def _net(seed, sizes, *, recurrent=False, linear_out=False, equal=False):
    """Random per-neuron network; ``equal``: every neuron alpha = beta = theta = 1."""
    rng = np.random.default_rng(seed)
    ws, rs, th, ts, tm = [], [], [], [], []
    L = len(sizes) - 1
    for l in range(L):
        n = sizes[l + 1]
        scale = 2.5 / max(1, sizes[l]) ** 0.5
        ws.append(rng.normal(scale * 1.5, scale, size=(sizes[l], n)))
        if recurrent and n > 1 and l < L - 1:
            r = rng.normal(0.0, 0.6, size=(n, n))
            np.fill_diagonal(r, 0.0)
            rs.append(r)
        else:
            rs.append(None)
        if equal:
            th.append(np.ones(n)), ts.append(np.ones(n)), tm.append(np.ones(n))
        else:
            th.append(rng.uniform(0.6, 1.4, n))
            ts.append(rng.uniform(0.4, 1.5, n))
            tm.append(rng.uniform(0.4, 1.5, n) * rng.choice([1.0, 0.999, 1.3], n))
    return F.FPRegressionNet(ws, th, ts, tm, np.zeros(sizes[-1]), rs)


def _inputs(seed, n_in, n_ev=8, amps=True):
    rng = np.random.default_rng(seed + 7)
    t = np.sort(rng.uniform(0.0, 3.0, n_ev))
    src = rng.integers(0, n_in, n_ev)
    amp = rng.integers(1, 4, n_ev).astype(float) if amps else np.ones(n_ev)
    return t, src, amp


@settings(max_examples=60, deadline=None)
@given(st.floats(1e-6, 20.0), st.floats(0.05, 4.0), st.sampled_from([1.0, 0.999, 1.001, 1 + 1e-9, 0.5, 3.0]))
@example(s=0.001953125, alpha=0.125, ratio=0.5)  # found by hypothesis: the closed form cancels there
def test_psp_parameter_derivatives_match_reference_and_differences(s, alpha, ratio):
    beta = alpha * ratio
    da, db = K.psp_dalpha(s, alpha, beta), K.psp_dbeta(s, alpha, beta)
    # the reference's closed form cancels when (beta - alpha) s is small (the kernel switches to
    # its series below 0.5): compare with it only where it is accurate, or at its exact limit
    if abs((beta - alpha) * s) >= 0.5 or ratio == 1.0:
        assert da == pytest.approx(R.psp_dalpha_ref(np.array([s]), alpha, beta)[0], rel=1e-9, abs=1e-14)
        assert db == pytest.approx(R.psp_dbeta_ref(np.array([s]), alpha, beta)[0], rel=1e-9, abs=1e-14)
    # central differences of the kernel h itself (float64)
    ea, eb = 1e-6 * alpha, 1e-6 * beta
    fda = (K.psp(s, alpha + ea, beta) - K.psp(s, alpha - ea, beta)) / (2 * ea)
    fdb = (K.psp(s, alpha, beta + eb) - K.psp(s, alpha, beta - eb)) / (2 * eb)
    tol = 1e-6 * (1 + s * s) * math.exp(-min(alpha, beta) * s) + 1e-12
    assert da == pytest.approx(fda, abs=tol)
    assert db == pytest.approx(fdb, abs=tol)
    assert K.psp_dalpha(0.0, alpha, beta) == 0.0 and K.psp_dbeta(-1.0, alpha, beta) == 0.0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([[2, 3], [3, 4, 2], [2, 3, 3]]), st.booleans(),
       st.integers(1, 4))
def test_per_neuron_kernels_match_numpy_twins(seed, sizes, recurrent, max_spikes):
    net = _net(seed, sizes, recurrent=recurrent)
    t, src, amp = _inputs(seed, sizes[0])
    spikes, jac, vdot = F.spike_jacobian_pn(net, t, src, amp, 5.0, max_spikes, linear_out=False)
    layers = F.reference_layers(net)
    ref = R.simulate_network_pn_ref(t, src, amp, layers, 5.0, max_spikes, False)
    for (tk, nk), (tr, nr) in zip(spikes, ref):
        assert np.array_equal(nk, nr)
        np.testing.assert_allclose(tk, tr, rtol=0, atol=1e-12)
    assume(np.all(np.abs(vdot) > 1e-3))  # a near-tangential crossing: the solve is ill-conditioned
    jr = R.spike_jacobian_pn_ref(t, src, amp, layers, ref, False)
    n_ref = jr.shape[1]  # the twin's spiking-output layout has no bias; a spike never depends on it
    np.testing.assert_allclose(jac[:, :n_ref], jr, rtol=1e-7, atol=1e-9 * max(1.0, np.abs(jr).max()))
    assert not np.any(jac[:, n_ref:])


def test_shared_parameters_reproduce_the_scalar_kernels():
    """alpha = beta = theta = 1 for every neuron, unit amplitudes: the same spikes and the same
    weight columns of the rows as fp.spike_jacobian (the classification path)."""
    for seed in range(5):
        net = _net(seed, [3, 4, 3], recurrent=seed % 2 == 1, equal=True)
        rng = np.random.default_rng(seed)
        x = rng.uniform(0.0, 2.0, 3)
        spikes, jac, _ = F.spike_jacobian_pn(net, x, np.arange(3), np.ones(3), 6.0, 3, linear_out=False)
        old = fp.FPNetwork([w.copy() for w in net.w], [None if r is None else r.copy() for r in net.r])
        s_old = fp.FPSettings(alpha=1.0, beta=1.0, theta=1.0, t_max=6.0, max_hidden_spikes=3)
        spk_old, jac_old, _ = fp.spike_jacobian(old, s_old, x, max_out_spikes=3)
        for (a, b), (c, d) in zip(spikes, spk_old):
            assert np.array_equal(b, d)
            np.testing.assert_allclose(a, c, rtol=0, atol=1e-13)
        nw = net.layout()["n_weights"]
        np.testing.assert_allclose(jac[:, :nw], jac_old, rtol=1e-10, atol=1e-12)


def _spike_times(net, t, src, amp, max_spikes, z):
    probe = net.copy()
    probe.set_trainable_vector(z)
    spikes, _, _ = F.spike_jacobian_pn(probe, t, src, amp, 5.0, max_spikes, linear_out=False)
    return spikes


@pytest.mark.parametrize("seed,recurrent", [(3, False), (11, True), (23, False), (42, True)])
def test_spike_time_gradients_for_thresholds_and_time_constants_match_finite_differences(seed, recurrent):
    """d f_k / d theta_i, d tau_syn_i, d tau_mem_i (and the weights) by central differences,
    float64, with several spikes per neuron (own-reset coupling inside the rows)."""
    net = _net(seed, [3, 4, 2], recurrent=recurrent)
    t, src, amp = _inputs(seed, 3, n_ev=10)
    spikes, jac, vdot = F.spike_jacobian_pn(net, t, src, amp, 5.0, 4, linear_out=False)
    counts = np.bincount(spikes[0][1], minlength=4)
    assert counts.max() >= 2  # several spikes per hidden neuron in these cases
    assert np.all(np.abs(vdot) > 1e-2)
    z0 = net.trainable_vector()
    lay = net.layout()
    # d/dtau = d/drate * (-1/tau^2)
    chain = np.ones(z0.size)
    sl = slice(lay["off_al"], lay["off_b"])
    chain[sl] = -1.0 / z0[sl] ** 2
    jac_z = jac * chain[None, :]
    flat_t = np.concatenate([s[0] for s in spikes])
    n_checked = 0
    for q in range(lay["n_weights"], lay["off_b"]):  # every theta, tau_syn, tau_mem
        eps = 1e-6 * max(1.0, abs(z0[q]))
        zp, zm = z0.copy(), z0.copy()
        zp[q] += eps
        zm[q] -= eps
        sp, sm = _spike_times(net, t, src, amp, 4, zp), _spike_times(net, t, src, amp, 4, zm)
        if any(len(a[0]) != len(b[0]) for a, b in zip(sp, spikes)) or \
                any(len(a[0]) != len(b[0]) for a, b in zip(sm, spikes)):
            continue  # a spike appears/disappears within eps: not differentiable there
        fd = (np.concatenate([s[0] for s in sp]) - np.concatenate([s[0] for s in sm])) / (2 * eps)
        np.testing.assert_allclose(jac_z[:, q], fd, rtol=2e-5, atol=2e-6 * max(1.0, np.abs(flat_t).max()))
        n_checked += 1
    assert n_checked >= 0.8 * (lay["off_b"] - lay["n_weights"])


def test_higher_threshold_delays_a_spike_longer_time_constant_changes_it():
    net = _net(0, [2, 1], equal=True)
    net.w[0][:] = 3.0
    spikes, jac, _ = F.spike_jacobian_pn(net, [0.1, 0.3], [0, 1], [1.0, 1.0], 5.0, 1, linear_out=False)
    lay = net.layout()
    assert spikes[0][0].size == 1
    assert jac[0, lay["off_th"]] > 0  # d f / d theta > 0
    assert jac[0, lay["off_al"]] > 0 and jac[0, lay["off_be"]] > 0  # faster decays: later crossing


def test_clamp_counts_and_never_returns_nan():
    assert F.clamp_neuron_params is fp.clamp_neuron_params  # one clamp for classification and regression
    z = np.array([0.5, -0.3, np.nan, 0.0, 1.0, -2.0, np.nan, 0.2])
    out, c_th, c_tau = F.clamp_neuron_params(z, slice(0, 4), slice(4, 8), 0.01, 0.05)
    assert c_th == 3 and c_tau == 2
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, [0.5, 0.01, 0.01, 0.01, 1.0, 0.05, 0.05, 0.2])


def test_an_update_driving_thresholds_and_time_constants_non_positive_is_clamped_and_counted():
    rng = np.random.default_rng(0)
    T, B, n = 8, 6, 5
    x = rng.poisson(1.0, size=(T, B, n)).astype(float)
    y = np.cumsum(x[:, :, :2] - 1.0, axis=0) * 0.3
    batch = F.events_from_bins(x, y)
    # an absurd learning rate for thresholds and time constants: Adam moves them ~lr per step
    m = F.train_regression_fp(batch, hidden=[6], epochs=2, seed=1, lr=1e-3, lr_theta=5.0, lr_tau=5.0,
                              batch_size=2, max_hidden_spikes=8, theta_min=0.05, tau_min=0.1)
    h = m.history[-1]
    assert h["clamped_theta"] > 0 and h["clamped_tau"] > 0
    for l in range(len(m.net.w)):
        for arr, lo in ((m.net.theta[l], 0.05), (m.net.tau_syn[l], 0.1), (m.net.tau_mem[l], 0.1)):
            assert np.all(np.isfinite(arr)) and np.all(arr >= lo)
    assert np.all(np.isfinite(m.predict(batch)))


def test_frozen_thresholds_and_time_constants_stay_put():
    rng = np.random.default_rng(1)
    x = rng.poisson(1.0, size=(6, 4, 4)).astype(float)
    y = rng.normal(size=(6, 4, 1))
    batch = F.events_from_bins(x, y)
    net = F.init_regression_net(batch, [5], 1, seed=0)
    before = net.copy()
    F.train_regression_fp(batch, hidden=[5], epochs=1, seed=0, batch_size=2, net=net, train_thresholds=False,
                          train_time_constants=False, max_hidden_spikes=8)
    for l in range(2):
        np.testing.assert_array_equal(net.theta[l], before.theta[l])
        np.testing.assert_array_equal(net.tau_syn[l], before.tau_syn[l])
        np.testing.assert_array_equal(net.tau_mem[l], before.tau_mem[l])
    assert not np.array_equal(net.w[0], before.w[0])


@pytest.mark.parametrize("field,value,match", [
    ("theta", 0.0, "theta\\[0\\] must be > 0"), ("tau_syn", -1.0, "tau_syn\\[0\\] must be > 0"),
    ("tau_mem", np.nan, "tau_mem\\[0\\] contains NaN"), ("theta", [1.0, 2.0], "one per neuron")])
def test_bad_neuron_parameters_are_refused(field, value, match):
    kw = dict(w=[np.ones((2, 3)), np.ones((3, 1))], theta=[1.0, 1.0], tau_syn=[1.0, 1.0], tau_mem=[1.0, 1.0],
              bias=np.zeros(1))
    kw[field] = [value, 1.0]
    with pytest.raises(ValueError, match=match):
        F.FPRegressionNet(**kw)
