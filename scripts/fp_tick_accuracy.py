"""Yin-Yang accuracy of an FP network in continuous time and exported to ticks of 1 ms and finer.

Trains (or loads, ``--load``) an FP Yin-Yang network with the existing code
(:func:`rtsnn.learn.offline.fp.train_classifier_fp`, the configuration of
``scripts/reproduce_yinyang.py``: 4(+bias)-150-3, one time unit = 5 ms, window 8 units = 40 ms),
exports it with :func:`rtsnn.learn.offline.export.fp_to_graph` at each tick (CubaLIF, exact
decays, gain h(dt), inputs rounded to the nearest tick; discretisation in that module), saves
and reloads each graph, runs the 1000 test samples through :class:`GraphNetwork` and reads the
first output spike (ties in a tick: larger membrane). Prints one strict JSON line: FP's
continuous-time test accuracy, each tick's accuracy, its agreement with FP's classes and the
first-spike time error in ticks.

    python scripts/fp_tick_accuracy.py --epochs 20 --seed 0
    python scripts/fp_tick_accuracy.py --load fp_yinyang.npz      # weights saved by --save
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtsnn.datasets import load_yinyang  # noqa: E402
from rtsnn.learn.offline import fp  # noqa: E402
from rtsnn.learn.offline.export import (fp_input_raster, fp_n_ticks, fp_to_graph,  # noqa: E402
                                        graph_first_spikes)
from rtsnn.snn.model_file import load_graph_model, save_model  # noqa: E402

UNIT_S = 5e-3
SETTINGS = dict(alpha=1.0, beta=1.0, theta=1.0, t_max=8.0, max_hidden_spikes=1, tau0=0.05, tau1=1.0, gamma=0.05)
TRAIN = dict(lr=5e-3, lr_final=1e-5, batch_size=32, hidden_kick=0.01, grad_clip=0.05, silent_kick=0.05,
             init=dict(hidden_mean=1.5, hidden_sd=0.8, out_mean=2.0, out_sd=0.1))
TICKS_S = (1e-3, 0.5e-3, 0.1e-3, 0.01e-3)


def _load(path: str) -> fp.TrainedFP:
    try:
        with np.load(path) as z:
            ws = [z[f"w{l}"] for l in range(int(z["n_layers"]))]
    except (OSError, KeyError, ValueError) as err:
        raise SystemExit(f"--load {path}: not an FP weights file written by --save ({err})") from None
    return fp.TrainedFP(fp.FPNetwork(ws), fp.FPSettings(**SETTINGS), [])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=150)
    ap.add_argument("--load", help="FP weights (.npz from --save) instead of training")
    ap.add_argument("--save", help="write the trained FP weights here (.npz)")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.hidden < 1:
        raise SystemExit("--epochs and --hidden must be >= 1")
    tr, te = load_yinyang("train"), load_yinyang("test")
    x_tr, x_te = fp.encode_latency(tr.x), fp.encode_latency(te.x)
    t0 = time.perf_counter()
    if args.load:
        m = _load(args.load)
        trained = {"loaded": args.load}
    else:
        m = fp.train_classifier_fp(x_tr, tr.y, hidden=[args.hidden], n_classes=3, epochs=args.epochs,
                                   seed=args.seed, settings=fp.FPSettings(**SETTINGS), **TRAIN)
        trained = {"epochs": args.epochs, "seed": args.seed, "hidden": args.hidden,
                   "train_s": time.perf_counter() - t0}
        if args.save:
            np.savez(args.save, n_layers=len(m.net.w), **{f"w{l}": w for l, w in enumerate(m.net.w)})
    t_fp = m.first_spike_times(x_te)
    pred_fp = fp.predict_from_times(t_fp, m.settings.t_max)
    out = {"benchmark": "fp_tick_accuracy", "dataset": "yinyang test (1000)", "unit_s": UNIT_S,
           "window_s": m.settings.t_max * UNIT_S, "train": trained,
           "fp_continuous_test_acc": float(np.mean(pred_fp == te.y)),
           "fp_silent_frac": float(np.mean(pred_fp < 0)), "ticks": []}
    with tempfile.TemporaryDirectory() as tmp:
        for dt_s in TICKS_S:
            t1 = time.perf_counter()
            path = save_model(Path(tmp) / "fp.npz", fp_to_graph(m, dt_s, unit_s=UNIT_S,
                                                                 output_labels=["yin", "yang", "dot"]))
            gm = load_graph_model(path)
            n_ticks = fp_n_ticks(m.settings.t_max, dt_s, UNIT_S)
            first, pred = graph_first_spikes(gm, fp_input_raster(x_te, dt_s, UNIT_S, n_ticks))
            step = dt_s / UNIT_S
            both = (first >= 0) & (t_fp < m.settings.t_max)
            err = ((first + 1) * step - t_fp)[both] / step  # first-spike time error, in ticks
            out["ticks"].append({
                "dt_s": dt_s, "window_ticks": n_ticks, "test_acc": float(np.mean(pred == te.y)),
                "agree_with_fp": float(np.mean(pred == pred_fp)), "silent_frac": float(np.mean(pred < 0)),
                "first_spike_err_ticks_mean": float(err.mean()) if err.size else None,
                "first_spike_within_1_tick": float(np.mean(np.abs(err) <= 1.0)) if err.size else None,
                "first_spike_err_units_mean_abs": float(np.mean(np.abs(err)) * step) if err.size else None,
                "wall_s": time.perf_counter() - t1})
    out["wall_s"] = time.perf_counter() - t0
    print(json.dumps(out, allow_nan=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
