"""The model graph: nodes (:mod:`rtsnn.snn.nodes`), edges, the tick, and what a model file holds.

Semantics of one tick (what every engine computes):

* nodes are evaluated once per tick in :meth:`Graph.order` (a topological order);
* a node's input is the sum of its incoming edges' source outputs;
* an edge that closes a cycle (a *recurrent* edge, found by a depth-first walk from the input
  in edge order) carries its source's output of the **previous** tick -- a layer's spikes fed
  back through a projection reach it one tick later, as ``w_rec^T z[t-1]``;
* every cycle must pass through a node with state (a neuron, ``LI`` or ``Delay``); a cycle of
  projections only is an algebraic loop and is refused.

A graph has exactly one ``Input`` and one ``Output``. :class:`GraphModel` adds what a model
file stores beside the graph: output labels and units, provenance and the input contract.
:func:`graph_from_model` gives the fused kernel's single recurrent layer
(:class:`rtsnn.snn.params.Model`, whose hidden and trace nodes the graph shares) as the smallest
graph::

    input -> w_in (Linear) -> hidden (LIF | ALIF) -> trace (LI, gain 1) -> w_out (Affine) -> output
                              hidden -> w_rec (Linear) -> hidden        (recurrent)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtsnn.snn.contract import InputContract
from rtsnn.snn.nodes import Affine, GraphError, Input, Linear, Node, Output
from rtsnn.snn.params import check_model_metadata

INTEGRATIONS = ("exact", "euler")
# sizes above these are refused (memory and tick-time guards; raise them here if you must)
MAX_NODES = 4096
MAX_EDGES = 65536


@dataclass(eq=False)
class Graph:
    """Nodes by name, edges ``(source, target)``, the tick ``dt_s`` and the ``integration`` rule
    that turns time constants into per-tick decays (``'exact'``: ``exp(-dt/tau)``, ``'euler'``:
    ``1 - dt/tau``). Validated on construction; every error names the node and the field."""

    nodes: dict[str, Node]
    edges: list[tuple[str, str]]
    dt_s: float = 1e-3
    integration: str = "exact"

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ structure
    def validate(self) -> None:
        if not isinstance(self.dt_s, (int, float)) or isinstance(self.dt_s, bool) or not math.isfinite(self.dt_s) \
                or not 0 < self.dt_s <= 10:
            raise GraphError(f"graph: dt_s must be a number of seconds in (0, 10], got {self.dt_s!r}")
        self.dt_s = float(self.dt_s)
        if self.integration not in INTEGRATIONS:
            raise GraphError(f"graph: integration must be one of {', '.join(INTEGRATIONS)}, got {self.integration!r}")
        if not isinstance(self.nodes, dict) or not self.nodes:
            raise GraphError("graph: nodes must be a non-empty mapping of name to node")
        if not isinstance(self.edges, (list, tuple)):
            raise GraphError(f"graph: edges must be a list of (source, target) pairs, got {type(self.edges).__name__}")
        if len(self.nodes) > MAX_NODES or len(self.edges) > MAX_EDGES:
            raise GraphError(f"graph: {len(self.nodes)} nodes / {len(self.edges)} edges exceed the limits "
                             f"{MAX_NODES} / {MAX_EDGES} (rtsnn.snn.graph.MAX_NODES / MAX_EDGES)")
        for name, node in self.nodes.items():
            if not isinstance(name, str) or not name:
                raise GraphError(f"graph: node names must be non-empty strings, got {name!r}")
            if not isinstance(node, Node):
                raise GraphError(f"node {name!r}: must be a node, got {type(node).__name__}")
            node.name = name
        for e in self.edges:
            if isinstance(e, (str, bytes)) or not hasattr(e, "__len__") or not hasattr(e, "__iter__"):
                raise GraphError(f"graph: an edge must be a pair of node names, got {e!r}")
        self.edges = [tuple(e) for e in self.edges]  # type: ignore[misc]
        seen: set[tuple[str, str]] = set()
        for e in self.edges:
            if len(e) != 2 or not all(isinstance(x, str) for x in e):
                raise GraphError(f"graph: an edge must be a pair of node names, got {list(e)!r}")
            src, dst = e
            for end in (src, dst):
                if end not in self.nodes:
                    raise GraphError(f"edge {src} -> {dst}: no node named {end!r}")
            if e in seen:
                raise GraphError(f"edge {src} -> {dst}: appears twice")
            seen.add(e)
        inputs = [n for n, v in self.nodes.items() if type(v) is Input]
        outputs = [n for n, v in self.nodes.items() if type(v) is Output]
        if len(inputs) != 1 or len(outputs) != 1:
            raise GraphError(f"graph: needs exactly one Input and one Output node, got inputs {inputs} "
                             f"and outputs {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        for src, dst in self.edges:
            if dst == self.input_name:
                raise GraphError(f"edge {src} -> {dst}: the Input node takes no incoming edge")
            if src == self.output_name:
                raise GraphError(f"edge {src} -> {dst}: the Output node has no outgoing edge")
            a, b = self.nodes[src], self.nodes[dst]
            if a.output_size() != b.input_size():
                raise GraphError(f"edge {src} -> {dst}: node {src!r} gives {a.output_size()} values "
                                 f"(shape {list(a.output_shape())}), node {dst!r} takes {b.input_size()}")
        self._order, self._recurrent = self._walk()
        self._refuse_stateless_cycles()
        if self.integration == "euler":
            for name, node in self.nodes.items():
                for fld in ("tau_mem_s", "tau_syn_s", "tau_adapt_s", "tau_s"):
                    tau = getattr(node, fld, None)
                    if isinstance(tau, np.ndarray) and np.any(tau < self.dt_s):
                        raise GraphError(f"node {name!r}: {fld}: must be >= dt_s ({self.dt_s:g} s) under 'euler' "
                                         f"integration (the decay 1 - dt/tau would be negative), got "
                                         f"{float(tau.min()):g}")

    def _refuse_stateless_cycles(self) -> None:
        """Every cycle must pass through a node with state. The walk checks the cycle each back
        edge closes along the walk's path; another cycle through the same back edge may avoid
        that path's state (``p -> s -> q -> p`` with a neuron ``s`` and also ``p -> q``), so look
        for any cycle among the stateless nodes alone (Kahn's algorithm on that subgraph)."""
        stateless = {n for n, v in self.nodes.items() if not v.stateful}
        succ: dict[str, list[str]] = {n: [] for n in stateless}
        indeg = {n: 0 for n in stateless}
        for src, dst in self.edges:
            if src in stateless and dst in stateless:
                succ[src].append(dst)
                indeg[dst] += 1
        ready = [n for n in stateless if indeg[n] == 0]
        while ready:
            n = ready.pop()
            for d in succ[n]:
                indeg[d] -= 1
                if indeg[d] == 0:
                    ready.append(d)
        left = {n for n, k in indeg.items() if k > 0}
        if not left:
            return
        # name one cycle: every leftover node has a leftover predecessor, so walk back through
        # them until a node repeats, then read that loop forwards
        pred: dict[str, list[str]] = {n: [] for n in left}
        for src, dst in self.edges:
            if src in left and dst in left:
                pred[dst].append(src)
        start = next(n for n in self.nodes if n in left)
        back, seen = [start], {start: 0}
        while True:
            prv = pred[back[-1]][0]
            if prv in seen:
                loop = back[seen[prv]:][::-1]
                if start in loop:  # name it from the first node (in the graph's order) on it
                    k = loop.index(start)
                    loop = loop[k:] + loop[:k]
                cycle = loop + [loop[0]]
                break
            seen[prv] = len(back)
            back.append(prv)
        raise GraphError(f"edge {cycle[-2]} -> {cycle[-1]}: closes the cycle {' -> '.join(cycle)} with no state "
                         f"on it (no neuron, LI or Delay node): an algebraic loop")

    def _walk(self) -> tuple[list[str], set[tuple[str, str]]]:
        """Depth-first from the input in edge order: back edges are recurrent; the reverse
        post-order of the remaining DAG is the evaluation order."""
        succ: dict[str, list[str]] = {n: [] for n in self.nodes}
        for src, dst in self.edges:
            succ[src].append(dst)
        state = {n: 0 for n in self.nodes}  # 0 new, 1 on the stack, 2 done
        post: list[str] = []
        recurrent: set[tuple[str, str]] = set()
        stack_list: list[str] = []
        # iterative DFS keeping the path for cycle reports
        work: list[tuple[str, int]] = [(self.input_name, 0)]
        state[self.input_name] = 1
        stack_list.append(self.input_name)
        while work:
            node, k = work[-1]
            if k < len(succ[node]):
                work[-1] = (node, k + 1)
                nxt = succ[node][k]
                if state[nxt] == 0:
                    state[nxt] = 1
                    stack_list.append(nxt)
                    work.append((nxt, 0))
                elif state[nxt] == 1:
                    cycle = stack_list[stack_list.index(nxt):]
                    if not any(self.nodes[c].stateful for c in cycle):
                        raise GraphError(f"edge {node} -> {nxt}: closes the cycle {' -> '.join(cycle + [nxt])} "
                                         f"with no state on it (no neuron, LI or Delay node): an algebraic loop")
                    recurrent.add((node, nxt))
            else:
                work.pop()
                stack_list.pop()
                state[node] = 2
                post.append(node)
        unreached = [n for n, s in state.items() if s == 0]
        if unreached:
            raise GraphError(f"node {unreached[0]!r}: not reachable from the input {self.input_name!r}"
                             + (f" (nor {len(unreached) - 1} more)" if len(unreached) > 1 else ""))
        return post[::-1], recurrent

    def order(self) -> list[str]:
        """Evaluation order of the nodes within one tick."""
        return list(self._order)

    def is_recurrent(self, src: str, dst: str) -> bool:
        """True when edge ``src -> dst`` carries the previous tick's value."""
        return (src, dst) in self._recurrent

    def predecessors(self, name: str) -> list[str]:
        """Sources of the edges into ``name``, in edge order."""
        return [s for s, d in self.edges if d == name]

    def successors(self, name: str) -> list[str]:
        return [d for s, d in self.edges if s == name]

    @property
    def n_in(self) -> int:
        return self.nodes[self.input_name].output_size()

    @property
    def n_out(self) -> int:
        return self.nodes[self.output_name].input_size()

    def copy(self) -> Graph:
        return Graph({k: copy.deepcopy(v) for k, v in self.nodes.items()}, list(self.edges), self.dt_s,
                     self.integration)

    def decay(self, tau_s: np.ndarray) -> np.ndarray:
        """Per-tick decay of time constants ``tau_s`` under the graph's integration rule
        (float64). :meth:`validate` refuses ``tau < dt`` for ``'euler'`` (a negative decay)."""
        tau = np.asarray(tau_s, np.float64)
        if self.integration == "exact":
            return np.exp(-self.dt_s / tau)
        return 1.0 - self.dt_s / tau

    def summary(self) -> list[dict[str, Any]]:
        """One row per node in evaluation order: name, kind, size, inputs (recurrent marked)."""
        rows = []
        for name in self._order:
            node = self.nodes[name]
            ins = [s + (" (t-1)" if self.is_recurrent(s, name) else "") for s in self.predecessors(name)]
            rows.append({"name": name, "kind": node.kind, "shape": list(node.output_shape()),
                         "inputs": ins})
        return rows


def _labels(name: str, values: list[str] | None, n: int, default: str) -> list[str]:
    if values is None:
        return [f"{default}{k}" for k in range(n)] if default == "y" else [default] * n
    values = list(values)
    if not all(isinstance(s, str) for s in values) or len(values) != n:
        raise GraphError(f"model: {name} must be {n} strings (one per output), got {values!r}")
    return values


@dataclass(eq=False)
class GraphModel:
    """A graph plus what a model file stores beside it (:mod:`rtsnn.snn.model_file`, v2)."""

    graph: Graph
    provenance: dict[str, Any] = field(default_factory=dict)
    output_labels: list[str] | None = None
    output_units: list[str] | None = None
    input_contract: InputContract | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.graph, Graph):
            raise GraphError(f"model: graph must be a Graph, got {type(self.graph).__name__}")
        self.validate()

    def validate(self) -> None:
        self.graph.validate()
        self.output_labels = _labels("output_labels", self.output_labels, self.n_out, "y")
        self.output_units = _labels("output_units", self.output_units, self.n_out, "a.u.")
        check_model_metadata(self.provenance, self.input_contract, self.graph.dt_s, "graph's")

    @property
    def dt_s(self) -> float:
        return self.graph.dt_s

    @property
    def n_in(self) -> int:
        return self.graph.n_in

    @property
    def n_out(self) -> int:
        return self.graph.n_out

    def copy(self) -> GraphModel:
        return GraphModel(self.graph.copy(), copy.deepcopy(self.provenance), list(self.output_labels or []),
                          list(self.output_units or []), self.input_contract)


# names of the nodes of the single-layer graph (graph_from_model / single_layer_parts)
SINGLE = {"input": "input", "w_in": "w_in", "hidden": "hidden", "w_rec": "w_rec", "trace": "trace",
          "w_out": "w_out", "output": "output"}


def graph_from_model(model: Any) -> GraphModel:
    """A single-layer :class:`rtsnn.snn.params.Model` as the graph above. The model's nodes and
    weight arrays are shared, not copied (the nodes are named 'hidden' and 'trace')."""
    w = model.weights
    nodes: dict[str, Node] = {
        "input": Input(shape=(w.n_in,)),
        "w_in": Linear(weight=w.w_in),
        "hidden": model.hidden,
        "w_rec": Linear(weight=w.w_rec),
        "trace": model.trace,
        "w_out": Affine(weight=w.w_out, bias=w.b_out),
        "output": Output(shape=(w.n_out,)),
    }
    edges = [("input", "w_in"), ("w_in", "hidden"), ("hidden", "w_rec"), ("w_rec", "hidden"),
             ("hidden", "trace"), ("trace", "w_out"), ("w_out", "output")]
    # keep the model's own arrays (Linear/Affine made float32 contiguous copies only if needed)
    nodes["w_in"].weight, nodes["w_rec"].weight = w.w_in, w.w_rec  # type: ignore[attr-defined]
    nodes["w_out"].weight, nodes["w_out"].bias = w.w_out, w.b_out  # type: ignore[attr-defined]
    return GraphModel(Graph(nodes, edges, dt_s=model.dt_s, integration="exact"), provenance=dict(model.provenance),
                      output_labels=list(model.output_labels or []), output_units=list(model.output_units or []),
                      input_contract=model.input_contract)


def model_from_graph(gm: GraphModel) -> Any | None:
    """The :class:`rtsnn.snn.params.Model` a graph is, when it is exactly the single-layer
    pattern of :func:`graph_from_model` and its nodes are what the fused kernel computes
    (:func:`rtsnn.snn.params.layer_constants`: uniform parameters, subtractive reset at the
    next tick, ``spike_if`` ``'>='``, unit gains, no leak potential, time constants > dt_s);
    None otherwise. Nodes and arrays are shared."""
    from rtsnn.snn.params import Model, Weights

    g = gm.graph
    kinds = {name: node.kind for name, node in g.nodes.items()}
    shape = {"input": "Input", "w_in": "Linear", "hidden": kinds.get("hidden"), "w_rec": "Linear",
             "trace": "LI", "w_out": "Affine", "output": "Output"}
    if kinds != shape or kinds["hidden"] not in ("LIF", "ALIF") or g.integration != "exact":
        return None
    want = {("input", "w_in"), ("w_in", "hidden"), ("hidden", "w_rec"), ("w_rec", "hidden"),
            ("hidden", "trace"), ("trace", "w_out"), ("w_out", "output")}
    if set(g.edges) != want or g.edges.index(("w_in", "hidden")) > g.edges.index(("w_rec", "hidden")):
        return None
    if np.any(np.diagonal(g.nodes["w_rec"].weight)):  # type: ignore[attr-defined]
        return None
    try:
        weights = Weights(g.nodes["w_in"].weight, g.nodes["w_rec"].weight,  # type: ignore[attr-defined]
                          g.nodes["w_out"].weight, g.nodes["w_out"].bias)  # type: ignore[attr-defined]
        return Model(g.nodes["hidden"], g.nodes["trace"], weights, g.dt_s,  # type: ignore[arg-type]
                     provenance=dict(gm.provenance), output_labels=list(gm.output_labels or []),
                     output_units=list(gm.output_units or []), input_contract=gm.input_contract)
    except ValueError:
        return None
