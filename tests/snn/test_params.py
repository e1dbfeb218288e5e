import math

import numpy as np
import pytest

from rtsnn.snn import Model, NetworkState, NeuronSettings, Weights

F32 = np.float32


def test_defaults_and_derived_values():
    s = NeuronSettings()
    assert (s.model, s.dt_s, s.tau_mem_s, s.v_th, s.refractory_s) == ("lif", 1e-3, 20e-3, 1.0, 0.0)
    assert s.alpha == pytest.approx(math.exp(-1 / 20))
    assert s.kappa == pytest.approx(math.exp(-1 / 20))
    assert s.rho == pytest.approx(math.exp(-1 / 200))
    assert s.n_ref == 0 and not s.adaptive
    s2 = NeuronSettings(model="alif", beta_adapt=0.1, refractory_s=2.4e-3)
    assert s2.n_ref == 2 and s2.adaptive
    assert NeuronSettings.from_dict(s2.to_dict()) == s2


@pytest.mark.parametrize("kwargs, fragment", [
    ({"model": "izhikevich"}, "model must be one of lif, alif"),
    ({"dt_s": 0.0}, "dt_s must be a finite number > 0"),
    ({"dt_s": float("nan")}, "dt_s"),
    ({"tau_mem_s": -1.0}, "tau_mem_s must be a finite number > 0"),
    ({"tau_mem_s": 20.0e-3, "dt_s": 0.05}, "tau_mem_s (0.02 s) must be larger than dt_s"),
    ({"tau_out_s": 1e-3}, "tau_out_s (0.001 s) must be larger than dt_s"),
    ({"tau_adapt_s": 0.0}, "tau_adapt_s"),
    ({"v_th": 0.0}, "v_th must be a finite number > 0"),
    ({"beta_adapt": -0.1}, "beta_adapt must be a finite number >= 0"),
    ({"refractory_s": -1e-3}, "refractory_s must be a finite number >= 0"),
    ({"refractory_s": float("inf")}, "refractory_s"),
])
def test_settings_validation_messages(kwargs, fragment):
    with pytest.raises(ValueError) as err:
        NeuronSettings(**kwargs)
    assert fragment in str(err.value)


def test_settings_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown neuron setting.*tau_syn_s"):
        NeuronSettings.from_dict({"model": "lif", "tau_syn_s": 5e-3})


def _w(n_in=3, n_rec=4, n_out=2):
    return dict(w_in=np.ones((n_in, n_rec)), w_rec=np.zeros((n_rec, n_rec)), w_out=np.zeros((n_rec, n_out)),
                b_out=np.zeros(n_out))


def test_weights_convert_to_float32_contiguous():
    w = Weights(**_w())
    for name in ("w_in", "w_rec", "w_out", "b_out"):
        arr = getattr(w, name)
        assert arr.dtype == F32 and arr.flags.c_contiguous
    assert (w.n_in, w.n_rec, w.n_out) == (3, 4, 2)


@pytest.mark.parametrize("change, fragment", [
    ({"w_rec": np.zeros((3, 3))}, "w_rec must be (n_rec, n_rec) = (4, 4)"),
    ({"w_out": np.zeros((5, 2))}, "w_out must be (n_rec=4, n_out>=1)"),
    ({"b_out": np.zeros(3)}, "b_out must be (n_out,) = (2,)"),
    ({"w_in": np.ones(4)}, "w_in must be 2-D"),
    ({"w_in": np.full((3, 4), np.nan)}, "w_in must be finite, got 12 NaN/inf"),
    ({"b_out": np.array([0.0, np.inf])}, "b_out must be finite"),
    ({"w_rec": np.eye(4)}, "zero diagonal"),
    ({"w_in": "abc"}, "w_in must be a numeric array"),
])
def test_weights_validation_messages(change, fragment):
    kw = _w()
    kw.update(change)
    with pytest.raises(ValueError) as err:
        Weights(**kw)
    assert fragment in str(err.value)


def test_model_labels_and_validation():
    m = Model(NeuronSettings(), Weights(**_w()))
    assert m.output_labels == ["y0", "y1"] and m.output_units == ["a.u.", "a.u."]
    assert (m.n_in, m.n_rec, m.n_out) == (3, 4, 2)
    with pytest.raises(ValueError, match="output_labels must have n_out = 2 entries, got 1"):
        Model(NeuronSettings(), Weights(**_w()), output_labels=["vx"])
    m.output_units = ["m/s"]
    with pytest.raises(ValueError, match="output_units must have n_out = 2"):
        m.validate()
    with pytest.raises(ValueError, match="JSON-serialisable"):
        Model(NeuronSettings(), Weights(**_w()), provenance={"x": object()})


def test_model_random_scaling_and_determinism():
    s = NeuronSettings(model="lif")
    m = Model.random(30, 80, 3, s, seed=7, spectral_radius=0.8)
    m2 = Model.random(30, 80, 3, s, seed=7, spectral_radius=0.8)
    np.testing.assert_array_equal(m.weights.w_rec, m2.weights.w_rec)
    w = m.weights
    assert not np.diagonal(w.w_rec).any()
    gain = w.w_rec.astype(np.float64) / ((1 - s.alpha) * s.v_th)
    assert np.max(np.abs(np.linalg.eigvals(gain))) == pytest.approx(0.8, rel=1e-4)
    assert not w.w_out.any() and not w.b_out.any()
    p = 20.0 * s.dt_s
    expected_sigma = s.v_th * math.sqrt((1 - s.alpha**2) / (30 * p))
    assert np.std(w.w_in) == pytest.approx(expected_sigma, rel=0.1)
    assert m.provenance["method"] == "random_reservoir" and m.provenance["seed"] == 7
    m3 = Model.random(30, 80, 3, s, seed=7, readout_scale=1.0, rec_density=0.2, spectral_radius=0.0)
    assert m3.weights.w_out.any() and not m3.weights.w_rec.any()


@pytest.mark.parametrize("kwargs, fragment", [
    ({"n_rec": 0}, "n_rec must be an int >= 1"),
    ({"input_gain": 0.0}, "input_gain"),
    ({"spectral_radius": -1.0}, "spectral_radius must be >= 0"),
    ({"rec_density": 0.0}, "rec_density must be in (0, 1]"),
])
def test_model_random_rejects_bad_arguments(kwargs, fragment):
    args = {"n_in": 2, "n_rec": 3, "n_out": 1, **kwargs}
    with pytest.raises(ValueError) as err:
        Model.random(args.pop("n_in"), args.pop("n_rec"), args.pop("n_out"), **args)
    assert fragment in str(err.value)


def test_network_state_helpers():
    st = NetworkState.zeros(4, 2)
    assert st.refr.dtype == np.int32 and st.v.dtype == F32 and st.y.shape == (2,)
    st.v[:] = 1.0
    c = st.copy()
    st.fill_zero()
    assert not st.v.any() and c.v.all()
    v_view = st.v
    st.assign(c)
    assert v_view.all()  # assigned in place
    with pytest.raises(ValueError, match=r"state.v must have shape \(4,\), got \(3,\)"):
        st.assign(NetworkState.zeros(3, 2))


def test_large_reservoirs_use_the_circular_law_radius_and_land_near_the_target():
    """Above EXACT_RADIUS_MAX_N no eigenvalue solve (tens of seconds at 4096 neurons); the
    circular-law scaling still lands the spike-to-spike gain's radius near the request."""
    from rtsnn.snn.params import EXACT_RADIUS_MAX_N

    n = EXACT_RADIUS_MAX_N + 76
    s = NeuronSettings()
    m = Model.random(8, n, 2, s, seed=3, spectral_radius=0.5)
    gain = m.weights.w_rec / ((1.0 - s.alpha) * s.v_th)
    radius = float(np.max(np.abs(np.linalg.eigvals(gain.astype(np.float64)))))
    assert 0.45 < radius < 0.55
