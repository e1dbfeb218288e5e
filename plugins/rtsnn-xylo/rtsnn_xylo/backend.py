"""``XyloBackend``: an rtsnn model mapped onto XyloAudio 2, stepped one tick at a time.

Registered as the ``xylo`` backend (``backend: {kind: xylo, options: {...}}``). On
construction the model is quantised -- a single-layer :class:`~rtsnn.snn.params.Model` by
:func:`rtsnn_xylo.quantize.map_model`, a :class:`~rtsnn.snn.graph.GraphModel` (what a session
loads from a v2 model file that is not the single-layer pattern) by
:func:`rtsnn_xylo.graph_map.map_graph`; every DRC violation reported at once -- and then
simulated bit-accurately by

* ``simulator: xylosim`` (default) -- SynSense's C++ ``xylosim.v2``; if it is not installed
  the backend refuses with the install command and points at the alternative;
* ``simulator: reference`` -- this plugin's numba integer kernels, bit-identical to xylosim
  (tested with hypothesis), and faster per tick.

Per tick: input counts are rounded and clipped to the chip's 0..15 events per channel and
chip step (repairs counted in ``stats()``), the chip steps once -- or ``steps_per_tick = K``
times, the tick's counts spread evenly over the steps (:mod:`rtsnn_xylo.ticks`; up to 15 K
events per channel and tick, and the hidden-to-output lag shrinks to ``dt_s / K``) -- and the
output vector ``y = readout_int / out_scale + b_out`` is written into a preallocated float32 buffer
(a graph whose readout is spiking neurons: ``y`` = their output spikes summed over the tick's steps).
``features()`` is the host-side trace of hidden spikes (decay of the chip's output
synapse) that the chip's readout integrates, so readout learners (``ridge_readout``) work
unchanged: ``set_readout`` requantises ``w_out`` into the chip's output weights. The old
output state (in the old scale) then decays away within ~tau_out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtsnn.snn.graph import GraphModel
from rtsnn.snn.params import Model
from rtsnn_xylo.graph_map import map_graph
from rtsnn_xylo.int_kernels import IntNetwork, effective_weights
from rtsnn_xylo.quantize import map_model, quantise_trace_readout
from rtsnn_xylo.sim import INSTALL_HINT, XyloSimNetwork, _synapse_lists, import_xylosim, xylosim_available
from rtsnn_xylo.spec import XYLO2

SIMULATORS = ("xylosim", "reference")


class XyloBackend:
    """Implements :class:`rtsnn.protocols.Backend` on a (simulated) XyloAudio 2.

    Options: ``simulator`` (``'xylosim' | 'reference'``), ``quantization``
    (``'global' | 'per_neuron'``), ``readout`` (``'isyn' | 'vmem'``), ``threshold_max``,
    ``tau_syn_s``, ``strict`` (False drops ALIF adaptation / refractoriness with a warning
    instead of refusing), ``steps_per_tick`` (chip steps per session tick, default 1). ``config`` is the mapped :class:`~rtsnn_xylo.spec.XyloConfig`,
    ``drc`` the design-rule report (warnings).
    """

    def __init__(self, model: Model | GraphModel, simulator: str = "xylosim", quantization: str = "global",
                 readout: str = "isyn", threshold_max: int = 4095, tau_syn_s: float | None = None,
                 strict: bool = True, steps_per_tick: int = 1):
        if simulator not in SIMULATORS:
            raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, got {simulator!r}")
        if simulator == "xylosim" and not xylosim_available():
            raise ValueError(INSTALL_HINT)
        self.model = model
        self.simulator = simulator
        self.quantization = quantization
        if isinstance(model, GraphModel):
            mapper = map_graph
        elif isinstance(model, Model):
            mapper = map_model
        else:
            raise ValueError(f"the xylo backend needs a rtsnn Model or GraphModel, got {type(model).__name__}")
        self.config, self.drc = mapper(model, quantization=quantization,  # type: ignore[operator]
                                       threshold_max=threshold_max, tau_syn_s=tau_syn_s, readout=readout,
                                       strict=strict, steps_per_tick=steps_per_tick)
        cfg = self.config
        # 'isyn' | 'vmem' (a trace of hidden spikes) or 'spikes' (a graph's readout neurons)
        self.readout_mode = readout = str(cfg.notes["readout"])
        self._spikes_out = readout == "spikes"
        self.steps_per_tick = k = cfg.steps_per_tick
        self._max_in = XYLO2.max_input_spikes * k
        self._xk = np.zeros((k, cfg.n_in), np.int32)  # the tick's counts spread over its steps
        self._base = np.zeros(cfg.n_in, np.int32)
        self._rem = np.zeros(cfg.n_in, np.int32)
        self.n_in, self.n_rec, self.n_out = cfg.n_in, cfg.n_hid, cfg.n_out
        self.sim: IntNetwork | XyloSimNetwork = (XyloSimNetwork(cfg) if simulator == "xylosim" else IntNetwork(cfg))
        self._x = np.zeros(cfg.n_in, np.int32)
        self._r = np.zeros(cfg.n_in, np.float32)
        self._flag = np.zeros(cfg.n_in, np.bool_)
        self._y = np.zeros(cfg.n_out, np.float32)
        self._feat = np.zeros(cfg.n_hid, np.float32)
        self._z_prev = np.zeros(cfg.n_hid, np.float32)
        # the chip decay the readout integrates with: output synapse ('isyn') or membrane ('vmem')
        dash = int(cfg.dash_mem_out[0] if readout == "vmem" else cfg.dash_syn_out[0])
        self._feat_decay = np.float32(1.0 - 2.0**-dash)
        self._inv_scale = (1.0 / cfg.out_scale).astype(np.float32)
        self._b_out = cfg.b_out.astype(np.float32)
        self.n_steps = 0
        self.n_clipped = 0  # input entries above 15 events (or negative) clipped
        self.n_rounded = 0  # non-integral input entries rounded
        self.n_nan = 0  # NaN input entries replaced by 0
        self.n_spikes_last = 0

    # -- Backend protocol -------------------------------------------------------------
    def warm_up(self) -> None:
        """Compile/exercise the path once, then restore the zero state."""
        self.step(np.zeros(self.n_in, np.float32))
        self.reset_state()
        self.n_steps = 0

    def step(self, spikes_in: np.ndarray) -> None:
        x = self._x
        if spikes_in.shape != (self.n_in,):
            raise ValueError(f"spikes_in must have shape ({self.n_in},), got {spikes_in.shape}")
        r, flag = self._r, self._flag
        np.rint(spikes_in, out=r)
        np.not_equal(r, spikes_in, out=flag)  # non-integral (NaN included: NaN != NaN)
        n_off = int(np.count_nonzero(flag)) if flag.any() else 0
        if n_off:
            np.isnan(r, out=flag)
            n_nan = int(np.count_nonzero(flag))
            if n_nan:  # NaN counts: repaired to 0 events and counted
                self.n_nan += n_nan
                r[flag] = 0.0
            self.n_rounded += n_off - n_nan
        if r.min() < 0 or r.max() > self._max_in:
            np.less(r, 0, out=flag)
            self.n_clipped += int(np.count_nonzero(flag))
            np.greater(r, self._max_in, out=flag)
            self.n_clipped += int(np.count_nonzero(flag))
            np.clip(r, 0, self._max_in, out=r)
        x[:] = r
        sim = self.sim
        k = self.steps_per_tick
        if self._spikes_out:
            self._y[:] = 0
        if k == 1:
            self._chip_step(x)
            self.n_spikes_last = int(self._z_prev.sum())
        else:
            xk, base, rem = self._xk, self._base, self._rem
            np.floor_divide(x, k, out=base)
            np.subtract(x, base * k, out=rem)
            spikes = 0
            for j in range(k):
                np.add(base, rem > j, out=xk[j])
                self._chip_step(xk[j])
                spikes += int(self._z_prev.sum())
            self.n_spikes_last = spikes
        if not self._spikes_out:
            raw = sim.i_syn_out if self.readout_mode == "isyn" else sim.v_mem_out
            np.multiply(raw, self._inv_scale, out=self._y)
            self._y += self._b_out
        self.n_steps += 1

    def _chip_step(self, x: np.ndarray) -> None:
        sim = self.sim
        sim.step(x)
        if self._spikes_out:  # readout neurons: the tick's output spikes, summed over its steps
            self._y += sim.z_out
        # host-side trace of the hidden spikes the output neurons just received (previous step)
        self._feat *= self._feat_decay
        self._feat += self._z_prev
        z = sim.z if isinstance(sim, IntNetwork) else np.asarray(sim.layer.rec_recurrent_spikes[0], np.float32)
        self._z_prev[:] = z

    def readout(self) -> np.ndarray:
        return self._y

    def reset_state(self) -> None:
        self.sim.reset_state()
        self._y[:] = 0
        self._feat[:] = 0
        self._z_prev[:] = 0

    def spikes(self) -> np.ndarray:
        """The hidden layer's spikes of the last step (float32 0/1, n_rec; updated in place,
        so a view bound once stays current: the session monitor's raster reads it)."""
        return self._z_prev

    # -- readout learners --------------------------------------------------------------
    def features(self) -> np.ndarray:
        """Trace of hidden spikes (n_rec,) such that ``readout() ~ w_out^T features() + b_out``."""
        return self._feat

    def set_readout(self, w_out: np.ndarray, b_out: np.ndarray) -> None:
        """Requantise a new readout onto the chip's output weights (same quantisation mode)."""
        w_out = np.asarray(w_out, np.float32)
        b_out = np.asarray(b_out, np.float32)
        if w_out.shape != (self.n_rec, self.n_out):
            raise ValueError(f"w_out must have shape ({self.n_rec}, {self.n_out}), got {w_out.shape}")
        if b_out.shape != (self.n_out,):
            raise ValueError(f"b_out must have shape ({self.n_out},), got {b_out.shape}")
        if not (np.all(np.isfinite(w_out)) and np.all(np.isfinite(b_out))):
            raise ValueError("w_out and b_out must be finite")
        if isinstance(self.model, GraphModel):
            self._set_graph_readout(w_out, b_out)
            return
        m = self.model.copy()
        m.weights.w_out[...] = w_out
        m.weights.b_out[...] = b_out
        cfg, _ = map_model(m, quantization=self.quantization, threshold_max=int(self.config.notes["threshold_max"]),
                           readout=self.readout_mode, strict=False, steps_per_tick=self.steps_per_tick)
        self._load_readout(cfg.w_out, cfg.out_scale, cfg.b_out)
        self.model.weights.w_out[...] = w_out
        self.model.weights.b_out[...] = b_out

    def _set_graph_readout(self, w_out: np.ndarray, b_out: np.ndarray) -> None:
        """A graph's ``hidden -> LI -> Affine -> Output`` readout, requantised; the Affine takes the new values."""
        cfg, gm = self.config, self.model
        if not cfg.notes.get("set_readout"):
            raise ValueError("set_readout needs the graph readout hidden -> LI (gain 1) -> Affine -> Output over "
                             f"one hidden population; this graph reads out through node {cfg.notes['readout_node']!r} "
                             f"({cfg.notes['readout']})")
        dash_out = cfg.dash_syn_out if self.readout_mode == "isyn" else cfg.dash_mem_out
        w_q, out_scale, _, _ = quantise_trace_readout(w_out, dash_out, self.readout_mode, self.quantization,
                                                      int(cfg.dash_mem_out[0]))
        self._load_readout(w_q, out_scale, b_out.astype(np.float64))
        aff = gm.graph.nodes[cfg.notes["readout_projection"]]  # type: ignore[union-attr]
        aff.weight[...] = w_out
        if aff.kind == "Affine":
            aff.bias[...] = b_out

    def _load_readout(self, w_out_q: np.ndarray, out_scale: np.ndarray, b_out: np.ndarray) -> None:
        """Put requantised output weights on the chip (both simulators) and the host constants in place."""
        self.config.w_out, self.config.out_scale, self.config.b_out = w_out_q, out_scale, b_out
        if isinstance(self.sim, IntNetwork):
            self.sim.w_out[...] = effective_weights(self.config)[2]
        else:
            lists = _synapse_lists(import_xylosim(), w_out_q)
            self.sim.layer.synapses_out = lists
            self.sim._syn_out = lists  # keep alive: xylosim stores raw pointers
        self._inv_scale[:] = 1.0 / out_scale
        self._b_out[:] = b_out

    def stats(self) -> dict[str, Any]:
        return {"simulator": self.simulator, "ticks": self.n_steps, "steps": self.n_steps * self.steps_per_tick,
                "steps_per_tick": self.steps_per_tick, "inputs_clipped": self.n_clipped,
                "inputs_rounded": self.n_rounded, "inputs_nan": self.n_nan, "hidden_spikes_last_step": self.n_spikes_last,
                "drc_warnings": list(self.drc.warnings)}
