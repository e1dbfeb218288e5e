"""``rtsnn backend report MODEL --backend xylo|numba_cpu``: what a model costs on a backend.

``xylo`` comes from the ``rtsnn-xylo`` plugin (its cost model is documented in
``rtsnn_xylo.report``); ``numba_cpu`` reports sizes, memory and operations per tick (its
real-time margin is measured, not modelled: ``scripts/bench_tick.py``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from rtsnn.snn.model_file import load_model
from rtsnn.snn.params import Model

BACKENDS = ("xylo", "numba_cpu")


def cpu_report(model: Model) -> dict[str, Any]:
    w = model.weights
    syn = {"input": int(np.count_nonzero(w.w_in)), "recurrent": int(np.count_nonzero(w.w_rec)),
           "output": int(np.count_nonzero(w.w_out))}
    n = model.n_rec
    return {"backend": "numba_cpu", "dt_s": model.settings.dt_s,
            "neurons": {"inputs": model.n_in, "hidden": n, "outputs": model.n_out}, "fits": True,
            "violations": [], "warnings": [], "synapses": syn,
            "memory_bytes": {"weights": int(4 * (w.w_in.size + w.w_rec.size + w.w_out.size + w.b_out.size)),
                             "state": int(4 * 5 * n + 4 * n + 4 * model.n_out)},
            "dense_macs_per_tick": int(w.w_in.size + w.w_rec.size + w.w_out.size),
            "real_time_note": "real time on the CPU is measured, not modelled: python scripts/bench_tick.py"}


def format_report(rep: dict[str, Any]) -> str:
    """Human-readable lines of a report dict."""
    n = rep["neurons"]
    lines = [f"backend {rep['backend']}  dt {rep['dt_s'] * 1e3:g} ms",
             f"neurons: {n['inputs']} in / {n['hidden']} hidden / {n['outputs']} out"
             + (f"  (limits {n['limits'][0]}/{n['limits'][1]}/{n['limits'][2]})" if "limits" in n else "")]
    if not rep.get("fits", True):
        lines.append(f"DOES NOT FIT: {len(rep['violations'])} violation(s)")
        lines += [f"  - {v}" for v in rep["violations"]]
        return "\n".join(lines)
    sy = rep["synapses"]
    lines.append(f"synapses: {sy['input']} input, {sy['recurrent']} recurrent, {sy['output']} output"
                 + (f" ({sy['rounded_to_zero']} rounded to 0 by quantisation)" if sy.get("rounded_to_zero") else ""))
    mem = rep["memory_bytes"]
    lines.append("memory: " + ", ".join(f"{k} {v / 1024:.1f} KiB" for k, v in mem.items()))
    if "cycles_per_tick" in rep:
        c = rep["cycles_per_tick"]
        rt = rep["real_time"]
        per = f", {c['steps_per_tick']} chip steps each" if c.get("steps_per_tick", 1) > 1 else ""
        lines.append(f"cycles/tick: worst {c['worst_case']:.0f}, typical {c['typical']:.0f} "
                     f"(budget {c['budget']:.0f} at {rep['clock_hz'] / 1e6:g} MHz, margin {c['margin']:.0%}{per})")
        lines.append(f"real time: worst case {'yes' if rt['worst_case'] else 'NO'}, typical "
                     f"{'yes' if rt['typical'] else 'NO'} (worst case needs >= "
                     f"{rt['min_clock_hz_worst_case'] / 1e6:.2f} MHz)")
    else:
        lines.append(rep.get("real_time_note", ""))
    for w in rep.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    if args.backend == "xylo":
        try:
            from rtsnn_xylo.report import xylo_report
        except ImportError as err:
            raise ValueError("the xylo backend needs the rtsnn-xylo plugin: pip install -e plugins/rtsnn-xylo "
                             f"({err})") from err
        if not args.clock_mhz > 0:
            raise ValueError(f"--clock-mhz must be > 0, got {args.clock_mhz}")
        rep = xylo_report(model, clock_hz=args.clock_mhz * 1e6, quantization=args.quantization,
                          strict=not args.lenient, steps_per_tick=args.steps_per_tick)
    else:
        rep = cpu_report(model)
    from rtsnn.jsonout import json_safe

    print(json.dumps(json_safe(rep), allow_nan=False) if args.json else format_report(rep))
    return 0 if rep.get("fits", True) else 1


def register(subparsers: Any) -> None:
    b = subparsers.add_parser("backend", help="backend tools (fit / cost reports)")
    bsub = b.add_subparsers(dest="backend_cmd", required=True)
    r = bsub.add_parser("report", help="neurons, synapses, memory, cycles per tick and real-time fit of a model")
    r.add_argument("model", help="model file (.npz)")
    r.add_argument("--backend", choices=BACKENDS, default="xylo")
    r.add_argument("--clock-mhz", type=float, default=50.0, help="xylo core clock (default 50 MHz)")
    r.add_argument("--quantization", choices=("global", "per_neuron"), default="global")
    r.add_argument("--lenient", action="store_true",
                   help="xylo: drop ALIF adaptation / refractoriness with a warning instead of refusing")
    r.add_argument("--steps-per-tick", type=int, default=1,
                   help="xylo: chip steps per model tick (1..64; the tick's input spread over them)")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(func=cmd_report)
