"""Several chip steps per session tick.

A session tick of ``dt_s`` can run as ``K = steps_per_tick`` chip steps of ``dt_s / K``
(the chip's time constants are in steps, so ``tau / (dt_s / K)`` steps each). The tick's
event counts ``c`` (per input channel) are spread evenly over its ``K`` steps::

    c_k = floor(c / K) + (1 if k < c mod K else 0)        k = 0..K-1,  sum_k c_k = c

and the tick's output is the chip's readout after its last step. Why: hidden spikes reach
Xylo's output neurons one step late, so with ``K = 1`` a decoder's output lags its input by
a whole tick (on 100 ms bins that costs a velocity decoder much of its R^2); with ``K``
steps the lag is ``dt_s / K``. A tick may also carry up to ``15 K`` events per channel
instead of 15.
"""

from __future__ import annotations

import numpy as np

MAX_STEPS_PER_TICK = 64


def check_steps_per_tick(k) -> int:
    """``k`` as an int in 1..MAX_STEPS_PER_TICK, else ValueError naming the range."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_STEPS_PER_TICK:
        raise ValueError(f"steps_per_tick must be an int in 1..{MAX_STEPS_PER_TICK}, got {k!r}")
    return int(k)


def spread_counts(x: np.ndarray, steps_per_tick: int) -> np.ndarray:
    """Tick counts ``x`` (..., T, n_in), non-negative integers -> step counts (..., T*K, n_in)
    (module docstring); ``K = 1`` returns ``x`` itself."""
    k = check_steps_per_tick(steps_per_tick)
    x = np.asarray(x)
    if k == 1:
        return x
    base = np.floor_divide(x, k)
    rem = x - base * k
    out = np.empty(x.shape[:-2] + (x.shape[-2] * k, x.shape[-1]), dtype=np.result_type(x.dtype, np.int32))
    for j in range(k):
        out[..., j::k, :] = base + (rem > j)
    return out


def tick_rows(n_steps: int, steps_per_tick: int) -> slice:
    """Indices of each tick's last step in a recording of ``n_steps`` chip steps."""
    k = check_steps_per_tick(steps_per_tick)
    if n_steps % k:
        raise ValueError(f"{n_steps} steps are not a whole number of ticks of {k} steps")
    return slice(k - 1, None, k)
