"""Shared helpers for the XDF / replay tests (data location, a small two-stream recording),
and the check that pyxdf reads that recording as written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from rtsnn.recording.xdf_writer import StreamInfoData, XdfWriter

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def data_file(rel: str) -> Path:
    """A file of ../shared/data; skips only outside CI when the folder is absent."""
    p = DATA / rel
    if not p.exists():
        if os.environ.get("CI"):
            raise FileNotFoundError(f"{p} missing in CI")
        pytest.skip(f"{p} not available (no ../shared/data outside CI)")
    return p


def write_demo(path, *, n_eeg=500, srate=100.0, footers=True, boundary_every=50, eeg_t0=1000.0,
               marker_t0=1000.123, clock_offsets=True):
    """Two streams: 'eeg' 3-ch float32 regular (values 0,1,2...) and 'mk' string irregular markers.

    Returns (eeg_ts, eeg_values, mk_ts, mk_values).
    """
    w = XdfWriter(path)
    w.add_stream(1, StreamInfoData("eeg", "EEG", 3, srate, "float32", "src-eeg", ["C3", "Cz", "C4"],
                                   ["microvolts"] * 3))
    w.add_stream(2, StreamInfoData("mk", "Markers", 1, 0.0, "string", "src-mk"))
    ts = eeg_t0 + np.arange(n_eeg) / srate
    x = np.arange(n_eeg * 3, dtype=np.float32).reshape(n_eeg, 3)
    mk_ts = marker_t0 + np.array([0.0, 0.5, 1.7, 3.2])
    mk = [["start"], ["left"], ["rïght"], ["stop"]]
    j = 0
    for i in range(0, n_eeg, 10):
        w.write_samples(1, ts[i:i + 10], x[i:i + 10])
        while j < len(mk_ts) and mk_ts[j] <= ts[min(i + 9, n_eeg - 1)]:
            w.write_samples(2, mk_ts[j:j + 1], mk[j:j + 1])
            j += 1
        if clock_offsets and i % 100 == 0:
            w.write_clock_offset(1, ts[i], -0.25)
            w.write_clock_offset(2, ts[i], 0.0)
        if i % boundary_every == 0:
            w.write_boundary()
    if j < len(mk_ts):
        w.write_samples(2, mk_ts[j:], mk[j:])
    w.close(footers=footers)
    return ts, x, mk_ts, mk


def test_demo_recording_reads_back_with_pyxdf(tmp_path):
    import pyxdf

    path = tmp_path / "demo.xdf"
    ts, x, mk_ts, mk = write_demo(path)
    streams, header = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    by = {s["info"]["name"][0]: s for s in streams}
    np.testing.assert_array_equal(by["eeg"]["time_series"], x)
    np.testing.assert_array_equal(by["eeg"]["time_stamps"], ts)
    assert by["mk"]["time_series"] == mk
    np.testing.assert_array_equal(by["mk"]["time_stamps"], mk_ts)
    assert header["info"]["version"] == ["1.0"]
