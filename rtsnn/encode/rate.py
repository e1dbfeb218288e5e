"""Rate coding of continuous signals (EEG, kinematics, sensors) into Poisson spikes."""

from __future__ import annotations

from typing import Any

import numpy as np

from rtsnn.encode import EncoderBase, check_float, check_int, per_channel
from rtsnn.encode import kernels as K

_MODES = ("poisson", "bernoulli")
_MAX_SPIKES_PER_TICK = 100.0  # rate_max_hz * dt_s above this is surely a unit mistake


class PoissonRateEncoder(EncoderBase):
    """Continuous signal -> spikes at ``rate = rate_max_hz * f(x)`` from the latest sample.

    ``x`` is each channel's latest finite sample, held over ticks without one (160 Hz EEG on
    1 kHz ticks gets a new value every ~6 ticks and keeps firing in between). The fraction
    ``f`` in [0, 1] is

    * unsigned: ``f = clip((x - low) / (high - low), 0, 1)`` -> ``n_out = n_channels``;
    * signed: ``v = (x - centre) / half_range`` with ``centre = (low + high) / 2``,
      ``half_range = (high - low) / 2``; ``clip(v, 0, 1)`` drives output ``2c`` (positive part)
      and ``clip(-v, 0, 1)`` output ``2c + 1`` (negative part) -> ``n_out = 2 n_channels``.

    ``low``/``high`` (scalars or one per channel) fix the range. Without them the range follows
    the signal online: an exponentially weighted mean and SD per channel (cumulative over the
    first ``normalise_tau_s`` of samples, then exponential with that time constant) give
    ``low = mean - normalise_n_sd * SD`` and ``high = mean + normalise_n_sd * SD``. (Mean/SD
    rather than min/max: a single artefact does not squash the range for the rest of the
    session, and a drifting baseline is tracked.) Until a channel has two distinct values its
    range is empty and it stays silent.

    Spike counts per tick have mean ``lam = rate * dt_s``. ``mode='poisson'`` (default) draws a
    Poisson count by inverting its CDF at one uniform per output (so more than one spike per
    tick is possible when ``lam`` is large); ``mode='bernoulli'`` emits 1 when ``u < lam``
    (requires ``rate_max_hz * dt_s <= 1``). The uniforms come from ``numpy.random.Generator``
    (PCG64, ``seed``), drawn into a preallocated buffer each tick; ``reset()`` restarts the
    generator, so a run is reproducible from its seed.

    Args:
        n_channels: input channels.
        rate_max_hz: rate at ``f = 1``.
        low, high: fixed input range (both or neither; ``high > low`` per channel).
        signed: two outputs per input (positive and negative part).
        seed: generator seed (None: fresh entropy, not reproducible).
        dt_s: tick length.
        srate_hz: the stream's nominal rate, for the online normaliser's time constant in samples
            (default: one sample per tick).
        mode: 'poisson' or 'bernoulli'.
        normalise_tau_s: time constant of the online normaliser.
        normalise_n_sd: half-width of the online range in SDs.
    """

    def __init__(self, n_channels: int, rate_max_hz: float = 200.0, low: Any = None, high: Any = None,
                 signed: bool = False, seed: int | None = 0, dt_s: float = 1e-3, srate_hz: float | None = None,
                 mode: str = "poisson", normalise_tau_s: float = 10.0, normalise_n_sd: float = 3.0):
        self.n_channels = check_int("n_channels", n_channels, 1)
        if not isinstance(signed, (bool, np.bool_)):
            raise ValueError(f"signed must be true or false; got {signed!r}")
        self.signed = bool(signed)
        self.n_out = 2 * self.n_channels if self.signed else self.n_channels
        self.rate_max_hz = check_float("rate_max_hz", rate_max_hz, gt=0.0)
        self.dt_s = check_float("dt_s", dt_s, gt=0.0)
        self.srate_hz = 1.0 / self.dt_s if srate_hz is None else check_float("srate_hz", srate_hz, gt=0.0)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}; got {mode!r}")
        self.mode = mode
        self._bernoulli = mode == "bernoulli"
        self.lam_max = self.rate_max_hz * self.dt_s
        if mode == "bernoulli" and self.lam_max > 1.0:
            raise ValueError(f"mode 'bernoulli' needs rate_max_hz * dt_s <= 1 (at most one spike per tick); got "
                             f"{self.rate_max_hz:g} Hz * {self.dt_s:g} s = {self.lam_max:g}; use mode 'poisson'")
        if self.lam_max > _MAX_SPIKES_PER_TICK:
            raise ValueError(f"rate_max_hz * dt_s must be <= {_MAX_SPIKES_PER_TICK:g} spikes per tick; got "
                             f"{self.lam_max:g} (is rate_max_hz in Hz and dt_s in seconds?)")
        if seed is not None:
            seed = check_int("seed", seed, 0)
        self.seed = seed
        self.normalise_tau_s = check_float("normalise_tau_s", normalise_tau_s, gt=0.0)
        self.normalise_n_sd = check_float("normalise_n_sd", normalise_n_sd, gt=0.0)
        # weight floor of the EWMA: 1 / (time constant in samples), at most 1
        self.alpha_min = min(1.0, 1.0 / (self.normalise_tau_s * self.srate_hz))

        if (low is None) != (high is None):
            raise ValueError(f"give both low and high (a fixed input range) or neither (online normalisation); "
                             f"got low={low!r}, high={high!r}")
        self.online = low is None
        if self.online:
            self._low0 = np.zeros(self.n_channels)
            self._high0 = np.zeros(self.n_channels)
        else:
            self._low0 = per_channel("low", low, self.n_channels, positive=False)
            self._high0 = per_channel("high", high, self.n_channels, positive=False)
            bad = np.flatnonzero(~(self._high0 > self._low0))
            if bad.size:
                raise ValueError(f"high must be > low for every channel; not so at channel(s) {bad[:5].tolist()} "
                                 f"(low={self._low0[bad[:5]].tolist()}, high={self._high0[bad[:5]].tolist()})")

        self._last = np.zeros(self.n_channels)
        self._has = np.zeros(self.n_channels, np.bool_)
        self._mean = np.zeros(self.n_channels)
        self._var = np.zeros(self.n_channels)
        self._n_seen = np.zeros(self.n_channels, np.int64)
        self._low = self._low0.copy()
        self._high = self._high0.copy()
        self._uniforms = np.zeros(self.n_out)
        self._counters = np.zeros(K.RATE_N, np.int64)
        self._ticks = 0
        self.reset()

    def encode(self, samples: np.ndarray, n: int, spikes_out: np.ndarray) -> None:
        """Write this tick's spike counts (one draw per output) into ``spikes_out``."""
        self._check_call(samples, n, spikes_out)
        self._rng.random(out=self._uniforms)
        K.rate_encode(samples, n, self._last, self._has, self.online, self._mean, self._var, self._n_seen,
                      self.alpha_min, self.normalise_n_sd, self._low, self._high, self.signed, self.lam_max,
                      self._bernoulli, self._uniforms, spikes_out, self._counters)
        self._ticks += 1

    def reset(self) -> None:
        """Forget the held values and the online range; restart the generator from ``seed``."""
        self._rng = np.random.default_rng(self.seed)
        self._last[:] = 0.0
        self._has[:] = False
        self._mean[:] = 0.0
        self._var[:] = 0.0
        self._n_seen[:] = 0
        self._low[:] = self._low0
        self._high[:] = self._high0
        self._counters[:] = 0
        self._ticks = 0

    def stats(self) -> dict[str, Any]:
        return {"ticks": int(self._ticks), "skipped_nonfinite": int(self._counters[K.NONFINITE])}

    @property
    def input_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Current ``(low, high)`` per channel (fixed, or the online estimate)."""
        return self._low.copy(), self._high.copy()
