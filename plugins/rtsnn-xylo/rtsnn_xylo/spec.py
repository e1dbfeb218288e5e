"""XyloAudio 2 (SYNS61201) limits and the integer network that runs on it.

:class:`XyloLimits` holds the chip's published limits and bit widths (see the project's
REFERENCES section 10 and SynSense's ``xylosim.v2`` source). :class:`XyloConfig` is a
mapped network in the chip's own integer units -- what :mod:`rtsnn_xylo.quantize` produces
from a float rtsnn model, what :mod:`rtsnn_xylo.drc` checks, and what both simulators
(:mod:`rtsnn_xylo.sim` around xylosim, :mod:`rtsnn_xylo.int_kernels`) run.

Layout (dense, like Rockpool's Xylo configs): ``w_in`` (n_in, n_hid, 2) int8 weight of
input i onto synapse s of hidden neuron j; ``w_rec`` (n_hid, n_hid, 2) int8, row =
presynaptic; ``w_out`` (n_hid, n_out) int8 onto the single synapse of each output neuron.
Effective weights are ``w << weight_shift_*``. ``dash_*`` are the bit-shift decays
(``x -= x >> dash``, at least 1 towards 0), ``threshold*`` the spike thresholds, ``bias*``
a constant added to ``Vmem`` every step when ``has_bias``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtsnn_xylo.ticks import check_steps_per_tick


@dataclass(frozen=True)
class XyloLimits:
    """Limits of one chip generation (defaults: XyloAudio 2)."""

    name: str = "XyloAudio 2 (SYNS61201)"
    n_in_max: int = 16
    n_hid_max: int = 1000
    n_out_max: int = 8
    n_syn_per_hidden: int = 2
    fan_out_max: int = 64  # outgoing recurrent synapses per hidden neuron (avg 32+32)
    weight_min: int = -128  # int8
    weight_max: int = 127
    weight_shift_max: int = 7  # 0..7; larger values overflow the 16-bit state
    state_min: int = -(2**15)  # int16 saturating Isyn, Isyn2, Vmem
    state_max: int = 2**15 - 1
    threshold_min: int = 1  # must be > 0 (<= 0 fires 31 spikes every step)
    threshold_max: int = 2**15 - 1
    dash_min: int = 0  # 4 bit; 0 zeroes the state every step
    dash_max: int = 15
    max_input_spikes: int = 15  # per channel per step
    max_hidden_spikes: int = 31  # per neuron per step
    max_output_spikes: int = 1
    clock_hz: float = 50e6  # default core clock of XyloAudio 2 (see report.py for the cost model)


XYLO2 = XyloLimits()


def _arr(name: str, a: Any, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Exact integer conversion: refuses non-integral values instead of truncating them."""
    raw = np.asarray(a)
    if raw.shape != shape:
        raise ValueError(f"XyloConfig.{name} must have shape {shape}, got {raw.shape}")
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
            raise ValueError(f"XyloConfig.{name} must hold integers, got non-integral values")
    return np.ascontiguousarray(raw.astype(np.int64)).astype(dtype) if raw.size else np.zeros(shape, dtype)


@dataclass
class XyloConfig:
    """An integer network for Xylo (see the module docstring for the layout).

    Arrays are stored as int64 so that out-of-range values survive until :func:`drc.check`
    names them (casting to int8 first would wrap 200 to -56 silently). ``out_scale`` and
    ``b_out`` are host-side decoding constants: ``y = readout_int / out_scale + b_out``.
    """

    w_in: np.ndarray
    w_rec: np.ndarray
    w_out: np.ndarray
    threshold: np.ndarray
    threshold_out: np.ndarray
    dash_mem: np.ndarray
    dash_syn: np.ndarray  # (n_hid, 2)
    dash_mem_out: np.ndarray
    dash_syn_out: np.ndarray  # (n_out,)
    weight_shift_in: int = 0
    weight_shift_rec: int = 0
    weight_shift_out: int = 0
    has_bias: bool = False
    bias: np.ndarray | None = None
    bias_out: np.ndarray | None = None
    dt_s: float = 1e-3
    out_scale: np.ndarray | None = None
    b_out: np.ndarray | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    steps_per_tick: int = 1  # chip steps per session tick (rtsnn_xylo.ticks); dt_s is one step

    def __post_init__(self) -> None:
        w_in = np.asarray(self.w_in)
        if w_in.ndim != 3 or w_in.shape[2] != 2:
            raise ValueError(f"XyloConfig.w_in must be (n_in, n_hid, 2), got shape {w_in.shape}")
        n_in, n_hid = w_in.shape[0], w_in.shape[1]
        w_out = np.asarray(self.w_out)
        if w_out.ndim != 2 or w_out.shape[0] != n_hid:
            raise ValueError(f"XyloConfig.w_out must be (n_hid={n_hid}, n_out), got shape {w_out.shape}")
        n_out = w_out.shape[1]
        i64 = np.int64
        self.w_in = _arr("w_in", w_in, i64, (n_in, n_hid, 2))
        self.w_rec = _arr("w_rec", self.w_rec, i64, (n_hid, n_hid, 2))
        self.w_out = _arr("w_out", w_out, i64, (n_hid, n_out))
        self.threshold = _arr("threshold", self.threshold, i64, (n_hid,))
        self.threshold_out = _arr("threshold_out", self.threshold_out, i64, (n_out,))
        self.dash_mem = _arr("dash_mem", self.dash_mem, i64, (n_hid,))
        self.dash_syn = _arr("dash_syn", self.dash_syn, i64, (n_hid, 2))
        self.dash_mem_out = _arr("dash_mem_out", self.dash_mem_out, i64, (n_out,))
        self.dash_syn_out = _arr("dash_syn_out", self.dash_syn_out, i64, (n_out,))
        self.bias = _arr("bias", np.zeros(n_hid) if self.bias is None else self.bias, i64, (n_hid,))
        self.bias_out = _arr("bias_out", np.zeros(n_out) if self.bias_out is None else self.bias_out, i64, (n_out,))
        for name in ("weight_shift_in", "weight_shift_rec", "weight_shift_out"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"XyloConfig.{name} must be an int, got {v!r}")
            setattr(self, name, int(v))
        self.has_bias = bool(self.has_bias)
        self.steps_per_tick = check_steps_per_tick(self.steps_per_tick)
        self.out_scale = (np.ones(n_out) if self.out_scale is None
                          else np.asarray(self.out_scale, np.float64).reshape(n_out))
        self.b_out = np.zeros(n_out) if self.b_out is None else np.asarray(self.b_out, np.float64).reshape(n_out)

    @property
    def n_in(self) -> int:
        return int(self.w_in.shape[0])

    @property
    def n_hid(self) -> int:
        return int(self.w_in.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.w_out.shape[1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (lists), e.g. for a session folder."""
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            out[k] = v.tolist() if isinstance(v, np.ndarray) else v
        return out
