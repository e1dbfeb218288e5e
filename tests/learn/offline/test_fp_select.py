"""Validation-based epoch selection in train_classifier_fp: the kept weights are those of the
epoch with the best held-out validation accuracy (latest of equals); scoring a validation set
changes nothing else; bad requests are refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from rtsnn.datasets import load_yinyang
from rtsnn.learn.offline import fp

S = fp.FPSettings(alpha=1.0, beta=1.0, theta=1.0, t_max=8.0, max_hidden_spikes=1, tau0=0.05, tau1=1.0, gamma=0.05)


@pytest.fixture(scope="module")
def data():
    tr, va = load_yinyang("train"), load_yinyang("validation")
    return (fp.encode_latency(tr.x[:400]), tr.y[:400], fp.encode_latency(va.x[:200]), va.y[:200])


def _train(data, **kw):
    x, y, xv, yv = data
    return fp.train_classifier_fp(x, y, hidden=[12], n_classes=3, epochs=6, seed=3, settings=S, lr=2e-2,
                                  batch_size=16, **kw)


def test_selection_keeps_the_best_validation_epoch(data):
    _, _, xv, yv = data
    m = _train(data, x_val=xv, y_val=yv, select_on_val=True)
    vals = [h["val_acc"] for h in m.history]
    best = max(vals)
    assert m.selected_epoch == max(i for i, v in enumerate(vals) if v == best)
    assert m.accuracy(xv, yv) == pytest.approx(best)
    # the same run without selection ends on the last epoch's weights, the same trajectory
    last = _train(data, x_val=xv, y_val=yv)
    assert last.selected_epoch is None and [h["val_acc"] for h in last.history] == vals
    assert last.accuracy(xv, yv) == pytest.approx(vals[-1])


def test_scoring_a_validation_set_changes_no_weight(data):
    _, _, xv, yv = data
    a = _train(data)
    b = _train(data, x_val=xv, y_val=yv, val_from_epoch=4)
    for wa, wb in zip(a.net.w, b.net.w):
        np.testing.assert_array_equal(wa, wb)
    assert [h["val_acc"] is None for h in b.history] == [True] * 4 + [False] * 2


def test_selection_from_a_later_epoch_only_considers_those(data):
    _, _, xv, yv = data
    m = _train(data, x_val=xv, y_val=yv, select_on_val=True, val_from_epoch=5)
    assert m.selected_epoch == 5


@pytest.mark.parametrize("kw,msg", [
    (dict(select_on_val=True), "select_on_val needs a held-out validation set"),
    (dict(val_from_epoch=6, use_val=True), r"val_from_epoch must be an int in \[0, epochs\)"),
    (dict(val_from_epoch=-1, use_val=True), r"val_from_epoch must be an int in \[0, epochs\)"),
    (dict(y_only=True), "give both x_val and y_val, or neither"),
])
def test_bad_selection_requests_are_refused(data, kw, msg):
    x, y, xv, yv = data
    if kw.pop("use_val", False):
        kw.update(x_val=xv, y_val=yv)
    if kw.pop("y_only", False):
        kw.update(y_val=yv)
    with pytest.raises(ValueError, match=msg):
        fp.train_classifier_fp(x, y, hidden=[4], n_classes=3, epochs=6, seed=0, settings=S, **kw)
