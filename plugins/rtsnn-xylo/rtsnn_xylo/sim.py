"""Building and stepping SynSense's bit-accurate ``xylosim.v2`` simulator.

Two traps of xylosim handled here (REFERENCES section 10):

* its ``XyloLayer`` stores raw pointers to the ``XyloSynapse`` objects; if Python frees
  the synapse lists, ``evolve`` reads freed memory (segfault). :class:`XyloSimNetwork`
  keeps every synapse list alive for the layer's lifetime.
* it checks few parameter ranges, so :func:`rtsnn_xylo.drc.require_fit` runs first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtsnn_xylo.drc import require_fit
from rtsnn_xylo.spec import XyloConfig

INSTALL_HINT = ("xylosim (SynSense's bit-accurate Xylo simulator) is not installed: "
                "`pip install xylosim` (builds a C++ extension; needs a compiler and pybind11), "
                "or use the integer reference with backend option simulator: reference")


def import_xylosim() -> Any:
    """``xylosim.v2``, or ImportError with the install hint."""
    try:
        import xylosim.v2 as v2  # type: ignore[import-not-found]
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return v2


def xylosim_available() -> bool:
    try:
        import_xylosim()
    except ImportError:
        return False
    return True


def _synapse_lists(v2: Any, w: np.ndarray) -> list[list[Any]]:
    """One list per presynaptic source of ``XyloSynapse(target, syn_id, weight)`` for each
    non-zero weight, targets (then synapse ids) in increasing order."""
    out = []
    if w.ndim == 2:
        w = w[:, :, None]
    for pre in range(w.shape[0]):
        post, syn = np.nonzero(w[pre])
        out.append([v2.XyloSynapse(int(p), int(s), int(w[pre, p, s])) for p, s in zip(post, syn)])
    return out


class XyloSimNetwork:
    """A ``xylosim.v2.XyloLayer`` built from a checked config, stepped one tick at a time.

    ``step(x)`` evolves one step and refreshes the host copies ``z_out`` (output spikes),
    ``v_mem_out`` and ``i_syn_out`` (output neuron states, as the chip's read-out registers
    would give them); ``record(xs)`` runs many steps and returns every recording.
    """

    def __init__(self, cfg: XyloConfig):
        require_fit(cfg)
        v2 = import_xylosim()
        self.cfg = cfg
        # kept as attributes for the layer's lifetime: xylosim holds raw pointers into them
        self._syn_in = _synapse_lists(v2, cfg.w_in)
        self._syn_rec = _synapse_lists(v2, cfg.w_rec)
        self._syn_out = _synapse_lists(v2, cfg.w_out)
        il = lambda a: [int(v) for v in a]  # noqa: E731
        self.layer = v2.XyloLayer(
            self._syn_in, self._syn_rec, self._syn_out, [[] for _ in range(cfg.n_hid)],
            il(cfg.threshold), il(cfg.threshold_out), bool(cfg.has_bias), il(cfg.bias), il(cfg.bias_out),
            cfg.weight_shift_in, cfg.weight_shift_rec, cfg.weight_shift_out,
            il(cfg.dash_mem), il(cfg.dash_mem_out), [il(d) for d in cfg.dash_syn],
            [[int(d)] for d in cfg.dash_syn_out], "rtsnn")
        n_out = cfg.n_out
        self.z_out = np.zeros(n_out, np.int32)
        self.v_mem_out = np.zeros(n_out, np.int32)
        self.i_syn_out = np.zeros(n_out, np.int32)
        self._row = [0] * cfg.n_in

    def step(self, x: np.ndarray) -> None:
        """One step with input counts ``x`` (n_in,), already integer-valued in 0..255."""
        row = self._row
        for i in range(len(row)):
            row[i] = int(x[i])
        out = self.layer.evolve([row])
        lay = self.layer
        for o in range(self.cfg.n_out):
            self.z_out[o] = out[0][o]
        self.v_mem_out[:] = [r[0] for r in lay.rec_v_mem_out]
        self.i_syn_out[:] = [r[0] for r in lay.rec_i_syn_out]

    def record(self, xs: np.ndarray) -> dict[str, np.ndarray]:
        """Run (T, n_in) counts from the current state; recordings (T, n) keyed like
        :func:`rtsnn_xylo.int_reference.run_reference`."""
        lay = self.layer
        out = lay.evolve([[int(v) for v in row] for row in np.asarray(xs)])
        T = len(out)
        tr = lambda rec, n: np.asarray(rec, np.int64).reshape(n, T).T if n else np.zeros((T, 0), np.int64)  # noqa: E731
        n_hid, n_out = self.cfg.n_hid, self.cfg.n_out
        return {"v_mem": tr(lay.rec_v_mem, n_hid), "i_syn": tr(lay.rec_i_syn, n_hid),
                "i_syn2": tr(lay.rec_i_syn2, n_hid),
                "spikes": np.asarray(lay.rec_recurrent_spikes, np.int64).reshape(T, n_hid),
                "v_mem_out": tr(lay.rec_v_mem_out, n_out), "i_syn_out": tr(lay.rec_i_syn_out, n_out),
                "spikes_out": np.asarray(out, np.int64).reshape(T, n_out)}

    def reset_state(self) -> None:
        self.layer.reset_all()
        self.z_out[:] = 0
        self.v_mem_out[:] = 0
        self.i_syn_out[:] = 0
