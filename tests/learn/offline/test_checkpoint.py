"""Atomic checkpoints, resume, Ctrl-C saving and divergence handling of the BPTT loop."""

from __future__ import annotations

import numpy as np
import pytest

from rtsnn.learn.offline.bptt import FitConfig, TrainingDiverged, fit
from rtsnn.learn.offline.bptt_engine import Engine, NetSpec, init_params
from rtsnn.learn.offline.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

SPEC = NetSpec(n_in=6, layers=(12, 3), recurrent=(True, False))
RNG = np.random.default_rng(0)
X = ((RNG.random((20, 40, 6)) < 0.3) * 1.0).astype(np.float32)  # (T, N, n_in)
Y = RNG.integers(0, 3, 40)


def _setup():
    eng = Engine(SPEC)
    p = init_params(SPEC, 0, input_scale=6.0)
    return eng, p


def _get_batch(idx):
    idx = np.sort(idx)
    return X[:, idx], Y[idx]


def test_atomic_save_and_load(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"a": np.arange(3.0)}, {"epoch": 1})
    save_checkpoint(path, {"a": np.arange(4.0)}, {"epoch": 2})
    arrays, meta = load_checkpoint(path)
    np.testing.assert_array_equal(arrays["a"], np.arange(4.0))
    assert meta["epoch"] == 2
    assert [q.name for q in tmp_path.iterdir()] == ["c.npz"]  # no temp files left behind
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "bad.npz")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.npz")


def test_resume_equals_uninterrupted(tmp_path):
    eng, p_full = _setup()
    fit(eng, p_full, 40, _get_batch, "count_ce", FitConfig(epochs=4, batch_size=8, lr=1e-2))
    eng2, p = _setup()
    ck = tmp_path / "ck.npz"
    fit(eng2, p, 40, _get_batch, "count_ce", FitConfig(epochs=2, batch_size=8, lr=1e-2, checkpoint_path=str(ck)))
    assert load_checkpoint(ck)[1]["epoch"] == 2
    eng3, p2 = _setup()  # fresh params: everything must come from the checkpoint
    _, hist = fit(eng3, p2, 40, _get_batch, "count_ce",
                  FitConfig(epochs=4, batch_size=8, lr=1e-2, checkpoint_path=str(ck), resume=True))
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    for k in p_full:
        np.testing.assert_array_equal(p2[k], p_full[k], err_msg=k)


def test_ctrl_c_saves_progress_first(tmp_path):
    eng, p = _setup()
    ck = tmp_path / "ck.npz"
    calls = {"n": 0}

    def batches(idx):
        calls["n"] += 1
        if calls["n"] == 13:  # epoch 3, batch 3 (5 batches per epoch)
            raise KeyboardInterrupt
        return _get_batch(idx)

    with pytest.raises(KeyboardInterrupt):
        fit(eng, p, 40, batches, "count_ce", FitConfig(epochs=5, batch_size=8, lr=1e-2, checkpoint_path=str(ck)))
    arrays, meta = load_checkpoint(ck)
    assert meta["epoch"] == 2 and len(meta["history"]) == 2
    np.testing.assert_array_equal(arrays["param/w0"], p["w0"])  # the mid-epoch progress was saved
    _, hist = fit(eng, p, 40, _get_batch, "count_ce",
                  FitConfig(epochs=5, batch_size=8, lr=1e-2, checkpoint_path=str(ck), resume=True))
    assert len(hist) == 5


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path):
    eng, p = _setup()
    ck = tmp_path / "ck.npz"
    state = {"epoch_batches": 0}

    def exploding(out, target):
        from rtsnn.learn.offline.losses import count_ce

        state["epoch_batches"] += 1
        val, d = count_ce(out, target)
        return (float("nan") if state["epoch_batches"] > 12 else val), d

    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 3.*last good checkpoint kept"):
        fit(eng, p, 40, _get_batch, exploding, FitConfig(epochs=5, batch_size=8, lr=1e-2, checkpoint_path=str(ck)))
    arrays, meta = load_checkpoint(ck)
    assert meta["epoch"] == 2
    assert all(np.all(np.isfinite(v)) for v in arrays.values())
    # the in-memory params were put back to the start of the diverging epoch = the checkpoint
    np.testing.assert_array_equal(arrays["param/w0"], p["w0"])


def test_exploding_loss_detected():
    eng, p = _setup()
    state = {"n": 0}

    def growing(out, target):
        from rtsnn.learn.offline.losses import count_ce

        state["n"] += 1
        val, d = count_ce(out, target)
        return val * (1.0 if state["n"] <= 5 else 1e6), d

    with pytest.raises(TrainingDiverged, match="diverged at epoch 2"):
        fit(eng, p, 40, _get_batch, growing, FitConfig(epochs=3, batch_size=8, lr=1e-2))


def test_resume_refuses_other_network(tmp_path):
    eng, p = _setup()
    ck = tmp_path / "ck.npz"
    fit(eng, p, 40, _get_batch, "count_ce", FitConfig(epochs=1, batch_size=8, checkpoint_path=str(ck)))
    other = NetSpec(n_in=6, layers=(7, 3), recurrent=(True, False))
    with pytest.raises(ValueError, match="parameter 'w0' has shape"):
        fit(Engine(other), init_params(other, 0), 40, _get_batch, "count_ce",
            FitConfig(epochs=2, batch_size=8, checkpoint_path=str(ck), resume=True))
