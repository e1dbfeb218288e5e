"""Reproduce the FP paper's XOR experiment (2-4-2) over many initialisations.

Each init trains with full-batch Adam (4 samples = 1 step per epoch) until all four points are
classified correctly (first output spike wins), at most --epochs steps. Reports mean / max
steps to convergence (updates before the weights that classify all four; 0 if the init
already does) and how many inits never converged.

``--paper`` runs the paper's settings (Table 1: inputs 0 -> spike at 0.0, 1 -> spike at 2.0,
no bias channel, 2-4-2, lr 0.1, gamma 0.2, tau0 0.1, no heuristics) and rtsnn's own settings
(inputs at 0 / 1 plus a bias spike at 0 on a third channel, gamma 0, the silent-output kick)
over the same inits and prints one JSON line with ``paper_settings``, ``own_settings`` and
``published``. Without ``--paper`` it runs only the own settings (or BPTT).

    python scripts/reproduce_xor.py --paper --seeds 1000 --epochs 2000
    python scripts/reproduce_xor.py --method fp --seeds 1000 --epochs 2000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtsnn.datasets import load_xor  # noqa: E402
from rtsnn.learn.offline import fp  # noqa: E402
from rtsnn.learn.offline.fp_repro import (PUBLISHED, checked_options, emit, load_bptt, mean_sd,  # noqa: E402
                                          times_to_grid, xor_summary)

# rtsnn's own settings (the figure this script printed before --paper existed).
SETTINGS = dict(alpha=1.0, beta=0.99, theta=1.0, t_max=6.0, max_hidden_spikes=1, tau0=0.1,
                tau1=1.0, gamma=0.0)
INIT = dict(hidden_mean=3.0, hidden_sd=1.0, out_mean=2.0, out_sd=0.1)
LR = 0.1
OWN = {"name": "rtsnn-xor-own", "settings": SETTINGS, "init": INIT, "lr": LR, "batch_size": 4,
       "encoding": {"t_zero": 0.0, "t_one": 1.0, "t_bias": 0.0}, "silent_kick": 0.05,
       "hidden_kick": 0.0, "grad_clip": None, "lr_final": None,
       "departures": ["inputs at 0 / 1 (paper: 0 / 2)",
                      "bias (reference) spike at t=0 on a third input channel (paper: none)",
                      "gamma 0 (paper: 0.2)", "simulation window t_max 6"]}

# The paper's settings (Table 1; choices where the paper is silent are in PAPER["notes"]).
PAPER = {"name": "fp-paper-table-1",
         "settings": dict(alpha=1.0, beta=0.99, theta=1.0, t_max=4.0, max_hidden_spikes=1,
                          tau0=0.1, tau1=1.0, gamma=0.2),
         "init": dict(hidden_mean=3.0, hidden_sd=1.0, out_mean=2.0, out_sd=0.1),
         "lr": 0.1, "batch_size": 4, "encoding": {"t_zero": 0.0, "t_one": 2.0, "t_bias": None},
         **fp.HEURISTIC_OFF,
         "notes": [
             "Table 1 read as: alpha 1.0, beta 0.99, theta 1, T 2.0 = the late input time "
             "(A.8.1: inputs coded 0.0 early / 2.0 late), t_early 0, 2-4-2 with no bias "
             "channel, hidden N(3, 1), output N(2, 0.1), Adam (0.9, 0.999, 1e-8) lr 0.1, "
             "gamma 0.2, tau0 0.1, tau1 1, full batch of the 4 patterns per step",
             "choice: hidden neurons fire at most once (the TTFS setups the paper follows, "
             "its refs [33] and [18], have one spike per neuron; the tables do not say); "
             "the reading with up to 16 hidden spikes is in alternative_readings",
             "choice: simulation window t_max = 2T = 4 (T read as the latest input time; "
             "4, 6 and 10 give identical runs); a silent output counts as t_max in the loss",
             "choice: converged = all 4 patterns classified by the earliest output spike "
             "(a tie or all-silent output is wrong); steps = full-batch updates before the "
             "weights that did so; cap --epochs steps (the paper trains 'until convergence')",
             "initialisation: numpy default_rng(seed), seeds 0..inits-1 (the paper's draws "
             "are unknown)",
         ]}
ALT_SPIKES = 16  # the alternative reading: hidden neurons may fire up to 16 times


def encode(cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    d = load_xor()
    e = cfg["encoding"]
    x = fp.encode_latency(d.x, t_early=e["t_zero"], t_late=e["t_one"], t_bias=e["t_bias"])
    return x, d.y


def run_fp(cfg: dict, inits: int, cap: int) -> tuple[dict, list[float]]:
    """Train ``inits`` initialisations (seeds 0..inits-1) on ``cfg``; (summary, train accs)."""
    x, y = encode(cfg)
    s = fp.FPSettings(**cfg["settings"])
    steps, accs = [], []
    for seed in range(inits):
        m = fp.train_classifier_fp(x, y, hidden=[4], n_classes=2, epochs=cap, seed=seed,
                                   settings=s, lr=cfg["lr"], batch_size=cfg["batch_size"],
                                   init=cfg["init"], silent_kick=cfg["silent_kick"],
                                   hidden_kick=cfg["hidden_kick"], grad_clip=cfg["grad_clip"],
                                   lr_final=cfg["lr_final"], stop_at_train_acc=1.0)
        if m.history[-1]["train_acc"] >= 1.0:
            steps.append(m.history[-1]["steps"])
        accs.append(m.accuracy(x, y))
    return xor_summary(steps, inits), accs


def describe(cfg: dict) -> dict:
    out = {k: cfg[k] for k in ("name", "settings", "init", "lr", "batch_size", "encoding")}
    out["heuristics"] = fp.heuristics_in_use(
        silent_kick=cfg["silent_kick"], hidden_kick=cfg["hidden_kick"],
        grad_clip=cfg["grad_clip"], lr=cfg["lr"], lr_final=cfg["lr_final"])
    return out


def compare(inits: int, cap: int, alternative: bool = True) -> dict:
    """The paper's settings and the own settings over the same inits, plus the published."""
    t0 = time.perf_counter()
    paper, _ = run_fp(PAPER, inits, cap)
    paper.update(describe(PAPER), notes=PAPER["notes"], max_steps=cap)
    if alternative:
        alt = {**PAPER, "settings": {**PAPER["settings"], "max_hidden_spikes": ALT_SPIKES}}
        paper["alternative_readings"] = {
            f"hidden_spikes_up_to_{ALT_SPIKES}": run_fp(alt, inits, cap)[0]}
    own, _ = run_fp(OWN, inits, cap)
    own.update(describe(OWN), departures=OWN["departures"], max_steps=cap)
    return {"benchmark": "xor", "method": "fp", "paper_settings": paper, "own_settings": own,
            "published": PUBLISHED["xor"], "wall_s": time.perf_counter() - t0,
            "command": f"python scripts/reproduce_xor.py --paper --seeds {inits} "
                       f"--epochs {cap}"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=("fp", "bptt"), default="fp")
    ap.add_argument("--seeds", type=int, default=1000, help="number of initialisations")
    ap.add_argument("--epochs", type=int, default=2000, help="max steps per init")
    ap.add_argument("--paper", action="store_true",
                    help="paper settings (Table 1) next to own settings and published numbers")
    ap.add_argument("--override", default="{}",
                    help='JSON overriding the own settings: settings/init/lr/encoding')
    args = ap.parse_args(argv)
    prog = "reproduce_xor.py"
    ov, refused = checked_options(prog, {"--seeds": args.seeds, "--epochs": args.epochs}, args.override, args.paper,
                                  {"--method": (args.method, args.method == "fp")})
    if refused is not None:
        return refused
    if args.paper:
        emit(compare(args.seeds, args.epochs))
        return 0
    d = load_xor()
    own = {**OWN, "settings": {**OWN["settings"], **ov.get("settings", {})},
           "init": {**OWN["init"], **ov.get("init", {})}, "lr": ov.get("lr", OWN["lr"]),
           "encoding": {**OWN["encoding"], **ov.get("encoding", {})}}
    t0 = time.perf_counter()
    if args.method == "fp":
        summ, accs = run_fp(own, args.seeds, args.epochs)
        steps_mean, steps_max = summ["steps_mean"], summ["steps_max"]
        never = args.seeds - summ["converged"]
        extra = {"settings": own["settings"], "init": own["init"], "lr": own["lr"],
                 "encoding": own["encoding"], "heuristics": describe(own)["heuristics"]}
    else:
        x, _ = encode(own)
        train = load_bptt()
        grid = times_to_grid(x, unit_s=5e-3, dt_s=1e-3, n_steps=30)
        steps, accs, never = [], [], 0
        for seed in range(args.seeds):
            m = train(grid, d.y, hidden=[4], n_classes=2, epochs=args.epochs, seed=seed,
                      lr=1e-2, batch_size=4, dt_s=1e-3)
            hit = [i for i, h in enumerate(m.history) if h.get("train_acc", 0) >= 1.0]
            if hit:
                steps.append(hit[0])
            else:
                never += 1
            accs.append(float(np.mean(np.asarray(m.predict(grid)) == d.y)))
        steps_mean = float(np.mean(steps)) if steps else None
        steps_max = int(np.max(steps)) if steps else None
        extra = {"grid": {"unit_s": 5e-3, "dt_s": 1e-3, "n_steps": 30}, "lr": 1e-2,
                 "note": "steps = epochs of 1 full-batch step before train_acc hit 1.0"}
    acc_m, acc_sd = mean_sd(accs)
    emit({"benchmark": "xor", "method": args.method, "seeds": args.seeds, "epochs": args.epochs,
          "test_acc_mean": acc_m, "test_acc_sd": acc_sd, "steps_mean": steps_mean,
          "steps_max": steps_max, "never_converged": never,
          "wall_s": time.perf_counter() - t0, **extra})
    return 0


if __name__ == "__main__":
    sys.exit(main())
