"""dvs_file and dvs_camera sources: content, determinism, pacing, loop, camera errors, ring buffer."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from rtsnn.testing import import_or_skip

from rtsnn.events import kernels as EK
from rtsnn.events.format import EVENT_DTYPE
from rtsnn.events.pooling import EventPoolEncoder
from rtsnn_dvs.source import DvsCameraSource, DvsFileSource

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "events"
needs_data = pytest.mark.skipif(not DATA.is_dir() and not os.environ.get("CI"),
                                reason="../shared/data/events is absent (a user's clone); CI has it")



def _pull_all(src, cap=1024, max_pulls=100000):
    rows = np.zeros((cap, 4), np.float32)
    ts = np.zeros(cap)
    out_r, out_t = [], []
    for _ in range(max_pulls):
        n = src.pull(rows, ts)
        if n == 0 and src.finished:
            break
        out_r.append(rows[:n].copy())
        out_t.append(ts[:n].copy())
    return np.concatenate(out_r), np.concatenate(out_t)


@needs_data
def test_file_source_max_speed_delivers_every_event_deterministically():
    runs = []
    for _ in range(2):
        src = DvsFileSource(str(DATA / "dvxplorer_sample.aedat4"), speed="max", max_events_per_pull=5000)
        src.open()
        rows, _ = _pull_all(src)
        runs.append(rows)
        assert src.stats()["events"] == 111954 and (src.width, src.height) == (320, 240)
    np.testing.assert_array_equal(runs[0], runs[1])
    # and through the encoder: the pooled totals equal the events (no filters)
    enc = EventPoolEncoder(320, 240, 8, 6)
    out = np.zeros(enc.n_out, np.float32)
    enc.encode(np.ascontiguousarray(runs[0]), len(runs[0]), out)
    assert out.sum() == 111954


@needs_data
def test_file_source_real_time_pacing_and_loop():
    src = DvsFileSource(str(DATA / "prophesee_evt3_sample.raw"), speed=0.5, loop=True)
    src.open()
    rows = np.zeros((65536, 4), np.float32)
    ts = np.zeros(65536)
    t_end = time.monotonic() + 0.05  # the 8.8 ms recording at half speed loops ~2.5 times
    got = 0
    last_ts = -np.inf
    while time.monotonic() < t_end:
        n = src.pull(rows, ts)
        if n:
            assert ts[0] >= last_ts and np.all(np.diff(ts[:n]) >= 0)
            last_ts = ts[n - 1]
            got += n
        time.sleep(0.001)
    s = src.stats()
    assert s["loops"] >= 1 and got > 219596
    from rtsnn.stream.lslraw import local_clock
    assert last_ts <= local_clock() + 1e-3  # never delivers events from the future


def test_file_source_bad_input(tmp_path):
    with pytest.raises(ValueError, match="speed"):
        DvsFileSource("x.raw", speed="fast")
    empty = tmp_path / "e.npy"
    np.save(empty, np.zeros(0, EVENT_DTYPE))
    with pytest.raises(ValueError, match="0 events"):
        DvsFileSource(str(empty)).open()


def test_camera_without_device_gives_clear_error():
    import_or_skip("dv_processing", reason="dv-processing not installed")
    src = DvsCameraSource()
    with pytest.raises(ValueError, match="camera"):
        src.open()


class _FakeBatch:
    def __init__(self, a):
        self.a = a

    def numpy(self):
        return self.a


class _FakeCapture:
    """Stands in for dv-processing's camera object: a few batches, then a failure, then more."""

    failed = False

    def __init__(self, name):
        self.calls = 0

    def getEventResolution(self):
        return (64, 48)

    def getNextEventBatch(self):
        self.calls += 1
        if self.calls == 4 and not _FakeCapture.failed:
            _FakeCapture.failed = True
            raise RuntimeError("unplugged")
        if self.calls > 8:
            return None
        a = np.zeros(1000, [("timestamp", "<i8"), ("x", "<i2"), ("y", "<i2"), ("polarity", "i1")])
        a["timestamp"] = self.calls * 10_000 + np.arange(1000)
        a["x"] = np.arange(1000) % 64
        a["polarity"] = 1
        return _FakeBatch(a)


def test_camera_ring_restart_and_overflow():
    src = DvsCameraSource(buffer_events=2048, capture_factory=_FakeCapture)
    src.open()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and src.stats()["reconnects"] < 1:
            time.sleep(0.01)
        time.sleep(0.2)
        rows = np.zeros((8192, 4), np.float32)
        ts = np.zeros(8192)
        n = src.pull(rows, ts)
    finally:
        src.close()
    s = src.stats()
    assert s["errors"] == 1 and s["reconnects"] == 1 and (src.width, src.height) == (64, 48)
    # 3 batches of 1000 before the failure + 8 after the reconnect; the ring holds 2048 (nothing
    # pulled meanwhile): the rest was dropped and counted
    assert n == 2048 and s["dropped_overflow"] == 11 * 1000 - 2048
    assert np.all(rows[:n, 2] == 1) and np.all(np.diff(ts[:n]) >= 0)
    assert np.all(rows[:n, 3] == (rows[:n, 3].astype(np.int64) & (EK.T_MOD - 1)))


@needs_data
def test_session_replays_a_camera_recording_tick_by_tick_deterministically(tmp_path):
    """``session.pace: max`` + ``dvs_file`` at ``pace: tick``: each 1 ms tick gets exactly the
    events of its 1 ms of camera time, every event is consumed, and two runs decode the same."""
    from rtsnn.config import parse_config
    from rtsnn.runtime.session import Session
    from rtsnn.snn import Model, save_model

    path = DATA / "dvxplorer_sample.aedat4"
    n_in = 8 * 6 * 2  # grid cells x polarity channels
    save_model(tmp_path / "m.npz", Model.random(n_in, 64, 2, seed=0, input_gain=2.0,
                                                readout_scale=1.0))
    ref = DvsFileSource(str(path), speed="max")
    ref.open()
    t = ref._t.astype(np.int64)
    n_windows = int((t[-1] - t[0]) // 1000) + 1
    outs = []
    for run in range(2):
        cfg = parse_config({
            "session": {"name": "dvs", "pace": "max", "out_dir": str(tmp_path / f"r{run}"), "monitor": False,
                        "max_samples_per_tick": 65536},
            "source": {"kind": "dvs_file", "options": {"path": str(path), "pace": "tick"}},
            "encoder": {"kind": "event_pool", "options": {"width": 320, "height": 240, "grid_w": 8, "grid_h": 6}},
            "model": {"path": str(tmp_path / "m.npz")},
        })
        s = Session(cfg).run()
        assert s["samples_in"] == 111954 and s["source"]["deferred"] == 0
        assert n_windows <= s["ticks"] <= n_windows + 1
        outs.append(np.fromfile(f"{s['folder']}/outputs.f64", "<f8").reshape(-1, 7)[:, 3:5])
    np.testing.assert_array_equal(outs[0], outs[1])
    assert np.abs(outs[0]).max() > 0
    # tick k received the events of [t0 + k ms, t0 + (k + 1) ms): compare the per-tick counts
    src = DvsFileSource(str(path), pace="tick", dt_s=1e-3)
    src.open()
    rows, ts = np.zeros((65536, 4), np.float32), np.zeros(65536)
    counts = [src.pull(rows, ts) for _ in range(n_windows)]
    np.testing.assert_array_equal(counts, np.bincount((t - t[0]) // 1000, minlength=n_windows))
    assert ts[0] >= 0 and ts[0] < 1e-3 * n_windows
