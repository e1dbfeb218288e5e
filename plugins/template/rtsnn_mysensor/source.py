"""A template sensor adapter: replace the sine generator with your device's driver.

The Source contract (``rtsnn.protocols.Source``):

* ``__init__(**options)``: the options of the session config; validate each one here and raise
  ``ValueError`` naming the option and what was expected. Set ``n_channels``. No I/O yet.
* ``open()``: blocking set-up (connect, start the device); raise with a clear message.
* ``pull(samples_out, timestamps_out) -> n``: called every tick (1 ms) by the compute thread.
  Copy the samples that arrived since the last call into the preallocated buffers
  (float32 (max_rows, n_channels), float64 (max_rows,)) and return how many. Never block,
  never sleep, avoid allocating. Timestamps are seconds on the LSL clock
  (``pylsl.local_clock()``).
* ``stats() -> dict``: JSON-serialisable counters.
* ``close()``: release the device; must not raise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pylsl


class MySensorSource:
    """``n_channels`` sines of ``freq_hz`` (phase-shifted per channel) sampled at ``srate_hz``.

    Sample ``k`` of channel ``c`` is ``amplitude * sin(2 pi freq_hz k / srate_hz + c pi / n_channels)``,
    timestamped ``t0 + k / srate_hz`` on the LSL clock (``t0``: when ``open`` ran).
    """

    def __init__(self, n_channels: int = 4, srate_hz: float = 250.0, freq_hz: float = 10.0,
                 amplitude: float = 1.0):
        if isinstance(n_channels, bool) or not isinstance(n_channels, int) or n_channels < 1:
            raise ValueError(f"n_channels must be a positive integer, got {n_channels!r}")
        if not (isinstance(srate_hz, (int, float)) and math.isfinite(srate_hz) and srate_hz > 0):
            raise ValueError(f"srate_hz must be a finite number > 0, got {srate_hz!r}")
        if not (isinstance(freq_hz, (int, float)) and 0 <= freq_hz < srate_hz / 2):
            raise ValueError(f"freq_hz must be in [0, srate_hz/2) = [0, {srate_hz / 2}), got {freq_hz!r}")
        self.n_channels = n_channels
        self.srate_hz = float(srate_hz)
        self.freq_hz = float(freq_hz)
        self.amplitude = float(amplitude)
        self._phase = np.arange(n_channels) * math.pi / n_channels
        self._t0: float | None = None
        self._k = 0  # samples delivered so far
        self.truncated = 0  # samples due but not delivered because the buffer was full (sent next tick)

    def open(self) -> None:
        if self._t0 is not None:
            raise RuntimeError("MySensorSource.open called twice")
        self._t0 = pylsl.local_clock()

    def pull(self, samples_out: np.ndarray, timestamps_out: np.ndarray) -> int:
        due = int((pylsl.local_clock() - self._t0) * self.srate_hz) + 1 - self._k
        n = min(max(due, 0), samples_out.shape[0])
        if due > n:
            self.truncated += due - n
        if n == 0:
            return 0
        k = self._k + np.arange(n)  # a real driver copies from its own buffer instead
        t = k / self.srate_hz
        samples_out[:n] = self.amplitude * np.sin(2 * math.pi * self.freq_hz * t[:, None] + self._phase)
        timestamps_out[:n] = self._t0 + t
        self._k += n
        return n

    def stats(self) -> dict[str, Any]:
        return {"kind": "mysensor", "samples": self._k, "truncated": self.truncated}

    def close(self) -> None:
        self._t0 = None
