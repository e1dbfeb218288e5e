"""BPTT gradients of our numba engine equal autograd gradients (torch float64).

1. snnTorch itself (``snntorch.Leaky``) as the reference for LIF networks (feedforward and
   recurrent, every surrogate family). Convention mapping, documented here and in
   :mod:`rtsnn.learn.offline.surrogate`:
   * ``snn.Leaky(beta=alpha, threshold=v_th, reset_mechanism='subtract')``: snnTorch computes
     ``mem[t] = beta mem[t-1] + I[t] - threshold H(mem[t-1] - threshold)``, i.e. our
     ``v[t] = alpha v[t-1] + I[t] - v_th z[t-1]`` (no refractory period, n_ref = 0);
   * snnTorch always detaches the reset signal, so these comparisons use ``detach_reset=True``;
   * snnTorch fires on ``mem > threshold`` and we on ``>=``: identical for continuous inputs;
   * recurrent current ``z[t-1] @ r`` and the leaky readout ``r[t] = kappa r[t-1] + z[t]``,
     ``y = r w_out + b_out`` are written in torch around the snnTorch neurons;
   * surrogates: ``surrogate.sigmoid(slope=p)`` and ``surrogate.atan(alpha=p)`` are ours
     unchanged; snnTorch's fast sigmoid is not unit-area (``1/(1+k|x|)^2``), so fast sigmoid,
     boxcar, triangular and exponential go through ``surrogate.custom_surrogate``.
2. A plain torch autograd model for what snnTorch does not have: the non-detached reset,
   ALIF adaptation, refractory periods, trainable leak/threshold, multi-layer recurrence.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from conftest import import_or_skip

torch = import_or_skip("torch")
snn = import_or_skip("snntorch")
from snntorch import surrogate as sts  # noqa: E402

from rtsnn.learn.offline.bptt_engine import Engine, init_params  # noqa: E402
from _bptt_nets import draw_layer_weights, net, plan  # noqa: E402
from _snntorch_ref import snntorch_run, spike_grad  # noqa: E402
from rtsnn.learn.offline.surrogate import DEFAULT_PARAM, SURROGATES  # noqa: E402

RTOL = 1e-5


def _net(rng, recurrent, n_out=3):
    spec_kw = dict(n_in=6, layers=(12, 9), recurrent=recurrent, n_out=n_out, dt_s=1e-3, tau_mem_s=10e-3)
    return spec_kw


def _random_params(graph, opts, rng) -> dict[str, np.ndarray]:
    p = init_params(graph, int(rng.integers(1 << 30)), opts)
    spec = plan(graph, opts)
    draw_layer_weights(p, spec, rng, w_mean=0.15)  # strong enough that every layer spikes
    if spec.n_out is not None:
        p["w_out"] = rng.normal(0.0, 0.5, p["w_out"].shape)
        p["b_out"] = rng.normal(0.0, 0.1, p["b_out"].shape)
    return p


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _ours(graph, opts, params, x, dy, checkpoint_steps=None):
    eng = Engine(graph, opts, dtype=np.float64, checkpoint_steps=checkpoint_steps)
    tape = eng.forward(params, x)
    return tape, eng.backward(params, tape, dy)


@pytest.mark.parametrize("sg_name", list(SURROGATES))
@pytest.mark.parametrize("recurrent", [(False, False), (True, False)])
def test_gradients_equal_snntorch(sg_name, recurrent):
    # a fixed seed per case (Python's str hash changes from run to run)
    rng = np.random.default_rng(zlib.crc32(repr((sg_name, recurrent)).encode()))
    p_sg = DEFAULT_PARAM[sg_name] * float(rng.uniform(0.5, 1.5))
    graph, opts = net(**_net(rng, recurrent), surrogate=sg_name, surrogate_param=p_sg, detach_reset=True)
    spec = plan(graph, opts)
    params = _random_params(graph, opts, rng)
    T, B = 40, 3
    x = (rng.random((T, B, spec.n_in)) < 0.3) * rng.uniform(0.5, 1.5, (T, B, spec.n_in))
    dy = rng.standard_normal((T, B, 3))
    tp, y_t, _ = snntorch_run(torch, snn, spec, params, x, dy, spec.recurrent,
                              spike_grad=spike_grad(sts, torch, sg_name, p_sg), reset="subtract")
    g_t = {k: v.grad.numpy() for k, v in tp.items() if v.grad is not None}
    tape, g = _ours(graph, opts, params, x, dy)
    np.testing.assert_allclose(tape.y, y_t, rtol=1e-12, atol=1e-12)
    rates = [float(rec[3].mean()) for rec in tape.records[0][0]]
    assert all(0.01 < fr < 0.9 for fr in rates), f"both layers must spike for a meaningful check: {rates}"
    for k in ("w0", "w1", "w_out", "b_out", "kappa") + (("r0",) if recurrent[0] else ()):
        gt = g_t[k].copy()
        if k.startswith("r"):  # no autapses: the diagonal is not a parameter (ours is exactly 0)
            assert np.all(np.diagonal(g[k]) == 0)
            np.fill_diagonal(gt, 0.0)
        assert np.max(np.abs(gt)) > 0, k
        assert _rel_err(g[k], gt) <= RTOL, (k, _rel_err(g[k], gt))


# ------------------------------------------------------------------ plain torch autograd model
def _torch_model_grads(spec, params, x, dy, calib=None):
    """Our equations in torch with a custom autograd Heaviside; the refractory mask is computed
    without gradient. Trainable alpha/vth per neuron."""
    from rtsnn.learn.offline.surrogate import surrogate_grad_np, surrogate_id

    kind, p = surrogate_id(spec.surrogate, spec.surrogate_param)

    class Heavi(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u, scale):
            ctx.save_for_backward(u)
            ctx.scale = scale
            return (u >= 0).to(u.dtype)

        @staticmethod
        def backward(ctx, go):
            (u,) = ctx.saved_tensors
            g = torch.tensor(surrogate_grad_np(u.detach().numpy(), kind, p))
            return go * g * ctx.scale, None

    calib = calib or [1.0] * len(spec.layers)
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    T, B, _ = x.shape
    xt = torch.tensor(x, dtype=torch.float64)
    L = len(spec.layers)
    v = [torch.zeros(B, n, dtype=torch.float64) for n in spec.layers]
    a = [torch.zeros(B, n, dtype=torch.float64) for n in spec.layers]
    z = [torch.zeros(B, n, dtype=torch.float64) for n in spec.layers]
    refr = [np.zeros((B, n), dtype=np.int64) for n in spec.layers]
    r = torch.zeros(B, spec.layers[-1], dtype=torch.float64)
    outs = []
    for t in range(T):
        h = xt[t]
        for l in range(L):
            cur = h @ tp[f"w{l}"]
            if spec.recurrent[l]:
                cur = cur + z[l] @ tp[f"r{l}"]
            zr = z[l].detach() if spec.detach_reset else z[l]
            vth = tp[f"vth{l}"]
            v[l] = tp[f"alpha{l}"] * v[l] + cur - vth * zr
            a[l] = spec.rho * a[l] + z[l] if spec.model == "alif" else a[l]
            ok = refr[l] <= 0
            m = torch.tensor(ok.astype(np.float64))
            z_new = Heavi.apply(v[l] - vth - spec.beta * a[l], calib[l]) * m
            spike = z_new.detach().numpy() > 0
            refr[l] = np.where(spike, spec.n_ref, np.maximum(refr[l] - 1, 0))
            z[l] = z_new
            h = z_new
        if spec.n_out is not None:
            r = tp["kappa"][0] * r + h
            outs.append(r @ tp["w_out"] + tp["b_out"])
        else:
            outs.append(h)
    y = torch.stack(outs)
    (y * torch.tensor(dy)).sum().backward()
    return y.detach().numpy(), {k: (v.grad.numpy() if v.grad is not None else np.zeros_like(params[k]))
                                for k, v in tp.items()}


CASES = [
    dict(model="lif", recurrent=(False, False, False), detach_reset=False, refractory_s=0.0, n_out=3),
    dict(model="alif", recurrent=(True, False, True), detach_reset=False, refractory_s=2e-3, n_out=3),
    dict(model="alif", recurrent=(True, True, False), detach_reset=True, refractory_s=0.0, n_out=None),
    dict(model="lif", recurrent=(True, True, True), detach_reset=False, refractory_s=3e-3, n_out=2),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("checkpoint_steps", [None, 7])
def test_gradients_equal_torch_autograd(case, checkpoint_steps):
    kw = CASES[case]
    rng = np.random.default_rng(100 + case)
    sg = list(SURROGATES)[case % len(SURROGATES)]
    graph, opts = net(n_in=5, layers=(10, 8, 6), dt_s=1e-3, tau_mem_s=15e-3, tau_adapt_s=50e-3,
                   beta_adapt=0.4, surrogate=sg, **kw)
    spec = plan(graph, opts)
    params = _random_params(graph, opts, rng)
    for l, n in enumerate(spec.layers):  # heterogeneous trainable leak and threshold
        params[f"alpha{l}"] = rng.uniform(0.8, 0.97, n)
        params[f"vth{l}"] = rng.uniform(0.7, 1.3, n)
    T, B = 35, 2
    x = (rng.random((T, B, spec.n_in)) < 0.35) * rng.uniform(0.5, 1.5, (T, B, spec.n_in))
    dy = rng.standard_normal((T, B, spec.n_output))
    calib = [1.3, 0.7, 1.0]
    y_t, g_t = _torch_model_grads(spec, params, x, dy, calib)
    eng = Engine(graph, opts, dtype=np.float64, checkpoint_steps=checkpoint_steps)
    eng.calib = calib
    tape = eng.forward(params, x)
    g = eng.backward(params, tape, dy)
    np.testing.assert_allclose(tape.y, y_t, rtol=1e-12, atol=1e-12)
    assert tape.spike_counts[-1].sum() > 0
    for k in g_t:
        gt = g_t[k].copy()
        if k.startswith("r"):
            assert np.all(np.diagonal(g[k]) == 0)
            np.fill_diagonal(gt, 0.0)
        if np.max(np.abs(gt)) == 0:
            assert np.max(np.abs(g[k])) == 0, k
            continue
        assert _rel_err(g[k], gt) <= RTOL, (k, _rel_err(g[k], gt))
