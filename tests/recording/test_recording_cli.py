"""``rtsnn recording info`` prints what the layer sees (a table, or one strict JSON line), and
``rtsnn replay`` takes the same layout options; bad input is one ``rtsnn: error:`` line naming
the file and the key, column or stream, with exit status 2."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import import_or_skip

from rtsnn.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mat73 import write_mat73  # noqa: E402

N = 50
EMG = np.random.default_rng(1).normal(size=(N, 3)).astype(np.float32)


def _strict(line: str):
    return json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_info_table_and_strict_json(tmp_path, capsys):
    p = tmp_path / "rec.npz"
    np.savez(p, emg=EMG, emg_labels=np.array(["a", "b", "c"]), trial=np.repeat([0, 1], N // 2))
    assert main(["recording", "info", str(p), "--bin-s", "0.01", "--markers", "trials=trial"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{p}: npz, 2 streams"
    assert out[1].split() == ["NAME", "TYPE", "CHANNELS", "FORMAT", "RATE_HZ", "SAMPLES", "DURATION_S"]
    assert out[2].split() == ["emg", "-", "3", "float32", "100", "50", "0.500"]
    assert out[3].split() == ["trials", "Markers", "1", "string", "irregular", "2", "0.250"]
    assert "  labels: a, b, c" in out and "  markers: 2, labels: 0 x1, 1 x1" in out and out[-1] == "repairs: none"
    assert main(["recording", "info", str(p), "--rate-hz", "100", "--json"]) == 0
    got = _strict(capsys.readouterr().out.strip())
    assert got["file"] == str(p) and got["format"] == "npz" and got["repairs"] == []
    assert [s["name"] for s in got["streams"]] == ["emg", "trial"]
    assert got["streams"][0]["channel_labels"] == ["a", "b", "c"] and got["streams"][0]["nominal_srate_hz"] == 100.0
    # an empty stream's timestamps are null, not NaN
    from rtsnn.recording.xdf_writer import StreamInfoData, XdfWriter

    w = XdfWriter(tmp_path / "e.xdf")
    w.add_stream(1, StreamInfoData("quiet", channel_count=2, nominal_srate_hz=10.0))
    w.close()
    assert main(["recording", "info", str(tmp_path / "e.xdf"), "--json"]) == 0
    (st,) = _strict(capsys.readouterr().out.strip())["streams"]
    assert st["n_samples"] == 0 and st["first_timestamp_s"] is None


def _bad(tmp_path) -> list[tuple[list[str], str]]:
    """(argv, the start of the expected error line) for each bad input."""
    csv = tmp_path / "emg.csv"
    csv.write_text("time_s,c3,c4\n" + "".join(f"{k * 0.004:.3f},{k},{-k}\n" for k in range(N)))
    sio = import_or_skip("scipy.io")
    mat = tmp_path / "rec.mat"
    sio.savemat(mat, {"emg": EMG.astype(np.float64), "rate_hz": 250.0})
    mat73 = write_mat73(tmp_path / "rec73.mat", {"emg": EMG, "bin_s": 0.004})
    obj = tmp_path / "obj.npz"
    np.savez(obj, bin_s=0.1, emg=EMG, meta=np.array([None], dtype=object))
    norate = tmp_path / "norate.npz"
    np.savez(norate, emg=EMG)
    full = tmp_path / "full.npz"
    np.savez_compressed(full, bin_s=0.1, emg=np.random.default_rng(0).normal(size=(3000, 8)))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(full.read_bytes()[:20000])
    return [
        (["--group", "eeg=c3,cz", str(csv)], f"{csv}: stream 'eeg': column 'cz': no such column; columns found: "
                                             f"'time_s', 'c3', 'c4'"),
        (["--group", "x=vel", str(mat)], f"{mat}: stream 'x': variable 'vel': no such variable; variables found: "
                                         f"'emg'"),
        (["--group", "x=vel", str(mat73)], f"{mat73}: stream 'x': variable 'vel': no such variable"),
        (["--rate-hz", "100", str(mat)], f"{mat}: rate_hz 100 given (100 Hz) contradicts the file's rate_hz 250"),
        (["--bin-s", "0.01", str(csv)], f"{csv}: bin_s 0.01 given (100 Hz) contradicts time column 'time_s'"),
        ([str(norate)], f"{norate}: no sampling rate: the file states none"),
        ([str(obj)], f"{obj}: key 'meta' holds Python objects"),
        ([str(cut)], f"{cut}: not a readable npz archive, damaged or cut short?"),
        (["--group", "bad", str(csv)], "--group 'bad': expected NAME=COL[,COL...]"),
    ]


def test_bad_inputs_are_one_line_with_exit_2(tmp_path, capsys):
    for argv, start in _bad(tmp_path):
        assert main(["recording", "info", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert err.startswith("rtsnn: error: " + start), (argv, err)


@pytest.mark.lsl
def test_replay_takes_the_rate_and_layout_options(tmp_path, capsys):
    p = tmp_path / "rec.npz"
    np.savez(p, emg=EMG, force=EMG[:, 0] * 2, trial=np.repeat([0, 1], N // 2))
    prefix = f"rtsnn-test-{uuid.uuid4().hex[:8]}-"
    assert main(["replay", str(p), "--speed", "max", "--json", "--prefix", prefix]) == 2
    assert "no sampling rate" in capsys.readouterr().err
    assert main(["replay", str(p), "--bin-s", "0.01", "--group", "all=emg,force", "--markers", "trials=trial",
                 "--speed", "max", "--json", "--prefix", prefix]) == 0
    summary = _strict(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["samples"] == {prefix + "all": N, prefix + "trials": 2}
    assert summary["duration_s"] == pytest.approx((N - 1) * 0.01)
