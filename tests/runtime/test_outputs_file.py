"""The one reader of a session folder's outputs (rtsnn/runtime/outputs_file.py): a real
max-pace session's folder read back against its raw bytes; hand-written bad descriptions
refused with one line naming the file and key; a cut-off last row and a missing data file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import reach_session
from rtsnn.runtime.outputs_file import outputs_description, read_outputs

N_NEURONS, DT_S, N_BINS = 8, 0.01, 150
COLUMNS = ["tick", "t_source_s", "t_emit_s", "y_vx", "y_vy", "target_vx", "target_vy"]


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory) -> Path:
    """A short max-pace session (no LSL) replaying a recording file with a teacher."""
    return reach_session(tmp_path_factory.mktemp("outputs_session"), name="outputs-test", n_bins=N_BINS,
                         n_neurons=N_NEURONS, dt_s=DT_S, n_rec=16)


def _hand_folder(tmp_path: Path, data: bytes | None = b"", **meta_changes) -> Path:
    """A folder with a hand-written outputs.json (the writer's, for outputs vx, vy, changed by
    ``meta_changes``; a value of None deletes the key) and ``data`` as outputs.f64 (None: none)."""
    meta = outputs_description(["vx", "vy"], ["cm/s", "cm/s"])
    for key, value in meta_changes.items():
        if value is None:
            del meta[key]
        else:
            meta[key] = value
    folder = tmp_path / "hand"
    folder.mkdir(exist_ok=True)
    (folder / "outputs.json").write_text(json.dumps(meta))
    if data is not None:
        (folder / "outputs.f64").write_bytes(data)
    return folder


def test_a_real_session_folder_reads_back_its_bytes(session_dir):
    rec = read_outputs(session_dir)
    assert rec.columns == COLUMNS
    assert rec.labels == ["vx", "vy"]
    assert rec.units == {"tick": "", "t_source_s": "s", "t_emit_s": "s", "y_vx": "cm/s", "y_vy": "cm/s",
                         "target_vx": "cm/s", "target_vy": "cm/s"}
    raw = np.fromfile(session_dir / "outputs.f64", "<f8")
    assert raw.size == N_BINS * len(COLUMNS) and rec.dropped_partial_bytes == 0
    assert rec.rows.dtype == np.float64 and rec.rows.shape == (N_BINS, len(COLUMNS))
    np.testing.assert_array_equal(rec.rows, raw.reshape(N_BINS, len(COLUMNS)))
    np.testing.assert_array_equal(rec.rows[:, 0], np.arange(N_BINS))  # one row per tick, in order
    assert rec.data_found and rec.data_path == session_dir / "outputs.f64"


def test_a_row_cut_off_by_a_crash_is_left_out_and_counted(session_dir, tmp_path):
    folder = tmp_path / "crashed"
    folder.mkdir()
    shutil.copy(session_dir / "outputs.json", folder)
    raw = (session_dir / "outputs.f64").read_bytes()
    (folder / "outputs.f64").write_bytes(raw[:10 * 8 * len(COLUMNS) + 13])  # 10 rows and 13 bytes
    rec = read_outputs(folder)
    assert rec.rows.shape == (10, len(COLUMNS)) and rec.dropped_partial_bytes == 13
    np.testing.assert_array_equal(rec.rows, read_outputs(session_dir).rows[:10])
    (folder / "outputs.f64").write_bytes(raw[:20])  # less than one row
    rec = read_outputs(folder)
    assert rec.rows.shape == (0, len(COLUMNS)) and rec.dropped_partial_bytes == 20 and rec.data_found


def test_a_missing_data_file_is_a_session_that_stopped_before_its_first_tick(tmp_path):
    rec = read_outputs(_hand_folder(tmp_path, data=None))
    assert rec.rows.shape == (0, len(COLUMNS)) and rec.rows.dtype == np.float64
    assert rec.dropped_partial_bytes == 0 and not rec.data_found


def test_a_folder_without_units_gets_seconds_for_times_and_none_for_outputs(tmp_path):
    rows = np.arange(2 * len(COLUMNS), dtype="<f8")
    rec = read_outputs(_hand_folder(tmp_path, rows.tobytes(), units=None))
    assert rec.units == {"tick": "", "t_source_s": "s", "t_emit_s": "s", "y_vx": None, "y_vy": None,
                         "target_vx": None, "target_vy": None}
    np.testing.assert_array_equal(rec.rows, rows.reshape(2, len(COLUMNS)))


@pytest.mark.parametrize("changes, words", [
    ({"columns": []}, "outputs.json: columns: expected a non-empty list of column names"),
    ({"columns": None}, "outputs.json: columns: expected a non-empty list of column names"),
    ({"columns": "tick"}, "outputs.json: columns: expected a non-empty list of column names"),
    ({"columns": ["tick", "t_source_s", "t_emit_s", 1, 2]}, "outputs.json: columns: expected a non-empty list"),
    ({"columns": ["tick", "t_source_s", "t_emit_s"]}, "outputs.json: columns: expected [tick, t_source_s"),
    ({"columns": ["tick", "t_source_s", "t_emit_s", "y_vx"]}, "outputs.json: columns: expected [tick"),
    ({"columns": ["tick", "t_source_s", "t_emit_s", "y_vx", "target_vy"]}, "outputs.json: columns: expected [tick"),
    ({"columns": ["t", "t_source_s", "t_emit_s", "y_vx", "target_vx"]}, "outputs.json: columns: expected [tick"),
    ({"columns": COLUMNS[:3] + ["y_a", "y_a", "target_a", "target_a"]}, "outputs.json: columns: names repeat"),
    ({"dtype": "float32"}, "outputs.json: dtype: expected 'float64', got 'float32'"),
    ({"dtype": None}, "outputs.json: dtype: expected 'float64', got None"),
    ({"file": "../x"}, "outputs.json: file: expected a plain file name in the session folder"),
    ({"file": "/etc/passwd"}, "outputs.json: file: expected a plain file name in the session folder"),
    ({"file": "sub/outputs.f64"}, "outputs.json: file: expected a plain file name"),
    ({"file": ".."}, "outputs.json: file: expected a plain file name"),
    ({"file": None}, "outputs.json: file: expected a plain file name"),
    ({"file": 3}, "outputs.json: file: expected a plain file name"),
    ({"units": ["cm/s"]}, "outputs.json: units: expected an object {column: unit}"),
    ({"units": {"y_vx": 1}}, "outputs.json: units.y_vx: expected a string, got 1"),
    ({"units": {"y_vz": "cm/s"}}, "outputs.json: units.y_vz: no such column"),
])
def test_a_bad_description_is_one_line_naming_the_file_and_key(tmp_path, changes, words):
    folder = _hand_folder(tmp_path, np.zeros(len(COLUMNS), "<f8").tobytes(), **changes)
    with pytest.raises(ValueError) as err:
        read_outputs(folder)
    msg = str(err.value)
    assert msg.startswith(str(folder / "outputs.json")) and words in msg and "\n" not in msg


def test_file_outside_the_folder_is_never_opened(tmp_path):
    """An outputs.json pointing at ../secret.f64 is refused, though that file holds valid rows."""
    (tmp_path / "secret.f64").write_bytes(np.ones(len(COLUMNS), "<f8").tobytes())
    folder = _hand_folder(tmp_path, data=None, file="../secret.f64")
    with pytest.raises(ValueError, match="file: expected a plain file name"):
        read_outputs(folder)
    # a plain file name other than outputs.f64 is read
    (folder / "rows.bin").write_bytes(np.ones(len(COLUMNS), "<f8").tobytes())
    (folder / "outputs.json").write_text(json.dumps(outputs_description(["vx", "vy"], []) | {"file": "rows.bin"}))
    rec = read_outputs(folder)
    np.testing.assert_array_equal(rec.rows, np.ones((1, len(COLUMNS))))
    assert rec.units["y_vx"] == ""  # a model without units: "" (unknown), as the writer writes


@pytest.mark.parametrize("setup, words", [
    ("missing", "no such session folder"),
    ("a_file", "not a folder"),
    ("no_json", "not a session folder (no outputs.json"),
    ("not_json", "outputs.json: not readable as JSON"),
    ("json_list", "outputs.json: expected a JSON object, got list"),
    ("data_is_dir", "outputs.f64: not a file"),
])
def test_what_is_not_a_session_folder(tmp_path, setup, words):
    folder = tmp_path / "f"
    if setup == "a_file":
        folder.write_text("x")
    elif setup != "missing":
        folder.mkdir()
    if setup == "not_json":
        (folder / "outputs.json").write_text("{\"columns\": [")
    if setup == "json_list":
        (folder / "outputs.json").write_text("[]")
    if setup == "data_is_dir":
        folder = _hand_folder(tmp_path, data=None)
        (folder / "outputs.f64").mkdir()
    with pytest.raises(ValueError) as err:
        read_outputs(folder)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_writer_and_the_reader_agree(tmp_path):
    meta = outputs_description(["a", "b", "c"], [])
    assert meta["columns"] == ["tick", "t_source_s", "t_emit_s", "y_a", "y_b", "y_c",
                               "target_a", "target_b", "target_c"]
    assert meta["units"]["y_b"] == "" and meta["units"]["t_emit_s"] == "s"
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "outputs.json").write_text(json.dumps(meta, allow_nan=False))
    rec = read_outputs(folder)
    assert rec.columns == meta["columns"] and rec.labels == ["a", "b", "c"] and rec.units == meta["units"]
