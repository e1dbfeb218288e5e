"""Fit report: does a model fit XyloAudio 2, and does it run in real time there?

Cost model (cycles of the Xylo SNN core per time step), after the cycle model SynSense
publishes for XyloAudio 2 in Rockpool (``rockpool/devices/xylo/syns61201/power_cycles_model.py``,
``cycles_model``), restated here with ``p_in``, ``p_hid`` the fractions of input channels /
hidden neurons that emit at least one event in a step (multiple events cost as one)::

    input     = n_in * (p_in * n_hid * 3.5 + 1)
    hid Isyn  = n_hid * (p_hid * fanout_avg * 7 + 3)       fanout_avg: mean recurrent synapses per neuron
    out Isyn  = n_hid * p_hid * (1 + 8 n_out)
    hid spike = n_hid * (19 + 3 p_hid)                      (no aliases)
    out spike = 12 n_out

The worst case (``p_in = p_hid = 1``) is what the chip must absorb in one ``dt``; the
model's own activity on a probe input gives the typical case. A tick of ``steps_per_tick = K``
chip steps (:mod:`rtsnn_xylo.ticks`) costs ``K`` times a step. Real time holds when
``cycles_per_tick * (1 + margin) / clock_hz <= dt_s`` (margin 20 %, as SynSense's ``est_clock_freq``).
``clock_hz`` defaults to 50 MHz, the fastest setting of the XyloAudio 2 dev kit's core clock
(``100 MHz / (2 (w + 1))``, ``w = 0``). Memory counts the chip's weight RAM (int8, dense
input and readout, sparse recurrent) and state RAM (int16 Vmem, Isyn, Isyn2 per hidden
neuron, Vmem + Isyn per output neuron).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtsnn.snn.graph import GraphModel
from rtsnn.snn.params import Model
from rtsnn_xylo.drc import DrcError
from rtsnn_xylo.graph_map import map_graph
from rtsnn_xylo.int_kernels import IntNetwork
from rtsnn_xylo.quantize import map_model
from rtsnn_xylo.spec import XYLO2, XyloConfig
from rtsnn_xylo.ticks import spread_counts


def cycles_per_step(cfg: XyloConfig, p_in: float, p_hid: float) -> float:
    """Estimated core cycles for one step (module docstring)."""
    n_in, n_hid, n_out = cfg.n_in, cfg.n_hid, cfg.n_out
    fanout = float(np.count_nonzero(cfg.w_rec, axis=(1, 2)).mean()) if n_hid else 0.0
    return (n_in * (p_in * n_hid * 3.5 + 1) + n_hid * (p_hid * fanout * 7 + 3)
            + n_hid * p_hid * (1 + 8 * n_out) + n_hid * (19 + 3 * p_hid) + 12 * n_out)


def activity(cfg: XyloConfig, probe: np.ndarray) -> tuple[float, float]:
    """Fractions of (input channel, hidden neuron) chip steps with at least one event on the tick
    counts ``probe`` (spread over ``cfg.steps_per_tick`` steps per tick)."""
    k = cfg.steps_per_tick
    steps = spread_counts(np.minimum(probe, 15 * k), k)
    rec = IntNetwork(cfg).run(steps)
    return float(np.mean(steps > 0)), float(np.mean(rec["spikes"] > 0))


def _graph_hidden(gm: GraphModel) -> int:
    """Spiking neurons of a graph that are not its readout neurons (for a report that does not map)."""
    g = gm.graph
    ro = g.predecessors(g.output_name)
    return sum(v.output_size() for k, v in g.nodes.items() if v.spiking and k not in ro)


def xylo_report(model: Model | GraphModel, clock_hz: float = XYLO2.clock_hz, margin: float = 0.2,
                probe_rate_hz: float = 20.0, probe_s: float = 1.0, seed: int = 0, **map_kw: Any) -> dict[str, Any]:
    """The fit report of a single-layer :class:`Model` or a :class:`GraphModel` as a
    JSON-serialisable dict (``fits`` False with every DRC violation listed when the model does
    not map)."""
    if not (np.isfinite(clock_hz) and clock_hz > 0):
        raise ValueError(f"clock_hz must be > 0, got {clock_hz!r}")
    is_graph = isinstance(model, GraphModel)
    dt_s = model.dt_s
    n_hidden = _graph_hidden(model) if is_graph else model.n_rec
    out: dict[str, Any] = {"backend": "xylo", "chip": XYLO2.name, "dt_s": dt_s, "clock_hz": clock_hz,
                           "neurons": {"inputs": model.n_in, "hidden": n_hidden, "outputs": model.n_out,
                                       "limits": [XYLO2.n_in_max, XYLO2.n_hid_max, XYLO2.n_out_max]}}
    try:
        cfg, rep = map_graph(model, **map_kw) if is_graph else map_model(model, **map_kw)
    except DrcError as err:
        out.update(fits=False, violations=[str(v) for v in err.report.violations], warnings=err.report.warnings,
                   real_time=None)
        return out
    syn = {"input": int(np.count_nonzero(cfg.w_in)), "recurrent": int(np.count_nonzero(cfg.w_rec)),
           "output": int(np.count_nonzero(cfg.w_out))}
    if not is_graph:
        w = model.weights
        syn["rounded_to_zero"] = int(np.count_nonzero(w.w_in) + np.count_nonzero(w.w_rec) + np.count_nonzero(w.w_out)
                                     - syn["input"] - syn["recurrent"] - syn["output"])
    fan = np.count_nonzero(cfg.w_rec, axis=(1, 2))
    weight_bytes = cfg.n_in * cfg.n_hid * 2 + syn["recurrent"] + cfg.n_hid * cfg.n_out
    state_bytes = 2 * (3 * cfg.n_hid + 2 * cfg.n_out)
    rng = np.random.default_rng(seed)
    n_probe = max(1, int(round(probe_s / dt_s)))
    probe = rng.poisson(probe_rate_hz * dt_s, (n_probe, cfg.n_in)).astype(np.int32)
    p_in, p_hid = activity(cfg, probe)
    k = cfg.steps_per_tick
    worst = k * cycles_per_step(cfg, 1.0, 1.0)
    typical = k * cycles_per_step(cfg, p_in, p_hid)
    budget = clock_hz * dt_s
    out.update(
        fits=True, violations=[], warnings=rep.warnings, synapses=syn,
        fan_out={"max": int(fan.max()) if fan.size else 0, "mean": float(fan.mean()) if fan.size else 0.0,
                 "limit": XYLO2.fan_out_max},
        memory_bytes={"weights": int(weight_bytes), "state": int(state_bytes)},
        quantization={k: cfg.notes[k] for k in ("quantization", "readout", "weight_rel_error", "tau_mem_s_chip",
                                                 "tau_out_s_chip", "tau", "extra_latency_steps") if k in cfg.notes},
        cycles_per_tick={"worst_case": worst, "typical": typical, "probe": {"rate_hz": probe_rate_hz,
                         "input_active": p_in, "hidden_active": p_hid},
                         "budget": budget, "margin": margin, "steps_per_tick": k},
        real_time={"worst_case": bool(worst * (1 + margin) <= budget),
                   "typical": bool(typical * (1 + margin) <= budget),
                   "min_clock_hz_worst_case": worst * (1 + margin) / dt_s},
        cost_model="Rockpool syns61201 power_cycles_model (SynSense), restated in rtsnn_xylo/report.py")
    return out
