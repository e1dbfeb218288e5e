"""The node kinds of a model graph: one small parameter dataclass per kind (NIR-shaped).

A model is a directed graph (:class:`rtsnn.snn.graph.Graph`) of these nodes; an edge carries
the source node's output vector to the target, and a node sums every incoming vector
(NIR's semantics). Parameters are per neuron (1-D arrays of the node's size); a scalar given
to a constructor is broadcast. Time is discrete, one graph tick ``dt_s``; the per-tick decays
are derived from the time constants by the graph's ``integration`` rule (``'exact'``:
``alpha = exp(-dt_s/tau)``; ``'euler'``: ``alpha = 1 - dt_s/tau``).

Projections (no state; weight rows are presynaptic, as in the kernels)::

    Linear   y = W^T x                    weight (n_in, n_out)
    Affine   y = W^T x + b                weight (n_in, n_out), bias (n_out,)
    Conv2d   y = conv(x, W) + b           weight (c_out, c_in/groups, kh, kw), on (c, h, w) maps
    SumPool2d / AvgPool2d, Flatten        (c, h, w) maps; Flatten is a no-op on the flat buffer

Neurons (state per neuron; ``I[t]`` the summed input of the tick, ``z`` spikes 0/1)::

    LIF      v[t] = alpha v[t-1] + (1-alpha) v_leak + gain I[t] - reset
    CubaLIF  i[t] = alpha_syn i[t-1] + I[t];   v[t] = alpha v[t-1] + (1-alpha) v_leak + gain i[t] - reset
    ALIF     LIF with a[t] = rho a[t-1] + z[t-1] and threshold v_th + beta_adapt a[t]   (rtsnn extension)
    IF       v[t] = v[t-1] + gain I[t] - reset                                          (alpha = 1)
    LI       y[t] = kappa y[t-1] + (1-kappa) v_leak + gain I[t]                         (no spikes)
    Delay    y_i[t] = x_i[t - steps_i]                                                  (integer ticks)

A neuron spikes when ``v[t] >= threshold`` and it is not refractory (``refractory_s`` rounded
to ticks). ``reset`` per neuron is ``'subtract'`` (``v -= v_th``) or ``'zero'`` (``v = v_reset``);
``reset_at`` per node says when: ``'next'`` (applied at the next tick from ``z[t-1]``, rtsnn's
and snnTorch's timing; ``'zero'`` then clears the previous membrane before its decay) or
``'now'`` (applied in the tick of the spike, after the threshold test: NIR's and Norse's
timing) or ``'next_clamp'`` (at the next tick; with ``'zero'`` the whole membrane of that tick
is ``v_reset``, its input dropped: snnTorch's Synaptic, RLeaky and RSynaptic). ``spike_if``
per node is ``'>='`` (rtsnn: spike when ``v >= v_th``) or ``'>'`` (NIR, snnTorch, Norse:
``v > v_th``). The exact kernels are in :mod:`rtsnn.snn.neuron_kernels`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from rtsnn.errors import RtsnnValueError

RESETS = ("subtract", "zero")
RESET_AT = ("next", "now", "next_clamp")
SPIKE_IF = (">=", ">")


class GraphError(RtsnnValueError):
    """A model graph that cannot be built or run; the message names the node and the field."""


def _fail(node: str, fld: str, msg: str) -> None:
    raise GraphError(f"node {node!r}: {fld}: {msg}")


def _vector(node: str, fld: str, value: Any, n: int, *, positive: bool = False, nonneg: bool = False,
            dtype: Any = np.float64) -> np.ndarray:
    """``value`` as a 1-D array of length ``n`` (a scalar is broadcast), checked finite."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        _fail(node, fld, f"must be numeric, got {type(value).__name__}: {err}")
    if arr.ndim == 0:
        arr = np.full(n, arr, dtype=dtype)
    if arr.ndim != 1 or arr.shape[0] != n:
        _fail(node, fld, f"must have one value per neuron ({n}), got shape {list(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        _fail(node, fld, f"must be finite, got {int(np.count_nonzero(~np.isfinite(arr)))} NaN/inf value(s)")
    if positive and np.any(arr <= 0):
        bad = int(np.flatnonzero(arr <= 0)[0])
        _fail(node, fld, f"must be > 0, got {arr[bad].item()!r} at neuron {bad}")
    if nonneg and np.any(arr < 0):
        bad = int(np.flatnonzero(arr < 0)[0])
        _fail(node, fld, f"must be >= 0, got {arr[bad].item()!r} at neuron {bad}")
    return np.ascontiguousarray(arr)


def _matrix(node: str, fld: str, value: Any, ndim: int) -> np.ndarray:
    try:
        arr = np.ascontiguousarray(value, dtype=np.float32)
    except (TypeError, ValueError) as err:
        _fail(node, fld, f"must be a numeric array, got {type(value).__name__}: {err}")
    if arr.ndim != ndim:
        _fail(node, fld, f"must be {ndim}-D, got shape {list(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        _fail(node, fld, f"must be finite, got {int(np.count_nonzero(~np.isfinite(arr)))} NaN/inf value(s)")
    return arr


def _resets(node: str, value: Any, n: int) -> np.ndarray:
    """Per-neuron reset modes as a uint8 array (0 subtract, 1 zero)."""
    if isinstance(value, str):
        value = [value] * n
    vals = list(np.asarray(value).ravel()) if not isinstance(value, (list, tuple)) else list(value)
    if len(vals) != n:
        _fail(node, "reset", f"must be one mode or one per neuron ({n}), got {len(vals)}")
    out = np.zeros(n, np.uint8)
    for k, v in enumerate(vals):
        if isinstance(v, (int, np.integer)) and int(v) in (0, 1):
            out[k] = int(v)
        elif str(v) in RESETS:
            out[k] = RESETS.index(str(v))
        else:
            _fail(node, "reset", f"must be one of {', '.join(RESETS)}, got {v!r} at neuron {k}")
    return out


def _shape(node: str, fld: str, value: Any) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in value)
    except (TypeError, ValueError):
        _fail(node, fld, f"must be a list of positive ints, got {value!r}")
    if not shape or any(d < 1 for d in shape):
        _fail(node, fld, f"must be a list of positive ints, got {list(shape)}")
    if math.prod(shape) > 2**31 - 1:
        _fail(node, fld, f"{list(shape)} holds more than 2^31 values")
    return shape


def _pair(node: str, fld: str, value: Any, minimum: int) -> tuple[int, int]:
    vals = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(vals) != 2 or any(not isinstance(v, (int, np.integer)) or int(v) < minimum for v in vals):
        _fail(node, fld, f"must be an int or a pair of ints >= {minimum}, got {value!r}")
    return int(vals[0]), int(vals[1])


@dataclass(eq=False)
class Node:
    """Base of every node kind. ``name`` is set by the graph."""

    kind: ClassVar[str] = ""
    stateful: ClassVar[bool] = False  # has state carried across ticks (breaks algebraic loops)
    spiking: ClassVar[bool] = False  # output is 0/1 spikes
    name: str = field(default="", repr=True)

    def input_size(self) -> int:
        raise NotImplementedError

    def output_size(self) -> int:
        raise NotImplementedError

    def output_shape(self) -> tuple[int, ...]:
        return (self.output_size(),)

    # ---- serialisation: JSON-able scalars + named arrays
    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}

    def meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "name" or isinstance(v, np.ndarray):
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


@dataclass(eq=False)
class Input(Node):
    kind: ClassVar[str] = "Input"
    shape: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        self.shape = _shape(self.name, "shape", self.shape)

    def input_size(self) -> int:
        return math.prod(self.shape)

    def output_size(self) -> int:
        return math.prod(self.shape)

    def output_shape(self) -> tuple[int, ...]:
        return self.shape


@dataclass(eq=False)
class Output(Input):
    kind: ClassVar[str] = "Output"


@dataclass(eq=False)
class Linear(Node):
    """``y = W^T x``; ``weight`` (n_in, n_out), row = presynaptic (NIR stores the transpose)."""

    kind: ClassVar[str] = "Linear"
    weight: np.ndarray = field(default_factory=lambda: np.zeros((1, 1), np.float32))

    def __post_init__(self) -> None:
        self.weight = _matrix(self.name, "weight", self.weight, 2)

    def input_size(self) -> int:
        return int(self.weight.shape[0])

    def output_size(self) -> int:
        return int(self.weight.shape[1])


@dataclass(eq=False)
class Affine(Linear):
    """``y = W^T x + b``; ``weight`` (n_in, n_out), ``bias`` (n_out,)."""

    kind: ClassVar[str] = "Affine"
    bias: np.ndarray = field(default_factory=lambda: np.zeros(1, np.float32))

    def __post_init__(self) -> None:
        super().__post_init__()
        self.bias = _matrix(self.name, "bias", self.bias, 1)
        if self.bias.shape[0] != self.weight.shape[1]:
            _fail(self.name, "bias", f"must have n_out = {self.weight.shape[1]} values (weight is "
                                     f"{list(self.weight.shape)}), got {self.bias.shape[0]}")


@dataclass(eq=False)
class _Neuron(Node):
    """Fields shared by the spiking kinds; ``n`` neurons."""

    stateful: ClassVar[bool] = True
    spiking: ClassVar[bool] = True
    v_th: Any = 1.0
    gain: Any = 1.0
    v_leak: Any = 0.0
    v_reset: Any = 0.0
    reset: Any = "subtract"
    reset_at: str = "next"
    refractory_s: Any = 0.0
    spike_if: str = ">="
    n: int = 0

    def _size(self) -> int:
        raise NotImplementedError

    def __post_init__(self) -> None:
        n = self.n or self._size()
        if not isinstance(n, (int, np.integer)) or n < 1:
            _fail(self.name, "n", f"must be an int >= 1 (or given by a per-neuron array), got {n!r}")
        self.n = int(n)
        self.v_th = _vector(self.name, "v_th", self.v_th, self.n, positive=True)
        self.gain = _vector(self.name, "gain", self.gain, self.n)
        self.v_leak = _vector(self.name, "v_leak", self.v_leak, self.n)
        self.v_reset = _vector(self.name, "v_reset", self.v_reset, self.n)
        self.reset = _resets(self.name, self.reset, self.n)
        if self.reset_at not in RESET_AT:
            _fail(self.name, "reset_at", f"must be one of {', '.join(RESET_AT)}, got {self.reset_at!r}")
        if self.spike_if not in SPIKE_IF:
            _fail(self.name, "spike_if", f"must be one of {', '.join(SPIKE_IF)}, got {self.spike_if!r}")
        self.refractory_s = _vector(self.name, "refractory_s", self.refractory_s, self.n, nonneg=True)

    def input_size(self) -> int:
        return self.n

    def output_size(self) -> int:
        return self.n


def _first_len(*values: Any) -> int:
    for v in values:
        a = np.asarray(v)
        if a.ndim == 1:
            return int(a.shape[0])
    return 0


@dataclass(eq=False)
class LIF(_Neuron):
    kind: ClassVar[str] = "LIF"
    tau_mem_s: Any = 20e-3

    def _size(self) -> int:
        return _first_len(self.tau_mem_s, self.v_th, self.gain, self.v_leak, self.refractory_s)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tau_mem_s = _vector(self.name, "tau_mem_s", self.tau_mem_s, self.n, positive=True)


@dataclass(eq=False)
class CubaLIF(LIF):
    kind: ClassVar[str] = "CubaLIF"
    tau_syn_s: Any = 5e-3

    def _size(self) -> int:
        return _first_len(self.tau_syn_s, self.tau_mem_s, self.v_th, self.gain, self.refractory_s)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tau_syn_s = _vector(self.name, "tau_syn_s", self.tau_syn_s, self.n, positive=True)


@dataclass(eq=False)
class ALIF(LIF):
    kind: ClassVar[str] = "ALIF"
    tau_adapt_s: Any = 200e-3
    beta_adapt: Any = 0.0

    def _size(self) -> int:
        return _first_len(self.tau_mem_s, self.tau_adapt_s, self.beta_adapt, self.v_th, self.gain)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tau_adapt_s = _vector(self.name, "tau_adapt_s", self.tau_adapt_s, self.n, positive=True)
        self.beta_adapt = _vector(self.name, "beta_adapt", self.beta_adapt, self.n, nonneg=True)


@dataclass(eq=False)
class IF(_Neuron):
    kind: ClassVar[str] = "IF"

    def _size(self) -> int:
        return _first_len(self.v_th, self.gain, self.refractory_s)


@dataclass(eq=False)
class LI(Node):
    """Leaky integrator (readout trace): ``y[t] = kappa y[t-1] + (1-kappa) v_leak + gain I[t]``."""

    kind: ClassVar[str] = "LI"
    stateful: ClassVar[bool] = True
    tau_s: Any = 20e-3
    gain: Any = 1.0
    v_leak: Any = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        n = self.n or _first_len(self.tau_s, self.gain, self.v_leak)
        if not isinstance(n, (int, np.integer)) or n < 1:
            _fail(self.name, "n", f"must be an int >= 1 (or given by a per-neuron array), got {n!r}")
        self.n = int(n)
        self.tau_s = _vector(self.name, "tau_s", self.tau_s, self.n, positive=True)
        self.gain = _vector(self.name, "gain", self.gain, self.n)
        self.v_leak = _vector(self.name, "v_leak", self.v_leak, self.n)

    def input_size(self) -> int:
        return self.n

    def output_size(self) -> int:
        return self.n


MAX_DELAY_STEPS = 4096


@dataclass(eq=False)
class Delay(Node):
    """``y_i[t] = x_i[t - steps_i]`` with integer ``steps`` >= 0 per element."""

    kind: ClassVar[str] = "Delay"
    stateful: ClassVar[bool] = True
    steps: Any = 1
    n: int = 0

    def __post_init__(self) -> None:
        n = self.n or _first_len(self.steps)
        if not isinstance(n, (int, np.integer)) or n < 1:
            _fail(self.name, "n", f"must be an int >= 1 (or given by a per-element array), got {n!r}")
        self.n = int(n)
        raw = np.asarray(self.steps)
        if raw.dtype.kind == "f" and np.any(raw != np.round(raw)):
            _fail(self.name, "steps", "must be whole ticks")
        steps = _vector(self.name, "steps", raw, self.n, nonneg=True, dtype=np.int64)
        if np.any(steps > MAX_DELAY_STEPS):
            _fail(self.name, "steps", f"must be <= {MAX_DELAY_STEPS} ticks, got {int(steps.max())}")
        self.steps = steps.astype(np.int32)

    def input_size(self) -> int:
        return self.n

    def output_size(self) -> int:
        return self.n

    @property
    def stateful_delay(self) -> bool:
        return bool(np.any(self.steps > 0))


def _conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@dataclass(eq=False)
class Conv2d(Node):
    """2-D convolution (cross-correlation, as in torch) on (c, h, w) maps stored flat, C order.
    ``weight`` (c_out, c_in / groups, kh, kw), ``bias`` (c_out,), ``input_shape`` (c_in, h, w)."""

    kind: ClassVar[str] = "Conv2d"
    weight: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 1, 1), np.float32))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(1, np.float32))
    input_shape: tuple[int, ...] = (1, 1, 1)
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1

    def __post_init__(self) -> None:
        self.weight = _matrix(self.name, "weight", self.weight, 4)
        self.bias = _matrix(self.name, "bias", self.bias, 1)
        self.input_shape = _shape(self.name, "input_shape", self.input_shape)
        if len(self.input_shape) != 3:
            _fail(self.name, "input_shape", f"must be (channels, height, width), got {list(self.input_shape)}")
        self.stride = _pair(self.name, "stride", self.stride, 1)
        self.padding = _pair(self.name, "padding", self.padding, 0)
        self.dilation = _pair(self.name, "dilation", self.dilation, 1)
        c_out, c_in_g = self.weight.shape[:2]
        if not isinstance(self.groups, (int, np.integer)) or self.groups < 1 or c_out % self.groups:
            _fail(self.name, "groups", f"must be an int >= 1 dividing c_out = {c_out}, got {self.groups!r}")
        if self.input_shape[0] != c_in_g * self.groups:
            _fail(self.name, "input_shape", f"has {self.input_shape[0]} channels, the weight expects "
                                            f"{c_in_g} x groups {self.groups}")
        if self.bias.shape[0] != c_out:
            _fail(self.name, "bias", f"must have c_out = {c_out} values, got {self.bias.shape[0]}")
        if min(self.output_shape()[1:]) < 1:
            _fail(self.name, "weight", f"kernel {list(self.weight.shape[2:])} does not fit the input "
                                       f"{list(self.input_shape)} with padding {list(self.padding)}")

    def input_size(self) -> int:
        return math.prod(self.input_shape)

    def output_shape(self) -> tuple[int, ...]:
        _, h, w = self.input_shape
        kh, kw = self.weight.shape[2:]
        return (int(self.weight.shape[0]),
                _conv_out(h, kh, self.stride[0], self.padding[0], self.dilation[0]),
                _conv_out(w, kw, self.stride[1], self.padding[1], self.dilation[1]))

    def output_size(self) -> int:
        return math.prod(self.output_shape())


@dataclass(eq=False)
class SumPool2d(Node):
    """Sum over ``kernel_size`` windows (per channel) of a (c, h, w) map."""

    kind: ClassVar[str] = "SumPool2d"
    kernel_size: Any = 2
    input_shape: tuple[int, ...] = (1, 2, 2)
    stride: Any = None
    padding: Any = 0

    def __post_init__(self) -> None:
        self.kernel_size = _pair(self.name, "kernel_size", self.kernel_size, 1)
        self.stride = self.kernel_size if self.stride is None else _pair(self.name, "stride", self.stride, 1)
        self.padding = _pair(self.name, "padding", self.padding, 0)
        self.input_shape = _shape(self.name, "input_shape", self.input_shape)
        if len(self.input_shape) != 3:
            _fail(self.name, "input_shape", f"must be (channels, height, width), got {list(self.input_shape)}")
        if min(self.output_shape()[1:]) < 1:
            _fail(self.name, "kernel_size", f"{list(self.kernel_size)} does not fit {list(self.input_shape)}")

    def input_size(self) -> int:
        return math.prod(self.input_shape)

    def output_shape(self) -> tuple[int, ...]:
        c, h, w = self.input_shape
        return (c, _conv_out(h, self.kernel_size[0], self.stride[0], self.padding[0], 1),
                _conv_out(w, self.kernel_size[1], self.stride[1], self.padding[1], 1))

    def output_size(self) -> int:
        return math.prod(self.output_shape())


@dataclass(eq=False)
class AvgPool2d(SumPool2d):
    """Mean over windows: the window sum divided by ``kh * kw`` (padding counted, as torch's default)."""

    kind: ClassVar[str] = "AvgPool2d"


@dataclass(eq=False)
class Flatten(Node):
    """(c, h, w) -> flat; buffers are flat in C order already, so this node moves no data."""

    kind: ClassVar[str] = "Flatten"
    input_shape: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        self.input_shape = _shape(self.name, "input_shape", self.input_shape)

    def input_size(self) -> int:
        return math.prod(self.input_shape)

    def output_size(self) -> int:
        return math.prod(self.input_shape)


KINDS: dict[str, type[Node]] = {cls.kind: cls for cls in (Input, Output, Linear, Affine, LIF, CubaLIF, ALIF, IF,
                                                           LI, Delay, Conv2d, SumPool2d, AvgPool2d, Flatten)}
NEURON_KINDS = ("LIF", "CubaLIF", "ALIF", "IF")


def node_from_parts(name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Node:
    """Rebuild a node from :meth:`Node.meta` and :meth:`Node.arrays` (a model file's parts)."""
    if not isinstance(meta, dict):
        raise GraphError(f"node {name!r}: must be an object, got {type(meta).__name__}")
    kind = meta.get("kind")
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise GraphError(f"node {name!r}: kind: unknown node kind {kind!r}; known: {', '.join(KINDS)}")
    known = {f.name for f in fields(cls)} - {"name"}
    kw = {k: v for k, v in meta.items() if k != "kind"}
    unknown = sorted(set(kw) - known)
    if unknown:
        raise GraphError(f"node {name!r}: unknown field(s) {', '.join(unknown)} for kind {kind}")
    for k, arr in arrays.items():
        if k not in known:
            raise GraphError(f"node {name!r}: unknown array {k!r} for kind {kind}")
        kw[k] = arr
    if "reset" in kw and isinstance(kw["reset"], list):
        kw["reset"] = [RESETS[int(v)] if isinstance(v, int) else v for v in kw["reset"]]
    try:
        return cls(name=name, **kw)
    except GraphError:
        raise
    except (TypeError, ValueError) as err:
        raise GraphError(f"node {name!r}: {err}") from None
