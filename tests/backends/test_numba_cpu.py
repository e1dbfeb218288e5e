import numpy as np
import pytest

from rtsnn import plugins
from rtsnn.backends.numba_cpu import NumbaCpuBackend
from rtsnn.protocols import Backend
from rtsnn.snn import Model, Network, single_layer

F32 = np.float32


def _model():
    return Model.random(8, 30, 2, *single_layer("alif", 30, beta_adapt=0.1, refractory_s=2e-3), seed=1, input_gain=2.0, readout_scale=1.0)


def test_implements_backend_protocol_and_matches_network():
    m = _model()
    be = NumbaCpuBackend(m, propagation="event")
    assert isinstance(be, Backend)
    assert (be.n_in, be.n_rec, be.n_out) == (8, 30, 2)
    be.warm_up()
    xs = np.random.default_rng(0).poisson(0.3, (100, 8)).astype(F32)
    y_net, _ = Network(m, propagation="dense").run(xs)
    for t in range(len(xs)):
        be.step(xs[t])
        np.testing.assert_array_equal(be.readout(), y_net[t])
    assert be.readout() is be.network.readout() and be.features() is be.network.features()
    assert be.stats()["steps_event"] == 100 and be.stats()["steps_dense"] == 0


def test_set_readout_and_reset():
    m = _model()
    be = NumbaCpuBackend(m)
    x = np.ones(8, F32)
    for _ in range(20):
        be.step(x)
    w = np.full((30, 2), 0.1, F32)
    b = np.array([1.0, 2.0], F32)
    be.set_readout(w, b)
    np.testing.assert_allclose(be.readout(), be.features() @ w + b, rtol=1e-5)
    be.reset_state()
    assert not be.features().any()
    with pytest.raises(ValueError, match="w_out must have shape"):
        be.set_readout(np.zeros((2, 30), F32), b)


def test_registered_entry_point_builds_with_options():
    cls = plugins.load("rtsnn.backends", "numba_cpu")
    assert cls is NumbaCpuBackend
    be = plugins.build("rtsnn.backends", "numba_cpu", {"propagation": "dense", "auto_threshold": 0.3},
                       "backend", model=_model())
    assert be.network.propagation == "dense" and be.network.auto_threshold == 0.3
    with pytest.raises(ValueError, match="propagation must be one of"):
        plugins.build("rtsnn.backends", "numba_cpu", {"propagation": "fast"}, "backend", model=_model())
