"""Our XDF writer: every channel format, metadata, clock offsets and footers as pyxdf reads
them; variable-length integers; a writer killed mid-recording leaves a readable file."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import pyxdf
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsnn.recording.xdf_reader import _varlen, load_xdf
from rtsnn.recording.xdf_writer import (FORMATS, StreamInfoData, XdfWriter, encode_chunk, encode_varlen)


@given(st.integers(min_value=0, max_value=2 ** 64 - 1))
def test_varlen_roundtrip_and_width(value):
    b = encode_varlen(value)
    assert b[0] == (1 if value < 256 else 4 if value < 2 ** 32 else 8)
    got, pos = _varlen(memoryview(b), 0, len(b))
    assert (got, pos) == (value, len(b))


def test_chunk_length_counts_the_tag():
    c = encode_chunk(5, b"x" * 16)
    assert c[:2] == bytes([1, 18]) and struct.unpack("<H", c[2:4])[0] == 5


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "string"])
def test_numeric_formats_roundtrip_through_pyxdf(tmp_path, fmt):
    path = tmp_path / f"{fmt}.xdf"
    rng = np.random.default_rng(1)
    dt = np.dtype(FORMATS[fmt])
    if dt.kind == "f":
        x = rng.normal(size=(37, 4)).astype(dt)
    else:
        info = np.iinfo(dt)
        x = rng.integers(info.min, info.max, size=(37, 4), dtype=dt, endpoint=True)
    ts = 10.0 + np.cumsum(rng.uniform(0.001, 0.02, 37))
    with XdfWriter(path) as w:
        w.add_stream(7, StreamInfoData("s", "T", 4, 0.0, fmt, "sid", ["a", "b", "c", "d"], ["V", "V", "A", "A"]))
        w.write_samples(7, ts[:20], x[:20])
        w.write_samples(7, ts[20:], x[20:])
    streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    (s,) = streams
    np.testing.assert_array_equal(s["time_series"], x)
    np.testing.assert_array_equal(s["time_stamps"], ts)
    chans = s["info"]["desc"][0]["channels"][0]["channel"]
    assert [c["label"][0] for c in chans] == ["a", "b", "c", "d"]
    assert [c["unit"][0] for c in chans] == ["V", "V", "A", "A"]
    assert s["footer"]["info"]["sample_count"] == ["37"]
    ours = load_xdf(path)
    np.testing.assert_array_equal(ours.streams[0].time_series, x)
    assert ours.streams[0].info.channel_units == ["V", "V", "A", "A"]
    assert ours.repairs == []


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.lists(st.text(max_size=300), min_size=2, max_size=2), min_size=1, max_size=20))
def test_string_samples_roundtrip_any_unicode_and_length(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("s") / "s.xdf"
    ts = np.arange(len(rows), dtype=float)
    with XdfWriter(path) as w:
        w.add_stream(1, StreamInfoData("m", "Markers", 2, 0.0, "string"))
        w.write_samples(1, ts, rows)
    rec = load_xdf(path)
    assert rec.streams[0].time_series.tolist() == rows
    # pyxdf reads the same (it strips nothing; compare exactly)
    streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    assert streams[0]["time_series"] == rows


def test_regular_stream_clock_offsets_and_footer(tmp_path):
    path = tmp_path / "r.xdf"
    with XdfWriter(path) as w:
        w.add_stream(3, StreamInfoData("eeg", "EEG", 2, 250.0, "float32"))
        ts = 100.0 + np.arange(1000) / 250.0
        for i in range(0, 1000, 250):
            w.write_samples(3, ts[i:i + 250], np.ones((250, 2)) * i)
            w.write_clock_offset(3, ts[i], 0.5 + 1e-4 * i)
    streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=True, dejitter_timestamps=False)
    s = streams[0]
    assert float(s["info"]["nominal_srate"][0]) == 250.0
    np.testing.assert_allclose(s["clock_values"], 0.5 + 1e-4 * np.arange(0, 1000, 250))
    # pyxdf's clock sync adds the fitted offset: the line through our offsets at each time stamp
    np.testing.assert_allclose(s["time_stamps"], ts + 0.5 + 1e-4 * 250 * (ts - 100.0), atol=1e-6)
    foot = s["footer"]["info"]
    assert float(foot["first_timestamp"][0]) == ts[0] and float(foot["last_timestamp"][0]) == ts[-1]
    assert len(foot["clock_offsets"][0]["offset"]) == 4


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="channel_format"):
        StreamInfoData("x", channel_format="float16")
    with pytest.raises(ValueError, match="channel_count"):
        StreamInfoData("x", channel_count=0)
    with pytest.raises(ValueError, match="2 channel_labels for 3"):
        StreamInfoData("x", channel_count=3, channel_labels=["a", "b"])
    with XdfWriter(tmp_path / "b.xdf") as w:
        with pytest.raises(ValueError, match="no header"):
            w.write_samples(9, [1.0], [[1.0]])
        w.add_stream(1, StreamInfoData("x", channel_count=2))
        with pytest.raises(ValueError, match="already added"):
            w.add_stream(1, StreamInfoData("y"))
        with pytest.raises(ValueError, match=r"shape \(3, 3\), expected \(3, 2\)"):
            w.write_samples(1, [1.0, 2.0, 3.0], np.zeros((3, 3)))


def test_nothing_reaches_disk_before_flush_and_everything_after(tmp_path):
    path = tmp_path / "f.xdf"
    w = XdfWriter(path)
    w.add_stream(1, StreamInfoData("x"))
    size0 = path.stat().st_size
    w.write_samples(1, [1.0, 2.0], [[1.0], [2.0]])
    assert path.stat().st_size == size0
    w.flush()
    assert path.stat().st_size > size0
    rec = load_xdf(path)
    assert rec.streams[0].n_samples == 2 and rec.repair_counts() == {"no_footer": 1}
    w.close()


CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from rtsnn.stream.recorder import Recorder
    rec = Recorder(sys.argv[1], flush_interval_s=0.05, boundary_interval_s=0.2)
    a = rec.add_stream("counter", ["i", "2i"], ["1", "1"], type="Test", nominal_srate_hz=1000.0)
    m = rec.add_stream("markers", ["m"], channel_format="string")
    i = 0
    print("ready", flush=True)
    while True:
        block = np.stack([np.arange(i, i + 10), 2 * np.arange(i, i + 10)], axis=1)
        rec.push(a, (np.arange(i, i + 10)) / 1000.0, block)
        if i % 100 == 0:
            rec.push(m, i / 1000.0, f"mark {i}")
        i += 10
        time.sleep(0.001)
""")


def test_killed_writer_leaves_a_readable_file(tmp_path):
    path = tmp_path / "crash.xdf"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(1.0)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    by = {s["info"]["name"][0]: s for s in streams}
    x = by["counter"]["time_series"]
    n = len(x)
    assert n >= 100, f"only {n} samples survived ~1 s of recording with 50 ms flushes"
    np.testing.assert_array_equal(x[:, 0], np.arange(n))  # no gap, no duplicate up to the last flush
    np.testing.assert_array_equal(x[:, 1], 2 * np.arange(n))
    np.testing.assert_allclose(by["counter"]["time_stamps"], np.arange(n) / 1000.0)
    assert by["markers"]["time_series"][0] == ["mark 0"]
    assert "footer" not in by["counter"] or not by["counter"].get("footer")
    ours = load_xdf(path)
    assert {s.name: s.n_samples for s in ours.streams}["counter"] == n
    assert ours.repair_counts().get("no_footer") == 2
