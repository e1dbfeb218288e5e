"""SessionRecording: the compute thread hands samples over without allocating; the recording
reproduces what a session consumed and emitted (file -> session loop -> XDF -> same values)."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pyxdf

from rtsnn.stream.recorder import BlockRing, SessionRecording
from rtsnn.stream.replay import XdfFileSource
from rtsnn.recording.xdf_reader import load_xdf

from test_xdf_support import write_demo


def test_block_ring_wraps_drops_whole_blocks_and_keeps_nothing_per_push():
    ring = BlockRing(10, 2)
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    t = np.arange(10, dtype=float)
    assert ring.push_block(x, t, 6)
    ts, vals = ring.drain()
    np.testing.assert_array_equal(ts, t[:6])
    assert ring.push_block(x[6:], t[6:], 4) and ring.push_block(x, t, 5)  # wraps around the end
    assert not ring.push_block(x, t, 2)  # 9 queued, room for 1: the block is dropped whole
    assert ring.dropped_samples == 2
    ts, vals = ring.drain()
    np.testing.assert_array_equal(ts, np.r_[t[6:], t[:5]])
    np.testing.assert_array_equal(vals, np.r_[x[6:], x[:5]])
    ring.push_block(x, t, 3)
    ring.drain()
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    for _ in range(2000):
        ring.push_block(x, t, 3)
        ring.tail = ring.head  # consumer keeps up (without allocating, unlike drain)
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename")
                if s.traceback[0].filename.endswith("recorder.py"))
    assert grown < 100  # nothing kept per push (a few bytes: the index ints)


def test_session_loop_records_what_it_consumed_and_emitted(tmp_path):
    ts, x, _, _ = write_demo(tmp_path / "in.xdf", n_eeg=400, srate=100.0)
    src = XdfFileSource(str(tmp_path / "in.xdf"), "eeg", n_channels=3, dt_s=0.01)
    src.open()
    recording = SessionRecording(tmp_path / "session.xdf", "s1", input_labels=["C3", "Cz", "C4"],
                                 input_units=["microvolts"] * 3, input_srate_hz=100.0, output_labels=["vx", "vy"],
                                 output_units=["a.u."] * 2, teacher=True, dt_s=0.01, flush_interval_s=0.02)
    buf, tsb = np.zeros((64, 3), np.float32), np.zeros(64)
    rows = []
    stop = threading.Event()

    def io_thread():  # what the session's I/O thread does
        while not stop.wait(0.005):
            recording.drain()

    th = threading.Thread(target=io_thread)
    th.start()
    k = 0
    while not src.finished:  # what the compute thread does
        n = src.pull(buf, tsb)
        recording.inputs.push_block(buf, tsb, n)
        y = buf[:n].mean(axis=0)[:2] if n else np.zeros(2, np.float32)
        target = np.array([k, -k], np.float32)
        recording.teacher.push_block(target[None, :], np.array([tsb[n - 1] if n else 0.0]), 1)
        rows.append(np.r_[k, tsb[n - 1] if n else np.nan, 2000.0 + k * 0.01, y, target])
        k += 1
    stop.set()
    th.join()
    recording.outputs_rows(np.array(rows))
    recording.reward(0.5, 2000.1)
    recording.event("pause learning", 2000.2)
    recording.close()

    streams, _ = pyxdf.load_xdf(str(tmp_path / "session.xdf"), synchronize_clocks=False, dejitter_timestamps=False)
    by = {s["info"]["name"][0]: s for s in streams}
    np.testing.assert_array_equal(by["s1-inputs"]["time_series"], x)  # every consumed sample, in order
    np.testing.assert_array_equal(by["s1-inputs"]["time_stamps"], ts)
    out = by["s1-outputs"]["time_series"]
    assert out.shape == (k, 4)
    np.testing.assert_allclose(out, np.array(rows)[:, 3:], rtol=1e-6)
    assert by["s1-teacher"]["time_series"].shape == (k, 2)
    assert by["s1-reward"]["time_series"].tolist() == [[0.5]]
    assert by["s1-events"]["time_series"] == [["pause learning"]]
    labels = [c["label"][0] for c in by["s1-outputs"]["info"]["desc"][0]["channels"][0]["channel"]]
    assert labels == ["vx", "vy", "target_vx", "target_vy"]
    assert recording.stats()["dropped_input_samples"] == 0
    # and the recording replays: the inputs stream through the file source again, identically
    again = XdfFileSource(str(tmp_path / "session.xdf"), "s1-inputs", n_channels=3, dt_s=1.0)
    again.open()
    got = []
    while not again.finished:
        n = again.pull(buf, tsb)
        got.append(buf[:n].copy())
    np.testing.assert_array_equal(np.concatenate(got), x)
    assert load_xdf(tmp_path / "session.xdf").repairs == []
