"""FP for regression on the shared Chewie reaching data: held-out R^2 of FP, BPTT and the Wiener filter.

Data, split and bins are those of ``configs/pretrain_chewie.yaml`` (174 units, 100 ms bins,
hand velocity, 159 trials, 20 % of the trials held out with split seed 0), read through
``rtsnn.learn.offline.pretrain.load_data`` / ``pretrain_data.split`` / ``sequences``, so all
three methods are scored on the same held-out bins, each held-out trial from a fresh state:

* FP (``rtsnn.learn.offline.fp_regression``): 174 (+ bias) inputs -> ``--hidden`` spiking
  neurons (several spikes each, per-neuron trainable thresholds and time constants) -> a
  linear 2-D output trained on the paper's membrane-potential loss with exact gradients; bin
  k's counts are input events at time k (one time unit = one bin = 100 ms), its prediction is
  V_o at k + 1. The readout starts at its least-squares fit on the initial spikes; then
  ``--fp-epochs`` epochs of Adam (lr ``--fp-lr``).
* BPTT: ``rtsnn.learn.offline.pretrain.run_pretrain`` on the same config with ``--bptt-epochs``
  epochs (its ``snn_r2_reset``: per held-out trial from rest; outputs written to a temp dir).
* Wiener filter: ``baselines.fit_wiener`` / ``wiener_score`` with the config's 5 history bins,
  fitted on the training trials (run_pretrain's ``wiener_r2``, recomputed here).

Prints one strict JSON line. Command (from the repository root; ~5 min on 2 loaded cores)::

    .venv/bin/python scripts/reproduce_fp_regression.py --fp-epochs 8 --bptt-epochs 30
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "pretrain_chewie.yaml"))
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--fp-epochs", type=int, default=8)
    ap.add_argument("--fp-lr", type=float, default=3e-5)
    ap.add_argument("--max-hidden-spikes", type=int, default=64)
    ap.add_argument("--bptt-epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-bptt", action="store_true")
    a = ap.parse_args(argv)

    from rtsnn.learn.offline import fp_regression as F
    from rtsnn.learn.offline.baselines import fit_wiener, r2_score, wiener_score
    from rtsnn.learn.offline.pretrain import load_data, parse_pretrain_config, run_pretrain
    from rtsnn.learn.offline.pretrain_data import sequences, split

    cfg_path = Path(a.config).resolve()
    raw = yaml.safe_load(cfg_path.read_text())
    cfg = parse_pretrain_config(raw, str(cfg_path))
    data = load_data(cfg, cfg_path.parent, log=None)
    tr, te = split(data, cfg.data.test_fraction, cfg.data.split_seed, str(cfg_path))
    x_tr, y_tr, m_tr = sequences(data, [[int(i)] for i in tr])
    x_te, y_te, m_te = sequences(data, [[int(i)] for i in te])
    out: dict = {"data": data.name, "bin_s": data.dt_s, "n_units": int(x_tr.shape[2]),
                 "train_trials": int(tr.size), "test_trials": int(te.size), "test_bins": int(m_te.sum()),
                 "split_seed": cfg.data.split_seed}

    # Wiener filter (the pretraining baseline, same history, same trials)
    H = cfg.baseline.history_bins
    w, lam = fit_wiener(x_tr, y_tr, m_tr, H, cfg.data.split_seed)
    wr2, wper = wiener_score(w, x_te, y_te, m_te, H)
    out["wiener"] = {"r2": wr2, "r2_per_output": wper, "history_bins": H, "ridge": lam}

    # FP
    t0 = time.perf_counter()
    btr = F.events_from_bins(x_tr, y_tr, m_tr)
    bte = F.events_from_bins(x_te, y_te, m_te)
    m = F.train_regression_fp(btr, hidden=[a.hidden], epochs=a.fp_epochs, seed=a.seed, lr=a.fp_lr,
                              max_hidden_spikes=a.max_hidden_spikes, batch_size=16)
    pred = m.predict(bte)
    sel = bte.mask > 0
    r2, per = r2_score(pred[sel], bte.y[sel])
    # the least-squares readout start alone, for reference (FP's gradient steps come after it)
    start = F.init_regression_net(btr, [a.hidden], 2, a.seed)
    zt = F.EventBatch(btr.ptr, btr.t, btr.src, btr.amp, btr.t_read, btr.n_read,
                      np.ascontiguousarray((btr.y - m.y_mean) / m.y_sd * btr.mask[..., None]), btr.mask, btr.n_in)
    F.fit_readout_lstsq(start, zt, a.max_hidden_spikes)
    p0 = F.TrainedFPRegression(start, a.max_hidden_spikes, m.y_mean, m.y_sd, [], {}).predict(bte)
    r2_0, _ = r2_score(p0[sel], bte.y[sel])
    th = np.concatenate(m.net.theta[:-1])
    out["fp"] = {"r2": r2, "r2_per_output": per, "r2_readout_start": r2_0, "epochs": a.fp_epochs,
                 "settings": m.settings, "wall_s": time.perf_counter() - t0,
                 "train_loss_per_epoch": [h["loss"] for h in m.history],
                 "hidden_spikes_per_bin": m.history[-1]["hidden_spikes_per_bin"],
                 "clamped_theta": m.history[-1]["clamped_theta"], "clamped_tau": m.history[-1]["clamped_tau"],
                 "theta_range": [float(th.min()), float(th.max())],
                 "tau_mem_range": [float(np.concatenate(m.net.tau_mem).min()),
                                   float(np.concatenate(m.net.tau_mem).max())]}

    # BPTT: the existing pretrain path on the same config, fewer epochs, outputs in a temp dir
    if not a.skip_bptt:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            raw_b = dict(raw)
            raw_b["data"] = dict(raw["data"], path=str((cfg_path.parent / raw["data"]["path"]).resolve()))
            raw_b["train"] = dict(raw["train"], epochs=a.bptt_epochs)
            raw_b["output"] = {"model_path": str(Path(d) / "bptt.npz"), "checkpoint_path": None}
            res = run_pretrain(parse_pretrain_config(raw_b, str(cfg_path)), cfg_path.parent, progress=False,
                               log=sys.stderr)
        out["bptt"] = {"r2": res["snn_r2_reset"], "r2_per_output": res["snn_r2_per_dim"],
                       "r2_continuous": res["snn_r2_continuous"], "epochs": a.bptt_epochs,
                       "wiener_r2_same_run": res["wiener_r2"], "test_bins": res["test_bins"],
                       "wall_s": time.perf_counter() - t0}
    out["command"] = "scripts/reproduce_fp_regression.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(json.dumps(out, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
