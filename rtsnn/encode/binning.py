"""Encoders whose input already is spikes: event streams and per-channel spike counts."""

from __future__ import annotations

from typing import Any

import numpy as np

from rtsnn.encode import EncoderBase, check_float, check_int
from rtsnn.encode import kernels as K
from rtsnn.snn.kernels import compiled_entry


class SpikeBinEncoder(EncoderBase):
    """Irregular stream of spike events -> spike counts per unit in this tick.

    Each sample is one event; its column ``channel_column`` holds the channel/unit index as a
    float (e.g. an LSL marker-like stream ``[unit, ...]``). ``spikes_out[k]`` = number of this
    tick's events with index ``k``. Indices that are NaN/inf, non-integer, negative or
    ``>= n_channels_out`` are dropped and counted in :meth:`stats` (never an error: a sorter
    adding a unit mid-session must not stop the loop).

    Args:
        n_channels_out: number of units/channels produced (``n_out``).
        channel_column: column of the event sample holding the index.
        n_channels: columns of the event stream (``channel_column < n_channels``).
        dt_s: tick length (informational).
    """

    def __init__(self, n_channels_out: int, channel_column: int = 0, n_channels: int = 1, dt_s: float = 1e-3):
        self.n_out = check_int("n_channels_out", n_channels_out, 1)
        self.n_channels = check_int("n_channels", n_channels, 1)
        self.channel_column = check_int("channel_column", channel_column, 0)
        if self.channel_column >= self.n_channels:
            raise ValueError(f"channel_column must be < n_channels ({self.n_channels}); got {self.channel_column}")
        self.dt_s = check_float("dt_s", dt_s, gt=0.0)
        self._counters = np.zeros(K.BIN_N, np.int64)

    def encode(self, samples: np.ndarray, n: int, spikes_out: np.ndarray) -> None:
        """Write this tick's event counts per unit into ``spikes_out``."""
        self._check_call(samples, n, spikes_out)
        K.bin_events(samples, n, self.channel_column, spikes_out, self._counters)

    def reset(self) -> None:
        self._counters[:] = 0

    def stats(self) -> dict[str, Any]:
        c = self._counters
        return {
            "events": int(c[K.BIN_EVENTS]),
            "dropped_nonfinite": int(c[K.NONFINITE]),
            "dropped_noninteger": int(c[K.BIN_NONINTEGER]),
            "dropped_out_of_range": int(c[K.BIN_OUT_OF_RANGE]),
            "dropped": int(c[K.NONFINITE] + c[K.BIN_NONINTEGER] + c[K.BIN_OUT_OF_RANGE]),
        }


class PassthroughEncoder(EncoderBase):
    """Per-channel spike counts (e.g. a 1 kHz stream of binned counts) -> their sum per tick.

    ``spikes_out[c] = sum_i max(samples[i, c], 0)`` over the rows that arrived this tick (0
    when none did). Negative and non-finite counts are repaired to 0 and counted in
    :meth:`stats`. Non-integer values are passed on unchanged (smoothed counts are legal input).

    Args:
        n_channels: channels in and out.
        dt_s: tick length (informational).
    """

    def __init__(self, n_channels: int, dt_s: float = 1e-3):
        self.n_channels = check_int("n_channels", n_channels, 1)
        self.n_out = self.n_channels
        self.dt_s = check_float("dt_s", dt_s, gt=0.0)
        self._counters = np.zeros(K.PT_N, np.int64)
        self._kernel = K.passthrough_sum

    def encode(self, samples: np.ndarray, n: int, spikes_out: np.ndarray) -> None:
        """Write the sum of this tick's count rows into ``spikes_out``."""
        if self._check_call(samples, n, spikes_out):  # new buffers: validated, so bind the kernel
            # compiled for these very buffers' types: no per-call dispatch (~0.2 us)
            self._kernel = compiled_entry(K.passthrough_sum, (samples, int(n), spikes_out, self._counters))
        self._kernel(samples, n, spikes_out, self._counters)

    def reset(self) -> None:
        self._counters[:] = 0

    def stats(self) -> dict[str, Any]:
        c = self._counters
        return {
            "samples": int(c[K.PT_SAMPLES]),
            "clipped_negative": int(c[K.PT_NEGATIVE]),
            "clipped_nonfinite": int(c[K.NONFINITE]),
        }
