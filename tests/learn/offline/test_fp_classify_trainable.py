"""FP classification with trainable per-neuron thresholds and time constants (issue 18 item 4).

The exact gradient of the TTFS classification loss by every neuron's theta, tau_syn, tau_mem
(hidden and output) and by the weights, against float64 central differences of the loss; the
per-neuron path against the shared-parameter path; training, clamping (counted, never NaN),
selection on validation, and refusals."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from rtsnn.learn.offline import fp


def _case(seed, sizes=(3, 4, 3), n_b=4):
    """A random net, per-neuron parameters, inputs (with a bias channel), labels."""
    rng = np.random.default_rng(seed)
    n_in = sizes[0]
    ws = []
    for l in range(len(sizes) - 1):
        scale = 2.5 / max(1, sizes[l]) ** 0.5
        ws.append(rng.normal(scale * 1.5, scale, size=(sizes[l], sizes[l + 1])))
    net = fp.FPNetwork(ws)
    post = list(sizes[1:])
    nrn = fp.NeuronParams([rng.uniform(0.6, 1.4, n) for n in post],
                          [rng.uniform(0.4, 1.5, n) for n in post],
                          [rng.uniform(0.4, 1.5, n) * rng.choice([1.0, 1.3, 3.0], n) for n in post])
    x = rng.uniform(0.0, 2.0, size=(n_b, n_in))
    y = rng.integers(0, sizes[-1], n_b)
    s = fp.FPSettings(t_max=6.0, max_hidden_spikes=3, tau0=0.5, gamma=0.01)
    return net, nrn, s, x, y


def _loss(net, nrn, s, x, y, z):
    """(mean loss, spike counts per neuron, first output times) at parameters z."""
    n_w = net.layout()[3]
    other, o_nrn = net.copy(), nrn.copy()
    other.set_flat(z[:n_w])
    o_nrn.set_vector(z[n_w:])
    loss, _, t_first, counts, _ = fp.FPEvaluator(other, s, o_nrn).run(x, y, want_grad=False)
    return loss, counts, t_first


def _require(cond):
    assert cond


def _check_fd(seed, sizes=(3, 4, 3), need=_require):
    net, nrn, s, x, y = _case(seed, sizes)
    loss, grad = fp.classification_loss_grad(net, s, nrn, x, y)
    z0 = np.concatenate([net.flat(), nrn.vector()])
    _, counts0, tf0 = _loss(net, nrn, s, x, y, z0)
    need(np.any(tf0 < s.t_max))  # some output fires: a nonzero gradient to compare
    n_w = net.layout()[3]
    checked = {"w": 0, "theta": 0, "tau": 0}
    n_all = int(sum(nrn.sizes))
    for q in range(z0.size):
        eps = 1e-6 * max(1.0, abs(z0[q]))
        zp, zm = z0.copy(), z0.copy()
        zp[q] += eps
        zm[q] -= eps
        lp, cp, tp = _loss(net, nrn, s, x, y, zp)
        lm, cm, tm = _loss(net, nrn, s, x, y, zm)
        # a spike appearing or vanishing within eps is a jump no derivative sees
        if not (np.array_equal(cp, counts0) and np.array_equal(cm, counts0)
                and np.array_equal(tp < s.t_max, tf0 < s.t_max)
                and np.array_equal(tm < s.t_max, tf0 < s.t_max)):
            continue
        fd = (lp - lm) / (2 * eps)
        assert grad[q] == pytest.approx(fd, rel=2e-4, abs=2e-6 * max(1.0, np.abs(grad).max())), q
        key = "w" if q < n_w else ("theta" if q < n_w + n_all else "tau")
        checked[key] += 1
    return checked, grad, n_w, n_all


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_loss_gradient_by_thresholds_time_constants_and_weights_matches_finite_differences(seed):
    checked, grad, n_w, n_all = _check_fd(seed)
    assert checked["theta"] >= 0.7 * n_all and checked["tau"] >= 0.7 * 2 * n_all
    assert checked["w"] >= 0.7 * n_w
    assert np.any(grad[n_w:n_w + n_all] != 0) and np.any(grad[n_w + n_all:] != 0)


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([(2, 3, 2), (3, 4, 3), (3, 2, 3, 2)]))
def test_loss_gradient_matches_finite_differences_on_random_nets(seed, sizes):
    _check_fd(seed, sizes, need=assume)


def test_shared_neuron_parameters_give_the_scalar_path():
    """Every neuron at the settings' values (exact reciprocals): the per-neuron kernels give the
    scalar kernels' loss, first times and weight gradient."""
    rng = np.random.default_rng(3)
    net = fp.init_network(5, [12], 3, seed=3, hidden_mean=1.5, out_mean=1.5)
    x = fp.encode_latency(rng.uniform(0, 1, size=(16, 4)))
    y = rng.integers(0, 3, 16)
    s = fp.FPSettings(alpha=1.0, beta=0.25, theta=1.0, t_max=8.0, max_hidden_spikes=2)
    l0, g0, t0, c0, _ = fp.FPEvaluator(net, s).run(x, y)
    nrn = fp.NeuronParams.shared(net.sizes, s)
    l1, g1, t1, c1, _ = fp.FPEvaluator(net, s, nrn).run(x, y)
    assert l1 == pytest.approx(l0, rel=1e-13)
    np.testing.assert_array_equal(c1, c0)
    np.testing.assert_allclose(t1, t0, rtol=1e-13)
    np.testing.assert_allclose(g1[:g0.size], g0, rtol=1e-10, atol=1e-14)
    assert np.any(g1[g0.size:] != 0)


def _yy_like(n, seed):
    rng = np.random.default_rng(seed)
    v = rng.uniform(0, 1, size=(n, 2))
    y = (v[:, 0] > v[:, 1]).astype(int) + (v.sum(1) > 1.2).astype(int)
    return fp.encode_latency(np.c_[v, 1 - v]), y


def test_training_moves_thresholds_and_time_constants_and_lowers_the_loss():
    x, y = _yy_like(120, 0)
    kw = dict(hidden=[10], n_classes=3, epochs=4, seed=0, batch_size=16, lr=5e-3,
              settings=fp.FPSettings(beta=0.25, t_max=8.0, max_hidden_spikes=1, tau0=0.1))
    w_only = fp.train_classifier_fp(x, y, **kw)
    assert w_only.neurons is None and w_only.history[-1]["clamped_theta"] == 0
    m = fp.train_classifier_fp(x, y, train_thresholds=True, train_time_constants=True, **kw)
    start = fp.NeuronParams.shared(m.net.sizes, kw["settings"])
    for l in range(2):
        assert not np.array_equal(m.neurons.theta[l], start.theta[l])
        assert not np.array_equal(m.neurons.tau_syn[l], start.tau_syn[l])
        assert not np.array_equal(m.neurons.tau_mem[l], start.tau_mem[l])
    assert m.history[-1]["loss"] < m.history[0]["loss"]
    assert "neurons" in m.history[-1] and len(m.history[-1]["neurons"]["theta"]) == 2
    # the model predicts with its own parameters
    ev = fp.FPEvaluator(m.net, m.settings, m.neurons)
    tf = ev.run(x, y, want_grad=False)[2]
    np.testing.assert_array_equal(m.predict(x), fp.predict_from_times(tf, m.settings.t_max))
    # thresholds only: time constants stay at the settings' values
    m = fp.train_classifier_fp(x, y, train_thresholds=True, **kw)
    for l in range(2):
        np.testing.assert_array_equal(m.neurons.tau_mem[l], start.tau_mem[l])
        assert not np.array_equal(m.neurons.theta[l], start.theta[l])


def test_updates_driving_thresholds_and_time_constants_non_positive_are_clamped_and_counted():
    x, y = _yy_like(60, 1)
    # an absurd rate for thresholds and time constants: Adam moves each ~lr per step
    m = fp.train_classifier_fp(x, y, hidden=[6], n_classes=3, epochs=3, seed=1, batch_size=10,
                               settings=fp.FPSettings(t_max=8.0, max_hidden_spikes=1),
                               train_thresholds=True, train_time_constants=True, lr_theta=5.0,
                               lr_tau=5.0, theta_min=0.05, tau_min=0.1)
    h = m.history
    assert h[-1]["clamped_theta"] > 0 and h[-1]["clamped_tau"] > 0
    assert all(a["clamped_theta"] <= b["clamped_theta"] for a, b in zip(h, h[1:]))
    for l in range(2):
        for arr, lo in ((m.neurons.theta[l], 0.05), (m.neurons.tau_syn[l], 0.1),
                        (m.neurons.tau_mem[l], 0.1)):
            assert np.all(np.isfinite(arr)) and np.all(arr >= lo)
    assert all(math.isfinite(r["loss"]) for r in h)
    assert np.all(np.isfinite(m.first_spike_times(x)))


def test_clamp_sets_floors_counts_and_removes_nan():
    z = np.array([9.0, 0.5, -0.3, np.nan, 1.0, -2.0, np.nan, 0.2])
    out, c_th, c_tau = fp.clamp_neuron_params(z, slice(1, 4), slice(4, 8), 0.01, 0.05)
    assert (c_th, c_tau) == (2, 2)
    np.testing.assert_array_equal(out, [9.0, 0.5, 0.01, 0.01, 1.0, 0.05, 0.05, 0.2])


def test_selection_on_validation_keeps_the_neuron_parameters_of_that_epoch():
    x, y = _yy_like(100, 2)
    xv, yv = _yy_like(60, 3)
    m = fp.train_classifier_fp(x, y, hidden=[8], n_classes=3, epochs=4, seed=2, batch_size=20,
                               settings=fp.FPSettings(beta=0.25, t_max=8.0, max_hidden_spikes=1),
                               x_val=xv, y_val=yv, select_on_val=True, train_thresholds=True,
                               train_time_constants=True)
    best = max(h["val_acc"] for h in m.history)
    assert m.accuracy(xv, yv) == pytest.approx(best)


@pytest.mark.parametrize("kw,match", [
    (dict(lr_theta=0.0), "lr_theta must be finite and > 0"),
    (dict(lr_tau=float("nan")), "lr_tau must be finite and > 0"),
    (dict(theta_min=0.0), "theta_min and tau_min must be finite and > 0"),
    (dict(neurons=fp.NeuronParams([np.ones(3), np.ones(2)], [np.ones(3), np.ones(2)],
                                  [np.ones(3), np.ones(2)])), "do not match the network's"),
])
def test_bad_per_neuron_options_are_refused(kw, match):
    x, y = _yy_like(10, 0)
    with pytest.raises(ValueError, match=match):
        fp.train_classifier_fp(x, y, hidden=[4], n_classes=3, epochs=1, seed=0,
                               train_thresholds=True, **kw)


@pytest.mark.parametrize("field,value", [("theta", 0.0), ("tau_syn", -1.0), ("tau_mem", np.nan)])
def test_bad_neuron_params_are_refused(field, value):
    kw = {k: [np.ones(2)] for k in ("theta", "tau_syn", "tau_mem")}
    kw[field] = [np.array([1.0, value])]
    with pytest.raises(ValueError, match=rf"NeuronParams.{field}\[0\]"):
        fp.NeuronParams(**kw)
