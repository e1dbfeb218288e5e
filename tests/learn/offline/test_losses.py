"""Every loss and regulariser's gradient equals central finite differences of its value."""

from __future__ import annotations

import numpy as np
import pytest

from rtsnn.learn.offline import losses as L


def _fd_check(fn, out, eps=1e-6, rtol=1e-5):
    val, d = fn(out)
    assert np.isfinite(val)
    fd = np.empty_like(out)
    for idx in np.ndindex(out.shape):
        o = out.copy()
        o[idx] += eps
        vp = fn(o)[0]
        o[idx] -= 2 * eps
        vm = fn(o)[0]
        fd[idx] = (vp - vm) / (2 * eps)
    np.testing.assert_allclose(d, fd, rtol=rtol, atol=1e-8 * max(1.0, np.abs(fd).max()))


rng = np.random.default_rng(0)
T, B, C = 9, 3, 4
OUT = rng.random((T, B, C))
LABELS = np.array([0, 3, 2])


@pytest.mark.parametrize("name", ["count_ce", "mean_ce", "rate_ce", "first_spike"])
def test_classification_losses(name):
    _fd_check(lambda o: L.compute_loss(name, o, LABELS), OUT)


def test_mse_alignment_jitter():
    tgt = rng.random((T, B, C))
    _fd_check(lambda o: L.mse(o, tgt), OUT)
    spikes = (rng.random((T, B, C)) < 0.3).astype(float)
    _fd_check(lambda o: L.alignment(o, spikes, sigma_steps=2.0), OUT)
    _fd_check(lambda o: L.jitter(o, rng.uniform(0, T, (B, C)) * 0 + 4.0, tau_steps=3.0), OUT)


def test_regularisers():
    counts = rng.random(6) * 10
    v, d = L.spike_count_reg(counts, B, T, 0.7)
    assert v == pytest.approx(0.7 * counts.sum() / (B * T * 6))
    for fn in (lambda c: L.spike_count_reg(c, B, T, 0.7), lambda c: L.homeostatic_reg(c, B, T, 1e-3, 20.0, 1e-4)):
        val, dc = fn(counts)
        fd = np.array([(fn(counts + e)[0] - fn(counts - e)[0]) / 2e-6 for e in np.eye(6) * 1e-6])
        np.testing.assert_allclose(dc, fd, rtol=1e-5)


def test_count_ce_gradient_is_p_minus_y_spread_over_time():
    val, d = L.count_ce(OUT, LABELS)
    p = np.exp(OUT.sum(0)) / np.exp(OUT.sum(0)).sum(1, keepdims=True)
    y = np.eye(C)[LABELS]
    for t in range(T):
        np.testing.assert_allclose(d[t], (p - y) / B, rtol=1e-12)


def test_bad_targets():
    with pytest.raises(ValueError, match="labels must lie in"):
        L.count_ce(OUT, np.array([0, 1, 9]))
    with pytest.raises(ValueError, match=r"labels must have shape \(B,\)"):
        L.count_ce(OUT, np.array([0, 1]))
    with pytest.raises(ValueError, match="target must have the output's shape"):
        L.mse(OUT, np.zeros((T, B)))
    with pytest.raises(ValueError, match="loss must be one of"):
        L.compute_loss("hinge", OUT, LABELS)
