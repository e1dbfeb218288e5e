"""NumbaCpuBackend on model graphs: a GraphModel runs a GraphNetwork (today's single-layer
graph the fused Network), with every method the session and the learners call."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from rtsnn.backends.numba_cpu import NumbaCpuBackend
from rtsnn.snn.graph import graph_from_model
from rtsnn.snn.graph_network import GraphNetwork
from rtsnn.snn.network import Network
from rtsnn.snn.params import Model, single_layer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learn" / "online"))
from graph_models import deep_graph  # noqa: E402


def _inputs(n_t: int, n_in: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(0.3, (n_t, n_in)).astype(np.float32)


def test_graph_backend_runs_the_graph_with_the_session_interface():
    gm = deep_graph(n_in=10, n0=14, n1=12, n_out=2, readout_scale=0.3, seed=1)
    be = NumbaCpuBackend(gm, propagation="event")
    assert isinstance(be.network, GraphNetwork) and be.is_graph and be.model is gm and be.graph_model is gm
    assert (be.n_in, be.n_rec, be.n_out) == (10, 12, 2)
    xs = _inputs(200, 10)
    ref_y, ref_z = GraphNetwork(deep_graph(n_in=10, n0=14, n1=12, readout_scale=0.3, seed=1)).run(xs)
    be.warm_up()
    assert not any(np.any(a) for a in be.state().values())  # warm-up leaves the state as it was
    x = np.zeros(10, np.float32)
    st = be.state()
    for t in range(200):
        x[:] = xs[t]
        be.step(x)
        np.testing.assert_array_equal(be.readout(), ref_y[t])
        np.testing.assert_array_equal(be.spikes(), ref_z[t])
        assert be.features() is st["trace.y"] and be.spikes() is st["l1.z"]  # views, not copies
        assert be.inputs() is x
    assert ref_z.any() and be.features().any()
    w, b = be.readout_weights()
    assert w is gm.graph.nodes["w_out"].weight and b is gm.graph.nodes["w_out"].bias
    w_new, b_new = np.full((12, 2), 0.1, np.float32), np.array([1.0, -1.0], np.float32)
    be.set_readout(w_new, b_new)  # takes effect at once: y = w^T r + b
    np.testing.assert_allclose(be.readout(), w_new.T @ be.features() + b_new, rtol=1e-6)
    with pytest.raises(ValueError, match="readout must be"):
        be.set_readout(np.zeros((3, 2)), b_new)
    stats = be.stats()
    assert set(stats) == {"steps_dense", "steps_event", "active_last_step"}
    assert stats["active_last_step"] == int(np.count_nonzero(be.spikes()))
    be.reset_state()
    assert not any(np.any(a) for a in be.state().values())


def test_graph_without_a_readout_trace_has_no_readout_weights():
    be = NumbaCpuBackend(deep_graph(n_in=10, n0=14, n1=12, trace=False))
    assert be.n_rec == 12  # the features are the last layer's spikes
    with pytest.raises(ValueError, match="not an LI -> Affine readout"):
        be.readout_weights()


def test_single_layer_graph_runs_the_fused_network_on_the_same_arrays():
    m = Model.random(8, 16, 2, *single_layer("alif", 16, beta_adapt=0.2), seed=3)
    be = NumbaCpuBackend(graph_from_model(m))
    assert isinstance(be.network, Network) and not be.is_graph and be.graph_model is None
    assert isinstance(be.model, Model) and be.model.weights.w_in is m.weights.w_in
    ref = NumbaCpuBackend(m)
    x = np.zeros(8, np.float32)
    for row in _inputs(100, 8, seed=4):
        x[:] = row
        be.step(x)
        ref.step(x)
        np.testing.assert_array_equal(be.readout(), ref.readout())
    assert be.state().v.shape == (16,)


def test_other_models_are_refused_with_one_line():
    with pytest.raises(ValueError, match="^backend numba_cpu: model must be a rtsnn Model or GraphModel, got dict$"):
        NumbaCpuBackend({"w_in": np.zeros((2, 2))})
