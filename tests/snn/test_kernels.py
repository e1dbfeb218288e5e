"""Kernels against the plain-numpy references (hypothesis), and dense == event bit for bit."""

import numpy as np
from hypothesis import given, settings, strategies as st

from rtsnn.snn import LayerConstants, NetworkState, Weights, layer_constants, single_layer
from rtsnn.snn import kernels as K
from rtsnn.snn.reference import propagate_reference, readout_reference, step_reference

F32 = np.float32


def _weights(rng, n_in, n_rec, n_out, scale_in, scale_rec):
    w_in = (rng.standard_normal((n_in, n_rec)) * scale_in).astype(F32)
    w_rec = (rng.standard_normal((n_rec, n_rec)) * scale_rec).astype(F32)
    np.fill_diagonal(w_rec, 0.0)
    w_out = rng.standard_normal((n_rec, n_out)).astype(F32)
    b_out = rng.standard_normal(n_out).astype(F32)
    return Weights(w_in, w_rec, w_out, b_out)


def _sparse_src(rng, n, p_active, counts=False):
    active = rng.random(n) < p_active
    if counts:
        return (active * rng.integers(1, 4, n)).astype(F32)
    return active.astype(F32)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 70), st.floats(0.0, 1.0), st.booleans(), st.integers(0, 2**32 - 1))
def test_propagation_dense_event_identical_and_match_reference(n_pre, n_post, p_active, counts, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_pre, n_post)).astype(F32)
    src = _sparse_src(rng, n_pre, p_active, counts)
    start = rng.standard_normal(n_post).astype(F32)
    cur_d, cur_e = start.copy(), start.copy()
    K.propagate_dense(src, w, cur_d)
    K.propagate_event(src, w, cur_e)
    np.testing.assert_array_equal(cur_d.view(np.uint32), cur_e.view(np.uint32))
    np.testing.assert_allclose(cur_d, start + propagate_reference(src, w), rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 50), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_readout_matches_reference(n_rec, n_out, seed):
    rng = np.random.default_rng(seed)
    r = (rng.random(n_rec) * (rng.random(n_rec) < 0.7) * 3).astype(F32)
    w_out = rng.standard_normal((n_rec, n_out)).astype(F32)
    b_out = rng.standard_normal(n_out).astype(F32)
    y = np.full(n_out, 99.0, F32)  # stale content must be overwritten
    K.readout_update(r, w_out, b_out, y)
    np.testing.assert_allclose(y, readout_reference(r, w_out, b_out), rtol=1e-5, atol=1e-5)


def _kernel_args(s: LayerConstants, w: Weights, state: NetworkState, cur, counters, mode, auto_threshold=0.2):
    return (w.w_in, w.w_rec, w.w_out, w.b_out, state.v, state.a, state.z, state.refr, state.r, state.y,
            cur, counters, s.alpha, s.rho, s.kappa, s.v_th, s.beta_adapt, s.n_ref, s.adaptive, mode,
            auto_threshold)


def _threshold(s: LayerConstants, a: np.ndarray) -> np.ndarray:
    return F32(s.v_th) + F32(s.beta_adapt) * a if s.adaptive else np.full_like(a, s.v_th)


def _constants(model: str = "lif", dt_s: float = 1e-3, **kw) -> LayerConstants:
    return layer_constants(*single_layer(model, 1, **kw), dt_s)


neuron_settings = st.builds(
    _constants,
    model=st.sampled_from(["lif", "alif"]),
    dt_s=st.just(1e-3),
    tau_mem_s=st.floats(2e-3, 0.1),
    tau_adapt_s=st.floats(2e-3, 1.0),
    beta_adapt=st.floats(0.0, 1.0),
    v_th=st.floats(0.2, 2.0),
    refractory_s=st.sampled_from([0.0, 1e-3, 2e-3, 5e-3]),
    tau_out_s=st.floats(2e-3, 0.1),
)


@settings(max_examples=60, deadline=None)
@given(neuron_settings, st.integers(1, 24), st.integers(1, 48), st.integers(1, 4),
       st.sampled_from([K.MODE_DENSE, K.MODE_EVENT, K.MODE_AUTO]), st.integers(0, 2**32 - 1))
def test_network_step_matches_reference(s, n_in, n_rec, n_out, mode, seed):
    """Lock-step comparison: every step the reference starts from the kernel's previous state,
    so rounding differences cannot accumulate; spikes must agree wherever the membrane is not
    within 1e-4 of the threshold (there float32 summation order may legitimately decide)."""
    rng = np.random.default_rng(seed)
    # input drive around threshold so both spiking and silent neurons occur
    w = _weights(rng, n_in, n_rec, n_out, scale_in=1.5 * s.v_th, scale_rec=0.5 * s.v_th)
    state = NetworkState.zeros(n_rec, n_out)
    cur = np.zeros(n_rec, F32)
    counters = np.zeros(K.N_COUNTERS, np.int64)
    args = _kernel_args(s, w, state, cur, counters, mode)
    n_compared = 0
    for _ in range(40):
        x = rng.poisson(0.3, n_in).astype(F32)
        before = state.copy()
        ref = step_reference(s, w, before, x)
        n_spikes = K.network_step(x, *args)
        decided = np.abs(ref.v - _threshold(s, ref.a)) > 1e-4
        np.testing.assert_allclose(state.v, ref.v, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state.a, ref.a, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(state.z[decided], ref.z[decided])
        np.testing.assert_array_equal(state.refr[decided], ref.refr[decided])
        np.testing.assert_allclose(state.r[decided], ref.r[decided], rtol=1e-5, atol=1e-6)
        if decided.all():
            np.testing.assert_allclose(state.y, ref.y, rtol=1e-4, atol=1e-4)
        assert n_spikes == int(state.z.sum()) == counters[K.CNT_ACTIVE]
        assert set(np.unique(state.z)) <= {0.0, 1.0}
        if not s.adaptive:
            assert not state.a.any()  # LIF leaves the adaptation variable alone
        # readout always equals w_out^T r + b_out of the kernel's own trace
        np.testing.assert_allclose(state.y, readout_reference(state.r, w.w_out, w.b_out), rtol=1e-4, atol=1e-4)
        n_compared += int(decided.sum())
    assert n_compared > 0
    assert counters[K.CNT_DENSE] + counters[K.CNT_EVENT] == 40


@settings(max_examples=40, deadline=None)
@given(neuron_settings, st.integers(1, 24), st.integers(1, 64), st.integers(1, 3), st.floats(0.0, 1.0),
       st.integers(0, 2**32 - 1))
def test_dense_event_auto_bit_identical(s, n_in, n_rec, n_out, auto_threshold, seed):
    """The three propagation modes give the same bits for spikes, v, a, refr, r and y."""
    rng = np.random.default_rng(seed)
    w = _weights(rng, n_in, n_rec, n_out, scale_in=rng.uniform(0.2, 3.0) * s.v_th,
                 scale_rec=rng.uniform(0.0, 1.0) * s.v_th)
    runs = []
    for mode in (K.MODE_DENSE, K.MODE_EVENT, K.MODE_AUTO):
        state = NetworkState.zeros(n_rec, n_out)
        counters = np.zeros(K.N_COUNTERS, np.int64)
        runs.append((state, counters, _kernel_args(s, w, state, np.zeros(n_rec, F32), counters, mode,
                                                   auto_threshold)))
    p_in = rng.uniform(0.0, 0.8)
    for _ in range(150):
        x = (rng.poisson(1.0, n_in) * (rng.random(n_in) < p_in)).astype(F32)
        for _, _, args in runs:
            K.network_step(x, *args)
        ref_state = runs[0][0]
        for state, _, _ in runs[1:]:
            for name in ("v", "a", "z", "r", "y"):
                np.testing.assert_array_equal(getattr(state, name).view(np.uint32),
                                              getattr(ref_state, name).view(np.uint32), err_msg=name)
            np.testing.assert_array_equal(state.refr, ref_state.refr)
    assert runs[0][1][K.CNT_DENSE] == 150 and runs[1][1][K.CNT_EVENT] == 150
    assert runs[2][1][K.CNT_DENSE] + runs[2][1][K.CNT_EVENT] == 150


def test_auto_mode_switches_on_activity():
    """'auto' takes the dense path exactly when the previous step's spike fraction >= threshold."""
    rng = np.random.default_rng(3)
    n_in, n_rec = 10, 50
    s = _constants("lif")
    w = _weights(rng, n_in, n_rec, 1, scale_in=2.0, scale_rec=0.1)
    state = NetworkState.zeros(n_rec, 1)
    counters = np.zeros(K.N_COUNTERS, np.int64)
    args = _kernel_args(s, w, state, np.zeros(n_rec, F32), counters, K.MODE_AUTO, 0.2)
    expected_dense = 0
    for t in range(300):
        prev_fraction = counters[K.CNT_ACTIVE] / n_rec
        expected_dense += prev_fraction >= 0.2
        x = rng.poisson(3.0 if (t // 20) % 2 else 0.05, n_in).astype(F32)
        K.network_step(x, *args)
    assert counters[K.CNT_DENSE] == expected_dense
    assert 0 < expected_dense < 300  # both paths were exercised


def test_refractory_period_counts_steps():
    """Constant strong drive: a neuron with n_ref = 3 spikes every 4th step; membrane keeps
    integrating while refractory."""
    s = _constants("lif", refractory_s=3e-3, tau_mem_s=20e-3, v_th=1.0)
    w = Weights(np.full((1, 1), 5.0, F32), np.zeros((1, 1), F32), np.ones((1, 1), F32), np.zeros(1, F32))
    state = NetworkState.zeros(1, 1)
    counters = np.zeros(K.N_COUNTERS, np.int64)
    args = _kernel_args(s, w, state, np.zeros(1, F32), counters, K.MODE_EVENT)
    zs, vs = [], []
    for _ in range(12):
        K.network_step(np.ones(1, F32), *args)
        zs.append(state.z[0])
        vs.append(state.v[0])
    assert zs == [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]
    assert vs[1] > vs[0] - 1.0 + 4.0 - 1e-4  # integrates through the refractory step (minus one reset)


def test_alif_threshold_adapts():
    """With beta > 0 the same drive gives fewer spikes than LIF, and a follows rho a + z[t-1]."""
    w = Weights(np.full((1, 1), 0.6, F32), np.zeros((1, 1), F32), np.ones((1, 1), F32), np.zeros(1, F32))
    counts = {}
    for model, beta in (("lif", 0.0), ("alif", 0.5)):
        s = _constants(model, beta_adapt=beta, tau_adapt_s=0.2)
        state = NetworkState.zeros(1, 1)
        args = _kernel_args(s, w, state, np.zeros(1, F32), np.zeros(K.N_COUNTERS, np.int64), K.MODE_DENSE)
        a_expected, z_prev, n = F32(0.0), F32(0.0), 0
        for _ in range(500):
            K.network_step(np.ones(1, F32), *args)
            if model == "alif":
                a_expected = F32(s.rho) * a_expected + z_prev
                assert state.a[0] == a_expected
            z_prev = state.z[0]
            n += int(state.z[0])
        counts[model] = n
    assert counts["alif"] < 0.7 * counts["lif"]


def test_bound_entry_points_follow_the_buffer_they_were_bound_for():
    """Network.step and PassthroughEncoder.encode call the kernel compiled for the exact types
    of the buffers first seen; a different buffer (here a strided view) is validated and bound
    anew, and gives the same result as a contiguous copy."""
    from rtsnn.encode.binning import PassthroughEncoder
    from rtsnn.snn import Model, Network

    m = Model.random(6, 20, 2, seed=3, input_gain=3.0, readout_scale=1.0)
    rng = np.random.default_rng(0)
    xs = (rng.random((200, 6)) < 0.3).astype(np.float32)
    a, b = Network(m), Network(m)
    wide = np.zeros((200, 12), np.float32)
    wide[:, ::2] = xs
    ya, yb = [], []
    for t in range(200):
        a.step(np.ascontiguousarray(xs[t]))  # a fresh contiguous buffer every tick
        b.step(wide[t, ::2])  # a fresh strided view every tick
        ya.append(a.readout().copy())
        yb.append(b.readout().copy())
    np.testing.assert_array_equal(np.array(ya), np.array(yb))
    assert np.abs(np.array(ya)).max() > 0
    enc = PassthroughEncoder(6)
    out = np.zeros(6, np.float32)
    enc.encode(np.ascontiguousarray(wide[:3, ::2]), 3, out)
    want = out.copy()
    enc.encode(wide[:3, ::2], 3, out)  # strided samples: bound anew, same sums
    np.testing.assert_array_equal(out, want)
    enc.encode(wide[:3, ::2], 2, out)  # same buffer object? no: a new view, checked again
    np.testing.assert_array_equal(out, xs[:2].sum(axis=0))
