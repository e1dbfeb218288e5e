"""train_classifier: learns a small spike-timing task; history/epoch time; bad input."""

from __future__ import annotations

import numpy as np
import pytest

from rtsnn.learn.offline.bptt import train_classifier

from _bptt_nets import latency_task


def _task(n, seed):
    return latency_task(n, seed, steps=30, early=(2, 6), late=(12, 25))


@pytest.mark.parametrize("loss,recurrent", [("count_ce", False), ("rate_ce", True)])
def test_learns_latency_task(loss, recurrent):
    x, y = _task(300, 0)
    xv, yv = _task(100, 1)
    m = train_classifier(x, y, hidden=[24], n_classes=3, epochs=8, seed=0, lr=1e-2, loss=loss,
                         recurrent=recurrent, x_val=xv, y_val=yv)
    assert len(m.history) == 8
    assert set(m.history[-1]) >= {"loss", "train_acc", "val_acc", "epoch_s"}
    assert m.epoch_time == [h["epoch_s"] for h in m.history] and all(t > 0 for t in m.epoch_time)
    assert m.history[-1]["loss"] < m.history[0]["loss"]
    assert m.history[-1]["val_acc"] >= 0.9, m.history
    assert m.predict(xv).dtype == np.int64 and m.predict(xv).shape == (100,)
    assert "w0" in m.params


def test_bad_input_names_the_array():
    x, y = _task(20, 0)
    xn = x.copy()
    xn[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match=r"x contains 1 NaN/inf values \(first at index \(3, 4, 1\)\)"):
        train_classifier(xn, y, hidden=[4], n_classes=3, epochs=1, seed=0)
    with pytest.raises(ValueError, match=r"x must be 3-D \(n_samples, T, n_in\)"):
        train_classifier(x[:, :, 0], y, hidden=[4], n_classes=3, epochs=1, seed=0)
    with pytest.raises(ValueError, match=r"y must have shape \(n_samples,\) = \(20,\)"):
        train_classifier(x, y[:5], hidden=[4], n_classes=3, epochs=1, seed=0)
    with pytest.raises(ValueError, match=r"y labels must lie in \[0, n_classes=2\)"):
        train_classifier(x, y, hidden=[4], n_classes=2, epochs=1, seed=0)
    with pytest.raises(ValueError, match="x_val must have n_in = 6"):
        train_classifier(x, y, hidden=[4], n_classes=3, epochs=1, seed=0, x_val=x[:, :, :3], y_val=y)
    with pytest.raises(ValueError, match="unknown option"):
        train_classifier(x, y, hidden=[4], n_classes=3, epochs=1, seed=0, learning_rate=3)
    with pytest.raises(ValueError, match="loss must be one of"):
        train_classifier(x, y, hidden=[4], n_classes=3, epochs=1, seed=0, loss="mse")


def test_trainable_threshold_leak_and_calibration_run():
    x, y = _task(60, 2)
    m = train_classifier(x, y, hidden=[10, 10], n_classes=3, epochs=2, seed=1, lr=1e-2, neuron="alif",
                         beta_adapt=0.2, trainable=("weights", "threshold", "leak"), calibrate_every=1,
                         reg_rate=1e-4, checkpoint_steps=7)
    assert not np.allclose(m.params["vth0"], 1.0)  # thresholds moved
    assert not np.allclose(m.params["alpha1"], m.params["alpha1"][0])  # leaks became heterogeneous
    assert len(m.calib) == 3 and m.calib[-1] == 1.0
