"""Model graphs on Xylo: what maps runs bit-exactly on xylosim and the plugin's integer
reference; what the chip cannot hold is refused naming the node, the limit and the value."""

from __future__ import annotations

import os

import numpy as np
import pytest
from xylo_helpers import readout_rel_error, run_backend

from rtsnn.snn import Model, single_layer
from rtsnn.snn.graph import Graph, GraphModel, graph_from_model
from rtsnn.snn.graph_network import simulate
from rtsnn.snn.nodes import ALIF, IF, LI, LIF, Affine, Conv2d, CubaLIF, Delay, Input, Linear, Output
from rtsnn_xylo.backend import XyloBackend
from rtsnn_xylo.drc import DrcError
from rtsnn_xylo.graph_map import map_graph
from rtsnn_xylo.int_kernels import IntNetwork
from rtsnn_xylo.int_reference import run_reference
from rtsnn_xylo.quantize import map_model
from rtsnn_xylo.sim import XyloSimNetwork, xylosim_available

needs_xylosim = pytest.mark.skipif(not xylosim_available() and not os.environ.get("CI"),
                                   reason="xylosim not installed (pip install xylosim)")
KEYS = ("spikes", "v_mem", "i_syn", "i_syn2", "spikes_out", "v_mem_out", "i_syn_out")
N_IN, N_OUT = 16, 2


def _rec_weights(rng, n, scale=0.05, density=0.3):
    w = rng.standard_normal((n, n)) * scale * (rng.random((n, n)) < density)
    np.fill_diagonal(w, 0)
    return w


def _cuba_graph(n=40, seed=0, readout="trace", n_in=N_IN, n_out=N_OUT, hidden=None, w_in=None, **hidden_kw):
    """Input -> Linear -> CubaLIF (recurrent) -> readout, per-neuron taus that Xylo represents
    exactly under 'euler' integration (tau = dt 2^dash) and per-neuron thresholds."""
    rng = np.random.default_rng(seed)
    kw = dict(tau_mem_s=rng.choice([0.016, 0.032], n), tau_syn_s=rng.choice([0.004, 0.008], n),
              v_th=rng.uniform(0.8, 1.2, n), reset_at="now", n=n)
    kw.update(hidden_kw)
    nodes = {"input": Input(shape=(n_in,)),
             "w_in": w_in if w_in is not None else Linear(weight=rng.standard_normal((n_in, n)) * 0.04),
             "hidden": hidden if hidden is not None else CubaLIF(**kw),
             "w_rec": Linear(weight=_rec_weights(rng, n)), "output": Output(shape=(n_out,))}
    edges = [("input", "w_in"), ("w_in", "hidden"), ("hidden", "w_rec"), ("w_rec", "hidden")]
    if readout == "trace":  # hidden -> LI -> Affine -> output
        nodes["trace"] = LI(tau_s=0.016, n=n)
        nodes["w_out"] = Affine(weight=rng.standard_normal((n, n_out)) * 0.3, bias=np.array([0.1, -0.2][:n_out]
                                                                                             + [0.0] * (n_out - 2)))
        edges += [("hidden", "trace"), ("trace", "w_out"), ("w_out", "output")]
    elif readout == "li_per_output":  # hidden -> Linear -> LI (one tau per output) -> output
        nodes["w_out"] = Linear(weight=rng.standard_normal((n, n_out)) * 0.3)
        nodes["trace"] = LI(tau_s=np.array([0.008, 0.032][:n_out]), n=n_out)
        edges += [("hidden", "w_out"), ("w_out", "trace"), ("trace", "output")]
    else:  # spiking readout neurons
        nodes["w_out"] = Linear(weight=np.abs(rng.standard_normal((n, n_out))) * 0.6)
        nodes["readout"] = CubaLIF(tau_mem_s=0.016, tau_syn_s=0.004, v_th=np.array([0.5, 0.7][:n_out]), n=n_out,
                                   reset_at="now")
        edges += [("hidden", "w_out"), ("w_out", "readout"), ("readout", "output")]
    return GraphModel(Graph(nodes, edges, dt_s=1e-3, integration="euler"))


def _inputs(T=600, seed=1, n_in=N_IN, rate=0.05):
    return np.random.default_rng(seed).poisson(rate, (T, n_in)).astype(np.float32)


def _same(a, b, label):
    for k in KEYS:
        np.testing.assert_array_equal(np.asarray(a[k], np.int64), np.asarray(b[k], np.int64),
                                      err_msg=f"{label}: {k} differs")


# ------------------------------------------------------------------ graphs that map
@needs_xylosim
@pytest.mark.parametrize("readout", ["trace", "li_per_output", "spikes"])
def test_cuba_graph_maps_and_xylosim_matches_the_integer_reference(readout):
    gm = _cuba_graph(readout=readout, seed=2)
    cfg, rep = map_graph(gm)
    hid = gm.graph.nodes["hidden"]
    # per-neuron bit-shift decays: tau = dt 2^dash exactly under 'euler'
    np.testing.assert_array_equal(cfg.dash_mem, np.log2(hid.tau_mem_s / 1e-3).round().astype(int))
    np.testing.assert_array_equal(cfg.dash_syn[:, 0], np.log2(hid.tau_syn_s / 1e-3).round().astype(int))
    assert cfg.notes["tau"]["hidden.tau_mem_s"]["max_rel_error"] < 1e-12
    assert len(np.unique(cfg.threshold)) > 10  # per-neuron thresholds kept
    xs = _inputs(T=400, rate=0.1).astype(np.int64)
    ours = IntNetwork(cfg).run(xs)
    _same(ours, XyloSimNetwork(cfg).record(xs), "numba vs xylosim")
    _same({k: v[:150] for k, v in ours.items()}, run_reference(cfg, xs[:150]), "numba vs python reference")
    assert ours["spikes"].sum() > 50
    if readout == "spikes":
        assert cfg.notes["readout"] == "spikes" and ours["spikes_out"].sum() > 0
        assert cfg.dash_mem_out.tolist() == [4, 4] and cfg.dash_syn_out.tolist() == [2, 2]
    elif readout == "li_per_output":
        assert cfg.dash_syn_out.tolist() == [3, 5]  # one decay per output neuron


@pytest.mark.parametrize("simulator", ["reference", pytest.param("xylosim", marks=needs_xylosim)])
def test_backend_runs_a_cuba_graph_like_the_float_graph(simulator):
    """The chip's readout follows the float graph's (one step later), and both simulators agree."""
    gm = _cuba_graph(seed=0)
    xs = _inputs(T=1500, seed=3)
    y_float = simulate(gm, xs)
    be = XyloBackend(gm, simulator=simulator)
    be.warm_up()
    y_chip = run_backend(be, xs)
    for k in range(N_OUT):
        r = np.corrcoef(y_chip[1:, k], y_float[:-1, k])[0, 1]
        assert r > 0.75, f"output {k}: correlation {r:.3f} with the float graph"
    if simulator == "xylosim":
        np.testing.assert_array_equal(y_chip, run_backend(XyloBackend(gm, simulator="reference"), xs))
    assert be.n_rec == 40 and be.spikes().shape == (40,)


@needs_xylosim
def test_spiking_readout_backend_outputs_the_ticks_output_spikes():
    gm = _cuba_graph(readout="spikes", seed=2)
    xs = _inputs(T=300, rate=0.1)
    outs = [run_backend(XyloBackend(gm, simulator=s, steps_per_tick=2), xs) for s in ("xylosim", "reference")]
    np.testing.assert_array_equal(outs[0], outs[1])
    cfg = XyloBackend(gm, simulator="reference", steps_per_tick=2).config
    from rtsnn_xylo.ticks import spread_counts
    rec = IntNetwork(cfg).run(spread_counts(xs.astype(np.int64), 2))
    np.testing.assert_array_equal(outs[0], rec["spikes_out"].reshape(300, 2, N_OUT).sum(axis=1))
    assert outs[0].sum() > 0
    with pytest.raises(ValueError, match="set_readout needs the graph readout"):
        XyloBackend(gm, simulator="reference").set_readout(np.zeros((40, N_OUT)), np.zeros(N_OUT))


def test_single_layer_graph_maps_exactly_like_the_model():
    m = Model.random(16, 60, 2, *single_layer("lif", 60, tau_out_s=0.02), seed=1, input_gain=2.0, readout_scale=1.0, rec_density=0.3)
    a, _ = map_model(m)
    b, _ = map_graph(graph_from_model(m))
    for k in ("w_in", "w_rec", "w_out", "threshold", "threshold_out", "dash_mem", "dash_syn", "dash_mem_out",
              "dash_syn_out", "bias"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
    np.testing.assert_allclose(a.out_scale, b.out_scale)
    assert (a.weight_shift_in, a.weight_shift_rec) == (b.weight_shift_in, b.weight_shift_rec)
    # the backend takes the graph too, decoding identically to the Model
    xs = _inputs(T=300)
    np.testing.assert_array_equal(run_backend(XyloBackend(m, simulator="reference"), xs),
                                  run_backend(XyloBackend(graph_from_model(m), simulator="reference"), xs))


def test_set_readout_on_a_graph_requantises_and_updates_the_affine():
    gm = _cuba_graph(seed=4)
    be = XyloBackend(gm, simulator="reference")
    w_new = np.random.default_rng(0).standard_normal((40, N_OUT)).astype(np.float32) * 0.3
    b_new = np.array([0.5, -1.0], np.float32)
    be.set_readout(w_new, b_new)
    np.testing.assert_array_equal(gm.graph.nodes["w_out"].weight, w_new)
    np.testing.assert_array_equal(gm.graph.nodes["w_out"].bias, b_new)
    err = readout_rel_error(be, _inputs(T=500, seed=5), w_new, b_new)
    assert err < 0.05, f"relative readout error {err:.3f}"


@needs_xylosim
def test_two_hidden_layers_become_one_pool_one_step_late():
    rng = np.random.default_rng(5)
    n1, n2 = 30, 20
    nodes = {"input": Input(shape=(N_IN,)), "w1": Linear(weight=rng.standard_normal((N_IN, n1)) * 0.05),
             "h1": CubaLIF(tau_mem_s=0.016, tau_syn_s=0.004, n=n1, reset_at="now"),
             "w12": Linear(weight=rng.standard_normal((n1, n2)) * 0.4),
             "h2": LIF(tau_mem_s=0.032, v_th=0.5, v_leak=0.1, n=n2),
             "w22": Linear(weight=_rec_weights(rng, n2)),
             "trace": LI(tau_s=0.016, n=n2), "w_out": Affine(weight=rng.standard_normal((n2, 2)), bias=np.zeros(2)),
             "output": Output(shape=(2,))}
    edges = [("input", "w1"), ("w1", "h1"), ("h1", "w12"), ("w12", "h2"), ("h2", "w22"), ("w22", "h2"),
             ("h2", "trace"), ("trace", "w_out"), ("w_out", "output")]
    gm = GraphModel(Graph(nodes, edges, dt_s=1e-3, integration="euler"))
    cfg, rep = map_graph(gm)
    assert cfg.n_hid == n1 + n2 and cfg.notes["extra_latency_steps"] == 1
    assert [p["node"] for p in cfg.notes["populations"]] == ["h1", "h2"]
    assert not cfg.w_in[:, n1:].any() and cfg.w_in[:, :n1].any()  # only h1 hears the input
    assert cfg.w_rec[:n1, n1:].any() and not cfg.w_rec[n1:, :n1].any() and not cfg.w_rec[:n1, :n1].any()
    assert not cfg.w_out[:n1].any() and cfg.w_out[n1:].any()
    # h2's leak potential is the chip's bias: (1 - 2^-5) * 0.1 * scale per step
    assert cfg.has_bias and not cfg.bias[:n1].any()
    np.testing.assert_allclose(cfg.bias[n1:], (1 - 2**-5) * 0.1 * cfg.notes["hidden_scale_min"], atol=0.5)
    assert any("'h1' -> 'h2'" in w and "1 chip step(s) late" in w for w in rep.warnings), rep.warnings
    xs = _inputs(T=300, rate=0.2).astype(np.int64)
    ours = IntNetwork(cfg).run(xs)
    _same(ours, XyloSimNetwork(cfg).record(xs), "numba vs xylosim")
    assert ours["spikes"][:, :n1].sum() > 0 and ours["spikes"][:, n1:].sum() > 0


# ------------------------------------------------------------------ refusals
def _delay_graph():
    gm = _cuba_graph()
    g = gm.graph
    nodes = dict(g.nodes)
    nodes["delay"] = Delay(steps=2, n=40)
    edges = [e for e in g.edges if e != ("w_in", "hidden")] + [("w_in", "delay"), ("delay", "hidden")]
    return GraphModel(Graph(nodes, edges, dt_s=1e-3, integration="euler"))


def _conv_graph():
    rng = np.random.default_rng(0)
    nodes = {"input": Input(shape=(1, 4, 4)), "conv": Conv2d(weight=rng.standard_normal((1, 1, 3, 3)),
                                                              bias=np.zeros(1), input_shape=(1, 4, 4)),
             "w_in": Linear(weight=rng.standard_normal((4, 10))), "hidden": LIF(n=10),
             "trace": LI(n=10), "w_out": Affine(weight=np.ones((10, 2)), bias=np.zeros(2)),
             "output": Output(shape=(2,))}
    edges = [("input", "conv"), ("conv", "w_in"), ("w_in", "hidden"), ("hidden", "trace"), ("trace", "w_out"),
             ("w_out", "output")]
    return GraphModel(Graph(nodes, edges))


def _readout_from_input():
    nodes = {"input": Input(shape=(4,)), "w": Linear(weight=np.ones((4, 2))), "readout": LIF(n=2),
             "output": Output(shape=(2,))}
    return GraphModel(Graph(nodes, [("input", "w"), ("w", "readout"), ("readout", "output")]))


def _dense_rec():
    gm = _cuba_graph(n=100)
    gm.graph.nodes["w_rec"].weight[...] = 0.01
    np.fill_diagonal(gm.graph.nodes["w_rec"].weight, 0.0)
    return gm


REFUSALS = {
    "hidden neurons": (lambda: _cuba_graph(n=1001), ["node(s) 'hidden' (1001): hidden neurons", "got 1001",
                                                      "1..1000"]),
    "input channels": (lambda: _cuba_graph(n_in=17), ["node 'input': input channels", "got 17", "1..16"]),
    "output neurons": (lambda: _cuba_graph(n_out=9), ["node 'output': output neurons", "got 9", "1..8"]),
    "ALIF": (lambda: _cuba_graph(hidden=ALIF(beta_adapt=0.2, n=40)),
             ["node 'hidden': beta_adapt (ALIF)", "40 neuron(s) adapt, max 0.2", "Xylo has no threshold adaptation"]),
    "Delay": (_delay_graph, ["node 'delay': kind Delay", "no synaptic delays"]),
    "Conv2d": (_conv_graph, ["node 'conv': kind Conv2d", "no convolution"]),
    "IF": (lambda: _cuba_graph(hidden=IF(n=40)), ["node 'hidden': kind IF", "always leaks"]),
    "reset to zero": (lambda: _cuba_graph(reset="zero"), ["node 'hidden': reset", "40 neuron(s) reset to zero",
                                                          "'subtract'"]),
    "refractory": (lambda: _cuba_graph(refractory_s=3e-3), ["node 'hidden': refractory_s", "max 0.003 s",
                                                            "0 (Xylo has no refractory period)"]),
    "tau out of range": (lambda: _cuba_graph(tau_mem_s=np.r_[100.0, np.full(39, 0.016)]),
                         ["node 'hidden': tau_mem_s", "worst neuron 0 with 100 s (dash 17)", "(dash 1..15)"]),
    "trace taus": (lambda: _set(_cuba_graph(), "trace", LI(tau_s=np.r_[np.full(20, 0.004), np.full(20, 0.032)])),
                   ["node 'trace': tau_s", "one time constant", "0.004..0.032 s (dash 2..5)"]),
    "bias into Isyn": (lambda: _cuba_graph(w_in=Affine(weight=np.full((N_IN, 40), 0.05), bias=np.full(40, 0.3))),
                       ["node 'w_in': bias", "max |bias| 0.3", "Vmem, not to Isyn"]),
    "readout from input": (_readout_from_input, ["node 'w': inputs", "output neurons listen to hidden spikes only",
                                                 "hidden neurons", "got 0"]),
    "fan-out": (_dense_rec, ["node 'hidden': recurrent fan-out", "100 neuron(s) over the limit", "0..64"]),
}


def _set(gm, name, node):
    nodes = dict(gm.graph.nodes)
    nodes[name] = node
    return GraphModel(Graph(nodes, gm.graph.edges, gm.dt_s, gm.graph.integration))


@pytest.mark.parametrize("case", list(REFUSALS))
def test_what_the_chip_cannot_hold_is_refused_naming_node_limit_and_value(case):
    build, parts = REFUSALS[case]
    gm = build()
    with pytest.raises(DrcError) as info:
        XyloBackend(gm, simulator="reference")
    msg = str(info.value)
    for p in parts:
        assert p in msg, f"{p!r} missing from: {msg}"
    if len(info.value.report.violations) == 1:
        assert "\n" not in msg  # one refusal, one line


def test_strict_false_drops_adaptation_and_refractoriness_with_warnings():
    gm = _cuba_graph(hidden=ALIF(beta_adapt=0.2, refractory_s=2e-3, tau_mem_s=0.016, n=40))
    with pytest.raises(DrcError, match="refractory_s"):
        map_graph(gm)
    cfg, rep = map_graph(gm, strict=False)
    assert any("beta_adapt" in w and "dropped" in w for w in rep.warnings)
    assert any("refractory_s" in w and "dropped" in w for w in rep.warnings)


def test_bad_options_and_model_types():
    with pytest.raises(ValueError, match="needs a rtsnn Model or GraphModel"):
        XyloBackend({"not": "a model"}, simulator="reference")
    with pytest.raises(ValueError, match="quantization must be one of"):
        map_graph(_cuba_graph(), quantization="per_layer")


def test_fit_report_of_a_graph_is_strict_json_with_tau_errors():
    import json
    from rtsnn_xylo.report import xylo_report
    rep = xylo_report(_cuba_graph(seed=1))
    assert rep["fits"] and rep["neurons"]["hidden"] == 40
    assert rep["quantization"]["tau"]["trace.tau_s"]["max_rel_error"] < 1e-12
    json.dumps(rep, allow_nan=False)
    bad = xylo_report(_cuba_graph(n=1001))
    assert not bad["fits"] and bad["neurons"]["hidden"] == 1001
    assert any("node(s) 'hidden' (1001): hidden neurons" in v for v in bad["violations"])


@pytest.mark.parametrize("simulator", ["reference", pytest.param("xylosim", marks=needs_xylosim)])
def test_session_runs_a_graph_model_file_on_the_xylo_backend(tmp_path, simulator):
    """``rtsnn run`` with a CubaLIF graph model file and ``backend: xylo`` gives, tick for tick,
    the outputs of the backend stepped by hand."""
    from rtsnn.config import parse_config
    from rtsnn.recording.xdf_writer import write_xdf_stream
    from rtsnn.runtime.session import Session
    from rtsnn.snn import save_model

    gm = _cuba_graph(seed=0)
    xs = _inputs(T=400)
    save_model(tmp_path / "g.npz", gm)
    write_xdf_stream(tmp_path / "in.xdf", xs, 1000.0, name="counts", type="Spikes", source_id="test-counts",
                     t0_s=10.0)
    cfg = parse_config({
        "session": {"name": "xylo-graph", "pace": "max", "out_dir": str(tmp_path / "s")},
        "source": {"kind": "xdf_file", "options": {"path": str(tmp_path / "in.xdf"), "n_channels": N_IN}},
        "encoder": {"kind": "passthrough", "options": {"n_channels": N_IN}},
        "model": {"path": str(tmp_path / "g.npz")},
        "backend": {"kind": "xylo", "options": {"simulator": simulator}},
    })
    session = Session(cfg)
    assert isinstance(session.backend.model, GraphModel)
    summary = session.run()
    assert summary["ticks"] == len(xs)
    rows = np.fromfile(f"{summary['folder']}/outputs.f64", "<f8").reshape(-1, 3 + 2 * N_OUT)
    be = XyloBackend(gm, simulator=simulator)
    be.warm_up()
    np.testing.assert_array_equal(rows[:, 3:3 + N_OUT], run_backend(be, xs).astype(np.float64))
    assert np.abs(rows[:, 3:3 + N_OUT]).max() > 0
