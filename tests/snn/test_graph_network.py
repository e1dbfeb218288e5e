"""GraphNetwork (rtsnn/snn/graph_network.py): dense, event-driven and auto propagation give the
same bits on a 3-layer graph (CubaLIF, ALIF, LIF, recurrent edges, a Delay); today's single
layer run as a graph spikes exactly as the fused Network; and every graph agrees with the
plain-numpy reference simulator (rtsnn/snn/graph_reference.py) written from the semantics."""

from __future__ import annotations

import numpy as np
import pytest

from rtsnn.snn import (ALIF, IF, LI, LIF, Affine, CubaLIF, Delay, Graph, GraphModel, GraphNetwork, Input, Linear,
                       Model, Network, Output, build_network, graph_from_model, simulate, single_layer)
from rtsnn.snn.graph_reference import reference_run

F32 = np.float32


def _w(rng, n_in, n_out, scale):
    return (rng.standard_normal((n_in, n_out)) * scale).astype(F32)


def three_layer(seed: int = 0) -> GraphModel:
    """in(8) -> w1 -> l1 CubaLIF(12, spikes when v > v_th) [l1 -> r1 -> l1] -> d Delay(0..3 ticks) -> w2 -> l2 ALIF(10)
    -> w3 -> l3 LIF(6, per-neuron reset to zero in the tick of the spike) [l3 -> r3 -> l2]
    -> trace LI(6) -> w_out Affine -> out(2)."""
    rng = np.random.default_rng(seed)
    r1 = _w(rng, 12, 12, 0.3)
    np.fill_diagonal(r1, 0)
    nodes = {
        "in": Input(shape=(8,)),
        "w1": Linear(weight=_w(rng, 8, 12, 0.9)),
        "l1": CubaLIF(tau_mem_s=rng.uniform(5e-3, 20e-3, 12), tau_syn_s=4e-3, v_th=1.0, refractory_s=1e-3,
                      spike_if=">"),
        "r1": Linear(weight=r1),
        "d": Delay(steps=rng.integers(0, 4, 12)),
        "w2": Linear(weight=_w(rng, 12, 10, 0.8)),
        "l2": ALIF(tau_mem_s=10e-3, tau_adapt_s=rng.uniform(50e-3, 200e-3, 10), beta_adapt=0.3, n=10,
                   v_leak=0.05, gain=rng.uniform(0.8, 1.2, 10)),
        "w3": Linear(weight=_w(rng, 10, 6, 1.0)),
        "l3": LIF(tau_mem_s=8e-3, n=6, reset=["zero", "subtract"] * 3, v_reset=-0.2, reset_at="now"),
        "r3": Linear(weight=_w(rng, 6, 10, 0.4)),
        "trace": LI(tau_s=rng.uniform(10e-3, 40e-3, 6)),
        "w_out": Affine(weight=_w(rng, 6, 2, 1.0), bias=np.array([0.1, -0.2])),
        "out": Output(shape=(2,)),
    }
    edges = [("in", "w1"), ("w1", "l1"), ("l1", "r1"), ("r1", "l1"), ("l1", "d"), ("d", "w2"), ("w2", "l2"),
             ("l2", "w3"), ("w3", "l3"), ("l3", "r3"), ("r3", "l2"), ("l3", "trace"), ("trace", "w_out"),
             ("w_out", "out")]
    return GraphModel(Graph(nodes, edges, dt_s=1e-3), output_labels=["a", "b"])


def _inputs(seed: int, ticks: int, n: int, rate: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).poisson(rate, (ticks, n)).astype(F32)


def _run_recording(net: GraphNetwork, xs: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Every named node's output per tick (from the network's state views)."""
    sizes = {n: net.graph.nodes[n].output_size() for n in names}
    out = {n: np.zeros((xs.shape[0], k), F32) for n, k in sizes.items()}
    buf = np.zeros(xs.shape[1], F32)
    for t in range(xs.shape[0]):
        buf[...] = xs[t]
        net.step(buf)
        for n in names:
            out[n][t] = net._view(n, buf)  # noqa: SLF001 - the test reads the node's buffer
    return out


def test_three_layer_graph_dense_event_auto_bit_identical():
    gm = three_layer()
    xs = _inputs(1, 300, 8)
    runs = {}
    for mode in ("dense", "event", "auto"):
        net = GraphNetwork(gm, propagation=mode)
        ys, zs = net.run(xs)
        st = {k: v.copy() for k, v in net.state_arrays().items()}
        runs[mode] = (ys, zs, st)
    ys, zs, st = runs["dense"]
    for mode in ("event", "auto"):
        np.testing.assert_array_equal(runs[mode][0].view(np.uint32), ys.view(np.uint32), err_msg=mode)
        np.testing.assert_array_equal(runs[mode][1], zs, err_msg=mode)
        for k in st:
            np.testing.assert_array_equal(runs[mode][2][k], st[k], err_msg=f"{mode} {k}")
    # every layer is alive (a silent network would make the comparisons empty)
    rec = _run_recording(GraphNetwork(gm), xs, ["l1", "l2", "l3"])
    for name, z in rec.items():
        assert 0.02 < z.mean() < 0.6, (name, z.mean())


def test_three_layer_graph_matches_the_numpy_reference():
    gm = three_layer()
    xs = _inputs(2, 300, 8)
    y_ref, per_node = reference_run(gm, xs)
    net = GraphNetwork(gm, propagation="auto")
    rec = _run_recording(net, xs, ["l1", "d", "l2", "l3", "trace", "out"])
    # l2 sums two projections (w2, r3): the network adds r3's rows onto w2's, the reference adds two
    # finished sums, so its membrane may differ in the last bit; the spikes and outputs agree
    for name in ("l1", "d", "l2", "l3"):
        np.testing.assert_array_equal(rec[name], per_node[name], err_msg=name)
    np.testing.assert_allclose(rec["trace"], per_node["trace"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rec["out"], y_ref, rtol=1e-5, atol=1e-5)
    # the Delay really delays: d's output is l1's spikes shifted per neuron
    steps = gm.graph.nodes["d"].steps
    for i, s in enumerate(steps):
        np.testing.assert_array_equal(per_node["d"][s:, i], per_node["l1"][:xs.shape[0] - s, i])


def chain_graph(seed: int = 3) -> GraphModel:
    """Every stateful kind in a chain where each node has one input (so the reference is
    bit-exact): in -> w1 -> a IF (reset to v_reset in the tick of the spike) -> d Delay -> w2
    (Affine) -> b CubaLIF -> li LI -> w3 (materialised: two consumers) -> c ALIF (clamping
    reset), and w3 -> out."""
    rng = np.random.default_rng(seed)
    nodes = {
        "in": Input(shape=(5,)),
        "w1": Linear(weight=_w(rng, 5, 9, 0.8)),
        "a": IF(n=9, v_th=rng.uniform(1.0, 2.0, 9), reset="zero", reset_at="now", v_reset=0.1),
        "d": Delay(steps=[0, 1, 2, 3, 4, 0, 1, 2, 3]),
        "w2": Affine(weight=_w(rng, 9, 7, 1.0), bias=np.full(7, 0.05)),
        "b": CubaLIF(n=7, tau_mem_s=12e-3, tau_syn_s=rng.uniform(2e-3, 6e-3, 7), refractory_s=2e-3),
        "li": LI(n=7, tau_s=20e-3, gain=rng.uniform(0.5, 1.5, 7), v_leak=0.1),
        "w3": Linear(weight=_w(rng, 7, 3, 1.2)),
        "c": ALIF(n=3, tau_mem_s=15e-3, beta_adapt=0.5, tau_adapt_s=0.1, reset=["zero", "zero", "subtract"],
                  v_reset=-0.25, reset_at="next_clamp"),
        "out": Output(shape=(3,)),
    }
    edges = [("in", "w1"), ("w1", "a"), ("a", "d"), ("d", "w2"), ("w2", "b"), ("b", "li"), ("li", "w3"),
             ("w3", "c"), ("w3", "out")]
    return GraphModel(Graph(nodes, edges, dt_s=1e-3))


@pytest.mark.parametrize("mode", ["dense", "event", "auto"])
def test_single_input_chain_matches_the_reference_bit_for_bit(mode):
    gm = chain_graph()
    xs = _inputs(4, 200, 5, rate=0.5)
    y_ref, per_node = reference_run(gm, xs)
    rec = _run_recording(GraphNetwork(gm, propagation=mode), xs, ["a", "d", "b", "li", "c", "out"])
    for name, vals in rec.items():
        np.testing.assert_array_equal(vals.view(np.uint32), per_node[name].view(np.uint32), err_msg=name)
    assert rec["a"].mean() > 0.02 and rec["b"].mean() > 0.02
    np.testing.assert_array_equal(GraphNetwork(gm, propagation=mode).run(xs)[0], y_ref)


@pytest.mark.parametrize("model_kind", ["lif", "alif"])
def test_single_layer_graph_spikes_exactly_as_the_fused_network(model_kind):
    layer = single_layer(model_kind, 40, beta_adapt=0.2, refractory_s=2e-3, tau_out_s=30e-3)
    m = Model.random(12, 40, 2, *layer, seed=7, input_gain=1.5, readout_scale=1.0)
    m.weights.b_out[:] = [0.3, -0.1]
    xs = _inputs(5, 400, 12, rate=0.05)
    y_net, z_net = Network(m).run(xs)
    gnet = GraphNetwork(graph_from_model(m))
    y_g, z_g = gnet.run(xs)
    assert z_net.sum() > 100
    np.testing.assert_array_equal(z_g, z_net)
    # the trace is the same arithmetic; the readout sums in another order, so it agrees to rounding
    np.testing.assert_allclose(y_g, y_net, rtol=1e-5, atol=1e-5)
    # build_network keeps the fused Network for this graph; the reference agrees with both
    assert isinstance(build_network(graph_from_model(m)), Network)
    y_ref, per_node = reference_run(graph_from_model(m), xs)
    np.testing.assert_array_equal(per_node["hidden"], z_net)
    np.testing.assert_allclose(y_ref, y_net, rtol=1e-5, atol=1e-5)


def test_build_network_and_simulate():
    gm = three_layer()
    net = build_network(gm)
    assert isinstance(net, GraphNetwork) and net.n_in == 8 and net.n_out == 2
    xs = _inputs(6, 50, 8)
    ys = simulate(gm, xs)
    assert ys.shape == (50, 2) and ys.dtype == F32
    np.testing.assert_array_equal(ys, GraphNetwork(gm).run(xs)[0])
    with pytest.raises(ValueError, match="expected a Model or GraphModel, got str"):
        build_network("model.npz")


def test_reset_state_replays_and_warm_up_changes_nothing():
    gm = three_layer()
    xs = _inputs(7, 80, 8)
    net = GraphNetwork(gm)
    net.warm_up()
    assert all(not v.any() for v in net.state_arrays().values())
    first = net.run(xs)[0]
    net.reset_state()
    np.testing.assert_array_equal(net.run(xs)[0], first)
    before = {k: v.copy() for k, v in net.state_arrays().items()}
    net.warm_up()
    for k, v in net.state_arrays().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_step_refuses_a_wrong_input_and_readout_parts():
    net = GraphNetwork(three_layer())
    with pytest.raises(ValueError, match=r"spikes_in must be float32 of shape \(8,\), got float64 of shape \(8,\)"):
        net.step(np.zeros(8))
    with pytest.raises(ValueError, match=r"shape \(8,\), got float32 of shape \(7,\)"):
        net.step(np.zeros(7, F32))
    with pytest.raises(ValueError, match=r"xs must be float32 \(T, n_in=8\)"):
        net.run(np.zeros((3, 5), F32))
    assert net.readout_parts() == ("trace", "w_out")
    assert net.features().shape == (6,)
    with pytest.raises(ValueError, match="propagation must be one of dense, event, auto"):
        GraphNetwork(three_layer(), propagation="sparse")


# ---------------------------------------------------------------- fast path, counters, views
def fast_path_graph(seed: int = 8) -> GraphModel:
    """Spiking nodes the fast kernel takes (every reset by subtraction at the next tick: LIF with
    '>' and refractoriness, CubaLIF, ALIF, IF with 'next_clamp') beside one it does not (LIF with
    mixed resets in the tick of the spike), summed inputs, a recurrent edge and an Affine."""
    rng = np.random.default_rng(seed)
    r2 = _w(rng, 9, 9, 0.3)
    np.fill_diagonal(r2, 0)
    nodes = {
        "in": Input(shape=(7,)),
        "w1": Linear(weight=_w(rng, 7, 11, 0.9)),
        "a": LIF(n=11, tau_mem_s=rng.uniform(5e-3, 30e-3, 11), spike_if=">", refractory_s=rng.integers(0, 3, 11) * 1e-3,
                 gain=rng.uniform(0.8, 1.2, 11), v_leak=0.05),
        "w2": Affine(weight=_w(rng, 11, 9, 0.8), bias=rng.uniform(-0.1, 0.1, 9)),
        "b": CubaLIF(n=9, tau_mem_s=10e-3, tau_syn_s=rng.uniform(2e-3, 8e-3, 9)),
        "r2": Linear(weight=r2),
        "w3": Linear(weight=_w(rng, 9, 8, 0.9)),
        "c": ALIF(n=8, tau_mem_s=12e-3, tau_adapt_s=0.1, beta_adapt=rng.uniform(0, 0.5, 8), refractory_s=1e-3),
        "w4": Linear(weight=_w(rng, 8, 6, 1.0)),
        "w5": Linear(weight=_w(rng, 7, 6, 0.5)),
        "d": IF(n=6, v_th=rng.uniform(1.0, 2.0, 6), reset_at="next_clamp"),
        "w6": Linear(weight=_w(rng, 6, 5, 1.0)),
        "e": LIF(n=5, tau_mem_s=8e-3, reset=["zero", "subtract", "zero", "subtract", "zero"], reset_at="now",
                 v_reset=-0.1),
        "trace": LI(n=5, tau_s=20e-3),
        "w_out": Affine(weight=_w(rng, 5, 2, 1.0), bias=np.array([0.1, -0.1])),
        "out": Output(shape=(2,)),
    }
    edges = [("in", "w1"), ("w1", "a"), ("a", "w2"), ("w2", "b"), ("b", "r2"), ("r2", "b"), ("b", "w3"),
             ("w3", "c"), ("c", "w4"), ("w4", "d"), ("in", "w5"), ("w5", "d"), ("d", "w6"), ("w6", "e"),
             ("e", "trace"), ("trace", "w_out"), ("w_out", "out")]
    return GraphModel(Graph(nodes, edges, dt_s=1e-3))


@pytest.mark.parametrize("mode", ["dense", "event", "auto"])
def test_fast_path_is_chosen_and_bit_identical_to_the_general_kernel(mode):
    gm = fast_path_graph()
    fast = GraphNetwork(gm, propagation=mode)
    assert {n for n, p in fast._params.items() if p.get("fast")} == {"a", "b", "c", "d"}  # noqa: SLF001
    general = GraphNetwork(gm, propagation=mode)
    for p in general._params.values():  # noqa: SLF001 - force the general kernel everywhere
        if "fast" in p:
            p["fast"] = False
    xs = _inputs(9, 250, 7, rate=0.4)
    buf_f, buf_g = np.zeros(7, F32), np.zeros(7, F32)
    general.step(buf_g)  # binds the ops (the general kernel) to this buffer
    general.reset_state()
    assert sum(getattr(fn, "__name__", "") == "spiking_update_subtract" for fn, _ in fast._ops) == 4  # noqa: SLF001
    assert not any(getattr(fn, "__name__", "") == "spiking_update_subtract" for fn, _ in general._ops)  # noqa: SLF001
    spikes = dict.fromkeys("abcde", 0)
    for t in range(xs.shape[0]):
        buf_f[...] = xs[t]
        buf_g[...] = xs[t]
        fast.step(buf_f)
        general.step(buf_g)
        sf, sg = fast.state_arrays(), general.state_arrays()
        for k in sg:
            np.testing.assert_array_equal(sf[k].view(np.uint8), sg[k].view(np.uint8), err_msg=f"{k} tick {t}")
        for n in spikes:
            spikes[n] += int(sf[f"{n}.z"].sum())
    assert all(v > 0.02 * 250 for v in spikes.values()), spikes


def test_projection_counters():
    """n_steps_dense / n_steps_event count projection steps (fused or materialised Linear /
    Affine, Conv2d, pools), one per projection per tick, in the form each ran."""
    from rtsnn.snn import AvgPool2d, Conv2d, Flatten

    rng = np.random.default_rng(2)
    nodes = {
        "in": Input(shape=(1, 6, 6)),
        "conv": Conv2d(weight=_w(rng, 2, 9, 0.6).reshape(2, 1, 3, 3), bias=np.zeros(2, F32), input_shape=(1, 6, 6)),
        "l1": LIF(n=2 * 4 * 4, tau_mem_s=10e-3),
        "pool": AvgPool2d(kernel_size=2, input_shape=(2, 4, 4)),
        "flat": Flatten(input_shape=(2, 2, 2)),
        "fc": Linear(weight=_w(rng, 8, 4, 1.0)),
        "l2": LIF(n=4),
        "fc2": Affine(weight=_w(rng, 4, 3, 1.0), bias=np.zeros(3)),
        "out": Output(shape=(3,)),
    }
    chain = list(nodes)
    gm = GraphModel(Graph(nodes, list(zip(chain[:-1], chain[1:])), dt_s=1e-3))
    xs = _inputs(3, 40, 36, rate=0.1)
    n_proj = 4  # conv, pool, fc, fc2
    nets = {mode: GraphNetwork(gm, propagation=mode) for mode in ("dense", "event", "auto")}
    for net in nets.values():
        net.warm_up()  # restores the counters too
        assert net.n_steps_dense == net.n_steps_event == 0
        net.run(xs)
    assert nets["dense"].n_steps_dense == n_proj * 40 and nets["dense"].n_steps_event == 0
    assert nets["event"].n_steps_event == n_proj * 40 and nets["event"].n_steps_dense == 0
    # under 'auto' the fully connected projections (fc, fc2) always run event-driven; the conv
    # and the pool scatter in the ticks their input is sparse (conv_kernels' rule)
    from rtsnn.snn.conv_kernels import AUTO_EVENT_DENSITY

    auto = GraphNetwork(gm, propagation="auto")
    buf = np.zeros(36, F32)
    want_event = 0
    for t in range(xs.shape[0]):
        buf[...] = xs[t]
        auto.step(buf)
        want_event += 2 + (np.count_nonzero(xs[t]) <= AUTO_EVENT_DENSITY * 36)
        want_event += np.count_nonzero(auto.state_arrays()["l1.z"]) <= AUTO_EVENT_DENSITY * 32
    assert auto.n_steps_event == want_event and auto.n_steps_dense == n_proj * 40 - want_event
    assert 0 < auto.n_steps_dense  # both forms occur (the pool's input is dense at times)
    np.testing.assert_array_equal(auto.readout(), nets["dense"].readout())


def test_learner_views_are_built_once_and_follow_the_state():
    net = GraphNetwork(three_layer())
    assert net.features() is net.features() and net.spikes() is net.spikes()
    assert net.readout_parts() is net.readout_parts() == ("trace", "w_out")
    xs = _inputs(8, 30, 8)
    buf = np.zeros(8, F32)
    for t in range(30):
        buf[...] = xs[t]
        net.step(buf)
        np.testing.assert_array_equal(net.spikes(), net.state_arrays()["l3.z"])
        np.testing.assert_array_equal(net.features(), net.state_arrays()["trace.y"])
    assert net.spikes() is net._buf["l3"] and net.features() is net._buf["trace"]  # noqa: SLF001


def test_accumulators_need_no_fill_call():
    """Every accumulator that has inputs is initialised by its first input's op."""
    for gm in (three_layer(), fast_path_graph()):
        net = GraphNetwork(gm)
        names = [getattr(fn, "__name__", "") for fn, _ in net._ops]  # noqa: SLF001
        assert "fill" not in names and "bias_into" not in names
