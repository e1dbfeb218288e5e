"""Iris (4(+bias)-10-3) held-out accuracy over seeds on fixed, seeded stratified splits.

Seed k uses split ``load_iris(split_seed=k)`` (120 train / 30 test, 10 per class) and weight
init k. Features are min-max scaled with the training split and encoded as spike times
``t = 0.15 + 1.85 v`` plus a bias spike at 0.9 (FP) or rasterised onto a 1 ms grid (BPTT).

    python scripts/reproduce_iris.py --method fp --seeds 10 --epochs 300
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtsnn.datasets import load_iris, minmax_scale  # noqa: E402
from rtsnn.learn.offline import fp  # noqa: E402
from rtsnn.learn.offline.fp_repro import emit, load_bptt, mean_sd, times_to_grid  # noqa: E402

SETTINGS = dict(alpha=1.0, beta=1.0, theta=1.0, t_max=8.0, max_hidden_spikes=4, tau0=0.05,
                tau1=2.0, gamma=0.05)
INIT = dict(hidden_mean=1.5, hidden_sd=0.8, out_mean=2.0, out_sd=0.1)
LR, BATCH, T_EARLY, T_LATE, T_BIAS = 0.02, 8, 0.15, 2.0, 0.9
BPTT_LR = 1e-2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=("fp", "bptt"), default="fp")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--override", default="{}",
                    help='JSON overriding settings/init/lr/batch/t_late/t_bias, e.g. {"lr": 0.02}')
    args = ap.parse_args(argv)
    ov = json.loads(args.override)
    settings = {**SETTINGS, **ov.get("settings", {})}
    init = {**INIT, **ov.get("init", {})}
    lr, batch, t_late = ov.get("lr", LR), ov.get("batch", BATCH), ov.get("t_late", T_LATE)
    t_bias = ov.get("t_bias", T_BIAS)
    t_early = ov.get("t_early", T_EARLY)
    if args.seeds < 1 or args.epochs < 1:
        raise SystemExit("--seeds and --epochs must be >= 1")
    t0 = time.perf_counter()
    accs, train_accs, epoch_s = [], [], []
    train_fn = load_bptt() if args.method == "bptt" else None
    for seed in range(args.seeds):
        tr, te = load_iris(split_seed=seed)
        xtr, xte = minmax_scale(tr.x, te.x)
        ttr = fp.encode_latency(xtr, t_early=t_early, t_late=t_late, t_bias=t_bias)
        tte = fp.encode_latency(xte, t_early=t_early, t_late=t_late, t_bias=t_bias)
        if args.method == "fp":
            m = fp.train_classifier_fp(ttr, tr.y, hidden=[10], n_classes=3, epochs=args.epochs,
                                       seed=seed, settings=fp.FPSettings(**settings), lr=lr,
                                       lr_final=lr / 100, batch_size=batch, init=init,
                                       hidden_kick=0.01, grad_clip=1.0)
            accs.append(m.accuracy(tte, te.y))
            train_accs.append(m.accuracy(ttr, tr.y))
        else:
            gtr = times_to_grid(ttr, unit_s=5e-3, dt_s=1e-3, n_steps=40)
            gte = times_to_grid(tte, unit_s=5e-3, dt_s=1e-3, n_steps=40)
            m = train_fn(gtr, tr.y, hidden=[10], n_classes=3, epochs=args.epochs, seed=seed,
                         lr=BPTT_LR, batch_size=batch, dt_s=1e-3)
            accs.append(float(np.mean(np.asarray(m.predict(gte)) == te.y)))
            train_accs.append(float(np.mean(np.asarray(m.predict(gtr)) == tr.y)))
        epoch_s.append(float(np.median([h["epoch_s"] for h in m.history])))
    acc_m, acc_sd = mean_sd(accs)
    emit({"benchmark": "iris", "method": args.method, "seeds": args.seeds, "epochs": args.epochs,
          "test_acc_mean": acc_m, "test_acc_sd": acc_sd, "test_acc": accs,
          "train_acc_mean": float(np.mean(train_accs)), "epoch_s_median": float(np.median(epoch_s)),
          "wall_s": time.perf_counter() - t0, "split": "stratified 120/30 per seed",
          "settings": settings if args.method == "fp" else None,
          "init": init if args.method == "fp" else None,
          "lr": lr if args.method == "fp" else BPTT_LR, "batch_size": batch,
          "encoding": {"t_early": t_early, "t_late": t_late, "t_bias": t_bias}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
