"""Reset to zero in BPTT (``layered_graph(..., reset='zero')``): ``v[t] = alpha (1 - z[t-1]) v[t-1] + I[t]``.

1. The kernels (:func:`layer_forward` / :func:`layer_backward` with ``reset_zero``) equal a
   plain-numpy twin written here from the equations of :mod:`rtsnn.learn.offline.bptt_kernels`.
2. The adjoint equations are the exact derivative of the network: on the smooth twin (spikes
   ``z = s(p (v - theta))``, ``s`` logistic, whose derivative is the ``sigmoid`` surrogate) the
   twin's gradients equal central finite differences in float64 (reset path attached).
   The whole engine (layers, recurrence, ALIF, refractory, trainable leak and threshold,
   readout, checkpointed segments) equals torch autograd of the same equations.
3. snnTorch's ``Leaky(reset_mechanism='zero')`` (reset detached, as snnTorch always does): the
   same spikes and outputs, and gradients equal to float rounding for several surrogates.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import import_or_skip
from _bptt_nets import draw_layer_weights, net, plan
from _snntorch_ref import assert_engine_matches, snntorch_run, spike_grad, two_layer_case
from rtsnn.learn.offline.bptt_engine import Engine, init_params
from rtsnn.learn.offline.bptt_graph import graph_from_spec_dict
from rtsnn.learn.offline.bptt_kernels import layer_backward, layer_forward
from rtsnn.learn.offline.surrogate import surrogate_grad_np, surrogate_id


# ------------------------------------------------------------------ plain-numpy twin
def twin_forward(iff, w_rec, alpha, vth, zfun):
    """One layer, reset to zero at the next tick; ``zfun(v - vth)`` gives the spikes (Heaviside
    for the real network, a logistic for the smooth twin). Returns (vs, zs), (T, B, n)."""
    T, B, n = iff.shape
    v = np.zeros((B, n))
    z = np.zeros((B, n))
    vs = np.empty((T, B, n))
    zs = np.empty((T, B, n))
    for t in range(T):
        cur = iff[t] + (z @ w_rec if w_rec is not None else 0.0)
        v = alpha * (1.0 - z) * v + cur
        z = zfun(v - vth)
        vs[t], zs[t] = v, z
    return vs, zs


def twin_backward(ext, vs, zs, gz, w_rec, alpha, detach):
    """Adjoints of :func:`twin_forward` for ``dL/dz[t] = ext[t]`` with ``dz/dv = gz``:
    returns dL/dI (T, B, n), dL/dalpha (n,), dL/dvth (n,)."""
    T, B, n = ext.shape
    ev_n = np.zeros((B, n))
    d_cur = np.empty((T, B, n))
    d_alpha = np.zeros(n)
    d_vth = np.zeros(n)
    for t in range(T - 1, -1, -1):
        ez = ext[t].copy()
        if w_rec is not None:
            ez += ev_n @ w_rec.T
        if not detach:
            ez -= alpha * vs[t] * ev_n  # v[t+1] depends on z[t] through the reset
        h = ez * gz[t]
        ev = h + alpha * (1.0 - zs[t]) * ev_n
        zprev = zs[t - 1] if t > 0 else np.zeros((B, n))
        vprev = vs[t - 1] if t > 0 else np.zeros((B, n))
        d_cur[t] = ev
        d_alpha += np.sum(ev * (1.0 - zprev) * vprev, axis=0)
        d_vth += np.sum(-h, axis=0)
        ev_n = ev
    return d_cur, d_alpha, d_vth


def _layer_case(seed, recurrent, T=30, B=3, n=7):
    rng = np.random.default_rng(seed)
    iff = rng.normal(0.25, 0.6, (T, B, n))
    w_rec = rng.normal(0.0, 0.4, (n, n)) if recurrent else None
    if w_rec is not None:
        np.fill_diagonal(w_rec, 0.0)
    alpha = rng.uniform(0.75, 0.97, n)
    vth = rng.uniform(0.7, 1.3, n)
    ext = rng.standard_normal((T, B, n))
    return iff, w_rec, alpha, vth, ext


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("sg", ["fast_sigmoid", "triangular", "ste"])
def test_kernels_equal_numpy_twin(recurrent, detach, sg):
    iff, w_rec, alpha, vth, ext = _layer_case(7, recurrent)
    T, B, n = iff.shape
    vs_t, zs_t = twin_forward(iff, w_rec, alpha, vth, lambda u: (u >= 0).astype(np.float64))
    state = [np.zeros((B, n)), np.zeros((B, n)), np.zeros((B, n)), np.zeros((B, n), np.int64)]
    rec = [np.empty((T, B, n)) for _ in range(4)]
    empty = np.zeros((1, 1))
    layer_forward(iff, w_rec if recurrent else empty, recurrent, alpha, vth, 0.9, 0.0, 0, False, *state, *rec, True)
    vs, as_, zs, ms = rec
    np.testing.assert_array_equal(zs, zs_t)
    np.testing.assert_allclose(vs, vs_t, rtol=1e-13, atol=1e-13)
    assert 0.05 < zs.mean() < 0.6
    kind, p = surrogate_id(sg)
    gz = surrogate_grad_np(vs - vth, kind, p)
    d_t, da_t, dv_t = twin_backward(ext, vs, zs, gz, w_rec, alpha, detach)
    ev, ea = np.zeros((B, n)), np.zeros((B, n))
    d_cur = np.empty((T, B, n))
    d_alpha, d_vth = np.zeros(n), np.zeros(n)
    layer_backward(ext, vs, as_, zs, ms, np.zeros((B, n)), np.zeros((B, n)), w_rec if recurrent else empty,
                   recurrent, alpha, vth, 0.9, 0.0, False, kind, p, 1.0, detach, ev, ea, d_cur, d_alpha, d_vth, True)
    scale = max(1.0, float(np.abs(d_t).max()))
    np.testing.assert_allclose(d_cur, d_t, rtol=1e-11, atol=1e-11 * scale)
    np.testing.assert_allclose(d_alpha, da_t, rtol=1e-11, atol=1e-11 * scale)
    np.testing.assert_allclose(d_vth, dv_t, rtol=1e-11, atol=1e-11 * scale)


def test_reset_zero_forward_differs_from_subtract_and_drops_the_membrane():
    iff, w_rec, alpha, vth, _ = _layer_case(3, False)
    T, B, n = iff.shape
    outs = {}
    for zero in (False, True):
        state = [np.zeros((B, n)), np.zeros((B, n)), np.zeros((B, n)), np.zeros((B, n), np.int64)]
        rec = [np.empty((T, B, n)) for _ in range(4)]
        args = (iff, np.zeros((1, 1)), False, alpha, vth, 0.9, 0.0, 0, False, *state, *rec)
        layer_forward(*args, True) if zero else layer_forward(*args)
        outs[zero] = rec
    vs, zs = outs[True][0], outs[True][2]
    after = zs[:-1] == 1  # the step after a spike starts from 0: v = I exactly
    assert after.sum() > 5
    np.testing.assert_array_equal(vs[1:][after], iff[1:][after])
    assert not np.array_equal(outs[False][0], vs)


# ------------------------------------------------------------------ finite differences
def _smooth_loss(iff, w_rec, alpha, vth, ext, p):
    _, zs = twin_forward(iff, w_rec, alpha, vth, lambda u: 1.0 / (1.0 + np.exp(-p * u)))
    return float(np.sum(ext * zs))


@pytest.mark.parametrize("recurrent", [False, True])
def test_adjoints_equal_finite_differences_on_the_smooth_twin(recurrent):
    """With z = s(p u) the network is smooth and the adjoint equations (reset path attached)
    must give its exact gradient."""
    iff, w_rec, alpha, vth, ext = _layer_case(11, recurrent, T=25, B=2, n=5)
    p = 4.0
    sig = lambda u: 1.0 / (1.0 + np.exp(-p * u))  # noqa: E731
    vs, zs = twin_forward(iff, w_rec, alpha, vth, sig)
    gz = p * zs * (1.0 - zs)
    d_cur, d_alpha, d_vth = twin_backward(ext, vs, zs, gz, w_rec, alpha, detach=False)
    eps = 1e-6
    rng = np.random.default_rng(0)
    for _ in range(12):  # dL/dI at random entries
        t, b, i = rng.integers(iff.shape[0]), rng.integers(iff.shape[1]), rng.integers(iff.shape[2])
        up, dn = iff.copy(), iff.copy()
        up[t, b, i] += eps
        dn[t, b, i] -= eps
        fd = (_smooth_loss(up, w_rec, alpha, vth, ext, p) - _smooth_loss(dn, w_rec, alpha, vth, ext, p)) / (2 * eps)
        assert abs(fd - d_cur[t, b, i]) <= 1e-7 * max(1.0, abs(fd)), (t, b, i, fd, d_cur[t, b, i])
    for i in range(iff.shape[2]):
        for arr, grad in ((alpha, d_alpha), (vth, d_vth)):
            up, dn = arr.copy(), arr.copy()
            up[i] += eps
            dn[i] -= eps
            if arr is alpha:
                fd = (_smooth_loss(iff, w_rec, up, vth, ext, p) - _smooth_loss(iff, w_rec, dn, vth, ext, p)) / (2 * eps)
            else:
                fd = (_smooth_loss(iff, w_rec, alpha, up, ext, p) - _smooth_loss(iff, w_rec, alpha, dn, ext, p)) / (2 * eps)
            assert abs(fd - grad[i]) <= 1e-7 * max(1.0, abs(fd)), (i, fd, grad[i])
    # the reset path matters: detaching it gives a different gradient
    d_det, _, _ = twin_backward(ext, vs, zs, gz, w_rec, alpha, detach=True)
    assert np.max(np.abs(d_det - d_cur)) > 1e-3


@pytest.mark.parametrize("model,recurrent,n_ref,sg", [("lif", (False, False), 0, "fast_sigmoid"),
                                                      ("alif", (True, True), 2, "ste"),
                                                      ("lif", (True, False), 1, "sigmoid")])
def test_engine_equals_autograd_of_the_reset_zero_equations(model, recurrent, n_ref, sg):
    """The whole engine (layers, recurrence, ALIF, refractory gate, trainable leak and
    threshold, readout; reset path attached) against torch autograd of the same equations with
    the surrogate as the Heaviside's derivative."""
    torch = import_or_skip("torch")
    rng = np.random.default_rng(23 + n_ref)
    graph, opts = net(n_in=5, layers=(10, 6), recurrent=recurrent, n_out=3, model=model, beta_adapt=0.3,
                   refractory_s=n_ref * 1e-3, tau_mem_s=12e-3, reset="zero", surrogate=sg,
                   surrogate_param=None if sg == "ste" else 3.0)
    spec = plan(graph, opts)
    kind, psg = surrogate_id(spec.surrogate, spec.surrogate_param)
    p = init_params(graph, 4, opts)

    def leak_and_threshold(l, n):
        p[f"alpha{l}"] = rng.uniform(0.8, 0.95, n)
        p[f"vth{l}"] = rng.uniform(0.7, 1.3, n)

    draw_layer_weights(p, spec, rng, w_mean=0.2, per_layer=leak_and_threshold)
    p["w_out"] = rng.normal(0.0, 0.5, p["w_out"].shape)
    T, B = 30, 2
    x = (rng.random((T, B, 5)) < 0.4) * rng.uniform(0.5, 1.5, (T, B, 5))
    dy = rng.standard_normal((T, B, 3)) * (0.05 if sg == "ste" else 1.0)

    class Heavi(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            ctx.save_for_backward(u)
            return (u >= 0).to(u.dtype)

        @staticmethod
        def backward(ctx, go):
            (u,) = ctx.saved_tensors
            return go * torch.tensor(surrogate_grad_np(u.detach().numpy(), kind, psg))

    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in p.items()}
    v = [torch.zeros(B, n, dtype=torch.float64) for n in spec.layers]
    a = [torch.zeros(B, n, dtype=torch.float64) for n in spec.layers]
    z = [torch.zeros(B, n, dtype=torch.float64) for n in spec.layers]
    refr = [np.zeros((B, n), np.int64) for n in spec.layers]
    r = torch.zeros(B, spec.layers[-1], dtype=torch.float64)
    xt = torch.tensor(x)
    ys = []
    for t in range(T):
        h = xt[t]
        for l in range(len(spec.layers)):
            cur = h @ tp[f"w{l}"] + (z[l] @ tp[f"r{l}"] if recurrent[l] else 0.0)
            v[l] = tp[f"alpha{l}"] * (1.0 - z[l]) * v[l] + cur
            if model == "alif":
                a[l] = spec.rho * a[l] + z[l]
            ok = torch.tensor((refr[l] <= 0).astype(np.float64))
            z[l] = Heavi.apply(v[l] - tp[f"vth{l}"] - spec.beta * a[l]) * ok
            refr[l] = np.where(z[l].detach().numpy() > 0, spec.n_ref, np.maximum(refr[l] - 1, 0))
            h = z[l]
        r = tp["kappa"][0] * r + h
        ys.append(r @ tp["w_out"] + tp["b_out"])
    y_t = torch.stack(ys)
    (y_t * torch.tensor(dy)).sum().backward()
    eng = Engine(graph, opts, dtype=np.float64)
    tape = eng.forward(p, x)
    g = eng.backward(p, tape, dy)
    np.testing.assert_allclose(tape.y, y_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert all(0.02 < rec[3].mean() < 0.9 for rec in tape.records[0][0])
    for k, tv in tp.items():
        gt = tv.grad.numpy().copy() if tv.grad is not None else np.zeros_like(p[k])
        if k.startswith("r"):
            np.fill_diagonal(gt, 0.0)
        if k.startswith(("w", "alpha", "vth")):
            assert np.max(np.abs(gt)) > 0, k
        err = np.max(np.abs(g[k] - gt)) / max(np.max(np.abs(gt)), 1e-300)
        assert err <= 1e-10, (k, err)


def test_checkpointed_reset_zero_equals_full():
    rng = np.random.default_rng(9)
    graph, opts = net(n_in=5, layers=(12, 7), recurrent=(True, True), n_out=2, model="alif", beta_adapt=0.3,
                   refractory_s=2e-3, reset="zero", surrogate="triangular")
    spec = plan(graph, opts)
    p = init_params(graph, 2, opts)
    p["w0"] = rng.normal(0.3, 0.8, p["w0"].shape)
    p["w1"] = rng.normal(0.3, 0.8, p["w1"].shape)
    x = (rng.random((50, 3, 5)) < 0.4) * 1.0
    dy = rng.standard_normal((50, 3, 2))
    full = Engine(graph, opts, dtype=np.float64)
    ck = Engine(graph, opts, dtype=np.float64, checkpoint_steps=7)
    g_full = full.backward(p, full.forward(p, x), dy)
    g_ck = ck.backward(p, ck.forward(p, x), dy)
    for k in g_full:
        np.testing.assert_allclose(g_ck[k], g_full[k], rtol=1e-12, atol=1e-12, err_msg=k)


# ------------------------------------------------------------------ snnTorch
@pytest.mark.parametrize("sg", ["fast_sigmoid", "ste", "atan", "triangular"])
@pytest.mark.parametrize("recurrent", [(False, False), (True, False)])
def test_reset_zero_equals_snntorch_leaky(sg, recurrent):
    torch = import_or_skip("torch")
    snn = import_or_skip("snntorch")
    from snntorch import surrogate as sts

    rng = np.random.default_rng(17 + 3 * len(sg) + recurrent[0])  # fixed per case
    graph, opts, spec, params, x, dy = two_layer_case(rng, seed=3, recurrent=recurrent, surrogate=sg, reset="zero")
    _, psg = surrogate_id(sg)
    tp, y, spikes = snntorch_run(torch, snn, spec, params, x, dy, recurrent,
                                 spike_grad=spike_grad(sts, torch, sg, psg), reset="zero")
    assert_engine_matches(graph, opts, params, x, dy, recurrent, tp, y, spikes)


def test_reset_refuses_unknown_mode_and_old_dicts_default_to_subtract():
    with pytest.raises(ValueError, match="reset must be 'subtract' or 'zero'"):
        net(n_in=2, layers=(3,), recurrent=(False,), reset="to_rest")
    graph, opts = net(n_in=2, layers=(3,), recurrent=(False,), reset="zero")
    assert plan(graph, opts).reset == "zero"
    # an architecture dict of a checkpoint written before the option existed
    old = {"n_in": 2, "layers": [3], "recurrent": [False], "n_out": None, "model": "lif", "dt_s": 1e-3}
    g_old, _ = graph_from_spec_dict(old)
    assert plan(g_old).reset == "subtract"
    assert plan(graph_from_spec_dict({**old, "reset": "zero"})[0]).reset == "zero"