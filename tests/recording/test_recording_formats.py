"""The recording layer on real files of every format it reads (written here with numpy,
scipy.io, h5py and rtsnn's XDF writer, plus a session's own recording.xdf), and the bad
inputs each format meets: one ValueError line naming the file and the key / column at fault."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import import_or_skip

from rtsnn.recording import describe, detect_format, open_recording

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mat73 import write_mat73  # noqa: E402

N = 40
RNG = np.random.default_rng(0)
EMG = RNG.normal(size=(N, 3)).astype(np.float32)
FORCE = RNG.normal(size=N)


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------------------- npz
def test_npz_streams_from_keys_rate_labels_units_and_text_markers(tmp_path):
    cue = np.array(["rest"] * 10 + ["left"] * 15 + ["rest"] * 15)
    p = tmp_path / "session.npz"
    np.savez(p, rate_hz=250.0, emg=EMG, emg_labels=np.array(["biceps", "triceps", "deltoid"]),
             emg_units=np.array(["mV"] * 3), force=FORCE, cue=cue, cube=np.zeros((N, 2, 2)))
    rec = open_recording(p)
    by = {s.name: s for s in rec.streams}
    assert list(by) == ["emg", "force", "cue"]
    emg = by["emg"]
    np.testing.assert_array_equal(emg.time_series, EMG)
    assert emg.info.channel_labels == ["biceps", "triceps", "deltoid"] and emg.info.channel_units == ["mV"] * 3
    assert emg.info.nominal_srate_hz == 250.0 and emg.info.channel_format == "float32"
    np.testing.assert_allclose(emg.time_stamps, np.arange(N) / 250.0)
    assert by["force"].time_series.shape == (N, 1) and by["force"].time_series.dtype == np.float64
    np.testing.assert_array_equal(by["force"].time_series[:, 0], FORCE)
    assert by["cue"].time_series[:, 0].tolist() == ["rest", "left", "rest"]
    np.testing.assert_allclose(by["cue"].time_stamps, [0.0, 10 / 250, 25 / 250])
    # the 3-D key is not silently dropped: it is reported
    assert [(r.kind, r.stream) for r in rec.repairs] == [("skipped", "cube")]
    d = {x["name"]: x for x in describe(rec)}
    assert d["cue"]["markers"] == {"count": 3, "labels": {"rest": 2, "left": 1}}
    assert d["emg"]["n_samples"] == N and d["emg"]["duration_s"] == pytest.approx(N / 250.0)
    # grouping keys into one stream, markers from a numeric key
    trial = np.repeat([0, 1, 2, 3], 10)
    np.savez(tmp_path / "g.npz", bin_s=0.02, emg=EMG, force=FORCE, trial=trial)
    rec = open_recording(tmp_path / "g.npz", groups={"all": ["emg", "force"]}, markers={"trials": ["trial"]})
    allst, trials = rec.streams
    assert allst.info.channel_labels == ["emg_0", "emg_1", "emg_2", "force"] and allst.time_series.dtype == np.float64
    assert allst.info.nominal_srate_hz == pytest.approx(50.0)
    assert trials.time_series[:, 0].tolist() == ["0", "1", "2", "3"]
    np.testing.assert_allclose(trials.time_stamps, [0.0, 0.2, 0.4, 0.6])


def test_npz_rate_from_the_file_or_the_caller_and_their_contradiction(tmp_path):
    np.savez(tmp_path / "r.npz", rate_hz=250.0, emg=EMG)
    assert open_recording(tmp_path / "r.npz", bin_s=0.004).streams[0].info.nominal_srate_hz == 250.0
    with pytest.raises(ValueError) as err:
        open_recording(tmp_path / "r.npz", bin_s=0.02)
    assert _one_line(err).startswith(f"{tmp_path / 'r.npz'}: bin_s 0.02 given (50 Hz) contradicts the file's "
                                     f"rate_hz 250 (250 Hz)")
    np.savez(tmp_path / "none.npz", emg=EMG)
    with pytest.raises(ValueError) as err:
        open_recording(tmp_path / "none.npz")
    assert "no sampling rate" in _one_line(err) and "--rate-hz R or --bin-s S" in str(err.value)
    assert open_recording(tmp_path / "none.npz", rate_hz=1000.0).streams[0].time_stamps[1] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match=r"rate_hz 100 and bin_s 0.02 disagree"):
        open_recording(tmp_path / "none.npz", rate_hz=100.0, bin_s=0.02)
    with pytest.raises(ValueError, match="rate_hz must be a positive finite number"):
        open_recording(tmp_path / "none.npz", rate_hz=-1.0)
    np.savez(tmp_path / "both.npz", rate_hz=100.0, bin_s=0.02, emg=EMG)
    with pytest.raises(ValueError, match="the file's rate_hz 100 and bin_s 0.02 disagree"):
        open_recording(tmp_path / "both.npz")


def test_npz_bad_inputs_name_the_key(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, bin_s=0.1, emg=EMG, meta=np.array([{"subject": 1}], dtype=object))
    with pytest.raises(ValueError) as err:
        open_recording(p)
    assert _one_line(err) == (f"{p}: key 'meta' holds Python objects (a pickled object array); rtsnn never "
                              f"unpickles: save it as a number or text array")
    np.savez(tmp_path / "rows.npz", bin_s=0.1, emg=EMG, force=FORCE[:-1])
    with pytest.raises(ValueError, match="key 'force' has 39 rows, other keys have 40"):
        open_recording(tmp_path / "rows.npz")
    with pytest.raises(ValueError) as err:
        open_recording(tmp_path / "rows.npz", groups={"x": ["emg", "vel"]})
    assert "stream 'x': key 'vel': no such key; keys found: 'emg', 'force'" in _one_line(err)
    np.savez_compressed(tmp_path / "full.npz", bin_s=0.1, emg=RNG.normal(size=(2000, 8)))
    data = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as err:
        open_recording(tmp_path / "cut.npz")
    assert _one_line(err).startswith(f"{tmp_path / 'cut.npz'}: not a readable npz archive, damaged or cut short?")


def test_the_format_comes_from_the_content_not_the_name(tmp_path):
    """The issue's case: CSV text handed over as an npz gets a line saying so, not numpy's
    allow_pickle error; a name that mentions a bin width changes nothing."""
    p = tmp_path / "spikes_bin50ms.npz"
    p.write_text("t,unit_1\n0,1\n0.001,0\n")
    with pytest.raises(ValueError) as err:
        open_recording(p)
    assert _one_line(err) == (f"{p}: its suffix '.npz' says npz but the content is csv text; rename the file or "
                              f"pass fmt='csv'")
    rec = open_recording(p, fmt="csv", time_column="t")
    assert rec.streams[0].info.nominal_srate_hz == 1000.0  # from the time column, not '50ms'
    np.savez(tmp_path / "x_bin50ms.npz", emg=EMG)
    with pytest.raises(ValueError, match="no sampling rate"):
        open_recording(tmp_path / "x_bin50ms.npz")
    (tmp_path / "blob.dat").write_bytes(b"\x01\x02\x03")
    with pytest.raises(ValueError, match="unknown recording format"):
        open_recording(tmp_path / "blob.dat")
    assert detect_format(tmp_path / "x_bin50ms.npz") == "npz"
    with pytest.raises(ValueError, match="no such file"):
        open_recording(tmp_path / "missing.xdf")


# ---------------------------------------------------------------------------- CSV
def _csv(path: Path, header: list[str], rows: np.ndarray, tail: str = "") -> Path:
    lines = [",".join(header)] + [",".join(f"{v:.9g}" for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n" + tail)
    return path


def test_csv_time_column_stated_rate_and_column_groups(tmp_path):
    t = 5.0 + np.arange(N) * 0.004
    p = _csv(tmp_path / "rec.csv", ["time_s", "c3", "c4", "cue"], np.c_[t, EMG[:, :2], np.repeat([0, 1], 20)])
    rec = open_recording(p)
    (st,) = rec.streams
    assert st.name == "rec" and st.info.channel_labels == ["c3", "c4", "cue"]
    assert st.info.nominal_srate_hz == 250.0 and st.time_series.dtype == np.float32
    np.testing.assert_allclose(st.time_stamps, t)
    eeg, cues = open_recording(p, groups={"eeg": ["c*"]}, markers={"cue": ["cue"]}).streams
    assert eeg.info.channel_labels == ["c3", "c4"] and cues.time_series[:, 0].tolist() == ["0", "1"]
    np.testing.assert_allclose(cues.time_stamps, [t[0], t[20]])
    with pytest.raises(ValueError) as err:
        open_recording(p, groups={"eeg": ["c3", "cz"]})
    assert _one_line(err) == (f"{p}: stream 'eeg': column 'cz': no such column; columns found: 'time_s', 'c3', "
                              f"'c4', 'cue'")
    with pytest.raises(ValueError, match=r"no time column 'stamp'; columns found: 'time_s', 'c3'"):
        open_recording(p, time_column="stamp")
    with pytest.raises(ValueError, match=r"rate_hz 1000 given \(1000 Hz\) contradicts time column 'time_s'"):
        open_recording(p, rate_hz=1000.0)
    # no time column: the rate is stated by the caller
    q = _csv(tmp_path / "norate.csv", ["c3", "c4"], EMG[:, :2])
    with pytest.raises(ValueError, match="no sampling rate"):
        open_recording(q)
    st = open_recording(q, rate_hz=500.0).streams[0]
    np.testing.assert_allclose(st.time_stamps, np.arange(N) / 500.0)
    np.testing.assert_allclose(st.time_series, EMG[:, :2], rtol=1e-6)


def test_csv_cut_short_keeps_its_complete_rows_and_bad_rows_are_one_line(tmp_path):
    p = _csv(tmp_path / "cut.csv", ["timestamp", "a", "b"], np.c_[np.arange(N) * 0.01, EMG[:, :2]], tail="0.4,1.5")
    rec = open_recording(p)
    assert rec.streams[0].n_samples == N
    assert [(r.kind, r.detail) for r in rec.repairs] == [
        ("truncated", "the last row has 2 of 3 fields (the file was cut short); left out")]
    (tmp_path / "bad.csv").write_text("timestamp,a\n0,1\n0.001,abc\n")
    with pytest.raises(ValueError, match="a data row is not numeric"):
        open_recording(tmp_path / "bad.csv")
    (tmp_path / "dup.csv").write_text("timestamp,a,a\n0,1,2\n")
    with pytest.raises(ValueError, match=r"header names \['a'\] more than once"):
        open_recording(tmp_path / "dup.csv")
    (tmp_path / "head.csv").write_text("timestamp,a\n")
    with pytest.raises(ValueError, match="no data rows"):
        open_recording(tmp_path / "head.csv")


# ---------------------------------------------------------------------------- MATLAB
def test_mat_v5_variables_as_streams(tmp_path):
    sio = import_or_skip("scipy.io")
    p = tmp_path / "rec.mat"
    sio.savemat(p, {"emg": EMG.astype(np.float64), "force": FORCE.reshape(1, -1), "rate_hz": 500.0,
                    "emg_labels": np.array(["biceps", "triceps", "deltoid"], dtype=object),
                    "trial": np.repeat([1, 2], 20).astype(np.int32).reshape(-1, 1),
                    "subject": {"age": 30}})
    assert detect_format(p) == "mat"
    rec = open_recording(p, markers={"trials": ["trial"]})
    by = {s.name: s for s in rec.streams}
    assert set(by) == {"emg", "force", "trials"}
    np.testing.assert_allclose(by["emg"].time_series, EMG)
    assert by["emg"].info.channel_labels == ["biceps", "triceps", "deltoid"]
    np.testing.assert_array_equal(by["force"].time_series[:, 0], FORCE)  # a 1 x n vector: one channel
    assert by["emg"].info.nominal_srate_hz == 500.0
    assert by["trials"].time_series[:, 0].tolist() == ["1", "2"]
    assert [(r.kind, r.stream) for r in rec.repairs] == [("skipped", "subject")]
    with pytest.raises(ValueError) as err:
        open_recording(p, groups={"x": ["emg", "vel"]})
    assert _one_line(err) == (f"{p}: stream 'x': variable 'vel': no such variable; variables found: 'emg', "
                              f"'force', 'trial'")
    with pytest.raises(ValueError, match=r"variable 'subject': not readable as a column \(a MATLAB struct"):
        open_recording(p, groups={"x": ["subject"]})
    with pytest.raises(ValueError, match=r"bin_s 0.01 given \(100 Hz\) contradicts the file's rate_hz 500"):
        open_recording(p, bin_s=0.01)
    data = p.read_bytes()
    (tmp_path / "cut.mat").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as err:
        open_recording(tmp_path / "cut.mat")
    assert _one_line(err).startswith(f"{tmp_path / 'cut.mat'}: not a readable MATLAB v5 file, damaged or cut short?")


def test_mat_v73_hdf5_variables_transposed_back(tmp_path):
    import_or_skip("h5py")
    p = write_mat73(tmp_path / "rec73.mat", {"emg": EMG, "force": FORCE.reshape(-1, 1), "bin_s": 0.002,
                                            "emg_labels": ["biceps", "triceps", "deltoid"], "note": "pilot"})
    assert p.read_bytes()[:19] == b"MATLAB 7.3 MAT-file" and detect_format(p) == "mat"
    rec = open_recording(p)
    by = {s.name: s for s in rec.streams}
    assert set(by) == {"emg", "force"}
    np.testing.assert_array_equal(by["emg"].time_series, EMG)  # (n, 3) again, float32 kept
    assert by["emg"].info.channel_labels == ["biceps", "triceps", "deltoid"]
    assert by["emg"].info.nominal_srate_hz == pytest.approx(500.0)
    np.testing.assert_array_equal(by["force"].time_series[:, 0], FORCE)
    assert ("skipped", "note") in [(r.kind, r.stream) for r in rec.repairs]
    with pytest.raises(ValueError, match=r"variable 'vel': no such variable; variables found: 'emg', 'force'"):
        open_recording(p, groups={"x": ["vel"]})
    data = p.read_bytes()
    (tmp_path / "cut73.mat").write_bytes(data[:700])
    with pytest.raises(ValueError) as err:
        open_recording(tmp_path / "cut73.mat")
    assert _one_line(err).startswith(f"{tmp_path / 'cut73.mat'}: not a readable MATLAB v7.3 (HDF5) file")
    (tmp_path / "v4.mat").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a MATLAB v5 or v7.3 MAT-file"):
        open_recording(tmp_path / "v4.mat")


# ---------------------------------------------------------------------------- XDF
def test_a_sessions_own_recording_xdf_reads_as_pyxdf_reads_it(tmp_path, spike_recording):
    """record -> recording.xdf -> the layer: the same arrays pyxdf decodes, stream by stream."""
    import pyxdf

    from rtsnn.config import parse_config
    from rtsnn.runtime.session import Session

    path, xs = spike_recording(300, 6, poisson_mean=0.3, seed=2, name="spk")
    cfg = parse_config({
        "session": {"name": "rec", "pace": "max", "record": True, "out_dir": str(tmp_path / "s"), "monitor": False},
        "source": {"kind": "xdf_file", "options": {"path": str(path), "n_channels": 6}},
        "encoder": {"kind": "passthrough", "options": {"n_channels": 6}},
        "model": {"random": {"n_rec": 16, "n_out": 2, "seed": 0}}})
    summary = Session(cfg).run()
    xdf = summary["recording"]["path"]
    rec = open_recording(xdf)
    streams, _ = pyxdf.load_xdf(xdf, synchronize_clocks=False, dejitter_timestamps=False)
    assert {s.name for s in rec.streams} == {st["info"]["name"][0] for st in streams}
    for st in streams:
        ours = next(s for s in rec.streams if s.name == st["info"]["name"][0])
        np.testing.assert_array_equal(ours.time_stamps, st["time_stamps"])
        if ours.n_samples:  # pyxdf gives an empty stream as shape (0,); ours keeps (0, channels)
            np.testing.assert_array_equal(np.asarray(ours.time_series), np.asarray(st["time_series"]))
        assert ours.n_samples == len(st["time_stamps"])
    inputs = next(d for d in describe(rec) if d["name"] == "rec-inputs")
    assert inputs["n_samples"] == 300 and inputs["channel_count"] == 6
    np.testing.assert_array_equal(next(s for s in rec.streams if s.name == "rec-inputs").time_series, xs)
    with pytest.raises(ValueError, match="groups apply to npz, CSV and MATLAB files"):
        open_recording(xdf, groups={"a": ["b"]})
