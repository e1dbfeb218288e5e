"""The monitor's status message is computed for every series at once over the band of bins that
changed (it runs on the I/O thread, which the compute thread may wait on for the GIL): the same
figures as one series at a time over every bin."""

from __future__ import annotations

import numpy as np

from rtsnn.runtime.loop import SERIES
from rtsnn.runtime.metrics import LatencyStats, percentiles_from_hist
from rtsnn.runtime.monitor import _COARSEN, SessionMonitor, _us, percentile_rows


class _Session:
    def __init__(self):
        self.stats = LatencyStats(list(SERIES))
        self.counters = {"ticks": 0}
        self.source = self.teacher = self.learner = None


def _reference(delta: np.ndarray, hist: np.ndarray, maxima: np.ndarray, names: list[str]) -> dict:
    coarse = delta.reshape(delta.shape[0], -1, _COARSEN).sum(axis=2)
    out = {}
    for i, name in enumerate(names):
        row = coarse[i]
        p50, p99 = percentiles_from_hist(delta[i], (50.0, 99.0), float(maxima[i]))
        out[name] = {"p50_us": _us(p50), "p99_us": _us(p99),
                     "max_us": _us(float(maxima[i])) if hist[i].any() else None,
                     "n": int(row.sum()), "bins": [[int(b), int(row[b])] for b in np.flatnonzero(row)]}
    return out


def test_status_series_equal_the_per_series_computation():
    rng = np.random.default_rng(3)
    s = _Session()
    mon = SessionMonitor("status-test", 16, 2, 0.001)
    prev = np.zeros_like(s.stats.hist)
    for step in range(6):
        for i in range(len(SERIES)):
            if rng.random() < 0.7:  # some series stay empty in some intervals
                for v in rng.lognormal(11, 1.5, rng.integers(1, 200)):
                    s.stats.record(SERIES[i], v)
        if step == 3:
            s.stats.hist[:, -1] += 1  # the top bin too
        hist = s.stats.hist.copy()
        got = mon.status(s, 1.0)["latency"]["series"]
        assert got == _reference(hist - prev, hist, s.stats.maxima, list(SERIES))
        prev = hist


def test_percentile_rows_matches_percentiles_from_hist_on_bands():
    rng = np.random.default_rng(5)
    for _ in range(200):
        counts = np.zeros((4, 64), np.int64)
        for r in range(4):
            k = int(rng.integers(0, 5))
            counts[r, rng.integers(0, 64, k)] = rng.integers(1, 9, k)
        maxima = rng.uniform(1.0, 1e9, 4)
        lo = int(rng.integers(0, 1000))
        full = np.zeros((4, lo + 64), np.int64)
        full[:, lo:] = counts
        got = percentile_rows(counts, (50.0, 99.0), maxima, first_bin=lo)
        for r in range(4):
            want = percentiles_from_hist(full[r], (50.0, 99.0), float(maxima[r]))
            for q in range(2):
                assert (np.isnan(got[q][r]) and np.isnan(want[q])) or got[q][r] == want[q]
