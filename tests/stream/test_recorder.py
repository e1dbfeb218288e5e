"""Recorder (session inputs / teaching / outputs to XDF without blocking) and ``rtsnn record``
of live LSL streams, read back with pyxdf and with our reader."""

from __future__ import annotations

import json
import threading
import time
import uuid

import numpy as np
import pylsl
import pytest
import pyxdf

from rtsnn.stream.recorder import Recorder, record_lsl
from rtsnn.recording.xdf_reader import load_xdf


def test_recorder_streams_from_several_threads(tmp_path):
    path = tmp_path / "s.xdf"
    rec = Recorder(path, flush_interval_s=0.02)
    sid_in = rec.add_stream("inputs", [f"u{i}" for i in range(4)], ["count"] * 4, nominal_srate_hz=1000.0)
    sid_out = rec.add_stream("outputs", ["vx", "vy"], ["a.u./s"] * 2)
    sid_rw = rec.add_stream("reward", ["r"], ["1"])
    sid_ev = rec.add_stream("events", ["what"], channel_format="string")

    def producer(sid, n_ch, n):
        for i in range(n):
            rec.push(sid, [i * 1e-3, (i + 0.5) * 1e-3], np.full((2, n_ch), i, np.float32))

    threads = [threading.Thread(target=producer, args=a) for a in ((sid_in, 4, 300), (sid_out, 2, 300))]
    for t in threads:
        t.start()
    rec.push(sid_rw, 0.1, [1.5])  # a single sample: scalar timestamp, 1-D block
    rec.push(sid_ev, 0.2, "pause learning")
    for t in threads:
        t.join()
    rec.close()
    streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    by = {s["info"]["name"][0]: s for s in streams}
    assert by["inputs"]["time_series"].shape == (600, 4)
    np.testing.assert_array_equal(by["inputs"]["time_series"][::2, 0], np.arange(300))
    assert by["outputs"]["time_series"].shape == (600, 2)
    assert by["reward"]["time_series"].tolist() == [[1.5]]
    assert by["events"]["time_series"] == [["pause learning"]]
    units = [c["unit"][0] for c in by["outputs"]["info"]["desc"][0]["channels"][0]["channel"]]
    assert units == ["a.u./s", "a.u./s"]
    assert int(by["inputs"]["footer"]["info"]["sample_count"][0]) == 600
    assert rec.stats()["samples"] == {"inputs": 600, "outputs": 600, "reward": 1, "events": 1}
    assert load_xdf(path).repairs == []


def test_push_never_waits_and_a_full_queue_drops_counted(tmp_path):
    """The writer drains only every 10 s here: a push that waited for room would block until
    then and drop nothing; a push that never waits refuses the overflow at once and counts it.
    (How long a push takes: scripts/bench_timing_bounds.py, check recorder_push.)"""
    rec = Recorder(tmp_path / "q.xdf", flush_interval_s=10.0, max_queued_blocks=100)
    sid = rec.add_stream("x", ["a"])
    block = np.zeros((1, 1), np.float32)
    ok = [rec.push(sid, 0.0, block) for _ in range(150)]
    assert ok == [True] * 99 + [False] * 51  # one slot holds the header
    assert rec.stats()["dropped_blocks"] == 51
    rec.close()
    assert load_xdf(tmp_path / "q.xdf").streams[0].n_samples == 99


def test_push_rejects_bad_blocks_by_name(tmp_path):
    rec = Recorder(tmp_path / "b.xdf")
    sid = rec.add_stream("emg", ["a", "b"])
    with pytest.raises(ValueError, match=r"stream 'emg' got a block of shape \(3,\) for 1 timestamps x 2"):
        rec.push(sid, 0.0, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="unknown stream_id 99"):
        rec.push(99, 0.0, [1.0])
    rec.close()


def _outlet(name, n_ch, fmt="float32", srate=200.0):
    info = pylsl.StreamInfo(name, "Test", n_ch, srate, fmt, name + "-sid")
    chans = info.desc().append_child("channels")
    for i in range(n_ch):
        ch = chans.append_child("channel")
        ch.append_child_value("label", f"c{i}")
        ch.append_child_value("unit", "mV")
    return pylsl.StreamOutlet(info)


@pytest.mark.lsl
def test_record_lsl_streams_with_clock_offsets(tmp_path):
    tag = uuid.uuid4().hex[:8]
    a, m = f"rtsnn-test-rec-a-{tag}", f"rtsnn-test-rec-m-{tag}"
    out_a = _outlet(a, 3)
    out_m = _outlet(m, 1, "string", 0.0)
    path = tmp_path / "live.xdf"
    ready, stop = threading.Event(), threading.Event()
    result = {}
    th = threading.Thread(target=lambda: result.update(record_lsl([a, m], path, stop=stop, ready=ready,
                                                                  offset_interval_s=0.2)))
    th.start()
    assert ready.wait(10)
    time.sleep(0.3)
    sent = np.arange(300, dtype=np.float32).reshape(100, 3)
    for i in range(100):
        out_a.push_sample(sent[i])
        if i % 25 == 0:
            out_m.push_sample([f"marker {i}"])
        time.sleep(0.002)
    time.sleep(0.5)
    stop.set()
    th.join(10)
    streams, _ = pyxdf.load_xdf(str(path))
    by = {s["info"]["name"][0]: s for s in streams}
    np.testing.assert_array_equal(by[a]["time_series"], sent)
    assert by[m]["time_series"] == [[f"marker {i}"] for i in range(0, 100, 25)]
    assert len(by[a]["clock_times"]) >= 2  # offsets were measured and written
    assert [c["unit"][0] for c in by[a]["info"]["desc"][0]["channels"][0]["channel"]] == ["mV"] * 3
    assert by[a]["info"]["source_id"] == [a + "-sid"]
    assert result["samples"] == {a: 100, m: 4}


def test_cli_record_missing_stream_is_a_clear_error(tmp_path, capsys):
    from rtsnn.cli import main

    name = f"rtsnn-test-absent-{uuid.uuid4().hex[:8]}"
    rc = main(["record", "--streams", name, "--out", str(tmp_path / "x.xdf"), "--duration", "1",
               "--resolve-timeout", "0.5"])
    assert rc == 2
    assert f"no LSL stream named '{name}'" in capsys.readouterr().err


@pytest.mark.lsl
def test_cli_record_duration_json(tmp_path, capsys):
    from rtsnn.cli import main

    name = f"rtsnn-test-cli-{uuid.uuid4().hex[:8]}"
    outlet = _outlet(name, 2, srate=100.0)
    stop = threading.Event()

    def feed():
        while not stop.is_set():
            outlet.push_sample([1.0, 2.0])
            time.sleep(0.01)

    th = threading.Thread(target=feed)
    th.start()
    try:
        rc = main(["record", "--streams", name, "--out", str(tmp_path / "c.xdf"), "--duration", "1.0", "--json"])
    finally:
        stop.set()
        th.join()
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    n = summary["samples"][name]
    assert n > 20
    rec = load_xdf(tmp_path / "c.xdf")
    assert rec.streams[0].n_samples == n and rec.repairs == []
