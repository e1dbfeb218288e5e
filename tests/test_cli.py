import json
import subprocess
import sys

import pytest

from conftest import import_or_skip


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


def test_run_json_and_model_info_on_a_real_recording(tmp_path, spike_recording):
    """`rtsnn run CONFIG --json` end to end (a recording replayed at max pace, so nothing
    external is needed), then `rtsnn model info` on a saved model file."""
    from pathlib import Path

    import yaml

    from rtsnn.snn import Model, NeuronSettings, save_model

    spike_recording(500, 6, spike_prob=0.1)  # tmp_path / "in.xdf"
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


def _printed_json_dumps_calls():
    """(file, line, call) of every ``json.dumps`` call printed directly (``print(json.dumps(...))``
    or ``print(json.dumps(...) if ... else ...)``) anywhere in the package."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "rtsnn"
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                for arg in node.args:
                    for sub in ([arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]):
                        if (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute)
                                and sub.func.attr == "dumps" and getattr(sub.func.value, "id", None) == "json"):
                            yield path.relative_to(root.parent), node.lineno, sub


def test_every_printed_json_is_strict():
    """Command output is strict JSON: json.dumps without allow_nan=False writes NaN / Infinity,
    which JSON parsers other than Python's reject (`events publish --json` printed "speed": Infinity)."""
    calls = list(_printed_json_dumps_calls())
    assert len(calls) >= 10  # the walker finds the CLI's prints
    loose = [f"{f}:{line}" for f, line, call in calls
             if not any(k.arg == "allow_nan" and getattr(k.value, "value", True) is False for k in call.keywords)]
    assert loose == []


def test_pretrain_emit_writes_nan_as_null(capsys):
    from rtsnn.learn.offline.pretrain import emit

    emit({"snn_r2": float("nan"), "snn_r2_per_dim": [0.5, float("inf")], "epochs": 3})
    assert json.loads(capsys.readouterr().out, parse_constant=pytest.fail) == {
        "snn_r2": None, "snn_r2_per_dim": [0.5, None], "epochs": 3}


def test_model_convert_prints_the_normalised_path(tmp_path, capsys, monkeypatch):
    import_or_skip("nir", reason="the [nir] extra is not installed")
    from rtsnn.cli import main
    from rtsnn.snn import Model, NeuronSettings, save_model

    (tmp_path / "sub").mkdir()
    save_model(tmp_path / "m.npz", Model.random(3, 5, 2, NeuronSettings(), seed=0))
    monkeypatch.chdir(tmp_path / "sub")
    assert main(["model", "convert", "../m.npz", "./.././m.nir"]) == 0
    assert capsys.readouterr().out.startswith("wrote ../m.nir (NIR, snntorch convention")
    assert main(["model", "convert", "../sub/../m.nir", "./back.npz"]) == 0
    assert capsys.readouterr().out.startswith("wrote back.npz (3 in, 5 neurons, 2 out)")


def test_an_out_dir_that_cannot_be_made_is_one_line_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    p = rtsnn("demo", "--duration", "1", "--out-dir", str(blocker / "sessions"))
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert str(blocker) in p.stderr and "RTSNN_TRACEBACK=1" in p.stderr
