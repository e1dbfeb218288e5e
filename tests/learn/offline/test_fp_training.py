"""FP wrapper: bad input refused with named values, silent outputs do not stall training,
XOR converges, and the TTFS loss has the published sign."""

import math

import numpy as np
import pytest

from rtsnn.datasets import load_xor
from rtsnn.learn.offline import fp
from rtsnn.learn.offline import fp_kernels as K


@pytest.mark.parametrize("field, value", [
    ("alpha", -1.0), ("beta", 0.0), ("theta", -0.5), ("t_max", float("nan")), ("tau0", -0.2),
    ("tau1", 0.0), ("gamma", -0.1), ("max_hidden_spikes", 0),
])
def test_settings_out_of_domain_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        fp.FPSettings(**{field: value})


def test_alpha_equal_beta_is_supported():
    s = fp.FPSettings(alpha=1.0, beta=1.0)
    net = fp.init_network(2, [3], 2, seed=0)
    assert len(fp.simulate(net, s, np.array([0.1, 0.2]))) == 2


def test_network_validation_names_the_array():
    with pytest.raises(ValueError, match=r"w\[0\] contains NaN"):
        fp.FPNetwork([np.array([[np.nan]])])
    with pytest.raises(ValueError, match=r"w\[1\] has 3 rows"):
        fp.FPNetwork([np.ones((2, 2)), np.ones((3, 1))])
    with pytest.raises(ValueError, match=r"r\[0\] must have a zero diagonal"):
        fp.FPNetwork([np.ones((2, 2))], [np.ones((2, 2))])
    with pytest.raises(ValueError, match=r"r\[0\] must be \(2, 2\)"):
        fp.FPNetwork([np.ones((2, 2))], [np.zeros((3, 3))])


def test_training_inputs_validated_by_name():
    x = fp.encode_latency(np.random.default_rng(0).uniform(size=(8, 2)))
    y = np.zeros(8, dtype=int)
    kw = dict(hidden=[3], n_classes=2, epochs=1, seed=0)
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="x_times contains NaN"):
        fp.train_classifier_fp(bad, y, **kw)
    with pytest.raises(ValueError, match="x_times must be 2-D"):
        fp.train_classifier_fp(x[0], y, **kw)
    with pytest.raises(ValueError, match=r"y must have shape \(8,\)"):
        fp.train_classifier_fp(x, y[:5], **kw)
    with pytest.raises(ValueError, match=r"y labels must lie in \[0, 2\)"):
        fp.train_classifier_fp(x, np.full(8, 2), **kw)
    with pytest.raises(ValueError, match="x_val has 2 input channels"):
        fp.train_classifier_fp(x, y, x_val=x[:, :2], y_val=y, **kw)
    with pytest.raises(ValueError, match="epochs"):
        fp.train_classifier_fp(x, y, **{**kw, "epochs": 0})
    with pytest.raises(ValueError, match="lr"):
        fp.train_classifier_fp(x, y, lr=-1.0, **kw)
    with pytest.raises(ValueError, match="x contains NaN"):
        fp.encode_latency(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="t_early"):
        fp.encode_latency(np.zeros((1, 2)), t_early=2.0, t_late=1.0)
    with pytest.raises(ValueError, match="in_times has 3 input channels"):
        fp.simulate(fp.init_network(2, [2], 2, seed=0), fp.FPSettings(), np.zeros(3))


def test_ttfs_loss_published_sign_and_gradient():
    t = np.array([0.7, 1.1, 1.5])
    dl = np.zeros(3)
    tau0, tau1, gamma = 0.2, 1.0, 0.3
    loss = K.ttfs_loss(t, 1, tau0, tau1, gamma, dl)
    z = -t / tau0
    ref = -(z[1] - np.log(np.exp(z).sum())) + gamma * (math.exp(t[1] / tau1) - 1.0)
    assert loss == pytest.approx(ref, rel=1e-12)
    # the regulariser is +gamma (exp(t/tau1) - 1): it grows with the label's time
    assert K.ttfs_loss(t, 1, tau0, tau1, 0.3, np.zeros(3)) > K.ttfs_loss(t, 1, tau0, tau1, 0.0,
                                                                       np.zeros(3))
    for o in range(3):
        e = np.zeros(3)
        e[o] = 1e-6
        num = (K.ttfs_loss(t + e, 1, tau0, tau1, gamma, np.zeros(3))
               - K.ttfs_loss(t - e, 1, tau0, tau1, gamma, np.zeros(3))) / 2e-6
        assert dl[o] == pytest.approx(num, rel=1e-6)
    assert dl[1] > 0 > dl[0]  # descent pulls the label spike earlier, pushes a rival later


def test_silent_outputs_do_not_stall_training():
    """Output weights so negative that every output is silent: spike-time gradients are all
    zero, the silent kick must make the label neurons fire and learning proceed."""
    d = load_xor()
    x = fp.encode_latency(d.x, t_early=0.0, t_late=1.0, t_bias=0.0)
    net = fp.init_network(3, [4], 2, seed=0, hidden_mean=3.0, hidden_sd=1.0)
    net.w[1][:] = -1.0 + 0.1 * np.random.default_rng(0).standard_normal(net.w[1].shape)
    s = fp.FPSettings(alpha=1.0, beta=0.99, t_max=6.0, max_hidden_spikes=1, tau0=0.1,
                      gamma=0.0)
    ev = fp.FPEvaluator(net, s)
    _, grad, t_first, _, silent = ev.run(x, d.y)
    assert np.all(t_first == s.t_max) and np.all(silent == 1)
    assert np.all(grad == 0)  # no spike-time gradient at all without the kick
    m = fp.train_classifier_fp(x, d.y, hidden=[4], n_classes=2, epochs=400, seed=0,
                               settings=s, lr=0.1, batch_size=4, net=net, stop_at_train_acc=1.0)
    assert m.history[-1]["silent_label_frac"] == 0.0
    assert m.accuracy(x, d.y) == 1.0


def test_xor_converges_for_several_inits():
    d = load_xor()
    x = fp.encode_latency(d.x, t_early=0.0, t_late=1.0, t_bias=0.0)
    s = fp.FPSettings(alpha=1.0, beta=0.99, t_max=6.0, max_hidden_spikes=1, tau0=0.1,
                      gamma=0.0)
    for seed in range(20):
        m = fp.train_classifier_fp(x, d.y, hidden=[4], n_classes=2, epochs=2000, seed=seed,
                                   settings=s, lr=0.1, batch_size=4, stop_at_train_acc=1.0,
                                   init=dict(hidden_mean=3.0, hidden_sd=1.0))
        assert m.accuracy(x, d.y) == 1.0, seed


def test_recurrent_training_step_runs_and_keeps_zero_diagonal():
    rng = np.random.default_rng(0)
    x = fp.encode_latency(rng.uniform(size=(16, 2)))
    y = (x[:, 0] > x[:, 1]).astype(int)
    net = fp.init_network(3, [6], 2, seed=1, recurrent=True, rec_sd=0.3)
    m = fp.train_classifier_fp(x, y, hidden=[6], n_classes=2, epochs=3, seed=1, net=net,
                               settings=fp.FPSettings(max_hidden_spikes=3), lr=0.01)
    assert np.all(np.diag(m.net.r[0]) == 0)
    assert len(m.history) == 3 and all(np.isfinite(h["loss"]) for h in m.history)
    assert m.predict(x).shape == (16,)
