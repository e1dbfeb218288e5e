"""Map a model graph (:class:`rtsnn.snn.graph.GraphModel`) onto Xylo, or refuse it naming the limit.

What Xylo holds (XyloAudio 2: :class:`~rtsnn_xylo.spec.XyloLimits`): 16 input channels -> one
pool of up to 1000 current-based hidden neurons (two synapses each, all-to-all recurrent
weights) -> up to 8 output neurons that listen to hidden spikes only. The graphs accepted::

    Input -> Linear -> H (LIF | CubaLIF | ALIF with beta_adapt = 0)      [H -> Linear -> H recurrent]
          ... more hidden populations H2, ... fed by Input and / or other hidden populations
    readout, one of:
      H -> LI -> Linear | Affine -> Output       trace of hidden spikes, one time constant, then weights
      H -> Linear -> LI -> Output                 weights, then one trace per output (its own tau)
      H -> Linear -> LIF | CubaLIF -> Output      spiking readout neurons (y = output spikes of the tick)

(an edge may also join two nodes of equal size directly: identity weights). Per neuron:

* ``CubaLIF`` is Xylo's native neuron: ``i[t] = a_s i[t-1] + I[t]``, ``v[t] = a_m v[t-1] + gain i[t]``
  is the chip's ``Isyn = d_s (Isyn + I_chip)``, ``V = d_m V + Isyn`` with ``d = 1 - 2^-dash``,
  ``Isyn = s gain i`` and ``I_chip = s gain I / d_s``: the weights into a CubaLIF neuron are
  multiplied by ``s gain / d_s`` (``s`` the neuron's integer scale, :func:`quantise_hidden`).
* ``LIF`` injects its input into ``v``; on the chip it passes a fast synapse (``dash_syn = 1``,
  or the ``tau_syn_s`` option) that hands a weight's whole charge to ``V`` within a few steps,
  exactly as :func:`rtsnn_xylo.quantize.map_model` does for the single-layer model.
* time constants -> per-neuron bit-shift decays: ``dash = round(-log2(1 - alpha))`` with
  ``alpha`` the graph's per-tick decay (its ``integration`` rule; per chip step
  ``alpha^(1/K)`` with ``steps_per_tick = K``). The tau the chip realises (``1 - 2^-dash`` read back
  through the same rule) and the largest relative error per node and field are reported in
  ``config.notes['tau']``; a tau whose dash falls outside 1..15 is refused.
* ``v_th`` per neuron -> integer thresholds; ``gain`` folds into the incoming weights;
  ``v_leak`` -> the chip's per-neuron bias ``(1 - d_m) v_leak s`` (same fixed point); an Affine's
  bias into a LIF neuron -> bias ``gain b s / K``.

Several hidden populations become one pool with a block-structured recurrent matrix. An edge
that the graph evaluates within the tick (feed-forward, population A -> B) becomes a recurrent
synapse, which on the chip carries the *previous* step's spikes: every feed-forward hidden
layer adds one chip step of latency (the mapping warns and records ``extra_latency_steps``:
the longest such chain to the readout). Recurrent (back) edges of the graph keep their timing.

Refused (every violation at once, each naming the node, the limit, the value and the limit's
range; :class:`~rtsnn_xylo.drc.DrcError`): more than 16 inputs / 1000 hidden / 8 outputs,
node kinds the chip has no counterpart for (``Delay``, ``Conv2d``, pools, ``Flatten``, ``IF``:
its membrane never leaks, the chip's always does), ALIF adaptation and refractory periods
(dropped with a warning when ``strict=False``), reset to zero (the chip subtracts the threshold),
a leak potential or an Affine bias feeding a synaptic current or a trace, a trace before a
projection with several time constants, readout neurons fed by the input, more than 64
recurrent synapses from one hidden neuron, and any node off these paths.

Differences that stay (as for the single-layer mapping): hidden neurons may fire up to 31
spikes per step (rtsnn: 1); ``reset_at='next'`` is applied in the step of the spike on the
chip; hidden -> output spikes arrive one step late; quantisation rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtsnn.snn.graph import GraphModel
from rtsnn.snn.nodes import LI, Node
from rtsnn_xylo.drc import DrcError, DrcReport, check
from rtsnn_xylo.quantize import (check_map_options, neuron_scale, quantise_hidden, quantise_threshold,
                                 quantise_trace_readout, quantise_weights, weight_rel_error)
from rtsnn_xylo.spec import XYLO2, XyloConfig, XyloLimits
from rtsnn_xylo.ticks import check_steps_per_tick

NEURONS = ("LIF", "CubaLIF", "ALIF")
PROJECTIONS = ("Linear", "Affine")
WHY_NOT = {
    "Delay": "Xylo has no synaptic delays (a spike reaches its targets in the next step)",
    "Conv2d": "Xylo holds dense input -> hidden -> readout weights, no convolution",
    "SumPool2d": "Xylo holds dense input -> hidden -> readout weights, no pooling",
    "AvgPool2d": "Xylo holds dense input -> hidden -> readout weights, no pooling",
    "Flatten": "Xylo holds flat vectors only (flatten the graph's input instead)",
    "IF": "Xylo's membrane always leaks (dash_mem 1..15); IF has no leak (use LIF with a long tau_mem_s)",
}
FIT_KINDS = "Input, Linear, Affine, LIF, CubaLIF, ALIF (beta_adapt = 0), LI, Output"


@dataclass
class Block:
    """Weights ``w`` (n_src, n_tgt) from ``src`` into a target, through projection ``via``."""

    src: str
    w: np.ndarray
    bias: np.ndarray | None
    via: str | None
    recurrent: bool


@dataclass
class GraphPlan:
    """What :func:`analyse` finds: hidden populations (in evaluation order) and the readout."""

    hidden: list[str]
    first: dict[str, int]
    blocks: dict[str, list[Block]]
    readout_kind: str  # 'trace' | 'spikes'
    readout_node: str  # the LI or the readout neurons
    readout_proj: str | None  # projection after the LI (LI -> Affine -> Output)
    depth: dict[str, int] = field(default_factory=dict)  # feed-forward hidden edges from the input
    used: set[str] = field(default_factory=set)
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def n_hid(self) -> int:
        return sum(self.sizes.values())


def _nq(name: str) -> str:
    return f"node {name!r}"


def nodes_refused(g: Any) -> set[str]:
    """Nodes refused for their kind alone (reported once, not again by their neighbours)."""
    return {n for n, v in g.nodes.items() if v.kind in WHY_NOT}


def _blocks(gm: GraphModel, tgt: str, sources: set[str], rep: DrcReport, used: set[str],
            what: str) -> list[Block]:
    """Incoming weight blocks of ``tgt``: each predecessor is a source (identity) or a projection
    whose single predecessor is a source; anything else is a violation."""
    g = gm.graph
    out: list[Block] = []
    for p in g.predecessors(tgt):
        pn = g.nodes[p]
        if p in sources:
            out.append(Block(p, np.eye(pn.output_size()), None, None, g.is_recurrent(p, tgt)))
            continue
        if pn.kind in WHY_NOT:
            used.add(p)  # refused by its kind already
            continue
        if pn.kind in PROJECTIONS:
            used.add(p)
            qs = g.predecessors(p)
            if len(qs) == 1 and qs[0] in nodes_refused(g):
                continue
            if len(qs) != 1 or qs[0] not in sources:
                got = ", ".join(f"{q!r} ({g.nodes[q].kind})" for q in qs)
                rep.add(f"{_nq(p)}: inputs", f"one of {what}",
                        f"projection into {tgt!r} reads {got}")
                continue
            q = qs[0]
            bias = np.asarray(pn.bias, np.float64) if pn.kind == "Affine" else None  # type: ignore[attr-defined]
            if bias is not None and not np.any(bias):
                bias = None
            out.append(Block(q, np.asarray(pn.weight, np.float64), bias, p,  # type: ignore[attr-defined]
                             g.is_recurrent(q, p) or g.is_recurrent(p, tgt)))
            continue
        rep.add(f"{_nq(p)}: kind {pn.kind}", f"{what}, or a Linear / Affine from them",
                f"feeds {tgt!r}, which Xylo connects through weights only")
    return out


def analyse(gm: GraphModel, rep: DrcReport, strict: bool = True, limits: XyloLimits = XYLO2) -> GraphPlan | None:
    """The graph's structure as Xylo sees it; every structural violation goes into ``rep``
    (None when the readout cannot be found)."""
    g = gm.graph
    nodes = g.nodes
    for name in g.order():
        kind = nodes[name].kind
        if kind in WHY_NOT:
            rep.add(f"{_nq(name)}: kind {kind}", FIT_KINDS, WHY_NOT[kind])
        elif kind == "ALIF" and np.any(nodes[name].beta_adapt > 0):  # type: ignore[attr-defined]
            b = nodes[name].beta_adapt  # type: ignore[attr-defined]
            allowed = "0 (Xylo has no threshold adaptation)"
            detail = f"{int(np.count_nonzero(b > 0))} neuron(s) adapt, max {float(b.max()):g}"
            if strict:
                rep.add(f"{_nq(name)}: beta_adapt (ALIF)", allowed, detail)
            else:
                rep.warnings.append(f"{_nq(name)}: beta_adapt (ALIF): {detail}, dropped (strict=False); "
                                    f"allowed: {allowed}")
    out_preds = g.predecessors(g.output_name)
    if len(out_preds) != 1:
        rep.add(f"{_nq(g.output_name)}: inputs", "one readout node (LI, Linear / Affine after an LI, or "
                "LIF / CubaLIF readout neurons)", f"got {len(out_preds)}: {out_preds}")
        return None
    p = out_preds[0]
    readout_proj = None
    if nodes[p].kind in PROJECTIONS:
        qs = g.predecessors(p)
        if len(qs) != 1 or nodes[qs[0]].kind != "LI":
            rep.add(f"{_nq(p)}: readout", "an LI trace before the output's projection (H -> LI -> Affine -> "
                    "Output): Xylo reads its output neurons' synaptic current or membrane",
                    f"reads {[f'{q} ({nodes[q].kind})' for q in qs]}")
            return None
        readout_proj, p = p, qs[0]
    kind_p = nodes[p].kind
    if kind_p == "LI":
        readout_kind = "trace"
    elif kind_p in ("LIF", "CubaLIF"):
        readout_kind = "spikes"
    else:
        rep.add(f"{_nq(p)}: readout (kind {kind_p})", "LI, Linear / Affine after an LI, or LIF / CubaLIF "
                "readout neurons", "Xylo's output neurons cannot hold it")
        return None
    if readout_kind == "spikes" and g.successors(p) != [g.output_name]:
        others = [s for s in g.successors(p) if s != g.output_name]
        rep.add(f"{_nq(p)}: outgoing edges", "the Output only (Xylo's output neurons drive no synapses)",
                f"also feeds {others}")
    hidden = [n for n in g.order() if nodes[n].kind in NEURONS and n != p]
    if readout_kind == "trace":
        for s in g.successors(p):
            if s != (readout_proj or g.output_name):
                rep.add(f"{_nq(p)}: outgoing edges", "the readout only", f"also feeds {s!r}")
    used = {g.input_name, g.output_name, p} | set(hidden) | ({readout_proj} if readout_proj else set())
    srcs = {g.input_name} | set(hidden)
    blocks = {h: _blocks(gm, h, srcs, rep, used, "the Input or hidden neurons") for h in hidden}
    blocks[p] = _blocks(gm, p, set(hidden), rep, used, "hidden neurons (Xylo's output neurons listen "
                        "to hidden spikes only)")
    sizes = {h: nodes[h].output_size() for h in hidden}
    first, k = {}, 0
    for h in hidden:
        first[h], k = k, k + sizes[h]
    # feed-forward hidden -> hidden edges: one chip step each
    depth: dict[str, int] = {}
    for h in hidden:
        depth[h] = max([depth[b.src] + 1 for b in blocks[h] if b.src in depth and not b.recurrent] or [0])
    refused = nodes_refused(g)
    for name in g.order():
        near_refused = refused & set(g.predecessors(name) + g.successors(name))
        if name not in used and nodes[name].kind not in WHY_NOT and not near_refused:
            rep.add(f"{_nq(name)}: place", "on an input -> hidden -> readout path",
                    f"a {nodes[name].kind} node Xylo has no place for")
    return GraphPlan(hidden, first, blocks, readout_kind, p, readout_proj, depth, used, sizes)


def _chip_dash(gm: GraphModel, node: Node, fld: str, tau: np.ndarray, k: int, rep: DrcReport,
               limits: XyloLimits, tau_err: dict[str, Any]) -> np.ndarray:
    """Per-neuron dash of time constants ``tau`` (s) at the chip step ``dt_s / k``; records the
    tau the chip realises in ``tau_err`` and a violation for a dash outside 1..15."""
    dt = gm.dt_s
    tau = np.asarray(tau, np.float64)
    alpha = gm.graph.decay(tau) if not (gm.graph.integration == "euler" and np.any(tau < dt)) else None
    lo, hi = max(limits.dash_min, 1), limits.dash_max
    if alpha is None or np.any(alpha <= 0):
        j = int(np.argmin(tau))
        rep.add(f"{_nq(node.name)}: {fld}", f">= dt_s = {dt:g} s under 'euler' integration",
                f"neuron {j} has {tau[j]:g} s")
        return np.full(tau.shape, lo, np.int64)
    step = alpha ** (1.0 / k)
    with np.errstate(divide="ignore"):
        raw = -np.log2(np.maximum(1.0 - step, 1e-300))
    dash = np.rint(raw).astype(np.int64)
    bad = (dash < lo) | (dash > hi)
    if np.any(bad):
        j = int(np.flatnonzero(bad)[np.argmax(np.abs(raw[bad] - (lo + hi) / 2))])
        tau_lo, tau_hi = _tau_of(np.array([lo, hi]), gm, k)
        rep.add(f"{_nq(node.name)}: {fld}", f"{tau_lo:.3g}..{tau_hi:.3g} s at dt_s = {dt:g} s / {k} step(s) "
                f"(dash {lo}..{hi})", f"{int(bad.sum())} neuron(s) out of range, worst neuron {j} with "
                f"{tau[j]:g} s (dash {int(dash[j])})")
    dash = np.clip(dash, lo, hi)
    chip = _tau_of(dash, gm, k)
    rel = np.abs(chip - tau) / tau
    tau_err[f"{node.name}.{fld}"] = {"min_s": float(tau.min()), "max_s": float(tau.max()),
                                     "chip_min_s": float(chip.min()), "chip_max_s": float(chip.max()),
                                     "max_rel_error": float(rel.max())}
    return dash


def _tau_of(dash: np.ndarray, gm: GraphModel, k: int) -> np.ndarray:
    """The tau (s) whose per-tick decay under the graph's rule is the chip's ``(1 - 2^-dash)^k``."""
    alpha = (1.0 - 2.0 ** -np.asarray(dash, np.float64)) ** k
    dt = gm.dt_s
    if gm.graph.integration == "exact":
        return -dt / np.log(alpha)
    return dt / (1.0 - alpha)


def _neuron_checks(gm: GraphModel, node: Node, rep: DrcReport, strict: bool) -> None:
    dt = gm.dt_s
    ref = np.rint(node.refractory_s / dt)  # type: ignore[attr-defined]
    if np.any(ref > 0):
        allowed = "0 (Xylo has no refractory period)"
        ref_max = float(np.max(node.refractory_s))  # type: ignore[attr-defined]
        detail = f"{int(np.count_nonzero(ref > 0))} neuron(s), max {ref_max:g} s"
        if strict:
            rep.add(f"{_nq(node.name)}: refractory_s", allowed, detail)
        else:
            rep.warnings.append(f"{_nq(node.name)}: refractory_s: {detail}, dropped (strict=False); allowed: {allowed}")
    reset = node.reset  # type: ignore[attr-defined]
    if np.any(reset != 0):
        rep.add(f"{_nq(node.name)}: reset", "'subtract' (Xylo subtracts the threshold on a spike)",
                f"{int(np.count_nonzero(reset != 0))} neuron(s) reset to zero (v_reset)")


def map_graph(gm: GraphModel, quantization: str = "global", threshold_max: int = 4095,
              tau_syn_s: float | None = None, readout: str = "isyn", strict: bool = True,
              limits: XyloLimits = XYLO2, steps_per_tick: int = 1) -> tuple[XyloConfig, DrcReport]:
    """Quantise the graph ``gm`` for Xylo (module docstring). Returns ``(config, report)``
    (report: warnings only); raises :class:`DrcError` listing every violation, or
    ``ValueError`` for a bad option. ``readout`` (``'isyn' | 'vmem'``) applies to trace readouts;
    spiking readout neurons are read as their output spikes (``config.notes['readout'] = 'spikes'``)."""
    if not isinstance(gm, GraphModel):
        raise ValueError(f"map_graph needs a rtsnn GraphModel, got {type(gm).__name__}")
    check_map_options(quantization, readout, threshold_max, limits)
    k = check_steps_per_tick(steps_per_tick)
    g = gm.graph
    nodes = g.nodes
    rep = DrcReport()
    plan = analyse(gm, rep, strict, limits)
    if plan is None:
        raise DrcError(rep, limits)
    n_in, n_hid = g.n_in, plan.n_hid
    n_out = g.n_out
    # sizes, naming the nodes
    if not 1 <= n_in <= limits.n_in_max:
        rep.add(f"{_nq(g.input_name)}: input channels", f"1..{limits.n_in_max}", f"got {n_in}")
    if not 1 <= n_hid <= limits.n_hid_max and (n_hid or not nodes_refused(g)):
        names = ", ".join(f"{h!r} ({plan.sizes[h]})" for h in plan.hidden) or "none"
        rep.add(f"node(s) {names}: hidden neurons", f"1..{limits.n_hid_max}", f"got {n_hid}")
    if not 1 <= n_out <= limits.n_out_max:
        rep.add(f"{_nq(g.output_name)}: output neurons", f"1..{limits.n_out_max}", f"got {n_out}")
    if n_hid > 4 * limits.n_hid_max or n_in > 64 * limits.n_in_max:
        raise DrcError(rep, limits)  # far too large: do not build its matrices to find more

    # ---- hidden pool: per-neuron float parameters (units of each neuron's v)
    tau_err: dict[str, Any] = {}
    dash_syn_lif = 1 if tau_syn_s is None else None
    w_in = np.zeros((n_in, n_hid))
    w_rec = np.zeros((n_hid, n_hid))
    v_th, bias_f = np.zeros(n_hid), np.zeros(n_hid)
    dash_mem, dash_syn = np.zeros(n_hid, np.int64), np.zeros(n_hid, np.int64)
    for h in plan.hidden:
        node = nodes[h]
        a, n = plan.first[h], plan.sizes[h]
        cols = slice(a, a + n)
        _neuron_checks(gm, node, rep, strict)
        dm, ds, factor, leak = _neuron_params(gm, node, k, rep, limits, tau_err, tau_syn_s, dash_syn_lif)
        dash_mem[cols], dash_syn[cols] = dm, ds
        v_th[cols] = node.v_th  # type: ignore[attr-defined]
        bias_f[cols] = leak
        for b in plan.blocks[h]:
            w = b.w * factor[None, :]
            if b.src == g.input_name:
                w_in[:, cols] += w
            else:
                r = slice(plan.first[b.src], plan.first[b.src] + plan.sizes[b.src])
                w_rec[r, cols] += w
            bias_f[cols] += _bias_term(gm, node, b, k, rep)
    # ---- readout
    ro = nodes[plan.readout_node]
    w_out_f = np.zeros((n_hid, ro.output_size()))
    for b in plan.blocks[plan.readout_node]:
        r = slice(plan.first[b.src], plan.first[b.src] + plan.sizes[b.src])
        w_out_f[r] += b.w
    b_out = np.zeros(n_out)
    extra: dict[str, Any] = {}
    if plan.readout_kind == "trace":
        li: LI = ro  # type: ignore[assignment]
        for b in plan.blocks[plan.readout_node]:
            if b.bias is not None:
                rep.add(f"{_nq(b.via)}: bias", "0 (Xylo's output synapse has no bias)",
                        f"max |bias| {float(np.abs(b.bias).max()):g} into the trace {li.name!r}")
        if np.any(li.v_leak != 0):
            rep.add(f"{_nq(li.name)}: v_leak", "0 (Xylo's output synapse decays to 0)",
                    f"max |v_leak| {float(np.abs(li.v_leak).max()):g}")
        d_li = _chip_dash(gm, li, "tau_s", li.tau_s, k, rep, limits, tau_err)
        w_out_f = w_out_f * li.gain[None, :]
        if plan.readout_proj is not None:
            proj = nodes[plan.readout_proj]
            if np.unique(d_li).size > 1:
                rep.add(f"{_nq(li.name)}: tau_s", "one time constant for a trace before a projection "
                        "(Xylo integrates the readout per output neuron)",
                        f"{float(li.tau_s.min()):g}..{float(li.tau_s.max()):g} s (dash {int(d_li.min())}.."
                        f"{int(d_li.max())})")
            w_out_f = w_out_f @ np.asarray(proj.weight, np.float64)  # type: ignore[attr-defined]
            if proj.kind == "Affine":
                b_out = np.asarray(proj.bias, np.float64).copy()  # type: ignore[attr-defined]
            dash_out = np.full(n_out, int(d_li[0]))
        else:
            dash_out = d_li
        extra["set_readout"] = bool(plan.readout_proj is not None and nodes[plan.readout_proj].kind == "Affine"
                                    and len(plan.hidden) == 1
                                    and len(plan.blocks[li.name]) == 1 and plan.blocks[li.name][0].via is None
                                    and np.all(li.gain == 1))
    else:
        _neuron_checks(gm, ro, rep, strict)
        dm_o, ds_o, factor_o, leak_o = _neuron_params(gm, ro, k, rep, limits, tau_err, tau_syn_s, dash_syn_lif)
        bias_o = leak_o.copy()
        for b in plan.blocks[plan.readout_node]:
            bias_o += _bias_term(gm, ro, b, k, rep)
        w_out_f = w_out_f * factor_o[None, :]
        extra["set_readout"] = False
    if not rep.ok:
        raise DrcError(rep, limits)

    w_in_q, w_rec_q, ws_in, ws_rec, threshold, scale = quantise_hidden(w_in, w_rec, v_th, quantization,
                                                                       threshold_max, limits)
    bias = np.rint(bias_f * scale).astype(np.int64)
    if plan.readout_kind == "trace":
        w_out_q, out_scale, dash_syn_out, dash_mem_out = quantise_trace_readout(
            w_out_f, dash_out, readout, quantization, int(np.max(dash_mem)), limits)
        threshold_out = np.full(n_out, limits.threshold_max)
        bias_out = np.zeros(n_out, np.int64)
        ws_out = 0
        readout_name = readout
    else:
        v_th_out = np.asarray(ro.v_th, np.float64)  # type: ignore[attr-defined]
        w_out_q, ws_out, threshold_out, s_out = _quantise_spiking_readout(w_out_f, v_th_out, quantization,
                                                                         threshold_max, limits)
        bias_out = np.rint(bias_o * s_out).astype(np.int64)
        dash_syn_out, dash_mem_out = ds_o, dm_o
        out_scale = np.ones(n_out)
        readout_name = "spikes"
    has_bias = bool(np.any(bias) or np.any(bias_out))
    z3 = np.zeros((n_in, n_hid, 2), np.int64)
    z3[:, :, 0] = w_in_q
    r3 = np.zeros((n_hid, n_hid, 2), np.int64)
    r3[:, :, 0] = w_rec_q
    depth = max([plan.depth[b.src] for b in plan.blocks[plan.readout_node]] or [0])
    chains = [f"{b.src!r} -> {h!r}" for h in plan.hidden for b in plan.blocks[h]
              if b.src in plan.depth and not b.recurrent]
    if chains:
        rep.warnings.append(f"hidden populations {', '.join(plan.hidden)} run as one recurrent pool: the "
                            f"feed-forward edge(s) {', '.join(chains)} carry the previous chip step's spikes, "
                            f"so the readout sees the graph's last hidden layer {depth} chip step(s) late "
                            f"(beside the readout's own step)")
    err = weight_rel_error(w_in, w_rec, w_in_q << ws_in, w_rec_q << ws_rec, scale)
    cfg = XyloConfig(
        w_in=z3, w_rec=r3, w_out=w_out_q, threshold=threshold, threshold_out=threshold_out,
        dash_mem=dash_mem, dash_syn=np.repeat(dash_syn[:, None], 2, axis=1), dash_mem_out=dash_mem_out,
        dash_syn_out=dash_syn_out, weight_shift_in=ws_in, weight_shift_rec=ws_rec, weight_shift_out=ws_out,
        has_bias=has_bias, bias=bias, bias_out=bias_out, dt_s=gm.dt_s / k, out_scale=out_scale, b_out=b_out,
        steps_per_tick=k,
        notes={"quantization": quantization, "readout": readout_name, "threshold_max": int(threshold_max),
               "hidden_scale_min": float(scale.min()), "hidden_scale_max": float(scale.max()),
               "weight_rel_error": err, "tau": tau_err, "extra_latency_steps": int(depth),
               "populations": [{"node": h, "kind": nodes[h].kind, "first": plan.first[h], "n": plan.sizes[h]}
                               for h in plan.hidden],
               "readout_node": plan.readout_node, "readout_projection": plan.readout_proj, **extra})
    # fan-out, named by population (the generic DRC line is replaced by these)
    fan = np.count_nonzero(r3, axis=(1, 2))
    for h in plan.hidden:
        a, n = plan.first[h], plan.sizes[h]
        f = fan[a:a + n]
        if np.any(f > limits.fan_out_max):
            j = int(np.argmax(f))
            rep.add(f"{_nq(h)}: recurrent fan-out (synapses per hidden neuron)", f"0..{limits.fan_out_max}",
                    f"{int(np.count_nonzero(f > limits.fan_out_max))} neuron(s) over the limit, worst neuron {j} "
                    f"with {int(f[j])}")
    drc = check(cfg, limits)
    drc.violations = [v for v in drc.violations if not v.parameter.startswith("w_rec fan-out")]
    rep.extend(drc)
    if not rep.ok:
        raise DrcError(rep, limits)
    return cfg, rep


def _neuron_params(gm: GraphModel, node: Node, k: int, rep: DrcReport, limits: XyloLimits,
                   tau_err: dict[str, Any], tau_syn_s: float | None, dash_syn_lif: int | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-neuron ``(dash_mem, dash_syn, weight factor, bias per chip step in v units)``."""
    n = node.output_size()
    dm = _chip_dash(gm, node, "tau_mem_s", node.tau_mem_s, k, rep, limits, tau_err)  # type: ignore[attr-defined]
    gain = np.asarray(node.gain, np.float64)  # type: ignore[attr-defined]
    if node.kind == "CubaLIF":
        ds = _chip_dash(gm, node, "tau_syn_s", node.tau_syn_s, k, rep, limits, tau_err)  # type: ignore[attr-defined]
        factor = gain / (1.0 - 2.0 ** -ds.astype(np.float64))
    else:
        if dash_syn_lif is not None:
            ds = np.full(n, dash_syn_lif, np.int64)
        else:
            ds = _chip_dash(gm, node, "tau_syn_s (option)", np.full(n, float(tau_syn_s)), k, rep, limits, tau_err)
        factor = gain.copy()
    leak = (1.0 - 2.0 ** -dm.astype(np.float64)) * np.asarray(node.v_leak, np.float64)  # type: ignore[attr-defined]
    return dm, ds, factor, leak


def _bias_term(gm: GraphModel, node: Node, b: Block, k: int, rep: DrcReport) -> np.ndarray:
    """An Affine's bias into ``node`` as a chip bias (LIF: straight into v), per chip step."""
    n = node.output_size()
    if b.bias is None:
        return np.zeros(n)
    if node.kind == "CubaLIF":
        rep.add(f"{_nq(b.via)}: bias", "0 into a CubaLIF neuron (Xylo adds its bias to Vmem, not to Isyn)",
                f"max |bias| {float(np.abs(b.bias).max()):g} into {node.name!r}")
        return np.zeros(n)
    return np.asarray(node.gain, np.float64) * b.bias / k  # type: ignore[attr-defined]


def _quantise_spiking_readout(w_out: np.ndarray, v_th: np.ndarray, quantization: str, threshold_max: int,
                              limits: XyloLimits) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Readout neurons: int8 weights with one shift, integer thresholds; per-output scale
    ``s`` (``'global'``: one) as large as the threshold cap and the weight range allow."""
    v_th = np.asarray(v_th, np.float64)
    s = neuron_scale(np.abs(w_out).max(axis=0, initial=0.0), v_th, quantization, threshold_max, limits)
    w_q, ws = quantise_weights(w_out, s)
    return w_q, ws, quantise_threshold(v_th, s), s
