"""Plain-numpy references of the kernels in :mod:`rtsnn.encode.kernels` (for tests, not speed).

Each takes the same inputs as its kernel, never mutates them, and returns the outputs and the
new state. They follow the kernels' docstrings literally (sample by sample where the semantics
are sequential, numpy elsewhere) with the same float64 arithmetic, so tests compare exactly.
"""

from __future__ import annotations

import math

import numpy as np

from rtsnn.encode import kernels as K


def threshold_cross_reference(samples, n, polarity, thresh, prev, since, refractory_samples, counters):
    """Returns ``(out, prev, since, counters)`` after one tick of :func:`~K.threshold_cross`."""
    x = samples[:n].astype(np.float64)
    prev, since, counters = prev.copy(), since.copy(), counters.copy()
    out = np.zeros(thresh.shape[0], np.float32)
    for c in range(thresh.shape[0]):
        finite = np.isfinite(x[:, c])
        counters[K.NONFINITE] += int((~finite).sum())
        last_finite = prev[c]
        for i in range(n):
            if since[c] < refractory_samples:  # saturating sample counter
                since[c] += 1
            if not finite[i]:
                continue
            crossed = polarity * x[i, c] >= thresh[c] and polarity * last_finite < thresh[c]
            if crossed:
                if since[c] >= refractory_samples:
                    out[c] += 1
                    since[c] = 0
                else:
                    counters[K.TC_SUPPRESSED] += 1
            last_finite = x[i, c]
        prev[c] = last_finite
    counters[K.TC_SPIKES] += int(out.sum())
    return out, prev, since, counters


def noise_collect_reference(samples, n, rows_done, rows_window, buf, fill, counters):
    """Returns ``(rows_taken, buf, fill, counters)`` of :func:`~K.noise_collect`."""
    buf, fill, counters = buf.copy(), fill.copy(), counters.copy()
    take = max(0, min(n, rows_window - rows_done))
    block = samples[:take]
    for c in range(buf.shape[0]):
        col = block[:, c]
        good = np.abs(col[np.isfinite(col)])
        buf[c, fill[c]:fill[c] + good.size] = good
        fill[c] += good.size
        counters[K.NONFINITE] += col.size - good.size
    return take, buf, fill, counters


def median_reference(a, m) -> float:
    """``numpy.median`` of ``a[:m]`` in float64 (NaN when empty)."""
    if m <= 0:
        return float("nan")
    return float(np.median(a[:m].astype(np.float64)))


def bin_events_reference(samples, n, column, n_out, counters):
    """Returns ``(out, counters)`` of :func:`~K.bin_events`."""
    counters = counters.copy()
    v = samples[:n, column].astype(np.float64)
    finite = np.isfinite(v)
    integer = finite & (v == np.floor(np.where(finite, v, 0.0)))
    in_range = integer & (v >= 0) & (v < n_out)
    counters[K.NONFINITE] += int((~finite).sum())
    counters[K.BIN_NONINTEGER] += int((finite & ~integer).sum())
    counters[K.BIN_OUT_OF_RANGE] += int((integer & ~in_range).sum())
    counters[K.BIN_EVENTS] += int(in_range.sum())
    out = np.bincount(v[in_range].astype(np.int64), minlength=n_out).astype(np.float32)
    return out, counters


def passthrough_sum_reference(samples, n, counters):
    """Returns ``(out, counters)`` of :func:`~K.passthrough_sum`."""
    counters = counters.copy()
    x = samples[:n]
    finite = np.isfinite(x)
    counters[K.NONFINITE] += int((~finite).sum())
    counters[K.PT_NEGATIVE] += int((finite & (x < 0)).sum())
    counters[K.PT_SAMPLES] += n
    clean = np.where(finite & (x >= 0), x, np.float32(0.0)).astype(np.float32)
    out = np.zeros(samples.shape[1], np.float32)
    for row in clean:  # row by row in float32, the kernel's summation order
        out += row
    return out, counters


def poisson_count_reference(lam, u) -> int:
    """Inverse-CDF Poisson count, written out in plain Python floats."""
    p = math.exp(-lam)
    cdf = p
    k = 0
    while u > cdf and p > 0.0:
        k += 1
        p = p * lam / k
        cdf += p
    return k


def rate_encode_reference(samples, n, last, has_value, online, mean, var, n_seen, alpha_min, n_sd, low, high,
                          signed, lam_max, bernoulli, uniforms, counters):
    """Returns ``(out, state)`` of :func:`~K.rate_encode`; ``state`` is a dict of the new
    ``last, has_value, mean, var, n_seen, low, high, counters``."""
    last, has_value = last.copy(), has_value.copy()
    mean, var, n_seen = mean.copy(), var.copy(), n_seen.copy()
    low, high, counters = low.copy(), high.copy(), counters.copy()
    x_all = samples[:n].astype(np.float64)
    for i in range(n):
        x = x_all[i]
        finite = np.isfinite(x)
        counters[K.NONFINITE] += int((~finite).sum())
        last[finite] = x[finite]
        has_value |= finite
        if online:
            n_seen[finite] += 1
            for c in np.flatnonzero(finite):
                a = max(1.0 / n_seen[c], alpha_min)
                d = x[c] - mean[c]
                mean[c] += a * d
                var[c] = (1.0 - a) * (var[c] + a * d * d)
    if online:
        ok = n_seen > 0
        sd = np.sqrt(var)
        low = np.where(ok, mean - n_sd * sd, low)
        high = np.where(ok, mean + n_sd * sd, high)
    span = high - low
    valid = has_value & (span > 0)
    safe_span = np.where(valid, span, 1.0)
    if signed:
        v = (last - 0.5 * (low + high)) / (0.5 * safe_span)
        f = np.stack([np.clip(v, 0.0, 1.0), np.clip(-v, 0.0, 1.0)], axis=1).reshape(-1)
        f = np.where(np.repeat(valid, 2), f, 0.0)
    else:
        f = np.where(valid, np.clip((last - low) / safe_span, 0.0, 1.0), 0.0)
    lam = lam_max * f
    if bernoulli:
        counts = (uniforms < np.minimum(lam, 1.0)).astype(np.float32)
    else:
        counts = np.array([poisson_count_reference(float(lj), float(uj)) for lj, uj in zip(lam, uniforms)],
                          np.float32)
    state = dict(last=last, has_value=has_value, mean=mean, var=var, n_seen=n_seen, low=low, high=high,
                 counters=counters)
    return counts, state


def delta_encode_reference(samples, n, delta, origin, level, started, counters):
    """Returns ``(out, origin, level, started, counters)`` of :func:`~K.delta_encode`,
    written as the literal loop "while x > ref + delta: ref += delta" on the integer level."""
    origin, level, started, counters = origin.copy(), level.copy(), started.copy(), counters.copy()
    n_ch = delta.shape[0]
    out = np.zeros(2 * n_ch, np.float32)
    for i in range(n):
        for c in range(n_ch):
            x = float(samples[i, c])
            if not math.isfinite(x):
                counters[K.NONFINITE] += 1
                continue
            if not started[c]:
                origin[c], level[c], started[c] = x, 0, True
                continue
            q = (x - origin[c]) / delta[c]
            if abs(q) > K.DELTA_MAX_STEPS:
                q = math.copysign(K.DELTA_MAX_STEPS, q)
                counters[K.DELTA_CLIPPED] += 1
            lv = int(level[c])
            # the level moves while q lies beyond lv +- 1; jump straight to the bound when far
            # away (a literal step-by-step loop could take 1e15 steps)
            if q > lv + 1:
                new = max(lv, math.ceil(q) - 1)
                out[2 * c] = np.float32(float(out[2 * c]) + (new - lv))
                lv = new
            elif q < lv - 1:
                new = min(lv, math.floor(q) + 1)
                out[2 * c + 1] = np.float32(float(out[2 * c + 1]) + (lv - new))
                lv = new
            level[c] = lv
    return out, origin, level, started, counters


def noise_sd_reference(buf, fill, c_start, c_stop, min_fill, sd):
    """Returns the new ``sd`` of :func:`~K.noise_sd_from_buffer` (``numpy.median`` per channel)."""
    sd = sd.copy()
    for c in range(c_start, c_stop):
        m = int(fill[c])
        sd[c] = np.nan if (m < min_fill or m == 0) else median_reference(buf[c], m) / K.MAD_TO_SD
    return sd
