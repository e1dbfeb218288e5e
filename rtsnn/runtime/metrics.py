"""Bounded-memory latency statistics.

Per-tick timings go into log-spaced histograms (``BINS_PER_OCTAVE`` bins per factor of two,
so any percentile is known to within ~1.1 % of its value) plus an exact maximum. Memory is
fixed at construction, so a session of any length never grows, and recording one tick of
every stage is one numba call.

Bin ``b`` of a histogram covers ``[MIN_NS * 2**(b/B), MIN_NS * 2**((b+1)/B))`` with
``B = BINS_PER_OCTAVE``; values below ``MIN_NS`` fall in bin 0, values above the top in the
last bin (the exact maximum is kept separately).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from numba import njit

from rtsnn.jsonout import json_safe  # noqa: F401 - its home before rtsnn.jsonout

BINS_PER_OCTAVE = 64
MIN_NS = 10.0  # 10 ns
N_OCTAVES = 34  # 10 ns * 2**34 ~ 172 s
N_BINS = BINS_PER_OCTAVE * N_OCTAVES


@njit(cache=True, nogil=True)
def bin_of_ns(value_ns: float) -> int:
    """Histogram bin of a value (ns): floor(B * log2(value / MIN_NS)), clipped to the bins."""
    if value_ns <= MIN_NS:
        return 0
    b = int(BINS_PER_OCTAVE * math.log2(value_ns / MIN_NS))
    return N_BINS - 1 if b >= N_BINS else b


@njit(cache=True, nogil=True)
def record_ns(hist: np.ndarray, maxima: np.ndarray, row: int, value_ns: float) -> None:
    """Add one value (ns) to histogram row ``row``, in bin ``bin_of_ns(value)``."""
    if value_ns > maxima[row]:
        maxima[row] = value_ns
    hist[row, bin_of_ns(value_ns)] += 1


@njit(cache=True, nogil=True)
def record_row_ns(hist: np.ndarray, maxima: np.ndarray, values_ns: np.ndarray, n: int) -> None:
    """Record ``values_ns[r]`` into row ``r`` for r < n (one tick of every stage at once).
    Negative entries mean "stage not run this tick" and are skipped."""
    for r in range(n):
        v = values_ns[r]
        if v >= 0:
            record_ns(hist, maxima, r, v)


def bin_upper_ns(b: np.ndarray | int) -> np.ndarray:
    """Upper edge of bin ``b`` in ns."""
    return MIN_NS * np.exp2((np.asarray(b, dtype=np.float64) + 1.0) / BINS_PER_OCTAVE)


def percentiles_from_hist(counts: np.ndarray, qs: tuple[float, ...], max_ns: float) -> list[float]:
    """Percentiles (ns) of one histogram row; each is the upper edge of the bin holding the
    q-quantile, capped at the exact maximum. NaN when empty."""
    total = int(counts.sum())
    if total == 0:
        return [float("nan")] * len(qs)
    cdf = np.cumsum(counts)
    out = []
    for q in qs:
        rank = max(1, math.ceil(q / 100.0 * total))
        b = int(np.searchsorted(cdf, rank))
        out.append(float(min(bin_upper_ns(b), max_ns)))
    return out


def fraction_above_from_hist(counts: np.ndarray, threshold_ns: float) -> float:
    """Fraction of a histogram row's values above ``threshold_ns``, to within one bin: the
    values in the bins wholly above the threshold's own bin (those in its bin, within ~1.1 %
    of it, are not counted). NaN when empty."""
    total = int(counts.sum())
    if total == 0:
        return float("nan")
    return float(counts[bin_of_ns(float(threshold_ns)) + 1:].sum()) / total


class LatencyStats:
    """Histograms for a fixed list of named series (stages, end-to-end, ...)."""

    QS = (50.0, 99.0, 99.9)

    def __init__(self, names: list[str]):
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.hist = np.zeros((len(names), N_BINS), dtype=np.int64)
        self.maxima = np.zeros(len(names), dtype=np.float64)

    def record(self, name: str, value_ns: float) -> None:
        record_ns(self.hist, self.maxima, self.index[name], float(value_ns))

    def reset(self) -> None:
        self.hist[:] = 0
        self.maxima[:] = 0.0

    def count(self, name: str) -> int:
        return int(self.hist[self.index[name]].sum())

    def summary_us(self, name: str, hist: np.ndarray | None = None) -> dict[str, float | int]:
        """{p50, p99, p999, max, n} in microseconds for one series (None when it is empty)."""
        i = self.index[name]
        h = self.hist if hist is None else hist
        counts = h[i]
        p50, p99, p999 = percentiles_from_hist(counts, self.QS, float(self.maxima[i]))
        n = int(counts.sum())
        mx = float(self.maxima[i]) if n else float("nan")
        return {"p50": _us(p50), "p99": _us(p99), "p999": _us(p999), "max": _us(mx), "n": n}

    def fraction_above(self, name: str, threshold_ns: float) -> float:
        """Fraction of the series' values above ``threshold_ns`` (to within one bin)."""
        return fraction_above_from_hist(self.hist[self.index[name]], threshold_ns)

    def all_summaries_us(self) -> dict[str, dict[str, float | int]]:
        return {n: self.summary_us(n) for n in self.names}

    def save_npz(self, path) -> None:
        """Write the histograms for later drawing: ``names`` (series), ``counts`` (series x
        bins, int64), ``upper_edge_ns`` (each bin's upper edge), ``max_ns`` (exact maxima).
        Written to a temporary file and renamed, so a reader never sees half a file."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, names=np.array(self.names), counts=self.hist,
                     upper_edge_ns=bin_upper_ns(np.arange(N_BINS)), max_ns=self.maxima)
        os.replace(tmp, path)


def load_hist_npz(path) -> dict[str, np.ndarray]:
    """Read what :meth:`LatencyStats.save_npz` wrote (no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in ("names", "counts", "upper_edge_ns", "max_ns")}


def _us(ns: float) -> float | None:
    """ns -> us (2 decimals); None for an empty series, so summaries stay strict JSON."""
    return round(ns / 1000.0, 2) if ns == ns else None
