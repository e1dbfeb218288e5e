"""BPTT export: a trained network becomes a model graph with nothing dropped, and export ->
save -> load -> simulate gives the trainer's own float32 forward pass.

Spikes are compared per layer and tick and must be identical; readout outputs must agree to
float32 rounding (the engine adds the recurrent input, the adaptive threshold and the readout
decays in float64 before rounding, and sums delayed currents per delay; the graph does it in
float32, edge by edge: see rtsnn.learn.offline.export)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsnn.learn.offline.bptt import to_graph, to_model
from rtsnn.learn.offline.bptt_engine import Engine, init_params
from rtsnn.learn.offline.export import tau_from_decay
from rtsnn.snn.graph import GraphModel
from rtsnn.snn.graph_network import GraphNetwork, build_network
from rtsnn.snn.model_file import load_graph_model, load_model, save_model
from rtsnn.snn.params import Model

from _bptt_nets import draw_layer_weights, net, plan

T = 300


def _params(nt, seed, tweak=None):
    """Parameters of ``nt = (graph, options)`` with weights strong enough that every layer
    spikes (random, not trained)."""
    rng = np.random.default_rng(seed)
    p = init_params(nt[0], seed, nt[1])
    spec = plan(*nt)
    draw_layer_weights(p, spec, rng, w_mean=0.1, w_std=0.5, r_std=0.2)
    if spec.n_out is not None:
        p["w_out"] = rng.normal(0.0, 0.5, p["w_out"].shape)
        p["b_out"] = rng.normal(0.0, 0.1, p["b_out"].shape)
    if tweak is not None:
        tweak(p, rng)
    return p, (rng.random((T, 1, spec.n_in)) < 0.2).astype(np.float32)


def _simulate(gm, x, n_layers):
    """GraphNetwork over ``x`` (T, 1, n_in): outputs (T, n_out) and each layer's spikes (T, n_l)."""
    net = GraphNetwork(gm, propagation="auto")
    state = net.state_arrays()
    ys, zs = [], [[] for _ in range(n_layers)]
    buf = np.zeros(gm.n_in, np.float32)
    for t in range(x.shape[0]):
        buf[...] = x[t, 0]
        net.step(buf)
        ys.append(net.readout().copy())
        for l in range(n_layers):
            zs[l].append(state[f"layer{l}.z"].copy())
    return np.array(ys), [np.array(z) for z in zs]


def _roundtrip_and_compare(tmp_path, nt, p, x, scale=1.0, offset=0.0):
    spec = plan(*nt)
    tape = Engine(*nt, dtype=np.float32).forward(p, x)
    kw = dict(out_scale=scale, out_offset=offset) if spec.n_out is not None else {}
    gm = to_graph(nt[0], p, nt[1], provenance={"method": "test"}, **kw)
    path = save_model(tmp_path / "m.npz", gm)
    loaded = load_graph_model(path)
    assert isinstance(loaded, GraphModel)
    assert loaded.graph.summary() == gm.graph.summary()
    ys, zs = _simulate(loaded, x, len(spec.layers))
    for l, z_graph in enumerate(zs):
        z_eng = tape.records[0][0][l][3][:, 0]
        assert z_eng.sum() > 10, f"layer {l} barely spikes: the comparison would be empty"
        np.testing.assert_array_equal(z_graph, z_eng, err_msg=f"layer {l} spikes")
    want = tape.y[:, 0].astype(np.float64) * scale + offset
    if spec.n_out is None:
        np.testing.assert_array_equal(ys, want)
    else:
        assert np.abs(want).max() > 0.5
        assert np.abs(ys - want).max() <= 1e-4 * max(1.0, abs(scale)) * max(1.0, np.abs(want).max() / 100)
    # load_model gives the same graph back (a GraphModel here, or the single-layer Model)
    again = load_model(path)
    y2 = build_network(again).run(np.ascontiguousarray(x[:, 0]))[0]
    np.testing.assert_allclose(y2, ys, rtol=0, atol=1e-5 * max(1.0, np.abs(ys).max()))
    return loaded


def test_two_layers_second_recurrent(tmp_path):
    nt = net(n_in=8, layers=(20, 15), recurrent=(False, True), n_out=3, tau_out_s=15e-3)
    p, x = _params(nt, 0)
    gm = _roundtrip_and_compare(tmp_path, nt, p, x, scale=2.5, offset=-1.0)
    kinds = {n: node.kind for n, node in gm.graph.nodes.items()}
    assert kinds == {"input": "Input", "w0": "Linear", "layer0": "LIF", "w1": "Linear", "layer1": "LIF",
                     "r1": "Linear", "trace": "LI", "w_out": "Affine", "output": "Output"}
    assert gm.graph.is_recurrent("r1", "layer1") and "r0" not in gm.graph.nodes
    assert isinstance(to_model(nt[0], p, nt[1]), GraphModel)  # two layers: no single-layer Model


def test_alif_with_refractory(tmp_path):
    nt = net(n_in=8, layers=(25,), recurrent=(True,), n_out=2, model="alif", beta_adapt=0.2,
                   tau_adapt_s=100e-3, refractory_s=3e-3)
    p, x = _params(nt, 1)
    gm = _roundtrip_and_compare(tmp_path, nt, p, x)
    h = gm.graph.nodes["layer0"]
    assert h.kind == "ALIF" and np.all(h.beta_adapt == 0.2) and np.all(h.refractory_s == 3e-3)
    # uniform parameters: to_model still gives today's single-layer Model, and it runs the same
    m = to_model(nt[0], p, nt[1])
    assert isinstance(m, Model) and m.constants.model == "alif" and m.constants.refractory_s == 3e-3
    y_model, z_model = build_network(m).run(np.ascontiguousarray(x[:, 0]))
    y_graph, z_graph = GraphNetwork(gm).run(np.ascontiguousarray(x[:, 0]))
    np.testing.assert_array_equal(z_model, z_graph)  # the fused Network sums its readout in another order
    np.testing.assert_allclose(y_model, y_graph, rtol=0, atol=1e-5 * np.abs(y_graph).max())


def test_per_neuron_thresholds_and_leaks_are_kept(tmp_path):
    nt = net(n_in=8, layers=(20, 12), recurrent=(True, False), n_out=3)

    def tweak(p, rng):
        for l, n in enumerate(plan(*nt).layers):
            p[f"alpha{l}"] = rng.uniform(0.8, 0.99, n)
            p[f"vth{l}"] = rng.uniform(0.5, 1.5, n)
        p["alpha0"][0] = 0.0  # a neuron with no memory at all
        p["kappa"] = np.array([0.93])

    p, x = _params(nt, 2, tweak)
    gm = _roundtrip_and_compare(tmp_path, nt, p, x)
    g = gm.graph
    for l in range(2):
        node = g.nodes[f"layer{l}"]
        np.testing.assert_array_equal(node.v_th, p[f"vth{l}"])
        np.testing.assert_array_equal(g.decay(node.tau_mem_s).astype(np.float32), p[f"alpha{l}"].astype(np.float32))
    assert np.float32(g.decay(g.nodes["trace"].tau_s)[0]) == np.float32(0.93)
    # a single layer with per-neuron values is not the uniform single-layer Model: the graph comes back
    nt1 = net(n_in=8, layers=(20,), recurrent=(True,), n_out=3)
    p1, _ = _params(nt1, 2, lambda p_, rng: p_.__setitem__("vth0", rng.uniform(0.5, 1.5, 20)))
    m = to_model(nt1[0], p1, nt1[1])
    assert isinstance(m, GraphModel)
    np.testing.assert_array_equal(m.graph.nodes["layer0"].v_th, p1["vth0"])


@pytest.mark.parametrize("model", ["lif", "alif"])
def test_reset_to_zero_layers(tmp_path, model):
    """A network trained with reset to zero (layered_graph(..., reset='zero')) exports as reset='zero'
    nodes at the next tick, the engine's timing: identical spikes, outputs to float rounding."""
    nt = net(n_in=6, layers=(12, 10), recurrent=(False, True), n_out=2, model=model, beta_adapt=0.3,
                   reset="zero")
    p, x = _params(nt, 5)
    _roundtrip_and_compare(tmp_path, nt, p, x)
    gm = to_graph(nt[0], p, nt[1])
    assert all(int(gm.graph.nodes[f"layer{l}"].reset[0]) == 1 for l in range(2))


def test_double_exponential_readout(tmp_path):
    nt = net(n_in=8, layers=(20,), recurrent=(True,), n_out=3, tau_out_s=20e-3, tau_out2_s=5e-3)
    p, x = _params(nt, 3, lambda p_, rng: p_.__setitem__("kappa2", np.array([0.7])))
    gm = _roundtrip_and_compare(tmp_path, nt, p, x, scale=0.5, offset=0.25)
    g = gm.graph
    assert g.predecessors("trace2") == ["trace"] and g.predecessors("w_out") == ["trace2"]
    assert np.float32(g.decay(g.nodes["trace2"].tau_s)[0]) == np.float32(0.7)
    assert GraphNetwork(gm).readout_parts() == ("trace2", "w_out")


def test_soft_input_delays(tmp_path):
    nt = net(n_in=8, layers=(20,), recurrent=(True,), n_out=2, max_delay_steps=3)
    p, x = _params(nt, 4, lambda p_, rng: p_.__setitem__("delay_logits", rng.normal(0, 2, (8, 20, 4))))
    gm = _roundtrip_and_compare(tmp_path, nt, p, x)
    g = gm.graph
    assert [int(g.nodes[f"delay{d}"].steps[0]) for d in (1, 2, 3)] == [1, 2, 3] and "delay0" not in g.nodes
    assert sorted(g.predecessors("layer0")) == ["r0", "w0_d0", "w0_d1", "w0_d2", "w0_d3"]
    # the projections add up to w0 (softmax weights sum to 1 per synapse)
    total = sum(g.nodes[f"w0_d{d}"].weight.astype(np.float64) for d in range(4))
    np.testing.assert_allclose(total, p["w0"], rtol=1e-5, atol=1e-6)


def test_no_readout_spiking_output(tmp_path):
    nt = net(n_in=8, layers=(20, 4), recurrent=(True, False), n_out=None)
    p, x = _params(nt, 5)
    gm = _roundtrip_and_compare(tmp_path, nt, p, x)
    assert gm.graph.predecessors("output") == ["layer1"]


def test_single_feedforward_layer_is_the_runtime_model(tmp_path):
    nt = net(n_in=6, layers=(15,), recurrent=(False,), n_out=2)
    p, x = _params(nt, 6)
    m = to_model(nt[0], p, nt[1], out_scale=np.array([2.0, 3.0]), out_offset=np.array([0.5, -0.5]))
    assert isinstance(m, Model) and not np.any(m.weights.w_rec)
    assert m.constants.tau_mem_s == 20e-3 and m.constants.tau_out_s == 20e-3  # layered_graph's defaults, kept exactly
    path = save_model(tmp_path / "ff.npz", m)
    assert isinstance(load_model(path), Model)
    y = build_network(load_model(path)).run(np.ascontiguousarray(x[:, 0]))[0]
    want = Engine(*nt, dtype=np.float32).forward(p, x).y[:, 0] * np.array([2.0, 3.0]) + np.array([0.5, -0.5])
    assert np.abs(want).max() > 0.5
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-4 * 3.0)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1.0), st.sampled_from([1e-4, 1e-3, 2.5e-3]))
def test_tau_from_decay_rounds_back_to_the_same_float32(decay, dt_s):
    tau = tau_from_decay(np.array([decay]), dt_s, "alpha0")
    assert tau[0] > 0 and np.isfinite(tau[0])
    assert np.float32(np.exp(-dt_s / tau[0])) == np.float32(decay)


def test_bad_parameters_are_refused_by_name():
    nt = net(n_in=4, layers=(5, 3), recurrent=(True, False), n_out=2, tau_out2_s=5e-3)
    good, _ = _params(nt, 7)
    cases = [
        ({"w1": None}, r"params: missing 'w1'"),
        ({"r0": None}, r"params: missing 'r0'"),
        ({"kappa2": None}, r"params: missing 'kappa2'"),
        ({"w0": np.zeros((4, 6))}, r"params\['w0'\]: must have shape \[4, 5\]"),
        ({"vth1": np.array([1.0, np.nan, 1.0])}, r"params\['vth1'\]: contains 1 NaN/inf"),
        ({"vth0": np.array([1.0, 1.0, 0.0, 1.0, 1.0])}, r"params\['vth0'\]: thresholds must be > 0"),
        ({"alpha1": np.array([0.9, 1.2, 0.9])}, r"params\['alpha1'\]: a per-tick decay must lie in \[0, 1\]"),
        ({"kappa": np.array([-0.1])}, r"params\['kappa'\]: a per-tick decay"),
    ]
    for change, msg in cases:
        p = {k: v.copy() for k, v in good.items()}
        for k, v in change.items():
            if v is None:
                del p[k]
            else:
                p[k] = v
        with pytest.raises(ValueError, match=msg):
            to_graph(nt[0], p, nt[1])
    with pytest.raises(ValueError, match="out_scale must be a finite number or 2 finite numbers"):
        to_graph(nt[0], good, nt[1], out_scale=[1.0, 2.0, 3.0])
    nt_spk = net(n_in=4, layers=(5,), recurrent=(False,), n_out=None)
    with pytest.raises(ValueError, match="out_scale/out_offset rescale a readout; this network has none"):
        to_graph(nt_spk[0], init_params(nt_spk[0], 0), out_scale=2.0)


def test_pretrain_keeps_a_readout_faster_than_one_tick(tmp_path):
    """A trained readout decay below exp(-1) (tau_out < dt_s) has no single-layer Model; the
    pretrain export keeps it as a graph instead of clamping tau_out to the tick."""
    from rtsnn.learn.offline.pretrain import to_runtime_model

    nt = net(n_in=6, layers=(15,), recurrent=(True,), n_out=2)
    p, x = _params(nt, 8, lambda p_, rng: p_.__setitem__("kappa", np.array([0.2])))
    m = to_runtime_model(nt[0], p, np.array([1.0, -1.0]), np.array([0.5, 2.0]), {"method": "bptt_pretrain"})
    assert isinstance(m, GraphModel) and m.output_labels == ["vx", "vy"]
    y = build_network(load_model(save_model(tmp_path / "pre.npz", m))).run(np.ascontiguousarray(x[:, 0]))[0]
    want = Engine(*nt, dtype=np.float32).forward(p, x).y[:, 0] * np.array([0.5, 2.0]) + np.array([1.0, -1.0])
    np.testing.assert_allclose(y, want, rtol=0, atol=2e-4)


def test_a_trained_network_exports_everything_it_trained(tmp_path):
    """BPTT's fit loop training every group (weights, thresholds, leaks, readout decays,
    delays) of two recurrent ALIF layers with a double-exponential readout: the export runs
    as the trained network's own forward pass."""
    from rtsnn.learn.offline.bptt import FitConfig, fit

    nt = net(n_in=6, layers=(12, 8), recurrent=(True, True), n_out=2, model="alif", beta_adapt=0.1,
                   refractory_s=2e-3, tau_out_s=10e-3, tau_out2_s=4e-3, max_delay_steps=2)
    p, _ = _params(nt, 9)
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 32)
    rates = np.where(y[:, None, None] == 1, np.array([0.3, 0.05] * 3), np.array([0.05, 0.3] * 3))
    x = (rng.random((60, 32, 6)) < rates.transpose(1, 0, 2)).astype(np.float32)  # (T, B, n_in)
    eng = Engine(*nt, dtype=np.float32)
    fit(eng, p, 32, lambda idx: (np.ascontiguousarray(x[:, np.sort(idx)]), y[np.sort(idx)]), "mean_ce",
        FitConfig(epochs=3, batch_size=8, lr=2e-2, trainable=("weights", "threshold", "leak", "readout_tau",
                                                                "delays")), log=None)
    assert np.ptp(p["vth0"]) > 0 and np.ptp(p["alpha1"]) > 0 and p["kappa2"][0] != plan(*nt).kappa2
    assert np.ptp(p["delay_logits"]) > 0
    xs = np.ascontiguousarray(x[:, :5].transpose(1, 0, 2).reshape(300, 1, 6))  # five samples back to back
    _roundtrip_and_compare(tmp_path, nt, p, xs)
