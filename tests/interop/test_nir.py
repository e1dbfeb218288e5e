"""NIR export/import of model graphs: every node kind both ways, conventions, the strict
threshold, refusals, corrupt files, and the CLI/session path."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import import_or_skip

nir = import_or_skip("nir", reason="NIR support needs `pip install nir` (in the dev extra)")

from rtsnn.interop.nir import (decay_to_tau_r, from_nir, load_nir, save_nir, tau_r_to_decay,  # noqa: E402
                               to_nir)
from rtsnn.snn import Model, Network, single_layer  # noqa: E402
from rtsnn.snn import nodes as N  # noqa: E402
from rtsnn.snn.graph import Graph, GraphModel  # noqa: E402
from rtsnn.snn.graph_network import GraphNetwork  # noqa: E402
from rtsnn.snn.model_file import ModelFileError  # noqa: E402


def _model(seed=0, **kw):
    m = Model.random(5, 16, 2, *single_layer(kw.pop("model", "lif"), 16, **kw), seed=seed, input_gain=2.0, readout_scale=1.0)
    m.weights.b_out[:] = [0.5, -0.25]
    m.output_labels, m.output_units = ["vx", "vy"], ["m/s", "m/s"]
    return m


def _every_kind(integration="euler", seed=0):
    """A graph holding every exportable node kind, with a recurrent projection."""
    rng = np.random.default_rng(seed)
    dt = 1e-3
    nodes = {
        "input": N.Input(shape=(2, 6, 6)),
        "conv": N.Conv2d(weight=rng.normal(0, 0.6, (3, 2, 3, 3)), bias=rng.normal(0, 0.1, 3), input_shape=(2, 6, 6),
                         padding=1),
        "c_lif": N.LIF(tau_mem_s=8e-3, v_th=0.8, n=108, reset="zero", reset_at="now", spike_if=">"),
        "pool": N.SumPool2d(kernel_size=2, input_shape=(3, 6, 6)),
        "avg": N.AvgPool2d(kernel_size=3, input_shape=(3, 3, 3)),
        "flat": N.Flatten(input_shape=(3, 1, 1)),
        "w1": N.Affine(weight=rng.normal(0, 2, (3, 10)), bias=rng.normal(0, 0.2, 10)),
        "cuba": N.CubaLIF(tau_mem_s=12e-3, tau_syn_s=4e-3, v_th=rng.uniform(0.5, 1, 10), gain=0.7, n=10),
        "w_rec": N.Linear(weight=rng.normal(0, 0.5, (10, 10))),
        "delay": N.Delay(steps=rng.integers(0, 4, 10)),
        "w2": N.Linear(weight=rng.normal(0, 1.5, (10, 4))),
        "if": N.IF(v_th=1.2, gain=0.9, n=4, reset="zero", reset_at="now", v_reset=0.1),
        "w3": N.Affine(weight=rng.normal(0, 1, (4, 3)), bias=np.zeros(3)),
        "li": N.LI(tau_s=30e-3, gain=1.0, v_leak=0.05, n=3),
        "output": N.Output(shape=(3,)),
    }
    edges = [("input", "conv"), ("conv", "c_lif"), ("c_lif", "pool"), ("pool", "avg"), ("avg", "flat"),
             ("flat", "w1"), ("w1", "cuba"), ("cuba", "w_rec"), ("w_rec", "cuba"), ("cuba", "delay"),
             ("delay", "w2"), ("w2", "if"), ("if", "w3"), ("w3", "li"), ("li", "output")]
    return GraphModel(Graph(nodes, edges, dt_s=dt, integration=integration))


def _run(gm, xs):
    net = GraphNetwork(gm)
    st = net.state_arrays()
    spiking = [k for k in gm.graph.order() if gm.graph.nodes[k].spiking]
    zs, ys = {k: [] for k in spiking}, []
    buf = np.zeros(gm.n_in, np.float32)
    for x in xs:
        buf[:] = x
        net.step(buf)
        ys.append(net.readout().copy())
        for k in spiking:
            zs[k].append(st[f"{k}.z"].copy())
    return np.array(ys), {k: np.array(v) for k, v in zs.items()}


@pytest.mark.parametrize("convention", ["nir", "norse", "snntorch", "rockpool"])
@pytest.mark.parametrize("integration", ["euler", "exact"])
def test_every_node_kind_round_trips_through_a_file(tmp_path, convention, integration):
    gm = _every_kind(integration)
    path = tmp_path / "g.nir"
    save_nir(gm, path, convention=convention)
    back, notes = load_nir(path)  # the file's rtsnn metadata names convention and tick
    assert notes == []
    g2 = back.graph
    assert set(g2.edges) == set(gm.graph.edges) and g2.integration == integration
    for name, node in gm.graph.nodes.items():
        other = g2.nodes[name]
        assert other.kind == node.kind, name
        for fld, arr in node.arrays().items():
            got = other.arrays()[fld]
            if fld in ("tau_mem_s", "tau_syn_s", "tau_s"):
                # the per-tick decay is what must survive; the float64 time constant may move
                np.testing.assert_array_equal(np.float32(gm.graph.decay(arr)), np.float32(g2.decay(got)), err_msg=name)
            elif fld == "gain":
                np.testing.assert_allclose(got, arr, rtol=2e-7, err_msg=name)
            else:
                np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(arr, np.float32), err_msg=name)
        for fld in ("reset_at", "spike_if"):
            assert getattr(other, fld, None) == getattr(node, fld, None), (name, fld)
    xs = (np.random.default_rng(1).random((300, 72)) < 0.3).astype(np.float32)
    y1, z1 = _run(gm, xs)
    y2, z2 = _run(back, xs)
    for k in z1:
        assert z1[k].any(), k
        np.testing.assert_array_equal(z2[k], z1[k], err_msg=k)
    np.testing.assert_allclose(y2, y1, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("convention", ["snntorch", "rockpool", "nir"])
def test_single_layer_model_round_trips_bit_for_bit(tmp_path, convention):
    m = _model()
    path = tmp_path / "m.nir"
    save_nir(m, path, convention=convention)
    m2, notes = load_nir(path)
    assert notes == [] and isinstance(m2, Model)  # the single-layer pattern comes back as a Model
    assert m2.output_labels == ["vx", "vy"] and m2.output_units == ["m/s", "m/s"]
    np.testing.assert_array_equal(m2.weights.w_in, m.weights.w_in)
    np.testing.assert_array_equal(m2.weights.w_rec, m.weights.w_rec)
    assert np.float32(m2.constants.alpha) == np.float32(m.constants.alpha)
    xs = np.random.default_rng(1).poisson(0.3, (300, 5)).astype(np.float32)
    y1, z1 = Network(m).run(xs)
    y2, z2 = Network(m2).run(xs)
    assert z1.any()
    np.testing.assert_array_equal(z2, z1)
    np.testing.assert_allclose(y2, y1, rtol=1e-5, atol=1e-6)


def test_strict_threshold_is_one_float_below_and_inverts():
    m = _model(v_th=0.7)
    g = to_nir(m)
    thr = np.float32(g.nodes["hidden"].v_threshold[0])
    assert thr < np.float32(0.7) and np.nextafter(thr, np.float32(np.inf)) == np.float32(0.7)
    v = np.float32(0.7)
    assert (v > thr) == (v >= np.float32(0.7))  # the spike rule agrees exactly at the threshold
    gm, _ = from_nir(g)
    assert gm.graph.nodes["hidden"].spike_if == ">=" and np.float32(gm.graph.nodes["hidden"].v_th[0]) == v
    # a foreign file (no rtsnn metadata) spikes on v > v_threshold as NIR says
    g.metadata = {}
    gm2, _ = from_nir(g, convention="nir", dt_s=1e-3)
    assert gm2.graph.nodes["hidden"].spike_if == ">" and np.float32(gm2.graph.nodes["hidden"].v_th[0]) == thr


def test_strict_kernel_variant_matches_its_numpy_twin_and_differs_at_the_threshold():
    from rtsnn.snn.neuron_kernels import spiking_update, spiking_update_np

    f = np.float32
    n = 6
    for strict in (False, True):
        for clamp in (False, True):
            st = [np.array([0.5, 0.2, 0.9, 0.0, 0.3, 0.99], f), np.zeros(n, f), np.zeros(n, f),
                  np.array([1, 0, 1, 0, 1, 1], f), np.zeros(n, np.int32)]
            st2 = [a.copy() for a in st]
            cur = np.array([0.55, 0.8, 0.1, 1.0, 0.7, 0.0], f)
            par = [np.full(n, f(0.9)), np.full(n, f(0.5)), np.zeros(n, f), np.zeros(n, f), np.full(n, f(1.0)),
                   np.ones(n, f), np.zeros(n, f), np.full(n, f(0.1)), np.array([1, 1, 0, 0, 1, 1], np.uint8),
                   np.zeros(n, np.int32)]
            a = spiking_update(cur, *st, *par, True, False, False, strict, clamp)
            b = spiking_update_np(cur, *st2, *par, True, False, False, strict, clamp)
            assert a == b
            for x, y in zip(st, st2):
                np.testing.assert_array_equal(x, y)
    # v = 1.0 exactly at v_th = 1.0: '>=' spikes, '>' does not
    for strict, want in ((False, 1.0), (True, 0.0)):
        v, z = np.zeros(1, f), np.zeros(1, f)
        spiking_update(np.ones(1, f), v, np.zeros(1, f), np.zeros(1, f), z, np.zeros(1, np.int32), np.zeros(1, f),
                       np.zeros(1, f), np.zeros(1, f), np.zeros(1, f), np.ones(1, f), np.ones(1, f), np.zeros(1, f),
                       np.zeros(1, f), np.zeros(1, np.uint8), np.zeros(1, np.int32), False, False, False, strict, False)
        assert z[0] == want


def test_conventions_differ_and_each_inverts():
    alpha, dt = float(np.exp(-1e-3 / 20e-3)), 1e-3
    for conv in ("snntorch", "norse", "nir", "rockpool"):
        t, r = decay_to_tau_r(alpha, dt, conv)
        a, g = tau_r_to_decay(np.array([t]), np.array([r]), dt, conv)
        assert a[0] == pytest.approx(alpha, rel=1e-12) and g[0] == pytest.approx(1.0, rel=1e-12)
    t_s, _ = decay_to_tau_r(alpha, dt, "snntorch")  # snnTorch's fixed 1e-4 s step
    t_n, _ = decay_to_tau_r(alpha, dt, "nir")
    assert t_s == pytest.approx(t_n / 10)
    t_r, r_r = decay_to_tau_r(alpha, dt, "rockpool")
    a_wrong, _ = tau_r_to_decay(np.array([t_r]), np.array([r_r]), dt, "nir")
    assert abs(a_wrong[0] - alpha) > 1e-4  # reading with the wrong convention changes the dynamics


def test_foreign_r_becomes_an_exact_input_gain():
    g = to_nir(_model(), convention="nir")
    g.metadata = {}
    g.nodes["hidden"].r = g.nodes["hidden"].r * 2.0
    gm, _ = from_nir(g, convention="nir", dt_s=1e-3)
    np.testing.assert_allclose(gm.graph.nodes["hidden"].gain, 2.0, rtol=1e-6)


def test_import_refuses_to_guess_tick_or_convention():
    g = to_nir(_model())
    g.metadata = {}
    with pytest.raises(ValueError, match="pass convention="):
        from_nir(g, dt_s=1e-3)
    with pytest.raises(ValueError, match="pass dt_s"):
        from_nir(g, convention="snntorch")
    with pytest.raises(ValueError, match="convention must be one of snntorch, norse, nir"):
        from_nir(g, convention="brian", dt_s=1e-3)
    with pytest.raises(ValueError, match="dt_s must be a number of seconds"):
        from_nir(g, convention="nir", dt_s=float("nan"))
    with pytest.raises(ValueError, match="reset must be one of zero, subtract"):
        from_nir(g, convention="nir", dt_s=1e-3, reset="half")
    gm, _ = from_nir(g, convention="nir", dt_s=1e-3, reset="subtract")
    h = gm.graph.nodes["hidden"]
    assert h.reset_at == "now" and np.all(h.reset == 0)  # NIR timing, the reset the caller named
    gm, _ = from_nir(g, convention="snntorch", dt_s=1e-3)
    assert gm.graph.nodes["hidden"].reset_at == "next_clamp"  # a LIF on a cycle: snnTorch's RLeaky


def test_unsupported_models_and_nodes_are_refused_naming_them():
    with pytest.raises(ValueError, match="node 'hidden': NIR has no adaptive-threshold neuron"):
        to_nir(_model(model="alif", beta_adapt=0.1))
    with pytest.raises(ValueError, match="node 'hidden': NIR has no refractory period"):
        to_nir(_model(refractory_s=2e-3))
    with pytest.raises(ValueError, match="differs from the model's tick"):
        to_nir(_model(), dt_s=2e-3)
    g = to_nir(_model())
    g.nodes["gate"] = nir.Threshold(threshold=np.ones(16))
    g.edges.append(("hidden", "gate"))
    g.edges.append(("gate", "w_out"))
    with pytest.raises(ValueError, match="NIR node 'gate': kind Threshold has no rtsnn counterpart"):
        from_nir(g)
    g = to_nir(_model())
    g.edges.append(("hidden", "nowhere"))
    with pytest.raises(ValueError, match="no node named 'nowhere'"):
        from_nir(g)
    g = to_nir(_model())
    g.nodes["w_in"].weight = g.nodes["w_in"].weight[:, :3]
    with pytest.raises(ValueError, match="edge input -> w_in"):
        from_nir(g)
    g = to_nir(_model(), convention="nir")
    g.metadata = {}
    with pytest.raises(ValueError, match="per-tick decay .* is dt_s right"):
        from_nir(g, convention="nir", dt_s=5.0)


def _write_corrupt(tmp_path, kind):
    import h5py

    path = tmp_path / f"{kind}.nir"
    good = tmp_path / "good.nir"
    save_nir(_model(), good)
    if kind == "garbage":
        path.write_bytes(b"this is not an HDF5 file\n" * 10)
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    elif kind == "missing_field":
        path.write_bytes(good.read_bytes())
        with h5py.File(path, "r+") as f:
            del f["node/nodes/w_in/weight"]
    elif kind == "nan_weights":
        path.write_bytes(good.read_bytes())
        with h5py.File(path, "r+") as f:
            w = f["node/nodes/w_rec/weight"]
            w[0, 0] = np.nan
    elif kind == "empty":
        path.write_bytes(b"")
    return path


@pytest.mark.parametrize("kind", ["garbage", "truncated", "missing_field", "nan_weights", "empty"])
def test_corrupt_files_give_one_line_errors(tmp_path, kind):
    path = _write_corrupt(tmp_path, kind)
    with pytest.raises(ModelFileError) as info:
        load_nir(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and len(msg) < 400, msg
    with pytest.raises(ModelFileError, match="does not exist"):
        load_nir(tmp_path / "missing.nir")


def test_cli_convert_both_ways_and_a_session_runs_the_nir_graph(tmp_path, capsys, spike_recording):
    from rtsnn.cli import main
    from rtsnn.config import parse_config
    from rtsnn.runtime.session import Session
    from rtsnn.snn import load_model, save_model

    m = _model()
    save_model(tmp_path / "m.npz", m)
    assert main(["model", "convert", str(tmp_path / "m.npz"), str(tmp_path / "m.nir"), "--convention", "rockpool"]) == 0
    assert main(["model", "convert", str(tmp_path / "m.nir"), str(tmp_path / "back.npz")]) == 0
    back = load_model(tmp_path / "back.npz")
    for k in ("w_in", "w_rec", "w_out", "b_out"):
        np.testing.assert_array_equal(getattr(back.weights, k), getattr(m.weights, k))
    (tmp_path / "bad.nir").write_bytes(b"\x89HDF\r\n garbage")
    assert main(["model", "convert", str(tmp_path / "bad.nir"), str(tmp_path / "x.npz")]) != 0
    err = capsys.readouterr().err
    assert "bad.nir" in err and "Traceback" not in err
    assert main(["model", "convert", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 2
    assert "goes .npz -> .nir or .nir -> .npz" in capsys.readouterr().err

    _, xs = spike_recording(200, 5, poisson_mean=0.3, seed=1, name="x")  # tmp_path / "in.xdf"
    runs = {}
    for name in ("m.npz", "m.nir"):
        cfg = parse_config({
            "session": {"name": "nir", "pace": "max", "out_dir": str(tmp_path / f"s-{name}"), "monitor": False},
            "source": {"kind": "xdf_file", "options": {"path": str(tmp_path / "in.xdf"), "n_channels": 5}},
            "encoder": {"kind": "passthrough", "options": {"n_channels": 5}},
            "model": {"path": str(tmp_path / name)}})
        s = Session(cfg).run()
        runs[name] = np.fromfile(f"{s['folder']}/outputs.f64", "<f8").reshape(-1, 7)
        assert s["ticks"] == len(xs) and len(runs[name]) == len(xs), (name, s["ticks"], s["outputs_dropped"], s["folder"])
    np.testing.assert_array_equal(runs["m.nir"][:, 3:5], runs["m.npz"][:, 3:5])
    assert np.abs(runs["m.npz"][:, 3:5]).max() > 0
