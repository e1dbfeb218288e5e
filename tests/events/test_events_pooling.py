"""event_pool encoder: kernel == reference (hypothesis), filter semantics, bad input, conversions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsnn.encode import EncoderInputError
from rtsnn.events import kernels as K
from rtsnn.events.format import EVENT_DTYPE
from rtsnn.events.pooling import EventPoolEncoder
from rtsnn.events.reference import NAMES, PoolReference, events_to_rows_reference

STAT_OF = {"in": "events_in", "out": "events_out", "bad": "dropped_bad", "ba_dropped": "dropped_background",
           "refractory_dropped": "dropped_refractory", "ts_backwards": "ts_backwards",
           "saturated": "dropped_saturated", "resyncs": "resyncs"}


def _rows(events):
    return np.array(events, np.float32).reshape(-1, 4)


def _encode(enc, rows):
    buf = np.zeros((max(len(rows), 1), 4), np.float32)
    if len(rows):
        buf[:len(rows)] = rows
    out = np.full(enc.n_out, -1.0, np.float32)
    enc.encode(buf, len(rows), out)
    return out


row = st.tuples(st.sampled_from([0.0, 1.0, 2.0, 5.0, 6.0, 7.0, 9.0, -1.0, 2.5, np.nan]),
                st.sampled_from([0.0, 1.0, 3.0, 4.0, 5.0, 8.0, np.inf]),
                st.sampled_from([0.0, 1.0, 1.0, 0.0, 2.0]),
                st.integers(0, 3000))


@settings(max_examples=60, deadline=None)
@given(ticks=st.lists(st.tuples(st.lists(row, max_size=25), st.integers(0, 3)), min_size=1, max_size=8),
       grid=st.sampled_from([(1, 1), (3, 2), (8, 6)]), pol=st.booleans(), refr=st.sampled_from([0, 50, 400]),
       ba=st.sampled_from([0, 100, 1000]), cap=st.sampled_from([0, 2]), start=st.integers(0, K.T_MOD - 1))
def test_kernel_equals_reference(ticks, grid, pol, refr, ba, cap, start):
    enc = EventPoolEncoder(8, 6, grid[0], grid[1], polarity_channels=pol, refractory_us=refr, ba_window_us=ba,
                           max_count_per_tick=cap)
    ref = PoolReference(8, 6, grid[0], grid[1], pol, refr, ba, cap)
    t = start
    for rows, idle in ticks:
        arr = []
        for x, y, p, dt in rows:
            t = (t + dt) % K.T_MOD  # increasing camera time, wrapping like the real column
            arr.append((x, y, p, float(t)))
        for _ in range(idle):  # empty ticks in between
            np.testing.assert_array_equal(_encode(enc, []), ref.encode(_rows([])))
        gap = enc._idle_ticks * enc._dt_us
        got = _encode(enc, _rows(arr))
        np.testing.assert_array_equal(got, ref.encode(_rows(arr), gap_us=gap if arr else 0))
    st_ = enc.stats()
    assert {STAT_OF[k]: v for k, v in ref.counts.items()} == {STAT_OF[k]: st_[STAT_OF[k]] for k in NAMES}


def test_channel_layout_and_counts():
    enc = EventPoolEncoder(320, 240, 4, 3)
    assert enc.n_out == 4 * 3 * 2
    out = _encode(enc, _rows([(0, 0, 1, 10), (319, 239, 0, 11), (319, 239, 0, 12), (80, 80, 1, 13)]))
    expect = np.zeros(24, np.float32)
    expect[enc.channel_of(0, 0, 1)] += 1
    expect[enc.channel_of(319, 239, 0)] += 2
    expect[enc.channel_of(80, 80, 1)] += 1
    np.testing.assert_array_equal(out, expect)
    assert enc.channel_of(0, 0, 1) == 12 and enc.channel_of(319, 239, 0) == 11 and enc.channel_of(80, 80, 1) == 12 + 4 + 1


def test_background_filter_drops_isolated_and_keeps_supported_events():
    enc = EventPoolEncoder(10, 10, 1, 1, polarity_channels=False, ba_window_us=1000)
    out = _encode(enc, _rows([(5, 5, 1, 100), (6, 5, 1, 200), (0, 0, 1, 3000), (5, 5, 1, 2500)]))
    # (5,5)@100: no neighbour -> dropped; (6,5)@200: neighbour (5,5)@100 -> kept;
    # (0,0)@3000: isolated -> dropped; (5,5)@2500 arrives after (0,0)@3000 in the stream: backwards
    # step clamped to 3000, neighbour (6,5)@200 too old -> dropped
    assert out[0] == 1
    s = enc.stats()
    assert s["dropped_background"] == 3 and s["ts_backwards"] == 1


def test_refractory_period():
    enc = EventPoolEncoder(4, 4, 1, 1, polarity_channels=False, refractory_us=500)
    out = _encode(enc, _rows([(1, 1, 0, 0), (1, 1, 1, 100), (1, 1, 0, 499), (1, 1, 0, 500), (2, 1, 0, 501)]))
    assert out[0] == 3 and enc.stats()["dropped_refractory"] == 2


def test_time_wraps_are_unwrapped_and_long_silence_resyncs():
    enc = EventPoolEncoder(4, 4, 1, 1, polarity_channels=False, refractory_us=1000, dt_s=1e-3)
    top = K.T_MOD - 100
    out = _encode(enc, _rows([(1, 1, 0, top), (1, 1, 0, 500)]))  # 600 us later across the wrap
    assert out[0] == 1 and enc.stats()["dropped_refractory"] == 1 and enc.stats()["ts_backwards"] == 0
    for _ in range(9000):  # 9 s of silence by the tick clock
        _encode(enc, [])
    out = _encode(enc, _rows([(1, 1, 0, 900)]))  # same t_mod region, but 9 s later: not refractory
    assert out[0] == 1 and enc.stats()["resyncs"] == 1


def test_bad_rows_are_counted_not_raised():
    enc = EventPoolEncoder(8, 8, 2, 2)
    out = _encode(enc, _rows([(np.nan, 1, 0, 1), (1, 1, 0.5, 2), (8, 1, 0, 3), (1, -1, 1, 4), (1.5, 1, 1, 5),
                              (1, 1, 1, float(K.T_MOD)), (1, 1, 1, 6)]))
    assert out.sum() == 1 and enc.stats()["dropped_bad"] == 6


def test_constructor_and_call_errors():
    with pytest.raises(ValueError, match="finer than the sensor"):
        EventPoolEncoder(10, 10, 20, 5)
    with pytest.raises(ValueError, match="refractory_us"):
        EventPoolEncoder(10, 10, 2, 2, refractory_us=-1)
    with pytest.raises(ValueError, match="ba_window_us must be <"):
        EventPoolEncoder(10, 10, 2, 2, ba_window_us=10_000_000)
    with pytest.raises(ValueError, match="n_channels"):
        EventPoolEncoder(10, 10, 2, 2, n_channels=3)
    enc = EventPoolEncoder(10, 10, 2, 2)
    with pytest.raises(EncoderInputError, match="channels"):
        enc.encode(np.zeros((4, 3), np.float32), 1, np.zeros(enc.n_out, np.float32))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 50), offset=st.integers(0, 1 << 26), speed=st.sampled_from([0.5, 1.0, 3.0]),
       seed=st.integers(0, 1000))
def test_events_to_rows_equals_reference(n, offset, speed, seed):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 1 << 40, n))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 1280, n), rng.integers(0, 720, n), rng.integers(0, 2, n)
    rows = np.zeros((n, 4), np.float32)
    ts = np.zeros(n)
    K.events_to_rows(ev["t"].copy(), ev["x"].copy(), ev["y"].copy(), ev["p"].copy(), 0, n, offset, int(ev["t"][0]),
                     12.5, 1.0 / speed, rows, ts)
    r_rows, r_ts = events_to_rows_reference(ev, offset, int(ev["t"][0]), 12.5, speed)
    np.testing.assert_array_equal(rows, r_rows)
    np.testing.assert_array_equal(ts, r_ts)


def test_wire_to_rows_reduces_time_modulo():
    raw = np.array([[3, 4, 1, (1 << 31) - 1], [5, 6, 0, 17]], np.int32)
    out = np.zeros((2, 4), np.float32)
    ts = np.zeros(2)
    K.wire_to_rows(raw, np.array([1.0, 2.0]), 2, 0.5, out, ts)
    np.testing.assert_array_equal(out, [[3, 4, 1, K.T_MOD - 1], [5, 6, 0, 17]])
    np.testing.assert_array_equal(ts, [1.5, 2.5])
