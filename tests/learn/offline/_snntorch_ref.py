"""The snnTorch side of the BPTT cross-checks: two ``snn.Leaky`` layers (optionally the first
recurrent through its previous spikes) and the engine's leaky readout, stepped in float64 torch,
against :class:`rtsnn.learn.offline.bptt_engine.Engine` on the same parameters and input."""

from __future__ import annotations

import numpy as np

from _bptt_nets import draw_layer_weights, net, plan
from rtsnn.learn.offline.bptt_engine import Engine, init_params

T, B = 40, 3  # ticks and batch of every comparison


def spike_grad(sts, torch, name, p):
    """snnTorch's spike function for our surrogate family ``name`` with parameter ``p``:
    ``sigmoid`` / ``atan`` / ``ste`` are snnTorch's own unchanged; snnTorch's fast sigmoid is not
    unit-area (``1/(1+k|x|)^2``), so fast sigmoid, boxcar, triangular and exponential are ours
    through ``surrogate.custom_surrogate``."""
    if name == "sigmoid":
        return sts.sigmoid(slope=p)
    if name == "atan":
        return sts.atan(alpha=p)
    if name == "ste":
        return sts.straight_through_estimator()

    def fn(input_, grad_input, spikes):  # noqa: ARG001
        ax = input_.abs()
        if name == "fast_sigmoid":
            g = p / (2.0 * (1.0 + p * ax) ** 2)
        elif name == "boxcar":
            g = (ax <= p).to(input_.dtype) / (2.0 * p)
        elif name == "triangular":
            g = torch.clamp(1.0 - ax / p, min=0.0) / p
        elif name == "exponential":
            g = torch.exp(-ax / p) / (2.0 * p)
        else:
            raise ValueError(f"no snnTorch counterpart for surrogate {name!r}")
        return grad_input * g

    return sts.custom_surrogate(fn)


def two_layer_case(rng, *, seed, recurrent, surrogate, reset, bias=False):
    """``(graph, options, plan, params, x, dy)``: 6 inputs -> 12 -> 9 LIF -> 3 readout,
    tau_mem 10 ms, reset detached (as snnTorch does); weights drawn from ``rng`` so both
    layers fire (0.02 < rate < 0.9)."""
    graph, opts = net(n_in=6, layers=(12, 9), recurrent=recurrent, n_out=3, tau_mem_s=10e-3, surrogate=surrogate,
                      detach_reset=True, reset=reset)
    spec = plan(graph, opts)
    params = draw_layer_weights(init_params(graph, seed, opts), spec, rng, w_mean=0.15)
    params["w_out"] = rng.normal(0.0, 0.5, params["w_out"].shape)
    if bias:
        params["b_out"] = rng.normal(0.0, 0.1, 3)
    x = (rng.random((T, B, 6)) < 0.3) * rng.uniform(0.5, 1.5, (T, B, 6))
    dy = rng.standard_normal((T, B, 3))
    return graph, opts, spec, params, x, dy


def snntorch_run(torch, snn, spec, params, x, dy, recurrent, *, spike_grad, reset):
    """Step the snnTorch network; returns ``(torch params with .grad of sum(y * dy), y, spikes
    per layer (T, B, n))``."""
    T, B = x.shape[:2]
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    # beta and threshold as float64 tensors: snnTorch stores a Python float as a float32 buffer,
    # which leaves the spikes (and y) unchanged but moves every membrane by ~1e-8 and the
    # surrogate gradients by up to ~1e-5
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    neurons = [snn.Leaky(beta=f64(spec.alpha[0][0]), threshold=f64(spec.v_th[0][0]), spike_grad=spike_grad,
                         reset_mechanism=reset) for _ in spec.layers]
    mems = [torch.zeros(B, n, dtype=torch.float64) for n in spec.layers]
    prev = [torch.zeros(B, n, dtype=torch.float64) for n in spec.layers]
    r = torch.zeros(B, spec.layers[-1], dtype=torch.float64)
    xt = torch.tensor(x, dtype=torch.float64)
    ys, spikes = [], [[] for _ in spec.layers]
    for t in range(T):
        h = xt[t]
        for l, lif in enumerate(neurons):
            cur = h @ tp[f"w{l}"]
            if recurrent[l]:
                cur = cur + prev[l] @ tp[f"r{l}"]
            spk, mems[l] = lif(cur, mems[l])
            h = prev[l] = spk.to(torch.float64)
            spikes[l].append(h.detach().numpy())
        r = tp["kappa"][0] * r + h
        ys.append(r @ tp["w_out"] + tp["b_out"])
    y_t = torch.stack(ys)
    (y_t * torch.tensor(dy)).sum().backward()
    return tp, y_t.detach().numpy(), [np.stack(s) for s in spikes]


def assert_engine_matches(graph, opts, params, x, dy, recurrent, tp, y, spikes):
    """The engine's spikes equal snnTorch's, its output to 1e-12, and its gradients to the
    float32 rounding snnTorch's spike functions put on every gradient through a spike
    (``(x > 0).float()``; measured up to ~1.2e-8 relative)."""
    eng = Engine(graph, opts, dtype=np.float64)
    tape = eng.forward(params, x)
    g = eng.backward(params, tape, dy)
    for l, rec in enumerate(tape.records[0][0]):
        np.testing.assert_array_equal(rec[3], spikes[l])
        assert 0.02 < rec[3].mean() < 0.9
    np.testing.assert_allclose(tape.y, y, rtol=1e-12, atol=1e-12)
    for k in ("w0", "w1", "w_out", "b_out", "kappa") + (("r0",) if recurrent[0] else ()):
        gt = tp[k].grad.numpy().copy()
        if k.startswith("r"):
            np.fill_diagonal(gt, 0.0)
        assert np.max(np.abs(gt)) > 0, k
        err = np.max(np.abs(g[k] - gt)) / np.max(np.abs(gt))
        assert err <= 1e-6, (k, err)
