"""FP export: the continuous-time SRM network as CubaLIF layers at a chosen tick.

The discretisation (rtsnn.learn.offline.export): exact per-tick decays and gain h(D) make the
graph's membrane after tick t equal FP's V((t+1) D) for input spikes on the tick grid; input
times are rounded to the nearest tick; first-spike readout = first output spike tick."""

import numpy as np
import pytest

from rtsnn.datasets import load_yinyang
from rtsnn.learn.offline import fp
from rtsnn.learn.offline.export import fp_input_raster, fp_n_ticks, fp_to_graph, graph_first_spikes
from rtsnn.learn.offline.fp_reference import psp_ref
from rtsnn.snn.graph_network import GraphNetwork
from rtsnn.snn.model_file import load_graph_model, save_model

UNIT_S = 5e-3


@pytest.fixture(scope="module")
def small_yinyang():
    """A small FP Yin-Yang network, briefly trained (4(+bias)-30-3, 1000 samples, 4 epochs)."""
    tr, te = load_yinyang("train"), load_yinyang("test")
    settings = fp.FPSettings(alpha=1.0, beta=1.0, theta=1.0, t_max=8.0, max_hidden_spikes=1, tau0=0.05,
                             tau1=1.0, gamma=0.05)
    m = fp.train_classifier_fp(fp.encode_latency(tr.x[:1000]), tr.y[:1000], hidden=[30], n_classes=3, epochs=4,
                               seed=0, settings=settings, lr=5e-3, batch_size=32, hidden_kick=0.01,
                               grad_clip=0.05)
    return m, fp.encode_latency(te.x[:200]), te.y[:200]


@pytest.fixture(scope="module")
def small_yinyang_neurons():
    """The same small network with per-neuron thresholds and time constants, started spread
    out (so that ignoring them would show) and trained with the weights for 4 epochs."""
    tr, te = load_yinyang("train"), load_yinyang("test")
    settings = fp.FPSettings(alpha=1.0, beta=1.0, theta=1.0, t_max=8.0, max_hidden_spikes=1, tau0=0.05,
                             tau1=1.0, gamma=0.05)
    rng = np.random.default_rng(3)
    sizes = [30, 3]
    start = fp.NeuronParams([rng.uniform(0.7, 1.3, n) for n in sizes], [rng.uniform(0.5, 1.5, n) for n in sizes],
                            [rng.uniform(0.6, 3.0, n) for n in sizes])
    m = fp.train_classifier_fp(fp.encode_latency(tr.x[:1000]), tr.y[:1000], hidden=[30], n_classes=3, epochs=4,
                               seed=0, settings=settings, lr=5e-3, batch_size=32, hidden_kick=0.01,
                               grad_clip=0.05, train_thresholds=True, train_time_constants=True,
                               lr_theta=1e-2, lr_tau=1e-2, neurons=start)
    return m, fp.encode_latency(te.x[:200]), te.y[:200]


def test_exported_graph_matches_fp_first_spikes_and_classes(tmp_path, small_yinyang):
    m, x, y = small_yinyang
    dt_s = 0.05e-3  # D = 0.01 time units
    gm = fp_to_graph(m, dt_s, unit_s=UNIT_S, output_labels=["yin", "yang", "dot"])
    loaded = load_graph_model(save_model(tmp_path / "fp.npz", gm))
    assert [loaded.graph.nodes[n].kind for n in ("layer0", "layer1")] == ["CubaLIF", "CubaLIF"]
    assert loaded.provenance["export"]["from"] == "fp" and loaded.output_labels == ["yin", "yang", "dot"]
    n_ticks = fp_n_ticks(m.settings.t_max, dt_s, UNIT_S)
    assert n_ticks == 800
    first, pred = graph_first_spikes(loaded, fp_input_raster(x, dt_s, UNIT_S, n_ticks))
    t_fp = m.first_spike_times(x)
    pred_fp = fp.predict_from_times(t_fp, m.settings.t_max)
    assert np.mean(pred_fp == y) > 0.6  # a network that learned something
    assert np.mean(pred == pred_fp) >= 0.95
    D = dt_s / UNIT_S
    both = (first >= 0) & (t_fp < m.settings.t_max)
    assert both.sum() > 100
    err_ticks = ((first + 1) * D - t_fp)[both] / D
    assert np.mean(np.abs(err_ticks) <= 1.0) >= 0.9
    assert np.median(np.abs(err_ticks)) < 1.0
    # outputs FP leaves silent stay (mostly) silent in the graph, and vice versa
    assert np.mean((first >= 0) == (t_fp < m.settings.t_max)) >= 0.95


def test_trained_thresholds_and_time_constants_are_exported(tmp_path, small_yinyang_neurons):
    """A model with per-neuron theta / tau_syn / tau_mem: each CubaLIF neuron gets its own, and the
    reloaded graph at a fine tick agrees with FP's own forward pass as the weights-only export does;
    the same weights exported with the settings' shared values do not (the test can tell)."""
    m, x, y = small_yinyang_neurons
    nrn = m.neurons
    assert nrn is not None and np.ptp(nrn.theta[0]) > 0.2 and np.ptp(nrn.tau_mem[0]) > 0.5
    dt_s = 0.05e-3  # D = 0.01 time units
    gm = fp_to_graph(m, dt_s, unit_s=UNIT_S)
    loaded = load_graph_model(save_model(tmp_path / "fp_neurons.npz", gm))
    D = dt_s / UNIT_S
    for l in range(2):
        node = loaded.graph.nodes[f"layer{l}"]
        np.testing.assert_allclose(node.v_th, nrn.theta[l], rtol=1e-6)
        np.testing.assert_allclose(node.tau_syn_s, nrn.tau_syn[l] * UNIT_S, rtol=1e-6)
        np.testing.assert_allclose(node.tau_mem_s, nrn.tau_mem[l] * UNIT_S, rtol=1e-6)
        want_gain = [psp_ref(D, 1.0 / a, 1.0 / b) for a, b in zip(nrn.tau_syn[l], nrn.tau_mem[l])]
        np.testing.assert_allclose(node.gain, want_gain, rtol=1e-6)
    assert loaded.provenance["export"]["neurons"]["theta"][0][0] == pytest.approx(float(nrn.theta[0].min()))
    n_ticks = fp_n_ticks(m.settings.t_max, dt_s, UNIT_S)
    t_fp = m.first_spike_times(x)
    pred_fp = fp.predict_from_times(t_fp, m.settings.t_max)
    assert np.mean(pred_fp == y) > 0.6
    raster = fp_input_raster(x, dt_s, UNIT_S, n_ticks)

    def agreement(model):
        first, pred = graph_first_spikes(model, raster)
        both = (first >= 0) & (t_fp < m.settings.t_max)
        err_ticks = ((first + 1) * D - t_fp)[both] / D
        return (np.mean(pred == pred_fp), both.sum(), np.mean(np.abs(err_ticks) <= 1.0),
                np.mean((first >= 0) == (t_fp < m.settings.t_max)))

    same_class, n_both, within_tick, same_silence = agreement(loaded)
    assert same_class >= 0.95 and n_both > 100 and within_tick >= 0.9 and same_silence >= 0.95
    shared = fp_to_graph(m.net, dt_s, unit_s=UNIT_S, settings=m.settings)  # per-neuron values ignored
    _, _, within_tick_shared, _ = agreement(shared)
    assert within_tick_shared < 0.5


def test_per_neuron_export_refusals():
    net = fp.FPNetwork([np.ones((2, 3))])
    s = fp.FPSettings()
    with pytest.raises(ValueError, match="neurons must be NeuronParams, got dict"):
        fp_to_graph(net, 1e-3, unit_s=UNIT_S, settings=s, neurons={"theta": 1})
    with pytest.raises(ValueError, match=r"^fp_to_graph: NeuronParams layer sizes \[2\] do not match"):
        fp_to_graph(net, 1e-3, unit_s=UNIT_S, settings=s, neurons=fp.NeuronParams.shared([2], s))
    trained = fp.TrainedFP(net, s, [], neurons=fp.NeuronParams.shared([3], s))
    with pytest.raises(ValueError, match="a TrainedFP carries its own neurons"):
        fp_to_graph(trained, 1e-3, unit_s=UNIT_S, neurons=fp.NeuronParams.shared([3], s))


def test_one_spike_per_hidden_neuron_as_fp_caps_it(small_yinyang):
    m, x, _ = small_yinyang
    dt_s = 0.1e-3
    gm = fp_to_graph(m, dt_s, unit_s=UNIT_S)
    net = GraphNetwork(gm)
    raster = fp_input_raster(x[:20], dt_s, UNIT_S, fp_n_ticks(m.settings.t_max, dt_s, UNIT_S))
    z = net.state_arrays()["layer0.z"]
    total = 0
    buf = np.zeros(gm.n_in, np.float32)
    for s in range(raster.shape[0]):
        net.reset_state()
        counts = np.zeros_like(z)
        for t in range(raster.shape[1]):
            buf[...] = raster[s, t]
            net.step(buf)
            counts += z
        assert counts.max() <= 1
        total += counts.sum()
    assert total > 20  # hidden neurons do fire


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (1.0, 0.5), (2.0, 1.0)])
def test_membrane_is_fp_exact_on_the_tick_grid(alpha, beta):
    """No spikes (high threshold), inputs on the grid: v after tick t equals V((t+1) D)."""
    rng = np.random.default_rng(0)
    w = rng.normal(0.5, 1.0, (3, 2))
    settings = fp.FPSettings(alpha=alpha, beta=beta, theta=1e6, t_max=6.0)
    dt_s = 0.2e-3
    D = dt_s / UNIT_S
    gm = fp_to_graph(fp.FPNetwork([w]), dt_s, unit_s=UNIT_S, settings=settings)
    in_ticks = np.array([3, 10, 40])
    n = fp_n_ticks(6.0, dt_s, UNIT_S)
    raster = fp_input_raster((in_ticks * D)[None, :], dt_s, UNIT_S, n)[0]
    assert raster.sum() == 3 and all(raster[k, j] == 1 for j, k in enumerate(in_ticks))
    _assert_membrane_on_grid(gm, raster, in_ticks, D, lambda s: psp_ref(s, alpha, beta) @ w)


def test_per_neuron_membrane_is_fp_exact_on_the_tick_grid():
    """No spikes, inputs on the grid, every neuron its own tau_syn / tau_mem: v after tick t is
    neuron i's V_i((t+1) D) with h_i (alpha_i = 1/tau_syn_i, beta_i = 1/tau_mem_i)."""
    rng = np.random.default_rng(1)
    w = rng.normal(0.5, 1.0, (3, 4))
    settings = fp.FPSettings(theta=1e6, t_max=6.0)
    nrn = fp.NeuronParams([np.full(4, 1e6)], [np.array([1.0, 0.5, 2.0, 1.3])], [np.array([1.0, 2.0, 0.7, 4.0])])
    dt_s = 0.2e-3
    D = dt_s / UNIT_S
    gm = fp_to_graph(fp.FPNetwork([w]), dt_s, unit_s=UNIT_S, settings=settings, neurons=nrn)
    in_ticks = np.array([3, 10, 40])
    n = fp_n_ticks(6.0, dt_s, UNIT_S)
    raster = fp_input_raster((in_ticks * D)[None, :], dt_s, UNIT_S, n)[0]
    _assert_membrane_on_grid(gm, raster, in_ticks, D, lambda s: [
        psp_ref(s, 1.0 / a, 1.0 / b) @ w[:, i] for i, (a, b) in enumerate(zip(nrn.tau_syn[0], nrn.tau_mem[0]))])


def test_bad_fp_exports_are_refused():
    net = fp.FPNetwork([np.ones((2, 3))])
    s = fp.FPSettings()
    with pytest.raises(ValueError, match="an FPNetwork needs settings"):
        fp_to_graph(net, 1e-3, unit_s=UNIT_S)
    with pytest.raises(ValueError, match="expected a TrainedFP or FPNetwork, got dict"):
        fp_to_graph({"w": 1}, 1e-3, unit_s=UNIT_S, settings=s)
    with pytest.raises(ValueError, match="unit_s must be a finite number of seconds > 0, got -0.005"):
        fp_to_graph(net, 1e-3, unit_s=-5e-3, settings=s)
    with pytest.raises(ValueError, match="dt_s must be a finite number of seconds > 0, got nan"):
        fp_to_graph(net, float("nan"), unit_s=UNIT_S, settings=s)
    with pytest.raises(ValueError, match="is not shorter than the window"):
        fp_to_graph(net, 0.5, unit_s=UNIT_S, settings=s)
    gm = fp_to_graph(net, 1e-3, unit_s=UNIT_S, settings=s)
    with pytest.raises(ValueError, match=r"raster must be \(n, T, n_in=2\), got shape \[1, 5, 3\]"):
        graph_first_spikes(gm, np.zeros((1, 5, 3)))


def test_exporters_turn_graph_errors_into_one_line_value_errors():
    """exported_graph_model (the last step of bptt_to_graph and fp_regression_to_graph) names the
    exporter and the graph's complaint in one line."""
    from rtsnn.learn.offline.export import exported_graph_model
    from rtsnn.snn.nodes import Input, Output

    nodes = {"input": Input(shape=(2,)), "output": Output(shape=(2,))}
    with pytest.raises(ValueError, match=r"^FP regression export: edge input -> nowhere: no node named 'nowhere'$"):
        exported_graph_model("FP regression export", nodes, [("input", "nowhere")], 1e-3, {})
    gm = exported_graph_model("FP export", nodes, [("input", "output")], 1e-3, {"method": "x"},
                              output_labels=["a", "b"])
    assert gm.graph.integration == "exact" and gm.graph.dt_s == 1e-3 and gm.output_labels == ["a", "b"]


def _assert_membrane_on_grid(gm, raster, in_ticks, D, expected):
    """Step the exported graph over ``raster``: layer 0's membrane after tick t must be
    ``expected(s)``, ``s`` the time since each input at the tick's end, to float32 rounding."""
    net = GraphNetwork(gm)
    v = net.state_arrays()["layer0.v"]
    got, want = [], []
    buf = np.zeros(raster.shape[1], np.float32)
    for t in range(raster.shape[0]):
        buf[...] = raster[t]
        net.step(buf)
        got.append(v.copy())
        want.append(expected((t + 1 - in_ticks) * D))
    got, want = np.array(got), np.array(want)
    assert np.abs(want).max() > 0.1
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())  # float32 rounding
