"""``--paper`` mode of scripts/reproduce_{xor,iris,yinyang}.py: the paper's Tables 1-3, no
heuristics, one JSON line with paper_settings / own_settings / published, refusals.

Only plumbing and settings are checked here on tiny runs; the figures themselves are
benchmark output (docs/pretraining.md has the commands that produce them)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rtsnn.learn.offline import fp
from rtsnn.learn.offline.fp_repro import (PUBLISHED, PaperConflict, acc_summary, emit,
                                          refuse_paper_conflicts, xor_summary)

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_repro_{name}", SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


xor = _load("reproduce_xor")
iris = _load("reproduce_iris")
yy = _load("reproduce_yinyang")


# --- the paper's tables, transcribed ---------------------------------------------------------

def test_xor_paper_settings_are_table_1_without_heuristics():
    p = xor.PAPER
    s = p["settings"]
    assert (s["alpha"], s["beta"], s["theta"], s["tau0"], s["tau1"], s["gamma"]) == \
        (1.0, 0.99, 1.0, 0.1, 1.0, 0.2)
    assert p["init"] == dict(hidden_mean=3.0, hidden_sd=1.0, out_mean=2.0, out_sd=0.1)
    assert p["lr"] == 0.1 and p["batch_size"] == 4
    assert p["encoding"] == {"t_zero": 0.0, "t_one": 2.0, "t_bias": None}
    assert xor.describe(p)["heuristics"] == []
    x, y = xor.encode(p)
    np.testing.assert_array_equal(x, [[0, 0], [0, 2], [2, 0], [2, 2]])  # 2 inputs, no bias
    np.testing.assert_array_equal(y, [0, 1, 1, 0])


def test_iris_paper_settings_and_encoding_are_table_2():
    p = iris.PAPER
    s = p["settings"]
    assert (s["alpha"], s["beta"], s["theta"], s["tau0"], s["tau1"], s["gamma"]) == \
        (1.0, 0.9, 1.0, 1.0, 1.0, 0.1)
    assert p["init"] == dict(hidden_mean=3.0, hidden_sd=1.0, out_mean=2.0, out_sd=0.1)
    assert p["lr"] == 0.05
    assert all(p[k] == v for k, v in fp.HEURISTIC_OFF.items())
    from rtsnn.datasets.iris import iris_table
    full = iris_table().x
    t = iris._paper_encoder()(full)
    assert t.shape == (150, 4)  # no bias channel
    # the largest value of each feature over the whole data set spikes at 0, the smallest at T
    np.testing.assert_allclose(t[np.argmax(full, axis=0), range(4)], 0.0)
    np.testing.assert_allclose(t[np.argmin(full, axis=0), range(4)], 16.0)


def test_yinyang_paper_settings_are_table_3():
    p = yy.PAPER_CONFIG
    s = p["settings"]
    assert (s["alpha"], s["beta"], s["theta"], s["tau0"], s["tau1"], s["gamma"]) == \
        (0.999, 1.0, 1.0, 0.2, 1.0, 0.005)
    assert p["hidden"] == 150 and p["batch_size"] == 150 and yy.PAPER_EPOCHS == 300
    assert p["lr"] == 5e-4 and p["lr_final"] is None
    assert p["init"] == dict(hidden_mean=1.5, hidden_sd=0.8, out_mean=2.0, out_sd=0.1)
    assert p["encoding"] == {"t_early": 0.15, "t_late": 2.0, "t_bias": 0.9}
    assert all(p[k] == v for k, v in fp.HEURISTIC_OFF.items())


# --- heuristics named and switchable ---------------------------------------------------------

def test_heuristics_are_named_and_pure_refuses_them():
    assert fp.heuristics_in_use(**{k: v for k, v in fp.HEURISTIC_OFF.items()}) == []
    names = fp.heuristics_in_use(silent_kick=0.05, hidden_kick=0.01, grad_clip=1.0, lr=0.1,
                                 lr_final=1e-3)
    assert [n.split("=")[0].split(":")[0] for n in names[:3]] == \
        ["silent_kick", "hidden_kick", "grad_clip"]
    assert "cosine" in names[3] and "lr_final=0.001" in names[3]
    x, y = xor.encode(xor.PAPER)
    with pytest.raises(ValueError, match="silent_kick") as e:  # silent_kick defaults to 0.05
        fp.train_classifier_fp(x, y, hidden=[4], n_classes=2, epochs=1, seed=0, pure=True)
    assert "grad_clip" not in str(e.value)
    with pytest.raises(ValueError, match="grad_clip, lr_final"):
        fp.train_classifier_fp(x, y, hidden=[4], n_classes=2, epochs=1, seed=0, pure=True,
                               silent_kick=0.0, grad_clip=1.0, lr_final=1e-3)
    with pytest.raises(ValueError, match="grad_clip must be finite and > 0"):
        fp.train_classifier_fp(x, y, hidden=[4], n_classes=2, epochs=1, seed=0, grad_clip=0.0)
    with pytest.raises(ValueError, match="silent_kick and hidden_kick must be >= 0"):
        fp.train_classifier_fp(x, y, hidden=[4], n_classes=2, epochs=1, seed=0,
                               hidden_kick=-1.0)
    m = fp.train_classifier_fp(x, y, hidden=[4], n_classes=2, epochs=2, seed=0, pure=True,
                               **fp.HEURISTIC_OFF)
    assert m.heuristics == []
    m2 = fp.train_classifier_fp(x, y, hidden=[4], n_classes=2, epochs=2, seed=0,
                                **fp.HEURISTIC_OFF)  # pure is only a guard: same run
    for a, b in zip(m.net.w, m2.net.w):
        np.testing.assert_array_equal(a, b)


# --- one JSON line: paper_settings / own_settings / published --------------------------------

XOR_KEYS = {"steps_mean", "steps_max", "converged", "inits"}
ACC_KEYS = {"test_acc_mean", "test_acc_sd", "seeds", "epochs"}


def _strict_json(record, capsys):
    emit(record)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    return json.loads(out[0], parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))


def test_xor_paper_comparison_json(capsys):
    rec = _strict_json(xor.compare(inits=4, cap=300, alternative=False), capsys)
    for k in ("paper_settings", "own_settings", "published"):
        assert XOR_KEYS <= set(rec[k]), k
    p, o = rec["paper_settings"], rec["own_settings"]
    assert p["inits"] == o["inits"] == 4
    assert p["converged"] == 4 and p["steps_max"] >= p["steps_mean"] >= 0
    assert p["heuristics"] == [] and p["notes"]
    assert any(h.startswith("silent_kick=0.05") for h in o["heuristics"])
    assert rec["published"]["steps_mean"] == 17.52 and rec["published"]["steps_max"] == 98


def test_iris_paper_comparison_json(capsys):
    rec = _strict_json(iris.compare(seeds=1, epochs=2), capsys)
    for k in ("paper_settings", "own_settings", "published"):
        assert ACC_KEYS <= set(rec[k]), k
    p, o = rec["paper_settings"], rec["own_settings"]
    assert p["seeds"] == o["seeds"] == 1 and p["epochs"] == o["epochs"] == 2
    assert 0.0 <= p["test_acc_mean"] <= 1.0 and p["heuristics"] == []
    assert {h.split("=")[0] for h in o["heuristics"][:3]} == \
        {"silent_kick", "hidden_kick", "grad_clip"}
    assert rec["published"]["test_acc_mean"] == 1.0


def test_yinyang_paper_comparison_json(capsys):
    rec = yy.compare(seeds=1, jobs=1, paper_epochs=1, own_epochs=1, n_train=150)
    capsys.readouterr()  # per-run progress lines went to stderr
    rec = _strict_json(rec, capsys)
    for k in ("paper_settings", "own_settings", "published"):
        assert ACC_KEYS <= set(rec[k]), k
    p, o = rec["paper_settings"], rec["own_settings"]
    assert p["heuristics"] == [] and len(o["heuristics"]) == 4
    assert p["config"]["batch_size"] == 150 and o["config"]["batch_size"] == 32
    assert rec["published"]["test_acc_mean"] == 0.950 and rec["published"]["seeds"] == 10


def test_summaries():
    assert xor_summary([3, 5, 10], 4) == {"steps_mean": 6.0, "steps_max": 10,
                                          "steps_median": 5.0, "converged": 3, "inits": 4}
    assert xor_summary([], 2)["steps_mean"] is None
    s = acc_summary([0.9, 1.0], 300)
    assert s["seeds"] == 2 and s["epochs"] == 300 and s["test_acc_mean"] == pytest.approx(0.95)
    assert set(PUBLISHED) == {"xor", "iris", "yinyang"}


# --- bad input: --paper with overrides that contradict it -----------------------------------

@pytest.mark.parametrize("mod,argv,name", [
    (xor, ["--paper", "--method", "bptt"], "--method"),
    (xor, ["--paper", "--override", '{"lr": 0.01}'], "--override"),
    (iris, ["--paper", "--override", '{"batch": 8}'], "--override"),
    (iris, ["--paper", "--method", "bptt"], "--method"),
    (yy, ["--paper", "--epochs", "60"], "--epochs"),
    (yy, ["--paper", "--override", '{"lr": 0.005}'], "--override"),
    (yy, ["--paper", "--timing-only"], "--timing-only"),
])
def test_paper_with_contradicting_override_is_refused(mod, argv, name, capsys):
    assert mod.main(argv) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "--paper" in lines[0]


def test_refusal_exit_status_from_the_command_line():
    proc = subprocess.run([sys.executable, str(SCRIPTS / "reproduce_yinyang.py"), "--paper",
                           "--epochs", "60"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "reproduce_yinyang.py: error: --paper uses the paper's settings; --epochs=60 "
        "contradicts them (drop --epochs or drop --paper)"]


def test_bad_override_json_is_one_line(capsys):
    assert iris.main(["--override", "{not json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reproduce_iris.py: error: --override:")


def test_refuse_paper_conflicts_names_the_option():
    refuse_paper_conflicts({"--seeds": (3, True)})
    with pytest.raises(PaperConflict, match="--lr=0.5 contradicts"):
        refuse_paper_conflicts({"--lr": (0.5, False)})
