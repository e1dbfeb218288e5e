"""Quantisation-aware training: exact chip forward, straight-through backward vs finite differences
of the relaxed forward, QAT beats post-training quantisation, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from rtsnn_xylo.int_kernels import IntNetwork
from rtsnn_xylo.qat import (ChipTrainer, chip_predict_logits, check_counts, qat_finetune, relaxed_forward,
                            sample_backward)
from rtsnn_xylo.spec import XyloConfig


def _cfg(rng, n_in=3, n_hid=5, n_out=2, syn1=False) -> XyloConfig:
    w_in = np.zeros((n_in, n_hid, 2), np.int64)
    w_in[:, :, 0] = rng.integers(-60, 100, (n_in, n_hid))
    if syn1:
        w_in[0, 0, 1] = 5
    w_rec = np.zeros((n_hid, n_hid, 2), np.int64)
    w_rec[:, :, 0] = rng.integers(-40, 40, (n_hid, n_hid))
    np.fill_diagonal(w_rec[:, :, 0], 0)
    return XyloConfig(w_in=w_in, w_rec=w_rec, w_out=rng.integers(-100, 100, (n_hid, n_out)),
                      threshold=rng.integers(200, 600, n_hid), threshold_out=np.full(n_out, 32767),
                      dash_mem=rng.integers(2, 5, n_hid), dash_syn=np.full((n_hid, 2), 1),
                      dash_mem_out=np.full(n_out, 3), dash_syn_out=np.full(n_out, 3), weight_shift_in=3,
                      weight_shift_rec=2, out_scale=np.full(n_out, 50.0))


def test_training_forward_is_the_exact_chip():
    rng = np.random.default_rng(0)
    cfg = _cfg(rng)
    xs = rng.poisson(2.0, (4, 30, cfg.n_in)).astype(np.int32)
    xs[0, 3, 1] = 40  # above the 15-event cap
    rec = ChipTrainer(cfg).run(check_counts(xs, cfg.n_in))
    for b in range(xs.shape[0]):
        ref = IntNetwork(cfg).run(xs[b])
        for key in ("v_mem", "i_syn", "spikes", "i_syn_out"):
            np.testing.assert_array_equal(rec[key][b], ref[key], err_msg=key)
    assert rec["spikes"].sum() > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_backward_matches_finite_differences_of_relaxed_forward(seed):
    rng = np.random.default_rng(seed)
    n_in, n_hid, n_out, T = 3, 4, 2, 12
    c = rng.poisson(1.5, (T, n_in)).astype(np.float64)
    w_in = rng.normal(300, 250, (n_in, n_hid))
    w_rec = rng.normal(0, 150, (n_hid, n_hid))
    np.fill_diagonal(w_rec, 0)
    w_out = rng.normal(0, 1, (n_hid, n_out))
    th = rng.uniform(300, 600, n_hid)
    ds, dm, do = np.full(n_hid, 0.5), rng.uniform(0.7, 0.95, n_hid), np.full(n_out, 0.875)
    g_o = rng.normal(0, 1, (T, n_out))
    k = 5.0

    def loss(wi, wr, wo):
        return float(np.sum(g_o * relaxed_forward(c, wi, wr, wo, th, ds, dm, do, k)["o"]))

    r = relaxed_forward(c, w_in, w_rec, w_out, th, ds, dm, do, k)
    # the test must cover the sub-threshold tail, the staircase and spikes that propagate
    u = r["p"] / th
    assert (u < 1).any() and (u >= 1).any()
    one = np.ones((T, n_hid))
    g_in, g_rec, g_out = np.zeros_like(w_in), np.zeros_like(w_rec), np.zeros_like(w_out)
    sample_backward(c, r["a"], r["p"], r["z"], one, one, np.ones((T, n_out)), w_rec, w_out, th, ds, dm, do,
                    g_o, k, g_in, g_rec, g_out)
    np.fill_diagonal(g_rec, 0)
    eps = 1e-4
    for name, w, g in (("w_in", w_in, g_in), ("w_rec", w_rec, g_rec), ("w_out", w_out, g_out)):
        fd = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            if name == "w_rec" and idx[0] == idx[1]:
                continue
            wp, wm = w.copy(), w.copy()
            wp[idx] += eps
            wm[idx] -= eps
            args_p = {"w_in": (wp, w_rec, w_out), "w_rec": (w_in, wp, w_out), "w_out": (w_in, w_rec, wp)}[name]
            args_m = {"w_in": (wm, w_rec, w_out), "w_rec": (w_in, wm, w_out), "w_out": (w_in, w_rec, wm)}[name]
            fd[idx] = (loss(*args_p) - loss(*args_m)) / (2 * eps)
        assert np.abs(g).max() > 0
        np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-6 * np.abs(fd).max(), err_msg=name)


def test_saturated_state_blocks_gradient():
    rng = np.random.default_rng(4)
    cfg = _cfg(rng)
    tr = ChipTrainer(cfg)
    xs = check_counts(rng.poisson(2.0, (2, 10, cfg.n_in)), cfg.n_in)
    rec = tr.run(xs)
    dy = rng.normal(0, 1, (2, 10, cfg.n_out))
    g = tr.grads(xs, rec, dy)
    assert np.abs(g["w_in"]).sum() > 0
    rec_sat = dict(rec)
    rec_sat["i_syn_out"] = np.full_like(rec["i_syn_out"], 32767)  # output current on the rail
    g2 = tr.grads(xs, rec_sat, dy)
    assert np.abs(g2["w_out"]).sum() == 0 and np.abs(g2["w_in"]).sum() == 0


def _tiny_yinyang():
    from rtsnn.datasets import generate_yinyang
    from rtsnn.learn.offline import fp
    from rtsnn.learn.offline.fp_repro import times_to_grid

    tr, te = generate_yinyang(600, 7), generate_yinyang(400, 8)
    enc = lambda s: times_to_grid(fp.encode_latency(s.x), 5e-3, 1e-3, 30)  # noqa: E731
    return enc(tr), tr.y, enc(te), te.y


def test_qat_beats_post_training_quantisation():
    from rtsnn.learn.offline.bptt import train_classifier
    from rtsnn_xylo.quantize import map_model

    xtr, ytr, xte, yte = _tiny_yinyang()
    clf = train_classifier(xtr, ytr, hidden=[16], n_classes=3, epochs=4, seed=0, lr=5e-3, loss="mean_ce",
                           tau_mem_s=16e-3, tau_out_s=16e-3, log=None)
    cfg, _ = map_model(clf.to_model(), quantization="per_neuron")
    acc = lambda c, x, y: float(np.mean(np.argmax(chip_predict_logits(c, x), axis=1) == y))  # noqa: E731
    ptq = acc(cfg, xte, yte)
    res = qat_finetune(cfg, xtr, ytr, epochs=3, lr=0.3, seed=0)
    qat = acc(res.config, xte, yte)
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert qat >= ptq + 0.05, (ptq, qat)
    # the result is a valid chip config: int8 weights within range, DRC passed in to_config
    assert res.config.w_in.min() >= -128 and res.config.w_in.max() <= 127


def test_bad_inputs_are_named():
    rng = np.random.default_rng(5)
    cfg = _cfg(rng)
    with pytest.raises(ValueError, match="input counts"):
        check_counts(np.zeros((2, 3, cfg.n_in + 1)), cfg.n_in)
    with pytest.raises(ValueError, match="non-negative integer"):
        check_counts(np.full((2, 3, cfg.n_in), 0.5), cfg.n_in)
    with pytest.raises(ValueError, match="non-negative integer"):
        check_counts(np.full((2, 3, cfg.n_in), np.nan), cfg.n_in)
    xs = np.zeros((4, 5, cfg.n_in), np.int32)
    with pytest.raises(ValueError, match="labels"):
        qat_finetune(cfg, xs, np.array([0, 1, 2, 5]), epochs=1)
    with pytest.raises(ValueError, match="task"):
        qat_finetune(cfg, xs, np.zeros(4, np.int64), epochs=1, task="rank")
    with pytest.raises(ValueError, match="threshold_jitter"):
        qat_finetune(cfg, xs, np.zeros(4, np.int64), epochs=1, threshold_jitter=1.5)
    with pytest.raises(ValueError, match="synapse 0"):
        ChipTrainer(_cfg(rng, syn1=True))


def test_keep_best_returns_the_epoch_that_scored_highest():
    rng = np.random.default_rng(9)
    cfg = _cfg(rng)
    xs = rng.poisson(2.0, (12, 15, cfg.n_in))
    labels = rng.integers(0, cfg.n_out, 12)
    seen = []

    def evaluate(c):  # a score that peaks at epoch 2, whatever the weights do
        seen.append(c)
        return {"score": [0.1, 0.9, 0.3, 0.2][len(seen) - 1]}

    res = qat_finetune(cfg, xs, labels, epochs=4, lr=2.0, seed=0, evaluate=evaluate, keep_best="score")
    assert res.best_epoch == 2 and res.config is seen[1]
    assert [h["score"] for h in res.history] == [0.1, 0.9, 0.3, 0.2]
    plain = qat_finetune(cfg, xs, labels, epochs=2, lr=2.0, seed=0)
    assert plain.best_epoch == 2  # without keep_best: the last epoch
    with pytest.raises(ValueError, match="keep_best needs evaluate"):
        qat_finetune(cfg, xs, labels, epochs=1, keep_best="score")
    with pytest.raises(ValueError, match="not among evaluate"):
        qat_finetune(cfg, xs, labels, epochs=1, evaluate=lambda c: {"acc": 1.0}, keep_best="score")
