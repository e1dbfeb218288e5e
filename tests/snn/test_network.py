import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rtsnn.snn import Model, Network, Weights, single_layer
from rtsnn.snn.reference import run_reference

F32 = np.float32


def _model(model="alif", n_in=12, n_rec=40, n_out=2, seed=0, **kw):
    layer = single_layer(model, n_rec, beta_adapt=0.1 if model == "alif" else 0.0, refractory_s=2e-3)
    m = Model.random(n_in, n_rec, n_out, *layer, seed=seed, input_gain=2.0, spectral_radius=0.9,
                     readout_scale=1.0, **kw)
    m.weights.b_out[:] = np.arange(n_out, dtype=F32)
    return m


def _poisson(rng, t, n, rate=0.05):
    return rng.poisson(rate, (t, n)).astype(F32)


def test_run_equals_repeated_step_and_reference():
    m = _model()
    xs = _poisson(np.random.default_rng(0), 300, m.n_in, 0.2)
    net_a, net_b = Network(m), Network(m)
    y_run, z_run = net_a.run(xs)
    for t in range(xs.shape[0]):
        net_b.step(xs[t])
        np.testing.assert_array_equal(net_b.readout(), y_run[t])
        np.testing.assert_array_equal(net_b.spikes(), z_run[t])
    assert 0.01 < z_run.mean() < 0.5  # the test exercises spiking
    y_ref, z_ref = run_reference(m.constants, m.weights, xs[:30])
    np.testing.assert_array_equal(z_run[:30], z_ref)  # early steps: no time for rounding to diverge
    np.testing.assert_allclose(y_run[:30], y_ref, rtol=1e-4, atol=1e-4)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["lif", "alif"]), st.integers(1, 30), st.integers(1, 90), st.floats(0.0, 1.0),
       st.integers(0, 2**31 - 1))
def test_network_modes_bit_identical(model, n_in, n_rec, auto_threshold, seed):
    m = _model(model, n_in, n_rec, 2, seed)
    xs = _poisson(np.random.default_rng(seed), 200, n_in, 0.3)
    outs = []
    nets = [Network(m, "dense"), Network(m, "event"), Network(m, "auto", auto_threshold)]
    for net in nets:
        y, z = net.run(xs)
        st_ = net.state
        outs.append([y, z, st_.v, st_.a, st_.r, st_.refr])
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a.view(np.uint32) if a.dtype == F32 else a,
                                          b.view(np.uint32) if b.dtype == F32 else b)
    assert nets[0].n_steps_dense == 200 and nets[0].n_steps_event == 0
    assert nets[1].n_steps_event == 200 and nets[1].n_steps_dense == 0
    assert nets[2].n_steps_dense + nets[2].n_steps_event == 200


def test_views_are_stable_and_step_allocates_nothing_new():
    net = Network(_model())
    y, r, z = net.readout(), net.features(), net.spikes()
    x = np.ones(net.n_in, F32)
    for _ in range(5):
        net.step(x)
    assert net.readout() is y and net.features() is r and net.spikes() is z
    assert np.shares_memory(y, net.state.y) and r.any()


def test_readout_is_trace_form_of_leaky_integrator():
    """With b_out = 0, y[t] = kappa y[t-1] + w_out^T z[t] (the classic leaky readout)."""
    m = _model()
    m.weights.b_out[:] = 0.0
    net = Network(m)
    xs = _poisson(np.random.default_rng(1), 200, m.n_in, 0.3)
    y, z = net.run(xs)
    kappa = m.constants.kappa
    y_leaky = np.zeros_like(y)
    prev = np.zeros(m.n_out)
    for t in range(len(xs)):
        prev = kappa * prev + z[t].astype(np.float64) @ m.weights.w_out
        y_leaky[t] = prev
    np.testing.assert_allclose(y, y_leaky, rtol=1e-4, atol=1e-4)


def test_set_readout_validates_copies_and_recomputes_output():
    m = _model()
    net = Network(m)
    net.run(_poisson(np.random.default_rng(2), 50, m.n_in, 0.3))
    w_old = m.weights.w_out
    w_new = np.random.default_rng(3).standard_normal((m.n_rec, m.n_out)).astype(F32)
    b_new = np.array([0.5, -0.5], F32)
    net.set_readout(w_new, b_new)
    assert m.weights.w_out is w_old  # in place: the model sees the new readout
    np.testing.assert_array_equal(m.weights.w_out, w_new)
    np.testing.assert_allclose(net.readout(), net.features() @ w_new + b_new, rtol=1e-5, atol=1e-5)
    w_new[:] = 0  # caller's array was copied, not aliased
    assert m.weights.w_out.any()
    with pytest.raises(ValueError, match=r"w_out must have shape \(40, 2\) \(n_rec, n_out\), got \(2, 40\)"):
        net.set_readout(np.zeros((2, 40), F32), b_new)
    with pytest.raises(ValueError, match=r"b_out must have shape \(2,\)"):
        net.set_readout(np.zeros((40, 2), F32), np.zeros(3, F32))
    with pytest.raises(ValueError, match="finite"):
        net.set_readout(np.full((40, 2), np.nan, F32), b_new)


def test_step_rejects_bad_input():
    net = Network(_model())
    with pytest.raises(ValueError, match=r"spikes_in must be float32 of shape \(12,\), got float32 of shape \(11,\)"):
        net.step(np.zeros(11, F32))
    with pytest.raises(ValueError, match="got float64"):
        net.step(np.zeros(12))
    with pytest.raises(ValueError, match=r"spikes must be float32 \(T, n_in=12\), got float32 of shape \(5, 3\)"):
        net.run(np.zeros((5, 3), F32))
    with pytest.raises(ValueError, match="spikes must be float32"):
        net.run(np.zeros((5, 12)))


def test_constructor_rejects_bad_options():
    m = _model()
    with pytest.raises(ValueError, match="propagation must be one of dense, event, auto, got 'sparse'"):
        Network(m, propagation="sparse")
    with pytest.raises(ValueError, match="auto_threshold must be a fraction"):
        Network(m, auto_threshold=1.5)
    with pytest.raises(ValueError, match="needs a rtsnn.snn.Model"):
        Network("model.npz")  # type: ignore[arg-type]


def test_reset_and_warm_up_leave_state_consistent():
    m = _model()
    net = Network(m)
    xs = _poisson(np.random.default_rng(4), 100, m.n_in, 0.3)
    y1, z1 = net.run(xs)
    snapshot = net.state.copy()
    net.warm_up()  # must not touch the state
    for name in ("v", "a", "z", "refr", "r", "y"):
        np.testing.assert_array_equal(getattr(net.state, name), getattr(snapshot, name))
    net.reset_state()
    assert not (net.state.v.any() or net.state.r.any() or net.state.z.any() or net.state.refr.any())
    y2, z2 = net.run(xs)  # same input from rest: same output
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(z1, z2)
    net.set_state(snapshot)
    np.testing.assert_array_equal(net.state.v, snapshot.v)
    assert net.n_active == int(snapshot.z.sum())


def test_lif_ignores_beta_and_alif_uses_it():
    base = _model("lif")
    w = base.weights
    xs = _poisson(np.random.default_rng(5), 300, base.n_in, 0.3)
    z = {}
    for model, beta in (("lif", 0.0), ("lif", 5.0), ("alif", 5.0)):
        layer = single_layer(model, base.n_rec, beta_adapt=beta, refractory_s=2e-3)
        z[(model, beta)] = Network(Model(*layer, w.copy(), 1e-3)).run(xs)[1]
    np.testing.assert_array_equal(z[("lif", 0.0)], z[("lif", 5.0)])
    assert z[("alif", 5.0)].sum() < z[("lif", 0.0)].sum()


def test_random_reservoir_fires_moderately_for_20hz_poisson():
    """The documented default scaling: 96 inputs at 20 Hz drive a few % of neurons per step."""
    for model in ("lif", "alif"):
        net = Network(Model.random(96, 256, 2, *single_layer(model, 256, beta_adapt=0.1), seed=0))
        xs = _poisson(np.random.default_rng(6), 2000, 96, 0.02)
        _, z = net.run(xs)
        rate = z[500:].mean()
        assert 0.002 < rate < 0.1, (model, rate)
        assert (z.sum(0) > 0).mean() > 0.5  # most neurons take part


def test_weights_with_autapse_rejected_by_model():
    w_rec = np.ones((3, 3), F32)
    with pytest.raises(ValueError, match="zero diagonal"):
        Weights(np.ones((2, 3)), w_rec, np.zeros((3, 1)), np.zeros(1))
