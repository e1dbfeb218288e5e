"""The sine-wave regression task (100 in / 100 LIF / 1 out, 1000 steps, NEST's draws with
seed 1) trained with e-prop in NEST 3.10 and in rtsnn (NEST conventions), same network and
iterations, from one script.

    python scripts/bench_eprop_vs_nest.py [--iters 5] [--repeats 3]

One JSON line: median wall times (NEST: nest.Simulate only, network build excluded; rtsnn:
train_sequences incl. its set-up), ratio rtsnn/NEST (floor <= 0.2) and the largest relative
difference of the loss trajectories.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from rtsnn.learn.online.eprop import EpropOptions, nest_constants, train_sequences
from rtsnn.learn.online.eprop_reference import run_nest_regression, sine_task


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    a = ap.parse_args()
    d = sine_task(a.iters)
    s = nest_constants(d["tau_m_ms"], d["tau_out_ms"], d["v_th"], d["t_ref_ms"])
    o = EpropOptions(lr=1e-4, feedback="random", optimizer="gd", update_every_ticks=d["xs"].shape[1], loss="mse",
                     conventions="nest_bsshslm_2020", c_reg=300.0)

    def ours():
        return train_sequences(s, o, d["w_in"], d["w_rec"], d["w_out"], d["xs"], d["targets"],
                               feedback=d["feedback"], dtype=np.dtype(a.dtype))["losses"]

    ours()  # compile / load the numba cache outside the timing
    t_nest, t_ours = [], []
    for _ in range(a.repeats):
        r = run_nest_regression(d)
        t_nest.append(r["wall_s"])
        t0 = time.perf_counter()
        losses = ours()
        t_ours.append(time.perf_counter() - t0)
    ratio = float(np.median(t_ours) / np.median(t_nest))
    rel = float(np.max(np.abs(np.array(losses) / np.array(r["losses"]) - 1)))
    print(json.dumps({"bench": "eprop_sine_vs_nest", "iters": a.iters, "steps": int(d["xs"].shape[1]),
                      "n_rec": 100, "dtype": a.dtype, "nest_wall_s": round(float(np.median(t_nest)), 4),
                      "rtsnn_wall_s": round(float(np.median(t_ours)), 4), "ratio": round(ratio, 4),
                      "floor_ratio": 0.2, "meets_floor": ratio <= 0.2, "loss_max_rel_diff": rel,
                      "nest_losses": r["losses"], "rtsnn_losses": losses}))
    return 0 if ratio <= 0.2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
