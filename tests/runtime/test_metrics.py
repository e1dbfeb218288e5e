import json

import numpy as np
from hypothesis import given, settings, strategies as st

from rtsnn.runtime.metrics import (BINS_PER_OCTAVE, LatencyStats, N_BINS, fraction_above_from_hist,
                                   percentiles_from_hist, record_ns)

REL = 2 ** (1 / BINS_PER_OCTAVE) - 1  # one bin's relative width


def record_reference(hist, maxima, row, value_ns):
    """Plain-numpy reference of record_ns."""
    maxima[row] = max(maxima[row], value_ns)
    b = 0 if value_ns <= 10.0 else min(int(BINS_PER_OCTAVE * np.log2(value_ns / 10.0)), N_BINS - 1)
    hist[row, b] += 1


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1e11, allow_nan=False), min_size=1, max_size=200))
def test_record_matches_reference(values):
    h1 = np.zeros((1, N_BINS), np.int64); m1 = np.zeros(1)
    h2 = np.zeros((1, N_BINS), np.int64); m2 = np.zeros(1)
    for v in values:
        record_ns(h1, m1, 0, v)
        record_reference(h2, m2, 0, v)
    assert np.array_equal(h1, h2)
    assert m1[0] == m2[0]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_percentiles_within_one_bin_of_exact(seed):
    rng = np.random.default_rng(seed)
    values = rng.lognormal(mean=9.0, sigma=1.5, size=2000)  # ~8 us, heavy tail
    s = LatencyStats(["x"])
    for v in values:
        s.record("x", v)
    for q in (50.0, 99.0, 99.9):
        exact = np.percentile(values, q, method="inverted_cdf")
        got = percentiles_from_hist(s.hist[0], (q,), s.maxima[0])[0]
        assert exact <= got * (1 + 1e-12)
        assert got <= exact * (1 + REL) + 1e-9


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(1e3, 1e7))
def test_fraction_above_within_one_bin_of_exact(seed, threshold_ns):
    rng = np.random.default_rng(seed)
    values = rng.lognormal(mean=11.0, sigma=1.5, size=2000)
    s = LatencyStats(["x"])
    for v in values:
        s.record("x", v)
    got = s.fraction_above("x", threshold_ns)
    # between the exact fraction above the threshold's bin's top and above the threshold
    assert np.mean(values >= threshold_ns * (1 + REL)) <= got <= np.mean(values > threshold_ns)


def test_fraction_above_edges():
    assert np.isnan(fraction_above_from_hist(np.zeros(N_BINS, np.int64), 1e6))  # empty series
    s = LatencyStats(["x"])
    for v in (500e3, 500e3, 1500e3, 2500e3):  # ages of 0.5 / 1.5 / 2.5 ms against a 1 ms tick
        s.record("x", v)
    assert s.fraction_above("x", 1e6) == 0.5
    assert s.fraction_above("x", 1.0) == 1.0 and s.fraction_above("x", 1e12) == 0.0


def test_summary_reports_exact_max_and_count():
    s = LatencyStats(["a", "b"])
    for v in (1000.0, 2000.0, 50_000.0):
        s.record("a", v)
    out = s.summary_us("a")
    assert out["max"] == 50.0 and out["n"] == 3
    empty = s.summary_us("b")
    assert empty == {"p50": None, "p99": None, "p999": None, "max": None, "n": 0}
    assert json.loads(json.dumps(empty, allow_nan=False)) == empty  # strict JSON: null, never NaN
    s.reset()
    assert s.count("a") == 0


def test_json_safe_turns_non_finite_into_null():
    from rtsnn.runtime.metrics import json_safe

    got = json_safe({"a": float("nan"), "b": [1.0, float("inf"), (np.float32(2.5), np.int64(3))], "c": "x",
                     "d": None, "e": -float("inf")})
    assert got == {"a": None, "b": [1.0, None, [2.5, 3]], "c": "x", "d": None, "e": None}
    json.dumps(got, allow_nan=False)
