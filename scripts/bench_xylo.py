"""Per-tick time of the xylo backend (simulator 'reference' = numba integer kernels, 'xylosim' =
SynSense's C++ simulator) vs the float numba_cpu backend, same model (random LIF, 16 in, N hidden,
2 out, mapped per_neuron). Medians of per-tick wall times; one JSON line.

    nice -n 10 .venv/bin/python scripts/bench_xylo.py [--hidden 256] [--ticks 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "rtsnn-xylo"))

from rtsnn.snn.network import Network  # noqa: E402
from rtsnn.snn.params import Model  # noqa: E402
from rtsnn_xylo.backend import XyloBackend  # noqa: E402
from rtsnn_xylo.sim import xylosim_available  # noqa: E402


def per_tick(step, xs) -> np.ndarray:
    out = np.empty(len(xs))
    for i, x in enumerate(xs):
        t = time.perf_counter_ns()
        step(x)
        out[i] = (time.perf_counter_ns() - t) / 1e3
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--ticks", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    # rec_density so the fan-out stays within 64 (Xylo limit)
    model = Model.random(16, a.hidden, 2, seed=a.seed, rec_density=min(1.0, 48 / a.hidden))
    rng = np.random.default_rng(a.seed)
    xs = rng.poisson(0.3, (a.ticks, 16)).astype(np.float32)
    res = {"bench": "xylo_tick", "hidden": a.hidden, "ticks": a.ticks}
    net = Network(model)
    per_tick(net.step, xs[:100])
    res["numba_cpu_us_median"] = float(np.median(per_tick(net.step, xs)))
    sims = ["reference"] + (["xylosim"] if xylosim_available() else [])
    for sim in sims:
        be = XyloBackend(model.copy(), simulator=sim, quantization="per_neuron", strict=False)
        be.warm_up()
        res[f"xylo_{sim}_us_median"] = float(np.median(per_tick(be.step, xs)))
    if "xylo_xylosim_us_median" in res:
        res["xylosim_over_reference"] = res["xylo_xylosim_us_median"] / res["xylo_reference_us_median"]
    res["reference_over_numba_cpu"] = res["xylo_reference_us_median"] / res["numba_cpu_us_median"]
    res["note"] = "measured on a shared 2-core machine under load"
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
