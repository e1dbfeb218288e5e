"""Trainable input delays (softmax relaxation) and the double-exponential readout of the BPTT
engine. Delays reduce exactly to a network without delays on time-shifted copies of the input
(whose gradients the snnTorch cross-check covers); the readout stages' gradients equal central
finite differences (spikes do not depend on the readout, so the gradient is exact)."""

from __future__ import annotations

import numpy as np
import pytest

from rtsnn.snn.graph import GraphModel

from rtsnn.learn.offline.bptt import to_model, trainable_keys
from rtsnn.learn.offline.bptt_engine import Engine, delay_probs, init_params, shifted

from _bptt_nets import net


def _inputs(rng, T, B, n_in, p=0.3):
    return ((rng.random((T, B, n_in)) < p) * rng.uniform(0.5, 1.5, (T, B, n_in))).astype(np.float64)


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("checkpoint_steps", [None, 7])
def test_delays_equal_a_network_on_shifted_input_copies(recurrent, checkpoint_steps):
    rng = np.random.default_rng(3)
    D, n_in, T, B = 3, 4, 30, 2
    graph, opts = net(n_in, (10,), (recurrent,), 2, max_delay_steps=D, tau_mem_s=10e-3)
    params = init_params(graph, 1, opts)
    params["w0"] *= 4.0
    params["delay_logits"] = rng.normal(0, 1.5, params["delay_logits"].shape)
    x = _inputs(rng, T, B, n_in)
    dy = rng.standard_normal((T, B, 2))
    eng = Engine(graph, opts, dtype=np.float64, checkpoint_steps=checkpoint_steps)
    tape = eng.forward(params, x)
    g = eng.backward(params, tape, dy)
    # the same network without delays, its input [x[t], x[t-1], ..., x[t-D]] and weights w0 * p_d
    p = delay_probs(params["delay_logits"])
    graph_aug, _ = net(n_in * (D + 1), (10,), (recurrent,), 2, tau_mem_s=10e-3)
    params_aug = {k: v.copy() for k, v in params.items() if k != "delay_logits"}
    params_aug["w0"] = np.concatenate([params["w0"] * p[..., d] for d in range(D + 1)], axis=0)
    x_aug = np.concatenate([shifted(x, d, 0, T) for d in range(D + 1)], axis=2)
    eng_aug = Engine(graph_aug, dtype=np.float64)
    tape_aug = eng_aug.forward(params_aug, x_aug)
    g_aug = eng_aug.backward(params_aug, tape_aug, dy)
    np.testing.assert_allclose(tape.y, tape_aug.y, rtol=1e-12, atol=1e-12)
    assert tape.spike_counts[0].sum() > 0
    blocks = g_aug["w0"].reshape(D + 1, n_in, 10)  # dL/d(w0 p_d), one block per delay
    np.testing.assert_allclose(g["w0"], sum(blocks[d] * p[..., d] for d in range(D + 1)), rtol=1e-10, atol=1e-12)
    g_p = np.stack([blocks[d] * params["w0"] for d in range(D + 1)], axis=-1)
    want = p * (g_p - np.sum(p * g_p, axis=-1, keepdims=True))
    np.testing.assert_allclose(g["delay_logits"], want, rtol=1e-10, atol=1e-12)
    assert np.abs(g["delay_logits"]).max() > 0
    for k in ("w_out", "b_out", "kappa") + (("r0",) if recurrent else ()):
        np.testing.assert_allclose(g[k], g_aug[k], rtol=1e-10, atol=1e-12)


def test_double_exponential_readout_filter_and_exact_gradients():
    rng = np.random.default_rng(5)
    graph, _ = net(5, (12,), (True,), 2, tau_out_s=8e-3, tau_out2_s=3e-3)
    params = init_params(graph, 2)
    params["w0"] *= 4.0
    x = _inputs(rng, 40, 3, 5)
    dy = rng.standard_normal((40, 3, 2))
    eng = Engine(graph, dtype=np.float64)
    tape = eng.forward(params, x)
    z = tape.records[0][0][0][3]  # hidden spikes
    assert z.sum() > 0
    # y = (z * h) w_out + b_out with h[t] = (k1^(t+1) - k2^(t+1)) / (k1 - k2)
    k1, k2 = params["kappa"][0], params["kappa2"][0]
    h = (k1 ** np.arange(1, 41) - k2 ** np.arange(1, 41)) / (k1 - k2)
    filt = np.stack([np.convolve(z[:, b, i], h)[:40] for b in range(3) for i in range(12)], axis=1)
    filt = filt.reshape(40, 3, 12)
    np.testing.assert_allclose(tape.y, filt @ params["w_out"] + params["b_out"], rtol=1e-10, atol=1e-10)
    g = eng.backward(params, tape, dy)

    def loss(p):
        return float(np.sum(eng.forward(p, x).y * dy))

    for k in ("kappa", "kappa2", "w_out", "b_out"):
        fd = np.zeros_like(params[k])
        for idx in np.ndindex(params[k].shape):
            pp = {kk: v.copy() for kk, v in params.items()}
            pm = {kk: v.copy() for kk, v in params.items()}
            pp[k][idx] += 1e-6
            pm[k][idx] -= 1e-6
            fd[idx] = (loss(pp) - loss(pm)) / 2e-6
        np.testing.assert_allclose(g[k], fd, rtol=1e-6, atol=1e-8, err_msg=k)


def test_trainable_groups_bad_specs_and_runtime_export():
    graph, opts = net(3, (4,), (False,), 2, tau_out2_s=5e-3, max_delay_steps=2)
    params = init_params(graph, 0, opts)
    assert params["delay_logits"].shape == (3, 4, 3) and "kappa2" in params
    assert set(trainable_keys(params, ("readout_tau", "delays"))) == {"kappa", "kappa2", "delay_logits"}
    assert isinstance(to_model(graph, params, opts), GraphModel)  # exported in full (tested in test_export_bptt.py)
    with pytest.raises(ValueError, match="tau_out2_s must be None or a finite number > 0"):
        net(3, (4,), (False,), 2, tau_out2_s=-1.0)
    with pytest.raises(ValueError, match="needs a readout"):
        net(3, (4,), (False,), tau_out2_s=5e-3)
    with pytest.raises(ValueError, match="max_delay_steps must be an int"):
        net(3, (4,), (False,), max_delay_steps=-1)


def test_training_sharpens_the_delay_distributions():
    """Class 1 when channel 1 fires 4 steps after channel 0, class 0 when both fire together.
    Trained with ``trainable=('weights', 'delays')`` the task is learned and the delay
    distributions leave the uniform start (1/7 each) for a preferred delay. (The task can also
    be solved without delays, by LIF dynamics alone: this checks that the delays train, not
    that they are needed.)"""
    from rtsnn.learn.offline.bptt import train_classifier

    rng = np.random.default_rng(0)
    n, T = 256, 30
    x = np.zeros((n, T, 2))
    y = rng.integers(0, 2, n)
    t0 = rng.integers(2, 12, n)
    x[np.arange(n), t0, 0] = 1.0
    x[np.arange(n), t0 + 4 * y, 1] = 1.0
    clf = train_classifier(x, y, hidden=[8], n_classes=2, epochs=40, seed=0, lr=3e-2, loss="mean_ce",
                           max_delay_steps=6, trainable=("weights", "delays"), tau_mem_s=3e-3, tau_out_s=20e-3,
                           log=None)
    assert clf.accuracy(x, y) >= 0.9
    p = delay_probs(clf.params["delay_logits"])
    assert p.max() > 0.5  # the relaxation has decided for some synapses (measured 0.62; start 0.14)


def test_train_classifier_with_a_double_exponential_readout_and_delays_in_two_layers():
    """data_init builds sub-networks layer by layer: they must drop the second readout stage and
    keep the delay logits (it crashed with 'needs a readout' and KeyError 'delay_logits')."""
    from rtsnn.learn.offline.bptt import train_classifier

    rng = np.random.default_rng(0)
    x = (rng.random((24, 30, 4)) < 0.2).astype(np.float32)
    y = rng.integers(0, 2, 24)
    for kw in ({"tau_out2_s": 5e-3}, {"max_delay_steps": 2}):
        clf = train_classifier(x, y, hidden=[6, 5], n_classes=2, epochs=1, seed=0, **kw)
        assert clf.predict(x).shape == (24,)
