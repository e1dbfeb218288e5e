"""Binned neural recordings for decoder pretraining.

:func:`load_chewie` reads the Chewie center-out reaching session (Miller lab, via
nerdslab/myow-neuro; ``shared/data/neural/chewie_20131003_bin100ms.npz``): ``rates_hz``
(n_bins, 174) firing rates, ``vel`` (n_bins, 2) hand velocity, ``trial`` (n_bins,) trial index,
through the recording layer with an explicit ``bin_s``. (``rtsnn pretrain`` reads any
recording itself: :mod:`rtsnn.learn.offline.pretrain_data`.)
:func:`synthetic_session` bins the simulated motor-cortex user of
:mod:`rtsnn.stream.synthetic` (cosine-tuned Poisson neurons, center-out reaches) the same
way, cut into pseudo-trials of ``trial_s``.

Every loader returns a :class:`BinnedSession` and validates it: NaN/inf values or wrong
shapes raise ValueError naming the array.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class BinnedSession:
    """``counts`` (n_bins, n_neurons) spike counts per bin (float), ``vel`` (n_bins, n_dims)
    target velocity, ``trial`` (n_bins,) int trial id, ``bin_s`` the bin width in seconds."""

    counts: np.ndarray
    vel: np.ndarray
    trial: np.ndarray
    bin_s: float
    name: str = "session"

    def __post_init__(self) -> None:
        check_session(self.counts, self.vel, self.trial, self.bin_s)

    @property
    def trial_ids(self) -> np.ndarray:
        _, first = np.unique(self.trial, return_index=True)
        return self.trial[np.sort(first)]


def check_session(counts, vel, trial, bin_s) -> None:
    for name, arr, nd in (("counts", counts, 2), ("vel", vel, 2), ("trial", trial, 1)):
        arr = np.asarray(arr)
        if arr.ndim != nd:
            raise ValueError(f"{name} must be {nd}-D, got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
        bad = ~np.isfinite(arr.astype(np.float64))
        if bad.any():
            raise ValueError(f"{name} contains {int(bad.sum())} NaN/inf values (first at row "
                             f"{int(np.argwhere(bad)[0][0])})")
    n = np.asarray(counts).shape[0]
    if n < 2:
        raise ValueError(f"counts must have at least 2 bins, got {n}")
    if np.asarray(vel).shape[0] != n:
        raise ValueError(f"vel must have one row per bin of counts ({n}), got shape {np.asarray(vel).shape}")
    if np.asarray(trial).shape[0] != n:
        raise ValueError(f"trial must have one entry per bin of counts ({n}), got shape {np.asarray(trial).shape}")
    if np.any(np.asarray(counts) < 0):
        raise ValueError("counts must be >= 0 (spike counts or rates)")
    if not (isinstance(bin_s, (int, float)) and np.isfinite(bin_s) and bin_s > 0):
        raise ValueError(f"bin_s must be a finite number > 0, got {bin_s!r}")


def load_chewie(path: str | Path, bin_s: float) -> BinnedSession:
    """The Chewie session read through the recording layer (:mod:`rtsnn.recording`): counts
    per bin = ``rates_hz * bin_s``. The npz states no rate, so ``bin_s`` must be given;
    nothing is read from the file name."""
    from rtsnn.recording import open_recording

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such data file")
    rec = open_recording(p, bin_s=bin_s, fmt="npz")
    streams = {s.name: s for s in rec.streams}
    missing = [k for k in ("rates_hz", "vel", "trial") if k not in streams]
    if missing:
        raise ValueError(f"{p}: missing array(s) {', '.join(missing)} (has {', '.join(streams)})")
    rates, vel, trial = (np.asarray(streams[k].time_series) for k in ("rates_hz", "vel", "trial"))
    trial = trial[:, 0]
    check_session(rates, vel, trial, bin_s)
    return BinnedSession(rates.astype(np.float64) * bin_s, vel.astype(np.float64), trial.astype(np.int64),
                         bin_s, name=p.stem)


def synthetic_session(duration_s: float = 300.0, bin_s: float = 0.02, trial_s: float = 2.0, seed: int = 0,
                      n_neurons: int = 96, baseline_hz: float = 10.0, depth_hz: float = 20.0) -> BinnedSession:
    """Simulate the synthetic user at 1 ms, sum counts into ``bin_s`` bins, average velocity,
    cut into pseudo-trials of ``trial_s``."""
    from rtsnn.stream.synthetic import SyntheticUser

    if not (bin_s >= 1e-3 and abs(bin_s / 1e-3 - round(bin_s / 1e-3)) < 1e-9):
        raise ValueError(f"bin_s must be a multiple of 1 ms, got {bin_s!r}")
    if not (duration_s > 0 and trial_s >= bin_s):
        raise ValueError(f"need duration_s > 0 and trial_s >= bin_s, got {duration_s!r}, {trial_s!r}")
    user = SyntheticUser(n_neurons=n_neurons, baseline_hz=baseline_hz, depth_hz=depth_hz, seed=seed)
    counts, vel = user.generate(duration_s, 1e-3)
    k = int(round(bin_s / 1e-3))
    nb = counts.shape[0] // k
    c = counts[: nb * k].reshape(nb, k, -1).sum(axis=1).astype(np.float64)
    v = vel[: nb * k].reshape(nb, k, -1).mean(axis=1).astype(np.float64)
    per_trial = max(1, int(round(trial_s / bin_s)))
    trial = np.arange(nb) // per_trial
    return BinnedSession(c, v, trial, float(bin_s), name=f"synthetic_seed{seed}")
