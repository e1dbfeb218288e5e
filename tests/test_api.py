"""The public Python API (rtsnn/__init__.py, rtsnn/api.py): config loading, a session driven
from Python in the background, outputs read back, and the example script a notebook follows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import pytest
import yaml

import rtsnn

REPO = Path(__file__).resolve().parents[1]


def _demo_dict(out_dir: Path, duration_s: float | None, calibration_s: float = 1.0) -> dict:
    """The embedded demo config (cli._demo_config_dict's file), shortened."""
    cfg = yaml.safe_load(resources.files("rtsnn").joinpath("configs/demo.yaml").read_text())
    cfg["session"].update(duration_s=duration_s, out_dir=str(out_dir), name="api-test")
    cfg["learner"]["options"]["calibration_s"] = calibration_s
    return cfg


def test_version_and_public_names():
    assert rtsnn.__version__ == metadata.version("rtsnn")
    for name in rtsnn.__all__:
        assert getattr(rtsnn, name) is not None
    assert rtsnn.load_model is __import__("rtsnn.snn", fromlist=["load_model"]).load_model
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rtsnn.nope  # noqa: B018


def test_import_rtsnn_stays_light():
    code = ("import sys, rtsnn; heavy = [m for m in ('numpy', 'numba', 'pylsl', 'rtsnn.api', 'rtsnn.runtime') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_load_config_from_path_and_dict(tmp_path):
    data = _demo_dict(tmp_path, 5.0)
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(data))
    from_file = rtsnn.load_config(path)
    from_str = rtsnn.load_config(str(path))
    from_dict = rtsnn.load_config(data)
    assert isinstance(from_dict, rtsnn.SessionConfig)
    assert from_file == from_str == from_dict
    assert from_dict.session.duration_s == 5.0 and from_dict.source.kind == "lsl"
    assert rtsnn.load_config(from_dict) is from_dict


def test_load_config_bad_dict_names_the_key(tmp_path):
    data = _demo_dict(tmp_path, 5.0)
    data["session"]["dt_ms"] = 1
    with pytest.raises(rtsnn.ConfigError, match=r"<dict>: session\.dt_ms: unknown key"):
        rtsnn.load_config(data)
    data = _demo_dict(tmp_path, 5.0)
    data["session"]["dt_s"] = -0.001
    with pytest.raises(rtsnn.ConfigError, match=r"session\.dt_s: Input should be greater than 0"):
        rtsnn.load_config(data)
    with pytest.raises(rtsnn.ConfigError, match="no such config file"):
        rtsnn.load_config(tmp_path / "missing.yaml")
    with pytest.raises(rtsnn.ConfigError, match="got list"):
        rtsnn.load_config([1, 2])  # type: ignore[arg-type]


def test_session_with_a_bad_plugin_option_raises_at_construction(tmp_path):
    data = _demo_dict(tmp_path, 5.0)
    data["encoder"] = {"kind": "passthrough", "options": {"n_channels": 96, "gain_db": 3}}
    with pytest.raises(rtsnn.ConfigError, match="encoder"):
        rtsnn.Session(data)
    assert not list(tmp_path.glob("api-test-*"))  # nothing ran, no folder


def test_never_started_session_refuses_stop(tmp_path):
    session = rtsnn.Session(_demo_dict(tmp_path, 5.0))
    st = session.status()
    assert st["running"] is False and st["ticks"] == 0 and st["folder"] is None and st["error"] is None
    with pytest.raises(RuntimeError, match="never started"):
        session.stop()


@pytest.mark.lsl
def test_session_start_status_stop_and_load_outputs(tmp_path):
    session = rtsnn.Session(_demo_dict(tmp_path, None))  # no duration: runs until stop()
    assert session.start() is session
    with pytest.raises(RuntimeError, match="already run"):
        session.start()
    deadline = time.monotonic() + 120  # a guard against a hang, not a timing assert
    st = session.status()
    while (st["ticks"] < 1500 or st["r2"] is None) and st["error"] is None and time.monotonic() < deadline:
        time.sleep(0.2)
        st = session.status()
    assert st["error"] is None
    assert st["running"] is True
    assert st["ticks"] >= 1500 and st["deadline_misses"] >= 0
    assert np.isfinite(st["r2"]) and st["e2e_p99_us"] > 0
    assert st["source"]["samples"] > 0 and st["source"]["connected"] is True
    folder = Path(st["folder"])
    assert folder.parent == tmp_path and (folder / "config.yaml").is_file()

    summary = session.stop()
    assert summary["stopped_by"] == "stop()"
    assert summary["ticks"] >= st["ticks"]
    after = session.status()
    assert after["running"] is False and after["ticks"] == summary["ticks"]
    assert session.stop() == summary  # stopping twice returns the same summary

    out = rtsnn.load_outputs(folder)
    meta = json.loads((folder / "outputs.json").read_text())
    assert list(out["units"]) == meta["columns"]
    assert set(out) == set(meta["columns"]) | {"units"}
    assert meta["columns"] == ["tick", "t_source_s", "t_emit_s", "y_vx", "y_vy", "target_vx", "target_vy"]
    assert out["units"]["y_vx"] == "a.u./s" and out["units"]["t_emit_s"] == "s"
    assert summary["outputs_dropped"] == 0
    assert len(out["tick"]) == summary["ticks"]
    assert np.all(np.diff(out["tick"]) >= 1)  # one row per timed tick, in order
    assert np.all(np.isfinite(out["y_vx"])) and np.all(np.isfinite(out["target_vy"]))
    # the file is the truth: same numbers as a raw read
    raw = np.fromfile(folder / "outputs.f64", "<f8").reshape(-1, len(meta["columns"]))
    np.testing.assert_array_equal(out["y_vy"], raw[:, 4])

    # a crash mid-row: the partial row is left out, the rest read
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(folder / "outputs.json", broken)
    (broken / "outputs.f64").write_bytes((folder / "outputs.f64").read_bytes()[:-8])
    assert len(rtsnn.load_outputs(broken)["tick"]) == summary["ticks"] - 1


def test_load_outputs_refuses_a_folder_that_is_not_a_session(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"not a session folder \(no outputs.json"):
        rtsnn.load_outputs(tmp_path)
    with pytest.raises(ValueError, match="no such session folder"):
        rtsnn.load_outputs(tmp_path / "nope")
    (tmp_path / "outputs.json").write_text("{\"file\": \"outputs.f64\"}")
    with pytest.raises(ValueError, match=r"outputs.json: columns: expected a non-empty list"):
        rtsnn.load_outputs(tmp_path)


def test_save_and_load_model_round_trip(tmp_path):
    from rtsnn.snn import Model

    model = Model.random(8, 16, 2, dt_s=0.001, seed=3)
    path = rtsnn.save_model(tmp_path / "m.npz", model)
    back = rtsnn.load_model(path)
    assert (back.n_in, back.n_rec, back.n_out) == (8, 16, 2)
    np.testing.assert_array_equal(back.weights.w_in, model.weights.w_in)


@pytest.mark.lsl
def test_notebook_example_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "notebook_session.py"), "--watch", "7",
                           "--calibration", "2", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"rtsnn {rtsnn.__version__}" in proc.stdout
    assert "running=True" in proc.stdout
    lines = [line for line in proc.stdout.splitlines() if line.startswith("R^2 ")]
    assert [line.split()[1] for line in lines] == ["vx", "vy"]
    folder = next(tmp_path.glob("notebook-*"))
    assert json.loads((folder / "summary.json").read_text())["stopped_by"] == "stop()"
