"""Hyperparameter sweeps of `rtsnn pretrain` (rtsnn.learn.offline.sweep): the search space in
the YAML and its errors, the sequential loop without Ray and its resume, and (one local Ray
with 2 CPUs for the module) a Ray Tune sweep with ASHA early stopping, its results table and
exported model, and resuming an interrupted Tune sweep without redoing finished trials. Trials
are ranked on the validation split; ranking on test needs sweep.select_on_test and is marked."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import import_or_skip
from rtsnn.cli import main
from rtsnn.extras import MissingExtraError
from rtsnn.learn.offline import sweep as sweep_mod
from rtsnn.learn.offline.pretrain import parse_pretrain_config

# tiny: 20 trials of 1 s at 20 ms bins (4 test, 3 validation, 13 training), 8 recurrent
# neurons; a trial trains in well under a second
BASE = {"data": {"kind": "synthetic", "bin_s": 0.02, "synthetic": {"duration_s": 20.0, "trial_s": 1.0}},
        "model": {"n_rec": 8, "neuron": {"tau_mem_s": 0.05, "tau_out_s": 0.1}},
        "train": {"epochs": 2, "batch_size": 4, "lr": 0.03, "validation_fraction": 0.2},
        "output": {"model_path": "m.npz"}}
ROW_KEYS = {"trial_id", "status", "params", "epochs", "final_metric", "best_metric", "best_epoch", "selected_epoch",
            "selected_metric", "validation_r2_continuous", "validation_acc_continuous", "validation_loss_continuous",
            "snn_r2", "snn_r2_continuous", "wiener_r2", "snn_acc", "snn_acc_continuous", "csp_lda_acc", "wall_s",
            "model_path", "error"}


def _cfg(sweep: dict, **over) -> dict:
    d = json.loads(json.dumps(BASE))
    for k, v in over.items():
        d[k] = {**d.get(k, {}), **v}
    d["sweep"] = sweep
    return d


def _write(tmp_path: Path, d: dict, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(d))
    return p


def _summary(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------ the search space
def test_search_space_parses_all_four_kinds():
    cfg = parse_pretrain_config(_cfg({
        "space": {"model.n_rec": {"choice": [8, 12]}, "model.spectral_radius": {"uniform": [0.5, 0.9]},
                  "train.lr": {"loguniform": [1e-3, 1e-1]}, "train.seed": {"grid": [0, 1, 2]}},
        "num_samples": 2, "seed": 7, "scheduler": "asha"}))
    s = cfg.sweep
    assert [p.kind for p in s.space.values()] == ["choice", "uniform", "loguniform", "grid"]
    assert s.metric == "val_r2_continuous" and s.best_mode == "max" and s.selected_on == "validation"
    assert s.scheduler.kind == "asha" and s.scheduler.grace_period == 1 and s.scheduler.reduction_factor == 2
    assert sweep_mod.trial_count(s) == 6
    trials = sweep_mod.draw_trials(s)
    assert [t["train.seed"] for t in trials] == [0, 1, 2, 0, 1, 2]  # the grid, once per sample
    assert all(t["model.n_rec"] in (8, 12) and 0.5 <= t["model.spectral_radius"] <= 0.9
               and 1e-3 <= t["train.lr"] <= 1e-1 for t in trials)
    assert len({t["train.lr"] for t in trials}) == 6  # drawn afresh per trial
    assert sweep_mod.draw_trials(s) == trials  # from sweep.seed: the same trials every time
    # the loss is minimised unless told otherwise; scheduler options and "none"
    cfg = parse_pretrain_config(_cfg({"space": {"train.lr": {"grid": [0.01]}}, "metric": "val_loss_continuous",
                                      "scheduler": {"kind": "asha", "grace_period": 2, "reduction_factor": 3}}))
    assert cfg.sweep.best_mode == "min" and cfg.sweep.scheduler.reduction_factor == 3
    # classification ranks on validation accuracy by default; select_on_test on the test figure
    cls = {"kind": "recording", "path": "x.csv", "input": {"stream": "eeg"},
           "classes": {"stream": "mk", "map": {"T1": "left", "T2": "right"}, "window_s": [0.0, 2.0]}}
    d = _cfg({"space": {}})
    d["data"] = cls
    assert parse_pretrain_config(d).sweep.metric == "val_acc_continuous"
    d["sweep"]["select_on_test"] = True
    assert parse_pretrain_config(d).sweep.metric == "test_acc"
    assert parse_pretrain_config(_cfg({"space": {}, "scheduler": "none"})).sweep.scheduler is None
    # the CLI shorthand: a grid, seeds=N a grid of train.seed
    assert sweep_mod.grid_shorthand(["model.n_rec=8,16", "seeds=3", "model.neuron.model=lif,alif"]) == {
        "model.n_rec": {"grid": [8, 16]}, "train.seed": {"grid": [0, 1, 2]},
        "model.neuron.model": {"grid": ["lif", "alif"]}}


@pytest.mark.parametrize("sweep, expected", [
    ({"space": {"model.n_rec": {"choice": []}}}, r"sweep\.space\.model\.n_rec\.choice: List should have at least 1 item"),
    ({"space": {"train.lr": {"uniform": [0.1, 0.01]}}}, r"sweep\.space\.train\.lr: .*uniform: \[lo, hi\] needs lo < hi"),
    ({"space": {"train.lr": {"loguniform": [0, 0.1]}}}, r"sweep\.space\.train\.lr: .*loguniform: lo must be > 0"),
    ({"space": {"train.lr": {"grid": [0.1], "choice": [0.2]}}},
     r"sweep\.space\.train\.lr: .*exactly one of choice, uniform, loguniform, grid \(got choice, grid\)"),
    ({"space": {"train.lr": {"range": [0, 1]}}}, r"sweep\.space\.train\.lr\.range: unknown key"),
    ({"space": {"model.n_rec": {"choice": [8, 0]}}},
     r"sweep\.space\.model\.n_rec\.choice: 0 makes an invalid config: model\.n_rec: Input should be greater than or equal to 1"),
    ({"space": {"model.n_rec": {"uniform": [8, 64]}}},
     r"sweep\.space\.model\.n_rec\.uniform: .* model\.n_rec: Input should be a valid integer"),
    ({"space": {"model.n_recc": {"grid": [8]}}}, r"sweep\.space\.model\.n_recc\.grid: 8 makes an invalid config: "
                                                  r"model\.n_recc: unknown key"),
    ({"space": {"model.neuron.tau_out_s": {"grid": [0.1, 0.01]}}},
     r"sweep\.space\.model\.neuron\.tau_out_s\.grid: 0\.01 .*must exceed the bin width"),
    ({"space": {"output.model_path": {"grid": ["a.npz"]}}}, r"sweep\.space\.output\.model_path: output\.\* cannot be swept"),
    ({"space": {}, "metric": "accuracy"}, r"sweep\.metric: Input should be 'val_r2_continuous', 'val_acc_continuous', "),
    ({"space": {}, "metric": "test_r2"}, r"sweep\.metric: 'test_r2' ranks trials on the test split, which biases .*"
                                         r"use val_r2_continuous .*or set sweep\.select_on_test: true"),
    ({"space": {}, "metric": "val_r2_continuous", "select_on_test": True},
     r"sweep\.select_on_test: true but sweep\.metric 'val_r2_continuous' is a validation metric"),
    # a strict bool: 1 or "yes" is not taken for true
    ({"space": {}, "metric": "test_r2", "select_on_test": 1},
     r"sweep\.select_on_test: Input should be a valid boolean \(got 1\)"),
    ({"space": {}, "select_on_test": "yes"}, r"sweep\.select_on_test: Input should be a valid boolean \(got 'yes'\)"),
    ({"space": {}, "metric": "val_acc_continuous"},
     r"sweep\.metric: 'val_acc_continuous' is not a regression metric; use val_r2_continuous"),
    ({"space": {}, "scheduler": {"kind": "pbt"}}, r"sweep\.scheduler\.kind: Input should be 'asha'"),
    ({"space": {}, "num_samples": 0}, r"sweep\.num_samples: Input should be greater than or equal to 1"),
    ({"space": {"train.epochs": {"grid": [2, 3]}}, "scheduler": "asha"},
     r"sweep\.space\.train\.epochs: cannot be swept with the asha scheduler"),
])
def test_bad_search_space_names_file_and_key(tmp_path, capsys, sweep, expected):
    p = _write(tmp_path, _cfg(sweep))
    assert main(["pretrain", str(p), "--no-ray"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rtsnn: error: {p}: ") and "Traceback" not in err
    import re

    assert re.search(expected, err), err


def test_bad_cli_sweep_options(tmp_path, capsys):
    p = _write(tmp_path, BASE)
    assert main(["pretrain", str(p), "--sweep", "seeds=x"]) == 2
    assert "--sweep seeds must be an int >= 1, got 'x'" in capsys.readouterr().err
    assert main(["pretrain", str(p), "--sweep", "model.n_rec"]) == 2
    assert "--sweep expects seeds=N or dotted.key=v1,v2; got 'model.n_rec'" in capsys.readouterr().err
    assert main(["pretrain", str(p), "--sweep", "model.n_rec=8,0", "--no-ray"]) == 2
    assert "--sweep: sweep.space.model.n_rec.grid: 0 makes an invalid config" in capsys.readouterr().err
    assert main(["pretrain", str(p), "--sweep-dir", str(tmp_path / "s")]) == 2
    assert "--sweep-dir, --address and --no-ray apply to sweeps" in capsys.readouterr().err
    # nothing listens there: refused at once (Ray would retry for minutes), no results folder claimed
    import_or_skip("ray.tune")
    assert main(["pretrain", str(p), "--sweep", "seeds=2", "--address", "127.0.0.1:1"]) == 2
    assert "--address 127.0.0.1:1: no Ray cluster reachable there" in capsys.readouterr().err
    assert not (tmp_path / "m.sweep").exists()


# ------------------------------------------------------------------ without Ray
def _hide_ray(monkeypatch):
    def fake_require(module, feature):
        if module.split(".")[0] == "ray":
            raise MissingExtraError(f"{feature}: needs the Python package 'ray', which is not installed; "
                                    "install it with: pip install 'rtsnn[sweep]'")
        return __import__(module)

    monkeypatch.setattr(sweep_mod, "require", fake_require)


def test_sequential_fallback_without_ray(tmp_path, capsys, monkeypatch):
    """Ray missing: the same trials one after another, saying so; the same table and export."""
    _hide_ray(monkeypatch)
    p = _write(tmp_path, _cfg({"space": {"train.lr": {"grid": [0.03, 1e-7]}, "model.n_rec": {"choice": [8, 12]}}}))
    assert main(["pretrain", str(p), "--sweep", "seeds=2"]) == 0
    cap = capsys.readouterr()
    assert "Ray not installed (pip install 'rtsnn[sweep]'): running 4 trials sequentially" in cap.err
    s = _summary(cap.out)
    assert s["engine"] == "sequential" and len(s["trials"]) == 4
    assert all(set(r) == ROW_KEYS and r["status"] == "completed" and r["epochs"] == 2 for r in s["trials"])
    assert [(r["params"]["train.lr"], r["params"]["train.seed"]) for r in s["trials"]] == [
        (0.03, 0), (0.03, 1), (1e-7, 0), (1e-7, 1)]
    # ranked on validation: the saved (last) epoch's val_r2_continuous, the model's validation figure
    assert s["selected_on"] == "validation" and s["metric"] == "val_r2_continuous" and "warning" not in s
    for r in s["trials"]:
        assert r["selected_epoch"] == 2 and r["selected_metric"] == r["final_metric"]
        assert r["selected_metric"] == pytest.approx(r["validation_r2_continuous"], abs=1e-6)
    best = s["best"]
    assert best["selected_metric"] == max(r["selected_metric"] for r in s["trials"])
    figs = s["best_figures"]
    assert figs["selected_on"] == "validation" and figs["trial_id"] == best["trial_id"]
    assert set(figs["validation"]) == {"validation_r2_continuous", "validation_loss_continuous"}
    assert figs["test"] == {k: best[k] for k in ("snn_r2", "snn_r2_continuous", "wiener_r2")}
    assert "ranked on the validation split by val_r2_continuous" in cap.err and "WARNING" not in cap.err
    # the exported model is the best trial's: same bytes, and its history beside it
    assert Path(s["model_path"]) == tmp_path / "m.npz"
    assert (tmp_path / "m.npz").read_bytes() == Path(best["model_path"]).read_bytes()
    hist = json.loads((tmp_path / "m.history.json").read_text())
    assert hist["epochs"][-1]["validation_metric"] == pytest.approx(best["selected_metric"])
    assert hist["epochs"][-1]["heldout_metric"] == pytest.approx(best["snn_r2"], abs=1e-6)
    sweep_dir = tmp_path / "m.sweep"
    with (sweep_dir / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {"train.lr", "train.seed", "model.n_rec", "final_metric", "selected_metric",
                               "validation_r2_continuous", "snn_r2", "status"} <= set(rows[0])
    doc = json.loads((sweep_dir / "results.json").read_text())
    assert doc["trials"] == s["trials"] and doc["selected_on"] == "validation" and doc["best"] == figs


def test_sequential_resume_skips_finished_trials(tmp_path, capsys, monkeypatch):
    _hide_ray(monkeypatch)
    p = _write(tmp_path, _cfg({"space": {"train.lr": {"grid": [0.03, 0.01, 0.003]}}}))
    real = sweep_mod.run_trial
    calls = []
    interrupt_at = [2]  # Ctrl-C during the second trial of the first run only

    def interrupted_on_second(plan, params, model_dir, on_epoch=None):
        calls.append(params["train.lr"])
        if len(calls) == interrupt_at[0]:
            interrupt_at[0] = 0
            raise KeyboardInterrupt
        return real(plan, params, model_dir, on_epoch)

    monkeypatch.setattr(sweep_mod, "run_trial", interrupted_on_second)
    assert main(["pretrain", str(p), "--sweep-dir", str(tmp_path / "sw")]) == 130
    err = capsys.readouterr().err
    assert "sweep interrupted: 1 of 3 trials completed" in err and "--resume" in err
    table = json.loads((tmp_path / "sw" / "results.json").read_text())["trials"]
    assert [r["status"] for r in table] == ["completed", "unfinished", "not_run"]
    assert not (tmp_path / "m.npz").exists()
    # starting over the same folder is refused; a changed config cannot resume it
    assert main(["pretrain", str(p), "--sweep-dir", str(tmp_path / "sw")]) == 2
    assert "holds a sweep already; pass --resume" in capsys.readouterr().err
    assert main(["pretrain", str(p), "--sweep-dir", str(tmp_path / "sw"), "--resume", "--epochs", "3"]) == 2
    assert "the config (or its command-line overrides) changed since this sweep began" in capsys.readouterr().err
    assert main(["pretrain", str(p), "--sweep-dir", str(tmp_path / "other"), "--resume"]) == 2
    assert "no sweep to resume here" in capsys.readouterr().err
    calls.clear()
    assert main(["pretrain", str(p), "--sweep-dir", str(tmp_path / "sw"), "--resume"]) == 0
    cap = capsys.readouterr()
    assert "resuming: 1 of 3 trials already ran" in cap.err
    assert calls == [0.01, 0.003]  # the finished trial is not run again
    s = _summary(cap.out)
    assert [r["status"] for r in s["trials"]] == ["completed"] * 3
    assert (tmp_path / "m.npz").is_file()


# ------------------------------------------------------------------ on Ray Tune (one local Ray)
@pytest.fixture(scope="module")
def local_ray():
    ray = import_or_skip("ray")
    import_or_skip("ray.tune")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def test_tune_sweep_with_asha_writes_table_and_exports_best(tmp_path, capsys, local_ray):
    """4 trials, one at a time (so ASHA's decisions do not depend on timing): a learning rate
    of 1e-7 leaves the held-out R^2 at epoch 1 below that of 0.03, so ASHA (grace 1, factor 2)
    stops those trials after epoch 1; the best completed trial's model is exported."""
    d = _cfg({"space": {"train.lr": {"grid": [0.03, 1e-7]}, "model.n_rec": {"choice": [8, 12]},
                        "model.spectral_radius": {"uniform": [0.5, 0.9]},
                        "train.init_gain": {"loguniform": [0.8, 1.25]}},
              "num_samples": 2, "scheduler": {"kind": "asha", "grace_period": 1, "reduction_factor": 2},
              "max_concurrent_trials": 1}, train={"epochs": 3})
    p = _write(tmp_path, d)
    assert main(["pretrain", str(p)]) == 0
    cap = capsys.readouterr()
    assert "sequentially" not in cap.err and "Ray Tune: 4 trials on 2 CPUs, 1 at a time" in cap.err
    s = _summary(cap.out)  # Tune's own banner went to stderr: stdout is the JSON line only
    assert len(cap.out.strip().splitlines()) == 1
    rows = s["trials"]
    assert s["engine"] == "tune" and len(rows) == 4 and all(set(r) == ROW_KEYS for r in rows)
    for r in rows:
        assert r["params"]["model.n_rec"] in (8, 12) and 0.5 <= r["params"]["model.spectral_radius"] <= 0.9
        assert 0.8 <= r["params"]["train.init_gain"] <= 1.25
    slow = [r for r in rows if r["params"]["train.lr"] == 1e-7]
    fast = [r for r in rows if r["params"]["train.lr"] == 0.03]
    assert [(r["status"], r["epochs"]) for r in slow] == [("stopped_early", 1)] * 2
    assert ("completed", 3) in [(r["status"], r["epochs"]) for r in fast]
    assert all(r["status"] in ("completed", "stopped_early") for r in fast)
    best = s["best"]
    assert best["params"]["train.lr"] == 0.03 and best["status"] == "completed"
    assert s["selected_on"] == "validation" and best["selected_epoch"] == 3
    assert best["selected_metric"] == pytest.approx(best["validation_r2_continuous"], abs=1e-6)
    assert s["best_figures"]["test"]["snn_r2"] == best["snn_r2"]
    # exported: the trial's checkpointed model, its history (3 epochs) and a session config
    assert (tmp_path / "m.npz").read_bytes() == Path(best["model_path"]).read_bytes()
    hist = json.loads((tmp_path / "m.history.json").read_text())
    assert len(hist["epochs"]) == 3
    assert hist["epochs"][-1]["validation_metric"] == pytest.approx(best["selected_metric"])
    assert (tmp_path / "m.session.yaml").is_file()
    from rtsnn.snn.model_file import load_model

    model = load_model(tmp_path / "m.npz")
    assert model.n_out == 2 and model.output_labels == ["vx", "vy"]
    sweep_dir = tmp_path / "m.sweep"
    with (sweep_dir / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (sweep_dir / "tune" / "tuner.pkl").is_file()


def test_tune_sweep_resumes_after_an_interruption(tmp_path, capsys, local_ray):
    """Interrupt a Tune sweep (SIGUSR1: Tune's stop signal, handled as Ctrl-C) as soon as the
    second trial has started, i.e. the first one has finished (one trial at a time); ``--resume``
    then completes the others without running the finished one again (its model file and its
    reported epochs are untouched)."""
    p = _write(tmp_path, _cfg({"space": {"train.lr": {"grid": [0.03, 0.01, 0.003]}}, "max_concurrent_trials": 1}))
    tune_dir = tmp_path / "m.sweep" / "tune"

    def interrupt_after_first_model():
        deadline = time.monotonic() + 120
        while not list(tune_dir.glob("trial_*_00001")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGUSR1)

    watcher = threading.Thread(target=interrupt_after_first_model, daemon=True)
    watcher.start()
    assert main(["pretrain", str(p)]) == 130
    watcher.join(5)
    err = capsys.readouterr().err
    assert "sweep interrupted:" in err and "of 3 trials completed" in err
    first = json.loads((tmp_path / "m.sweep" / "results.json").read_text())["trials"]
    done = [r for r in first if r["status"] == "completed"]
    assert 1 <= len(done) < 3
    kept = {r["trial_id"]: (Path(r["model_path"]).stat().st_mtime_ns, r["epochs"]) for r in done}
    assert not (tmp_path / "m.npz").exists()

    assert main(["pretrain", str(p), "--resume"]) == 0
    cap = capsys.readouterr()
    assert "resuming the Tune experiment" in cap.err
    s = _summary(cap.out)
    assert sorted(r["params"]["train.lr"] for r in s["trials"]) == [0.003, 0.01, 0.03]
    assert [(r["status"], r["epochs"]) for r in s["trials"]] == [("completed", 2)] * 3
    for r in s["trials"]:
        if r["trial_id"] in kept:  # not trained again
            assert (Path(r["model_path"]).stat().st_mtime_ns, r["epochs"]) == kept[r["trial_id"]]
    assert (tmp_path / "m.npz").is_file()
    assert np.isfinite(s["best"]["selected_metric"])


def test_metric_the_pretraining_lacks_fails_the_trial(tmp_path, capsys, monkeypatch):
    """A metric the trial's per-epoch evaluation does not produce (the config check refuses the
    task's wrong metric up front; here it is forced past it): each trial is an error row saying
    which metrics there are; no model is exported (exit 1)."""
    monkeypatch.setattr("rtsnn.learn.offline.pretrain.check_sweep_selection", lambda cfg, origin: None)
    p = _write(tmp_path, _cfg({"space": {"train.lr": {"grid": [0.03]}}, "metric": "val_acc_continuous"}))
    assert main(["pretrain", str(p), "--no-ray"]) == 1
    cap = capsys.readouterr()
    row = _summary(cap.out)["trials"][0]
    assert row["status"] == "error" and row["error"].startswith(
        "ValueError: sweep.metric 'val_acc_continuous' is not among this pretraining's per-epoch metrics "
        "(test_loss, test_r2, test_r2_continuous, val_loss_continuous, val_r2_continuous)")
    assert "no trial completed: no model exported" in cap.err and not (tmp_path / "m.npz").exists()


# ------------------------------------------------------------------ selection on validation, not test
def test_sweep_without_validation_split_is_refused(tmp_path, capsys):
    """The default metric is a validation one: a sweep config without
    train.validation_fraction is refused in one line saying how to fix it, by `rtsnn pretrain`,
    by `--sweep` on a config without a sweep: section, and by `rtsnn config check`."""
    from rtsnn.config_check import check_config_file

    d = _cfg({"space": {"train.lr": {"grid": [0.03, 0.01]}}})
    d["train"].pop("validation_fraction")
    p = _write(tmp_path, d)
    how = ("train.validation_fraction: a sweep ranks trials by sweep.metric 'val_r2_continuous' on a validation "
           "split; set train.validation_fraction > 0 (e.g. 0.15), or sweep.select_on_test: true")
    assert main(["pretrain", str(p), "--no-ray"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rtsnn: error: {p}: {how}") and len(err.strip().splitlines()) == 1
    assert [e for e in check_config_file(p).errors if how in e] != []
    plain = dict(d)
    plain.pop("sweep")
    q = _write(tmp_path, plain, "plain.yaml")
    assert main(["pretrain", str(q), "--sweep", "seeds=2", "--no-ray"]) == 2
    assert capsys.readouterr().err.startswith(f"rtsnn: error: --sweep: {how}")
    assert not (tmp_path / "m.sweep").exists() and not (tmp_path / "m.npz").exists()


def _disagreeing_trials(monkeypatch):
    """Replace each trial's figures (after really training it, so a model is exported): trial
    lr 0.03 wins on validation and loses on test, lr 0.01 the reverse."""
    real = sweep_mod.run_trial
    figures = {0.03: {"val_r2_continuous": 0.6, "test_r2": 0.1}, 0.01: {"val_r2_continuous": 0.2, "test_r2": 0.9}}

    def fake(plan, params, model_dir, on_epoch=None):
        f = figures[params["train.lr"]]

        def report(epoch, metrics):
            metrics = {**metrics, "val_r2_continuous": f["val_r2_continuous"] - 0.1 * (2 - epoch),
                       "test_r2": f["test_r2"] - 0.1 * (2 - epoch)}
            if on_epoch is not None:
                on_epoch(epoch, metrics)

        res = real(plan, params, model_dir, report)
        val = {"validation_r2_continuous": f["val_r2_continuous"]} if "validation_r2_continuous" in res else {}
        return {**res, **val, "snn_r2": f["test_r2"]}

    monkeypatch.setattr(sweep_mod, "run_trial", fake)


def test_sweep_ranks_by_validation_not_test(tmp_path, capsys, monkeypatch):
    """Two trials whose validation and test figures disagree: the validation winner is the best
    trial and its model is exported; its test figure is reported as it is, not used."""
    _disagreeing_trials(monkeypatch)
    p = _write(tmp_path, _cfg({"space": {"train.lr": {"grid": [0.01, 0.03]}}}))
    assert main(["pretrain", str(p), "--no-ray"]) == 0
    cap = capsys.readouterr()
    s = _summary(cap.out)
    assert s["selected_on"] == "validation" and "warning" not in s
    assert [r["selected_metric"] for r in s["trials"]] == [pytest.approx(0.2), pytest.approx(0.6)]
    best = s["best"]
    assert best["params"]["train.lr"] == 0.03 and best["trial_id"] == "trial_00001"
    assert s["best_figures"]["selected_on"] == "validation"
    assert s["best_figures"]["selected_metric"] == pytest.approx(0.6)
    assert s["best_figures"]["validation"]["validation_r2_continuous"] == pytest.approx(0.6)
    assert s["best_figures"]["test"]["snn_r2"] == pytest.approx(0.1)  # reported, though the other trial's is higher
    assert (tmp_path / "m.npz").read_bytes() == Path(best["model_path"]).read_bytes()
    assert "selected on validation: val_r2_continuous 0.6000 at epoch 2; test (not used to select): snn_r2 0.1000" \
        in cap.err


def test_select_on_test_opt_in_marks_the_result(tmp_path, capsys, monkeypatch):
    """sweep.select_on_test: true ranks on a test metric (here without a validation split): the
    test winner is chosen, and the summary, results.json and the printed table say selected_on
    test and warn that its test figure is biased."""
    _disagreeing_trials(monkeypatch)
    d = _cfg({"space": {"train.lr": {"grid": [0.01, 0.03]}}, "select_on_test": True})
    p = _write(tmp_path, d)
    assert main(["pretrain", str(p), "--no-ray"]) == 0
    cap = capsys.readouterr()
    s = _summary(cap.out)
    assert s["metric"] == "test_r2" and s["selected_on"] == "test" and "biased" in s["warning"]
    assert s["best"]["params"]["train.lr"] == 0.01 and s["best_figures"]["selected_on"] == "test"
    assert s["best_figures"]["test"]["snn_r2"] == pytest.approx(0.9)
    doc = json.loads((tmp_path / "m.sweep" / "results.json").read_text())
    assert doc["selected_on"] == "test" and doc["warning"] == s["warning"] and doc["best"] == s["best_figures"]
    assert "WARNING: trials were ranked on the test split (sweep.select_on_test)" in cap.err
    assert "test (biased: selected on it): snn_r2 0.9000" in cap.err
    # without a validation split too (nothing to rank on but test, and the user said so)
    d["train"].pop("validation_fraction")
    d["output"] = {"model_path": "n.npz"}
    assert main(["pretrain", str(_write(tmp_path, d, "noval.yaml")), "--no-ray"]) == 0
    s = _summary(capsys.readouterr().out)
    assert s["selected_on"] == "test" and s["best"]["params"]["train.lr"] == 0.01
    assert s["best"]["validation_r2_continuous"] is None and s["best_figures"]["validation"] == {}


def test_export_best_refuses_a_missing_model_instead_of_passing_off_an_old_one(tmp_path):
    """A best trial whose model file is gone (a cluster node's disk, a moved sweep folder) must
    not leave whatever was at output.model_path reported as the best model."""
    out = tmp_path / "best.npz"
    out.write_bytes(b"an older model")
    with pytest.raises(ValueError, match="best trial's model .* is missing"):
        sweep_mod.export_best({"model_path": str(tmp_path / "trial_0" / "m.npz"), "params": {}}, out, None)
    assert out.read_bytes() == b"an older model"
