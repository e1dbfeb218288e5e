"""Numba BPTT kernels vs the plain-numpy reference; checkpointed (recompute) BPTT equals
full BPTT; the training forward equals the runtime's network on the same model."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _bptt_nets import net, plan

from rtsnn.learn.offline.bptt_engine import Engine, init_params
from rtsnn.learn.offline.bptt_reference import backward_reference, forward_reference
from rtsnn.learn.offline.surrogate import SURROGATES, surrogate_grad_array, surrogate_grad_np, surrogate_id


def _params(g, o, rng):
    p = init_params(g, int(rng.integers(1 << 30)), o)
    spec = plan(g, o)
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
    g, o = net(int(rng.integers(1, 5)), layers, rec, 2 if readout else None,
               model=model, beta_adapt=0.5, refractory_s=n_ref * 1e-3, surrogate=sg, detach_reset=detach)
    spec = plan(g, o)
    p = _params(g, o, rng)
    x = (rng.random((T, B, spec.n_in)) < 0.4) * rng.uniform(0.5, 2.0, (T, B, spec.n_in))
    dy = rng.standard_normal((T, B, spec.n_output))
    eng = Engine(g, o, dtype=np.float64, checkpoint_steps=int(rng.integers(1, 8)) if rng.random() < 0.5 else None)
    tape = eng.forward(p, x)
    ref = forward_reference(g, p, x, o)
    np.testing.assert_allclose(tape.y, ref["y"], rtol=1e-12, atol=1e-12)
    gk = eng.backward(p, tape, dy)
    gr = backward_reference(g, p, x, ref, dy, options=o)
    assert set(gk) == set(gr)
    for k in gk:
        np.testing.assert_allclose(gk[k], gr[k], rtol=1e-9, atol=1e-11 * max(1.0, np.abs(gr[k]).max()), err_msg=k)


def test_checkpointed_equals_full_on_long_sequence():
    rng = np.random.default_rng(3)
    g, o = net(8, (20, 10), (True, True), 3, model="alif", beta_adapt=0.2, refractory_s=2e-3)
    p = _params(g, o, rng)
    x = (rng.random((500, 4, 8)) < 0.1) * 1.0
    dy = rng.standard_normal((500, 4, 3))
    full = Engine(g, o, dtype=np.float64)
    ck = Engine(g, o, dtype=np.float64, checkpoint_steps=37)
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
    g, _ = net(3, (4,), (False,))
    eng = Engine(g)
    p = init_params(g, 0)
    with pytest.raises(ValueError, match=r"x must be \(T, B, n_in=3\)"):
        eng.forward(p, np.zeros((5, 2, 4)))
    with pytest.raises(ValueError, match="checkpoint_steps"):
        Engine(g, checkpoint_steps=0)
    with pytest.raises(ValueError, match="recurrent must have one flag per layer"):
        net(3, (4, 4), (False,))
    with pytest.raises(ValueError, match="tau_mem_s"):
        net(3, (4,), (False,), tau_mem_s=-1.0)
    tape = eng.forward(p, np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match="dy must have the shape"):
        eng.backward(p, tape, np.zeros((5, 2, 7)))


@pytest.mark.parametrize("model", ["lif", "alif"])
def test_training_forward_equals_runtime_network(model):
    """The saved model, run by the runtime's kernels, gives the training forward's output."""
    from rtsnn.learn.offline.pretrain import to_runtime_model
    from rtsnn.snn.network import Network

    rng = np.random.default_rng(5)
    g, o = net(10, (30,), (True,), 2, model=model, beta_adapt=0.1, refractory_s=2e-3, tau_out_s=30e-3)
    p = init_params(g, 1, o)
    p["w0"] = rng.normal(0.05, 0.3, (10, 30))
    p["r0"] = rng.normal(0, 0.1, (30, 30))
    np.fill_diagonal(p["r0"], 0)
    p["w_out"] = rng.normal(0, 0.5, (30, 2))
    p["b_out"] = rng.normal(0, 0.1, 2)
    x = (rng.random((300, 1, 10)) < 0.2).astype(np.float32)
    y_train = Engine(g, o, dtype=np.float32).forward(p, x).y[:, 0]
    model_rt = to_runtime_model(g, p, np.zeros(2), np.ones(2), {}, options=o)
    rt = Network(model_rt, propagation="dense")
    ys = []
    for t in range(300):
        rt.step(x[t, 0])
        ys.append(rt.readout().copy())
    ys = np.array(ys)
    assert np.abs(ys).max() > 0.1
    np.testing.assert_allclose(ys, y_train, rtol=1e-4, atol=1e-4)


# ------------------------------------------------ the neuron step shared with the live tick
def _old_layer_forward_np(iff, w_rec, recurrent, alpha, v_th, rho, beta, n_ref, adaptive, v, a, z, refr,
                          vs, as_, zs, ms):
    """The training forward as it was before it called the live tick's neuron element, in
    plain numpy with the same types (float64 current and scalars, state rounded to the dtype
    of ``iff`` when stored, float64 threshold test); one (t, b) row at a time."""
    f8 = np.float64
    T, B, n = iff.shape
    for t in range(T):
        for b in range(B):
            cur = iff[t, b].astype(f8)
            if recurrent:
                for j in np.flatnonzero(z[b]):  # event-driven, in row order (same float64 sums)
                    cur = cur + (w_rec[j] * z[b, j]).astype(f8)
            zp = z[b].copy()
            vi = (alpha * v[b]).astype(f8) + cur - (v_th * zp).astype(f8)
            ai = f8(rho) * a[b].astype(f8) + zp.astype(f8) if adaptive else np.zeros(n)
            ok = refr[b] <= 0
            spike = ok & (vi >= v_th.astype(f8) + f8(beta) * ai)
            v[b], a[b], z[b] = vi, ai, spike
            refr[b] = np.where(spike, n_ref, np.where(refr[b] > 0, refr[b] - 1, refr[b]))
            vs[t, b], as_[t, b], zs[t, b], ms[t, b] = vi, ai, spike, ok


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("model", ["lif", "alif"])
def test_layer_forward_and_gradients_equal_the_previous_loop(monkeypatch, dtype, model):
    """layer_forward (now the live tick's neuron element) records exactly what the previous
    training loop recorded (bit for bit, float32 and float64), so the engine's gradients are
    those of the previous implementation."""
    from rtsnn.learn.offline import bptt_engine
    from rtsnn.learn.offline.bptt_kernels import layer_forward

    rng = np.random.default_rng(11)
    T, B, n = 120, 3, 17
    iff = rng.normal(0.05, 0.5, (T, B, n)).astype(dtype)
    w_rec = rng.normal(0, 0.4, (n, n)).astype(dtype)
    alpha = rng.uniform(0.7, 0.98, n).astype(dtype)
    v_th = rng.uniform(0.6, 1.4, n).astype(dtype)
    adaptive = model == "alif"
    outs = []
    for fn in (layer_forward, _old_layer_forward_np):
        state = [np.zeros((B, n), dtype), np.zeros((B, n), dtype), np.zeros((B, n), dtype),
                 np.zeros((B, n), np.int64)]
        state[0][:] = np.linspace(-0.5, 1.2, n, dtype=dtype)  # some neurons spike on the first tick
        state[2][:, ::3] = 1.0
        rec = [np.full((T, B, n), np.nan, dtype) for _ in range(4)]
        fn(iff, w_rec, True, alpha, v_th, 0.97, 0.3, 2, adaptive, *state, *rec)
        outs.append(state + rec)
    for got, want, name in zip(outs[0], outs[1], ("v", "a", "z", "refr", "vs", "as_", "zs", "ms")):
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert 0.02 < outs[0][6].mean() < 0.6 and outs[0][7].min() == 0.0  # spikes and refractory steps

    # through the engine: forward and backward with the previous loop patched in
    g, o = net(6, (12, 5), (True, False), 2, model=model, beta_adapt=0.4, refractory_s=1e-3)
    p = _params(g, o, rng)
    x = (rng.random((80, 2, 6)) < 0.3) * 1.0
    dy = rng.standard_normal((80, 2, 2))
    eng = Engine(g, o, dtype=dtype)
    tape = eng.forward(p, x)
    grads = eng.backward(p, tape, dy)
    monkeypatch.setattr(bptt_engine, "layer_forward", _old_layer_forward_np)
    tape_old = eng.forward(p, x)
    grads_old = eng.backward(p, tape_old, dy)
    assert sum(c.sum() for c in tape.spike_counts) > 0
    np.testing.assert_array_equal(tape.y, tape_old.y)
    assert set(grads) == set(grads_old)
    for k in grads:
        np.testing.assert_array_equal(grads[k], grads_old[k], err_msg=k)


@pytest.mark.parametrize("seed", range(4))
def test_spiking_element_equals_live_spiking_update(seed):
    """spiking_element (the per-neuron body shared by the live tick, BPTT and e-prop, in
    rtsnn/snn/neuron_kernels.py) gives bit for bit what the live tick's spiking_update (and its numpy twin) gives, for every
    switch: CubaLIF, ALIF, reset to v_reset / by subtraction, reset at the next tick / now,
    clamped reset, strict threshold."""
    from rtsnn.learn.offline import bptt_kernels
    from rtsnn.snn.neuron_kernels import spiking_element, spiking_update, spiking_update_np

    assert bptt_kernels.spiking_element is spiking_element  # one function, not a copy

    rng = np.random.default_rng(seed)
    f4 = np.float32
    n, T = 9, 40
    prm = dict(alpha=rng.uniform(0.6, 1.0, n), alpha_syn=rng.uniform(0.3, 0.9, n), rho=rng.uniform(0.8, 1.0, n),
               beta=rng.uniform(0.0, 0.5, n), v_th=rng.uniform(0.5, 1.5, n), gain=rng.uniform(0.5, 2.0, n),
               leak=rng.normal(0, 0.05, n), v_reset=rng.normal(-0.2, 0.1, n))
    prm = {k: v.astype(f4) for k, v in prm.items()}
    reset_zero = (rng.random(n) < 0.5).astype(np.int8)
    n_ref = rng.integers(0, 3, n).astype(np.int32)
    cur = rng.normal(0.3, 0.8, (T, n)).astype(f4)
    names = ("alpha", "alpha_syn", "rho", "beta", "v_th", "gain", "leak", "v_reset")
    for cuba, adaptive, reset_now, strict, clamp in itertools.product((False, True), repeat=5):
        states = [[np.zeros(n, f4) for _ in range(4)] + [np.zeros(n, np.int32)] for _ in range(3)]
        v0 = rng.normal(0.5, 0.5, n).astype(f4)
        for s in states:
            s[0][:] = v0
        n_spikes = 0
        for t in range(T):
            v, isyn, a, z, refr = states[0]
            for i in range(n):
                vi, si, ai, spike, ri = spiking_element(
                    cur[t, i], v[i], isyn[i], a[i], z[i], refr[i], *(prm[k][i] for k in names),
                    bool(reset_zero[i]), n_ref[i], cuba, adaptive, reset_now, strict, clamp)
                v[i], isyn[i], a[i], z[i], refr[i] = vi, si, ai, f4(1.0) if spike else f4(0.0), ri
            for fn, s in ((spiking_update, states[1]), (spiking_update_np, states[2])):
                fn(cur[t], *s, *(prm[k] for k in names), reset_zero, n_ref, cuba, adaptive, reset_now,
                   strict=strict, clamp=clamp)
            for s in states[1:]:
                for got, want in zip(states[0], s):
                    assert got.dtype == want.dtype
                    np.testing.assert_array_equal(got, want, err_msg=f"{cuba}{adaptive}{reset_now}{strict}{clamp} {t}")
            n_spikes += int(states[0][3].sum())
        assert 0 < n_spikes < T * n  # spikes, and ticks without (refractory or below threshold)
