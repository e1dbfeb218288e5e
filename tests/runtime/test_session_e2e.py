"""The per-sample e2e / input-age kernel against plain numpy."""

import numpy as np

from rtsnn.runtime.metrics import LatencyStats
from rtsnn.runtime.session import _record_e2e


def _reference(t_emit_s, in_tick_ns, timestamps):
    d = (t_emit_s - np.asarray(timestamps)) * 1e9
    return np.maximum(d, 0.0), np.maximum(d - in_tick_ns, 0.0)


def test_record_e2e_matches_numpy():
    rng = np.random.default_rng(3)
    got = LatencyStats(["e2e", "input_age"])
    want = LatencyStats(["e2e", "input_age"])
    for _ in range(200):
        n = int(rng.integers(0, 6))
        t_emit = 100.0 + rng.uniform(0, 1)
        ts = t_emit - rng.uniform(-2e-4, 5e-3, size=8)  # a few in the future: clock jitter
        in_tick_ns = float(rng.uniform(0, 4e5))
        _record_e2e(got.hist, got.maxima, 0, 1, t_emit, in_tick_ns, ts, n)
        e2e, age = _reference(t_emit, in_tick_ns, ts[:n])
        for a, b in zip(e2e, age):
            want.record("e2e", a)
            want.record("input_age", b)
    np.testing.assert_array_equal(got.hist, want.hist)
    np.testing.assert_allclose(got.maxima, want.maxima, rtol=1e-12)
    assert got.count("e2e") == got.count("input_age") > 0


def test_record_e2e_clips_negative_to_zero():
    st = LatencyStats(["e2e", "input_age"])
    ts = np.array([10.001, 9.999])  # the first stamped after the emit
    _record_e2e(st.hist, st.maxima, 0, 1, 10.0, 5e6, ts, 2)  # in-tick longer than either e2e
    assert st.count("e2e") == 2 and st.count("input_age") == 2
    assert st.summary_us("input_age")["max"] == 0.0
    assert abs(st.summary_us("e2e")["max"] - 1000.0) < 1.0
