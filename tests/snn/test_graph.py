"""The model graph (rtsnn/snn/graph.py, rtsnn/snn/nodes.py): evaluation order, recurrent edges,
today's single layer as a graph and back, and every bad input refused with one message that
names the node (or edge) and the field."""

from __future__ import annotations

import numpy as np
import pytest

from rtsnn.snn import (ALIF, IF, LI, LIF, Affine, AvgPool2d, Conv2d, CubaLIF, Delay, Flatten, Graph, GraphError,
                       GraphModel, Input, Linear, Model, Output, SumPool2d, graph_from_model,
                       model_from_graph, single_layer)
from rtsnn.snn.nodes import MAX_DELAY_STEPS, node_from_parts

F32 = np.float32


def _w(rng, n_in, n_out, scale=0.5):
    return (rng.standard_normal((n_in, n_out)) * scale).astype(F32)


def _chain(**over):
    """input(3) -> w1 -> h(LIF 4) -> w2 -> out(2), h -> wr -> h."""
    rng = np.random.default_rng(0)
    nodes = {"in": Input(shape=(3,)), "w1": Linear(weight=_w(rng, 3, 4)), "h": LIF(n=4),
             "wr": Linear(weight=_w(rng, 4, 4)), "w2": Affine(weight=_w(rng, 4, 2), bias=np.zeros(2)),
             "out": Output(shape=(2,))}
    nodes.update(over.pop("nodes", {}))
    edges = over.pop("edges", [("in", "w1"), ("w1", "h"), ("h", "wr"), ("wr", "h"), ("h", "w2"), ("w2", "out")])
    return Graph(nodes, edges, **over)


def test_order_recurrent_edges_and_summary():
    g = _chain()
    assert g.order() == ["in", "w1", "h", "w2", "out", "wr"]
    assert g.is_recurrent("wr", "h") and not g.is_recurrent("w1", "h") and not g.is_recurrent("h", "wr")
    assert (g.n_in, g.n_out) == (3, 2)
    rows = {r["name"]: r for r in g.summary()}
    assert rows["h"] == {"name": "h", "kind": "LIF", "shape": [4], "inputs": ["w1", "wr (t-1)"]}
    assert rows["out"]["inputs"] == ["w2"] and rows["in"]["inputs"] == []


def test_edge_order_decides_which_edge_is_recurrent():
    """The walk follows edges in their listed order, so listing h -> h2 first makes h2 -> h the back edge."""
    rng = np.random.default_rng(1)
    nodes = {"in": Input(shape=(2,)), "w": Linear(weight=_w(rng, 2, 3)), "h": LIF(n=3), "h2": LIF(n=3),
             "out": Output(shape=(3,))}
    g = Graph(nodes, [("in", "w"), ("w", "h"), ("h", "h2"), ("h2", "h"), ("h2", "out")])
    assert g.is_recurrent("h2", "h") and g.order().index("h") < g.order().index("h2")


def test_cycles_through_state_are_accepted():
    rng = np.random.default_rng(2)
    # through a Delay only: a projection loop closed by a delay line
    nodes = {"in": Input(shape=(2,)), "p": Linear(weight=_w(rng, 2, 2)), "d": Delay(steps=[1, 2]),
             "q": Linear(weight=_w(rng, 2, 2)), "out": Output(shape=(2,))}
    g = Graph(nodes, [("in", "p"), ("p", "d"), ("d", "q"), ("q", "p"), ("d", "out")])
    assert g.is_recurrent("q", "p")
    # through an LI trace
    nodes = {"in": Input(shape=(2,)), "p": Linear(weight=_w(rng, 2, 2)), "li": LI(n=2),
             "out": Output(shape=(2,))}
    assert Graph(nodes, [("in", "p"), ("p", "li"), ("li", "p"), ("li", "out")]).is_recurrent("li", "p")


def test_algebraic_loop_refused_naming_the_cycle():
    rng = np.random.default_rng(3)
    nodes = {"in": Input(shape=(2,)), "p": Linear(weight=_w(rng, 2, 2)), "q": Linear(weight=_w(rng, 2, 2)),
             "out": Output(shape=(2,))}
    with pytest.raises(GraphError) as err:
        Graph(nodes, [("in", "p"), ("p", "q"), ("q", "p"), ("q", "out")])
    assert str(err.value) == ("edge q -> p: closes the cycle p -> q -> p with no state on it (no neuron, LI or "
                              "Delay node): an algebraic loop")


def test_algebraic_loop_beside_a_stateful_cycle_is_refused():
    """p -> s -> q -> p passes through the neuron s, but p -> q -> p does not: the walk meets the
    back edge q -> p only along p -> s -> q, so the stateless loop needs its own check."""
    rng = np.random.default_rng(4)
    nodes = {"in": Input(shape=(2,)), "p": Linear(weight=_w(rng, 2, 2)), "s": LIF(n=2),
             "q": Linear(weight=_w(rng, 2, 2)), "out": Output(shape=(2,))}
    with pytest.raises(GraphError, match=r"edge q -> p: closes the cycle p -> q -> p with no state on it"):
        Graph(nodes, [("in", "p"), ("p", "s"), ("s", "q"), ("q", "p"), ("p", "q"), ("s", "out")])


def test_shape_mismatch_between_nodes_names_both():
    rng = np.random.default_rng(5)
    with pytest.raises(GraphError) as err:
        _chain(nodes={"w1": Linear(weight=_w(rng, 3, 5))})
    assert str(err.value) == "edge w1 -> h: node 'w1' gives 5 values (shape [5]), node 'h' takes 4"
    with pytest.raises(GraphError, match=r"edge in -> w1: node 'in' gives 6 values \(shape \[6\]\), node 'w1' "
                                         r"takes 3"):
        _chain(nodes={"in": Input(shape=(6,))})


def test_parameter_array_of_the_wrong_length_names_node_and_field():
    with pytest.raises(GraphError) as err:
        LIF(name="h", n=4, tau_mem_s=np.full(3, 0.02))
    assert str(err.value) == "node 'h': tau_mem_s: must have one value per neuron (4), got shape [3]"
    with pytest.raises(GraphError, match=r"node 'a': beta_adapt: must have one value per neuron \(5\), got shape "
                                         r"\[2, 5\]"):
        ALIF(name="a", n=5, beta_adapt=np.zeros((2, 5)))
    with pytest.raises(GraphError, match=r"node 'h': reset: must be one mode or one per neuron \(4\), got 3"):
        LIF(name="h", n=4, reset=["zero", "subtract", "zero"])
    with pytest.raises(GraphError, match=r"node 'w': bias: must have n_out = 3 values"):
        Affine(name="w", weight=np.zeros((2, 3)), bias=np.zeros(2))


@pytest.mark.parametrize("make, field", [
    (lambda: LIF(name="h", n=3, tau_mem_s=-0.02), "tau_mem_s"),
    (lambda: LIF(name="h", n=3, tau_mem_s=[0.02, 0.0, 0.02]), "tau_mem_s"),
    (lambda: CubaLIF(name="h", n=3, tau_syn_s=-5e-3), "tau_syn_s"),
    (lambda: ALIF(name="h", n=3, tau_adapt_s=[0.1, 0.1, -0.1]), "tau_adapt_s"),
    (lambda: LI(name="h", n=3, tau_s=-0.02), "tau_s"),
])
def test_negative_time_constant_names_node_and_field(make, field):
    with pytest.raises(GraphError) as err:
        make()
    assert str(err.value).startswith(f"node 'h': {field}: must be > 0, got ")


@pytest.mark.parametrize("make, fragment", [
    (lambda: LIF(name="h", n=2, v_th=[1.0, np.nan]), "node 'h': v_th: must be finite, got 1 NaN/inf value(s)"),
    (lambda: LIF(name="h", n=2, v_th=0.0), "node 'h': v_th: must be > 0, got "),
    (lambda: IF(name="h", n=2, refractory_s=-1e-3), "node 'h': refractory_s: must be >= 0"),
    (lambda: LIF(name="h", n=2, reset="hold"), "node 'h': reset: must be one of subtract, zero, got 'hold'"),
    (lambda: LIF(name="h", n=2, reset_at="later"), "node 'h': reset_at: must be one of next, now"),
    (lambda: LIF(name="h"), "node 'h': n: must be an int >= 1"),
    (lambda: Delay(name="d", steps=[1.5, 2]), "node 'd': steps: must be whole ticks"),
    (lambda: Delay(name="d", steps=[MAX_DELAY_STEPS + 1]), f"node 'd': steps: must be <= {MAX_DELAY_STEPS} ticks"),
    (lambda: Delay(name="d", steps=[-1, 2]), "node 'd': steps: must be >= 0"),
    (lambda: Linear(name="w", weight=np.zeros(3)), "node 'w': weight: must be 2-D, got shape [3]"),
    (lambda: Linear(name="w", weight=[[1.0, np.inf]]), "node 'w': weight: must be finite"),
    (lambda: Input(name="i", shape=(0,)), "node 'i': shape: must be a list of positive ints, got [0]"),
    (lambda: Conv2d(name="c", weight=np.zeros((4, 2, 3, 3)), bias=np.zeros(4), input_shape=(3, 8, 8)),
     "node 'c': input_shape: has 3 channels, the weight expects 2 x groups 1"),
    (lambda: SumPool2d(name="p", kernel_size=5, input_shape=(1, 4, 4)), "node 'p': kernel_size: [5, 5] does not fit"),
])
def test_bad_node_parameters(make, fragment):
    with pytest.raises(GraphError) as err:
        make()
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_euler_integration_refuses_a_time_constant_below_the_tick():
    with pytest.raises(GraphError) as err:
        _chain(nodes={"h": LIF(n=4, tau_mem_s=[0.02, 0.02, 5e-4, 0.02])}, integration="euler")
    assert str(err.value).startswith("node 'h': tau_mem_s: must be >= dt_s (0.001 s) under 'euler' integration")
    g = _chain(nodes={"h": LIF(n=4, tau_mem_s=0.02)}, integration="euler")
    np.testing.assert_allclose(g.decay(np.array([0.02])), [0.95])
    assert _chain().decay(np.array([0.02]))[0] == pytest.approx(np.exp(-0.05))


@pytest.mark.parametrize("over, fragment", [
    (dict(edges=[("in", "w1"), ("w1", "h"), ("h", "w2"), ("w2", "out"), ("h", "ghost")]),
     "edge h -> ghost: no node named 'ghost'"),
    (dict(edges=[("in", "w1"), ("w1", "h"), ("h", "w2"), ("w2", "out"), ("h", "w2")]), "edge h -> w2: appears twice"),
    (dict(edges=[("in", "w1"), ("w1", "h"), ("h", "w2"), ("w2", "out"), ("in",)]), "graph: an edge must be a pair"),
    (dict(edges=[("in", "w1"), ("w1", "h"), ("h", "w2"), ("w2", "out"), 7]), "graph: an edge must be a pair"),
    (dict(edges="in->out"), "graph: edges must be a list"),
    (dict(edges=[("in", "w1"), ("w1", "h"), ("h", "w2"), ("w2", "out")]), "node 'wr': not reachable from the input"),
    (dict(edges=[("in", "w1"), ("w1", "h"), ("h", "w2"), ("w2", "out"), ("h", "wr"), ("wr", "h"), ("out", "w2")]),
     "edge out -> w2: the Output node has no outgoing edge"),
    (dict(nodes={"in2": Input(shape=(3,))}), "graph: needs exactly one Input and one Output node"),
    (dict(dt_s=0.0), "graph: dt_s must be a number of seconds in (0, 10]"),
    (dict(dt_s=float("nan")), "graph: dt_s must be a number of seconds"),
    (dict(integration="rk4"), "graph: integration must be one of exact, euler"),
])
def test_bad_graph_structure(over, fragment):
    with pytest.raises(GraphError) as err:
        _chain(**over)
    assert fragment in str(err.value)


def test_a_node_that_is_not_a_node():
    with pytest.raises(GraphError, match=r"node 'h': must be a node, got dict"):
        _chain(nodes={"h": {"kind": "LIF"}})


def test_node_from_parts_refuses_unknown_kind_and_fields():
    with pytest.raises(GraphError, match=r"node 'x': kind: unknown node kind 'Spiky'"):
        node_from_parts("x", {"kind": "Spiky"}, {})
    with pytest.raises(GraphError, match=r"node 'x': unknown field\(s\) colour for kind LIF"):
        node_from_parts("x", {"kind": "LIF", "n": 2, "colour": "red"}, {})
    with pytest.raises(GraphError, match=r"node 'x': unknown array 'bias' for kind Linear"):
        node_from_parts("x", {"kind": "Linear"}, {"weight": np.zeros((2, 2)), "bias": np.zeros(2)})
    with pytest.raises(GraphError, match=r"node 'x': must be an object, got list"):
        node_from_parts("x", ["LIF"], {})  # type: ignore[arg-type]


def test_conv_kinds_construct_with_their_shapes():
    conv = Conv2d(name="c", weight=np.zeros((4, 2, 3, 3)), bias=np.zeros(4), input_shape=(2, 8, 8), padding=1,
                  stride=2)
    assert conv.output_shape() == (4, 4, 4) and conv.input_size() == 128
    pool = SumPool2d(name="p", kernel_size=2, input_shape=(4, 4, 4))
    avg = AvgPool2d(name="a", kernel_size=(2, 1), input_shape=(4, 2, 2))
    assert pool.output_shape() == (4, 2, 2) and avg.output_shape() == (4, 1, 2)
    flat = Flatten(name="f", input_shape=(4, 1, 2))
    assert flat.output_size() == 8


def test_single_layer_model_as_a_graph_and_back():
    m = Model.random(5, 7, 2, *single_layer("alif", 7, beta_adapt=0.2, refractory_s=2e-3, tau_out_s=0.05), seed=1,
                     readout_scale=1.0)
    m.output_labels = ["vx", "vy"]
    gm = graph_from_model(m)
    g = gm.graph
    assert [r["name"] + ":" + r["kind"] for r in g.summary()] == [
        "input:Input", "w_in:Linear", "hidden:ALIF", "trace:LI", "w_out:Affine", "output:Output", "w_rec:Linear"]
    assert g.is_recurrent("w_rec", "hidden")
    assert g.nodes["w_in"].weight is m.weights.w_in  # shared, not copied
    assert g.nodes["hidden"] is m.hidden and g.nodes["trace"] is m.trace  # the model's own nodes
    back = model_from_graph(gm)
    assert back is not None and back.hidden is m.hidden and back.constants == m.constants
    assert back.output_labels == ["vx", "vy"]
    assert back.weights.w_rec is m.weights.w_rec
    # anything beyond the pattern stays a graph
    for change in (lambda: setattr(g.nodes["hidden"], "reset_at", "now"),
                   lambda: setattr(g.nodes["hidden"], "spike_if", ">"),
                   lambda: g.nodes["hidden"].tau_mem_s.__setitem__(0, 0.03),
                   lambda: g.nodes["trace"].gain.__setitem__(1, 2.0)):
        gm2 = graph_from_model(m.copy())  # a copy: the graph shares the model's nodes
        g = gm2.graph
        change()
        assert model_from_graph(gm2) is None
    cuba = GraphModel(_chain(nodes={"h": CubaLIF(n=4)}))
    assert model_from_graph(cuba) is None


def test_graph_model_checks_labels_and_contract():
    from rtsnn.snn.contract import InputContract

    with pytest.raises(GraphError, match=r"model: output_labels must be 2 strings"):
        GraphModel(_chain(), output_labels=["a"])
    with pytest.raises(GraphError, match=r"model: provenance must be JSON-serialisable"):
        GraphModel(_chain(), provenance={"x": object()})
    c = InputContract(n_channels=3, dt_s=0.01, encoder_kind="passthrough", encoder_options={"n_channels": 3})
    with pytest.raises(GraphError, match=r"input_contract.dt_s \(0.01 s\) differs from the graph's dt_s"):
        GraphModel(_chain(), input_contract=c)
    gm = GraphModel(_chain(dt_s=0.01), input_contract=c)
    assert gm.output_labels == ["y0", "y1"] and gm.output_units == ["a.u.", "a.u."]
    cp = gm.copy()
    assert cp.graph.nodes["w1"].weight is not gm.graph.nodes["w1"].weight
    np.testing.assert_array_equal(cp.graph.nodes["w1"].weight, gm.graph.nodes["w1"].weight)


def test_a_strict_threshold_graph_is_not_run_by_the_fused_network():
    """A single layer that spikes on v > v_th (NIR's rule) keeps its rule: build_network runs it
    as a graph, and where v hits v_th exactly it stays silent while the fused '>=' model spikes."""
    from rtsnn.snn import GraphNetwork, Network, build_network

    m = Model.random(1, 1, 1, *single_layer("lif", 1, v_th=0.5, tau_out_s=0.05), seed=0, readout_scale=1.0)
    m.weights.w_in[...] = 0.5
    m.weights.w_rec[...] = 0.0
    strict = graph_from_model(m.copy())
    strict.graph.nodes["hidden"].spike_if = ">"
    assert model_from_graph(strict) is None
    net_ge, net_gt = build_network(graph_from_model(m)), build_network(strict)
    assert isinstance(net_ge, Network) and isinstance(net_gt, GraphNetwork)
    xs = np.ones((1, 1), np.float32)  # first tick: v = 0 + 0.5 = v_th exactly
    assert net_ge.run(xs)[1].tolist() == [[1.0]]
    assert net_gt.run(xs)[1].tolist() == [[0.0]]


@pytest.mark.parametrize("make, message", [
    (lambda: LIF(name="h", n=3, tau_mem_s=[0.02, -0.02, 0.02]),
     "node 'h': tau_mem_s: must be > 0, got -0.02 at neuron 1"),
    (lambda: IF(name="h", n=2, refractory_s=[0.0, -1e-3]),
     "node 'h': refractory_s: must be >= 0, got -0.001 at neuron 1"),
    (lambda: Delay(name="d", steps=[2, -1]), "node 'd': steps: must be >= 0, got -1 at neuron 1"),
])
def test_bad_value_messages_print_plain_numbers(make, message):
    """The offending value prints as a plain number (not numpy 2's np.float64(-0.02))."""
    with pytest.raises(GraphError) as err:
        make()
    assert str(err.value) == message
