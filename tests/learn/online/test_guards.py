"""Learning guards: NaN teaching signals, exploding learning, pause/resume/rate, checkpoints."""

import os

import numpy as np
import pytest

from rtsnn.backends.numba_cpu import NumbaCpuBackend
from rtsnn.learn.online.eprop import EpropLearner
from rtsnn.learn.online.guards import CheckpointWriter, LearningGuard
from rtsnn.snn.model_file import load_model
from rtsnn.snn.params import Model, single_layer


def _setup(**opts):
    layer = single_layer("lif", 30, tau_mem_s=20e-3, tau_out_s=20e-3, v_th=1.0)
    model = Model.random(8, 30, 2, *layer, seed=1, input_gain=1.5, readout_scale=0.1)
    be = NumbaCpuBackend(model)
    lrn = EpropLearner(**opts)
    lrn.attach(be, 1e-3)
    be.warm_up()
    return model, be, lrn


def _run(lrn, be, n, target_fn, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros(be.n_in, np.float32)
    tg = np.zeros(be.n_out, np.float32)
    for t in range(n):
        x[:] = rng.random(be.n_in) < 0.05
        be.step(x)
        tg[:] = target_fn(t)
        lrn.observe(be, tg)
        if lrn.wants_apply():
            lrn.prepare()
            lrn.apply(be)


def test_nan_teaching_signal_is_counted_and_teaches_nothing():
    model, be, lrn = _setup(lr=1e-3, update_every_ticks=100, defer=False)
    w0 = model.weights.copy()
    _run(lrn, be, 300, lambda t: np.nan)
    st = lrn.stats()
    assert st["bad_targets"] == 300
    assert st["rollbacks"] == 0
    np.testing.assert_array_equal(model.weights.w_in, w0.w_in)  # no learning signal -> no change
    _run(lrn, be, 300, lambda t: np.sin(t / 50.0))
    assert lrn.stats()["bad_targets"] == 300
    assert not np.array_equal(model.weights.w_out, w0.w_out)


@pytest.mark.parametrize("defer", [False, True])
def test_exploding_learning_rolls_back_and_pauses(defer):
    model, be, lrn = _setup(lr=1e6, lr_max=1e6, optimizer="gd", update_every_ticks=100, defer=defer, max_abs_weight=50.0,
                            w_min=-1e30, w_max=1e30)
    w0 = model.weights.copy()
    _run(lrn, be, 400, lambda t: 100.0 * np.sin(t / 20.0))
    st = lrn.stats()
    assert st["rollbacks"] >= 1 and st["paused"] and "exploded" in st["last_guard_reason"]
    # the runtime runs on the last good weights: finite and bounded (here: the initial ones)
    for name in ("w_in", "w_rec", "w_out", "b_out"):
        np.testing.assert_array_equal(getattr(model.weights, name), getattr(w0, name))
    # paused: further ticks change nothing
    ticks = st["ticks"]
    _run(lrn, be, 200, lambda t: 1.0)
    assert lrn.stats()["ticks"] == ticks
    # resume with a sane rate: learning continues without rollbacks
    lrn.set_lr(1e-4)
    lrn.resume()
    _run(lrn, be, 300, lambda t: np.sin(t / 20.0))
    st2 = lrn.stats()
    assert not st2["paused"] and st2["rollbacks"] == st["rollbacks"] and st2["ticks"] == ticks + 300
    assert st2["lr"] == 1e-4


def test_pause_resume_and_bad_rate():
    model, be, lrn = _setup(lr=1e-3, update_every_ticks=50, defer=False)
    lrn.pause()
    w0 = model.weights.copy()
    _run(lrn, be, 200, lambda t: 1.0)
    np.testing.assert_array_equal(model.weights.w_out, w0.w_out)
    assert lrn.stats()["paused"] and lrn.stats()["pauses"] == 1
    lrn.resume()
    _run(lrn, be, 200, lambda t: 1.0)
    assert not np.array_equal(model.weights.w_out, w0.w_out)
    for bad in (0.0, -1.0, float("inf"), "fast"):
        with pytest.raises(ValueError, match="learning rate"):
            lrn.set_lr(bad)


def test_guard_detects_nan_and_restores():
    a = {"w": np.ones(4)}
    g = LearningGuard(a, max_abs_weight=10.0)
    a["w"][1] = np.nan
    assert not g.commit_or_rollback()
    np.testing.assert_array_equal(a["w"], np.ones(4))
    assert g.rollbacks == 1 and g.paused and "NaN" in g.last_reason
    with pytest.raises(ValueError, match="max_abs_weight"):
        LearningGuard(a, max_abs_weight=-1)


def test_checkpoint_on_schedule_and_on_close(tmp_path):
    path = tmp_path / "adapted.npz"
    model, be, lrn = _setup(lr=1e-3, update_every_ticks=100, defer=True, checkpoint_path=str(path),
                            checkpoint_every_s=1e-6)
    _run(lrn, be, 300, lambda t: np.sin(t / 30.0))
    assert lrn.stats()["checkpoints_written"] >= 1
    lrn.close()
    st = lrn.stats()
    assert st["checkpoints_failed"] == 0
    saved = load_model(path)
    np.testing.assert_allclose(saved.weights.w_out, model.weights.w_out, rtol=1e-6)
    assert saved.provenance["eprop"]["updates"] == st["updates"] >= 2
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # no temp files left


def test_checkpoint_failure_is_counted_not_raised(tmp_path):
    target = tmp_path / "dir_as_file"
    target.mkdir()  # os.replace onto a directory fails
    w = CheckpointWriter(target, lambda: Model.random(2, 3, 1), every_s=1.0)
    assert w.close() is False
    assert w.stats()["checkpoints_failed"] == 1 and w.stats()["last_checkpoint_error"]
    with pytest.raises(ValueError, match="does not exist"):
        CheckpointWriter(tmp_path / "nope" / "m.npz", lambda: None)


def test_checkpoint_on_schedule_with_inline_updates(tmp_path):
    """Short windows update inline on the compute thread; the scheduled checkpoint still comes,
    through prepare() on the I/O thread, and nothing is left waiting to be applied."""
    path = tmp_path / "inline.npz"
    model, be, lrn = _setup(lr=1e-3, update_every_ticks=10, defer=False, checkpoint_path=str(path),
                            checkpoint_every_s=1e-6)
    _run(lrn, be, 300, lambda t: np.sin(t / 30.0))
    st = lrn.stats()
    assert st["updates"] >= 20 and st["checkpoints_written"] >= 1
    assert not lrn.ready()  # a checkpoint-only prepare installs nothing
    assert load_model(path).provenance["eprop"]["ticks"] > 0
