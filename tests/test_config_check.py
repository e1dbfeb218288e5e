"""``rtsnn config check``: session and pretraining configs, every stage built from its options,
files that must exist, channel agreement, and every problem reported at once (FILE: KEY: message)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest
import yaml

from conftest import import_or_skip

from rtsnn.cli import main
from rtsnn.config import ConfigError, parse_config
from rtsnn.config_check import PRETRAIN, SESSION, check_config_file

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
CHEWIE = ROOT.parent / "shared" / "data" / "neural" / "chewie_20131003_bin100ms.npz"


def _write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path


def _check(capsys, path) -> tuple[int, list[str], list[str]]:
    rc = main(["config", "check", str(path)])
    cap = capsys.readouterr()
    return rc, cap.out.splitlines(), cap.err.splitlines()


def _session(**over):
    """A minimal valid session config (LSL in and out: constructing never resolves or opens)."""
    base = {"session": {"name": "cc", "dt_s": 0.001},
            "source": {"kind": "lsl", "options": {"name": "cc-in", "n_channels": 4}},
            "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
            "model": {"random": {"n_rec": 8, "n_out": 2}}}
    base.update(over)
    return base


def _save_model(path: Path, n_in: int, n_out: int = 2, dt_s: float = 0.001) -> Path:
    from rtsnn.snn import Model, save_model

    save_model(path, Model.random(n_in, 8, n_out, dt_s=dt_s, seed=0))
    return path


# ------------------------------------------------------------------ the shipped configs
@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_passes(path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # session configs name paths relative to where `rtsnn run` starts
    kind = PRETRAIN if "data" in yaml.safe_load(path.read_text()) else SESSION
    if path.name == "brainflow_synthetic.yaml":
        import_or_skip("brainflow", reason="the brainflow plugin is not installed (dev install has it)")
    rel = os.path.relpath(path, ROOT)
    rc, out, err = _check(capsys, rel)
    if path.name == "pretrain_chewie.yaml" and not CHEWIE.exists() and not os.environ.get("CI"):
        # a user's clone without ../shared/data: exactly the missing recording is reported
        assert rc == 2 and len(err) == 1 and err[0].startswith(f"{rel}: data.path: no such file"), err
        return
    assert (rc, out, err) == (0, [f"{rel}: ok ({kind})"], [])


def test_printed_path_is_normalised(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rc, out, _ = _check(capsys, "./configs/../configs/./demo.yaml")
    assert rc == 0 and out == ["configs/demo.yaml: ok (session config)"]


# ------------------------------------------------------------------ every error at once
def test_several_errors_are_all_reported_one_line_each(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _write(tmp_path / "bad.yaml", _session(
        encoder={"kind": "passthrough", "options": {"n_channels": "four"}},
        model={"path": "models/decoder.npz"},
        sinks=[{"kind": "lsl", "options": {"name": "ok-sink"}}, {"kind": "carrier_pigeon", "options": {}}]))
    rc, out, err = _check(capsys, cfg)
    assert rc == 2 and out == []
    assert len(err) == 3, err
    by_key = {line.split(": ")[1]: line for line in err}
    assert all(line.startswith(f"{cfg}: ") for line in err)
    assert "'four'" in by_key["encoder.options"]
    assert by_key["model.path"].endswith(
        f"no such file 'models/decoder.npz' (relative to the current directory: {tmp_path}/models/decoder.npz)")
    assert "no rtsnn.sinks plugin named 'carrier_pigeon'; installed:" in by_key["sinks.1.kind"]


def test_errors_through_the_real_command_have_no_traceback(tmp_path):
    cfg = _write(tmp_path / "bad.yaml", _session(
        encoder={"kind": "passthrough", "options": {"n_channels": "four"}},
        learner={"kind": "ridge_readout", "options": {"calibration_s": 1.0, "bogus": 2}},
        sinks=[{"kind": "lsl", "options": {"name": "x", "colour": "red"}}]))
    p = subprocess.run([sys.executable, "-m", "rtsnn.cli", "config", "check", str(cfg)], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 2 and p.stdout == ""
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith(str(cfg))]
    assert [ln.split(": ")[1] for ln in lines] == ["encoder.options", "learner.options", "sinks.0.options"]
    assert "Traceback" not in p.stderr


def test_schema_errors_and_stage_errors_together(tmp_path, capsys):
    """An invalid session section does not hide the stages' own problems."""
    cfg = _write(tmp_path / "bad.yaml", _session(
        session={"dt_s": -1},
        encoder={"kind": "passthrough", "options": {"n_channels": 5}},
        reward={"kind": "lsl", "options": {"name": "r"}}))
    rc, _, err = _check(capsys, cfg)
    assert rc == 2
    assert err == [f"{cfg}: session.dt_s: Input should be greater than 0 (got -1)",
                   f"{cfg}: reward: the learner (none) does not take rewards; use a reward-driven learner such as "
                   f"actor_critic",
                   f"{cfg}: encoder.options.n_channels: encoder expects 5 channels but the source delivers 4"]


def test_channel_and_tick_mismatches_are_the_sessions_own(tmp_path, capsys):
    data = _session(session={"dt_s": 0.002, "budget_us": 800},
                    teacher={"kind": "lsl", "options": {"name": "t", "n_channels": 3}},
                    encoder={"kind": "delta", "options": {"n_channels": 5, "delta": 1.0, "dt_s": 0.001}})
    cfg = _write(tmp_path / "mismatch.yaml", data)
    rc, _, err = _check(capsys, cfg)
    assert rc == 2
    assert err == [f"{cfg}: encoder.options.dt_s (0.001 s) differs from session.dt_s (0.002 s); set them equal",
                   f"{cfg}: encoder.options.n_channels: encoder expects 5 channels but the source delivers 4",
                   f"{cfg}: teacher: teacher has 3 channels but the model has 2 outputs"]
    # the session refuses the same config with the same words (one shared check)
    from rtsnn.runtime.session import Session

    with pytest.raises(ConfigError) as e:
        Session(parse_config(data, str(cfg)), str(cfg))
    assert str(e.value).splitlines() == err[:2]


def test_session_dt_is_handed_to_stages_as_the_session_does(tmp_path, capsys):
    """delta takes a dt_s; left out, it gets session.dt_s (no mismatch reported)."""
    cfg = _write(tmp_path / "ok.yaml", _session(session={"dt_s": 0.004, "budget_us": 800},
                                                encoder={"kind": "delta", "options": {"n_channels": 4, "delta": 1}}))
    assert _check(capsys, cfg)[:2] == (0, [f"{cfg}: ok (session config)"])


# ------------------------------------------------------------------ files
def test_model_files_must_exist_load_and_fit(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _save_model(tmp_path / "good.npz", n_in=4)
    cfg = _write(tmp_path / "c.yaml", _session(model={"path": "good.npz"}))
    assert _check(capsys, cfg)[:2] == (0, [f"{cfg}: ok (session config)"])

    _save_model(tmp_path / "wide.npz", n_in=6, dt_s=0.002)
    _write(cfg, _session(model={"path": "wide.npz"}))
    rc, _, err = _check(capsys, cfg)
    assert rc == 2 and err == [f"{cfg}: model: model dt_s 0.002 differs from session.dt_s 0.001",
                               f"{cfg}: model: model has 6 inputs but the encoder produces 4 spike channels"]

    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    (tmp_path / "junk.nir").write_bytes(b"not HDF5 either")
    (tmp_path / "folder.npz").mkdir()
    for name in ("junk.npz", "junk.nir", "folder.npz"):
        _write(cfg, _session(model={"path": name}))
        rc, _, err = _check(capsys, cfg)
        assert rc == 2 and len(err) == 1 and err[0].startswith(f"{cfg}: model.path: "), (name, err)
        if name == "folder.npz":
            assert "is a folder, not a file 'folder.npz'" in err[0]


def test_recording_of_a_file_source_must_exist(tmp_path, capsys, monkeypatch):
    from rtsnn.recording.xdf_writer import write_xdf_stream

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rec").mkdir()
    write_xdf_stream(tmp_path / "rec" / "in.xdf", np.zeros((10, 4), np.float32), 1000.0, name="spk")
    src = {"kind": "xdf_file", "options": {"path": "rec/in.xdf", "n_channels": 4}}
    cfg = _write(tmp_path / "c.yaml", _session(source=src))
    assert _check(capsys, cfg)[:2] == (0, [f"{cfg}: ok (session config)"])
    teacher = {"kind": "xdf_file", "options": {"path": "rec/targets.xdf", "n_channels": 2}}
    _write(cfg, _session(source={**src, "options": {**src["options"], "path": "rec/missing.xdf"}},
                         teacher=teacher))
    rc, _, err = _check(capsys, cfg)
    assert rc == 2 and err == [
        f"{cfg}: source.options.path: no such file 'rec/missing.xdf' (relative to the current directory: "
        f"{tmp_path}/rec/missing.xdf)",
        f"{cfg}: teacher.options.path: no such file 'rec/targets.xdf' (relative to the current directory: "
        f"{tmp_path}/rec/targets.xdf)"]


def test_nothing_is_opened(tmp_path, capsys):
    """Stages are constructed, never opened: an LSL sink's outlet does not appear on the network."""
    name = f"rtsnn-test-cc-{uuid.uuid4().hex[:10]}"
    cfg = _write(tmp_path / "c.yaml", _session(sinks=[{"kind": "lsl", "options": {"name": name}}]))
    assert _check(capsys, cfg)[0] == 0
    assert pylsl.resolve_byprop("name", name, 1, 0.5) == []


# ------------------------------------------------------------------ pretraining configs and other files
def _pretrain(path_value: str | None = None, **over):
    data = {"data": {"kind": "chewie", "path": path_value}, "train": {"epochs": 1}}
    data.update(over)
    return data


def test_pretrain_config_ok_and_missing_data_file(tmp_path, capsys):
    (tmp_path / "cfg").mkdir()
    np.savez(tmp_path / "cfg" / "data.npz", x=np.zeros(1))
    cfg = _write(tmp_path / "cfg" / "p.yaml", _pretrain("data.npz"))
    assert _check(capsys, cfg)[:2] == (0, [f"{cfg}: ok (pretraining config)"])

    _write(cfg, _pretrain("../nope/data.npz", train={"epochs": 0}))
    rc, out, err = _check(capsys, cfg)
    assert rc == 2 and out == []
    assert err == [f"{cfg}: train.epochs: Input should be greater than or equal to 1 (got 0)",
                   f"{cfg}: data.path: no such file '../nope/data.npz' (relative to the config's folder: "
                   f"{tmp_path}/nope/data.npz)"]
    synthetic = _write(tmp_path / "s.yaml", {"data": {"kind": "synthetic", "bin_s": 0.02}})
    assert check_config_file(synthetic).kind == PRETRAIN and check_config_file(synthetic).ok


@pytest.mark.parametrize("text, expected", [
    ("foo: 1\nbar: [1]\n", "(top level): not a session config (session:, source:, encoder: ...) nor a pretraining "
                           "config (data:, train: ...): it has neither (top-level keys: foo, bar)"),
    ("source: {kind: lsl}\ndata: {kind: synthetic}\n", "(top level): not a session config (session:, source:, "
     "encoder: ...) nor a pretraining config (data:, train: ...): it mixes session sections (source) with "
     "pretraining sections (data)"),
    ("- 1\n- 2\n", "(top level): expected a mapping of sections, got list"),
    ("", "(top level): expected a mapping of sections, got an empty file"),
    ("a: [\n", "(file): not valid YAML at line 2, column 1: expected the node content, but found '<stream end>'"),
])
def test_neither_kind_of_config(tmp_path, capsys, text, expected):
    cfg = _write(tmp_path / "x.yaml", text)
    rc, out, err = _check(capsys, cfg)
    assert (rc, out, err) == (2, [], [f"{cfg}: {expected}"])


def test_missing_config_file(tmp_path, capsys):
    rc, _, err = _check(capsys, tmp_path / "none.yaml")
    assert (rc, err) == (2, [f"{tmp_path / 'none.yaml'}: (file): no such config file"])
