import math

import numpy as np
import pytest

from rtsnn.snn import (ALIF, IF, LI, LIF, CubaLIF, Model, NetworkState, Weights, layer_constants,
                       layer_from_config, single_layer)

F32 = np.float32


def test_defaults_and_derived_values():
    hidden, trace = single_layer("lif", 4)
    assert isinstance(hidden, LIF) and type(hidden) is LIF and isinstance(trace, LI)
    assert (hidden.name, trace.name, hidden.n, trace.n) == ("hidden", "trace", 4, 4)
    s = layer_constants(hidden, trace, 1e-3)
    assert (s.model, s.dt_s, s.tau_mem_s, s.v_th, s.refractory_s) == ("lif", 1e-3, 20e-3, 1.0, 0.0)
    assert s.alpha == pytest.approx(math.exp(-1 / 20))
    assert s.kappa == pytest.approx(math.exp(-1 / 20))
    assert (s.rho, s.beta_adapt, s.tau_adapt_s) == (0.0, 0.0, 0.0)  # LIF: no adaptation state
    assert s.n_ref == 0 and not s.adaptive
    s2 = layer_constants(*single_layer("alif", 4, beta_adapt=0.1, refractory_s=2.4e-3), 1e-3)
    assert s2.n_ref == 2 and s2.adaptive and s2.beta_adapt == 0.1
    assert s2.rho == pytest.approx(math.exp(-1 / 200))
    # the exact floats of the old scalar settings: exp(-dt/tau) of the Python floats
    assert s2.alpha == math.exp(-1e-3 / 20e-3) and s2.rho == math.exp(-1e-3 / 200e-3)


def test_layer_from_config_takes_the_pydantic_neuron_schema():
    from rtsnn.config import NeuronConfig

    cfg = NeuronConfig(model="alif", tau_mem_s=0.03, tau_adapt_s=0.5, beta_adapt=0.2, v_th=0.8, refractory_s=3e-3,
                       tau_out_s=0.04)
    hidden, trace = layer_from_config(cfg, 6)
    c = layer_constants(hidden, trace, 1e-3)
    assert isinstance(hidden, ALIF) and hidden.n == trace.n == 6
    assert (c.tau_mem_s, c.tau_adapt_s, c.beta_adapt, c.v_th, c.n_ref, c.tau_out_s) == (0.03, 0.5, 0.2, 0.8, 3, 0.04)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"model": "izhikevich"}, "model must be one of lif, alif"),
    ({"dt_s": 0.0}, "dt_s must be a finite number > 0"),
    ({"dt_s": float("nan")}, "dt_s"),
    ({"tau_mem_s": -1.0}, "node 'hidden': tau_mem_s: must be > 0"),
    ({"tau_mem_s": 20.0e-3, "dt_s": 0.05}, "node 'hidden': tau_mem_s: 0.02 s must be larger than dt_s"),
    ({"tau_out_s": 1e-3}, "node 'trace': tau_s: 0.001 s must be larger than dt_s"),
    ({"model": "alif", "tau_adapt_s": 1e-3}, "node 'hidden': tau_adapt_s: 0.001 s must be larger than dt_s"),
    ({"tau_adapt_s": 0.0, "model": "alif"}, "tau_adapt_s"),
    ({"v_th": 0.0}, "node 'hidden': v_th: must be > 0"),
    ({"beta_adapt": -0.1, "model": "alif"}, "node 'hidden': beta_adapt: must be >= 0"),
    ({"refractory_s": -1e-3}, "node 'hidden': refractory_s: must be >= 0"),
    ({"refractory_s": float("inf")}, "refractory_s"),
])
def test_neuron_validation_messages(kwargs, fragment):
    kw = dict(kwargs)
    model, dt_s = kw.pop("model", "lif"), kw.pop("dt_s", 1e-3)
    with pytest.raises(ValueError) as err:
        layer_constants(*single_layer(model, 4, **kw), dt_s)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def _bad_nodes():
    h, t = single_layer("alif", 4, beta_adapt=0.1)
    yield lambda: (ALIF(n=4, v_th=[1.0, 1.0, 0.9, 1.0]), t), "node 'hidden': v_th: the fused single-layer model " \
        "needs one value for every neuron, got 2 different values"
    yield lambda: (ALIF(n=4, beta_adapt=[0.0, 0.1, 0.1, 0.1]), t), "node 'hidden': beta_adapt: "
    yield lambda: (LIF(n=4, reset="zero"), t), "node 'hidden': reset: the fused single-layer model resets by " \
        "'subtract', got 'zero' for 4 neuron(s)"
    yield lambda: (LIF(n=4, reset_at="now"), t), "node 'hidden': reset_at:"
    yield lambda: (LIF(n=4, spike_if=">"), t), "node 'hidden': spike_if:"
    yield lambda: (LIF(n=4, gain=2.0), t), "node 'hidden': gain: the fused single-layer model has gain 1, got 2.0"
    yield lambda: (LIF(n=4, v_leak=0.1), t), "node 'hidden': v_leak:"
    yield lambda: (h, LI(n=4, gain=0.5)), "node 'trace': gain:"
    yield lambda: (h, LI(n=4, tau_s=[0.02, 0.02, 0.03, 0.02])), "node 'trace': tau_s: the fused single-layer"
    yield lambda: (h, LI(n=5)), "node 'trace': n: must equal the hidden layer's n (4), got 5"
    yield lambda: (IF(n=4), t), "node 'hidden': kind: the fused single-layer model needs a LIF or ALIF node, got IF"
    yield lambda: (CubaLIF(n=4), t), "got CubaLIF"
    yield lambda: (h, LIF(n=4)), "node 'trace': kind: the fused single-layer model needs an LI node, got LIF"
    yield lambda: (ALIF(n=4, tau_adapt_s=1e-3), t), "node 'hidden': tau_adapt_s: 0.001 s must be larger than dt_s"


@pytest.mark.parametrize("make, fragment", list(_bad_nodes()))
def test_a_model_the_fused_kernel_cannot_run_is_refused_naming_node_and_field(make, fragment):
    hidden, trace = make()
    with pytest.raises(ValueError) as err:
        Model(hidden, trace, Weights(**_w()), 1e-3)
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg
    if "must equal" not in msg and "larger than dt_s" not in msg:
        assert "runs as a graph (rtsnn.snn.graph.GraphModel)" in msg


def test_model_nodes_must_match_the_weights():
    with pytest.raises(ValueError, match=r"node 'hidden': n: must equal the weights' n_rec \(4\), got 5"):
        Model(*single_layer("lif", 5), Weights(**_w()), 1e-3)


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
    m = Model(*single_layer("lif", 4), Weights(**_w()), 1e-3)
    assert m.output_labels == ["y0", "y1"] and m.output_units == ["a.u.", "a.u."]
    assert (m.n_in, m.n_rec, m.n_out) == (3, 4, 2)
    with pytest.raises(ValueError, match="output_labels must have n_out = 2 entries, got 1"):
        Model(*single_layer("lif", 4), Weights(**_w()), 1e-3, output_labels=["vx"])
    m.output_units = ["m/s"]
    with pytest.raises(ValueError, match="output_units must have n_out = 2"):
        m.validate()
    with pytest.raises(ValueError, match="JSON-serialisable"):
        Model(*single_layer("lif", 4), Weights(**_w()), 1e-3, provenance={"x": object()})


def test_model_random_scaling_and_determinism():
    m = Model.random(30, 80, 3, *single_layer("lif", 80), seed=7, spectral_radius=0.8)
    m2 = Model.random(30, 80, 3, seed=7, spectral_radius=0.8)  # the default layer is the same
    s = m.constants
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
    m3 = Model.random(30, 80, 3, seed=7, readout_scale=1.0, rec_density=0.2, spectral_radius=0.0)
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
    m = Model.random(8, n, 2, seed=3, spectral_radius=0.5)
    s = m.constants
    gain = m.weights.w_rec / ((1.0 - s.alpha) * s.v_th)
    radius = float(np.max(np.abs(np.linalg.eigvals(gain.astype(np.float64)))))
    assert 0.45 < radius < 0.55


def test_model_copy_owns_its_nodes_and_weights():
    m = Model.random(3, 4, 2, *single_layer("alif", 4, beta_adapt=0.1), seed=0)
    c = m.copy()
    assert c.hidden is not m.hidden and c.trace is not m.trace and c.constants == m.constants
    c.hidden.v_th[...] = 2.0
    c.weights.w_in[...] = 0.0
    assert m.constants.v_th == 1.0 and m.weights.w_in.any()
    m.hidden.reset_at = "now"  # a node changed after construction: validate() re-checks it
    with pytest.raises(ValueError, match="node 'hidden': reset_at:"):
        m.validate()


def test_model_and_graph_model_refuse_the_same_metadata():
    """Model and GraphModel share one metadata check: provenance strict JSON (no NaN), input
    contract at the model's tick; both raise a GraphError starting 'model:'."""
    from rtsnn.snn.graph import graph_from_model
    from rtsnn.snn.nodes import GraphError

    m = Model(*single_layer("lif", 4), Weights(**_w()), 1e-3)
    gm = graph_from_model(m)
    for obj in (m, gm):
        obj.provenance = {"loss": float("nan")}
        with pytest.raises(GraphError, match="model: provenance must be JSON-serialisable"):
            obj.validate()
        obj.provenance = ["not", "a", "dict"]
        with pytest.raises(GraphError, match="model: provenance must be a dict, got list"):
            obj.validate()
        obj.provenance = {}
        obj.input_contract = "contract"
        with pytest.raises(GraphError, match="model: input_contract must be an InputContract or None, got str"):
            obj.validate()
        obj.input_contract = None
        obj.validate()
