"""A sweep on Ray Tune against the same trials run back to back by hand (issue 15's floor:
Tune <= 1.2x the back-to-back time on this 2-core machine).

Eight trials (a grid of ``train.seed`` 0..3 x ``train.lr`` {3e-3, 1e-2}, no early stopping, so
both sides do exactly the same training) of ``rtsnn pretrain`` on the simulated motor-cortex
user. "Tune": ``rtsnn.learn.offline.sweep.run_sweep`` end to end, starting and stopping its own
local Ray (``num_cpus = os.cpu_count()``, one CPU per trial, actors reused), writing the table
and exporting the best model. "By hand": the same eight trial configs through
``run_trial`` one after another in this process. The two alternate, ``--repeats`` times each;
the JSON line holds every wall time, the medians, their ratio, and Ray's bare start-up +
shutdown time for scale. Progress goes to stderr.

    .venv/bin/python scripts/bench_sweep.py [--repeats 2] [--duration-s 120] [--epochs 40] [--n-rec 64]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def make_config(a: argparse.Namespace, out: Path):
    from rtsnn.learn.offline.pretrain import parse_pretrain_config

    return parse_pretrain_config({
        "data": {"kind": "synthetic", "bin_s": 0.02,
                 "synthetic": {"duration_s": a.duration_s, "trial_s": 2.0, "seed": 1}},
        "model": {"n_rec": a.n_rec, "neuron": {"model": "alif", "tau_mem_s": 0.05, "tau_adapt_s": 0.5,
                                               "beta_adapt": 0.05, "tau_out_s": 0.1}},
        "train": {"epochs": a.epochs, "batch_size": 16},
        "output": {"model_path": str(out / "best.npz")},
        "sweep": {"space": {"train.seed": {"grid": [0, 1, 2, 3]}, "train.lr": {"grid": [3e-3, 1e-2]}},
                  "select_on_test": True},  # a speed benchmark: which trial wins does not matter
    }, "bench_sweep")


def by_hand(cfg, out: Path) -> float:
    """The sweep's trials, one after another in this process."""
    from rtsnn.learn.offline import sweep as sw

    plan = sw.Plan(base=cfg.model_dump(exclude={"sweep"}), base_dir=str(out), model_name="m.npz",
                   metric="test_r2", mode="max", epochs=cfg.train.epochs, space_keys=tuple(cfg.sweep.space))
    t0 = time.perf_counter()
    for i, params in enumerate(sw.draw_trials(cfg.sweep)):
        d = out / f"hand_{i}"
        d.mkdir(parents=True)
        sw.run_trial(plan, params, d)
    return time.perf_counter() - t0


def on_tune(cfg, out: Path) -> tuple[float, list[dict]]:
    from rtsnn.learn.offline.sweep import run_sweep

    t0 = time.perf_counter()
    summary = run_sweep(cfg, out, sweep_dir=out / "tune_sweep", use_ray=True, log=sys.stderr)
    return time.perf_counter() - t0, summary["trials"]


def ray_start_stop_s() -> float:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    ray.shutdown()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--duration-s", type=float, default=120.0, help="simulated recording per trial")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--n-rec", type=int, default=64)
    a = ap.parse_args()
    import ray

    from rtsnn.runtime.metrics import json_safe

    root = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    hand_s, tune_s, trials = [], [], []
    try:
        cfg0 = make_config(a, root)
        by_hand(cfg0, root / "warm")  # numba's on-disk cache filled before anything is timed
        load0 = os.getloadavg()[0]
        for r in range(a.repeats):
            out = root / f"r{r}"
            cfg = make_config(a, out)
            hand_s.append(by_hand(cfg, out))
            print(f"repeat {r + 1}: by hand {hand_s[-1]:.1f} s", file=sys.stderr, flush=True)
            wall, trials = on_tune(cfg, out)
            tune_s.append(wall)
            print(f"repeat {r + 1}: Tune {tune_s[-1]:.1f} s", file=sys.stderr, flush=True)
        ray_s = ray_start_stop_s()
        load1 = os.getloadavg()[0]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    hand_med, tune_med = statistics.median(hand_s), statistics.median(tune_s)
    ratio = tune_med / hand_med
    print(json.dumps(json_safe({
        "bench": "sweep", "trials": len(trials), "cpus": os.cpu_count(), "ray_version": ray.__version__,
        "trial": {"duration_s": a.duration_s, "epochs": a.epochs, "n_rec": a.n_rec, "bin_s": 0.02},
        "hand_wall_s": hand_s, "tune_wall_s": tune_s, "hand_median_s": hand_med, "tune_median_s": tune_med,
        "ratio_tune_over_hand": ratio, "floor_ratio": 1.2, "floor_met": ratio <= 1.2,
        "ray_start_stop_s": ray_s, "load_avg_1min": [load0, load1],
        "trials_completed": sum(t["status"] == "completed" for t in trials)}), allow_nan=False), flush=True)


if __name__ == "__main__":
    main()
