"""The per-chunk repairs: kernel == numpy reference, and each repair on hand-made input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsnn.stream.repair import (DROPPED_BACKLOG, DROPPED_NONFINITE, POLICY_DROP, POLICY_HOLD, POLICY_ZERO,
                                 REPAIRED, SAMPLES, TS_BACKWARDS, TS_JUMPS, new_counters, repair_chunk,
                                 repair_chunk_reference)


class State:
    def __init__(self, n_ch, max_n):
        self.last_good = np.zeros(n_ch, np.float32)
        self.prev_ts = np.full(1, np.nan)
        self.counters = new_counters()
        self.out = np.full((max_n, n_ch), -999.0, np.float32)
        self.out_ts = np.full(max_n, -999.0)

    def run(self, fn, raw, ts, offset_s, now_s, backlog_s, jump_s, policy):
        k = fn(raw, ts, len(ts), offset_s, now_s, backlog_s, jump_s, policy, self.last_good, self.prev_ts,
               self.out, self.out_ts, self.counters)
        return k, self.out[:k].copy(), self.out_ts[:k].copy()


@st.composite
def chunks(draw):
    n_ch = draw(st.integers(1, 5))
    n = draw(st.integers(0, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    raw = rng.normal(size=(n, n_ch)).astype(np.float32)
    bad = rng.random((n, n_ch)) < draw(st.sampled_from([0.0, 0.1, 0.5]))
    raw[bad] = rng.choice(np.array([np.nan, np.inf, -np.inf], np.float32), size=int(bad.sum()))
    steps = rng.choice([0.001, -0.002, 0.0, 1.5, -3.0], size=n, p=[0.7, 0.1, 0.1, 0.05, 0.05])
    ts = 100.0 + np.cumsum(steps)
    if n and draw(st.booleans()):
        ts[rng.integers(0, n)] = np.nan
    return raw, ts


@settings(max_examples=150, deadline=None)
@given(chunks(), chunks(), st.sampled_from([POLICY_HOLD, POLICY_ZERO, POLICY_DROP]),
       st.sampled_from([np.inf, 1.0, 0.01]), st.sampled_from([0.0, 0.5, 1.0]), st.floats(-1.0, 1.0))
def test_kernel_matches_reference(c1, c2, policy, backlog_s, jump_s, offset_s):
    n_ch = c1[0].shape[1]
    raw2 = np.resize(c2[0], (c2[0].shape[0], n_ch)).astype(np.float32)
    a, b = State(n_ch, 64), State(n_ch, 64)
    for raw, ts in ((c1[0], c1[1]), (raw2, c2[1])):
        now_s = float(np.nanmax(ts)) + 0.005 if len(ts) and np.isfinite(ts).any() else 100.0
        ka, oa, ta = a.run(repair_chunk, raw, ts, offset_s, now_s, backlog_s, jump_s, policy)
        kb, ob, tb = b.run(repair_chunk_reference, raw, ts, offset_s, now_s, backlog_s, jump_s, policy)
        assert ka == kb
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ta, tb)
        np.testing.assert_array_equal(a.counters, b.counters)
        np.testing.assert_array_equal(a.last_good, b.last_good)
        np.testing.assert_array_equal(a.prev_ts, b.prev_ts)
        assert np.all(np.isfinite(oa)) and np.all(np.diff(ta) >= 0)


NAN, INF = np.float32(np.nan), np.float32(np.inf)
RAW = np.array([[1, 2, 3], [NAN, 5, INF], [NAN, NAN, 9]], np.float32)
TS = np.array([10.0, 10.001, 10.002])


@pytest.mark.parametrize("fn", [repair_chunk, repair_chunk_reference])
@pytest.mark.parametrize("policy, expected, repaired, dropped", [
    (POLICY_HOLD, [[1, 2, 3], [1, 5, 3], [1, 5, 9]], 4, 0),
    (POLICY_ZERO, [[1, 2, 3], [0, 5, 0], [0, 0, 9]], 4, 0),
    (POLICY_DROP, [[1, 2, 3]], 0, 2),
])
def test_nonfinite_policies(fn, policy, expected, repaired, dropped):
    s = State(3, 8)
    k, out, ts = s.run(fn, RAW, TS, 0.0, 10.01, 1.0, 1.0, policy)
    np.testing.assert_array_equal(out, np.array(expected, np.float32))
    assert s.counters[REPAIRED] == repaired and s.counters[DROPPED_NONFINITE] == dropped
    assert s.counters[SAMPLES] == k == len(expected)


@pytest.mark.parametrize("fn", [repair_chunk, repair_chunk_reference])
def test_hold_carries_last_good_across_chunks(fn):
    s = State(2, 8)
    s.run(fn, np.array([[4, 6]], np.float32), np.array([1.0]), 0.0, 1.0, np.inf, 1.0, POLICY_HOLD)
    _, out, _ = s.run(fn, np.array([[NAN, 7]], np.float32), np.array([1.001]), 0.0, 1.0, np.inf, 1.0,
                      POLICY_HOLD)
    np.testing.assert_array_equal(out, [[4, 7]])


@pytest.mark.parametrize("fn", [repair_chunk, repair_chunk_reference])
def test_timestamps_backwards_repaired_and_jumps_kept(fn):
    s = State(1, 8)
    ts = np.array([5.0, 5.001, 4.9, 4.95, 5.002, 7.0, 7.001])
    k, _, out_ts = s.run(fn, np.zeros((7, 1), np.float32), ts, 0.0, 7.0, np.inf, 1.0, POLICY_HOLD)
    np.testing.assert_array_equal(out_ts, [5.0, 5.001, 5.001, 5.001, 5.002, 7.0, 7.001])
    assert s.counters[TS_BACKWARDS] == 2 and s.counters[TS_JUMPS] == 1 and k == 7
    # the state carries over: a next chunk earlier than 7.001 is repaired too
    _, _, out_ts = s.run(fn, np.zeros((1, 1), np.float32), np.array([6.0]), 0.0, 7.0, np.inf, 1.0, POLICY_HOLD)
    assert out_ts[0] == 7.001 and s.counters[TS_BACKWARDS] == 3


@pytest.mark.parametrize("fn", [repair_chunk, repair_chunk_reference])
def test_backlog_drops_old_keeps_newest_and_applies_offset(fn):
    s = State(1, 8)
    raw = np.arange(5, dtype=np.float32)[:, None]
    ts = np.array([1.0, 1.5, 2.2, 2.5, 2.9])
    # offset +0.1: corrected times 1.1 1.6 2.3 2.6 3.0; now 3.0, backlog 1 s -> keep >= 2.0
    k, out, out_ts = s.run(fn, raw, ts, 0.1, 3.0, 1.0, 1.0, POLICY_HOLD)
    assert k == 3 and s.counters[DROPPED_BACKLOG] == 2
    np.testing.assert_array_equal(out[:, 0], [2, 3, 4])
    np.testing.assert_allclose(out_ts, [2.3, 2.6, 3.0])


def test_kernel_rejects_wrong_output_width():
    s = State(3, 8)
    with pytest.raises(ValueError, match="channel count"):
        repair_chunk(RAW, TS, 3, 0.0, 10.0, 1.0, 1.0, POLICY_HOLD, s.last_good, s.prev_ts,
                     np.zeros((8, 2), np.float32), s.out_ts, s.counters)
