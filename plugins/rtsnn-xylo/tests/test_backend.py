"""XyloBackend: mapping, DRC, bad input, both simulators, tick-by-tick decoding."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from xylo_helpers import readout_rel_error, run_backend

from rtsnn import plugins
from rtsnn.protocols import Backend
from rtsnn.snn import Model, Network, single_layer
from rtsnn.snn.params import Weights
from rtsnn_xylo.backend import XyloBackend
from rtsnn_xylo.drc import DrcError, check, require_fit
from rtsnn_xylo.quantize import map_model, tau_to_dash
from rtsnn_xylo.sim import xylosim_available
from rtsnn_xylo.spec import XyloConfig

# CI installs xylosim (dev extra): there a missing one fails the tests instead of skipping them
needs_xylosim = pytest.mark.skipif(not xylosim_available() and not os.environ.get("CI"),
                                   reason="xylosim not installed (pip install xylosim)")


def _model(n_in=16, n_rec=60, n_out=2, seed=1, **kw):
    layer = single_layer(kw.pop("model", "lif"), n_rec, tau_out_s=0.02, **kw)
    return Model.random(n_in, n_rec, n_out, *layer, seed=seed, input_gain=2.0, readout_scale=1.0, rec_density=0.3)


def _inputs(n_in=16, T=1500, seed=0):
    return np.random.default_rng(seed).poisson(0.05, (T, n_in)).astype(np.float32)


def test_entry_point_and_protocol():
    assert plugins.load("rtsnn.backends", "xylo") is XyloBackend
    be = XyloBackend(_model(), simulator="reference")
    assert isinstance(be, Backend)
    assert (be.n_in, be.n_rec, be.n_out) == (16, 60, 2)
    be.warm_up()
    assert be.readout().dtype == np.float32 and not be.readout().any()


@pytest.mark.parametrize("quantization", ["global", "per_neuron"])
def test_chip_decodes_like_the_float_model(quantization):
    """Stepped tick by tick, the quantised chip's readout follows the float network's
    (one step later: hidden -> output spikes arrive the next step on Xylo)."""
    m = _model()
    xs = _inputs()
    y_float, z_float = Network(m).run(xs)
    be = XyloBackend(m, simulator="reference", quantization=quantization)
    be.warm_up()
    y_chip = run_backend(be, xs)
    for k in range(m.n_out):
        r = np.corrcoef(y_chip[1:, k], y_float[:-1, k])[0, 1]
        assert r > 0.9, f"output {k}: correlation {r:.3f} with the float model"
    assert be.stats()["steps"] == len(xs)


@needs_xylosim
@pytest.mark.parametrize("readout", ["isyn", "vmem"])
def test_xylosim_and_reference_backends_agree_bit_for_bit(readout):
    m = _model(seed=4)
    xs = _inputs(T=400, seed=2)
    xs[5, 3] = 30.0  # over the 15-event cap: clipped identically
    a = run_backend(XyloBackend(m, simulator="xylosim", readout=readout), xs)
    b = run_backend(XyloBackend(m, simulator="reference", readout=readout), xs)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() > 0


def test_vmem_readout_also_tracks_float_model():
    m = _model(seed=2)
    xs = _inputs(seed=5)
    y_float, _ = Network(m).run(xs)
    y_chip = run_backend(XyloBackend(m, simulator="reference", readout="vmem"), xs)
    assert np.corrcoef(y_chip[2:, 0], y_float[:-2, 0])[0, 1] > 0.8


def test_features_and_set_readout_requantise_the_chip_readout():
    m = _model(seed=3)
    be = XyloBackend(m, simulator="reference")
    xs = _inputs(T=600, seed=1)
    rng = np.random.default_rng(0)
    w_new = rng.standard_normal((60, 2)).astype(np.float32) * 0.3
    b_new = np.array([0.5, -1.0], np.float32)
    be.set_readout(w_new, b_new)
    # readout = quantised w_out^T (chip trace) + b_out: close to the float prediction
    err = readout_rel_error(be, xs, w_new, b_new)
    assert err < 0.05, f"relative readout error {err:.3f}"
    np.testing.assert_array_equal(m.weights.w_out, w_new)
    with pytest.raises(ValueError, match="w_out must have shape"):
        be.set_readout(np.zeros((2, 60), np.float32), b_new)


@needs_xylosim
def test_set_readout_on_xylosim_matches_reference():
    m = _model(seed=3)
    xs = _inputs(T=300, seed=1)
    w_new = np.random.default_rng(1).standard_normal((60, 2)).astype(np.float32)
    outs = []
    for sim in ("xylosim", "reference"):
        be = XyloBackend(m.copy(), simulator=sim)
        run_backend(be, xs[:100])
        be.set_readout(w_new, np.zeros(2, np.float32))
        import gc
        gc.collect()  # the replaced synapse lists must stay alive
        outs.append(run_backend(be, xs[100:]))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_bad_input_counts_are_repaired_and_counted():
    be = XyloBackend(_model(), simulator="reference")
    x = np.zeros(16, np.float32)
    x[0], x[1], x[2], x[3] = 20.0, -2.0, 1.4, np.nan
    be.step(x)
    st = be.stats()
    assert st["inputs_clipped"] == 2 and st["inputs_rounded"] == 1 and st["inputs_nan"] == 1
    assert x[0] == 20.0  # the caller's buffer is untouched
    with pytest.raises(ValueError, match=r"spikes_in must have shape \(16,\)"):
        be.step(np.zeros(15, np.float32))


def test_model_that_does_not_fit_lists_every_violation():
    n_in, n_rec, n_out = 20, 1001, 9
    layer = single_layer("alif", n_rec, beta_adapt=0.2, refractory_s=2e-3, tau_mem_s=100.0)
    w = Weights(np.full((n_in, n_rec), 0.1), np.full((n_rec, n_rec), 0.01) - np.eye(n_rec) * 0.01,
                np.full((n_rec, n_out), 0.1), np.zeros(n_out))
    with pytest.raises(DrcError) as info:
        XyloBackend(Model(*layer, w, 1e-3), simulator="reference")
    msg = str(info.value)
    params = {v.parameter for v in info.value.report.violations}
    for p in ("n_in (input channels)", "n_hid (hidden neurons)", "n_out (output neurons)", "neuron model",
              "refractory_s", "tau_mem_s", "w_rec fan-out (recurrent synapses per hidden neuron)"):
        assert p in params, f"{p} missing from {msg}"
    assert "1..16" in msg and "1..1000" in msg and "1..8" in msg and "0..64" in msg
    assert "7 design-rule violation(s)" in msg


def test_strict_false_drops_unsupported_features_with_warning():
    m = _model(model="alif", beta_adapt=0.1, refractory_s=2e-3)
    with pytest.raises(DrcError, match="refractory_s"):
        XyloBackend(m, simulator="reference")
    be = XyloBackend(m, simulator="reference", strict=False)
    assert any("beta_adapt" in w for w in be.stats()["drc_warnings"])


def _cfg(**over):
    n_in, n_hid, n_out = 2, 3, 1
    base = dict(w_in=np.zeros((n_in, n_hid, 2)), w_rec=np.zeros((n_hid, n_hid, 2)), w_out=np.zeros((n_hid, n_out)),
                threshold=np.full(n_hid, 100), threshold_out=np.full(n_out, 100), dash_mem=np.full(n_hid, 4),
                dash_syn=np.full((n_hid, 2), 2), dash_mem_out=np.full(n_out, 4), dash_syn_out=np.full(n_out, 4))
    base.update(over)
    return XyloConfig(**base)


@pytest.mark.parametrize("over, param, allowed", [
    (dict(threshold=np.array([100, -5, 100])), "threshold", "1..32767"),
    (dict(threshold_out=np.array([40000])), "threshold_out", "1..32767"),
    (dict(weight_shift_rec=9), "weight_shift_rec", "0..7"),
    (dict(dash_mem=np.array([4, 16, 4])), "dash_mem", "0..15"),
    (dict(dash_syn_out=np.array([-1])), "dash_syn_out", "0..15"),
    (dict(w_in=np.full((2, 3, 2), 200)), "w_in", "-128..127"),
    (dict(bias=np.array([0, 0, 70000])), "bias", "-32768..32767"),
])
def test_parameter_out_of_range_names_it_and_its_range(over, param, allowed):
    cfg = _cfg(**over)
    with pytest.raises(DrcError) as info:
        require_fit(cfg)
    v = [v for v in info.value.report.violations if v.parameter == param]
    assert v and v[0].allowed == allowed, str(info.value)
    assert f"{param}: " in str(info.value) and f"(allowed: {allowed})" in str(info.value)


def test_config_refuses_non_integers_and_bad_shapes():
    with pytest.raises(ValueError, match="threshold must hold integers"):
        _cfg(threshold=np.array([1.5, 2, 3]))
    with pytest.raises(ValueError, match=r"w_in must be \(n_in, n_hid, 2\)"):
        _cfg(w_in=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="dash_syn must have shape"):
        _cfg(dash_syn=np.zeros((3,)))
    r = check(_cfg(dash_mem=np.array([0, 4, 4])))
    assert r.ok and any("zeroes that state" in w for w in r.warnings)


def test_quantisation_bounds_and_options():
    m = _model()
    cfg, rep = map_model(m)
    assert rep.ok and cfg.threshold.max() <= 4095 and np.abs(cfg.w_in).max() <= 127
    assert cfg.dash_mem[0] == tau_to_dash(m.constants.tau_mem_s, m.dt_s) == 4
    assert cfg.notes["weight_rel_error"] < 0.05
    with pytest.raises(ValueError, match="quantization must be one of global, per_neuron"):
        map_model(m, quantization="per_layer")
    with pytest.raises(ValueError, match=r"threshold_max must be an int in 1..32767"):
        map_model(m, threshold_max=40000)
    with pytest.raises(ValueError, match="simulator must be one of xylosim, reference"):
        XyloBackend(m, simulator="loihi")
    # per-neuron quantisation: a neuron with huge weights does not coarsen the others
    big = m.copy()
    big.weights.w_in[:, 0] *= 1000.0
    g, _ = map_model(big, quantization="global")
    p, _ = map_model(big, quantization="per_neuron")
    assert p.threshold[1:].min() > 10 * g.threshold[1:].max()
    assert np.count_nonzero(p.w_in[:, 1:]) > np.count_nonzero(g.w_in[:, 1:])


def test_xylosim_missing_says_how_to_install_and_reference_still_works(monkeypatch):
    monkeypatch.setitem(sys.modules, "xylosim", None)
    monkeypatch.setitem(sys.modules, "xylosim.v2", None)
    with pytest.raises(ValueError, match=r"pip install xylosim.*simulator: reference"):
        XyloBackend(_model(), simulator="xylosim")
    be = XyloBackend(_model(), simulator="reference")
    be.step(np.ones(16, np.float32))
    assert be.stats()["steps"] == 1


@pytest.mark.parametrize("simulator", ["reference", pytest.param("xylosim", marks=needs_xylosim)])
def test_session_with_the_xylo_backend_decodes_like_the_backend_stepped_by_hand(tmp_path, simulator):
    """``rtsnn run`` with ``backend: xylo``: a recording (XDF) through the session loop gives,
    tick for tick, the outputs of the backend stepped by hand; the monitor raster sees the
    chip's hidden spikes."""
    from rtsnn.config import parse_config
    from rtsnn.runtime.session import Session
    from rtsnn.snn import save_model
    from rtsnn.recording.xdf_writer import write_xdf_stream

    m = _model()
    xs = _inputs(T=600)
    save_model(tmp_path / "m.npz", m)
    write_xdf_stream(tmp_path / "in.xdf", xs, 1000.0, name="counts", type="Spikes", source_id="test-counts",
                     t0_s=10.0)
    cfg = parse_config({
        "session": {"name": "xylo", "pace": "max", "out_dir": str(tmp_path / "s")},
        "source": {"kind": "xdf_file", "options": {"path": str(tmp_path / "in.xdf"), "n_channels": 16}},
        "encoder": {"kind": "passthrough", "options": {"n_channels": 16}},
        "model": {"path": str(tmp_path / "m.npz")},
        "backend": {"kind": "xylo", "options": {"simulator": simulator}},
    })
    session = Session(cfg)
    summary = session.run()
    assert summary["ticks"] == len(xs)
    cols = 3 + 2 * m.n_out
    rows = np.fromfile(f"{summary['folder']}/outputs.f64", "<f8").reshape(-1, cols)
    be = XyloBackend(m, simulator=simulator)
    be.warm_up()
    np.testing.assert_array_equal(rows[:, 3:3 + m.n_out], run_backend(be, xs).astype(np.float64))
    assert np.abs(rows[:, 3:3 + m.n_out]).max() > 0
    assert session.backend.spikes() is session.backend.spikes()  # one view, updated in place
    assert session.monitor.tap._spikes is not None
