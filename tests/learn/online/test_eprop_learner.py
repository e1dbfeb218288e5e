"""EpropLearner on the runtime backend: the same losses as the offline NEST-convention run,
learning in both update modes, options validation."""

import numpy as np
import pytest

from rtsnn.backends.numba_cpu import NumbaCpuBackend
from rtsnn.learn.online.eprop import EpropLearner, EpropOptions
from rtsnn.learn.online.eprop_reference import GOLDEN, golden_setup
from rtsnn.snn.params import Model, Weights, single_layer


def _drive(learner, backend, xs, targets, reset_each=None, deferred=False):
    """A minimal session loop: step, readout, observe, (prepare + apply when wanted)."""
    x_buf = np.zeros(backend.n_in, np.float32)
    ys = np.zeros((xs.shape[0], backend.n_out))
    for t in range(xs.shape[0]):
        if reset_each and t % reset_each == 0:
            backend.reset_state()
        x_buf[:] = xs[t]
        backend.step(x_buf)
        ys[t] = backend.readout()
        learner.observe(backend, targets[t])
        if learner.wants_apply():
            learner.prepare()
            learner.apply(backend)
    return ys


def test_learner_on_runtime_reproduces_golden_sine():
    """The live learner on the runtime's float32 network (NEST conventions, weights installed
    as zeta W) gives NEST's golden sine losses."""
    c, options, d = golden_setup("sine")
    conv_zeta = 1 - c.alpha
    n_rec = d["w_rec"].shape[0]
    layer = single_layer(c.model, n_rec, tau_mem_s=c.tau_mem_s, v_th=c.v_th, refractory_s=c.refractory_s,
                         tau_out_s=c.tau_out_s)
    model = Model(*layer, Weights(d["w_in"] * conv_zeta, d["w_rec"] * conv_zeta, d["w_out"] * (1 - c.kappa),
                                  np.zeros(1)), c.dt_s)
    assert model.constants == c
    be = NumbaCpuBackend(model, propagation="dense")
    lrn = EpropLearner(**{**options.to_dict(), "defer": True, "reset_on_update": True})
    lrn.attach(be, c.dt_s)
    lrn.core.B[...] = d["feedback"]
    be.warm_up()
    n_iter, n_t = d["xs"].shape[:2]
    xs = d["xs"].reshape(-1, d["xs"].shape[2])
    tg = d["targets"].reshape(-1, 1)
    ys = _drive(lrn, be, xs, tg)
    losses = [0.5 * np.sum((ys[i * n_t:(i + 1) * n_t] - tg[i * n_t:(i + 1) * n_t]) ** 2) for i in range(n_iter)]
    np.testing.assert_allclose(losses, GOLDEN["sine"], rtol=1e-5)
    st = lrn.stats()
    assert st["updates"] == n_iter and st["rollbacks"] == 0 and st["bad_targets"] == 0


def _regression_setup(model_kind, seed=0):
    layer = single_layer(model_kind, 40, tau_mem_s=20e-3, tau_out_s=20e-3, v_th=1.0, beta_adapt=0.5,
                         tau_adapt_s=200e-3, refractory_s=2e-3)
    model = Model.random(12, 40, 2, *layer, seed=seed, input_gain=1.5, spectral_radius=0.5, readout_scale=0.1)
    rng = np.random.default_rng(seed)
    n_t = 6000
    rates = 0.03 + 0.03 * np.sin(np.arange(n_t)[:, None] / 100.0 + np.arange(12)[None] * 0.5)
    xs = (rng.random((n_t, 12)) < rates).astype(np.float32)
    t = np.arange(n_t)
    tg = np.stack([np.sin(t / 100.0), np.cos(t / 100.0 + 1.0)], 1).astype(np.float32)
    return model, xs, tg


@pytest.mark.parametrize("model_kind,feedback,optimizer,every", [
    ("lif", "symmetric", "adam", 1), ("alif", "random", "adam", 200), ("alif", "adaptive", "gd", 50),
    ("lif", "symmetric", "gd", 500)])
def test_learner_reduces_error(model_kind, feedback, optimizer, every):
    model, xs, tg = _regression_setup(model_kind)
    lr = {"adam": 2e-3 if every == 1 else 1e-2, "gd": 1e-2 / every}[optimizer]
    frozen = NumbaCpuBackend(model.copy())
    y0 = _drive(type("Off", (), {"observe": lambda *a: None, "wants_apply": lambda s: False})(), frozen, xs, tg)
    be = NumbaCpuBackend(model.copy())
    lrn = EpropLearner(lr=lr, feedback=feedback, optimizer=optimizer, update_every_ticks=every, train_bias=True,
                       c_reg=1.0, reg_rate_hz=20.0, reg_mode="online" if every == 1 else "window")
    lrn.attach(be, 1e-3)
    be.warm_up()
    y1 = _drive(lrn, be, xs, tg)
    late = slice(4000, None)
    mse0 = np.mean((y0[late] - tg[late]) ** 2)
    mse1 = np.mean((y1[late] - tg[late]) ** 2)
    assert mse1 < 0.6 * mse0, (mse0, mse1)
    assert lrn.stats()["updates"] >= len(xs) // every - 2


def test_options_validation_names_the_option():
    with pytest.raises(ValueError, match="feedback"):
        EpropOptions(feedback="mirror")
    with pytest.raises(ValueError, match="update_every_ticks"):
        EpropOptions(update_every_ticks=0)
    with pytest.raises(ValueError, match="unknown eprop option.*bogus"):
        EpropLearner(bogus=1)
    with pytest.raises(ValueError, match="lr"):
        EpropLearner(lr=float("nan"))


def test_learner_rejects_backend_without_state():
    class Bare:
        n_in, n_rec, n_out = 1, 1, 1

        def readout(self):
            return np.zeros(1, np.float32)

    with pytest.raises(ValueError, match="network state"):
        EpropLearner().attach(Bare(), 1e-3)


def test_cross_entropy_needs_two_outputs():
    model, _, _ = _regression_setup("lif")
    m1 = Model(model.hidden, model.trace, Weights(model.weights.w_in, model.weights.w_rec,
                                                  model.weights.w_out[:, :1], np.zeros(1)), model.dt_s)
    with pytest.raises(ValueError, match="cross_entropy"):
        EpropLearner(loss="cross_entropy").attach(NumbaCpuBackend(m1), 1e-3)
