"""Encoders: the samples that arrived during one tick -> one input spike-count vector.

Each encoder implements :class:`rtsnn.protocols.Encoder`: attributes ``n_channels`` (input
channels expected) and ``n_out`` (spike channels produced), ``encode(samples, n, spikes_out)``
which overwrites ``spikes_out`` (float32, ``n_out``) from the rows ``samples[:n]`` (float32,
``(max_samples, n_channels)``; ``n`` may be 0), ``reset()`` and ``stats()`` (counters of
repairs, JSON-serialisable). All state lives in arrays allocated by the constructor; the work
is done by the numba kernels in :mod:`rtsnn.encode.kernels`.

Entry points (group ``rtsnn.encoders``):

* ``threshold_crossing`` :class:`ThresholdCrossingEncoder`: broadband voltage -> crossings per channel
* ``spike_bin`` :class:`SpikeBinEncoder`: event stream (unit ids) -> counts per unit
* ``passthrough`` :class:`PassthroughEncoder`: per-channel counts -> their sum per tick
* ``poisson_rate`` :class:`PoissonRateEncoder`: continuous signal -> Poisson/Bernoulli spikes
* ``delta`` :class:`DeltaEncoder`: continuous signal -> send-on-delta UP/DOWN spikes
"""

from __future__ import annotations

from rtsnn.errors import RtsnnValueError

import math
from typing import Any

import numpy as np


class EncoderInputError(RtsnnValueError):
    """``encode`` was called with buffers of the wrong shape or dtype, or an impossible ``n``."""


class EncoderBase:
    """Argument checks shared by the encoders (cheap attribute tests, no allocation)."""

    n_channels: int
    n_out: int

    # The buffers last checked (the session passes the same preallocated pair every tick, so
    # the full check runs once per buffer pair and later ticks only test identity and ``n``).
    _checked_samples: np.ndarray | None = None
    _checked_out: np.ndarray | None = None
    _checked_rows: int = -1

    def _check_call(self, samples: np.ndarray, n: int, spikes_out: np.ndarray) -> bool:
        """Validate the call; True when the buffers are new (just checked and remembered),
        False on the per-tick fast path (the same buffers as last time)."""
        if (samples is self._checked_samples and spikes_out is self._checked_out and type(n) is int
                and 0 <= n <= self._checked_rows and samples.shape[0] == self._checked_rows):
            return False
        self._check_call_full(samples, n, spikes_out)
        self._checked_samples, self._checked_out, self._checked_rows = samples, spikes_out, samples.shape[0]
        return True

    def _check_call_full(self, samples: np.ndarray, n: int, spikes_out: np.ndarray) -> None:
        name = type(self).__name__
        if not isinstance(samples, np.ndarray) or samples.ndim != 2 or samples.dtype != np.float32:
            raise EncoderInputError(
                f"{name}.encode: samples must be a float32 array (max_samples, {self.n_channels}); got "
                f"{_describe(samples)}")
        if samples.shape[1] != self.n_channels:
            raise EncoderInputError(
                f"{name}.encode: samples has {samples.shape[1]} channels but the encoder expects "
                f"{self.n_channels}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise EncoderInputError(f"{name}.encode: n must be an integer row count; got {n!r}")
        if n < 0 or n > samples.shape[0]:
            raise EncoderInputError(
                f"{name}.encode: n={n} is outside 0..{samples.shape[0]} (the rows of the samples buffer)")
        if not isinstance(spikes_out, np.ndarray) or spikes_out.dtype != np.float32 \
                or spikes_out.shape != (self.n_out,):
            raise EncoderInputError(
                f"{name}.encode: spikes_out must be a float32 array of shape ({self.n_out},); got "
                f"{_describe(spikes_out)}")


def _describe(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__


# ---------------------------------------------------------------- constructor validation
def check_int(name: str, value: Any, minimum: int) -> int:
    """An integer >= ``minimum`` (bools and non-integral floats refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


def check_float(name: str, value: Any, *, gt: float | None = None, ge: float | None = None,
                nonzero: bool = False) -> float:
    """A finite real number, optionally ``> gt`` / ``>= ge`` / non-zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number; got {v}")
    if gt is not None and not v > gt:
        raise ValueError(f"{name} must be > {gt:g}; got {v:g}")
    if ge is not None and not v >= ge:
        raise ValueError(f"{name} must be >= {ge:g}; got {v:g}")
    if nonzero and v == 0.0:
        raise ValueError(f"{name} must be non-zero; got 0")
    return v


def per_channel(name: str, value: Any, n_channels: int, *, positive: bool) -> np.ndarray:
    """A scalar or a length-``n_channels`` sequence of finite numbers -> float64 array."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a list of {n_channels} numbers; got {value!r}") from None
    if arr.ndim == 0:
        arr = np.full(n_channels, float(arr))
    elif arr.shape != (n_channels,):
        raise ValueError(f"{name} must be a number or a list of {n_channels} numbers (one per channel); "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got non-finite value(s) at channel(s) "
                         f"{np.flatnonzero(~np.isfinite(arr)).tolist()}")
    if positive and not np.all(arr > 0):
        raise ValueError(f"{name} must be > 0 for every channel; got {arr[arr <= 0][:5].tolist()} at channel(s) "
                         f"{np.flatnonzero(arr <= 0)[:5].tolist()}")
    return np.ascontiguousarray(arr)


# The classes are imported last: their modules import the helpers above from this package.
from rtsnn.encode.binning import PassthroughEncoder, SpikeBinEncoder  # noqa: E402
from rtsnn.encode.delta import DeltaEncoder  # noqa: E402
from rtsnn.encode.rate import PoissonRateEncoder  # noqa: E402
from rtsnn.encode.threshold import ThresholdCrossingEncoder  # noqa: E402

__all__ = ["DeltaEncoder", "EncoderBase", "EncoderInputError", "PassthroughEncoder", "PoissonRateEncoder",
           "SpikeBinEncoder", "ThresholdCrossingEncoder"]
