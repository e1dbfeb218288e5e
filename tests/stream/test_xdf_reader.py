"""Our XDF reader: agrees with pyxdf on good files and survives what real files contain
(truncation anywhere, missing footers, corrupt chunks, orphans, empty streams, garbage)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import pyxdf

from rtsnn.recording.xdf_reader import XdfError, load_xdf
from rtsnn.recording.xdf_writer import BOUNDARY_UUID, MAGIC, StreamInfoData, XdfWriter, encode_chunk

from test_xdf_support import data_file, write_demo


def test_minimal_xdf_matches_pyxdf():
    path = data_file("xdf/minimal.xdf")
    rec = load_xdf(path)
    ref, _ = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    assert [s.name for s in rec.streams] == [r["info"]["name"][0] for r in ref]
    for ours, theirs in zip(rec.streams, ref):
        np.testing.assert_array_equal(ours.time_stamps, theirs["time_stamps"])
        if ours.is_string:
            assert ours.time_series.tolist() == theirs["time_series"]
        else:
            np.testing.assert_array_equal(ours.time_series, theirs["time_series"])
            assert ours.time_series.dtype == theirs["time_series"].dtype
        np.testing.assert_array_equal(ours.clock_times, theirs["clock_times"])
        np.testing.assert_array_equal(ours.clock_values, theirs["clock_values"])
    assert rec.repairs == []


@pytest.mark.parametrize("fraction", [0.03, 0.1, 0.25, 0.5, 0.77, 0.9, 0.999])
def test_truncated_file_loads_a_prefix_and_says_what_was_lost(tmp_path, fraction, caplog):
    full = tmp_path / "full.xdf"
    ts, x, mk_ts, mk = write_demo(full)
    data = full.read_bytes()
    cut = tmp_path / "cut.xdf"
    cut.write_bytes(data[:int(len(data) * fraction)])
    try:
        with caplog.at_level(logging.WARNING):
            rec = load_xdf(cut)
    except XdfError as err:
        # only when the cut leaves no stream header at all
        assert fraction < 0.05 and "no stream" in str(err) or "no readable" in str(err)
        return
    by = {s.name: s for s in rec.streams}
    n = by["eeg"].n_samples
    assert n <= len(ts)
    np.testing.assert_array_equal(by["eeg"].time_series, x[:n])  # a clean prefix, nothing invented
    np.testing.assert_array_equal(by["eeg"].time_stamps, ts[:n])
    if "mk" in by:
        k = by["mk"].n_samples
        assert by["mk"].time_series.tolist() == mk[:k]
    kinds = rec.repair_counts()
    # a cut inside a chunk is reported as such; a cut exactly between chunks shows as missing footers
    assert kinds.get("truncated", 0) <= 1
    assert kinds.get("no_footer", 0) >= 1
    assert any("truncated" in r.message or "without footer" in r.message for r in caplog.records)


def test_truncation_inside_a_samples_chunk_recovers_its_complete_samples(tmp_path):
    path = tmp_path / "one.xdf"
    w = XdfWriter(path)
    w.add_stream(1, StreamInfoData("x", channel_count=2, nominal_srate_hz=10.0))
    w.write_samples(1, np.arange(100) / 10, np.arange(200, dtype=np.float32).reshape(100, 2))
    w.close(footers=False)
    data = path.read_bytes()
    sample_bytes = 1 + 8 + 2 * 4
    (tmp_path / "c.xdf").write_bytes(data[:-(30 * sample_bytes + 5)])  # 30.3 samples short
    rec = load_xdf(tmp_path / "c.xdf")
    s = rec.streams[0]
    assert s.n_samples == 69
    np.testing.assert_array_equal(s.time_series, np.arange(138, dtype=np.float32).reshape(69, 2))
    msgs = " ".join(str(r) for r in rec.repairs)
    assert "announced 100 samples, 69 recovered" in msgs
    assert rec.repair_counts()["lost_samples"] == 1


def test_every_cut_offset_gives_a_prefix_or_a_clear_error(tmp_path):
    """Truncation at every 37th byte: never an unexpected exception, never invented data."""
    full = tmp_path / "full.xdf"
    ts, x, _, _ = write_demo(full, n_eeg=120)
    data = full.read_bytes()
    errors, loaded = [], []
    for cut in range(0, len(data), 37):
        p = tmp_path / "c.xdf"
        p.write_bytes(data[:cut])
        try:
            rec = load_xdf(p)
        except XdfError:
            errors.append(cut)
            continue
        loaded.append(cut)
        for s in rec.streams:
            if s.name == "eeg":
                np.testing.assert_array_equal(s.time_series, x[:s.n_samples])
    # only cuts before the first complete stream header fail; every later cut loads
    assert errors and loaded and max(errors) < min(loaded)
    assert max(errors) < data.find(b"</info>", data.find(b"<name>eeg")) + 7


def test_missing_footers_are_reported_and_samples_kept(tmp_path):
    path = tmp_path / "nf.xdf"
    ts, x, mk_ts, mk = write_demo(path, footers=False)
    rec = load_xdf(path)
    assert rec.repair_counts() == {"no_footer": 2}
    assert rec.streams[0].n_samples == len(ts) and rec.streams[1].n_samples == len(mk)
    streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=False)  # pyxdf agrees the file is fine
    assert len(streams[0]["time_stamps"]) + len(streams[1]["time_stamps"]) == len(ts) + len(mk)


def test_corrupt_chunk_is_skipped_to_the_next_boundary(tmp_path):
    path = tmp_path / "ok.xdf"
    ts, x, _, _ = write_demo(path, boundary_every=50)
    data = bytearray(path.read_bytes())
    # overwrite the middle of the file with junk (hits a Samples chunk)
    mid = len(data) // 2
    data[mid:mid + 40] = b"\xff" * 40
    bad = tmp_path / "bad.xdf"
    bad.write_bytes(bytes(data))
    rec = load_xdf(bad)
    kinds = rec.repair_counts()
    assert kinds.get("corrupt_chunk", 0) >= 1
    assert "footer_count" in kinds  # the footer says how many were lost
    eeg = next(s for s in rec.streams if s.name == "eeg")
    assert 0.5 * len(ts) < eeg.n_samples < len(ts)
    # what was read is genuine: each sample equals the original sample with its timestamp
    idx = np.searchsorted(ts, eeg.time_stamps)
    np.testing.assert_array_equal(ts[idx], eeg.time_stamps)
    np.testing.assert_array_equal(x[idx], eeg.time_series)
    assert "skipped" in " ".join(str(r) for r in rec.repairs)


def test_empty_stream_and_orphan_chunks(tmp_path):
    path = tmp_path / "e.xdf"
    w = XdfWriter(path)
    w.add_stream(1, StreamInfoData("empty", channel_count=2))
    w.add_stream(2, StreamInfoData("full", channel_count=1))
    w.write_samples(2, [1.0, 2.0], [[1.0], [2.0]])
    w.flush()
    w.close()
    data = path.read_bytes()
    # a Samples chunk and a ClockOffset chunk for stream 9, which has no header
    import struct

    orphan = encode_chunk(3, struct.pack("<I", 9) + bytes([1, 1]) + bytes([8]) + struct.pack("<d", 1.0)
                          + struct.pack("<f", 1.0))
    orphan += encode_chunk(4, struct.pack("<Idd", 9, 1.0, 0.1))
    (tmp_path / "o.xdf").write_bytes(data + orphan)
    rec = load_xdf(tmp_path / "o.xdf")
    kinds = rec.repair_counts()
    assert kinds["empty_stream"] == 1 and kinds["orphan_samples"] == 1 and kinds["orphan_offsets"] == 1
    empty = next(s for s in rec.streams if s.name == "empty")
    assert empty.n_samples == 0 and empty.time_series.shape == (0, 2)


def test_bad_stream_header_skips_that_stream_only(tmp_path):
    import struct

    good = StreamInfoData("good").header_xml()
    body = (MAGIC + encode_chunk(1, b"<info><version>1.0</version></info>")
            + encode_chunk(2, struct.pack("<I", 1) + b"<info><name>bad</name><channel_format>float16"
                                                     b"</channel_format><channel_count>1</channel_count></info>")
            + encode_chunk(2, struct.pack("<I", 2) + good)
            + encode_chunk(3, struct.pack("<I", 1) + bytes([1, 1, 8]) + struct.pack("<d", 1.0) + b"\0\0")
            + encode_chunk(3, struct.pack("<I", 2) + bytes([1, 1, 8]) + struct.pack("<df", 1.0, 3.0)))
    (tmp_path / "h.xdf").write_bytes(body)
    rec = load_xdf(tmp_path / "h.xdf")
    assert [s.name for s in rec.streams] == ["good"]
    assert rec.streams[0].time_series.tolist() == [[3.0]]
    msgs = " ".join(str(r) for r in rec.repairs)
    assert "float16" in msgs and "orphan_samples" in rec.repair_counts()


def test_untimestamped_samples_follow_the_xdf_rule(tmp_path):
    import struct

    info = StreamInfoData("reg", nominal_srate_hz=4.0)
    samples = (bytes([8]) + struct.pack("<df", 10.0, 1.0) + bytes([0]) + struct.pack("<f", 2.0)
               + bytes([0]) + struct.pack("<f", 3.0))
    body = (MAGIC + encode_chunk(2, struct.pack("<I", 1) + info.header_xml())
            + encode_chunk(3, struct.pack("<I", 1) + bytes([1, 3]) + samples))
    (tmp_path / "u.xdf").write_bytes(body)
    rec = load_xdf(tmp_path / "u.xdf")
    np.testing.assert_allclose(rec.streams[0].time_stamps, [10.0, 10.25, 10.5])
    streams, _ = pyxdf.load_xdf(str(tmp_path / "u.xdf"), synchronize_clocks=False, dejitter_timestamps=False)
    np.testing.assert_allclose(streams[0]["time_stamps"], [10.0, 10.25, 10.5])


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"PK\x03\x04 a zip file", "not an XDF file"),
    (MAGIC + bytes(range(7, 200)), "no readable XDF chunk"),
    (MAGIC + b"\x01", "no stream"),
])
def test_garbage_gives_a_clear_error(tmp_path, content, match):
    p = tmp_path / "g.xdf"
    p.write_bytes(content)
    with pytest.raises(XdfError, match=match):
        load_xdf(p)


def test_garbage_after_a_good_file_is_reported_not_fatal(tmp_path):
    path = tmp_path / "ok.xdf"
    ts, x, _, _ = write_demo(path)
    rng = np.random.default_rng(0)
    junk = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes().replace(BOUNDARY_UUID, b"")
    (tmp_path / "j.xdf").write_bytes(path.read_bytes() + junk)
    rec = load_xdf(tmp_path / "j.xdf")
    assert rec.streams[0].n_samples == len(ts)
    assert rec.repair_counts().get("corrupt_chunk", 0) + rec.repair_counts().get("truncated", 0) == 1


def test_compressed_xdf_and_a_damaged_one(tmp_path):
    import gzip

    path = tmp_path / "d.xdf"
    ts, x, _, _ = write_demo(path)
    data = gzip.compress(path.read_bytes())
    (tmp_path / "d.xdfz").write_bytes(data)
    rec = load_xdf(tmp_path / "d.xdfz")
    np.testing.assert_array_equal(rec.streams[0].time_series, x)
    (tmp_path / "cut.xdfz").write_bytes(data[:len(data) // 2])
    with pytest.raises(XdfError, match="compressed XDF is damaged"):
        load_xdf(tmp_path / "cut.xdfz")
