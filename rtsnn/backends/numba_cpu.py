"""The reference CPU backend: a model's network behind the Backend protocol.

Today's single recurrent layer (a :class:`rtsnn.snn.params.Model`, or a graph of that exact
shape) runs the fused :class:`rtsnn.snn.network.Network`; any other model graph
(:class:`rtsnn.snn.graph.GraphModel`) runs a :class:`rtsnn.snn.graph_network.GraphNetwork`
(:func:`rtsnn.snn.graph_network.build_network` chooses). Both have the same methods, so the
session and the learners see one interface.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtsnn.snn.graph import GraphModel, model_from_graph
from rtsnn.snn.graph_network import GraphNetwork, build_network
from rtsnn.snn.params import Model


class NumbaCpuBackend:
    """Implements :class:`rtsnn.protocols.Backend` with the numba kernels.

    ``model``: a :class:`Model` or a :class:`GraphModel`. ``propagation``:
    ``'dense' | 'event' | 'auto'``; ``auto_threshold``: activity fraction below which 'auto'
    propagates event-driven (the fused single layer; a graph chooses per source node).

    ``n_in`` / ``n_out``: the model's; ``n_rec``: the size of :meth:`features` (the readout
    trace the readout learners fit; for a single layer its neuron count). ``model`` is the
    Model the fused network runs (a single-layer graph is converted, arrays shared) or the
    GraphModel; ``graph_model`` the GraphModel or None; ``network`` the wrapped network.
    """

    def __init__(self, model: Model | GraphModel, propagation: str = "auto", auto_threshold: float = 0.2):
        if isinstance(model, GraphModel):
            single = model_from_graph(model)
            if single is not None:
                model = single  # the fused network, and e-prop's single-layer view of it
        elif not isinstance(model, Model):
            raise ValueError(f"backend numba_cpu: model must be a rtsnn Model or GraphModel, "
                             f"got {type(model).__name__}")
        self.network = build_network(model, propagation=propagation, auto_threshold=auto_threshold)
        self.model = model
        self.graph_model: GraphModel | None = model if isinstance(model, GraphModel) else None
        self.is_graph = isinstance(self.network, GraphNetwork)
        self.n_in, self.n_out = int(self.network.n_in), int(self.network.n_out)
        self.n_rec = int(self.network.features().shape[0])
        # Bind the per-tick calls straight to the network's methods: saves one Python call
        # layer (~0.1 us) per tick on the hot path.
        self.step = self.network.step  # type: ignore[method-assign]
        self.readout = self.network.readout  # type: ignore[method-assign]
        self.features = self.network.features  # type: ignore[method-assign]
        self.spikes = self.network.spikes  # type: ignore[method-assign]
        if self.is_graph:
            # a graph finds its feature and spike nodes by walking the graph on every call
            # (lists allocated per tick): their buffers are made once, so hand out the views
            feat, spk = self.network.features(), self.network.spikes()
            if feat is not self.network.last_input():  # the input's view follows the caller's buffer
                self.features = lambda: feat  # type: ignore[method-assign]
            self.spikes = lambda: spk  # type: ignore[method-assign]

    def warm_up(self) -> None:
        self.network.warm_up()

    def step(self, spikes_in: np.ndarray) -> None:  # replaced per instance in __init__
        self.network.step(spikes_in)

    def inputs(self) -> np.ndarray:
        """The input spikes of the last step (view of the buffer the caller passed; online
        learners read it for their input traces)."""
        return self.network.last_input()

    def state(self) -> Any:
        """The network state after the last step: for the fused single layer its
        :class:`~rtsnn.snn.params.NetworkState` (``v, a, z, refr, r, y`` views); for a graph a
        dict ``'<node>.<name>'`` -> view (:meth:`GraphNetwork.state_arrays`)."""
        if self.is_graph:
            return self.network.state_arrays()
        return self.network.state

    def readout(self) -> np.ndarray:  # replaced per instance in __init__
        return self.network.readout()

    def features(self) -> np.ndarray:  # replaced per instance in __init__
        return self.network.features()

    def spikes(self) -> np.ndarray:  # replaced per instance in __init__
        """Spikes of the last step (view, float32 0/1): the (last) recurrent layer's, what the
        dashboard's raster shows."""
        return self.network.spikes()

    def readout_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(w_out, b_out)`` as views; in-place updates take effect at the next step. A graph
        without an ``LI -> Affine -> Output`` readout raises ValueError."""
        return self.network.readout_weights()

    def set_readout(self, w_out: np.ndarray, b_out: np.ndarray) -> None:
        self.network.set_readout(w_out, b_out)

    def reset_state(self) -> None:
        self.network.reset_state()

    def stats(self) -> dict[str, Any]:
        """Counters: steps per propagation path, spikes in the last step."""
        return {"steps_dense": self.network.n_steps_dense, "steps_event": self.network.n_steps_event,
                "active_last_step": self.network.n_active}
