"""Yin-Yang accuracy of an FP network in continuous time and exported to ticks of 1 ms and finer.

Trains (or loads, ``--load``) an FP Yin-Yang network with the existing code
(:func:`rtsnn.learn.offline.fp.train_classifier_fp`, a named configuration of
``scripts/reproduce_yinyang.py``, ``--config own`` (default: 4(+bias)-150-3) or ``beyond``;
one time unit = 5 ms, window ``t_max`` units, 8 = 40 ms),
exports it with :func:`rtsnn.learn.offline.export.fp_to_graph` at each tick (CubaLIF, exact
decays, gain h(dt), inputs rounded to the nearest tick; discretisation in that module), saves
and reloads each graph, runs the 1000 test samples through :class:`GraphNetwork` and reads the
first output spike (ties in a tick: larger membrane). Prints one strict JSON line: FP's
continuous-time test accuracy, each tick's accuracy, its agreement with FP's classes and the
first-spike time error in ticks.

    python scripts/fp_tick_accuracy.py --epochs 20 --seed 0
    python scripts/fp_tick_accuracy.py --config beyond --seed 0   # its own epochs
    python scripts/fp_tick_accuracy.py --load fp_yinyang.npz      # weights saved by --save

``--save`` writes the weights with the settings and encoding (``meta_json``), which
``scripts/yinyang_session.py --load`` reads too.
"""

from __future__ import annotations

import argparse
import importlib.util
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
TICKS_S = (1e-3, 0.5e-3, 0.1e-3, 0.01e-3)


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_{name}", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load(path: str) -> tuple[fp.TrainedFP, dict]:
    try:
        return _script("yinyang_session")._load_weights(path)
    except ValueError as err:
        raise SystemExit(str(err)) from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="own", help="configuration of reproduce_yinyang.py (own | beyond)")
    ap.add_argument("--epochs", type=int, default=20, help="epochs (0: the configuration's own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=None, help="hidden neurons (default: the configuration's)")
    ap.add_argument("--load", help="FP weights (.npz from --save) instead of training")
    ap.add_argument("--save", help="write the trained FP weights here (.npz)")
    args = ap.parse_args(argv)
    if args.epochs < 0 or (args.hidden is not None and args.hidden < 1):
        raise SystemExit("--epochs must be >= 0 and --hidden >= 1")
    repro = _script("reproduce_yinyang")
    try:
        cfg, epochs = repro.named_config(args.config, args.epochs or None)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    if args.hidden is not None:
        cfg["hidden"] = args.hidden
    te = load_yinyang("test")
    t0 = time.perf_counter()
    if args.load:
        m, meta = _load(args.load)
        enc = meta.get("encoding")
        trained = {"loaded": args.load}
    else:
        m = repro.train_model(args.seed, epochs, cfg)
        enc = cfg.get("encoding")
        trained = {"config": args.config, "epochs": epochs, "seed": args.seed, "hidden": cfg["hidden"],
                   "selected_epoch": m.selected_epoch, "train_s": time.perf_counter() - t0}
        if args.save:
            meta = {"settings": fp.settings_dict(m.settings), "encoding": enc, "config": args.config,
                    "seed": args.seed, "epochs": epochs}
            np.savez(args.save, n_layers=len(m.net.w), meta_json=json.dumps(meta, allow_nan=False),
                     **{f"w{l}": w for l, w in enumerate(m.net.w)})
    x_te = repro.encode(te.x, {"encoding": enc} if enc else {})
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
