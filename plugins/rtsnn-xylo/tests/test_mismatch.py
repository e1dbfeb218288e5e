"""Mismatch gradient (first-order change of the weight gradient under threshold/leak perturbation),
jittered chips, dash immunity, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from rtsnn.learn.offline.bptt_engine import Engine, init_params
from rtsnn.learn.offline.bptt_graph import BpttOptions, layered_graph
from rtsnn.learn.offline.losses import mean_ce
from rtsnn_xylo.mismatch import jitter_accuracy, jitter_dash, mismatch_gradient, weight_gradient
from rtsnn_xylo.qat import check_counts
from test_qat import _cfg


def _net(seed=0):
    graph = layered_graph(3, (6,), (True,), 2)
    eng = Engine(graph, BpttOptions(surrogate="sigmoid"), dtype=np.float64)
    p = init_params(graph, seed)
    rng = np.random.default_rng(seed)
    p["w0"] = rng.normal(0.6, 0.5, p["w0"].shape)
    x = (rng.random((25, 4, 3)) < 0.3).astype(np.float64)
    labels = np.array([0, 1, 1, 0])
    return eng, p, x, (lambda out: mean_ce(out, labels))


@pytest.mark.parametrize("key", ["vth0", "alpha0"])
def test_mismatch_gradient_predicts_the_gradient_shift(key):
    eng, p, x, loss = _net()
    assert eng.forward(p, x).spike_counts[0].sum() > 0
    rng = np.random.default_rng(1)
    dp = rng.uniform(-1, 1, p[key].shape) * 1e-6 * p[key]  # tiny: no spike flips, so G is smooth
    m = mismatch_gradient(eng, p, x, loss, {key: dp / np.abs(dp).max()}, eps=1e-3 * np.abs(dp).max())
    m = {k: v * np.abs(dp).max() for k, v in m.items()}
    g0 = weight_gradient(eng, p, x, loss)
    p1 = {k: v.copy() for k, v in p.items()}
    p1[key] = p1[key] + dp
    g1 = weight_gradient(eng, p1, x, loss)
    np.testing.assert_array_equal(eng.forward(p1, x).spike_counts[0], eng.forward(p, x).spike_counts[0])
    for k in ("w0", "r0"):
        actual = g1[k] - g0[k]
        assert np.linalg.norm(actual) > 0
        # first-order prediction explains the shift far better than "no change"
        assert np.linalg.norm(actual - m[k]) < 0.2 * np.linalg.norm(actual), k


def test_mismatch_gradient_bad_direction():
    eng, p, x, loss = _net()
    with pytest.raises(ValueError, match="threshold/leak"):
        mismatch_gradient(eng, p, x, loss, {"w0": np.zeros_like(p["w0"])})
    with pytest.raises(ValueError, match="shape"):
        mismatch_gradient(eng, p, x, loss, {"vth0": np.zeros(2)})


def test_dash_is_immune_to_ten_percent_leak_jitter():
    rng = np.random.default_rng(0)
    dash = np.arange(1, 15)
    for _ in range(50):
        np.testing.assert_array_equal(jitter_dash(dash, 0.1, 1e-3, rng), dash)
    assert np.any(jitter_dash(np.full(200, 4), 0.6, 1e-3, rng) != 4)  # large jitter does move it


def test_jitter_accuracy_zero_jitter_is_nominal_and_jitter_changes_spikes():
    rng = np.random.default_rng(2)
    cfg = _cfg(rng)
    xs = check_counts(rng.poisson(2.0, (30, 20, cfg.n_in)), cfg.n_in)
    y = rng.integers(0, cfg.n_out, 30)
    r0 = jitter_accuracy(cfg, xs, y, jitter=0.0, n_draws=3)
    assert r0["sd"] == 0 and all(a == r0["nominal"] for a in r0["accs"])
    r = jitter_accuracy(cfg, xs, y, jitter=0.5, n_draws=8, seed=1)
    assert len(r["accs"]) == 8 and 0 <= r["mean"] <= 1
    with pytest.raises(ValueError, match="n_draws"):
        jitter_accuracy(cfg, xs, y, n_draws=0)
    with pytest.raises(ValueError, match="labels"):
        jitter_accuracy(cfg, xs, y[:3])
