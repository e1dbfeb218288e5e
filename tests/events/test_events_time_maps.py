"""event_pool time maps (uint16 / uint32 relative to a moving epoch): rebasing equals the
unbounded-integer reference over long recordings, long silences and huge resync jumps."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsnn.events import kernels as K
from rtsnn.events.pooling import EventPoolEncoder
from rtsnn.events.reference import NAMES, PoolReference, rebase_time_map_reference

STAT_OF = {"in": "events_in", "out": "events_out", "bad": "dropped_bad", "ba_dropped": "dropped_background",
           "refractory_dropped": "dropped_refractory", "ts_backwards": "ts_backwards",
           "saturated": "dropped_saturated", "resyncs": "resyncs"}


@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from([np.uint16, np.uint32]), seed=st.integers(0, 10_000),
       shift=st.sampled_from([0, 1, 7, 1000, 65534, 65535, 65536, 1 << 31, (1 << 32) + 5, 1 << 45]))
def test_rebase_time_map_equals_reference(dtype, seed, shift):
    rng = np.random.default_rng(seed)
    m = rng.integers(0, np.iinfo(dtype).max, (4, 5, 2), endpoint=True).astype(dtype)
    m[0, 0] = 0
    expect = rebase_time_map_reference(m, shift)
    K.rebase_time_map(m, shift)
    np.testing.assert_array_equal(m, expect)


def _run_both(enc, ref, ticks):
    """Feed (rows, idle_ticks_before) pairs to the encoder and the reference; compare every tick."""
    out = np.zeros(enc.n_out, np.float32)
    for rows, idle in ticks:
        for _ in range(idle):
            enc.encode(np.zeros((1, 4), np.float32), 0, out)
            np.testing.assert_array_equal(out, ref.encode(np.zeros((0, 4), np.float32)))
        gap = enc._idle_ticks * enc._dt_us
        buf = np.asarray(rows, np.float32).reshape(-1, 4)
        enc.encode(np.ascontiguousarray(buf) if len(buf) else np.zeros((1, 4), np.float32), len(buf), out)
        np.testing.assert_array_equal(out, ref.encode(buf, gap_us=gap if len(buf) else 0))
    s = enc.stats()
    assert {STAT_OF[k]: v for k, v in ref.counts.items()} == {STAT_OF[k]: s[STAT_OF[k]] for k in NAMES}


def _sparse_stream(rng, n_ticks, w, h, t0, step_max_us):
    """Clustered events on a small sensor whose camera time advances up to step_max_us per tick."""
    t = t0
    ticks = []
    for _ in range(n_ticks):
        rows = []
        for _ in range(int(rng.integers(0, 12))):
            t += int(rng.integers(0, step_max_us // 8 + 1))
            rows.append((int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(0, 2)), t % K.T_MOD))
        t += int(rng.integers(0, step_max_us))
        ticks.append((rows, int(rng.integers(0, 2))))
    return ticks


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), windows=st.sampled_from([(1000, 5000), (300, 0), (0, 4000), (16383, 16383)]))
def test_uint16_maps_rebase_many_times_and_match_reference(seed, windows):
    """~20 s of camera time with steps up to 0.1 s: the 16-bit maps rebase hundreds of times."""
    refr, ba = windows
    rng = np.random.default_rng(seed)
    enc = EventPoolEncoder(6, 5, 3, 2, refractory_us=refr, ba_window_us=ba)
    assert enc._tmap.dtype == np.uint16
    ref = PoolReference(6, 5, 3, 2, True, refr, ba, 0)
    ticks = _sparse_stream(rng, 400, 6, 5, int(rng.integers(0, K.T_MOD)), 100_000)
    _run_both(enc, ref, ticks)
    assert enc.stats()["events_in"] > 0 and enc._tstate[K.TS_EPOCH] > K.T_START  # the epoch moved


def test_uint16_rebase_keeps_recent_entries_exactly_at_the_window_edge():
    """Events just inside / just outside both windows straddling a rebase."""
    enc = EventPoolEncoder(4, 4, 1, 1, polarity_channels=False, refractory_us=1000, ba_window_us=5000)
    ref = PoolReference(4, 4, 1, 1, False, 1000, 5000, 0)
    big = 65_000  # forces a rebase on the event after it
    rows = [(1, 1, 0, 0), (2, 1, 0, big), (1, 1, 0, big + 5000), (2, 2, 0, big + 5999), (2, 2, 0, big + 6000),
            (1, 2, 0, big + 6999), (1, 2, 0, big + 7000 + 65_500), (2, 2, 0, big + 7000 + 65_500 + 5000)]
    _run_both(enc, ref, [(rows, 0)])
    assert enc.stats()["events_out"] > 0 and enc.stats()["dropped_background"] > 0


def test_long_silence_resync_clears_uint16_and_uint32_maps():
    """Silences of 9 s (resync) and of ~2.8 h (tick of 100 s: a jump beyond the uint32 range)."""
    for ba, dt_s, idle in ((5000, 1e-3, 9000), (20_000, 100.0, 100)):
        enc = EventPoolEncoder(4, 4, 1, 1, polarity_channels=False, refractory_us=1000, ba_window_us=ba, dt_s=dt_s)
        assert enc._tmap.dtype == (np.uint16 if ba <= K.MAP16_MAX_WINDOW_US else np.uint32)
        ref = PoolReference(4, 4, 1, 1, False, 1000, ba, 0)
        first = [(1, 1, 0, 10), (2, 1, 0, 20), (1, 2, 0, 30)]
        after = [(2, 2, 0, 40), (1, 1, 0, 50), (2, 1, 0, 55)]  # same t_mod region, long after: neighbours stale
        _run_both(enc, ref, [(first, 0), (after, idle)])
        assert enc.stats()["resyncs"] == 1 and enc.stats()["dropped_background"] >= 2


def test_uint32_maps_for_long_windows_match_reference():
    rng = np.random.default_rng(3)
    enc = EventPoolEncoder(6, 5, 2, 2, refractory_us=20_000, ba_window_us=3_000_000)
    assert enc._tmap.dtype == np.uint32
    ref = PoolReference(6, 5, 2, 2, True, 20_000, 3_000_000, 0)
    _run_both(enc, ref, _sparse_stream(rng, 300, 6, 5, K.T_MOD - 50_000, 200_000))


def test_reset_clears_time_maps_and_epoch():
    enc = EventPoolEncoder(4, 4, 1, 1, polarity_channels=False, refractory_us=1000, ba_window_us=5000)
    out = np.zeros(1, np.float32)
    rows = np.array([(1, 1, 0, 100), (2, 1, 0, 200), (2, 1, 0, 300)], np.float32)
    enc.encode(rows, 3, out)
    first = (out.copy(), enc.stats())
    enc.reset()
    assert not enc._tmap.any() and enc._tstate.tolist() == [-1, 0, 0]
    enc.encode(rows, 3, out)
    np.testing.assert_array_equal(out, first[0])
    assert enc.stats() == first[1]
