"""``rtsnn backend report MODEL --backend NAME``: what a model costs on a backend.

``numba_cpu`` (here) reports sizes, memory and operations per tick of any model graph (its
real-time margin is measured, not modelled: ``scripts/bench_tick.py``). Other backends add
their report through the entry-point group ``rtsnn.backend_reports``: a callable
``report(model, *, clock_hz, quantization, strict, steps_per_tick) -> dict`` (the
``rtsnn-xylo`` plugin registers ``xylo``; its cost model is documented in
``rtsnn_xylo.report``). The core imports no plugin.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np

from rtsnn import plugins
from rtsnn.snn.graph import GraphModel, graph_from_model
from rtsnn.snn.model_file import load_model

REPORTS = "rtsnn.backend_reports"
CPU = "numba_cpu"


def cpu_report(model: Any) -> dict[str, Any]:
    """Neurons, synapses (non-zero weights), memory and dense multiply-adds per tick of a
    :class:`~rtsnn.snn.params.Model` or :class:`~rtsnn.snn.graph.GraphModel`."""
    gm = model if isinstance(model, GraphModel) else graph_from_model(model)
    g = gm.graph
    neurons: dict[str, int] = {"inputs": g.n_in, "hidden": 0, "outputs": g.n_out}
    syn = {"total": 0}
    weight_bytes = state_bytes = macs = 0
    for name in g.order():
        node = g.nodes[name]
        for arr in node.arrays().values():
            if node.kind in ("Linear", "Affine", "Conv2d"):
                weight_bytes += int(arr.nbytes)
        if node.kind in ("Linear", "Affine"):
            nz = int(np.count_nonzero(node.weight))  # type: ignore[attr-defined]
            syn[name] = nz
            syn["total"] += nz
            macs += int(node.weight.size)  # type: ignore[attr-defined]
        elif node.kind == "Conv2d":
            nz = int(np.count_nonzero(node.weight))  # type: ignore[attr-defined]
            syn[name] = nz
            syn["total"] += nz
            macs += node.output_size() * int(np.prod(node.weight.shape[1:]))  # type: ignore[attr-defined]
        if node.spiking:
            neurons["hidden"] += node.output_size()
            state_bytes += 4 * 5 * node.output_size()  # v, isyn, a, z (float32), refr (int32)
        elif node.kind in ("LI", "Delay", "Output"):
            depth = int(node.steps.max()) + 1 if node.kind == "Delay" else 1  # type: ignore[attr-defined]
            state_bytes += 4 * depth * node.output_size()
    return {"backend": CPU, "dt_s": g.dt_s, "neurons": neurons, "fits": True, "violations": [], "warnings": [],
            "synapses": syn, "graph": [{"name": r["name"], "kind": r["kind"], "shape": r["shape"]} for r in g.summary()],
            "memory_bytes": {"weights": weight_bytes, "state": state_bytes},
            "dense_macs_per_tick": macs,
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


def report_backends() -> list[str]:
    """Backends with a report: this module's own and the plugins'."""
    return [CPU, *sorted(plugins.available(REPORTS))]


def cmd_report(args: argparse.Namespace) -> int:
    names = report_backends()
    if args.backend not in names:
        hint = " (the xylo report comes with the rtsnn-xylo plugin: pip install -e plugins/rtsnn-xylo)" \
            if args.backend == "xylo" else ""
        raise ValueError(f"no report for backend {args.backend!r}; installed: {', '.join(names)}{hint}")
    if not (math.isfinite(args.clock_mhz) and args.clock_mhz > 0):
        raise ValueError(f"--clock-mhz must be a finite number > 0, got {args.clock_mhz}")
    model = load_model(args.model)
    if args.backend == CPU:
        rep = cpu_report(model)
    else:
        report = plugins.available(REPORTS)[args.backend].load()
        rep = report(model, clock_hz=args.clock_mhz * 1e6, quantization=args.quantization,
                     strict=not args.lenient, steps_per_tick=args.steps_per_tick)
    from rtsnn.jsonout import json_safe

    print(json.dumps(json_safe(rep), allow_nan=False) if args.json else format_report(rep))
    return 0 if rep.get("fits", True) else 1


def register(subparsers: Any) -> None:
    b = subparsers.add_parser("backend", help="backend tools (fit / cost reports)")
    bsub = b.add_subparsers(dest="backend_cmd", required=True)
    r = bsub.add_parser("report", help="neurons, synapses, memory, cycles per tick and real-time fit of a model")
    r.add_argument("model", help="model file (.npz)")
    r.add_argument("--backend", default="xylo",
                   help="numba_cpu, or a backend a plugin adds a report for (rtsnn-xylo: xylo)")
    r.add_argument("--clock-mhz", type=float, default=50.0, help="xylo core clock (default 50 MHz)")
    r.add_argument("--quantization", choices=("global", "per_neuron"), default="global")
    r.add_argument("--lenient", action="store_true",
                   help="xylo: drop ALIF adaptation / refractoriness with a warning instead of refusing")
    r.add_argument("--steps-per-tick", type=int, default=1,
                   help="xylo: chip steps per model tick (1..64; the tick's input spread over them)")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(func=cmd_report)
