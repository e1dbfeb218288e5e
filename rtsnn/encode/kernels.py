"""Numba kernels of the encoders (one tick at a time, write into preallocated buffers).

Every kernel reads the rows ``samples[:n]`` (float32, ``(max_samples, n_channels)``) that
arrived during one tick, updates the caller's state arrays in place and overwrites the
tick's output counts (float32). Each has a plain-numpy twin in :mod:`rtsnn.encode.reference`
that the tests compare against (exactly: the kernels use the same float64 operations in the
same order).

Non-finite input samples (NaN, +-inf) are never used as data: each kernel skips them and
counts them in slot 0 of its ``counters`` array (int64, owned by the caller).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# ---------------------------------------------------------------- counter slots
NONFINITE = 0  # every kernel: non-finite samples skipped

# threshold_cross
TC_SUPPRESSED = 1  # crossings that fell inside the refractory period (not counted)
TC_SPIKES = 2  # crossings counted
TC_N = 3

# bin_events
BIN_NONINTEGER = 1  # channel index with a fractional part
BIN_OUT_OF_RANGE = 2  # channel index < 0 or >= n_out
BIN_EVENTS = 3  # events counted
BIN_N = 4

# passthrough_sum
PT_NEGATIVE = 1  # negative counts clipped to 0
PT_SAMPLES = 2  # rows summed
PT_N = 3

# rate_encode
RATE_N = 1

# delta_encode
DELTA_CLIPPED = 1  # samples whose jump from the origin exceeded DELTA_MAX_STEPS deltas
DELTA_N = 2

# A jump of more than this many deltas from the origin is clipped (and counted): it keeps the
# integer level far from int64 overflow and the float64 level exact (< 2**53).
DELTA_MAX_STEPS = 1e15


# ---------------------------------------------------------------- threshold crossing
@njit(cache=True, nogil=True)
def threshold_cross(samples: np.ndarray, n: int, polarity: float, thresh: np.ndarray, prev: np.ndarray,
                    since: np.ndarray, refractory_samples: int, out: np.ndarray,
                    counters: np.ndarray) -> None:
    """Count threshold crossings per channel in ``samples[:n]``.

    With ``y = polarity * x`` (polarity -1 for negative-going crossings, +1 for positive) and
    ``T = thresh[c]`` (>= 0, in signal units; ``inf`` disables the channel), sample ``x[i]``
    crosses when ``y[i] >= T`` and ``y[i-1] < T``. ``prev[c]`` holds the last finite sample
    (NaN before the first), so a crossing split across two ticks is found. ``since[c]`` counts
    samples since the last counted crossing, saturating at ``refractory_samples``; a crossing is
    counted only when ``since[c] >= refractory_samples`` (so two counted crossings are at least
    ``refractory_samples`` samples apart), which also carries across ticks. Non-finite samples
    are skipped (``prev`` kept) but time still advances for the refractory period.
    """
    n_ch = out.shape[0]
    for c in range(n_ch):
        t = thresh[c]
        p = prev[c]
        s = since[c]
        count = 0
        for i in range(n):
            x = np.float64(samples[i, c])
            if s < refractory_samples:
                s += 1
            if not math.isfinite(x):
                counters[NONFINITE] += 1
                continue
            if polarity * x >= t and polarity * p < t:
                if s >= refractory_samples:
                    count += 1
                    s = 0
                else:
                    counters[TC_SUPPRESSED] += 1
            p = x
        prev[c] = p
        since[c] = s
        out[c] = count
        counters[TC_SPIKES] += count


@njit(cache=True, nogil=True)
def noise_collect(samples: np.ndarray, n: int, rows_done: int, rows_window: int, buf: np.ndarray,
                  fill: np.ndarray, counters: np.ndarray) -> int:
    """Append ``|x|`` of the finite samples to the per-channel noise buffer ``buf[c, fill[c]]``.

    Only rows while ``rows_done + i < rows_window`` are taken (the window is counted in rows,
    finite or not); returns how many rows were consumed. Non-finite samples are counted in
    ``counters[NONFINITE]`` and not stored, so ``fill[c]`` may end below ``rows_window``.
    """
    take = min(n, rows_window - rows_done)
    if take < 0:
        take = 0
    n_ch = buf.shape[0]
    for i in range(take):
        for c in range(n_ch):
            x = samples[i, c]
            if math.isfinite(x):
                buf[c, fill[c]] = abs(x)
                fill[c] += 1
            else:
                counters[NONFINITE] += 1
    return take


@njit(cache=True, nogil=True)
def median_inplace(a: np.ndarray, m: int) -> float:
    """Median of ``a[:m]`` (finite float32 values), float64; reorders ``a[:m]`` in place.

    Quickselect (Hoare partition, median-of-three pivot) finds the element of rank ``m // 2``;
    for even ``m`` the lower middle is the maximum of the part left of it, and the median is
    ``0.5 * (lower + upper)`` in float64, as ``numpy.median`` computes it. NaN when ``m == 0``.
    Expected O(m), no allocation.
    """
    if m <= 0:
        return np.nan
    k = m // 2
    lo = 0
    hi = m - 1
    while hi > lo:
        mid = (lo + hi) // 2
        x0 = a[lo]
        x1 = a[mid]
        x2 = a[hi]
        # median of three as pivot value (an element of the range, so both scans stop)
        if x0 < x1:
            if x1 < x2:
                pivot = x1
            elif x0 < x2:
                pivot = x2
            else:
                pivot = x0
        else:
            if x0 < x2:
                pivot = x0
            elif x1 < x2:
                pivot = x2
            else:
                pivot = x1
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                tmp = a[i]
                a[i] = a[j]
                a[j] = tmp
                i += 1
                j -= 1
        # now a[lo..j] <= pivot, a[i..hi] >= pivot, a[j+1..i-1] == pivot
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    upper = np.float64(a[k])
    if m % 2 == 1:
        return upper
    lower = np.float64(a[0])
    for i in range(1, k):
        v = np.float64(a[i])
        if v > lower:
            lower = v
    return 0.5 * (lower + upper)


# ---------------------------------------------------------------- events and counts
@njit(cache=True, nogil=True)
def bin_events(samples: np.ndarray, n: int, column: int, out: np.ndarray, counters: np.ndarray) -> None:
    """``out[k]`` = number of rows ``i < n`` with ``samples[i, column] == k``.

    Each row is one event whose ``column`` holds the channel/unit index as a float. Indices that
    are non-finite, non-integer, or outside ``[0, len(out))`` are dropped and counted (slots
    NONFINITE, BIN_NONINTEGER, BIN_OUT_OF_RANGE); kept events are counted in BIN_EVENTS.
    """
    n_out = out.shape[0]
    for k in range(n_out):
        out[k] = 0.0
    for i in range(n):
        v = np.float64(samples[i, column])
        if not math.isfinite(v):
            counters[NONFINITE] += 1
        elif v != math.floor(v):
            counters[BIN_NONINTEGER] += 1
        elif v < 0.0 or v >= n_out:
            counters[BIN_OUT_OF_RANGE] += 1
        else:
            out[np.int64(v)] += 1.0
            counters[BIN_EVENTS] += 1


@njit(cache=True, nogil=True)
def passthrough_sum(samples: np.ndarray, n: int, out: np.ndarray, counters: np.ndarray) -> None:
    """``out[c] = sum_{i<n} max(samples[i, c], 0)`` (float32, rows added in order).

    Negative counts are clipped to 0 (PT_NEGATIVE), non-finite ones to 0 (NONFINITE).
    """
    n_ch = out.shape[0]
    for c in range(n_ch):
        out[c] = 0.0
    for i in range(n):
        for c in range(n_ch):
            x = samples[i, c]
            if not math.isfinite(x):
                counters[NONFINITE] += 1
            elif x < 0:
                counters[PT_NEGATIVE] += 1
            else:
                out[c] += x
    counters[PT_SAMPLES] += n


# ---------------------------------------------------------------- rate coding
@njit(cache=True, nogil=True)
def poisson_count(lam: float, u: float) -> int:
    """Poisson(``lam``) count by inversion of the CDF at the uniform ``u`` in [0, 1).

    Returns the smallest k with ``u <= F(k) = sum_{j<=k} exp(-lam) lam^j / j!``, the terms
    built by the recurrence ``p_k = p_{k-1} lam / k``. Stops when a term underflows to 0 (the
    CDF no longer grows in float64), so it always terminates.
    """
    p = math.exp(-lam)
    cdf = p
    k = 0
    while u > cdf and p > 0.0:
        k += 1
        p = p * lam / k
        cdf += p
    return k


@njit(cache=True, nogil=True)
def rate_encode(samples: np.ndarray, n: int, last: np.ndarray, has_value: np.ndarray, online: bool,
                mean: np.ndarray, var: np.ndarray, n_seen: np.ndarray, alpha_min: float, n_sd: float,
                low: np.ndarray, high: np.ndarray, signed: bool, lam_max: float, bernoulli: bool,
                uniforms: np.ndarray, out: np.ndarray, counters: np.ndarray) -> None:
    """Rate-code the latest sample of each channel into spike counts.

    1. Every finite sample updates ``last[c]`` (held across ticks without samples) and, when
       ``online``, the exponentially weighted mean/variance per channel with weight
       ``a = max(1 / n_seen, alpha_min)`` (a cumulative average over the first ``1/alpha_min``
       samples, then an EWMA of time constant ``1/alpha_min`` samples)::

           d = x - mean;  mean += a d;  var = (1 - a) (var + a d^2)

       and then ``low = mean - n_sd sqrt(var)``, ``high = mean + n_sd sqrt(var)``. With
       ``online`` false, ``low``/``high`` are fixed inputs.
    2. Fraction of the maximum rate from ``x = last[c]``: unsigned
       ``f = clip((x - low) / (high - low), 0, 1)`` into ``out[c]``; signed, with
       ``v = (x - (low + high) / 2) / ((high - low) / 2)``, ``clip(v, 0, 1)`` into ``out[2c]``
       and ``clip(-v, 0, 1)`` into ``out[2c + 1]``. ``f = 0`` when ``high <= low`` or before
       the channel's first sample.
    3. Count with mean ``lam = lam_max * f`` (``lam_max = rate_max_hz * dt_s``) from the
       uniform ``uniforms[j]`` of output j: Poisson by CDF inversion (:func:`poisson_count`) or,
       with ``bernoulli``, ``1 if u < min(lam, 1) else 0``.
    """
    n_ch = last.shape[0]
    for i in range(n):
        for c in range(n_ch):
            x = np.float64(samples[i, c])
            if not math.isfinite(x):
                counters[NONFINITE] += 1
                continue
            last[c] = x
            has_value[c] = True
            if online:
                n_seen[c] += 1
                a = 1.0 / n_seen[c]
                if a < alpha_min:
                    a = alpha_min
                d = x - mean[c]
                mean[c] += a * d
                var[c] = (1.0 - a) * (var[c] + a * d * d)
    for c in range(n_ch):
        if online and n_seen[c] > 0:
            sd = math.sqrt(var[c])
            low[c] = mean[c] - n_sd * sd
            high[c] = mean[c] + n_sd * sd
        f_pos = 0.0
        f_neg = 0.0
        span = high[c] - low[c]
        if has_value[c] and span > 0.0:
            x = last[c]
            if signed:
                v = (x - 0.5 * (low[c] + high[c])) / (0.5 * span)
                f_pos = min(max(v, 0.0), 1.0)
                f_neg = min(max(-v, 0.0), 1.0)
            else:
                f_pos = min(max((x - low[c]) / span, 0.0), 1.0)
        if signed:
            j = 2 * c
            out[j] = _count(lam_max * f_pos, uniforms[j], bernoulli)
            out[j + 1] = _count(lam_max * f_neg, uniforms[j + 1], bernoulli)
        else:
            out[c] = _count(lam_max * f_pos, uniforms[c], bernoulli)


@njit(cache=True, nogil=True)
def _count(lam: float, u: float, bernoulli: bool) -> int:
    if bernoulli:
        return 1 if u < min(lam, 1.0) else 0
    return poisson_count(lam, u)


# ---------------------------------------------------------------- send-on-delta
@njit(cache=True, nogil=True)
def delta_encode(samples: np.ndarray, n: int, delta: np.ndarray, origin: np.ndarray, level: np.ndarray,
                 started: np.ndarray, out: np.ndarray, counters: np.ndarray) -> None:
    """Send-on-delta: UP counts into ``out[2c]``, DOWN counts into ``out[2c + 1]``.

    The reference level of channel c is ``origin[c] + level[c] * delta[c]``; ``origin`` is the
    channel's first finite sample (``level`` 0). For each later finite sample ``x`` with
    ``q = (x - origin) / delta``: while ``x > ref + delta`` the level rises by one and one UP
    spike is sent, while ``x < ref - delta`` it falls by one with one DOWN spike. In closed form
    (same result, no loop, no drift from repeated additions)::

        level' = max(level, ceil(q) - 1)     (UP spikes:   level' - level)
        level' = min(level, floor(q) + 1)    (DOWN spikes: level - level')

    so afterwards ``|x - ref| <= delta``. ``|q|`` is clipped at DELTA_MAX_STEPS (counted in
    DELTA_CLIPPED); non-finite samples are skipped (NONFINITE).
    """
    n_ch = delta.shape[0]
    for j in range(out.shape[0]):
        out[j] = 0.0
    for i in range(n):
        for c in range(n_ch):
            x = np.float64(samples[i, c])
            if not math.isfinite(x):
                counters[NONFINITE] += 1
                continue
            if not started[c]:
                origin[c] = x
                level[c] = 0
                started[c] = True
                continue
            q = (x - origin[c]) / delta[c]
            if q > DELTA_MAX_STEPS:
                q = DELTA_MAX_STEPS
                counters[DELTA_CLIPPED] += 1
            elif q < -DELTA_MAX_STEPS:
                q = -DELTA_MAX_STEPS
                counters[DELTA_CLIPPED] += 1
            lv = level[c]
            up = np.int64(math.ceil(q)) - 1
            if up > lv:
                out[2 * c] += up - lv
                lv = up
            else:
                down = np.int64(math.floor(q)) + 1
                if down < lv:
                    out[2 * c + 1] += lv - down
                    lv = down
            level[c] = lv


# Robust noise SD of Gaussian noise from the median absolute value: median(|x|) / Phi^-1(0.75)
# (Quiroga, Nadasdy & Ben-Shaul 2004); Phi^-1(0.75) = 0.67449, rounded as in that paper.
MAD_TO_SD = 0.6745


@njit(cache=True, nogil=True)
def noise_sd_from_buffer(buf: np.ndarray, fill: np.ndarray, c_start: int, c_stop: int, min_fill: int,
                         sd_out: np.ndarray) -> None:
    """``sd_out[c] = median(buf[c, :fill[c]]) / MAD_TO_SD`` for ``c_start <= c < c_stop``.

    ``buf`` holds ``|x|``, so this is the median-absolute-value estimate of the noise SD (units
    of the signal). Channels with fewer than ``min_fill`` finite samples get NaN. Reorders the
    buffer rows in place.
    """
    for c in range(c_start, c_stop):
        if fill[c] < min_fill or fill[c] == 0:
            sd_out[c] = np.nan
        else:
            sd_out[c] = median_inplace(buf[c], fill[c]) / MAD_TO_SD
