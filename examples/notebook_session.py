"""Drive a closed-loop session from Python, as a Jupyter notebook would (docs/python_api.md).

The embedded demo (a simulated motor-cortex user over LSL, a 256-neuron ALIF decoder whose
readout is calibrated by ridge regression) is started in the background with no duration,
watched through ``status()`` for ``--watch`` seconds, stopped, and its outputs are read
back with ``load_outputs`` to score each decoded output against its target.

    python examples/notebook_session.py [--watch 15] [--calibration 5] [--out-dir sessions]

Each line of this file can go in a notebook cell as is; the cells return at once while
the session runs.
"""

from __future__ import annotations

import argparse
import time
from importlib import resources

import numpy as np
import yaml

import rtsnn


def demo_config(calibration_s: float, out_dir: str) -> dict:
    """The embedded demo config with no duration (it runs until stop()) and a shorter
    calibration."""
    cfg = yaml.safe_load(resources.files("rtsnn").joinpath("configs/demo.yaml").read_text())
    cfg["session"].update(duration_s=None, out_dir=out_dir, name="notebook")
    cfg["learner"]["options"]["calibration_s"] = calibration_s
    return cfg


def r2_per_output(out: dict, after_tick: float) -> dict[str, float]:
    """1 - SS_res / SS_tot of every ``y_<label>`` against ``target_<label>``, over the ticks
    after ``after_tick`` (the calibration period is fitted, so it is left out)."""
    keep = out["tick"] > after_tick
    scores = {}
    for col in out["units"]:
        if col.startswith("y_"):
            y, t = out[col][keep], out["target_" + col[2:]][keep]
            scores[col[2:]] = float(1.0 - np.sum((y - t) ** 2) / np.sum((t - t.mean()) ** 2))
    return scores


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--watch", type=float, default=15.0, help="seconds to let the session run (default 15)")
    p.add_argument("--calibration", type=float, default=5.0, help="readout calibration (s, default 5)")
    p.add_argument("--out-dir", default="sessions", help="where the session folder goes")
    args = p.parse_args()

    print("rtsnn", rtsnn.__version__)
    cfg = rtsnn.load_config(demo_config(args.calibration, args.out_dir))  # validated; errors name the key
    session = rtsnn.Session(cfg).start()  # returns at once
    t_end = time.monotonic() + args.watch
    while time.monotonic() < t_end:
        time.sleep(min(3.0, max(0.0, t_end - time.monotonic())))
        st = session.status()
        if st["error"]:
            raise SystemExit(f"session failed: {st['error']}")
        r2 = "-" if st["r2"] is None else f"{st['r2']:.3f}"
        print(f"running={st['running']} ticks={st['ticks']} misses={st['deadline_misses']} "
              f"e2e_p99_us={st['e2e_p99_us']} r2={r2}")
    summary = session.stop()  # asks it to stop, waits, returns the summary (also in summary.json)
    print(f"stopped: {summary['ticks']} ticks, R^2 {summary['r2']}, folder {summary['folder']}")

    out = rtsnn.load_outputs(summary["folder"])
    print(f"outputs: {len(out['tick'])} rows; columns and units: {out['units']}")
    calibration_ticks = args.calibration / cfg.session.dt_s
    for label, r2 in r2_per_output(out, calibration_ticks).items():
        print(f"R^2 {label} after calibration: {r2:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
