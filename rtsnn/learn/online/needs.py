"""What an online learner needs from the model's topology, and the one-line refusal when a
model graph does not have it.

Two needs cover today's learners:

* **a readout** (:func:`readout_problem`): the output is ``LI -> Affine -> Output``, a leaky
  trace of some layer read out linearly. The ridge readout and the actor-critic refit that
  ``Affine`` (``w_out``, ``b_out``) from the trace (``r``, the backend's ``features()``).
* **a trainable last recurrent layer** (:func:`last_layer`): ``src -> w_in (Linear) -> hidden
  (LIF | ALIF) -> trace (LI) -> w_out (Affine) -> Output`` with ``hidden -> w_rec (Linear) ->
  hidden`` recurrent, uniform neuron parameters of today's model (subtractive reset at the
  next tick, unit gains, no leak potential, ``'exact'`` integration), and ``src`` the
  :class:`~rtsnn.snn.nodes.Input` or a spiking layer. e-prop trains ``w_in``, ``w_rec``,
  ``w_out`` (and ``b_out``) of that layer; its input ``x[t]`` is ``src``'s output of the same
  tick (the previous layer's spikes), and every earlier layer is frozen. Today's single-layer
  model is the case ``src = Input``.

Messages read ``needs ...; model graph has ...``; the session prefixes the learner's name.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from rtsnn.snn.graph import GraphModel, Graph, model_from_graph
from rtsnn.snn.nodes import Input, Output

NEEDS_READOUT = "needs an LI -> Affine -> Output readout (a leaky trace read out linearly)"
NEEDS_LAYER = ("needs a recurrent LIF/ALIF layer (uniform parameters, subtractive reset) fed by the input or "
               "a spiking layer and feeding an LI -> Affine readout; earlier layers stay frozen")


def as_graph(model: Any) -> GraphModel | None:
    """``model`` as a GraphModel when it is one; None for today's :class:`~rtsnn.snn.params.Model`
    (which always has what every learner needs)."""
    return model if isinstance(model, GraphModel) else None


def readout_parts(graph: Graph) -> tuple[str, str] | None:
    """``(trace, affine)`` node names when the output is ``LI -> Affine -> Output``, else None."""
    preds = graph.predecessors(graph.output_name)
    if len(preds) != 1 or graph.nodes[preds[0]].kind != "Affine":
        return None
    aff = preds[0]
    src = graph.predecessors(aff)
    if len(src) != 1 or graph.nodes[src[0]].kind != "LI" or graph.successors(aff) != [graph.output_name]:
        return None
    return src[0], aff


def describe(graph: Graph) -> str:
    """``model graph has 2 spiking layers (l0 CubaLIF, l1 LIF), output path l1 LIF -> trace LI ->
    w_out Affine -> output Output``."""
    spiking = [f"{n} {graph.nodes[n].kind}" for n in graph.order() if graph.nodes[n].spiking]
    shown = ", ".join(spiking[:6]) + (f", ... {len(spiking) - 6} more" if len(spiking) > 6 else "")
    chain = [graph.output_name]  # back from the output to the last spiking layer (5 nodes at most)
    while len(chain) < 5 and not graph.nodes[chain[0]].spiking:
        preds = [p for p in graph.predecessors(chain[0]) if not graph.is_recurrent(p, chain[0])]
        if len(preds) != 1:
            if len(preds) > 1:
                chain.insert(0, "(" + " + ".join(preds) + ")")
            break
        chain.insert(0, preds[0])
    path = " -> ".join(c if c.startswith("(") else f"{c} {graph.nodes[c].kind}" for c in chain)
    return (f"model graph has {len(spiking)} spiking layer{'s' if len(spiking) != 1 else ''}"
            + (f" ({shown})" if spiking else "") + f", output path {path}")


def readout_problem(model: Any) -> str | None:
    """None when the model has an ``LI -> Affine -> Output`` readout, else the reason."""
    gm = as_graph(model)
    if gm is None or readout_parts(gm.graph) is not None:
        return None
    return f"{NEEDS_READOUT}; {describe(gm.graph)}"


@dataclass
class LastLayer:
    """The trainable last recurrent layer of a graph (node names), and ``model``: that layer as
    today's single-layer :class:`~rtsnn.snn.params.Model` whose weight arrays *are* the graph's
    (in-place updates reach the running network). ``source`` feeds ``w_in``; ``frozen``: the
    spiking layers before it (other than ``hidden``)."""

    source: str
    w_in: str
    hidden: str
    w_rec: str
    trace: str
    w_out: str
    model: Any
    frozen: list[str] = field(default_factory=list)
    from_input: bool = False  # ``source`` is the graph's Input (today's single-layer model)


def find_last_layer(gm: GraphModel) -> tuple[LastLayer | None, str]:
    """The graph's trainable last recurrent layer, or None and why not (one clause)."""
    g = gm.graph
    parts = readout_parts(g)
    if parts is None:
        return None, "its output is not an LI -> Affine readout"
    trace, w_out = parts
    preds = g.predecessors(trace)
    if len(preds) != 1 or g.nodes[preds[0]].kind not in ("LIF", "ALIF"):
        got = ", ".join(f"{p} {g.nodes[p].kind}" for p in preds) or "nothing"
        return None, f"the readout trace {trace!r} is fed by {got}, not by one LIF/ALIF layer"
    hidden = preds[0]
    ins = g.predecessors(hidden)
    rec = [p for p in ins if g.is_recurrent(p, hidden) and g.nodes[p].kind == "Linear"
           and g.predecessors(p) == [hidden] and g.successors(p) == [hidden]]
    ff = [p for p in ins if p not in rec]
    if len(rec) != 1:
        return None, f"its last layer {hidden!r} has no recurrent Linear projection onto itself"
    if len(ff) != 1 or g.nodes[ff[0]].kind != "Linear" or len(g.predecessors(ff[0])) != 1 \
            or g.successors(ff[0]) != [hidden]:
        return None, (f"its last layer {hidden!r} is not fed by exactly one Linear projection from one layer "
                      f"(inputs: {', '.join(ins)})")
    w_in, w_rec = ff[0], rec[0]
    if sorted(g.successors(hidden)) != sorted([w_rec, trace]) or g.successors(trace) != [w_out]:
        return None, f"its last layer {hidden!r} feeds more than its recurrent projection and the readout trace"
    source = g.predecessors(w_in)[0]
    src_node = g.nodes[source]
    if not (src_node.spiking or src_node.kind == "Input"):
        return None, (f"its last layer {hidden!r} is fed from {source} {src_node.kind}, not from the input or "
                      f"a spiking layer")
    names = {"input": source, "w_in": w_in, "hidden": hidden, "w_rec": w_rec, "trace": trace, "w_out": w_out,
             "output": g.output_name}
    # a graph of shallow copies (the graph names its nodes: the originals keep theirs; the
    # weight arrays are shared) that model_from_graph recognises when the layer is today's
    nodes: dict[str, Any] = {}
    for key, name in names.items():
        if key == "input":
            nodes[key] = Input(shape=(src_node.output_size(),))
        elif key == "output":
            nodes[key] = Output(shape=(g.n_out,))
        else:
            nodes[key] = copy.copy(g.nodes[name])
    edges = [("input", "w_in"), ("w_in", "hidden"), ("hidden", "w_rec"), ("w_rec", "hidden"),
             ("hidden", "trace"), ("trace", "w_out"), ("w_out", "output")]
    sub = GraphModel(Graph(nodes, edges, dt_s=g.dt_s, integration=g.integration), provenance={},
                     output_labels=list(gm.output_labels or []), output_units=list(gm.output_units or []))
    single = model_from_graph(sub)
    if single is None:
        return None, f"its last layer is not today's neuron: {_why_not_single(g, hidden, w_rec, trace)}"
    w = single.weights
    for arr, node, fld in ((w.w_in, w_in, "weight"), (w.w_rec, w_rec, "weight"), (w.w_out, w_out, "weight"),
                           (w.b_out, w_out, "bias")):
        if arr is not getattr(g.nodes[node], fld):  # a copy would train weights the network never sees
            return None, f"node {node!r}: {fld}: not a float32 array the layer can share"
    frozen = [n for n in g.order() if g.nodes[n].spiking and n != hidden]
    return LastLayer(source, w_in, hidden, w_rec, trace, w_out, single, frozen, source == g.input_name), ""


def _why_not_single(g: Graph, hidden: str, w_rec: str, trace: str) -> str:
    """The first way layer ``hidden`` (with ``w_rec``, ``trace``) differs from today's neuron."""
    import numpy as np

    if g.integration != "exact":
        return f"the graph integrates with {g.integration!r}, not 'exact'"
    h, tr = g.nodes[hidden], g.nodes[trace]
    per_neuron = [(hidden, "tau_mem_s"), (hidden, "v_th"), (hidden, "refractory_s"), (trace, "tau_s")]
    if h.kind == "ALIF":
        per_neuron += [(hidden, "tau_adapt_s"), (hidden, "beta_adapt")]
    for name, fld in per_neuron:
        arr = np.asarray(getattr(g.nodes[name], fld))
        if not np.all(arr == arr[0]):
            return f"node {name!r}: {fld} differs across neurons"
    if h.reset_at != "next":  # type: ignore[attr-defined]
        return f"node {hidden!r}: reset_at is {h.reset_at!r}, not 'next'"  # type: ignore[attr-defined]
    if np.any(h.reset != 0):  # type: ignore[attr-defined]
        return f"node {hidden!r}: reset to zero, not subtractive"
    for name, node in ((hidden, h), (trace, tr)):
        if np.any(node.gain != 1):  # type: ignore[attr-defined]
            return f"node {name!r}: gain is not 1"
        if np.any(node.v_leak != 0):  # type: ignore[attr-defined]
            return f"node {name!r}: v_leak is not 0"
    if np.any(np.diagonal(g.nodes[w_rec].weight)):  # type: ignore[attr-defined]
        return f"node {w_rec!r}: weight has self-connections (a non-zero diagonal)"
    taus = [(hidden, "tau_mem_s"), (trace, "tau_s")] + ([(hidden, "tau_adapt_s")] if h.kind == "ALIF" else [])
    for name, fld in taus:
        if not float(np.asarray(getattr(g.nodes[name], fld))[0]) > g.dt_s:
            return f"node {name!r}: {fld} is not longer than the tick ({g.dt_s:g} s)"
    return f"node {hidden!r}: parameters the fused single-layer model cannot hold"


def last_layer_problem(model: Any) -> str | None:
    """None when e-prop can train the model's last recurrent layer, else the reason."""
    gm = as_graph(model)
    if gm is None:
        return None
    layer, why = find_last_layer(gm)
    if layer is not None:
        return None
    return f"{NEEDS_LAYER}; {describe(gm.graph)}, and {why}"
