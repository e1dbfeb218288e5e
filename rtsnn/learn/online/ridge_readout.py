"""Readout calibration by ridge regression, online.

During the first ``calibration_s`` of teaching signal the learner accumulates, every tick,
the Gram matrix of the augmented readout features ``x = [r, 1]`` (``r`` the backend's
filtered hidden spike trains) and their cross-product with the target ``y*``:

    G += x x^T,     C += x y*^T

(constant memory, no per-tick allocation). Then it solves, off the compute thread,

    W = (G + lam * mean(diag G) * I') ^-1 C

(``I'`` the identity without the bias entry, so the bias is not shrunk) and installs
``w_out = W[:-1]``, ``b_out = W[-1]`` between two ticks. This is the standard linear
(Wiener-filter-like) decoder calibration of intracortical BCIs, applied to the SNN's
features; it gives the runtime a meaningful decoder before any online rule (e-prop,
actor-critic) is added.

With ``refit_every_s`` the decoder keeps tracking the user (electrode drift, a shifted array):
after calibration the tick keeps accumulating into the current *block* of ``refit_every_s``
(a ring of ``ceil(refit_window_s / refit_every_s)`` blocks plus two: the one being written and
the one it will reuse next), and
each time a block completes the I/O thread solves the same ridge problem over the completed
blocks of the last ``refit_window_s`` (older teaching is forgotten) and the new readout is
installed between two ticks. The compute thread zeroes a block only after it fell out of
the window, so a solve that takes less than one block period never reads a block being
written (a solve takes milliseconds; blocks last seconds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from rtsnn.learn.online.needs import NEEDS_READOUT, readout_problem


@njit(cache=True, nogil=True)
def accumulate_gram(gram: np.ndarray, cross: np.ndarray, features: np.ndarray,
                    target: np.ndarray) -> None:
    """Upper triangle of ``gram += x x^T`` and ``cross += x target^T`` with ``x = [features, 1]``."""
    n = features.shape[0]
    m = target.shape[0]
    for i in range(n + 1):
        xi = 1.0 if i == n else np.float64(features[i])
        if xi == 0.0:
            continue
        for j in range(i, n + 1):
            xj = 1.0 if j == n else np.float64(features[j])
            gram[i, j] += xi * xj
        for k in range(m):
            cross[i, k] += xi * target[k]


def accumulate_gram_reference(gram, cross, features, target) -> None:
    """Plain-numpy reference of :func:`accumulate_gram` (full upper triangle)."""
    x = np.append(features.astype(np.float64), 1.0)
    gram += np.triu(np.outer(x, x))
    cross += np.outer(x, target.astype(np.float64))


def solve_ridge(gram_upper: np.ndarray, cross: np.ndarray, lam: float) -> np.ndarray:
    """Solve the regularised normal equations from an upper-triangular Gram matrix."""
    g = np.triu(gram_upper) + np.triu(gram_upper, 1).T
    n = g.shape[0] - 1
    scale = float(np.mean(np.diag(g)[:n])) if n else 0.0
    reg = np.eye(n + 1) * lam * max(scale, 1e-12)
    reg[n, n] = 0.0
    return np.linalg.solve(g + reg, cross)


class RidgeReadoutLearner:
    """Calibrates the readout once from the teaching signal (see module docstring).

    Works on any model whose output is ``LI -> Affine -> Output`` (today's single layer, or the
    trace of a deeper graph's last layer: ``features()`` is that trace, ``set_readout`` writes
    the ``Affine``)."""

    needs = NEEDS_READOUT

    @staticmethod
    def model_problem(model: Any) -> str | None:
        """None when ``model`` has the readout this learner fits, else why not."""
        return readout_problem(model)

    def __init__(self, calibration_s: float = 20.0, ridge: float = 1e-3, refit_every_s: float | None = None,
                 refit_window_s: float = 60.0):
        if not calibration_s > 0:
            raise ValueError(f"calibration_s must be > 0, got {calibration_s!r}")
        if not ridge >= 0:
            raise ValueError(f"ridge must be >= 0, got {ridge!r}")
        if refit_every_s is not None and not (isinstance(refit_every_s, (int, float)) and refit_every_s > 0):
            raise ValueError(f"refit_every_s must be None or > 0, got {refit_every_s!r}")
        if not (isinstance(refit_window_s, (int, float)) and refit_window_s > 0):
            raise ValueError(f"refit_window_s must be > 0, got {refit_window_s!r}")
        if refit_every_s is not None and refit_window_s < refit_every_s:
            raise ValueError(f"refit_window_s ({refit_window_s}) must be >= refit_every_s ({refit_every_s})")
        self.refit_every_s = None if refit_every_s is None else float(refit_every_s)
        self.refit_window_s = float(refit_window_s)
        self.refits = 0
        self._blocks_done = 0  # completed blocks (compute thread)
        self._blocks_used = 0  # completed blocks the last refit covered
        self.calibration_s = float(calibration_s)
        self.ridge = float(ridge)
        self.n_calib_ticks = 0
        self.seen = 0
        self.calibrated = False
        self._solution: np.ndarray | None = None
        self.solve_failed = 0

    def attach(self, backend, dt_s: float) -> None:
        n_feat = backend.n_rec
        self.n_out = backend.n_out
        self.gram = np.zeros((n_feat + 1, n_feat + 1), dtype=np.float64)
        self.cross = np.zeros((n_feat + 1, self.n_out), dtype=np.float64)
        self.n_calib_ticks = max(1, int(round(self.calibration_s / dt_s)))
        self._feat = backend.features
        if self.refit_every_s is not None:
            self._block_ticks = max(1, int(round(self.refit_every_s / dt_s)))
            self._n_window = max(1, int(np.ceil(self.refit_window_s / self.refit_every_s)))
            self._n_ring = self._n_window + 2
            self._bgram = np.zeros((self._n_ring,) + self.gram.shape)
            self._bcross = np.zeros((self._n_ring,) + self.cross.shape)
            self._bseen = 0
        accumulate_gram(self.gram[:2, :2].copy(), self.cross[:2].copy(),
                        np.zeros(1, np.float32), np.zeros(self.n_out, np.float32))  # compile

    def observe(self, backend, target: np.ndarray) -> None:
        if self.seen < self.n_calib_ticks:
            accumulate_gram(self.gram, self.cross, self._feat(), target)
            self.seen += 1
        elif self.refit_every_s is not None and self.calibrated:
            b = self._blocks_done % self._n_ring
            accumulate_gram(self._bgram[b], self._bcross[b], self._feat(), target)
            self._bseen += 1
            if self._bseen >= self._block_ticks:  # block complete: start the next (oldest) one
                self._bseen = 0
                self._blocks_done += 1
                nb = self._blocks_done % self._n_ring
                self._bgram[nb] = 0.0
                self._bcross[nb] = 0.0

    def wants_apply(self) -> bool:
        if not self.calibrated:
            return self.seen >= self.n_calib_ticks
        return self.refit_every_s is not None and self._blocks_done > self._blocks_used

    def prepare(self) -> None:
        gram, cross = self.gram, self.cross
        if self.calibrated:  # a refit over the completed blocks of the window
            done = self._blocks_done
            idx = [k % self._n_ring for k in range(max(0, done - self._n_window), done)]
            gram, cross = self._bgram[idx].sum(axis=0), self._bcross[idx].sum(axis=0)
            self._blocks_used = done
        try:
            w = solve_ridge(gram, cross, self.ridge)
        except np.linalg.LinAlgError:
            self.solve_failed += 1
            w = None
        if w is not None and not np.all(np.isfinite(w)):
            self.solve_failed += 1
            w = None
        self._solution = w

    def ready(self) -> bool:
        return self._solution is not None

    def apply(self, backend) -> None:
        w = self._solution
        if w is None:
            return
        backend.set_readout(w[:-1].astype(np.float32), w[-1].astype(np.float32))
        if self.calibrated:
            self.refits += 1
        self.calibrated = True
        self._solution = None

    def stats(self) -> dict[str, Any]:
        return {"calibrated": self.calibrated, "calibration_ticks": self.seen,
                "solve_failed": self.solve_failed, "refits": self.refits}
