"""What the offline trainers trained, as a model graph (:mod:`rtsnn.snn.graph`), nothing dropped.

BPTT (:mod:`rtsnn.learn.offline.bptt_engine`): :func:`bptt_to_graph` writes a parameter dict
into a copy of the layered graph that was trained (:mod:`rtsnn.learn.offline.bptt_graph`;
its node names, shown here as :func:`~rtsnn.learn.offline.bptt_graph.layered_graph` names
them), one for one::

    input ──> w0 (Linear) ──> layer0 (LIF | ALIF) ──> w1 ──> layer1 ... ──> layer{L-1}
                              layer{l} ──> r{l} (Linear) ──> layer{l}       (recurrent layers)
    layer{L-1} ──> trace (LI, kappa) [──> trace2 (LI, kappa2)] ──> w_out (Affine) ──> output
    layer{L-1} ──> output                                                (no readout: n_out None)

* per-neuron ``alpha{l}`` -> ``tau_mem_s = -dt_s / ln(alpha)`` (integration ``'exact'``, so
  the graph's decay ``exp(-dt_s/tau)`` is the trained ``alpha`` again; the time constant is
  nudged by float64 ulps where needed so that both round to the same float32), per-neuron
  ``vth{l}`` -> ``v_th``; ALIF ``tau_adapt_s``/``beta_adapt``, ``refractory_s``, subtractive
  reset at the next tick, unit gain, no leak potential: the engine's
  ``v[t] = alpha v[t-1] + I[t] - v_th z[t-1]``;
* readout ``r[t] = kappa r[t-1] + z[t]`` -> ``LI(tau_s = -dt_s/ln kappa, gain 1)``; the
  double exponential's ``q[t] = kappa2 q[t-1] + r[t]`` -> a second ``LI``; then
  ``Affine(w_out * out_scale, b_out * out_scale + out_offset)``;
* soft input delays (``max_delay_steps = D``): for each ``d`` in ``0..D`` a ``Delay(steps=d)``
  on the input (none for ``d = 0``) feeding ``Linear(w0 * p[..., d])`` into layer 0, with
  ``p = softmax(delay_logits)``: exactly the trained ``I[t] = sum_d x[t-d] @ (w0 * p_d)``.

Numerics: the graph runs in float32 like the engine at ``dtype=float32``, but sums in a
different order and precision in three places: the engine adds the recurrent input, the
adaptive threshold ``v_th + beta a`` and the readout decays in float64 (``rho``, ``kappa`` are
Python floats there) before rounding to float32, and it sums the delayed currents per delay
before adding them up; the graph does all of it in float32, edge by edge. Spikes agree unless
a membrane lands within float32 rounding of its threshold; outputs agree to float32 rounding.

FP (:mod:`rtsnn.learn.offline.fp`): :func:`fp_to_graph` maps the continuous-time SRM network
(synaptic rate ``alpha``, membrane rate ``beta`` per time unit, threshold ``theta``) onto
``CubaLIF`` layers at a tick ``dt_s``, one FP time unit being ``unit_s`` seconds. The
discretisation (``D = dt_s / unit_s`` time units per tick)::

    tau_syn_s = unit_s / alpha,  tau_mem_s = unit_s / beta      exact decays per tick:
    alpha_syn = exp(-alpha D),   alpha_mem = exp(-beta D)       (integration 'exact')
    gain      = h(D) = (exp(-alpha D) - exp(-beta D)) / (beta - alpha)   (D exp(-alpha D) if equal)

With this gain the graph's membrane after tick ``t`` is *exactly* FP's ``V((t+1) D)`` for input
spikes on the tick grid (CubaLIF: ``i[t] = alpha_syn i[t-1] + I[t]``,
``v[t] = alpha_mem v[t-1] + gain i[t]``; the response to a unit spike at tick 0 is
``gain (alpha_syn^(t+1) - alpha_mem^(t+1)) / (alpha_syn - alpha_mem) = h((t+1) D)``). What is
approximate, each by at most one tick:

* input spike times are rounded to the nearest tick (``|error| <= D/2``);
* the threshold is tested at tick ends only (a crossing is seen up to one tick late; a
  crossing that goes back below theta within one tick is missed);
* a spike reaches the next layer in the same tick, i.e. as a current jump at the tick's
  start (up to one tick early), and a recurrent spike at the next tick (up to one tick late);
* the reset subtracts theta at the tick end where the spike is seen (``reset_at='now'``), not
  at the exact crossing;
* FP's cap of spikes per neuron: a cap of 1 (the Yin-Yang setting, and FP's first-spike
  output) is exact, as a refractory period longer than the window; a larger hidden cap is not
  modelled (noted in the provenance).

Per-neuron parameters (``TrainedFP.neurons``: trained thresholds and time constants): neuron i
gets its own ``tau_syn_s = tau_syn_i unit_s``, ``tau_mem_s = tau_mem_i unit_s``, ``v_th = theta_i``
and gain ``h_i(D)`` with ``alpha_i = 1/tau_syn_i``, ``beta_i = 1/tau_mem_i`` (:func:`fp_layer_gains`),
the same equations neuron by neuron.

Readout (:func:`graph_first_spikes`): the first output spike at tick ``t`` stands for time
``(t+1) D``; the class is the output that fires first, ties within a tick broken by the larger
membrane potential at that tick; no output spike before ``t_max``: no class (-1), as FP.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rtsnn.snn.graph import Graph, GraphModel, model_from_graph
from rtsnn.snn.nodes import ALIF, LI, LIF, Affine, CubaLIF, Delay, GraphError, Input, Linear, Node, Output

# ---------------------------------------------------------------------------- helpers


def tau_from_decay(decay: Any, dt_s: float, key: str, default_tau_s: Any = None) -> np.ndarray:
    """Time constants (float64) whose per-tick decay ``exp(-dt_s / tau)`` rounds to the same
    float32 as ``decay`` (the engine's float32 cast of its parameter). ``decay`` 0 maps to a
    tiny tau (decay exactly 0), 1 to a huge one (decay exactly 1); where ``decay`` equals
    ``exp(-dt_s / default_tau_s)`` exactly, ``default_tau_s`` itself is used (one number, or one
    per element). ValueError naming
    ``key`` when a decay lies outside [0, 1] or is not finite."""
    a = np.atleast_1d(np.asarray(decay, np.float64))
    if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        bad = int(np.flatnonzero(~(np.isfinite(a) & (a >= 0) & (a <= 1)))[0])
        raise ValueError(f"params[{key!r}]: a per-tick decay must lie in [0, 1], got {a[bad]!r} at index {bad}")
    with np.errstate(divide="ignore"):
        tau = np.where((a > 0) & (a < 1), -dt_s / np.log(np.clip(a, 1e-300, 1 - 1e-16)), 0.0)
    tau[a == 0] = dt_s / 1000.0  # exp(-1000) is 0 in float64
    tau[a == 1] = 1e300  # exp(-dt/1e300) is 1 in float64
    if default_tau_s is not None:  # one number, or one per element of decay
        d = np.broadcast_to(np.asarray(default_tau_s, np.float64), a.shape)
        hit = a == np.array([math.exp(-dt_s / float(t)) for t in d.ravel()]).reshape(a.shape)
        tau[hit] = d[hit]
    want = a.astype(np.float32)
    for _ in range(200):  # exp(ln a) is within a few float64 ulps of a: a few nudges at most
        got = np.exp(-dt_s / tau).astype(np.float32)
        low, high = got < want, got > want
        if not (low.any() or high.any()):
            break
        tau = np.where(low, np.nextafter(tau, np.inf), np.where(high, np.nextafter(tau, 0.0), tau))
    return tau


def _param(params: dict[str, np.ndarray], key: str, shape: tuple[int, ...], why: str) -> np.ndarray:
    if key not in params:
        raise ValueError(f"params: missing {key!r} ({why})")
    arr = np.asarray(params[key], np.float64)
    if arr.shape != shape:
        raise ValueError(f"params[{key!r}]: must have shape {list(shape)} ({why}), got {list(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"params[{key!r}]: contains {int(np.count_nonzero(~np.isfinite(arr)))} NaN/inf value(s)")
    return arr


def _per_output(name: str, value: Any, n_out: int) -> np.ndarray:
    arr = np.asarray(value, np.float64)
    if arr.ndim == 0:
        arr = np.full(n_out, float(arr))
    if arr.shape != (n_out,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite number or {n_out} finite numbers (one per output), "
                         f"got {np.asarray(value).tolist()!r}")
    return arr


# ---------------------------------------------------------------------------- BPTT


def delay_probabilities(logits: np.ndarray) -> np.ndarray:
    """``softmax`` over the last axis (the engine's :func:`delay_probs`, float64)."""
    logits = np.asarray(logits, np.float64)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def bptt_to_graph(graph: Graph, params: dict[str, np.ndarray], options: Any = None, *, out_scale: Any = 1.0,
                  out_offset: Any = 0.0, provenance: dict | None = None, output_labels: list[str] | None = None,
                  output_units: list[str] | None = None) -> GraphModel:
    """The trained BPTT network: a copy of the layered ``graph`` that was trained
    (:mod:`rtsnn.learn.offline.bptt_graph`, same node names) with the trained ``params``
    written into it (layout and equations in the module docstring); ``options``
    (:class:`~rtsnn.learn.offline.bptt_graph.BpttOptions`) says whether there are input delays.
    The readout is rescaled as ``y = out_scale * (w_out^T q + b_out) + out_offset`` (e.g.
    z-scored targets back to units); without a readout ``out_scale``/``out_offset`` must keep
    their defaults. ValueError naming the parameter key when a parameter is missing, misshapen
    or not finite; GraphError naming the node when ``graph`` is not a graph BPTT trains."""
    from rtsnn.learn.offline.bptt_graph import BpttOptions, compile_graph

    options = BpttOptions() if options is None else options
    plan = compile_graph(graph, options)
    names = plan.names
    dt = float(plan.dt_s)
    layers = list(plan.layers)
    L = len(layers)
    n_in = plan.n_in
    src_nodes = graph.nodes
    inp, first, w0n = names["input"], names["layer"][0], names["w"][0]
    nodes: dict[str, Node] = {inp: Input(shape=src_nodes[inp].shape)}  # type: ignore[attr-defined]
    edges: list[tuple[str, str]] = []
    # layer 0's input: plain or through the delay lines
    D = int(plan.max_delay_steps)
    w0 = _param(params, "w0", (n_in, layers[0]), "layer 0's input weights (n_in, n_0)")
    if D > 0:
        logits = _param(params, "delay_logits", (n_in, layers[0], D + 1),
                        f"input delays 0..{D} steps (n_in, n_0, D+1)")
        p = delay_probabilities(logits)
        for d in range(D + 1):
            src = inp
            if d > 0:
                src = f"delay{d}"
                nodes[src] = Delay(steps=d, n=n_in)
                edges.append((inp, src))
            proj = f"{w0n}_d{d}"
            nodes[proj] = Linear(weight=w0 * p[..., d])  # the engine's float64 product, then float32
            edges += [(src, proj), (proj, first)]
    else:
        nodes[w0n] = Linear(weight=w0)
        edges += [(inp, w0n), (w0n, first)]
    n_prev = n_in
    for l, n in enumerate(layers):
        name = names["layer"][l]
        if l > 0:
            wn = names["w"][l]
            w = _param(params, f"w{l}", (n_prev, n), f"layer {l}'s input weights (n_{l - 1}, n_{l})")
            nodes[wn] = Linear(weight=w)
            edges += [(names["layer"][l - 1], wn), (wn, name)]
        alpha = _param(params, f"alpha{l}", (n,), f"layer {l}'s membrane decay per tick")
        vth = _param(params, f"vth{l}", (n,), f"layer {l}'s thresholds")
        if np.any(vth <= 0):
            raise ValueError(f"params['vth{l}']: thresholds must be > 0, got {float(vth.min())!r}")
        old = src_nodes[name]
        common: dict[str, Any] = dict(tau_mem_s=tau_from_decay(alpha, dt, f"alpha{l}", plan.tau_mem_s[l]), v_th=vth,
                                      refractory_s=old.refractory_s.copy(), reset=plan.reset,  # type: ignore[attr-defined]
                                      reset_at="next", n=n)
        if plan.model == "alif":
            # the graph's own time constant under 'exact' integration; else the one whose exact decay is rho
            tau_adapt = (old.tau_adapt_s.copy() if graph.integration == "exact"  # type: ignore[attr-defined]
                         else tau_from_decay(np.full(n, plan.rho), dt, "rho"))
            nodes[name] = ALIF(tau_adapt_s=tau_adapt, beta_adapt=old.beta_adapt.copy(), **common)  # type: ignore[attr-defined]
        else:
            nodes[name] = LIF(**common)
        rn = names["r"][l]
        if rn is not None:
            r = _param(params, f"r{l}", (n, n), f"layer {l}'s recurrent weights (n_{l}, n_{l})")
            nodes[rn] = Linear(weight=r)
            edges += [(name, rn), (rn, name)]  # after the feedforward edge: the engine's order
        n_prev = n
    last = names["layer"][L - 1]
    out = names["output"]
    if plan.n_out is not None:
        n_out = int(plan.n_out)
        scale = _per_output("out_scale", out_scale, n_out)
        offset = _per_output("out_offset", out_offset, n_out)
        kappa = _param(params, "kappa", (1,), "readout decay per tick") if "kappa" in params \
            else np.array([plan.kappa])
        tr = names["trace"]
        nodes[tr] = LI(tau_s=tau_from_decay(kappa, dt, "kappa", plan.tau_out_s)[0], gain=1.0, n=n_prev)
        edges.append((last, tr))
        top = tr
        if plan.kappa2 is not None:
            tr2 = names["trace2"]
            kappa2 = _param(params, "kappa2", (1,), "second readout stage's decay per tick")
            nodes[tr2] = LI(tau_s=tau_from_decay(kappa2, dt, "kappa2", plan.tau_out2_s)[0], gain=1.0, n=n_prev)
            edges.append((tr, tr2))
            top = tr2
        w_out = _param(params, "w_out", (n_prev, n_out), "readout weights (n_L, n_out)")
        b_out = _param(params, "b_out", (n_out,), "readout bias")
        wo = names["w_out"]
        nodes[wo] = Affine(weight=w_out * scale[None, :], bias=b_out * scale + offset)
        nodes[out] = Output(shape=(n_out,))
        edges += [(top, wo), (wo, out)]
    else:
        if np.any(np.asarray(out_scale, np.float64) != 1) or np.any(np.asarray(out_offset, np.float64) != 0):
            raise ValueError("out_scale/out_offset rescale a readout; this network has none (its output is the "
                             "last layer's spikes)")
        nodes[out] = Output(shape=(n_prev,))
        edges.append((last, out))
    prov = dict(provenance or {})
    prov.setdefault("export", {"from": "bptt", "bptt_options": options.to_dict(),
                               "notes": "rtsnn.learn.offline.export.bptt_to_graph: every trained parameter "
                                        "(per-neuron alpha/vth, readout decays, delays) kept"})
    return exported_graph_model("BPTT export", nodes, edges, dt, prov, output_labels, output_units)


def exported_graph_model(what: str, nodes: dict[str, Node], edges: list[tuple[str, str]], dt_s: float,
                         provenance: dict, output_labels: list[str] | None = None,
                         output_units: list[str] | None = None) -> GraphModel:
    """The exporters' last step: a :class:`GraphModel` (integration ``'exact'``) of the nodes and
    edges; a :class:`GraphError` becomes a one-line ValueError starting with ``what``."""
    try:
        return GraphModel(Graph(nodes, edges, dt_s=dt_s, integration="exact"), provenance=provenance,
                          output_labels=list(output_labels) if output_labels else None,
                          output_units=list(output_units) if output_units else None)
    except GraphError as err:
        raise ValueError(f"{what}: {err}") from None


def single_layer_model(gm: GraphModel) -> Any | None:
    """The :class:`rtsnn.snn.params.Model` a :func:`bptt_to_graph` graph is, when it is one
    layer with a single-exponential readout, no delays and uniform neuron parameters (a
    feedforward layer gets a zero ``w_rec``); None otherwise. Nodes are found by their place
    in the pattern (any names)."""
    g = gm.graph
    kinds = sorted(node.kind for node in g.nodes.values())
    if kinds not in (sorted(["Input", "Linear", "LIF", "LI", "Affine", "Output"]),
                     sorted(["Input", "Linear", "ALIF", "LI", "Affine", "Output"]),
                     sorted(["Input", "Linear", "Linear", "LIF", "LI", "Affine", "Output"]),
                     sorted(["Input", "Linear", "Linear", "ALIF", "LI", "Affine", "Output"])):
        return None
    w_in_name = g.successors(g.input_name)
    if len(w_in_name) != 1 or g.nodes[w_in_name[0]].kind != "Linear":
        return None
    hid = g.successors(w_in_name[0])
    if len(hid) != 1 or g.nodes[hid[0]].kind not in ("LIF", "ALIF"):
        return None
    hidden = g.nodes[hid[0]]
    recs = [p for p in g.predecessors(hid[0]) if p != w_in_name[0]]
    traces = [s for s in g.successors(hid[0]) if g.nodes[s].kind == "LI"]
    if len(recs) > 1 or len(traces) != 1:
        return None
    trace = g.nodes[traces[0]]
    w_out = [s for s in g.successors(traces[0])]
    if len(w_out) != 1 or g.nodes[w_out[0]].kind != "Affine" or g.successors(w_out[0]) != [g.output_name]:
        return None
    n = hidden.n  # type: ignore[attr-defined]
    rec = g.nodes[recs[0]] if recs else Linear(weight=np.zeros((n, n), np.float32))
    nodes = {"input": g.nodes[g.input_name], "w_in": g.nodes[w_in_name[0]], "hidden": hidden, "w_rec": rec,
             "trace": trace, "w_out": g.nodes[w_out[0]], "output": g.nodes[g.output_name]}
    edges = [("input", "w_in"), ("w_in", "hidden"), ("hidden", "w_rec"), ("w_rec", "hidden"),
             ("hidden", "trace"), ("trace", "w_out"), ("w_out", "output")]
    try:
        renamed = GraphModel(Graph(nodes, edges, dt_s=g.dt_s, integration=g.integration),
                             provenance=dict(gm.provenance), output_labels=list(gm.output_labels or []),
                             output_units=list(gm.output_units or []), input_contract=gm.input_contract)
    finally:
        for name, node in g.nodes.items():  # Graph() renamed the shared node objects: restore
            node.name = name
    return model_from_graph(renamed)


# ---------------------------------------------------------------------------- FP


def fp_n_ticks(t_max: float, dt_s: float, unit_s: float) -> int:
    """Ticks of the FP window: the graph's tick ``t`` stands for time ``(t+1) D``, so the
    window ``(0, t_max]`` is ``floor(t_max / D)`` ticks (float rounding forgiven)."""
    return max(1, int(math.floor(t_max * unit_s / dt_s + 1e-9)))


def fp_layer_gains(tau_syn: Any, tau_mem: Any, step: float) -> np.ndarray:
    """Per-neuron CubaLIF gains ``h_i(D)`` (module docstring) of FP neurons with time constants
    ``tau_syn``, ``tau_mem`` (FP time units, one per neuron) at ``D = step`` units per tick:
    the kernels' rates ``alpha_i = 1 / tau_syn_i``, ``beta_i = 1 / tau_mem_i``. One mapping for
    :func:`fp_to_graph` and :func:`rtsnn.learn.offline.fp_regression.fp_regression_to_graph`."""
    from rtsnn.learn.offline.fp_kernels import psp

    return np.array([psp(step, 1.0 / float(a), 1.0 / float(b))
                     for a, b in zip(np.atleast_1d(tau_syn), np.atleast_1d(tau_mem))], np.float64)


def fp_to_graph(fp_model: Any, dt_s: float, *, unit_s: float, settings: Any = None, neurons: Any = None,
                provenance: dict | None = None, output_labels: list[str] | None = None) -> GraphModel:
    """The graph of an FP network at tick ``dt_s`` (discretisation in the module docstring).

    ``fp_model``: a :class:`rtsnn.learn.offline.fp.TrainedFP` (its settings and its per-neuron
    ``neurons`` are used) or an :class:`rtsnn.learn.offline.fp.FPNetwork` with ``settings``
    (:class:`FPSettings`) and optionally ``neurons`` (:class:`NeuronParams`);
    ``unit_s``: seconds per FP time unit (the Yin-Yang scripts use 5e-3). With per-neuron
    parameters neuron i of layer l gets ``tau_syn_s = tau_syn_i unit_s``, ``tau_mem_s =
    tau_mem_i unit_s``, ``v_th = theta_i`` and gain ``h_i(D)`` (:func:`fp_layer_gains`), the
    settings' alpha, beta, theta unused, as in FP's own forward pass. The output is the last
    layer's spikes; read it with :func:`graph_first_spikes`."""
    from rtsnn.learn.offline import fp
    from rtsnn.learn.offline.fp_kernels import psp

    if isinstance(fp_model, fp.TrainedFP):
        net, settings = fp_model.net, settings or fp_model.settings
        if neurons is not None:
            raise ValueError("fp_to_graph: a TrainedFP carries its own neurons; pass neurons only with an FPNetwork")
        neurons = fp_model.neurons
    elif isinstance(fp_model, fp.FPNetwork):
        net = fp_model
        if settings is None:
            raise ValueError("fp_to_graph: an FPNetwork needs settings (FPSettings); or pass a TrainedFP")
    else:
        raise ValueError(f"fp_to_graph: expected a TrainedFP or FPNetwork, got {type(fp_model).__name__}")
    if not isinstance(settings, fp.FPSettings):
        raise ValueError(f"fp_to_graph: settings must be FPSettings, got {type(settings).__name__}")
    if neurons is not None:
        if not isinstance(neurons, fp.NeuronParams):
            raise ValueError(f"fp_to_graph: neurons must be NeuronParams, got {type(neurons).__name__}")
        try:
            neurons.check_sizes(net.sizes)
        except ValueError as err:
            raise ValueError(f"fp_to_graph: {err}") from None
    for name, v in (("dt_s", dt_s), ("unit_s", unit_s)):
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
            raise ValueError(f"fp_to_graph: {name} must be a finite number of seconds > 0, got {v!r}")
    step = dt_s / unit_s  # time units per tick
    n_ticks = fp_n_ticks(settings.t_max, dt_s, unit_s)
    if n_ticks < 2:
        raise ValueError(f"fp_to_graph: dt_s {dt_s:g} s is not shorter than the window t_max = {settings.t_max:g} "
                         f"units x {unit_s:g} s")
    gain = float(psp(step, settings.alpha, settings.beta))
    never_again = (n_ticks + 2) * dt_s  # refractory past the window: one spike per neuron at most
    nodes: dict[str, Node] = {"input": Input(shape=(net.n_in,))}
    edges: list[tuple[str, str]] = []
    src = "input"
    n_layers = len(net.w)
    for l, (w, r) in enumerate(zip(net.w, net.r)):
        name = f"layer{l}"
        last = l == n_layers - 1
        capped = last or int(settings.max_hidden_spikes) == 1
        nodes[f"w{l}"] = Linear(weight=w)
        if neurons is None:  # the settings' rates and threshold, shared by every neuron
            per: dict[str, Any] = dict(tau_syn_s=unit_s / settings.alpha, tau_mem_s=unit_s / settings.beta,
                                       v_th=settings.theta, gain=gain)
        else:  # FP's per-neuron thresholds and time constants (TrainedFP.neurons)
            per = dict(tau_syn_s=neurons.tau_syn[l] * unit_s, tau_mem_s=neurons.tau_mem[l] * unit_s,
                       v_th=neurons.theta[l].copy(), gain=fp_layer_gains(neurons.tau_syn[l], neurons.tau_mem[l], step))
        nodes[name] = CubaLIF(**per, reset="subtract", reset_at="now",
                              refractory_s=never_again if capped else 0.0, n=w.shape[1])
        edges += [(src, f"w{l}"), (f"w{l}", name)]
        if r is not None:
            nodes[f"r{l}"] = Linear(weight=r)
            edges += [(name, f"r{l}"), (f"r{l}", name)]
        src = name
    nodes["output"] = Output(shape=(net.w[-1].shape[1],))
    edges.append((src, "output"))
    prov = dict(provenance or {})
    prov.setdefault("export", {
        "from": "fp", "unit_s": unit_s, "dt_s": dt_s, "ticks_per_unit": 1.0 / step, "window_ticks": n_ticks,
        "settings": {k: float(v) for k, v in vars(settings).items()},
        "neurons": (None if neurons is None else
                    {"per_neuron": "theta, tau_syn, tau_mem per neuron (the settings' alpha, beta, theta unused)",
                     **neurons.summary()}),
        "discretisation": "CubaLIF, exact decays exp(-alpha D), exp(-beta D), gain h(D): v[t] = V((t+1) D) for "
                          "inputs on the grid; input times rounded to the nearest tick; threshold tested at "
                          "tick ends; spikes reach the next layer in the same tick; reset at the tick end",
        "spike_cap": ("exact (1 per neuron, refractory past the window)"
                      if int(settings.max_hidden_spikes) == 1 else
                      f"hidden not capped (FP caps at {int(settings.max_hidden_spikes)}); output 1 (first spike)"),
        "readout": "first output spike tick t -> time (t+1) D; ties: larger membrane; none by t_max: no class"})
    prov.setdefault("method", "fp_export")
    try:
        return GraphModel(Graph(nodes, edges, dt_s=dt_s, integration="exact"), provenance=prov,
                          output_labels=list(output_labels) if output_labels else None)
    except GraphError as err:
        raise ValueError(f"FP export: {err}") from None


def fp_input_raster(in_times: np.ndarray, dt_s: float, unit_s: float, n_ticks: int) -> np.ndarray:
    """FP input spike times (n, n_in) in time units (inf: none) -> float32 raster
    (n, n_ticks, n_in): a spike at time t lands in tick ``round(t unit_s / dt_s)``; spikes past
    the window are dropped."""
    from rtsnn.learn.offline.fp_repro import times_to_grid

    return times_to_grid(in_times, unit_s=unit_s, dt_s=dt_s, n_steps=n_ticks)


def graph_first_spikes(model: GraphModel, raster: np.ndarray, *, stop_at_first: bool = False
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` (an :func:`fp_to_graph` graph, or any graph whose output is spikes) from a
    fresh state on each sample of ``raster`` (n, T, n_in) and read the first output spikes:
    ``(first_tick (n, n_out) int64, -1 for none; pred (n,) int64)``. ``pred`` is the output
    that fires first, ties within a tick broken by the larger membrane potential of the last
    spiking node at that tick (-1 when no output fires). ``stop_at_first`` ends each sample
    at its first output spike (enough for ``pred``; the other outputs' ticks stay -1)."""
    from rtsnn.snn.graph_network import GraphNetwork

    raster = np.asarray(raster, np.float32)
    if raster.ndim != 3 or raster.shape[2] != model.n_in:
        raise ValueError(f"raster must be (n, T, n_in={model.n_in}), got shape {list(raster.shape)}")
    net = GraphNetwork(model, propagation="auto")
    out_node = model.graph.predecessors(model.graph.output_name)[0]
    v = net.state_arrays().get(f"{out_node}.v")
    y = net.readout()
    n, T, _ = raster.shape
    first = np.full((n, model.n_out), -1, np.int64)
    pred = np.full(n, -1, np.int64)
    buf = np.zeros(model.n_in, np.float32)
    for s in range(n):
        net.reset_state()
        xs = raster[s]
        fs = first[s]
        for t in range(T):
            buf[...] = xs[t]
            net.step(buf)
            if y.any():
                new = (y != 0) & (fs < 0)
                if new.any():
                    if pred[s] < 0:
                        cand = np.flatnonzero(new)
                        pred[s] = cand[np.argmax(v[cand])] if v is not None else cand[0]
                    fs[new] = t
                    if stop_at_first or np.all(fs >= 0):
                        break
    return first, pred
