"""Yin-Yang with exact FP gradients (or BPTT), over seeds, plus per-epoch timing peers.

Data: the published sets (train 5000 / test 1000), regenerated bit for bit by
:mod:`rtsnn.datasets.yinyang`. FP network 4(+bias)-H-3, features encoded as spike times
``t = 0.15 + 1.85 v`` with a bias spike at 0.9 on a fixed fifth channel; first output spike
wins. Accuracy is reported on the test set for the final weights (no selection on it).

Timing peers (same script, same machine, per training epoch over the 5000 samples): our FP,
our BPTT (``rtsnn.learn.offline.bptt``, if installed) and snnTorch BPTT on the equivalent
discretised network (Synaptic LIF, 1 ms steps with one time unit = 5 ms, 40 steps).

``--paper`` trains the paper's settings (Table 3: alpha 0.999, beta 1, batch 150, 300 epochs,
Adam lr 5e-4, gamma 0.005, tau0 0.2, no heuristics) and rtsnn's own settings (CONFIG, 60
epochs, every heuristic listed) over the same seeds and prints one JSON line with
``paper_settings``, ``own_settings`` and ``published`` (no timing peers); each finished run is
also written to stderr as it ends.

``--config beyond`` trains BEYOND_CONFIG (issue 18's "beyond the anchors": 200 hidden,
beta 0.25, lr 1e-2, 30 epochs, the epoch kept by accuracy on the published validation split;
every departure from CONFIG is listed beside it). The JSON line also carries ``cpu_s_total``
(the processes' CPU seconds: on an idle machine ``wall_s`` is about ``cpu_s_total / jobs``),
``load_avg_1min`` before and after, and ``selected_epochs``. ``--config beyond_trainable``
adds trained per-neuron thresholds and time constants (BEYOND_TRAINABLE_CONFIG); every run
line carries ``clamped_theta`` / ``clamped_tau`` (floor clamps, per seed), ``neurons``
(min / mean / max per layer, None when untrained) and ``val_acc_per_epoch``.

BPTT (``--method bptt``) rounds the spike times onto a grid (default 1 ms steps, one time unit
= 5 ms, 40 steps) and trains :func:`rtsnn.learn.offline.bptt.train_classifier`; the ``bptt``
key of ``--override`` sets the grid (``dt_s``, ``n_steps``, ``unit_s``) and its options
(``loss``, ``lr``, ``tau_mem_s``, ``hidden``, ...).

    python scripts/reproduce_yinyang.py --method fp --seeds 10 --epochs 60 --jobs 2
    python scripts/reproduce_yinyang.py --config beyond --seeds 10 --jobs 2 --no-compare
    python scripts/reproduce_yinyang.py --config beyond_trainable --seeds 3 --jobs 2 --no-compare
    python scripts/reproduce_yinyang.py --paper --seeds 10 --jobs 2
    python scripts/reproduce_yinyang.py --method bptt --seeds 1 --epochs 20 --no-compare \
        --override '{"bptt": {"loss": "mean_ce", "lr": 5e-3}}'
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
from rtsnn.learn.offline.fp_repro import (PUBLISHED, acc_summary, checked_options, emit, load_bptt, mean_sd,  # noqa: E402
                                          snntorch_epoch_seconds, times_to_grid)

CONFIG = {
    "hidden": 150,
    "settings": dict(alpha=1.0, beta=1.0, theta=1.0, t_max=8.0, max_hidden_spikes=1, tau0=0.05,
                     tau1=1.0, gamma=0.05),
    "init": dict(hidden_mean=1.5, hidden_sd=0.8, out_mean=2.0, out_sd=0.1),
    "lr": 5e-3, "lr_final": 1e-5, "batch_size": 32, "hidden_kick": 0.01, "grad_clip": 0.05,
    "silent_kick": 0.05, "bptt_lr": 1e-3, "bptt_tau_mem_s": 20e-3,
}
OWN_EPOCHS = 60  # the own settings' epoch count (the figure in docs/pretraining.md)
OWN_NAME = "rtsnn-yinyang-own"
UNIT_S, DT_S, N_STEPS = 5e-3, 1e-3, 40

# The paper's settings (Table 3; choices where the paper is silent in PAPER_NOTES).
PAPER_CONFIG = {
    "hidden": 150,
    "settings": dict(alpha=0.999, beta=1.0, theta=1.0, t_max=4.0, max_hidden_spikes=1,
                     tau0=0.2, tau1=1.0, gamma=0.005),
    "init": dict(hidden_mean=1.5, hidden_sd=0.8, out_mean=2.0, out_sd=0.1),
    "lr": 5e-4, "batch_size": 150, **fp.HEURISTIC_OFF,
    "encoding": {"t_early": 0.15, "t_late": 2.0, "t_bias": 0.9},
}
PAPER_EPOCHS = 300
PAPER_NOTES = [
    "Table 3 read as: alpha 0.999, beta 1.0, theta 1, T 2.0 = latest input time, t_early "
    "0.15, t_bias 0.9, 4(+bias)-150-3, hidden N(1.5, 0.8), output N(2, 0.1), batch 150, 300 "
    "epochs, Adam (0.9, 0.999, 1e-8) lr 5e-4 constant, gamma 0.005, tau0 0.2, tau1 1; no "
    "weight bumps, no clipping, no schedule (A.8.3)",
    "encoding: features [x, y, 1-x, 1-y] -> t = 0.15 + 1.85 v, bias spike at 0.9 on a fixed "
    "fifth channel (peers report the public code moves it between channels per sample)",
    "choice: hidden neurons fire at most once (as in ref [18], whose loss and encoding the "
    "paper follows; the table does not say); allowing up to 16 gives the same loss and "
    "accuracy to 4 digits over the first 2 epochs (seed 0) at ~6x the cost",
    "choice: simulation window t_max = 2T = 4; a silent output counts as t_max in the loss",
    "accuracy: test set (1000) with the final weights, no selection on it; initialisation "
    "numpy default_rng(seed)",
]

# Beyond the anchors (issue 18): chosen on the validation split, seed 0-1 runs (the search is
# in docs/benchmarks.md). Departures from CONFIG: membrane rate beta 0.25 (tau_mem = 4 tau_syn,
# as EventProp's 20 ms / 5 ms), 200 hidden neurons with output weights N(1.5, 0.1), lr 1e-2,
# gradient clip at norm 1 (CONFIG: 0.05), 30 epochs, and the weights of the epoch with the best
# accuracy on the published validation split (epochs 15-29), never the test set.
BEYOND_CONFIG = {**CONFIG, "hidden": 200,
                 "settings": {**CONFIG["settings"], "beta": 0.25},
                 "init": {**CONFIG["init"], "out_mean": 1.5},
                 "lr": 1e-2, "grad_clip": 1.0, "select_on_val": True, "val_from_epoch": 15,
                 # BPTT (--method bptt --epochs 20): spike times on a 0.25 ms grid (D = 0.05 units,
                 # 160 steps; the 1 ms grid's 0.2 units is what held it at ~92-94 %), 200 LIF,
                 # per-neuron thresholds and leaks trained, mean cross-entropy on a leaky readout,
                 # Adam lr 5e-3 with cosine decay to 1e-5, the weights of the epoch with the best
                 # accuracy on the published validation split (epochs 10-19), never the test set
                 "bptt": {"dt_s": 2.5e-4, "n_steps": 160, "hidden": [200], "loss": "mean_ce", "lr": 5e-3,
                          "trainable": ["weights", "threshold", "leak"], "lr_final": 1e-5,
                          "select_on_val": True, "val_from_epoch": 10}}
BEYOND_EPOCHS = 30
# Issue 18 item 4: BEYOND_CONFIG plus every neuron's threshold and both time constants trained
# (hidden and output; start at the settings' theta 1, tau_syn 1/alpha = 1, tau_mem 1/beta = 4;
# same Adam, same cosine schedule, learning rates lr_theta = lr_tau = 1e-3 (1e-2, the weights'
# rate, drove ~1e5 time-constant updates onto the floor and scored lower on seeds 0-2); floors
# theta 0.01, tau 0.05 time units, clamps counted). The only departure from BEYOND_CONFIG is
# these keys. Measured (docs/pretraining.md): no better than weights only on Yin-Yang.
TRAINABLE_KEYS = {"train_thresholds": True, "train_time_constants": True, "lr_theta": 1e-3,
                  "lr_tau": 1e-3, "theta_min": 1e-2, "tau_min": 0.05}
BEYOND_TRAINABLE_CONFIG = {**BEYOND_CONFIG, **TRAINABLE_KEYS}
NAMED = {"own": (CONFIG, OWN_EPOCHS), "beyond": (BEYOND_CONFIG, BEYOND_EPOCHS),
         "beyond_trainable": (BEYOND_TRAINABLE_CONFIG, BEYOND_EPOCHS)}


def named_config(name, epochs=None):
    """(configuration, epochs) of a named configuration; ValueError naming an unknown one."""
    if name not in NAMED:
        raise ValueError(f"--config must be one of {sorted(NAMED)}, got {name!r}")
    cfg, ep = NAMED[name]
    return dict(cfg), int(epochs or ep)


def encode(x, cfg):
    """Features -> spike times with the configuration's ``encoding`` (default: Table 3's)."""
    e = cfg.get("encoding") or {"t_early": 0.15, "t_late": 2.0, "t_bias": 0.9}
    return fp.encode_latency(x, t_early=e["t_early"], t_late=e["t_late"], t_bias=e["t_bias"])


_encode = encode


_SPLITS: dict = {}


def _split(name):
    """A published split, generated once per process (the worker of several seeds)."""
    if name not in _SPLITS:
        _SPLITS[name] = load_yinyang(name)
    return _SPLITS[name]


def _data(cfg=None):
    tr, te = _split("train"), _split("test")
    cfg = cfg or {}
    if cfg.get("n_train"):  # a subset, for quick checks only
        tr = type(tr)(tr.x[:cfg["n_train"]], tr.y[:cfg["n_train"]])
    return tr, te, _encode(tr.x, cfg), _encode(te.x, cfg)


def train_model(seed, epochs, cfg, data=None):
    """One FP network trained with configuration ``cfg`` on the training set; with
    ``cfg["select_on_val"]`` the weights of the epoch with the best accuracy on the published
    validation split (1000 samples, seed 41: held out from training and test) are kept,
    scored from epoch ``cfg["val_from_epoch"]`` on."""
    tr, te, xtr, xte = data or _data(cfg)
    val = {}
    if cfg.get("select_on_val"):
        va = _split("validation")
        val = dict(x_val=encode(va.x, cfg), y_val=va.y, select_on_val=True,
                   val_from_epoch=min(int(cfg.get("val_from_epoch", 0)), epochs - 1))
    return fp.train_classifier_fp(xtr, tr.y, hidden=[cfg["hidden"]], n_classes=3, epochs=epochs,
                                  seed=seed, settings=fp.FPSettings(**cfg["settings"]),
                                  lr=cfg["lr"], lr_final=cfg["lr_final"],
                                  batch_size=cfg["batch_size"], init=cfg["init"],
                                  hidden_kick=cfg["hidden_kick"], grad_clip=cfg["grad_clip"],
                                  silent_kick=cfg["silent_kick"], pure=cfg.get("pure", False),
                                  **{k: cfg[k] for k in TRAINABLE_KEYS if k in cfg}, **val)


def _train_fp(job):
    seed, epochs, cfg = job[:3]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tr, te, xtr, xte = _data(cfg)
    t0 = time.perf_counter()
    c0 = time.process_time()
    m = train_model(seed, epochs, cfg, (tr, te, xtr, xte))
    out = {"seed": seed, "test_acc": m.accuracy(xte, te.y), "train_acc": m.accuracy(xtr, tr.y),
           "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
           "selected_epoch": m.selected_epoch,
           "epoch_s": [h["epoch_s"] for h in m.history], "heuristics": m.heuristics,
           "val_acc": ([h["val_acc"] for h in m.history]
                       if any(h["val_acc"] is not None for h in m.history) else None),
           "clamped_theta": m.history[-1]["clamped_theta"],
           "clamped_tau": m.history[-1]["clamped_tau"],
           "neurons": None if m.neurons is None else m.neurons.summary()}
    if len(job) > 3:  # --paper: report each run as it ends
        out["which"] = job[3]
        print(json.dumps({k: v for k, v in out.items() if k != "epoch_s"}), file=sys.stderr,
              flush=True)
    return out


def compare(seeds: int, jobs: int, paper_epochs: int = PAPER_EPOCHS,
            own_epochs: int = OWN_EPOCHS, n_train: int | None = None) -> dict:
    """Paper settings and own settings over seeds 0..seeds-1, plus the published figure."""
    paper_cfg = {**PAPER_CONFIG, "pure": True, "n_train": n_train}
    own_cfg = {**CONFIG, "n_train": n_train}
    work = ([(s, paper_epochs, paper_cfg, "paper") for s in range(seeds)]
            + [(s, own_epochs, own_cfg, "own") for s in range(seeds)])
    t0 = time.perf_counter()
    if jobs == 1:
        runs = [_train_fp(j) for j in work]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            runs = list(ex.map(_train_fp, work))
    out = {}
    for which, cfg, ep in (("paper", PAPER_CONFIG, paper_epochs), ("own", CONFIG, own_epochs)):
        rs = [r for r in runs if r["which"] == which]
        summ = acc_summary([r["test_acc"] for r in rs], ep)
        summ.update(train_acc_mean=float(np.mean([r["train_acc"] for r in rs])),
                    epoch_s_median=float(np.median([e for r in rs for e in r["epoch_s"]])),
                    heuristics=rs[0]["heuristics"],
                    config={k: v for k, v in cfg.items() if k not in ("pure", "n_train")})
        out[which] = summ
    out["paper"].update(name="fp-paper-table-3", notes=PAPER_NOTES)
    out["own"].update(name=OWN_NAME, departures=[
        "batch 32 (paper 150), 60 epochs (paper 300), lr 5e-3 with cosine decay to 1e-5 "
        "(paper 5e-4 constant)", "tau0 0.05 (paper 0.2), gamma 0.05 (paper 0.005)",
        "alpha = beta = 1 (paper 0.999 / 1), simulation window t_max 8"])
    if n_train:
        out["paper"]["notes"] = PAPER_NOTES + [f"QUICK CHECK: first {n_train} training samples"]
    return {"benchmark": "yinyang", "method": "fp", "paper_settings": out["paper"],
            "own_settings": out["own"], "published": PUBLISHED["yinyang"],
            "wall_s": time.perf_counter() - t0, "jobs": jobs,
            "command": f"python scripts/reproduce_yinyang.py --paper --seeds {seeds} "
                       f"--jobs {jobs}"}


def bptt_settings(cfg):
    """BPTT's settings: ``cfg["bptt"]`` over the defaults (the 1 ms grid of the timing peers,
    the hidden size and batch of the FP configuration, count cross-entropy on a spiking output).
    ``dt_s`` and ``n_steps`` set the grid the spike times are rounded onto (``unit_s`` seconds
    per time unit); other keys go to ``train_classifier`` as options."""
    b = {"dt_s": DT_S, "n_steps": N_STEPS, "unit_s": UNIT_S, "hidden": [cfg["hidden"]],
         "lr": cfg.get("bptt_lr", 1e-3), "tau_mem_s": cfg.get("bptt_tau_mem_s", 20e-3),
         "batch_size": cfg["batch_size"], "loss": "count_ce"}
    b.update(cfg.get("bptt") or {})
    return b


def _train_bptt(job):
    seed, epochs, cfg = job
    train = load_bptt()
    tr, te, xtr, xte = _data()
    b = bptt_settings(cfg)
    grid = {k: b.pop(k) for k in ("unit_s", "dt_s", "n_steps")}
    gtr = times_to_grid(xtr, grid["unit_s"], grid["dt_s"], grid["n_steps"])
    gte = times_to_grid(xte, grid["unit_s"], grid["dt_s"], grid["n_steps"])
    if "val_from_epoch" in b:  # past a short run's end: its last epoch
        b["val_from_epoch"] = min(int(b["val_from_epoch"]), epochs - 1)
    if b.get("select_on_val"):  # the published validation split, never the test set
        va = _split("validation")
        b.update(x_val=times_to_grid(encode(va.x, cfg), grid["unit_s"], grid["dt_s"], grid["n_steps"]),
                 y_val=va.y)
    t0 = time.perf_counter()
    c0 = time.process_time()
    m = train(gtr, tr.y, n_classes=3, epochs=epochs, seed=seed, dt_s=grid["dt_s"], **b)
    return {"seed": seed, "test_acc": float(np.mean(np.asarray(m.predict(gte)) == te.y)),
            "train_acc": float(np.mean(np.asarray(m.predict(gtr)) == tr.y)),
            "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "epoch_s": [h["epoch_s"] for h in m.history],
            "selected_epoch": getattr(m, "selected_epoch", None),
            "val_acc": [h.get("val_acc") for h in m.history] if b.get("select_on_val") else None}


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
    ap.add_argument("--epochs", type=int, default=None,
                    help=f"epochs (default {OWN_EPOCHS}; with --paper: Table 3's 300)")
    ap.add_argument("--paper", action="store_true",
                    help="paper settings (Table 3) next to own settings and published numbers")
    ap.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes")
    ap.add_argument("--no-compare", action="store_true", help="skip the timing peers")
    ap.add_argument("--timing-only", action="store_true",
                    help="only the timing peers (no seeds trained)")
    ap.add_argument("--override", default="{}", help="JSON overriding the configuration's keys")
    ap.add_argument("--config", default="own", choices=sorted(NAMED),
                    help="own: CONFIG (60 epochs); beyond: BEYOND_CONFIG (the >= 98.2 %% attempt); "
                         "beyond_trainable: BEYOND_CONFIG with per-neuron thresholds and time "
                         "constants trained")
    args = ap.parse_args(argv)
    prog = "reproduce_yinyang.py"
    ov, refused = checked_options(prog, {"--seeds": args.seeds, "--epochs": args.epochs, "--jobs": args.jobs},
                                  args.override, args.paper, {
                                      "--method": (args.method, args.method == "fp"),
                                      "--epochs": (args.epochs, args.epochs in (None, PAPER_EPOCHS)),
                                      "--timing-only": (True, not args.timing_only),
                                      "--config": (args.config, args.config == "own")})
    if refused is not None:
        return refused
    if args.paper:
        emit(compare(args.seeds, args.jobs))
        return 0
    base, base_epochs = named_config(args.config)
    if args.epochs is None:
        args.epochs = base_epochs
    cfg = {**base, **{k: v for k, v in ov.items() if k not in ("settings", "init", "bptt")}}
    for k in ("settings", "init", "bptt"):
        cfg[k] = {**base.get(k, {}), **ov.get(k, {})}
    if args.method == "bptt":
        load_bptt()  # fail early with a clear message
    if args.timing_only:
        emit({"benchmark": "yinyang-timing", "method": args.method, "seeds": 0,
              "epochs": 0, "test_acc_mean": None, "test_acc_sd": None, "wall_s": None,
              "config": cfg, "timing": _timing_peers(cfg)})
        return 0
    fn = _train_fp if args.method == "fp" else _train_bptt
    jobs = [(seed, args.epochs, cfg) for seed in range(args.seeds)]
    load_before = os.getloadavg()[0]
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
           "wall_s": wall, "jobs": args.jobs, "config_name": args.config,
           "cpu_s_total": float(sum(r["cpu_s"] for r in runs)),
           "load_avg_1min": [load_before, os.getloadavg()[0]], "cpu_count": os.cpu_count(),
           "selected_epochs": [r.get("selected_epoch") for r in runs],
           "val_acc_per_epoch": [r.get("val_acc") for r in runs],
           "run_wall_s_max": max(r["wall_s"] for r in runs),
           "clamped_theta": [r.get("clamped_theta") for r in runs],
           "clamped_tau": [r.get("clamped_tau") for r in runs],
           "neurons": [r.get("neurons") for r in runs],
           "epoch_s_median": epoch_med, "config": cfg}
    if args.method == "bptt":
        rec["bptt_settings"] = bptt_settings(cfg)
    if not args.no_compare:
        rec["timing"] = _timing_peers(cfg)
    emit(rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
