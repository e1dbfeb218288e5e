"""`rtsnn pretrain` with a validation split of the training trials (`train.validation_fraction`)
and best-epoch selection (`train.select: best_validation`), on a real XDF file written here:
the validation trials are disjoint from the training and test trials, the saved parameters are
those of the best validation epoch, the default (no validation, last epoch) is unchanged, and
bad settings are one-line errors (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.learn.offline.test_pretrain_recording import REGRESSION, _cfg, _error, _run, _xdf

EPOCHS = 8
FAST = {"lr": 0.1, "seed": 1}  # a large step: the validation figure moves from epoch to epoch


def _history(tmp_path) -> list[dict]:
    return json.loads((tmp_path / "m.history.json").read_text())["epochs"]


def test_validation_trials_are_disjoint_from_train_and_test(tmp_path, capsys):
    from rtsnn.snn.model_file import load_model

    _xdf(tmp_path / "rec.xdf")
    res = _run(capsys, _cfg(tmp_path, REGRESSION, epochs=2, validation_fraction=0.25, select="last"))
    prov = load_model(tmp_path / "m.npz").provenance
    tr, te, va = (set(prov[k]) for k in ("train_trials", "test_trials", "validation_trials"))
    assert len(te) == 4 and len(va) == 4 and len(tr) == 12  # 20 trials: 4 test, 25 % of the other 16
    assert not (tr & te) and not (tr & va) and not (te & va) and len(tr | te | va) == 20
    assert (res["train_trials"], res["test_trials"], res["validation_trials"]) == (12, 4, 4)
    # select: last keeps the last epoch but still reports the validation figure of every epoch
    hist = _history(tmp_path)
    assert res["selected_epoch"] == 2 and all(isinstance(e["validation_metric"], float) for e in hist)
    assert res["validation_r2_continuous"] == pytest.approx(hist[-1]["validation_metric"])
    # the test trials are those of the run without validation: the held-out split is unchanged
    _run(capsys, _cfg(tmp_path, REGRESSION, epochs=1))
    assert set(load_model(tmp_path / "m.npz").provenance["test_trials"]) == te


def test_best_validation_keeps_the_parameters_of_the_best_validation_epoch(tmp_path, capsys):
    _xdf(tmp_path / "rec.xdf")
    res = _run(capsys, _cfg(tmp_path, REGRESSION, epochs=EPOCHS, validation_fraction=0.25,
                            select="best_validation", **FAST))
    hist = _history(tmp_path)
    val = np.array([e["validation_metric"] for e in hist])
    assert len(hist) == EPOCHS and res["epochs"] == EPOCHS
    best = len(val) - int(np.argmax(val[::-1]))  # 1-based; the last of equal maxima
    assert res["select"] == "best_validation" and res["selected_epoch"] == best
    assert best < EPOCHS  # this seed's best epoch is not the last: the selection is visible
    assert res["validation_r2_continuous"] == pytest.approx(val.max(), abs=1e-12)
    # the saved model's held-out figures are that epoch's (same parameters, same forward pass)
    chosen = hist[best - 1]
    assert res["snn_r2_reset"] == pytest.approx(chosen["heldout_metric"], abs=1e-9)
    assert res["snn_r2_continuous"] == pytest.approx(chosen["heldout_metric_continuous"], abs=1e-9)
    assert res["snn_r2_continuous"] != pytest.approx(hist[-1]["heldout_metric_continuous"], abs=1e-9)
    doc = json.loads((tmp_path / "m.history.json").read_text())
    assert doc["select"] == "best_validation" and doc["selected_epoch"] == best


def test_of_tied_best_validation_epochs_the_later_is_kept(tmp_path, capsys, monkeypatch):
    """The validation figures are scripted (epochs 2 and 4 of 5 tie at the best): the kept
    parameters are epoch 4's, the tie rule of fit's and FP's selection."""
    import rtsnn.learn.offline.pretrain as pretrain

    scripted = [0.1, 0.5, 0.2, 0.5, 0.3]
    real = pretrain.r2_score
    calls = []

    def r2_score(pred, y):
        # per epoch's evaluation: test_r2, test_r2_continuous, then the validation figure
        calls.append(1)
        n = len(calls) - 1
        if n < 3 * len(scripted) and n % 3 == 2:
            return scripted[n // 3], None
        return real(pred, y)

    monkeypatch.setattr(pretrain, "r2_score", r2_score)
    _xdf(tmp_path / "rec.xdf")
    res = _run(capsys, _cfg(tmp_path, REGRESSION, epochs=len(scripted), validation_fraction=0.25,
                            select="best_validation", **FAST))
    hist = _history(tmp_path)
    assert [e["validation_metric"] for e in hist] == scripted  # the script reached the selection
    assert res["selected_epoch"] == 4
    assert res["snn_r2_continuous"] == pytest.approx(hist[3]["heldout_metric_continuous"], abs=1e-9)
    assert res["snn_r2_continuous"] != pytest.approx(hist[1]["heldout_metric_continuous"], abs=1e-9)


def test_default_trains_on_every_training_trial_and_keeps_the_last_epoch(tmp_path, capsys):
    _xdf(tmp_path / "rec.xdf")
    res = _run(capsys, _cfg(tmp_path, REGRESSION, epochs=3, **FAST))
    hist = _history(tmp_path)
    assert res["train_trials"] == 16 and "validation_trials" not in res
    assert res["select"] == "last" and res["selected_epoch"] == 3
    assert all("validation_metric" not in e for e in hist)
    assert res["snn_r2_continuous"] == pytest.approx(hist[-1]["heldout_metric_continuous"], abs=1e-9)
    # validation_fraction 0 and select last spelled out: the same run, the same figures
    same = _run(capsys, _cfg(tmp_path, REGRESSION, epochs=3, validation_fraction=0, select="last", **FAST))
    for k in ("snn_r2_reset", "snn_r2_continuous", "wiener_r2_reset", "train_trials"):
        assert same[k] == res[k], k


def test_bad_selection_settings_are_one_line_errors(tmp_path, capsys):
    _xdf(tmp_path / "rec.xdf", seconds=6.0)  # 3 trials: 1 test, 2 train, none to spare for validation
    msg = _error(capsys, _cfg(tmp_path, REGRESSION, select="best_validation"))
    assert "p.yaml: train" in msg and "select 'best_validation' needs train.validation_fraction > 0" in msg
    msg = _error(capsys, _cfg(tmp_path, REGRESSION, validation_fraction=1.0))
    assert "train.validation_fraction" in msg
    msg = _error(capsys, _cfg(tmp_path, REGRESSION, validation_fraction=0.2))
    assert "train.validation_fraction 0.2" in msg and "2 training trials" in msg and "rec.xdf" in msg
