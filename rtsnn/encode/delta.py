"""Send-on-delta (level-crossing) encoding of continuous signals into UP/DOWN spikes."""

from __future__ import annotations

from typing import Any

import numpy as np

from rtsnn.encode import EncoderBase, check_float, check_int, per_channel
from rtsnn.encode import kernels as K


class DeltaEncoder(EncoderBase):
    """Continuous signal -> UP spikes on output ``2c``, DOWN spikes on ``2c + 1``.

    Each channel keeps a reference level, initialised to its first finite sample. Whenever a
    sample exceeds ``reference + delta`` one UP spike is sent and the reference moves up by
    ``delta``, repeated while it still does (a jump of 3.5 deltas gives 3 UP spikes); likewise
    DOWN below ``reference - delta``. Hence after every sample ``|x - reference| <= delta``,
    and the signal is reconstructed to within ``delta`` by

        x_hat[t] = x[0] + delta * (sum UP - sum DOWN)

    The reference is kept as ``first sample + integer level * delta`` (no drift from repeated
    float additions). NaN/inf samples are skipped and counted; jumps of more than 1e15 deltas
    are clipped and counted.

    Args:
        n_channels: input channels (``n_out = 2 * n_channels``).
        delta: step size in signal units (scalar or one per channel, > 0).
        dt_s: tick length (informational).
    """

    def __init__(self, n_channels: int, delta: Any, dt_s: float = 1e-3):
        self.n_channels = check_int("n_channels", n_channels, 1)
        self.n_out = 2 * self.n_channels
        self.delta = per_channel("delta", delta, self.n_channels, positive=True)
        self.dt_s = check_float("dt_s", dt_s, gt=0.0)
        self._origin = np.zeros(self.n_channels)
        self._level = np.zeros(self.n_channels, np.int64)
        self._started = np.zeros(self.n_channels, np.bool_)
        self._counters = np.zeros(K.DELTA_N, np.int64)

    def encode(self, samples: np.ndarray, n: int, spikes_out: np.ndarray) -> None:
        """Write this tick's UP/DOWN counts (interleaved per channel) into ``spikes_out``."""
        self._check_call(samples, n, spikes_out)
        K.delta_encode(samples, n, self.delta, self._origin, self._level, self._started, spikes_out,
                       self._counters)

    def reset(self) -> None:
        """Forget the reference levels (the next sample of each channel sets them again)."""
        self._origin[:] = 0.0
        self._level[:] = 0
        self._started[:] = False
        self._counters[:] = 0

    def stats(self) -> dict[str, Any]:
        return {"skipped_nonfinite": int(self._counters[K.NONFINITE]),
                "clipped_jumps": int(self._counters[K.DELTA_CLIPPED])}

    @property
    def reference(self) -> np.ndarray:
        """Current reference level per channel (NaN before the channel's first sample)."""
        return np.where(self._started, self._origin + self._level * self.delta, np.nan)
