import numpy as np
from hypothesis import given, settings, strategies as st

from rtsnn.learn.online.ridge_readout import (RidgeReadoutLearner, accumulate_gram,
                                              accumulate_gram_reference, solve_ridge)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_gram_kernel_matches_reference(n, m, seed):
    rng = np.random.default_rng(seed)
    g1 = np.zeros((n + 1, n + 1)); c1 = np.zeros((n + 1, m))
    g2 = g1.copy(); c2 = c1.copy()
    for _ in range(5):
        f = (rng.random(n) * (rng.random(n) > 0.3)).astype(np.float32)
        t = rng.normal(size=m).astype(np.float32)
        accumulate_gram(g1, c1, f, t)
        accumulate_gram_reference(g2, c2, f, t)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c1, c2, rtol=1e-12, atol=1e-12)


class _FakeBackend:
    def __init__(self, n_rec, n_out):
        self.n_rec, self.n_out = n_rec, n_out
        self.r = np.zeros(n_rec, np.float32)
        self.w = None

    def features(self):
        return self.r

    def set_readout(self, w, b):
        self.w, self.b = w, b


def test_learner_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    be = _FakeBackend(20, 2)
    w_true = rng.normal(size=(20, 2)); b_true = np.array([0.5, -1.0])
    lr = RidgeReadoutLearner(calibration_s=0.5, ridge=1e-8)
    lr.attach(be, dt_s=1e-3)
    for _ in range(500):
        be.r[:] = rng.random(20)
        lr.observe(be, (be.r @ w_true + b_true).astype(np.float32))
    assert lr.wants_apply()
    lr.prepare()
    lr.apply(be)
    assert lr.calibrated and not lr.wants_apply()
    np.testing.assert_allclose(be.w, w_true, atol=1e-3)
    np.testing.assert_allclose(be.b, b_true, atol=1e-3)


def test_singular_gram_does_not_install_garbage():
    be = _FakeBackend(4, 1)
    lr = RidgeReadoutLearner(calibration_s=0.01, ridge=0.0)
    lr.attach(be, 1e-3)
    for _ in range(10):  # all-zero features: singular without ridge
        lr.observe(be, np.ones(1, np.float32))
    lr.prepare()
    assert lr.solve_failed == 1 and not lr.ready()
    lr.apply(be)
    assert be.w is None and not lr.calibrated


def test_solve_ridge_does_not_shrink_bias():
    g = np.zeros((2, 2)); c = np.zeros((2, 1))
    for x, y in [(0.0, 3.0), (0.0, 3.0), (1.0, 3.0)]:
        accumulate_gram_reference(g, c, np.array([x], np.float32), np.array([y], np.float32))
    w = solve_ridge(g, c, lam=10.0)
    assert abs(w[1, 0] - 3.0) < 1e-9  # strong ridge shrinks the slope only
