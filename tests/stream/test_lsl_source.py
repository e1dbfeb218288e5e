"""LslSource against real LSL outlets on this machine (unique names per test).

Waits here are hang guards (generous limits for something that must happen), never bounds on
how fast it happens: how long loss detection, the resolve timeout and a pull take is measured
by scripts/bench_timing_bounds.py (check lsl_source).
"""

from __future__ import annotations

import time
import tracemalloc
import uuid

import numpy as np
import pylsl
import pytest

from conftest import LslPusher
from rtsnn.protocols import Source
from rtsnn.stream import lslraw
from rtsnn.stream.lsl_source import LslSource, StreamMismatchError, StreamNotFoundError, build_predicate

pytestmark = pytest.mark.lsl


def unique(tag="t"):
    return f"rtsnn-test-{tag}-{uuid.uuid4().hex[:10]}"


def make_outlet(name, n_ch, fmt="float32", srate=1000.0, labels=None, type_="EEG"):
    info = pylsl.StreamInfo(name, type_, n_ch, srate, fmt, name + "-sid")
    if labels:
        chans = info.desc().append_child("channels")
        for label in labels:
            chans.append_child("channel").append_child_value("label", label)
    return pylsl.StreamOutlet(info)


def buffers(n_ch, rows=1024):
    return np.zeros((rows, n_ch), np.float32), np.zeros(rows, np.float64)


def pull_until(src, n_want, n_ch, timeout_s=10.0, rows=1024):
    """Pull (every ~1 ms) until n_want samples have come; returns (samples, timestamps)."""
    data, ts = buffers(n_ch, rows)
    got_x, got_t = [], []
    deadline = time.monotonic() + timeout_s
    while sum(len(t) for t in got_t) < n_want and time.monotonic() < deadline:
        n = src.pull(data, ts)
        got_x.append(data[:n].copy())
        got_t.append(ts[:n].copy())
        time.sleep(0.001)
    return np.concatenate(got_x), np.concatenate(got_t)


@pytest.fixture
def opened():
    sources = []

    def _open(**kw):
        src = LslSource(**{"resolve_timeout_s": 2.0, **kw})
        src.open()
        sources.append(src)
        return src

    yield _open
    for s in sources:
        s.close()


def test_predicate_and_config_validation():
    assert build_predicate("a", "b") == "name='a' and type='b'"
    assert build_predicate(source_id="s") == "source_id='s'"
    with pytest.raises(ValueError, match="at least one of name, type, source_id"):
        LslSource(n_channels=2)
    with pytest.raises(ValueError, match="nan_policy.*'mean'"):
        LslSource(name="x", n_channels=2, nan_policy="mean")
    with pytest.raises(ValueError, match="channel_format.*'string'"):
        LslSource(name="x", n_channels=2, channel_format="string")
    with pytest.raises(ValueError, match="n_channels.*0"):
        LslSource(name="x", n_channels=0)


def test_receives_samples_labels_rate_and_local_timestamps(opened):
    name = unique()
    outlet = make_outlet(name, 3, labels=["c3", "cz", "c4"])
    src = opened(name=name, type="EEG", n_channels=3)
    assert isinstance(src, Source)
    assert src.channel_labels == ["c3", "cz", "c4"] and src.nominal_srate_hz == 1000.0
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    t_before = pylsl.local_clock()
    outlet.push_chunk(x)
    t_after = pylsl.local_clock()
    data, ts = pull_until(src, 20, 3)
    np.testing.assert_array_equal(data, x)
    # 1 kHz stamps on this machine's LSL clock: the newest stamped when pushed (the loopback
    # clock offset, ~0, is added), the others back-dated by one sample interval each
    np.testing.assert_allclose(np.diff(ts), 1e-3, atol=1e-6)
    assert t_before - 1e-3 <= ts[-1] <= t_after + 1e-3, (ts[-1] - t_before, t_after - t_before)
    st = src.stats()
    assert st["samples"] == 20 and st["connected"] and st["losses"] == 0
    assert src.connected and not src.in_gap


def test_pull_respects_the_buffer_length(opened):
    name = unique()
    outlet = make_outlet(name, 2)
    src = opened(source_id=name + "-sid", n_channels=2)
    outlet.push_chunk(np.ones((10, 2), np.float32))
    data, ts = buffers(2, rows=4)
    counts = []
    deadline = time.monotonic() + 10.0  # hang guard
    while sum(counts) < 10 and time.monotonic() < deadline:
        n = src.pull(data, ts)
        if n:
            counts.append(n)
        time.sleep(0.001)
    assert sum(counts) == 10 and max(counts) == 4, counts  # never more than the 4 rows given


def test_channel_count_mismatch_refused_with_both_values():
    name = unique()
    outlet = make_outlet(name, 8)  # noqa: F841 - keeps the stream alive
    src = LslSource(name=name, n_channels=96, resolve_timeout_s=2.0)
    with pytest.raises(StreamMismatchError) as err:
        src.open()
    assert f"stream '{name}' has 8 channels" in str(err.value) and "config expects 96" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_channel_format_mismatch_refused():
    name = unique()
    outlet = make_outlet(name, 4, fmt="double64")  # noqa: F841
    src = LslSource(name=name, n_channels=4, channel_format="float32", resolve_timeout_s=2.0)
    with pytest.raises(StreamMismatchError, match="'double64'.*config expects 'float32'"):
        src.open()


def test_int16_stream_delivered_as_float32(opened):
    name = unique()
    outlet = make_outlet(name, 2, fmt="int16")
    src = opened(name=name, n_channels=2, channel_format="int16")
    outlet.push_sample([-3, 7])
    data, _ = pull_until(src, 1, 2)
    np.testing.assert_array_equal(data, [[-3.0, 7.0]])


def test_resolve_timeout_names_the_predicate():
    name = unique("absent")
    src = LslSource(name=name, type="EEG", n_channels=2, resolve_timeout_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(StreamNotFoundError) as err:
        src.open()
    assert time.monotonic() - t0 >= 0.3  # it searched for the whole timeout before giving up
    assert f"name='{name}' and type='EEG'" in str(err.value) and "0.3 s" in str(err.value)


@pytest.mark.parametrize("policy, expected, repaired, dropped", [
    ("hold", [[1, 2], [1, 4], [5, 4]], 2, 0),
    ("zero", [[1, 2], [0, 4], [5, 0]], 2, 0),
    ("drop", [[1, 2]], 0, 2),
])
def test_nonfinite_samples_repaired_per_policy(opened, policy, expected, repaired, dropped):
    name = unique()
    outlet = make_outlet(name, 2)
    src = opened(name=name, n_channels=2, nan_policy=policy)
    for row in ([1, 2], [np.nan, 4], [5, np.inf]):
        outlet.push_sample(row)
    # pull until all three were taken (delivered, or dropped: a dropped one never shows up)
    data, ts = buffers(2)
    got = []
    deadline = time.monotonic() + 10.0  # hang guard
    while sum(src.stats()[k] for k in ("samples", "dropped_samples")) < 3 and time.monotonic() < deadline:
        n = src.pull(data, ts)
        got.append(data[:n].copy())
        time.sleep(0.001)
    np.testing.assert_array_equal(np.concatenate(got), np.array(expected, np.float32))
    st = src.stats()
    assert st["repaired_values"] == repaired and st["dropped_samples"] == dropped


def test_timestamps_backwards_and_jumps_counted_and_handled(opened):
    name = unique()
    outlet = make_outlet(name, 1, srate=0.0)
    src = opened(name=name, n_channels=1, max_jump_s=1.0)
    now = pylsl.local_clock()
    stamps = [now - 0.5, now - 0.4, now - 0.45, now - 0.41, now + 0.7, now + 0.701]
    for i, t in enumerate(stamps):
        outlet.push_sample([float(i)], t)
    _, ts = pull_until(src, len(stamps), 1)
    assert len(ts) == len(stamps)
    np.testing.assert_allclose(ts, [stamps[0], stamps[1], stamps[1], stamps[1], stamps[4], stamps[5]],
                               atol=1e-3)  # the clock offset (~0 on loopback) is added
    assert np.all(np.diff(ts) >= 0)
    st = src.stats()
    assert st["ts_backwards"] == 2 and st["ts_jumps"] == 1


def test_backlog_older_than_max_backlog_dropped_newest_kept(opened):
    name = unique()
    outlet = make_outlet(name, 1, srate=0.0)
    src = opened(name=name, n_channels=1, max_backlog_s=0.5)
    now = pylsl.local_clock()
    for i in range(30):  # a consumer 2 s behind: these are stale
        outlet.push_sample([float(i)], now - 2.0 + i * 0.001)
    for i in range(5):
        outlet.push_sample([100.0 + i], now + i * 0.001)
    data, _ = pull_until(src, 5, 1)
    np.testing.assert_array_equal(data[:, 0], 100.0 + np.arange(5))
    assert src.stats()["dropped_samples"] == 30


Pusher = LslPusher  # pushes [1, 2] every ~2 ms into whatever outlet it holds


def wait_for(cond, timeout_s, poll):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        poll()
        if cond():
            return time.monotonic() - t0
        time.sleep(0.001)
    return None


def test_outlet_gone_detected_then_recreated_and_reconnected(opened):
    name = unique()
    pusher = Pusher(make_outlet(name, 2))
    pusher.start()
    try:
        src = opened(name=name, n_channels=2, loss_timeout_s=0.3)
        data, ts = buffers(2)
        assert len(pull_until(src, 20, 2)[1]) >= 20
        pusher.outlet = None  # the only reference: the outlet is destroyed, the stream vanishes
        took = wait_for(lambda: not src.connected, 10.0, lambda: src.pull(data, ts))
        assert took is not None, "loss never detected"
        assert src.in_gap and src.stats()["losses"] == 1
        for _ in range(50):
            assert src.pull(data, ts) == 0
        time.sleep(0.3)
        assert src.pull(data, ts) == 0  # still gone: the reconnect thread finds nothing
        pusher.outlet = make_outlet(name, 2)  # same name and source_id, a new outlet
        took = wait_for(lambda: not src.in_gap, 10.0, lambda: src.pull(data, ts))
        assert took is not None, "did not reconnect to the re-created stream"
        assert len(pull_until(src, 20, 2)[1]) >= 20
        st = src.stats()
        assert st["losses"] == 1 and st["reconnects"] == 1 and st["connected"]
    finally:
        pusher.stop()


def test_silent_stream_detected_by_watchdog_and_recovers(opened):
    name = unique()
    outlet = make_outlet(name, 2)
    t_open = pylsl.local_clock()
    src = opened(name=name, n_channels=2, loss_timeout_s=0.3)
    data, ts = buffers(2)
    took = wait_for(lambda: not src.connected, 10.0, lambda: src.pull(data, ts))
    assert took is not None, "silence never detected"
    # never before loss_timeout_s of silence: the watchdog counts from when open() attached
    assert pylsl.local_clock() - t_open >= 0.3
    assert src.in_gap and src.stats()["losses"] == 1
    pusher = Pusher(outlet)  # the same outlet starts sending again
    pusher.start()
    try:
        assert wait_for(lambda: not src.in_gap, 10.0, lambda: src.pull(data, ts)) is not None
        assert len(pull_until(src, 10, 2)[1]) >= 10
        st = src.stats()
        assert st["losses"] == 1 and st["reconnects"] == 1
    finally:
        pusher.stop()


def test_no_recover_stays_lost(opened):
    name = unique()
    outlet = make_outlet(name, 2)
    src = opened(name=name, n_channels=2, loss_timeout_s=0.2, recover=False)
    data, ts = buffers(2)
    assert wait_for(lambda: not src.connected, 10.0, lambda: src.pull(data, ts)) is not None
    outlet.push_sample([1.0, 2.0])
    time.sleep(0.5)
    assert src.pull(data, ts) == 0 and not src.connected and src.stats()["reconnects"] == 0


def test_pull_does_not_allocate(opened):
    name = unique()
    outlet = make_outlet(name, 64)
    src = opened(name=name, n_channels=64)
    pusher = lslraw.SamplePusher(outlet.obj, 64)
    data, ts = buffers(64)
    for _ in range(20):  # warm every path
        pusher.push(0.0)
        src.pull(data, ts)
    time.sleep(0.01)
    src.pull(data, ts)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        got = 0
        for _ in range(500):
            pusher.push(0.0)
            got += src.pull(data, ts)
        deadline = time.monotonic() + 2.0  # a loaded machine: the samples may not have arrived yet
        while got == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
            got += src.pull(data, ts)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got > 0
    # nothing retained, and only ctypes' own transient argument objects (~600 B, freed at
    # once) at any moment; pylsl's pull_chunk would allocate a 256 kB chunk array per call
    assert peak - before < 1000 and after - before < 200, (peak - before, after - before)


def test_reappearing_stream_with_wrong_shape_is_refused_until_right(opened):
    name = unique()
    pusher = Pusher(make_outlet(name, 2))
    pusher.start()
    try:
        src = opened(name=name, n_channels=2, loss_timeout_s=0.3)
        data, ts = buffers(2)
        assert len(pull_until(src, 5, 2)[1]) >= 5
        pusher.outlet = None
        assert wait_for(lambda: not src.connected, 10.0, lambda: src.pull(data, ts)) is not None
        wrong = make_outlet(name, 3)  # same name, 3 channels: must not be attached
        assert wait_for(lambda: src.stats()["mismatches"] >= 1, 10.0, lambda: src.pull(data, ts)) is not None
        assert not src.connected and src.pull(data, ts) == 0
        del wrong
        pusher.outlet = make_outlet(name, 2)
        assert wait_for(lambda: not src.in_gap, 10.0, lambda: src.pull(data, ts)) is not None
        st = src.stats()
        assert st["losses"] == 1 and st["reconnects"] == 1
    finally:
        pusher.stop()


def _impostor_outlet(name, n_ch):
    """Same name and type as the real stream, another source_id (another device or host)."""
    return pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", n_ch, 1000.0, "float32", name + "-impostor"))


def test_a_stream_with_the_same_name_but_another_identity_is_refused_after_a_loss(opened):
    name = unique()
    with Pusher(make_outlet(name, 2)) as pusher, Pusher(None) as impostor:
        src = opened(name=name, n_channels=2, loss_timeout_s=0.3)
        assert src.stats()["pinned"] == {"source_id": name + "-sid", "host": src.resolved["host"]}
        data, ts = buffers(2)
        assert len(pull_until(src, 5, 2)[1]) >= 5
        pusher.outlet = None  # the real outlet goes away
        assert wait_for(lambda: not src.connected, 10.0, lambda: src.pull(data, ts)) is not None
        impostor.outlet = _impostor_outlet(name, 2)
        assert wait_for(lambda: src.stats()["impostors_refused"] >= 1, 10.0,
                        lambda: src.pull(data, ts)) is not None
        time.sleep(0.5)  # several more resolve rounds: still refused, counted once
        assert src.pull(data, ts) == 0 and not src.connected
        assert src.stats()["impostors_refused"] == 1
        events = src.take_events()
        assert len(events) == 1 and "another identity" in events[0][0] and "-impostor" in events[0][0]
        assert src.take_events() == []
        pusher.outlet = make_outlet(name, 2)  # the real one comes back: attached
        assert wait_for(lambda: not src.in_gap, 10.0, lambda: src.pull(data, ts)) is not None
        assert src.stats()["reconnects"] == 1


def test_pin_none_takes_any_matching_stream(opened):
    name = unique()
    with Pusher(make_outlet(name, 2)) as pusher, Pusher(None) as impostor:
        src = opened(name=name, n_channels=2, loss_timeout_s=0.3, pin="none")
        data, ts = buffers(2)
        assert len(pull_until(src, 5, 2)[1]) >= 5
        pusher.outlet = None
        assert wait_for(lambda: not src.connected, 10.0, lambda: src.pull(data, ts)) is not None
        impostor.outlet = _impostor_outlet(name, 2)
        assert wait_for(lambda: not src.in_gap, 10.0, lambda: src.pull(data, ts)) is not None
        assert src.stats()["impostors_refused"] == 0


def test_bad_pin_refused():
    with pytest.raises(ValueError, match="pin must be one of identity, none"):
        LslSource(name="x", n_channels=1, pin="maybe")


def test_an_empty_pull_counts_an_error_or_loses_the_inlet_after_the_silence():
    """The no-sample branch both LSL sources share (``_nothing_pulled``): liblsl's lost error
    loses the inlet at once, another error is only counted, and silence loses it only once it
    is longer than ``loss_timeout_s`` since the last sample (or since attaching, in a gap)."""

    class FakeConn:
        uid = "fake-uid"
        attached_at = 100.0

    def attached(src):
        conn = FakeConn()
        src._conn, src.connected, src.in_gap, src._last_sample_s = conn, True, False, 10.0
        return conn

    src = LslSource(name=unique(), n_channels=2, loss_timeout_s=0.5)
    conn = attached(src)
    src._nothing_pulled(conn, 0, 10.4)  # silent 0.4 s < 0.5 s
    assert src.connected and src.errors == 0 and src.losses == 0
    src._nothing_pulled(conn, -1, 10.4)  # an error other than LSL_LOST_ERROR: counted only
    assert src.connected and src.errors == 1 and src.losses == 0
    src._nothing_pulled(conn, 0, 10.6)  # silent 0.6 s > 0.5 s: lost
    assert not src.connected and src.in_gap and src.losses == 1 and src._lost_uid == "fake-uid"
    assert not src._lost_by_liblsl
    conn = attached(src)
    src._nothing_pulled(conn, lslraw.LSL_LOST_ERROR, 10.0)
    assert not src.connected and src.losses == 2 and src._lost_by_liblsl and src.errors == 1
    conn = attached(src)
    src.in_gap = True  # re-attached in a gap: the silence counts from attached_at (100 s)
    src._nothing_pulled(conn, 0, 100.4)
    assert src.connected and src.losses == 2
    src._nothing_pulled(conn, 0, 100.6)
    assert not src.connected and src.losses == 2  # still the same gap: not a new loss
