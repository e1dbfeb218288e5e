"""scripts/reproduce_yinyang.py ``--config beyond``: the configuration's stated departures, the
validation-based epoch selection it uses (published validation split, never the test set),
the BPTT grid settings, and refusals. Plumbing only, on tiny runs; the figures are benchmark
output (docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"
spec = importlib.util.spec_from_file_location("_repro_yy_beyond", SCRIPTS / "reproduce_yinyang.py")
yy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(yy)


def test_beyond_departs_from_own_only_where_stated():
    own, own_ep = yy.named_config("own")
    b, ep = yy.named_config("beyond")
    assert (own_ep, ep) == (60, 30) and yy.named_config("beyond", 7)[1] == 7
    changed = {k for k in set(own) | set(b) if own.get(k) != b.get(k)}
    assert changed == {"hidden", "settings", "init", "lr", "grad_clip", "select_on_val", "val_from_epoch", "bptt"}
    assert {k for k in own["settings"] if own["settings"][k] != b["settings"][k]} == {"beta"}
    assert {k for k in own["init"] if own["init"][k] != b["init"][k]} == {"out_mean"}
    assert b["hidden"] == 200 and b["settings"]["beta"] == 0.25 and b["lr"] == 1e-2 and b["grad_clip"] == 1.0
    b["hidden"] = 3  # a copy: the module's configuration is unchanged
    assert yy.named_config("beyond")[0]["hidden"] == 200
    with pytest.raises(ValueError,
                       match=r"--config must be one of \['beyond', 'beyond_trainable', 'own'\], got 'x'"):
        yy.named_config("x")


def test_beyond_trainable_departs_from_beyond_only_in_the_per_neuron_keys():
    b, ep = yy.named_config("beyond")
    t, ep_t = yy.named_config("beyond_trainable")
    assert ep_t == ep
    changed = {k for k in set(b) | set(t) if b.get(k) != t.get(k)}
    assert changed == set(yy.TRAINABLE_KEYS)
    assert t["train_thresholds"] and t["train_time_constants"]


def test_train_model_trains_thresholds_and_time_constants_when_asked():
    cfg = {**yy.named_config("beyond_trainable")[0], "hidden": 6, "n_train": 120, "val_from_epoch": 0}
    m = yy.train_model(0, 2, cfg)
    assert m.neurons is not None and "clamped_theta" in m.history[-1]
    assert not np.all(m.neurons.theta[0] == 1.0) and not np.all(m.neurons.tau_mem[1] == 4.0)
    m = yy.train_model(0, 1, {**yy.named_config("beyond")[0], "hidden": 6, "n_train": 60, "val_from_epoch": 0})
    assert m.neurons is None


def test_train_model_selects_on_the_validation_split():
    cfg = {**yy.named_config("beyond")[0], "hidden": 8, "n_train": 200, "val_from_epoch": 1}
    m = yy.train_model(0, 3, cfg)
    vals = [h["val_acc"] for h in m.history]
    assert vals[0] is None and None not in vals[1:]
    assert m.selected_epoch == max(i for i in (1, 2) if vals[i] == max(vals[1:]))
    va = yy.load_yinyang("validation")
    assert m.accuracy(yy.encode(va.x, cfg), va.y) == pytest.approx(max(vals[1:]))
    # val_from_epoch past the run's end is clamped to its last epoch
    m = yy.train_model(0, 2, {**cfg, "val_from_epoch": 15})
    assert m.selected_epoch == 1


def test_bptt_settings_defaults_and_override():
    own = yy.named_config("own")[0]
    b = yy.bptt_settings(own)
    assert (b["dt_s"], b["n_steps"], b["unit_s"], b["hidden"], b["loss"]) == (1e-3, 40, 5e-3, [150], "count_ce")
    b = yy.bptt_settings({**own, "bptt": {"dt_s": 2.5e-4, "n_steps": 160, "loss": "mean_ce"}})
    assert (b["dt_s"], b["n_steps"], b["loss"], b["lr"]) == (2.5e-4, 160, "mean_ce", 1e-3)
    b = yy.bptt_settings(yy.named_config("beyond")[0])
    assert (b["dt_s"], b["n_steps"], b["hidden"], b["loss"], b["lr"]) == (2.5e-4, 160, [200], "mean_ce", 5e-3)
    assert b["trainable"] == ["weights", "threshold", "leak"]
    assert b["lr_final"] == 1e-5 and b["select_on_val"] and b["val_from_epoch"] == 10


def test_config_with_paper_is_refused(capsys):
    assert yy.main(["--paper", "--config", "beyond"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--config" in err[0] and "--paper" in err[0]


def test_run_line_reports_cpu_load_and_selected_epochs(capsys):
    import json
    assert yy.main(["--config", "beyond", "--seeds", "1", "--epochs", "2", "--no-compare", "--override",
                    json.dumps({"hidden": 6, "n_train": 100})]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["config_name"] == "beyond" and rec["selected_epochs"] == [1] and rec["epochs"] == 2
    assert rec["cpu_s_total"] > 0 and len(rec["load_avg_1min"]) == 2 and np.isfinite(rec["test_acc_mean"])
    assert rec["clamped_theta"] == [0] and rec["neurons"] == [None] and len(rec["val_acc_per_epoch"][0]) == 2
