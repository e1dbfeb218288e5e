"""Ridge readout with periodic refits over a sliding window: it follows a changed mapping
from features to target (an electrode shift, seen through the network's features), while a
calibrate-once readout does not; the refit option is validated."""

from __future__ import annotations

import numpy as np
import pytest

from rtsnn.learn.online.ridge_readout import RidgeReadoutLearner


class _Features:
    """A backend stand-in: random features, a settable readout."""

    def __init__(self, n_rec=20, n_out=2, seed=0):
        self.n_rec, self.n_out = n_rec, n_out
        self.rng = np.random.default_rng(seed)
        self.f = np.zeros(n_rec, np.float32)
        self.w = np.zeros((n_rec, n_out), np.float32)
        self.b = np.zeros(n_out, np.float32)

    def features(self):
        return self.f

    def set_readout(self, w, b):
        self.w[...] = w
        self.b[...] = b

    def step(self):
        self.f[:] = self.rng.random(self.n_rec)

    def readout(self):
        return self.f @ self.w + self.b


def _run(learner, dt=0.01, n=6000, change_at=3000, seed=0):
    be = _Features(seed=seed)
    learner.attach(be, dt)
    rng = np.random.default_rng(seed + 1)
    m1, m2 = rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    errs = []
    for k in range(n):
        be.step()
        target = (be.f @ (m1 if k < change_at else m2)).astype(np.float32)
        errs.append(float(np.mean((be.readout() - target) ** 2)))
        learner.observe(be, target)
        if learner.wants_apply():
            learner.prepare()
            if learner.ready():
                learner.apply(be)
    return np.array(errs), learner


def test_refits_follow_a_changed_mapping_and_calibrate_once_does_not():
    once, _ = _run(RidgeReadoutLearner(calibration_s=10.0, ridge=1e-6))
    refit, lrn = _run(RidgeReadoutLearner(calibration_s=10.0, ridge=1e-6, refit_every_s=2.0, refit_window_s=10.0))
    # before the change both are exact; the mapping changes at 30 s
    assert once[2000:3000].mean() < 1e-6 and refit[2000:3000].mean() < 1e-6
    late = slice(4500, 6000)  # 15 s after the change: the window holds only the new mapping
    assert once[late].mean() > 1.0  # the once-calibrated decoder stays wrong
    assert refit[late].mean() < 1e-6, refit[late].mean()
    st = lrn.stats()
    assert st["refits"] >= 20 and st["solve_failed"] == 0


def test_refit_options_are_checked():
    with pytest.raises(ValueError, match="refit_every_s must be None or > 0"):
        RidgeReadoutLearner(refit_every_s=0.0)
    with pytest.raises(ValueError, match="must be >= refit_every_s"):
        RidgeReadoutLearner(refit_every_s=5.0, refit_window_s=1.0)
