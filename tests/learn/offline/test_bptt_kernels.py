"""Numba BPTT kernels vs the plain-numpy reference; checkpointed (recompute) BPTT equals
full BPTT; the training forward equals the runtime's network on the same model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsnn.learn.offline.bptt_engine import Engine, NetSpec, init_params
from rtsnn.learn.offline.bptt_reference import backward_reference, forward_reference
from rtsnn.learn.offline.surrogate import SURROGATES, surrogate_grad_array, surrogate_grad_np, surrogate_id


def _params(spec, rng):
    p = init_params(spec, int(rng.integers(1 << 30)))
    n_prev = spec.n_in
    for l, n in enumerate(spec.layers):
        p[f"w{l}"] = rng.normal(0.2, 0.7, (n_prev, n))
        if spec.recurrent[l]:
            r = rng.normal(0, 0.3, (n, n))
            np.fill_diagonal(r, 0)
            p[f"r{l}"] = r
        p[f"alpha{l}"] = rng.uniform(0.7, 0.98, n)
        p[f"vth{l}"] = rng.uniform(0.6, 1.4, n)
        n_prev = n
    return p


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_layers=st.integers(1, 3), model=st.sampled_from(["lif", "alif"]),
       sg=st.sampled_from(list(SURROGATES)), detach=st.booleans(), readout=st.booleans(),
       n_ref=st.integers(0, 3), T=st.integers(1, 25), B=st.integers(1, 3))
def test_kernels_match_reference(seed, n_layers, model, sg, detach, readout, n_ref, T, B):
    rng = np.random.default_rng(seed)
    layers = tuple(int(n) for n in rng.integers(1, 7, n_layers))
    rec = tuple(bool(b) for b in rng.integers(0, 2, n_layers))
    spec = NetSpec(n_in=int(rng.integers(1, 5)), layers=layers, recurrent=rec, n_out=2 if readout else None,
                   model=model, beta_adapt=0.5, refractory_s=n_ref * 1e-3, surrogate=sg, detach_reset=detach)
    p = _params(spec, rng)
    x = (rng.random((T, B, spec.n_in)) < 0.4) * rng.uniform(0.5, 2.0, (T, B, spec.n_in))
    dy = rng.standard_normal((T, B, spec.n_output))
    eng = Engine(spec, dtype=np.float64, checkpoint_steps=int(rng.integers(1, 8)) if rng.random() < 0.5 else None)
    tape = eng.forward(p, x)
    ref = forward_reference(spec, p, x)
    np.testing.assert_allclose(tape.y, ref["y"], rtol=1e-12, atol=1e-12)
    g = eng.backward(p, tape, dy)
    gr = backward_reference(spec, p, x, ref, dy)
    assert set(g) == set(gr)
    for k in g:
        np.testing.assert_allclose(g[k], gr[k], rtol=1e-9, atol=1e-11 * max(1.0, np.abs(gr[k]).max()), err_msg=k)


def test_checkpointed_equals_full_on_long_sequence():
    rng = np.random.default_rng(3)
    spec = NetSpec(n_in=8, layers=(20, 10), recurrent=(True, True), n_out=3, model="alif", beta_adapt=0.2,
                   refractory_s=2e-3)
    p = _params(spec, rng)
    x = (rng.random((500, 4, 8)) < 0.1) * 1.0
    dy = rng.standard_normal((500, 4, 3))
    full = Engine(spec, dtype=np.float64)
    ck = Engine(spec, dtype=np.float64, checkpoint_steps=37)
    t_full, t_ck = full.forward(p, x), ck.forward(p, x)
    assert t_full.records[0] is not None and all(r is None for r in t_ck.records)  # ck keeps no tape
    np.testing.assert_array_equal(t_full.y, t_ck.y)
    g_full, g_ck = full.backward(p, t_full, dy), ck.backward(p, t_ck, dy)
    for k in g_full:
        np.testing.assert_allclose(g_ck[k], g_full[k], rtol=1e-12, atol=1e-12, err_msg=k)
    assert t_full.spike_counts[1].sum() > 0


@pytest.mark.parametrize("name", list(SURROGATES))
def test_surrogates_unit_area_and_numba_matches_numpy(name):
    kind, p = surrogate_id(name)
    x = np.linspace(-60, 60, 1_200_001)
    g_np = surrogate_grad_np(x, kind, p)
    g_nb = np.empty_like(x)
    surrogate_grad_array(x, kind, p, g_nb)
    np.testing.assert_allclose(g_nb, g_np, rtol=1e-12, atol=1e-300)
    area = np.trapezoid(g_np, x)
    X = x[-1]  # analytic mass beyond +-X of the heavy-tailed families
    tail = {"fast_sigmoid": 1.0 / (1.0 + p * X), "atan": 1.0 - 2.0 / np.pi * np.arctan(0.5 * np.pi * p * X)}
    assert abs(area + tail.get(name, 0.0) - 1.0) < 1e-4, (area, tail.get(name))


def test_surrogate_bad_input():
    with pytest.raises(ValueError, match="surrogate must be one of"):
        surrogate_id("relu")
    with pytest.raises(ValueError, match="parameter"):
        surrogate_id("boxcar", -1.0)


def test_engine_rejects_bad_input():
    spec = NetSpec(n_in=3, layers=(4,), recurrent=(False,))
    eng = Engine(spec)
    p = init_params(spec, 0)
    with pytest.raises(ValueError, match=r"x must be \(T, B, n_in=3\)"):
        eng.forward(p, np.zeros((5, 2, 4)))
    with pytest.raises(ValueError, match="checkpoint_steps"):
        Engine(spec, checkpoint_steps=0)
    with pytest.raises(ValueError, match="recurrent must have one flag per layer"):
        NetSpec(n_in=3, layers=(4, 4), recurrent=(False,))
    with pytest.raises(ValueError, match="tau_mem_s"):
        NetSpec(n_in=3, layers=(4,), recurrent=(False,), tau_mem_s=-1.0)
    tape = eng.forward(p, np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match="dy must have the shape"):
        eng.backward(p, tape, np.zeros((5, 2, 7)))


@pytest.mark.parametrize("model", ["lif", "alif"])
def test_training_forward_equals_runtime_network(model):
    """The saved model, run by the runtime's kernels, gives the training forward's output."""
    from rtsnn.learn.offline.pretrain import to_runtime_model
    from rtsnn.snn.network import Network

    rng = np.random.default_rng(5)
    spec = NetSpec(n_in=10, layers=(30,), recurrent=(True,), n_out=2, model=model, beta_adapt=0.1,
                   refractory_s=2e-3, tau_out_s=30e-3)
    p = init_params(spec, 1)
    p["w0"] = rng.normal(0.05, 0.3, (10, 30))
    p["r0"] = rng.normal(0, 0.1, (30, 30))
    np.fill_diagonal(p["r0"], 0)
    p["w_out"] = rng.normal(0, 0.5, (30, 2))
    p["b_out"] = rng.normal(0, 0.1, 2)
    x = (rng.random((300, 1, 10)) < 0.2).astype(np.float32)
    y_train = Engine(spec, dtype=np.float32).forward(p, x).y[:, 0]
    model_rt = to_runtime_model(spec, p, np.zeros(2), np.ones(2), {})
    net = Network(model_rt, propagation="dense")
    ys = []
    for t in range(300):
        net.step(x[t, 0])
        ys.append(net.readout().copy())
    ys = np.array(ys)
    assert np.abs(ys).max() > 0.1
    np.testing.assert_allclose(ys, y_train, rtol=1e-4, atol=1e-4)
