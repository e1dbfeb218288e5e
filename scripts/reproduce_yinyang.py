"""Yin-Yang with exact FP gradients (or BPTT), over seeds, plus per-epoch timing peers.

Data: the published sets (train 5000 / test 1000), regenerated bit for bit by
:mod:`rtsnn.datasets.yinyang`. FP network 4(+bias)-H-3, features encoded as spike times
``t = 0.15 + 1.85 v`` with a bias spike at 0.9 on a fixed fifth channel; first output spike
wins. Accuracy is reported on the test set for the final weights (no selection on it).

Timing peers (same script, same machine, per training epoch over the 5000 samples): our FP,
our BPTT (``rtsnn.learn.offline.bptt``, if installed) and snnTorch BPTT on the equivalent
discretised network (Synaptic LIF, 1 ms steps with one time unit = 5 ms, 40 steps).

    python scripts/reproduce_yinyang.py --method fp --seeds 10 --epochs 60 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtsnn.datasets import load_yinyang  # noqa: E402
from rtsnn.learn.offline import fp  # noqa: E402
from rtsnn.learn.offline.fp_repro import (emit, load_bptt, mean_sd,  # noqa: E402
                                          snntorch_epoch_seconds, times_to_grid)

CONFIG = {
    "hidden": 150,
    "settings": dict(alpha=1.0, beta=1.0, theta=1.0, t_max=8.0, max_hidden_spikes=1, tau0=0.05,
                     tau1=1.0, gamma=0.05),
    "init": dict(hidden_mean=1.5, hidden_sd=0.8, out_mean=2.0, out_sd=0.1),
    "lr": 5e-3, "lr_final": 1e-5, "batch_size": 32, "hidden_kick": 0.01, "grad_clip": 0.05,
    "silent_kick": 0.05, "bptt_lr": 1e-3, "bptt_tau_mem_s": 20e-3,
}
UNIT_S, DT_S, N_STEPS = 5e-3, 1e-3, 40


def _data():
    tr, te = load_yinyang("train"), load_yinyang("test")
    return tr, te, fp.encode_latency(tr.x), fp.encode_latency(te.x)


def _train_fp(job):
    seed, epochs, cfg = job
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tr, te, xtr, xte = _data()
    t0 = time.perf_counter()
    m = fp.train_classifier_fp(xtr, tr.y, hidden=[cfg["hidden"]], n_classes=3, epochs=epochs,
                               seed=seed, settings=fp.FPSettings(**cfg["settings"]),
                               lr=cfg["lr"], lr_final=cfg["lr_final"],
                               batch_size=cfg["batch_size"], init=cfg["init"],
                               hidden_kick=cfg["hidden_kick"], grad_clip=cfg["grad_clip"],
                               silent_kick=cfg["silent_kick"])
    return {"seed": seed, "test_acc": m.accuracy(xte, te.y), "train_acc": m.accuracy(xtr, tr.y),
            "wall_s": time.perf_counter() - t0,
            "epoch_s": [h["epoch_s"] for h in m.history]}


def _train_bptt(job):
    seed, epochs, cfg = job
    train = load_bptt()
    tr, te, xtr, xte = _data()
    gtr = times_to_grid(xtr, UNIT_S, DT_S, N_STEPS)
    gte = times_to_grid(xte, UNIT_S, DT_S, N_STEPS)
    t0 = time.perf_counter()
    m = train(gtr, tr.y, hidden=[cfg["hidden"]], n_classes=3, epochs=epochs, seed=seed,
              lr=cfg.get("bptt_lr", 1e-3), batch_size=cfg["batch_size"], dt_s=DT_S,
              tau_mem_s=cfg.get("bptt_tau_mem_s", 20e-3))
    return {"seed": seed, "test_acc": float(np.mean(np.asarray(m.predict(gte)) == te.y)),
            "train_acc": float(np.mean(np.asarray(m.predict(gtr)) == tr.y)),
            "wall_s": time.perf_counter() - t0,
            "epoch_s": [h["epoch_s"] for h in m.history]}


def _timing_peers(cfg) -> dict:
    """Per-epoch seconds of FP, our BPTT and snnTorch, measured back to back in this one
    process (FP: the second of two epochs, so numba's load time is excluded)."""
    tr, te, xtr, xte = _data()
    out: dict = {}
    r = _train_fp((0, 2, cfg))
    fp_epoch_s = r["epoch_s"][-1]
    out["fp_epoch_s"] = fp_epoch_s
    grid = times_to_grid(xtr, UNIT_S, DT_S, N_STEPS)
    try:
        train = load_bptt()
        t0 = time.perf_counter()
        m = train(grid, tr.y, hidden=[cfg["hidden"]], n_classes=3, epochs=1, seed=0,
                  batch_size=cfg["batch_size"], dt_s=DT_S)
        out["bptt_epoch_s"] = float(m.history[-1].get("epoch_s", time.perf_counter() - t0))
    except SystemExit as e:
        out["bptt_epoch_s"] = None
        out["bptt_error"] = str(e)
    s = cfg["settings"]
    a_step = math.exp(-DT_S / UNIT_S * s["alpha"])
    b_step = math.exp(-DT_S / UNIT_S * s["beta"])
    r = snntorch_epoch_seconds(grid, tr.y, cfg["hidden"], 3, alpha_step=a_step,
                               beta_step=b_step, batch_size=cfg["batch_size"])
    out["snntorch_epoch_s"] = r.get("epoch_s")
    if "error" in r:
        out["snntorch_error"] = r["error"]
    for k in ("bptt_epoch_s", "snntorch_epoch_s"):
        if out.get(k):
            out[k.replace("_epoch_s", "_over_fp")] = out[k] / fp_epoch_s
    out["grid"] = {"unit_s": UNIT_S, "dt_s": DT_S, "n_steps": N_STEPS}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=("fp", "bptt"), default="fp")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes")
    ap.add_argument("--no-compare", action="store_true", help="skip the timing peers")
    ap.add_argument("--timing-only", action="store_true",
                    help="only the timing peers (no seeds trained)")
    ap.add_argument("--override", default="{}", help="JSON overriding CONFIG keys")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.epochs < 1 or args.jobs < 1:
        raise SystemExit("--seeds, --epochs and --jobs must be >= 1")
    ov = json.loads(args.override)
    cfg = {**CONFIG, **{k: v for k, v in ov.items() if k not in ("settings", "init")}}
    cfg["settings"] = {**CONFIG["settings"], **ov.get("settings", {})}
    cfg["init"] = {**CONFIG["init"], **ov.get("init", {})}
    if args.method == "bptt":
        load_bptt()  # fail early with a clear message
    if args.timing_only:
        emit({"benchmark": "yinyang-timing", "method": args.method, "seeds": 0,
              "epochs": 0, "test_acc_mean": None, "test_acc_sd": None, "wall_s": None,
              "config": cfg, "timing": _timing_peers(cfg)})
        return 0
    fn = _train_fp if args.method == "fp" else _train_bptt
    jobs = [(seed, args.epochs, cfg) for seed in range(args.seeds)]
    t0 = time.perf_counter()
    if args.jobs == 1:
        runs = [fn(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as ex:
            runs = list(ex.map(fn, jobs))
    wall = time.perf_counter() - t0
    accs = [r["test_acc"] for r in runs]
    acc_m, acc_sd = mean_sd(accs)
    epoch_med = float(np.median([e for r in runs for e in r["epoch_s"][1:] or r["epoch_s"]]))
    rec = {"benchmark": "yinyang", "method": args.method, "seeds": args.seeds,
           "epochs": args.epochs, "test_acc_mean": acc_m, "test_acc_sd": acc_sd,
           "test_acc": accs, "train_acc_mean": float(np.mean([r["train_acc"] for r in runs])),
           "wall_s": wall, "jobs": args.jobs,
           "run_wall_s_max": max(r["wall_s"] for r in runs),
           "epoch_s_median": epoch_med, "config": cfg}
    if not args.no_compare:
        rec["timing"] = _timing_peers(cfg)
    emit(rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
