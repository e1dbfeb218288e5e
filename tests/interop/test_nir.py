"""NIR export/import: round trips under both conventions, strict threshold, bad graphs."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import import_or_skip

nir = import_or_skip("nir", reason="NIR support needs `pip install nir` (in the dev extra)")

from rtsnn.interop.nir import decay_to_tau_r, from_nir, load_nir, save_nir, tau_r_to_decay, to_nir  # noqa: E402
from rtsnn.snn import Model, Network, NeuronSettings  # noqa: E402


def _model(seed=0, **kw):
    m = Model.random(5, 16, 2, NeuronSettings(**kw), seed=seed, input_gain=2.0, readout_scale=1.0)
    m.weights.b_out[:] = [0.5, -0.25]
    m.output_labels, m.output_units = ["vx", "vy"], ["m/s", "m/s"]
    return m


@pytest.mark.parametrize("convention", ["snntorch", "rockpool"])
@pytest.mark.parametrize("neuron", ["lif", "cubalif"])
def test_file_round_trip_reproduces_outputs_bit_for_bit(tmp_path, convention, neuron):
    if neuron == "cubalif" and convention == "rockpool":
        with pytest.raises(ValueError, match="only under the snntorch convention"):
            to_nir(_model(), convention=convention, neuron=neuron)
        return
    m = _model()
    path = tmp_path / "m.nir"
    save_nir(m, path, convention=convention, neuron=neuron)
    m2, notes = load_nir(path)
    assert notes == []
    assert m2.output_labels == ["vx", "vy"] and m2.output_units == ["m/s", "m/s"]
    np.testing.assert_array_equal(m2.weights.w_in, m.weights.w_in)
    np.testing.assert_array_equal(m2.weights.w_rec, m.weights.w_rec)
    xs = np.random.default_rng(1).poisson(0.3, (300, 5)).astype(np.float32)
    y1, z1 = Network(m).run(xs)
    y2, z2 = Network(m2).run(xs)
    assert z1.any()
    np.testing.assert_array_equal(z2, z1)
    np.testing.assert_allclose(y2, y1, rtol=1e-5, atol=1e-6)


def test_strict_threshold_is_one_float_below_and_inverts():
    m = _model(v_th=0.7)
    g = to_nir(m)
    thr = np.float32(g.nodes["lif"].v_threshold[0])
    assert thr < np.float32(0.7) and np.nextafter(thr, np.float32(np.inf)) == np.float32(0.7)
    v = np.float32(0.7)
    assert (v > thr) == (v >= np.float32(0.7))  # the spike rule agrees exactly at the threshold
    m2, _ = from_nir(g)
    assert m2.settings.v_th == np.float32(0.7)


def test_conventions_differ_and_each_inverts():
    alpha, dt = float(np.exp(-1e-3 / 20e-3)), 1e-3
    t_s, r_s = decay_to_tau_r(alpha, dt, "snntorch")
    t_r, r_r = decay_to_tau_r(alpha, dt, "rockpool")
    assert t_r == pytest.approx(20e-3) and t_s == pytest.approx(dt / (1 - alpha)) and t_s != pytest.approx(t_r)
    assert r_s == pytest.approx(t_s / dt) and r_r == pytest.approx(t_r * np.exp(-dt / t_r) / dt)
    for conv, (t, r) in (("snntorch", (t_s, r_s)), ("rockpool", (t_r, r_r))):
        a, g = tau_r_to_decay(np.array([t]), np.array([r]), dt, conv)
        assert a[0] == pytest.approx(alpha, rel=1e-12) and g[0] == pytest.approx(1.0, rel=1e-12)
    # reading a rockpool file as snntorch gives a different decay: the convention matters
    a_wrong, _ = tau_r_to_decay(np.array([t_r]), np.array([r_r]), dt, "snntorch")
    assert abs(a_wrong[0] - alpha) > 1e-3


def test_foreign_r_becomes_an_exact_input_gain():
    m = _model()
    g = to_nir(m, convention="snntorch")
    g.nodes["lif"].r = g.nodes["lif"].r * 2.0
    m2, notes = from_nir(g)
    assert any("input gain" in n for n in notes)
    np.testing.assert_allclose(m2.weights.w_in, 2.0 * m.weights.w_in, rtol=1e-6)


def test_graph_without_rtsnn_metadata_needs_convention_and_dt():
    g = to_nir(_model())
    g.metadata = {}
    with pytest.raises(ValueError, match="pass convention="):
        from_nir(g)
    with pytest.raises(ValueError, match="pass dt_s"):
        from_nir(g, convention="snntorch")
    m2, notes = from_nir(g, convention="snntorch", dt_s=1e-3)
    assert any("resets by subtraction" in n for n in notes)


def test_unsupported_models_and_graphs_are_refused_with_reasons(tmp_path):
    with pytest.raises(ValueError, match="adaptive-threshold"):
        to_nir(_model(model="alif", beta_adapt=0.1))
    with pytest.raises(ValueError, match="refractory_s"):
        to_nir(_model(refractory_s=2e-3))
    with pytest.raises(ValueError, match="convention must be one of snntorch, rockpool"):
        to_nir(_model(), convention="norse")
    g = to_nir(_model())
    g.nodes["lif"].v_leak = np.full(16, 0.1)
    with pytest.raises(ValueError, match="v_leak must be 0"):
        from_nir(g)
    g = to_nir(_model(), neuron="cubalif")
    g.nodes["lif"].tau_syn = np.full(16, 5e-3)
    with pytest.raises(ValueError, match="rtsnn has no synaptic state"):
        from_nir(g)
    g = to_nir(_model())
    g.nodes["w_in"] = nir.Affine(weight=g.nodes["w_in"].weight, bias=np.ones(16))
    with pytest.raises(ValueError, match="Affine bias into the hidden layer"):
        from_nir(g)
    g = to_nir(_model())
    g.nodes["lif"].v_threshold = np.linspace(0.5, 1.0, 16)
    with pytest.raises(ValueError, match="v_threshold must be the same for every neuron"):
        from_nir(g)
    with pytest.raises(ValueError, match="does not exist"):
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
