"""Threshold-crossing encoder for broadband extracellular voltage (e.g. 30 kHz Utah array).

Per channel, a spike is counted when the voltage crosses ``T = threshold_sd * sigma`` in the
direction of the threshold's sign (negative ``threshold_sd``: negative-going, the usual
extracellular convention; positive: positive-going), the previous finite sample being on the
other side, and the channel is not within ``refractory_s`` of its last counted crossing. Both
the previous sample and the refractory counter carry across ticks, so the result does not
depend on how the stream is chunked into ticks.

``sigma`` is the channel's noise SD, either given (``noise_sd``) or estimated robustly as

    sigma = median(|x|) / 0.6745        (Quiroga, Nadasdy & Ben-Shaul 2004)

over the first ``noise_window_s`` of samples (``round(noise_window_s * srate_hz)`` rows,
gathered across ticks into a buffer allocated by the constructor). **Until the estimate is
frozen no spikes are emitted**: the rows of the window are collected, then the medians are
computed a bounded number of channels per tick (about 30000 buffered samples' worth: one channel
per tick, ~0.3 ms, for a 1 s window at 30 kHz), and detection starts on the tick after the last
channel's median. A channel whose window held fewer than half finite
samples, or whose estimate is 0 (a flat, dead channel), is disabled (never spikes) and listed in
``stats()['disabled_channels']``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtsnn.encode import EncoderBase, check_float, check_int, per_channel
from rtsnn.encode import kernels as K

# Median work allowed per tick, in buffered samples. Quickselect costs ~8 ns per sample on
# random data here (about what numba's and numpy's medians cost), so a 1 s window at 30 kHz
# (30000 samples, ~250 us) is one channel per tick and 96 channels take 96 ticks.
_MEDIAN_SAMPLES_PER_TICK = 30_000
# Refuse noise buffers above this size (float32 bytes) with a clear error instead of swapping.
_MAX_NOISE_BUFFER_BYTES = 1 << 30

_COLLECTING, _ESTIMATING, _READY = 0, 1, 2


class ThresholdCrossingEncoder(EncoderBase):
    """Broadband voltage ``(n, n_channels)`` -> threshold crossings per channel per tick.

    Args:
        n_channels: electrode channels (``n_out == n_channels``).
        threshold_sd: threshold in units of the noise SD; sign = crossing direction.
        refractory_s: minimum time between two counted crossings of one channel, counted as
            ``round(refractory_s * srate_hz)`` samples.
        srate_hz: the stream's nominal sample rate.
        noise_window_s: length of the noise-estimation window (ignored with ``noise_sd``).
        noise_sd: the noise SD per channel (scalar or ``n_channels`` values, signal units) to
            skip estimation; detection then starts with the first tick.
        dt_s: tick length (informational: the encoder counts time in samples).
    """

    def __init__(self, n_channels: int, threshold_sd: float = -4.5, refractory_s: float = 1e-3,
                 srate_hz: float = 30000.0, noise_window_s: float = 1.0, noise_sd: Any = None,
                 dt_s: float = 1e-3):
        self.n_channels = check_int("n_channels", n_channels, 1)
        self.n_out = self.n_channels
        self.threshold_sd = check_float("threshold_sd", threshold_sd, nonzero=True)
        self.refractory_s = check_float("refractory_s", refractory_s, ge=0.0)
        self.srate_hz = check_float("srate_hz", srate_hz, gt=0.0)
        self.dt_s = check_float("dt_s", dt_s, gt=0.0)
        self.noise_window_s = check_float("noise_window_s", noise_window_s, gt=0.0)
        self.refractory_samples = int(round(self.refractory_s * self.srate_hz))
        self.polarity = -1.0 if self.threshold_sd < 0 else 1.0

        self._fixed_sd = None if noise_sd is None else per_channel("noise_sd", noise_sd, self.n_channels,
                                                                    positive=True)
        if self._fixed_sd is None:
            self.window_rows = int(round(self.noise_window_s * self.srate_hz))
            if self.window_rows < 10:
                raise ValueError(f"noise_window_s * srate_hz must give at least 10 samples to estimate the "
                                 f"noise; got {self.noise_window_s:g} s * {self.srate_hz:g} Hz = "
                                 f"{self.window_rows}")
            nbytes = 4 * self.window_rows * self.n_channels
            if nbytes > _MAX_NOISE_BUFFER_BYTES:
                raise ValueError(f"the noise window needs a {nbytes / 2**20:.0f} MiB buffer ({self.n_channels} ch "
                                 f"x {self.window_rows} samples); shorten noise_window_s or give noise_sd")
            self._buf = np.zeros((self.n_channels, self.window_rows), np.float32)
            self._channels_per_tick = max(1, _MEDIAN_SAMPLES_PER_TICK // self.window_rows)
        else:
            self.window_rows = 0
            self._buf = np.zeros((self.n_channels, 1), np.float32)
            self._channels_per_tick = self.n_channels
        self._fill = np.zeros(self.n_channels, np.int64)
        self._sd = np.full(self.n_channels, np.nan)
        self._thresh = np.full(self.n_channels, np.inf)
        self._prev = np.full(self.n_channels, np.nan)
        self._since = np.zeros(self.n_channels, np.int64)
        self._counters = np.zeros(K.TC_N, np.int64)
        self._noise_counters = np.zeros(1, np.int64)
        self.reset()
        self._compile()

    # ------------------------------------------------------------------ protocol
    def encode(self, samples: np.ndarray, n: int, spikes_out: np.ndarray) -> None:
        """Write this tick's crossing counts per channel into ``spikes_out`` (all 0 before the
        noise estimate is ready)."""
        self._check_call(samples, n, spikes_out)
        # detection first: a threshold frozen during this tick applies from the next tick
        K.threshold_cross(samples, n, self.polarity, self._thresh, self._prev, self._since,
                          self.refractory_samples, spikes_out, self._counters)
        self._samples_seen += n
        if self._phase == _COLLECTING:
            self._rows_done += K.noise_collect(samples, n, self._rows_done, self.window_rows, self._buf,
                                               self._fill, self._noise_counters)
            if self._rows_done >= self.window_rows:
                self._phase = _ESTIMATING
        elif self._phase == _ESTIMATING:
            stop = min(self._next_channel + self._channels_per_tick, self.n_channels)
            K.noise_sd_from_buffer(self._buf, self._fill, self._next_channel, stop, (self.window_rows + 1) // 2,
                                   self._sd)
            self._next_channel = stop
            if stop == self.n_channels:
                self._freeze()

    def reset(self, keep_noise: bool = False) -> None:
        """Back to the constructed state: no previous sample, not refractory, counters 0, and
        (unless ``keep_noise`` or ``noise_sd`` was given) a new noise estimate to gather."""
        self._prev[:] = np.nan
        self._since[:] = self.refractory_samples
        self._counters[:] = 0
        self._samples_seen = 0
        if self._fixed_sd is not None:
            self._sd[:] = self._fixed_sd
            self._freeze()
        elif not (keep_noise and self._phase == _READY):
            self._phase = _COLLECTING
            self._rows_done = 0
            self._next_channel = 0
            self._fill[:] = 0
            self._noise_counters[:] = 0
            self._sd[:] = np.nan
            self._thresh[:] = np.inf

    def stats(self) -> dict[str, Any]:
        c = self._counters
        return {
            "samples": int(self._samples_seen),
            "spikes": int(c[K.TC_SPIKES]),
            "suppressed_refractory": int(c[K.TC_SUPPRESSED]),
            "nonfinite": int(c[K.NONFINITE]),
            "noise_ready": self.noise_ready,
            "noise_window_nonfinite": int(self._noise_counters[K.NONFINITE]),
            "disabled_channels": np.flatnonzero(~np.isfinite(self._thresh)).tolist() if self.noise_ready else [],
        }

    # ------------------------------------------------------------------ inspection
    @property
    def noise_ready(self) -> bool:
        """True once thresholds are set (always, with a given ``noise_sd``)."""
        return self._phase == _READY

    @property
    def noise_sd(self) -> np.ndarray:
        """Noise SD per channel (signal units; NaN while unknown or for a disabled channel)."""
        return self._sd.copy()

    @property
    def thresholds(self) -> np.ndarray:
        """Signed threshold per channel in signal units (NaN while not ready or disabled)."""
        t = self.polarity * self._thresh
        t[~np.isfinite(t)] = np.nan
        return t

    # ------------------------------------------------------------------ internals
    def _compile(self) -> None:
        """Compile (or load from cache) every kernel now, with the argument types used per tick:
        the estimation kernels would otherwise first run mid-session."""
        samples = np.zeros((1, self.n_channels), np.float32)
        out = np.zeros(self.n_out, np.float32)
        K.threshold_cross(samples, 0, self.polarity, self._thresh.copy(), self._prev.copy(), self._since.copy(),
                          self.refractory_samples, out, self._counters.copy())
        K.noise_collect(samples, 0, 0, 1, self._buf, self._fill.copy(), self._noise_counters.copy())
        K.noise_sd_from_buffer(self._buf, self._fill.copy(), 0, 0, 1, self._sd.copy())

    def _freeze(self) -> None:
        sd = self._sd
        ok = np.isfinite(sd) & (sd > 0)
        sd[~ok] = np.nan
        self._thresh[:] = np.where(ok, abs(self.threshold_sd) * np.where(ok, sd, 0.0), np.inf)
        self._phase = _READY
