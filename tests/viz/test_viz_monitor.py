"""The monitor channel without Qt: packing, the overwrite ring, bad input, and the LSL path
from a session-shaped feeder to the dashboard's client buffers."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsnn.runtime.monitor import (MonitorTap, SessionMonitor, _jsonable, hist_bin_edges_ns, pack_raster,
                               raster_words, unpack_raster)
from viz_fake_session import FakeSession, poll_for


@settings(max_examples=60, deadline=None)
@given(n_rows=st.integers(0, 40), n_neurons=st.integers(1, 300), seed=st.integers(0, 2**31 - 1))
def test_pack_unpack_roundtrip(n_rows, n_neurons, seed):
    z = (np.random.default_rng(seed).random((n_rows, n_neurons)) < 0.3).astype(np.uint8)
    words = pack_raster(z, raster_words(n_neurons))
    assert words.dtype == np.int32 and words.shape == (n_rows, raster_words(n_neurons))
    np.testing.assert_array_equal(unpack_raster(words, n_neurons), z)


def test_pack_bit_order_is_documented_order():
    z = np.zeros((1, 40), np.uint8)
    z[0, 0] = z[0, 9] = z[0, 33] = 1
    w = pack_raster(z, raster_words(40)).view(np.uint8)[0]
    assert w[0] == 0b1 and w[1] == 0b10 and w[4] == 0b10  # bit i%8 of byte i//8


def _tap(n_rec=16, n_out=2, cap=64):
    tap = MonitorTap(n_rec, n_out, capacity_ticks=cap)
    z = np.zeros(n_rec, np.float32)
    tgt = np.zeros(n_out, np.float32)
    tap.bind(z, tgt)
    return tap, z, tgt


def test_tap_copies_each_tick_and_reader_gets_rows_in_order():
    tap, z, tgt = _tap()
    y = np.zeros(2, np.float32)
    for k in range(10):
        z[:] = 0
        z[k] = 1
        y[:] = (k, -k)
        tgt[:] = (2 * k, 3 * k)
        tap.emit(y, 0.0)
    first, head, zr, yt = tap.read_since(0)
    assert (first, head) == (0, 10)
    np.testing.assert_array_equal(zr[:, :10], np.eye(10, dtype=np.uint8))
    np.testing.assert_array_equal(yt[:, 0], np.arange(10))
    np.testing.assert_array_equal(yt[:, 3], 3 * np.arange(10))
    assert tap.read_since(10)[2].shape[0] == 0


def test_tap_overwrites_oldest_and_reader_counts_what_it_lost():
    tap, z, _ = _tap(cap=64)
    y = np.zeros(2, np.float32)
    for k in range(200):
        y[0] = k
        tap.emit(y, 0.0)
    first, head, _, yt = tap.read_since(0)
    assert head == 200
    assert first == 200 - 64 + 64 // 8  # keeps a margin from the writer
    np.testing.assert_array_equal(yt[:, 0], np.arange(first, 200))


def _peak_alloc(fn, *args) -> int:
    for _ in range(10):
        fn(*args)
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    for _ in range(5000):
        fn(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - base


def test_tap_emit_allocates_nothing_beyond_its_index():
    tap, z, _ = _tap(n_rec=256, cap=1024)
    y = np.ones(2, np.float32)

    class Control:  # the same Python int work as emit, without the copies
        head = 0

        def emit(self, values, t_source):
            i = self.head & 1023  # noqa: F841
            self.head += 1

    control = _peak_alloc(Control().emit, y, 0.0)
    used = _peak_alloc(tap.emit, y, 0.0)
    # one temporary numpy view per tick (e.g. ``row[:] = z``) adds ~64 bytes of peak
    assert used <= control + 32, f"MonitorTap.emit peak {used} B vs {control} B for the index alone"


@pytest.mark.parametrize("kw, match", [
    (dict(n_rec=8, n_out=0), "n_out >= 1"),
    (dict(n_rec=-1, n_out=2), "n_rec >= 0"),
    (dict(n_rec=8, n_out=2, capacity_ticks=100.5), "an integer >= 64"),
    (dict(n_rec=8, n_out=2, capacity_ticks=32), "an integer >= 64"),
])
def test_tap_bad_construction(kw, match):
    with pytest.raises(ValueError, match=match):
        MonitorTap(**kw)


def test_tap_bind_checks_shapes():
    tap = MonitorTap(16, 2)
    with pytest.raises(ValueError, match="spikes must be a 1-D view with >= 16"):
        tap.bind(np.zeros(8, np.float32), None)
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        tap.bind(None, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="3 output labels for n_out=2"):
        tap.open(["a", "b", "c"], ["", "", ""])


@pytest.mark.parametrize("kw, match", [
    (dict(session_name=""), "session_name"),
    (dict(dt_s=0.0), "dt_s must be > 0"),
    (dict(output_decimation=0), "output_decimation"),
    (dict(status_hz=0.0), "status_hz"),
    (dict(output_labels=["only-one"]), "1 output_labels for n_out=2"),
])
def test_session_monitor_bad_arguments(kw, match):
    args = dict(session_name="x", n_rec=8, n_out=2, dt_s=0.001)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        SessionMonitor(**args)


def test_status_survives_a_failing_stats_and_reports_it():
    class Broken:
        def stats(self):
            raise RuntimeError("boom")

    fake = FakeSession("viz-unit-status", n_rec=8)
    fake.learner = Broken()
    fake.stats.record("e2e", 9000.0)
    msg = fake.monitor.status(fake, 0.0)
    assert msg["learner"] == {"error": "RuntimeError: boom"}
    assert msg["monitor"]["errors"] == 1
    e2e = msg["latency"]["series"]["e2e"]
    assert e2e["n"] == 1
    (b, c), = e2e["bins"]
    lo, hi = hist_bin_edges_ns(b + 1)[b:b + 2]
    assert c == 1 and lo <= 9000.0 < hi
    # the next status carries only what was recorded since
    assert fake.monitor.status(fake, 0.0)["latency"]["series"]["e2e"]["n"] == 0


class _RecordingOutlet:
    """Stands in for a pylsl outlet: keeps what was pushed."""

    def __init__(self):
        self.chunks: list[tuple[np.ndarray, float]] = []

    def push_chunk(self, data, t):
        self.chunks.append((np.array(data), float(t)))

    def push_sample(self, data, t):
        pass


def test_output_stamps_keep_increasing_when_the_compute_thread_catches_up():
    """Rows are stamped back from the service time one tick apart; after a stall the compute
    thread runs more ticks than time passed, and the next chunk would start before the last one
    ended (seen as a non-increasing out_t in the client on a loaded machine). The monitor shifts
    such a chunk forward and counts it."""
    fake = FakeSession("viz-unit-stamps", n_rec=8)
    mon = fake.monitor
    outs = _RecordingOutlet()
    mon._outlets = {"monitor": _RecordingOutlet(), "raster": _RecordingOutlet(), "outputs": outs}
    d, dt = mon.output_decimation, fake.dt_s

    def ticks(n):
        for _ in range(n):
            mon.sink.emit(fake.y, 0.0)

    ticks(100)
    mon.service(fake, now_lsl=10.0)  # 100 ticks up to t = 10.0
    ticks(100)
    mon.service(fake, now_lsl=10.1)  # on time: 100 ticks in 0.1 s
    assert mon.counters["outputs_restamped"] == 0
    ticks(100)
    mon.service(fake, now_lsl=10.12)  # caught up: 100 ticks in 0.02 s
    assert mon.counters["outputs_restamped"] == 100 // d
    stamps = np.concatenate([t_last - d * dt * np.arange(len(rows))[::-1] for rows, t_last in outs.chunks])
    assert len(stamps) == 300 // d
    assert np.all(np.diff(stamps) > 0)
    np.testing.assert_allclose(np.diff(stamps), d * dt, rtol=1e-9)  # still one output period apart


def test_jsonable_cleans_numpy_and_nonfinite():
    out = _jsonable({"a": np.float32(1.5), "b": np.int64(3), "c": float("nan"), "d": np.bool_(True),
                     "e": [np.inf, 2], "f": object})
    assert out["a"] == 1.5 and out["b"] == 3 and out["c"] is None and out["d"] is True
    assert out["e"] == [None, 2] and isinstance(out["f"], str)


@pytest.mark.lsl
def test_monitor_over_lsl_reaches_the_client_intact():
    from rtsnn.viz.client import MonitorClient, MonitorNotFoundError, discover

    name = f"viz-lsl-{time.monotonic_ns() % 10**9}"
    fake = FakeSession(name, n_rec=40).start()
    try:
        streams = discover(session=name, timeout_s=10.0)
        assert streams.raster is not None and streams.outputs is not None
        client = MonitorClient(streams, raster_window_s=0.5)
        assert client.n_rec == 40 and client.raster_neurons == 40 and client.output_labels == ["out0", "out1"]
        poll_for(client, 2.0)
        assert client.counts["raster_rows"] > 300 and client.counts["statuses"] >= 5
        # raster: rows are one of the 5 phase patterns of the lower half; the upper half is silent
        img = client.raster_image()
        filled = img[:, -client.counts["raster_rows"]:] if client.counts["raster_rows"] < img.shape[1] else img
        assert not filled[20:].any()
        idx = np.arange(20)
        patterns = {tuple((idx + k) % 5 == 0) for k in range(5)}
        for col in filled.T:
            assert tuple(col[:20].astype(bool)) in patterns
        # outputs: target = y / 2 and (y0, y1) on the unit circle
        ok = np.isfinite(client.out_t)
        assert ok.sum() > 50
        y, tgt = client.out_v[ok, :2], client.out_v[ok, 2:]
        np.testing.assert_allclose(tgt, 0.5 * y, atol=1e-6)
        np.testing.assert_allclose((y ** 2).sum(axis=1), 1.0, atol=1e-4)
        assert np.all(np.diff(client.out_t[ok]) > 0)
        # status: counters, stream health, learner curve, latency histograms
        st = client.last_status
        assert st["session"] == name and st["counters"]["ticks"] > 0
        assert st["source"]["in_gap"] is True and st["source"]["losses"] == 3
        _, loss = client.history(("learner", "loss"))
        assert len(loss) >= 5 and loss[-1] < loss[0]
        e2e = client.lat_window["e2e"]
        peak_ns = client.lat_min_ns * 2 ** ((np.argmax(e2e) + 0.5) / client.lat_bins_per_octave)
        assert 8000 < peak_ns < 10000  # the fake records e2e = 9 us every tick
        assert fake.monitor.counters["errors"] == 0
        client.close()
    finally:
        fake.stop()
    with pytest.raises(MonitorNotFoundError, match="no rtsnn session monitor"):
        discover(session=name + "-absent", timeout_s=0.6)


@pytest.mark.lsl
def test_client_survives_the_session_going_away():
    # with recover=False a pull on a stream whose outlet is gone raises pylsl's LostError: the
    # client must count it and mark itself lost (the dashboard then shows SILENT), not crash
    from rtsnn.viz.client import MonitorClient, discover

    name = f"viz-gone-{time.monotonic_ns() % 10**9}"
    fake = FakeSession(name, n_rec=16).start()
    try:
        client = MonitorClient(discover(session=name, timeout_s=10.0))
        poll_for(client, 1.0)
        assert client.counts["raster_rows"] > 100 and not client.lost
    finally:
        fake.stop()
    t_end = time.monotonic() + 10.0
    while time.monotonic() < t_end and not client.lost:
        assert client.poll() in (True, False)
        time.sleep(0.05)
    assert client.lost and client.counts["lost"] == 1
    for _ in range(5):  # later polls keep returning, and the loss is counted once
        client.poll()
    assert client.counts["lost"] == 1
    client.close()
