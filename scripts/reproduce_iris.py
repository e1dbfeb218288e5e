"""Iris (4(+bias)-10-3) held-out accuracy over seeds on fixed, seeded stratified splits.

Seed k uses split ``load_iris(split_seed=k)`` (120 train / 30 test, 10 per class) and weight
init k. Features are min-max scaled with the training split and encoded as spike times
``t = 0.15 + 1.85 v`` plus a bias spike at 0.9 (FP) or rasterised onto a 1 ms grid (BPTT).

``--paper`` trains the paper's settings (Table 2: features over the whole data set mapped to
``t = 16 (1 - (n - min) / (max - min))``, no bias channel, alpha 1, beta 0.9, lr 0.05, gamma
0.1, tau0 1, no heuristics; full batch, 300 epochs by choice) and the own settings over the
same splits and initialisations and prints one JSON line with ``paper_settings``,
``own_settings`` and ``published``. The paper's own split is not recoverable (not given).

    python scripts/reproduce_iris.py --method fp --seeds 10 --epochs 300
    python scripts/reproduce_iris.py --paper --seeds 10 --epochs 300
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtsnn.datasets import load_iris, minmax_scale  # noqa: E402
from rtsnn.datasets.iris import iris_table  # noqa: E402
from rtsnn.learn.offline import fp  # noqa: E402
from rtsnn.learn.offline.fp_repro import (PUBLISHED, acc_summary, checked_options, emit, load_bptt, mean_sd,  # noqa: E402
                                          times_to_grid)

SETTINGS = dict(alpha=1.0, beta=1.0, theta=1.0, t_max=8.0, max_hidden_spikes=4, tau0=0.05,
                tau1=2.0, gamma=0.05)
INIT = dict(hidden_mean=1.5, hidden_sd=0.8, out_mean=2.0, out_sd=0.1)
LR, BATCH, T_EARLY, T_LATE, T_BIAS = 0.02, 8, 0.15, 2.0, 0.9
BPTT_LR = 1e-2
OWN = {"name": "rtsnn-iris-own", "settings": SETTINGS, "init": INIT, "lr": LR,
       "lr_final": LR / 100, "batch_size": BATCH, "silent_kick": 0.05, "hidden_kick": 0.01,
       "grad_clip": 1.0, "encoding": {"kind": "train_minmax", "t_early": T_EARLY,
                                      "t_late": T_LATE, "t_bias": T_BIAS},
       "departures": ["features min-max scaled on the training split, t = 0.15 + 1.85 v "
                      "(large feature = late spike) plus a bias spike at 0.9 (paper: whole "
                      "data set, t = 16 (1 - v), no bias)",
                      "alpha = beta = 1, t_max 8, up to 4 hidden spikes",
                      "tau0 0.05, tau1 2, gamma 0.05 (paper: 1, 1, 0.1)",
                      "hidden N(1.5, 0.8) (paper N(3, 1)), lr 0.02 -> 2e-4 cosine, batch 8"]}

PAPER = {"name": "fp-paper-table-2",
         "settings": dict(alpha=1.0, beta=0.9, theta=1.0, t_max=32.0, max_hidden_spikes=1,
                          tau0=1.0, tau1=1.0, gamma=0.1),
         "init": dict(hidden_mean=3.0, hidden_sd=1.0, out_mean=2.0, out_sd=0.1),
         "lr": 0.05, "batch_size": None, **fp.HEURISTIC_OFF,
         "encoding": {"kind": "dataset_minmax_reversed", "T": 16.0, "t_bias": None},
         "notes": [
             "Table 2 read as: alpha 1, beta 0.9, theta 1, T 16, t_early 0, 4-10-3 with no "
             "bias channel, hidden N(3, 1), output N(2, 0.1), Adam (0.9, 0.999, 1e-8) lr "
             "0.05, gamma 0.1, tau0 1, tau1 1; no heuristics",
             "encoding (A.8.2): t = T (1 - (n - min) / (max - min)) with min / max of each "
             "feature over the whole data set (the text's 'max - max' read as max - min)",
             "choice: batch = the whole training split (the table, like XOR's, gives no "
             "minibatch size), 300 epochs (not given)",
             "choice: hidden neurons fire at most once; simulation window t_max = 2T = 32; "
             "a silent output counts as t_max in the loss",
             "not recoverable: the paper's split (one split, size not given, chosen with a "
             "grid search); here the same 10 seeded stratified 120/30 splits as the own "
             "settings, init seed = split seed",
             "with tau1 = 1 and spikes at t ~ 5-15 the regulariser gamma (exp(t/tau1) - 1) is "
             "~1e2-1e3 against a cross-entropy <= ~1.1 (final_loss_* below): training mostly "
             "pulls every output earlier",
         ]}


def _paper_encoder():
    full = iris_table()
    lo, hi = full.x.min(axis=0), full.x.max(axis=0)
    T = PAPER["encoding"]["T"]

    def enc(x):
        v = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
        return fp.encode_latency(1.0 - v, t_early=0.0, t_late=T, t_bias=None)
    return enc


def _loss_parts(m, x, y) -> tuple[float, float]:
    """(mean cross-entropy, mean regulariser) of the TTFS loss on (x, y)."""
    s = m.settings
    t = m.first_spike_times(x)
    z = -t / s.tau0
    z = z - z.max(axis=1, keepdims=True)
    ce = -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1)))
    reg = s.gamma * (np.exp(t[np.arange(len(y)), y] / s.tau1) - 1.0)
    return float(ce.mean()), float(reg.mean())


def run_fp(cfg: dict, seeds: int, epochs: int) -> dict:
    """Train ``cfg`` on splits 0..seeds-1 (init seed = split seed); accuracy summary."""
    enc = _paper_encoder() if cfg["encoding"]["kind"] == "dataset_minmax_reversed" else None
    accs, train_accs, ce, reg = [], [], [], []
    used = []
    for seed in range(seeds):
        tr, te = load_iris(split_seed=seed)
        if enc is None:
            e = cfg["encoding"]
            xtr, xte = minmax_scale(tr.x, te.x)
            ttr = fp.encode_latency(xtr, t_early=e["t_early"], t_late=e["t_late"],
                                    t_bias=e["t_bias"])
            tte = fp.encode_latency(xte, t_early=e["t_early"], t_late=e["t_late"],
                                    t_bias=e["t_bias"])
        else:
            ttr, tte = enc(tr.x), enc(te.x)
        m = fp.train_classifier_fp(ttr, tr.y, hidden=[10], n_classes=3, epochs=epochs,
                                   seed=seed, settings=fp.FPSettings(**cfg["settings"]),
                                   lr=cfg["lr"], lr_final=cfg["lr_final"],
                                   batch_size=cfg["batch_size"] or len(tr.y), init=cfg["init"],
                                   silent_kick=cfg["silent_kick"],
                                   hidden_kick=cfg["hidden_kick"], grad_clip=cfg["grad_clip"],
                                   pure=cfg["name"].startswith("fp-paper"))
        accs.append(m.accuracy(tte, te.y))
        train_accs.append(m.accuracy(ttr, tr.y))
        c, r = _loss_parts(m, ttr, tr.y)
        ce.append(c)
        reg.append(r)
        used = m.heuristics
    out = acc_summary(accs, epochs)
    out.update(train_acc_mean=float(np.mean(train_accs)),
               splits_at_100pct=int(sum(a == 1.0 for a in accs)),
               final_loss_ce_mean=float(np.mean(ce)), final_loss_reg_mean=float(np.mean(reg)),
               heuristics=used, split="load_iris(split_seed=k): stratified 120 train / 30 test",
               **{k: cfg[k] for k in ("name", "settings", "init", "lr", "encoding")},
               batch_size=cfg["batch_size"] or "full (120)")
    return out


def compare(seeds: int, epochs: int) -> dict:
    t0 = time.perf_counter()
    paper = run_fp(PAPER, seeds, epochs)
    paper["notes"] = PAPER["notes"]
    own = run_fp(OWN, seeds, epochs)
    own["departures"] = OWN["departures"]
    return {"benchmark": "iris", "method": "fp", "paper_settings": paper, "own_settings": own,
            "published": PUBLISHED["iris"], "wall_s": time.perf_counter() - t0,
            "command": f"python scripts/reproduce_iris.py --paper --seeds {seeds} "
                       f"--epochs {epochs}"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=("fp", "bptt"), default="fp")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--override", default="{}",
                    help='JSON overriding settings/init/lr/batch/t_late/t_bias, e.g. {"lr": 0.02}')
    ap.add_argument("--paper", action="store_true",
                    help="paper settings (Table 2) next to own settings and published numbers")
    args = ap.parse_args(argv)
    prog = "reproduce_iris.py"
    ov, refused = checked_options(prog, {"--seeds": args.seeds, "--epochs": args.epochs}, args.override, args.paper,
                                  {"--method": (args.method, args.method == "fp")})
    if refused is not None:
        return refused
    if args.paper:
        emit(compare(args.seeds, args.epochs))
        return 0
    settings = {**SETTINGS, **ov.get("settings", {})}
    init = {**INIT, **ov.get("init", {})}
    lr, batch, t_late = ov.get("lr", LR), ov.get("batch", BATCH), ov.get("t_late", T_LATE)
    t_bias = ov.get("t_bias", T_BIAS)
    t_early = ov.get("t_early", T_EARLY)
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
