import json
import subprocess
import sys

import pytest


def rtsnn(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "rtsnn.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_plugins_lists_builtins_json():
    p = rtsnn("plugins", "--json")
    assert p.returncode == 0, p.stderr
    table = json.loads(p.stdout)
    assert any(r["name"] == "numba_cpu" for r in table["rtsnn.backends"])


def test_config_check_ok_and_bad(tmp_path):
    p = rtsnn("config", "check", "configs/demo.yaml")
    assert p.returncode == 0 and "ok" in p.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: {kind: lsl, options: {name: x, n_channels: 2, colour: red}}\n"
                   "encoder: {kind: passthrough, options: {n_channels: 2}}\n")
    p = rtsnn("config", "check", str(bad))
    assert p.returncode == 2
    assert str(bad) in p.stderr and "source.options" in p.stderr and "colour" in p.stderr
    bad.write_text("source: {kind: lsl, options: {name: x, n_channels: 2}}\n"
                   "encoder: {kind: passthrough, options: {n_channels: 2}}\n"
                   "learner: {kind: actor_critic}\n"
                   "reward: {kind: telepathy}\n")
    p = rtsnn("config", "check", str(bad))
    assert p.returncode == 2 and "no rtsnn.rewards plugin named 'telepathy'" in p.stderr


def test_run_with_invalid_config_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("session: {dt_s: fast}\nsource: {kind: lsl}\nencoder: {kind: passthrough}\n")
    p = rtsnn("run", str(bad))
    assert p.returncode == 2 and "session.dt_s" in p.stderr


def test_run_json_and_model_info_on_a_real_recording(tmp_path):
    """`rtsnn run CONFIG --json` end to end (a recording replayed at max pace, so nothing
    external is needed), then `rtsnn model info` on a saved model file."""
    from pathlib import Path

    import numpy as np
    import yaml

    from rtsnn.snn import Model, NeuronSettings, save_model
    from rtsnn.stream.xdf_writer import write_xdf_stream

    xs = (np.random.default_rng(0).random((500, 6)) < 0.1).astype(np.float32)
    write_xdf_stream(tmp_path / "in.xdf", xs, 1000.0, name="spk", type="Spikes")
    cfg = {"session": {"name": "cli", "pace": "max", "out_dir": str(tmp_path / "s"), "monitor": False},
           "source": {"kind": "xdf_file", "options": {"path": str(tmp_path / "in.xdf"), "n_channels": 6}},
           "encoder": {"kind": "passthrough", "options": {"n_channels": 6}},
           "model": {"random": {"n_rec": 16, "n_out": 2}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = rtsnn("run", str(tmp_path / "c.yaml"), "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])  # strict JSON (no NaN)
    assert summary["ticks"] == 500 and summary["samples_in"] == 500 and summary["pace"] == "max"
    assert summary["stage_latency_us"]["learn"]["p99"] is None  # no learner: an empty series is null
    assert Path(summary["folder"], "summary.json").is_file()

    m = Model.random(3, 5, 2, NeuronSettings(), seed=0)
    save_model(tmp_path / "m.npz", m)
    p = rtsnn("model", "info", str(tmp_path / "m.npz"))
    assert p.returncode == 0, p.stderr
    header = json.loads(p.stdout)
    assert header["shapes"]["w_in"] == [3, 5] and header["settings"]["model"] == m.settings.model
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    p = rtsnn("model", "info", str(tmp_path / "bad.npz"))
    assert p.returncode == 2 and "bad.npz" in p.stderr
