"""The model graph BPTT trains (rtsnn.learn.offline.bptt_graph): the layered pattern is
compiled, anything else is refused naming the node and field, and the nodes' per-neuron
initial leaks and thresholds reach the parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtsnn.learn.offline.bptt import to_graph
from rtsnn.learn.offline.bptt_engine import Engine, init_params
from rtsnn.learn.offline.bptt_graph import BpttOptions, compile_graph, layered_graph
from rtsnn.snn.graph import Graph
from rtsnn.snn.nodes import ALIF, LI, LIF, Affine, CubaLIF, GraphError, Input, Linear, Output


def _chain(hidden, *, rec=True, n_in=3, n_out=2, trace=None):
    """input -> w_in -> <hidden> (-> w_rec -> hidden) -> trace -> readout -> out, free names."""
    n = hidden.n
    nodes = {"inp": Input(shape=(n_in,)), "w_in": Linear(weight=np.zeros((n_in, n))), "h": hidden,
             "tr": trace if trace is not None else LI(tau_s=30e-3, n=n),
             "ro": Affine(weight=np.zeros((n, n_out)), bias=np.zeros(n_out)), "out": Output(shape=(n_out,))}
    edges = [("inp", "w_in"), ("w_in", "h")]
    if rec:
        nodes["w_rec"] = Linear(weight=np.zeros((n, n)))
        edges += [("h", "w_rec"), ("w_rec", "h")]
    edges += [("h", "tr"), ("tr", "ro"), ("ro", "out")]
    return Graph(nodes, edges, dt_s=1e-3)


def test_any_names_compile_to_the_plan_and_train():
    g = _chain(ALIF(n=4, tau_mem_s=25e-3, tau_adapt_s=150e-3, beta_adapt=0.3, refractory_s=2e-3))
    plan = compile_graph(g)
    assert plan.layers == (4,) and plan.recurrent == (True,) and plan.n_out == 2 and plan.model == "alif"
    assert plan.names["layer"] == ["h"] and plan.names["r"] == ["w_rec"] and plan.names["w_out"] == "ro"
    assert plan.rho == math.exp(-1e-3 / 150e-3) and plan.beta == 0.3 and plan.n_ref == 2
    assert plan.kappa == math.exp(-1e-3 / 30e-3) and plan.kappa2 is None
    p = init_params(g, 0)
    assert set(p) == {"w0", "r0", "alpha0", "vth0", "w_out", "b_out", "kappa"}
    y = Engine(g).forward(p, np.ones((5, 1, 3))).y
    assert y.shape == (5, 1, 2)
    # the export keeps the graph's names
    gm = to_graph(g, p)
    assert set(gm.graph.nodes) == set(g.nodes) and gm.graph.nodes["h"].kind == "ALIF"


def test_per_neuron_initial_leaks_and_thresholds_reach_init_params():
    tau = np.array([5e-3, 10e-3, 20e-3, 40e-3, 80e-3])
    vth = np.array([0.5, 0.8, 1.0, 1.3, 2.0])
    g = layered_graph(3, (5, 2), (True, False), 2, tau_mem_s=[tau, 30e-3], v_th=[vth, 0.7])
    p = init_params(g, 1)
    np.testing.assert_array_equal(p["alpha0"], np.array([math.exp(-1e-3 / t) for t in tau]))
    np.testing.assert_array_equal(p["vth0"], vth)
    np.testing.assert_array_equal(p["alpha1"], np.full(2, math.exp(-1e-3 / 30e-3)))
    np.testing.assert_array_equal(p["vth1"], np.full(2, 0.7))
    # a graph whose node is changed directly: the engine reads the node, not a default
    g.nodes["layer1"].v_th = np.array([0.6, 0.9])
    np.testing.assert_array_equal(init_params(g, 1)["vth1"], [0.6, 0.9])
    # and the export writes the trained (here: initial) per-neuron values back
    gm = to_graph(g, p)
    np.testing.assert_array_equal(gm.graph.nodes["layer0"].v_th, vth)
    np.testing.assert_allclose(gm.graph.nodes["layer0"].tau_mem_s, tau, rtol=1e-12)


def test_uniform_graph_values_give_the_scalar_arithmetic():
    """Uniform per-neuron values are the layer's scalar: weights scaled by 3 v_th (1 - alpha)."""
    g1 = layered_graph(4, (6,), (False,), None, tau_mem_s=np.full(6, 15e-3), v_th=np.full(6, 1.2))
    g2 = layered_graph(4, (6,), (False,), None, tau_mem_s=15e-3, v_th=1.2)
    for k, v in init_params(g1, 5).items():
        np.testing.assert_array_equal(v, init_params(g2, 5)[k], err_msg=k)


@pytest.mark.parametrize("make, match", [
    (lambda: _chain(CubaLIF(n=3)), r"BPTT cannot train node 'h' of kind CubaLIF yet"),
    (lambda: _chain(ALIF(n=3, tau_adapt_s=[0.1, 0.2, 0.1])),
     r"node 'h': tau_adapt_s: BPTT needs one value for all neurons"),
    # plain floats in the message (not numpy's np.float64(...) reprs)
    (lambda: _chain(LIF(n=3, refractory_s=[0.0, 1e-3, 0.0])),
     r"node 'h': refractory_s: BPTT needs one value for all neurons, got 0\.0 \.\. 0\.001$"),
    (lambda: _chain(LIF(n=3, reset=["subtract", "zero", "zero"])), r"node 'h': reset: BPTT needs one value"),
    (lambda: _chain(LIF(n=3, gain=2.0)), r"node 'h': gain: BPTT trains 1 only, got 2\.0$"),
    (lambda: _chain(LIF(n=3, v_leak=0.1)), r"node 'h': v_leak: BPTT trains 0 only"),
    (lambda: _chain(LIF(n=3, reset_at="now")), r"node 'h': reset_at: BPTT resets at the next tick"),
    (lambda: _chain(LIF(n=3, spike_if=">")), r"node 'h': spike_if: BPTT spikes when v >= v_th"),
    (lambda: _chain(LIF(n=3), trace=LI(tau_s=[0.02, 0.03, 0.02], n=3)),
     r"node 'tr': tau_s: BPTT needs one value for all neurons of a readout stage, got 0\.02 \.\. 0\.03$"),
    (lambda: _chain(LIF(n=3), trace=LI(tau_s=0.02, gain=0.5, n=3)),
     r"node 'tr': gain: BPTT's readout trace has gain 1 only, got 0\.5$"),
])
def test_graphs_bptt_cannot_train_are_refused_naming_the_node(make, match):
    g = make()
    with pytest.raises(GraphError, match=match) as err:
        Engine(g)
    assert "\n" not in str(err.value)
    with pytest.raises(GraphError, match=match):
        init_params(g, 0)


def test_other_shapes_are_refused_naming_the_node():
    # a neuron kind that differs between layers
    g = layered_graph(3, (4, 2), (False, False), None)
    g.nodes["layer1"] = ALIF(n=2)
    g = Graph(g.nodes, g.edges)
    with pytest.raises(GraphError, match=r"node 'layer1': kind: BPTT needs one value for every layer"):
        compile_graph(g)
    # a skip connection: a layer with two feedforward inputs
    g = layered_graph(3, (4, 4), (False, False), None)
    nodes = dict(g.nodes, skip=Linear(weight=np.zeros((3, 4))))
    with pytest.raises(GraphError, match=r"node 'input': edges: BPTT needs exactly one feedforward successor here, "
                                         r"got \['w0', 'skip'\]"):
        compile_graph(Graph(nodes, g.edges + [("input", "skip"), ("skip", "layer1")]))
    # a convolution where a Linear belongs
    from rtsnn.snn.nodes import Conv2d

    nodes = {"input": Input(shape=(1, 4, 4)), "conv": Conv2d(weight=np.zeros((2, 1, 3, 3)), bias=np.zeros(2),
                                                             input_shape=(1, 4, 4)),
             "layer0": LIF(n=8), "output": Output(shape=(8,))}
    with pytest.raises(GraphError, match=r"BPTT cannot train node 'conv' of kind Conv2d yet"):
        compile_graph(Graph(nodes, [("input", "conv"), ("conv", "layer0"), ("layer0", "output")]))
    with pytest.raises(GraphError, match="BPTT trains a model graph"):
        Engine({"n_in": 3})


def test_options_are_checked():
    with pytest.raises(ValueError, match="max_delay_steps must be an int"):
        BpttOptions(max_delay_steps=-1)
    with pytest.raises(ValueError, match="surrogate must be one of"):
        BpttOptions(surrogate="relu")
    assert BpttOptions.from_dict(BpttOptions(surrogate="atan", max_delay_steps=3).to_dict()) == \
        BpttOptions(surrogate="atan", max_delay_steps=3)
    # a key that is no option is refused, naming it (a version 1 architecture dict may skip them)
    with pytest.raises(ValueError, match=r"^bptt_options: unknown key\(s\) surogate; known: surrogate, "):
        BpttOptions.from_dict({"surrogate": "atan", "surogate": "atan"})
    assert BpttOptions.from_dict({"surrogate": "atan", "n_in": 3}, ignore_unknown=True) == BpttOptions(surrogate="atan")
    for bad in ([1], "atan", None):
        with pytest.raises(ValueError, match=r"^bptt_options must be an object, got "):
            BpttOptions.from_dict(bad)


@pytest.mark.parametrize("key, value, match", [
    ("n_in", 3.7, r"spec\.n_in: must be an int, got 3\.7"),
    ("n_in", "a", r"spec\.n_in: must be an int, got 'a'"),
    ("layers", [4, 2.5], r"spec\.layers: must be a list of ints, got \[4, 2\.5\]"),
    ("recurrent", ["false", False], r"spec\.recurrent: must be a list of true/false, got \['false', False\]"),
    ("n_out", 2.0, r"spec\.n_out: must be an int or null"),
    ("dt_s", "0.001", r"spec\.dt_s: must be a number"),
    ("tau_mem_s", True, r"spec\.tau_mem_s: must be a number"),
    ("detach_reset", "false", r"spec\.detach_reset: must be true or false, got 'false'"),
    ("surrogate_param", "2", r"spec\.surrogate_param: must be a number or null"),
    ("max_delay_steps", 1.5, r"spec\.max_delay_steps: must be an int"),
    ("reset", 1, r"spec\.reset: must be a string"),
])
def test_version_1_architecture_dict_is_type_checked_per_key(key, value, match):
    from rtsnn.learn.offline.bptt_graph import graph_from_spec_dict

    good = {"n_in": 3, "layers": [4, 2], "recurrent": [True, False], "n_out": 2, "dt_s": 1e-3, "tau_mem_s": 0.02,
            "detach_reset": False, "surrogate_param": None, "max_delay_steps": 0, "reset": "subtract",
            "old_key": 1}  # a key the conversion does not know: skipped
    g, opts = graph_from_spec_dict(good)
    assert compile_graph(g, opts).layers == (4, 2) and compile_graph(g, opts).recurrent == (True, False)
    with pytest.raises(ValueError, match="^" + match):
        graph_from_spec_dict({**good, key: value})


def test_graph_from_parts_takes_no_default():
    """dt_s, integration and every node array must be in the parts (as in a model file)."""
    from rtsnn.learn.offline.bptt_graph import graph_from_parts, graph_to_parts

    g = layered_graph(3, (4,), (True,), 2, dt_s=2e-3, tau_mem_s=np.linspace(10e-3, 40e-3, 4))
    meta, arrays = graph_to_parts(g)
    back = graph_from_parts(meta, arrays)
    assert back.dt_s == 2e-3 and back.integration == "exact"
    np.testing.assert_array_equal(back.nodes["layer0"].tau_mem_s, g.nodes["layer0"].tau_mem_s)
    for key in ("dt_s", "integration"):
        with pytest.raises(GraphError, match=rf"^graph: {key}: missing"):
            graph_from_parts({k: v for k, v in meta.items() if k != key}, arrays)
    for key in ("layer0/tau_mem_s", "w_out/bias", "w0/weight"):
        node, fld = key.split("/")
        with pytest.raises(GraphError, match=rf"^node '{node}': {fld}: missing \(neither a field of the node nor an "
                                             rf"array {key}; no default is taken\)$"):
            graph_from_parts(meta, {k: v for k, v in arrays.items() if k != key})
    nodes = {**meta["nodes"], "layer0": {k: v for k, v in meta["nodes"]["layer0"].items() if k != "reset_at"}}
    with pytest.raises(GraphError, match=r"^node 'layer0': reset_at: missing"):
        graph_from_parts({**meta, "nodes": nodes}, arrays)
    with pytest.raises(GraphError, match=r"^graph: edges must be \[source, target\] pairs"):
        graph_from_parts({**meta, "edges": [["input", "w0", "x"]]}, arrays)


def test_graph_difference_names_the_first_field_that_matters():
    from rtsnn.learn.offline.bptt_graph import graph_difference, options_difference

    g = layered_graph(3, (4,), (True,), 2)
    assert graph_difference(g, layered_graph(3, (4,), (True,), 2)) is None
    # the weights' values are drawn by the engine: only their shapes count
    other = layered_graph(3, (4,), (True,), 2)
    other.nodes["w0"].weight[...] = 0.5
    assert graph_difference(g, other) is None
    for kw, want in [({"tau_mem_s": 80e-3}, "node 'layer0': tau_mem_s[0]: 0.02 vs 0.08"),
                     ({"dt_s": 2e-3}, "graph: dt_s: 0.001 vs 0.002"),
                     ({"v_th": [np.array([1.0, 1.0, 0.9, 1.0])]}, "node 'layer0': v_th[2]: 1.0 vs 0.9"),
                     ({"model": "alif"}, "node 'layer0': kind: LIF vs ALIF"),
                     ({"tau_out_s": 30e-3}, "node 'trace': tau_s[0]: 0.02 vs 0.03")]:
        assert graph_difference(g, layered_graph(3, (4,), (True,), 2, **kw)) == want
    assert graph_difference(g, layered_graph(3, (4,), (False,), 2)) == "graph: nodes: ['input', 'layer0', " \
        "'output', 'r0', 'trace', 'w0', 'w_out'] vs ['input', 'layer0', 'output', 'trace', 'w0', 'w_out']"
    assert graph_difference(g, layered_graph(3, (4,), (True,), 3)) == "node 'w_out': weight: shape [4, 2] vs [4, 3]"
    assert options_difference(BpttOptions(), BpttOptions()) is None
    assert options_difference(BpttOptions(), BpttOptions(detach_reset=True)) == \
        "bptt_options: detach_reset: False vs True"


def test_euler_graph_trains_with_its_decays_and_exports_exactly():
    """Under 'euler' integration the engine uses alpha = 1 - dt/tau (the graph's rule); the
    export is an 'exact' graph whose decays are the trained ones."""
    g = layered_graph(3, (4,), (True,), 2, model="alif", beta_adapt=0.2, tau_mem_s=10e-3, tau_adapt_s=50e-3,
                      tau_out_s=20e-3)
    g = Graph(g.nodes, g.edges, dt_s=g.dt_s, integration="euler")
    plan = compile_graph(g)
    np.testing.assert_allclose(plan.alpha[0], 0.9, rtol=1e-15)
    assert plan.rho == pytest.approx(1 - 1e-3 / 50e-3, rel=1e-15) and plan.kappa == pytest.approx(0.95, rel=1e-15)
    gm = to_graph(g, init_params(g, 0))
    assert gm.graph.integration == "exact"
    node = gm.graph.nodes["layer0"]
    assert np.float32(gm.graph.decay(node.tau_adapt_s)[0]) == np.float32(plan.rho)
    assert np.float32(gm.graph.decay(node.tau_mem_s)[0]) == np.float32(0.9)
