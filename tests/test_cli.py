import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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

    from rtsnn.snn import Model, save_model

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

    m = Model.random(3, 5, 2, seed=0)
    save_model(tmp_path / "m.npz", m)
    p = rtsnn("model", "info", str(tmp_path / "m.npz"), "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout, parse_constant=pytest.fail)
    assert info["header"]["shapes"]["w_in/weight"] == [3, 5] and info["format_version"] == 2
    assert [n["name"] for n in info["nodes"]][:3] == ["input", "w_in", "hidden"]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    p = rtsnn("model", "info", str(tmp_path / "bad.npz"))
    assert p.returncode == 2 and "bad.npz" in p.stderr and len(p.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ rtsnn model info / simulate
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "models"


def test_model_info_prints_one_line_per_node(tmp_path, capsys):
    from rtsnn.cli import main

    assert main(["model", "info", str(FIXTURES / "alif_contract_v1.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{FIXTURES / 'alif_contract_v1.npz'}: rtsnn model, format_version 1 (single layer, "
                               "read as the graph below); tick 2 ms (exact); 5 inputs -> 3 outputs; 7 nodes, 7 edges")
    rows = [ln.split() for ln in lines[2:9]]
    assert lines[1].split() == ["node", "kind", "shape", "inputs", "parameters"]
    assert [r[:3] for r in rows] == [["input", "Input", "[5]"], ["w_in", "Linear", "[10]"],
                                     ["hidden", "ALIF", "[10]"], ["trace", "LI", "[10]"], ["w_out", "Affine", "[3]"],
                                     ["output", "Output", "[3]"], ["w_rec", "Linear", "[10]"]]
    assert " hidden " in lines[4] and "w_in, w_rec (t-1)" in lines[4] and "tau_adapt 100 ms" in lines[4]
    assert lines[9] == "outputs: x (m/s), y (m/s), grip (a.u.)"
    assert lines[10].startswith("input contract: 5 channels at 2 ms ticks, encoder passthrough (n_channels=5)")
    assert lines[11].startswith("provenance: method bptt, created_utc 2026-12-01T00:00:00+00:00")
    # a general graph: its nodes, recurrent inputs marked, strict JSON with the same rows
    from rtsnn.snn import LIF, Delay, Graph, GraphModel, Input, Linear, Output, save_model

    rng = np.random.default_rng(0)
    gm = GraphModel(Graph({"in": Input(shape=(2,)), "w": Linear(weight=rng.standard_normal((2, 3))),
                           "h": LIF(n=3, tau_mem_s=[0.01, 0.02, 0.03]), "d": Delay(steps=[1, 2, 3]),
                           "back": Linear(weight=rng.standard_normal((3, 3))), "out": Output(shape=(3,))},
                          [("in", "w"), ("w", "h"), ("h", "d"), ("d", "back"), ("back", "h"), ("d", "out")]))
    save_model(tmp_path / "g.npz", gm)
    assert main(["model", "info", str(tmp_path / "g.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    h_row = next(ln for ln in lines if ln.split()[:2] == ["h", "LIF"])
    assert "w, back (t-1)" in h_row and "tau_mem 10 ms..30 ms" in h_row
    assert any(ln.split()[:4] == ["d", "Delay", "[3]", "h"] and "steps 1..3" in ln for ln in lines)
    assert "input contract: none" in "\n".join(lines)
    assert main(["model", "info", str(tmp_path / "g.npz"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out, parse_constant=pytest.fail)
    h = next(n for n in info["nodes"] if n["name"] == "h")
    assert h["inputs"] == ["w", "back"] and h["recurrent_inputs"] == ["back"] and h["shape"] == [3]
    assert {"source": "back", "target": "h", "recurrent": True} in info["edges"]
    assert info["input_contract"] is None and info["n_in"] == 2 and info["n_out"] == 3


def test_model_simulate_writes_outputs_per_tick(tmp_path, capsys):
    from rtsnn.cli import main

    expected = np.load(FIXTURES / "expected_v1.npz")
    np.save(tmp_path / "in.npy", expected["xs_alif_contract_v1"].astype(np.int64))  # counts; any numeric dtype
    out = tmp_path / "out.npy"
    assert main(["model", "simulate", str(FIXTURES / "alif_contract_v1.npz"), "--input", str(tmp_path / "in.npy"),
                 "--output", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {out}: 80 ticks x 3 outputs (x, y, grip), float32; tick 2 ms, ")
    ys = np.load(out)
    assert ys.dtype == np.float32 and ys.shape == (80, 3)
    np.testing.assert_array_equal(ys, expected["ys_alif_contract_v1"])  # what the v1 file computed when written
    # from a fresh state every time, whatever the propagation
    for mode in ("dense", "event"):
        assert main(["model", "simulate", str(FIXTURES / "alif_contract_v1.npz"), "--input",
                     str(tmp_path / "in.npy"), "--output", str(out), "--propagation", mode, "--json"]) == 0
        res = json.loads(capsys.readouterr().out, parse_constant=pytest.fail)
        assert res["ticks"] == 80 and res["n_out"] == 3 and res["output_labels"] == ["x", "y", "grip"]
        np.testing.assert_array_equal(np.load(out), expected["ys_alif_contract_v1"])
    assert sorted(os.listdir(tmp_path)) == ["in.npy", "out.npy"]  # no temp file left


def test_model_simulate_runs_a_general_graph(tmp_path, capsys):
    from rtsnn.cli import main
    from rtsnn.snn import CubaLIF, Graph, GraphModel, Input, Linear, Output, save_model, simulate

    rng = np.random.default_rng(1)
    gm = GraphModel(Graph({"in": Input(shape=(4,)), "w": Linear(weight=rng.standard_normal((4, 6))),
                           "h": CubaLIF(n=6), "r": Linear(weight=rng.standard_normal((6, 2))),
                           "out": Output(shape=(2,))},
                          [("in", "w"), ("w", "h"), ("h", "r"), ("r", "out")]))
    save_model(tmp_path / "g.npz", gm)
    xs = rng.poisson(0.5, (40, 4)).astype(np.float32)
    np.save(tmp_path / "in.npy", xs)
    assert main(["model", "simulate", str(tmp_path / "g.npz"), "--input", str(tmp_path / "in.npy"),
                 "--output", str(tmp_path / "y.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), simulate(gm, xs))
    capsys.readouterr()


def _bad_inputs(tmp_path):
    good = np.random.default_rng(0).poisson(0.3, (20, 4)).astype(np.float32)
    np.save(tmp_path / "channels.npy", good[:, :3])
    nan = good.copy()
    nan[7, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    big = good.astype(np.float64)
    big[3, 1] = 1e300  # finite in float64, inf in float32
    np.save(tmp_path / "big.npy", big)
    np.save(tmp_path / "flat.npy", good[:, 0])
    np.save(tmp_path / "empty.npy", good[:0])
    np.save(tmp_path / "text.npy", np.array([["a"] * 4] * 3))
    np.savetxt(tmp_path / "csv.npy", good, delimiter=",")
    np.savez(tmp_path / "arch.npz", x=good)
    (tmp_path / "short.npy").write_bytes((tmp_path / "nan.npy").read_bytes()[:200])
    return {
        "channels.npy": "has 3 channels (shape [20, 3]), the model takes 4 inputs",
        "nan.npy": "has 1 non-finite value(s) (NaN/inf or beyond float32); the first at tick 7, channel 2: nan",
        "big.npy": "the first at tick 3, channel 1: out of float32 range",
        "flat.npy": "must be 2-D (ticks x channels), got shape [20]",
        "empty.npy": "has no ticks (shape [0, 4])",
        "text.npy": "must hold numbers, got dtype <U1",
        "csv.npy": "not a .npy file (numpy.save format)",
        "arch.npz": "not a .npy file (numpy.save format)",
        "short.npy": "claims shape [20, 4] of float32 but holds only",
        "missing.npy": "not found",
    }


def test_model_simulate_bad_inputs_are_one_line_exit_2(tmp_path, capsys):
    from rtsnn.cli import main

    model = str(FIXTURES / "lif_v1.npz")
    for name, fragment in _bad_inputs(tmp_path).items():
        assert main(["model", "simulate", model, "--input", str(tmp_path / name),
                     "--output", str(tmp_path / "out.npy")]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"rtsnn: error: --input {tmp_path / name}: "), (name, err)
        assert fragment in err[0], (name, err)
    assert not (tmp_path / "out.npy").exists()
    np.save(tmp_path / "ok.npy", np.zeros((5, 4), np.float32))
    for out, fragment in ((tmp_path / "nodir" / "o.npy", "does not exist"), (tmp_path / "o.txt", "must end in .npy")):
        assert main(["model", "simulate", model, "--input", str(tmp_path / "ok.npy"), "--output", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--output {out}: " in err[0] and fragment in err[0]
    assert main(["model", "simulate", str(tmp_path / "nomodel.npz"), "--input", str(tmp_path / "ok.npy"),
                 "--output", str(tmp_path / "o.npy")]) == 2
    assert "nomodel.npz not found" in capsys.readouterr().err


def test_model_simulate_bad_input_from_the_shell(tmp_path):
    """The real command line: exit status 2, one line on stderr, no traceback, nothing on stdout."""
    _bad_inputs(tmp_path)
    for name in ("nan.npy", "flat.npy", "channels.npy", "csv.npy", "missing.npy"):
        p = rtsnn("model", "simulate", str(FIXTURES / "lif_v1.npz"), "--input", str(tmp_path / name),
                  "--output", str(tmp_path / "o.npy"))
        assert p.returncode == 2, (name, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr and p.stdout == ""
        assert f"--input {tmp_path / name}" in p.stderr


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
    from rtsnn.snn import Model, save_model

    (tmp_path / "sub").mkdir()
    save_model(tmp_path / "m.npz", Model.random(3, 5, 2, seed=0))
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
    assert p.stderr.startswith("rtsnn: error: ") and str(blocker) in p.stderr
    p = rtsnn("--debug", "demo", "--duration", "1", "--out-dir", str(blocker / "sessions"))  # the traceback on request
    assert p.returncode == 2 and "Traceback" in p.stderr and p.stderr.strip().splitlines()[-1].startswith("rtsnn: error: ")
