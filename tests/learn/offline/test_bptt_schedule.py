"""train_classifier / fit: cosine learning-rate decay (lr_final) and epoch selection on a
validation set (select_on_val); defaults unchanged; resume keeps the selected weights."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from rtsnn.learn.offline.bptt import FitConfig, cosine_lr, fit, train_classifier
from rtsnn.learn.offline.bptt_engine import Engine, init_params

from _bptt_nets import latency_task, net


def _task(n, seed):
    return latency_task(n, seed, steps=20, early=(1, 5), late=(7, 18))


def test_cosine_lr_runs_from_lr_to_lr_final():
    assert cosine_lr(1e-2, None, 7, 10) == 1e-2
    assert cosine_lr(1e-2, 1e-4, 0, 10) == pytest.approx(1e-2)
    assert cosine_lr(1e-2, 1e-4, 9, 10) == pytest.approx(1e-4)
    assert cosine_lr(1e-2, 1e-4, 50, 10) == pytest.approx(1e-4)  # past the end: stays there
    # halfway the mean of the two; decreasing throughout
    assert cosine_lr(1.0, 0.0 + 1e-9, 5, 11) == pytest.approx(0.5, abs=1e-8)
    lrs = [cosine_lr(1e-2, 1e-5, s, 40) for s in range(40)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert cosine_lr(3e-3, 3e-3, 17, 40) == 3e-3  # equal ends: exactly the constant


def test_defaults_and_equal_ends_are_the_constant_rate():
    x, y = _task(64, 0)
    kw = dict(hidden=[8], n_classes=3, epochs=2, seed=3, lr=1e-2, loss="mean_ce", batch_size=16)
    a = train_classifier(x, y, **kw)
    b = train_classifier(x, y, lr_final=1e-2, **kw)  # cosine with lr_final = lr: the same steps
    c = train_classifier(x, y, lr_final=None, select_on_val=False, **kw)
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
        assert np.array_equal(a.params[k], c.params[k]), k
    assert a.selected_epoch is None and "lr" not in a.history[-1] and "selected_epoch" not in a.history[-1]
    assert b.history[-1]["lr"] == 1e-2


def test_cosine_decay_changes_training_and_ends_at_lr_final():
    x, y = _task(64, 0)
    kw = dict(hidden=[8], n_classes=3, epochs=3, seed=3, lr=1e-2, loss="mean_ce", batch_size=16)
    a = train_classifier(x, y, **kw)
    d = train_classifier(x, y, lr_final=1e-4, **kw)
    assert [h["lr"] for h in d.history][-1] == pytest.approx(1e-4)
    assert d.history[0]["lr"] > d.history[1]["lr"] > d.history[2]["lr"]
    assert not np.array_equal(a.params["w0"], d.params["w0"])


def test_select_on_val_keeps_the_best_validation_epoch():
    # overlapping latency windows and a large step: validation accuracy peaks at epoch 3 of 6
    # and falls after it, so keeping the final weights would be visible
    x, y = latency_task(60, 1, steps=20, early=(1, 9), late=(4, 18))
    xv, yv = latency_task(30, 2, steps=20, early=(1, 9), late=(4, 18))
    epochs = 6
    kw = dict(hidden=[12], n_classes=3, seed=0, lr=0.2, loss="mean_ce", batch_size=16, x_val=xv, y_val=yv,
              log=None)
    m = train_classifier(x, y, epochs=epochs, select_on_val=True, val_from_epoch=1, **kw)
    vals = [h["val_acc"] for h in m.history]
    best = max(vals[1:])
    # the last of the tied best epochs from epoch 1 on, and its weights are what m holds
    want = max(i for i in range(1, epochs) if vals[i] == best)
    assert m.selected_epoch == want and want < epochs - 1 and vals[-1] < best
    assert [h.get("selected_epoch") for h in m.history][want:] == [want] * (epochs - want)
    assert m.accuracy(xv, yv) == best
    # the same run stopped after the selected epoch: the very same weights
    f = train_classifier(x, y, epochs=want + 1, **kw)
    for k in m.params:
        assert np.array_equal(m.params[k], f.params[k]), k
    # and the final weights of the full run are others
    last = train_classifier(x, y, epochs=epochs, **kw)
    assert not np.array_equal(m.params["w0"], last.params["w0"])


def _fit_scored(scores, epochs, select_from_epoch=0):
    """fit with ``evaluate`` returning the scripted ``scores`` and a copy of the weights after every epoch."""
    x, y = _task(48, 4)
    xb_all = np.ascontiguousarray(x.transpose(1, 0, 2))
    graph, options = net(6, (8,), (False,), 3, dt_s=1e-3)
    eng = Engine(graph, options, dtype=np.float64)
    params = init_params(graph, 0, options)
    seen = []

    def evaluate(p):
        seen.append({k: v.copy() for k, v in p.items()})
        return {"score": scores[len(seen) - 1]}

    cfg = FitConfig(epochs=epochs, batch_size=16, lr=1e-2, select_metric="score", select_from_epoch=select_from_epoch)
    out, hist = fit(eng, params, 48, lambda idx: (xb_all[:, np.sort(idx)], y[np.sort(idx)]), "mean_ce", cfg,
                    evaluate=evaluate, log=None)
    return out, hist, seen


def test_fit_keeps_the_weights_of_the_latest_best_epoch_not_the_final_ones():
    """Scripted validation scores: the best (tied) at epochs 1 and 3 of 5, so fit keeps epoch 3's
    weights (ties: the later epoch), which are not the final ones."""
    out, hist, seen = _fit_scored([0.2, 0.9, 0.4, 0.9, 0.3], 5)
    assert [h["selected_epoch"] for h in hist] == [0, 1, 1, 3, 3]
    assert not np.array_equal(seen[3]["w0"], seen[4]["w0"])
    for k in out:
        assert np.array_equal(out[k], seen[3][k]), k
    # scored from epoch 4 on only: the last epoch is the only candidate
    out, hist, seen = _fit_scored([0.2, 0.9, 0.4, 0.9, 0.3], 5, select_from_epoch=4)
    assert hist[-1]["selected_epoch"] == 4
    for k in out:
        assert np.array_equal(out[k], seen[4][k]), k


def test_bad_schedule_and_selection_options_name_the_option():
    x, y = _task(20, 0)
    kw = dict(hidden=[4], n_classes=3, epochs=2, seed=0)
    with pytest.raises(ValueError, match="select_on_val needs a held-out validation set"):
        train_classifier(x, y, select_on_val=True, **kw)
    with pytest.raises(ValueError, match=r"val_from_epoch must be an int in \[0, epochs=2\)"):
        train_classifier(x, y, select_on_val=True, val_from_epoch=2, x_val=x, y_val=y, **kw)
    for bad in (0.0, -1e-3, math.nan, "1e-3"):
        with pytest.raises(ValueError, match="lr_final must be a finite number > 0 or None"):
            train_classifier(x, y, lr_final=bad, **kw)


def test_resume_keeps_the_selected_weights(tmp_path):
    """A run interrupted after epoch 2 of 4 and resumed from that checkpoint ends with the
    same weights, schedule and selected epoch as the run that was not interrupted."""
    x, y = _task(48, 4)
    xb_all = np.ascontiguousarray(x.transpose(1, 0, 2))
    graph, options = net(6, (8,), (False,), 3, dt_s=1e-3)
    ck = tmp_path / "run.npz"
    aside = tmp_path / "after2.npz"
    scores = iter([0.5, 0.9, 0.7, 0.8, 0.7, 0.8, 0.0])  # full run, then the resumed epochs 3-4

    def get_batch(idx):
        idx = np.sort(idx)
        return xb_all[:, idx], y[idx]

    calls = []
    weights = []  # the weights after every epoch of the first (full) run

    def evaluate(p):
        calls.append(1)
        if len(calls) <= 4:
            weights.append({k: v.copy() for k, v in p.items()})
        if len(calls) == 3 and ck.exists():  # the checkpoint written after epoch 2
            shutil.copy(ck, aside)
        return {"score": next(scores)}

    def run(path, resume):
        eng = Engine(graph, options, dtype=np.float64)
        params = init_params(graph, 0, options)
        cfg = FitConfig(epochs=4, batch_size=16, lr=1e-2, lr_final=1e-4, select_metric="score",
                        checkpoint_path=str(path), resume=resume)
        return fit(eng, params, 48, get_batch, "mean_ce", cfg, evaluate=evaluate, log=None)

    full, hist = run(ck, False)
    assert [h["selected_epoch"] for h in hist] == [0, 1, 1, 1]
    resumed, hist_r = run(aside, True)
    assert [h["selected_epoch"] for h in hist_r] == [0, 1, 1, 1]
    assert [h["lr"] for h in hist_r] == [h["lr"] for h in hist]
    for k in full:
        assert np.array_equal(full[k], resumed[k]), k
        # both hold the selected epoch's weights (epoch 1), not the final ones
        assert np.array_equal(full[k], weights[1][k]), k
    assert not np.array_equal(weights[1]["w0"], weights[3]["w0"])
