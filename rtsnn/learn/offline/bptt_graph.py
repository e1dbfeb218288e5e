"""What the BPTT engine trains: a model graph (:class:`rtsnn.snn.graph.Graph`) of the layered
pattern below, plus the training choices that are not the model (:class:`BpttOptions`).

The pattern (node names are free; :func:`layered_graph` uses the ones shown, which are also
those of the export :func:`rtsnn.learn.offline.export.bptt_to_graph`)::

    input (Input) -> w0 (Linear) -> layer0 (LIF | ALIF) -> w1 (Linear) -> layer1 ... -> layer{L-1}
                                    layer{l} -> r{l} (Linear) -> layer{l}      (optional recurrence)
    layer{L-1} -> trace (LI) [-> trace2 (LI)] -> w_out (Affine) -> output (Output)   (leaky readout)
    layer{L-1} -> output (Output)                         (no readout: the output is the spikes)

The neurons' initial per-tick decays and thresholds are read per neuron from the nodes:
``alpha_i = exp(-dt_s / tau_mem_s_i)`` (``1 - dt_s / tau_mem_s_i`` under the graph's
``'euler'`` integration), ``v_th_i``; they are trainable per neuron. What the engine's kernels
hold as one number must be one number in the graph, over every neuron of every layer: the
neuron kind, ``refractory_s``, ``reset``, ALIF's ``tau_adapt_s`` and ``beta_adapt``, the
readout's ``tau_s`` per LI stage. The dynamics the engine runs are the nodes' with unit
``gain``, ``v_leak = v_reset = 0``, the reset at the next tick (``reset_at = 'next'``) and a
spike when ``v >= v_th`` (``spike_if = '>='``); a graph outside this is refused with a one-line
:class:`rtsnn.snn.nodes.GraphError` naming the node and the field. The weights of the
``Linear``/``Affine`` nodes are not read: :func:`rtsnn.learn.offline.bptt_engine.init_params`
draws them (only their shapes matter).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from rtsnn.learn.offline.surrogate import surrogate_id
from rtsnn.snn.graph import Graph
from rtsnn.snn.nodes import (ALIF, KINDS, LI, LIF, Affine, GraphError, Input, Linear, Node, Output,
                             node_from_parts)

MAX_DELAY_STEPS = 256
PATTERN = ("Input -> Linear -> LIF/ALIF (+ a recurrent Linear back to it) -> ... -> "
           "[LI [-> LI] -> Affine] -> Output")


@dataclass(frozen=True)
class BpttOptions:
    """Training choices that are not the model: the surrogate derivative
    (:func:`rtsnn.learn.offline.surrogate.surrogate_id`: ``surrogate``, ``surrogate_param``),
    ``detach_reset`` (the reset's gradient path cut) and ``max_delay_steps`` (``D > 0``:
    trainable input synaptic delays ``0..D`` ticks on layer 0's input, softmax relaxation)."""

    surrogate: str = "fast_sigmoid"
    surrogate_param: float | None = None
    detach_reset: bool = False
    max_delay_steps: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.max_delay_steps, int) and not isinstance(self.max_delay_steps, bool)
                and 0 <= self.max_delay_steps <= MAX_DELAY_STEPS):
            raise ValueError(f"max_delay_steps must be an int in [0, {MAX_DELAY_STEPS}], got {self.max_delay_steps!r}")
        if not isinstance(self.detach_reset, (bool, np.bool_)) and self.detach_reset not in (0, 1):
            raise ValueError(f"detach_reset must be True or False, got {self.detach_reset!r}")
        object.__setattr__(self, "detach_reset", bool(self.detach_reset))
        surrogate_id(self.surrogate, self.surrogate_param)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, *, ignore_unknown: bool = False) -> BpttOptions:
        """The options of :meth:`to_dict`'s dict ``d`` (a key left out: its default). A key
        that is not an option is refused (ValueError naming it) unless ``ignore_unknown``
        (a version 1 checkpoint's architecture dict, which holds the model's keys as well)."""
        if not isinstance(d, dict):
            raise ValueError(f"bptt_options must be an object, got {type(d).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown and not ignore_unknown:
            raise ValueError(f"bptt_options: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return cls(**{k: v for k, v in d.items() if k in known})


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def layered_graph(n_in: int, sizes: Any, recurrent: Any, n_out: int | None, *, dt_s: float = 1e-3,
                  model: str = "lif", tau_mem_s: Any = 20e-3, tau_adapt_s: float = 200e-3, beta_adapt: float = 0.0,
                  v_th: Any = 1.0, refractory_s: float = 0.0, reset: str = "subtract", tau_out_s: float = 20e-3,
                  tau_out2_s: float | None = None) -> Graph:
    """The usual layered graph BPTT trains (names as in the module docstring): ``sizes`` LIF
    (``model='lif'``) or ALIF (``'alif'``) layers, ``recurrent`` one flag per layer (or one
    bool for all), then with ``n_out`` a leaky readout ``LI(tau_out_s)`` [``-> LI(tau_out2_s)``:
    a double-exponential filter] ``-> Affine`` of ``n_out`` outputs; ``n_out`` None: the last
    layer's spikes are the output. ``tau_mem_s`` and ``v_th`` may be per neuron (a list of one
    value or array per layer) or one number for all. Weights are zero placeholders (only their
    shapes count; :func:`rtsnn.learn.offline.bptt_engine.init_params` draws the weights)."""
    if isinstance(n_in, bool) or not isinstance(n_in, (int, np.integer)) or n_in < 1:
        raise ValueError(f"n_in must be an int >= 1, got {n_in!r}")
    sizes = tuple(sizes) if isinstance(sizes, (list, tuple)) else (sizes,)
    if not sizes or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in sizes):
        raise ValueError(f"layers must be a non-empty list of ints >= 1, got {list(sizes)!r}")
    sizes = tuple(int(n) for n in sizes)
    rec = tuple(recurrent) if isinstance(recurrent, (list, tuple)) else (bool(recurrent),) * len(sizes)
    if len(rec) != len(sizes):
        raise ValueError(f"recurrent must have one flag per layer ({len(sizes)}), got {list(rec)!r}")
    if n_out is not None and (isinstance(n_out, bool) or not isinstance(n_out, (int, np.integer)) or n_out < 1):
        raise ValueError(f"n_out must be None or an int >= 1, got {n_out!r}")
    if model not in ("lif", "alif"):
        raise ValueError(f"model must be 'lif' or 'alif', got {model!r}")
    if reset not in ("subtract", "zero"):
        raise ValueError(f"reset must be 'subtract' or 'zero', got {reset!r}")
    _positive("dt_s", dt_s)
    _positive("tau_out_s", tau_out_s)
    if tau_out2_s is not None:
        if not (isinstance(tau_out2_s, (int, float)) and not isinstance(tau_out2_s, bool)
                and math.isfinite(tau_out2_s) and tau_out2_s > 0):
            raise ValueError(f"tau_out2_s must be None or a finite number > 0, got {tau_out2_s!r}")
        if n_out is None:
            raise ValueError("tau_out2_s (a double-exponential readout) needs a readout: set n_out")

    def per_layer(name: str, value: Any, l: int) -> Any:
        if isinstance(value, (list, tuple)):
            if len(value) != len(sizes):
                raise ValueError(f"{name}: a list must hold one value or array per layer ({len(sizes)}), "
                                 f"got {len(value)}")
            return value[l]
        return value

    nodes: dict[str, Node] = {"input": Input(shape=(int(n_in),))}
    edges: list[tuple[str, str]] = []
    prev, n_prev = "input", int(n_in)
    for l, (n, r) in enumerate(zip(sizes, rec)):
        name = f"layer{l}"
        common: dict[str, Any] = dict(tau_mem_s=per_layer("tau_mem_s", tau_mem_s, l), v_th=per_layer("v_th", v_th, l),
                                      refractory_s=refractory_s, reset=reset, reset_at="next", n=n)
        try:
            nodes[name] = (ALIF(name=name, tau_adapt_s=tau_adapt_s, beta_adapt=beta_adapt, **common)
                           if model == "alif" else LIF(name=name, **common))
        except GraphError as err:
            raise ValueError(str(err)) from None
        nodes[f"w{l}"] = Linear(weight=np.zeros((n_prev, n), np.float32))
        edges += [(prev, f"w{l}"), (f"w{l}", name)]
        if r:
            nodes[f"r{l}"] = Linear(weight=np.zeros((n, n), np.float32))
            edges += [(name, f"r{l}"), (f"r{l}", name)]
        prev, n_prev = name, n
    if n_out is not None:
        nodes["trace"] = LI(tau_s=tau_out_s, n=n_prev)
        edges.append((prev, "trace"))
        top = "trace"
        if tau_out2_s is not None:
            nodes["trace2"] = LI(tau_s=tau_out2_s, n=n_prev)
            edges.append(("trace", "trace2"))
            top = "trace2"
        nodes["w_out"] = Affine(weight=np.zeros((n_prev, int(n_out)), np.float32), bias=np.zeros(int(n_out), np.float32))
        nodes["output"] = Output(shape=(int(n_out),))
        edges += [(top, "w_out"), ("w_out", "output")]
    else:
        nodes["output"] = Output(shape=(n_prev,))
        edges.append((prev, "output"))
    return Graph(nodes, edges, dt_s=float(dt_s), integration="exact")


# ---------------------------------------------------------------------------- compiled plan
@dataclass(frozen=True)
class _Plan:
    """The engine's per-layer view of a graph (derived only; see :func:`compile_graph`)."""

    n_in: int
    layers: tuple[int, ...]
    recurrent: tuple[bool, ...]
    n_out: int | None
    model: str  # 'lif' | 'alif'
    dt_s: float
    alpha: tuple[np.ndarray, ...]  # per layer, float64 per-tick membrane decays (initial)
    v_th: tuple[np.ndarray, ...]  # per layer, float64 thresholds (initial)
    tau_mem_s: tuple[np.ndarray, ...]
    rho: float
    beta: float  # beta_adapt (0 for LIF)
    tau_adapt_s: float
    beta_adapt: float
    n_ref: int
    refractory_s: float
    reset: str
    kappa: float | None
    kappa2: float | None
    tau_out_s: float | None
    tau_out2_s: float | None
    names: dict  # 'input', 'output', 'w', 'layer', 'r' (per layer; r None when not recurrent), 'trace', 'trace2', 'w_out'
    surrogate: str
    surrogate_param: float | None
    detach_reset: bool
    max_delay_steps: int

    @property
    def n_output(self) -> int:
        return self.n_out if self.n_out is not None else self.layers[-1]


def _cannot(name: str, node: Node) -> GraphError:
    return GraphError(f"BPTT cannot train node {name!r} of kind {node.kind} yet (it trains {PATTERN})")


def _one_value(name: str, fld: str, arr: np.ndarray, what: str = "") -> float:
    a = np.asarray(arr)
    if a.size and np.any(a != a.flat[0]):
        return _raise(name, fld, f"BPTT needs one value for all neurons{what}, got {float(a.min())!r} .. "
                                 f"{float(a.max())!r}")
    return float(a.flat[0])


def _raise(name: str, fld: str, msg: str) -> Any:
    raise GraphError(f"node {name!r}: {fld}: {msg}")


def _decays(graph: Graph, tau: np.ndarray) -> np.ndarray:
    """Per-tick decays of ``tau`` (float64), computed element by element with ``math.exp`` for
    ``'exact'`` integration (the engine's scalar arithmetic, so uniform values give the same
    bits as a scalar), ``1 - dt/tau`` for ``'euler'``."""
    dt = graph.dt_s
    if graph.integration == "exact":
        return np.array([math.exp(-dt / float(t)) for t in np.asarray(tau, np.float64).ravel()])
    return np.array([1.0 - dt / float(t) for t in np.asarray(tau, np.float64).ravel()])


def _decay(graph: Graph, tau: float) -> float:
    return float(_decays(graph, np.array([tau]))[0])


def compile_graph(graph: Graph, options: BpttOptions | None = None) -> _Plan:
    """The per-layer plan of ``graph`` (the pattern of the module docstring), or a one-line
    :class:`GraphError` naming the node (and field) BPTT cannot train."""
    if not isinstance(graph, Graph):
        raise GraphError(f"BPTT trains a model graph (rtsnn.snn.graph.Graph), got {type(graph).__name__}")
    options = BpttOptions() if options is None else options
    if not isinstance(options, BpttOptions):
        raise ValueError(f"options must be BpttOptions, got {type(options).__name__}")
    g = graph
    nodes = g.nodes
    pred = {n: g.predecessors(n) for n in nodes}
    succ = {n: g.successors(n) for n in nodes}
    seen = {g.input_name}
    names: dict[str, Any] = {"input": g.input_name, "output": g.output_name, "w": [], "layer": [], "r": [],
                             "trace": None, "trace2": None, "w_out": None}
    layers, rec, alphas, vths, taus = [], [], [], [], []
    shared: dict[str, tuple[str, Any]] = {}  # field -> (first node, value): one value across layers

    def same(name: str, fld: str, value: Any) -> None:
        if fld in shared and shared[fld][1] != value:
            _raise(name, fld, f"BPTT needs one value for every layer, got {value!r} here and {shared[fld][1]!r} "
                              f"at node {shared[fld][0]!r}")
        shared.setdefault(fld, (name, value))

    def only_next(name: str, skip: str | None = None) -> str:
        nxt = [s for s in succ[name] if s != skip]
        if len(nxt) != 1:
            _raise(name, "edges", f"BPTT needs exactly one feedforward successor here, got {nxt} (it trains {PATTERN})")
        return nxt[0]

    def only_from(name: str, src: str, extra: str | None = None) -> None:
        others = [p for p in pred[name] if p not in (src, extra)]
        if others:
            _raise(name, "edges", f"BPTT needs a single input here (from {src!r}), got also {others}")

    cur = only_next(g.input_name)
    while True:
        node = nodes[cur]
        if type(node) is not Linear:
            raise _cannot(cur, node)
        only_from(cur, names["layer"][-1] if names["layer"] else g.input_name)
        seen.add(cur)
        w_name = cur
        cur = only_next(w_name)
        node = nodes[cur]
        if type(node) not in (LIF, ALIF):
            raise _cannot(cur, node)
        lname = cur
        seen.add(lname)
        # a recurrent Linear: lname -> r -> lname, a back edge carrying the previous tick
        r_name = None
        for s in succ[lname]:
            if type(nodes[s]) is Linear and succ[s] == [lname] and g.is_recurrent(s, lname):
                r_name = s
        for p in pred[lname]:
            if p not in (w_name, r_name):
                _raise(lname, "edges", f"BPTT needs the input from {w_name!r}"
                                       + (f" and the recurrence {r_name!r}" if r_name else "") + f", got also {p!r}")
        if r_name is not None:
            only_from(r_name, lname)
            seen.add(r_name)
        kind = "alif" if type(node) is ALIF else "lif"
        same(lname, "kind", node.kind)
        for fld, want in (("gain", 1.0), ("v_leak", 0.0), ("v_reset", 0.0)):
            arr = getattr(node, fld)
            if np.any(arr != want):
                _raise(lname, fld, f"BPTT trains {want:g} only, got {float(arr[np.flatnonzero(arr != want)[0]])!r}")
        if node.reset_at != "next":
            _raise(lname, "reset_at", f"BPTT resets at the next tick ('next') only, got {node.reset_at!r}")
        if node.spike_if != ">=":
            _raise(lname, "spike_if", f"BPTT spikes when v >= v_th ('>=') only, got {node.spike_if!r}")
        reset = ("subtract", "zero")[int(_one_value(lname, "reset", node.reset))]
        same(lname, "reset", reset)
        same(lname, "refractory_s", _one_value(lname, "refractory_s", node.refractory_s))
        if kind == "alif":
            same(lname, "tau_adapt_s", _one_value(lname, "tau_adapt_s", node.tau_adapt_s))
            same(lname, "beta_adapt", _one_value(lname, "beta_adapt", node.beta_adapt))
        names["w"].append(w_name)
        names["layer"].append(lname)
        names["r"].append(r_name)
        layers.append(node.n)
        rec.append(r_name is not None)
        alphas.append(_decays(g, node.tau_mem_s))
        vths.append(np.array(node.v_th, np.float64))
        taus.append(np.array(node.tau_mem_s, np.float64))
        cur = only_next(lname, skip=r_name)
        if type(nodes[cur]) is Linear:
            continue
        break
    last = names["layer"][-1]
    n_out = None
    kappa = kappa2 = tau_out = tau_out2 = None
    if type(nodes[cur]) is LI:
        for stage in ("trace", "trace2"):
            node = nodes[cur]
            only_from(cur, last if stage == "trace" else names["trace"])
            for fld, want in (("gain", 1.0), ("v_leak", 0.0)):
                arr = getattr(node, fld)
                if np.any(arr != want):
                    _raise(cur, fld, f"BPTT's readout trace has {fld} {want:g} only, got "
                                     f"{float(arr[np.flatnonzero(arr != want)[0]])!r}")
            tau = _one_value(cur, "tau_s", node.tau_s, " of a readout stage")
            if stage == "trace":
                tau_out, kappa = tau, _decay(g, tau)
            else:
                tau_out2, kappa2 = tau, _decay(g, tau)
            names[stage] = cur
            seen.add(cur)
            cur = only_next(cur)
            if type(nodes[cur]) is not LI or stage == "trace2":
                break
        if type(nodes[cur]) is not Affine:
            raise _cannot(cur, nodes[cur])
        only_from(cur, names["trace2"] or names["trace"])
        names["w_out"] = cur
        n_out = int(nodes[cur].weight.shape[1])
        seen.add(cur)
        cur = only_next(cur)
    if type(nodes[cur]) is not Output:
        raise _cannot(cur, nodes[cur])
    only_from(cur, names["w_out"] or last)
    seen.add(cur)
    rest = [n for n in nodes if n not in seen]
    if rest:
        raise _cannot(rest[0], nodes[rest[0]])
    model = "alif" if shared["kind"][1] == "ALIF" else "lif"
    tau_adapt = shared["tau_adapt_s"][1] if model == "alif" else 200e-3
    beta_adapt = shared["beta_adapt"][1] if model == "alif" else 0.0
    refr = shared["refractory_s"][1]
    return _Plan(n_in=g.n_in, layers=tuple(layers), recurrent=tuple(rec), n_out=n_out, model=model, dt_s=g.dt_s,
                 alpha=tuple(alphas), v_th=tuple(vths), tau_mem_s=tuple(taus), rho=_decay(g, tau_adapt),
                 beta=float(beta_adapt) if model == "alif" else 0.0, tau_adapt_s=float(tau_adapt),
                 beta_adapt=float(beta_adapt), n_ref=int(round(refr / g.dt_s)), refractory_s=float(refr),
                 reset=shared["reset"][1], kappa=kappa, kappa2=kappa2, tau_out_s=tau_out, tau_out2_s=tau_out2,
                 names=names, surrogate=options.surrogate, surrogate_param=options.surrogate_param,
                 detach_reset=options.detach_reset, max_delay_steps=options.max_delay_steps)


def typical(arr: np.ndarray) -> float:
    """One number for a per-neuron array: the value itself when uniform (bit for bit), else the mean."""
    a = np.asarray(arr, np.float64)
    return float(a[0]) if np.all(a == a[0]) else float(np.mean(a))


# ---------------------------------------------------------------------------- serialisation
def graph_to_parts(graph: Graph) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a graph for a checkpoint: JSON-able ``meta`` (dt_s, integration, the
    nodes' scalar fields, edges) and the nodes' arrays keyed ``'<node>/<field>'`` (the model
    file's layout, :mod:`rtsnn.snn.model_file`)."""
    meta = {"dt_s": graph.dt_s, "integration": graph.integration,
            "nodes": {name: node.meta() for name, node in graph.nodes.items()},
            "edges": [list(e) for e in graph.edges]}
    arrays = {f"{name}/{k}": arr for name, node in graph.nodes.items() for k, arr in node.arrays().items()}
    return meta, arrays


def graph_from_parts(meta: dict, arrays: dict[str, np.ndarray]) -> Graph:
    """Inverse of :func:`graph_to_parts` (GraphError naming the node on a bad part). Nothing
    is filled in with a default: ``dt_s``, ``integration`` and every field of every node (scalar
    or array) must be given, as :func:`graph_to_parts` writes them (a model file's reader,
    :mod:`rtsnn.snn.model_file`, likewise takes no default for a missing array)."""
    if not isinstance(meta, dict) or not isinstance(meta.get("nodes"), dict) or not isinstance(meta.get("edges"), list):
        raise GraphError("graph: must be an object with 'nodes' (object) and 'edges' (list)")
    for key in ("dt_s", "integration"):
        if key not in meta:
            raise GraphError(f"graph: {key}: missing (the checkpoint's graph must state it)")
    per_node: dict[str, dict[str, np.ndarray]] = {name: {} for name in meta["nodes"]}
    for key, arr in arrays.items():
        node, _, fld = key.rpartition("/")
        if node not in per_node or not fld:
            raise GraphError(f"graph: array {key!r} belongs to no node of the graph")
        per_node[node][fld] = arr
    for name, m in meta["nodes"].items():
        cls = KINDS.get(m.get("kind")) if isinstance(m, dict) and isinstance(m.get("kind"), str) else None
        if cls is None:
            continue  # node_from_parts names the bad kind
        given = set(per_node[name]) | set(m)
        missing = [f.name for f in fields(cls) if f.name != "name" and f.name not in given]
        if missing:
            raise GraphError(f"node {name!r}: {missing[0]}: missing (neither a field of the node nor an array "
                             f"{name}/{missing[0]}; no default is taken)")
    nodes = {name: node_from_parts(name, m, per_node[name]) for name, m in meta["nodes"].items()}
    if not all(isinstance(e, list) and len(e) == 2 for e in meta["edges"]):
        raise GraphError("graph: edges must be [source, target] pairs")
    return Graph(nodes, [tuple(e) for e in meta["edges"]], dt_s=meta["dt_s"], integration=meta["integration"])


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# the keys of a version 1 architecture dict (rtsnn's former NetSpec), each with its JSON type
_SPEC_TYPES: dict[str, tuple[str, Any]] = {
    "n_in": ("an int", _is_int),
    "layers": ("a list of ints", lambda v: isinstance(v, list) and all(_is_int(n) for n in v)),
    "recurrent": ("a list of true/false", lambda v: isinstance(v, list) and all(isinstance(r, bool) for r in v)),
    "n_out": ("an int or null", lambda v: v is None or _is_int(v)),
    "model": ("a string", lambda v: isinstance(v, str)),
    "dt_s": ("a number", _is_number),
    "tau_mem_s": ("a number", _is_number),
    "tau_adapt_s": ("a number", _is_number),
    "beta_adapt": ("a number", _is_number),
    "v_th": ("a number", _is_number),
    "refractory_s": ("a number", _is_number),
    "tau_out_s": ("a number", _is_number),
    "surrogate": ("a string", lambda v: isinstance(v, str)),
    "surrogate_param": ("a number or null", lambda v: v is None or _is_number(v)),
    "detach_reset": ("true or false", lambda v: isinstance(v, bool)),
    "tau_out2_s": ("a number or null", lambda v: v is None or _is_number(v)),
    "max_delay_steps": ("an int", _is_int),
    "reset": ("a string", lambda v: isinstance(v, str)),
}


def graph_from_spec_dict(d: dict) -> tuple[Graph, BpttOptions]:
    """The graph and options of a pre-graph architecture dict (what checkpoints stored as
    ``meta['spec']``: n_in, layers, recurrent, n_out, model, dt_s, tau_mem_s, tau_adapt_s,
    beta_adapt, v_th, refractory_s, tau_out_s, surrogate, surrogate_param, detach_reset,
    tau_out2_s, max_delay_steps, reset). Each key given must have its type (no conversion: a
    ``3.7`` is not taken for ``n_in`` 3, nor ``"false"`` for true; ValueError naming the key);
    a key left out takes the default it had (keys the dict's version did not know yet), one
    that is not an architecture key is skipped."""
    if not isinstance(d, dict) or "layers" not in d or "n_in" not in d:
        raise ValueError(f"an architecture dict needs n_in and layers, got {sorted(d) if isinstance(d, dict) else d!r}")
    for key, (what, ok) in _SPEC_TYPES.items():
        if key in d and not ok(d[key]):
            raise ValueError(f"spec.{key}: must be {what}, got {d[key]!r}")
    graph_keys = ("dt_s", "model", "tau_mem_s", "tau_adapt_s", "beta_adapt", "v_th", "refractory_s", "reset",
                  "tau_out_s", "tau_out2_s")
    g = layered_graph(d["n_in"], d["layers"], d.get("recurrent", [False] * len(d["layers"])), d.get("n_out"),
                      **{k: d[k] for k in graph_keys if k in d})
    return g, BpttOptions.from_dict(d, ignore_unknown=True)


# the node fields the engine does not read (it draws the weights, init_params): only their shapes must agree
_DRAWN_FIELDS = {"Linear": ("weight",), "Affine": ("weight", "bias")}


def graph_difference(stored: Graph, current: Graph) -> str | None:
    """The first difference between two graphs that matters to training, as ``'<where>:
    <stored> vs <current>'`` (None when there is none): dt_s, integration, the set of node names,
    each node's kind, scalar fields and arrays (the weights of Linear / Affine nodes by their
    shapes only: the engine draws them), then the set of edges."""
    if stored.dt_s != current.dt_s:
        return f"graph: dt_s: {stored.dt_s!r} vs {current.dt_s!r}"
    if stored.integration != current.integration:
        return f"graph: integration: {stored.integration!r} vs {current.integration!r}"
    only_a = [n for n in stored.nodes if n not in current.nodes]
    only_b = [n for n in current.nodes if n not in stored.nodes]
    if only_a or only_b:
        return f"graph: nodes: {sorted(stored.nodes)} vs {sorted(current.nodes)}"
    for name, a in stored.nodes.items():
        b = current.nodes[name]
        if a.kind != b.kind:
            return f"node {name!r}: kind: {a.kind} vs {b.kind}"
        ma, mb = a.meta(), b.meta()
        for fld in ma:
            if ma[fld] != mb.get(fld):
                return f"node {name!r}: {fld}: {ma[fld]!r} vs {mb.get(fld)!r}"
        drawn = _DRAWN_FIELDS.get(a.kind, ())
        arr_b = b.arrays()
        for fld, x in a.arrays().items():
            y = arr_b[fld]
            if x.shape != y.shape:
                return f"node {name!r}: {fld}: shape {list(x.shape)} vs {list(y.shape)}"
            if fld in drawn:
                continue
            diff = np.flatnonzero(np.asarray(x).ravel() != np.asarray(y).ravel())
            if diff.size:
                i = int(diff[0])
                return f"node {name!r}: {fld}[{i}]: {x.ravel()[i].item()!r} vs {y.ravel()[i].item()!r}"
    ea, eb = sorted(tuple(e) for e in stored.edges), sorted(tuple(e) for e in current.edges)
    if ea != eb:
        return f"graph: edges: {[list(e) for e in ea]} vs {[list(e) for e in eb]}"
    return None


def options_difference(stored: BpttOptions, current: BpttOptions) -> str | None:
    """The first option that differs, as ``'bptt_options: <key>: <stored> vs <current>'``, or None."""
    a, b = stored.to_dict(), current.to_dict()
    for key in a:
        if a[key] != b[key]:
            return f"bptt_options: {key}: {a[key]!r} vs {b[key]!r}"
    return None
