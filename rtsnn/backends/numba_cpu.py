"""The reference CPU backend: a :class:`rtsnn.snn.Network` behind the Backend protocol."""

from __future__ import annotations

from typing import Any

import numpy as np

from rtsnn.snn.network import Network
from rtsnn.snn.params import Model


class NumbaCpuBackend:
    """Implements :class:`rtsnn.protocols.Backend` with the numba kernels.

    ``propagation``: ``'dense' | 'event' | 'auto'``; ``auto_threshold``: activity fraction
    below which 'auto' propagates event-driven. Adds ``features()`` (readout trace ``r``) and
    ``set_readout(w_out, b_out)`` for readout learners; ``network`` is the wrapped Network.
    """

    def __init__(self, model: Model, propagation: str = "auto", auto_threshold: float = 0.2):
        self.network = Network(model, propagation=propagation, auto_threshold=auto_threshold)
        self.model = model
        self.n_in, self.n_rec, self.n_out = model.n_in, model.n_rec, model.n_out
        # Bind the per-tick calls straight to the network's methods: saves one Python call
        # layer (~0.1 us) per tick on the hot path.
        self.step = self.network.step  # type: ignore[method-assign]
        self.readout = self.network.readout  # type: ignore[method-assign]
        self.features = self.network.features  # type: ignore[method-assign]
        self.spikes = self.network.spikes  # type: ignore[method-assign]

    def warm_up(self) -> None:
        self.network.warm_up()

    def step(self, spikes_in: np.ndarray) -> None:  # replaced per instance in __init__
        self.network.step(spikes_in)

    def inputs(self) -> np.ndarray:
        """The input spikes of the last step (view of the buffer the caller passed; online
        learners read it for their input traces)."""
        return self.network.last_input()

    def state(self):
        """The network state (v, a, z, refr, r, y views) after the last step."""
        return self.network.state

    def readout(self) -> np.ndarray:  # replaced per instance in __init__
        return self.network.readout()

    def features(self) -> np.ndarray:  # replaced per instance in __init__
        return self.network.features()

    def spikes(self) -> np.ndarray:  # replaced per instance in __init__
        """Spikes of the last step (view, float32 0/1, n_rec): what the dashboard's raster shows."""
        return self.network.spikes()

    def readout_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(w_out, b_out)`` as views; in-place updates take effect at the next step."""
        return self.network.readout_weights()

    def set_readout(self, w_out: np.ndarray, b_out: np.ndarray) -> None:
        self.network.set_readout(w_out, b_out)

    def reset_state(self) -> None:
        self.network.reset_state()

    def stats(self) -> dict[str, Any]:
        """Counters: steps per propagation path, spikes in the last step."""
        return {"steps_dense": self.network.n_steps_dense, "steps_event": self.network.n_steps_event,
                "active_last_step": self.network.n_active}
