"""Numba kernels for event streams: pooling events into input spikes, and layout conversions.

Session rows are float32 ``(x, y, p, t_mod)`` (see :mod:`rtsnn.events.format`). Each kernel
writes into buffers the caller preallocated and updates caller-owned state arrays; each has a
plain-Python twin in :mod:`rtsnn.events.reference` that the tests compare against exactly.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

T_MOD = 1 << 24  # session rows carry the camera time modulo this (us)
BACKWARD_TOL_US = 1 << 20  # a modular step larger than T_MOD - this is a backwards step, not a 16 s jump
NEVER = -(1 << 62)  # "no event yet" in the per-pixel time maps
T_START = 1 << 40  # unwrapped time given to the first event (far from NEVER, far from overflow)

# pool_events counters
EV_IN = 0  # rows seen
EV_OUT = 1  # events counted into spikes
EV_BAD = 2  # rows with non-finite / non-integer / out-of-sensor coordinates or polarity not 0/1
EV_BA_DROPPED = 3  # events without a recent neighbour (background-activity filter)
EV_REFRACTORY_DROPPED = 4  # events within refractory_us of the pixel's last kept event
EV_TS_BACKWARDS = 5  # events whose time went backwards (clamped to the previous time)
EV_SATURATED = 6  # events not counted because their channel reached max_count this tick
EV_RESYNCS = 7  # long silences (>= T_MOD / 2 by the tick clock) bridged by the gap estimate
EV_N = 8

# tstate slots
TS_LAST_FULL = 0  # unwrapped time of the last valid event (us), -1 before any
TS_LAST_MOD = 1


@njit(cache=True, nogil=True)
def pool_events(samples, n, width, height, grid_w, grid_h, pol_channels, refractory_us, ba_window_us,
                max_count, gap_us, last_event, last_pass, tstate, out, counters):
    """Spatial pooling of one tick's events into spike counts, with two filters.

    For each row ``i < n`` of ``samples`` (float32 ``x, y, p, t_mod``):

    1. validity: x, y, p, t finite; x, y integers with ``0 <= x < width``, ``0 <= y < height``;
       ``p`` 0 or 1; ``0 <= t_mod < T_MOD``. Otherwise dropped and counted in ``EV_BAD``.
    2. time unwrap: ``d = (t_mod - last_mod) mod T_MOD``; ``t = last + d``, except that a
       ``d > T_MOD - BACKWARD_TOL_US`` is a small backwards step (``t = last``, counted), and for
       the first event of a call with ``gap_us >= T_MOD / 2`` (a long silence measured by the tick
       clock) ``t = last + d + k * T_MOD`` with ``k = round((gap_us - d) / T_MOD)`` (>= 0).
    3. background-activity filter (``ba_window_us > 0``): the event passes iff one of its 8
       neighbours had an event (kept or not) at a time ``>= t - ba_window_us``; every event then
       stores ``t`` in ``last_event`` (padded by one pixel: index ``[y + 1, x + 1]``).
    4. refractory (``refractory_us > 0``): the event passes iff ``t - last_pass[y, x] >=
       refractory_us``, ``last_pass`` holding the pixel's last event that passed 3 and 4.
    5. ``out[c] += 1`` with ``c = (q * grid_h + y * grid_h // height) * grid_w + x * grid_w // width``,
       ``q = p`` if ``pol_channels`` else 0; with ``max_count > 0`` a channel stops at ``max_count``.

    ``out`` (float32, ``n_out``) is overwritten. Times are microseconds.
    """
    for c in range(out.shape[0]):
        out[c] = 0.0
    last_full = tstate[TS_LAST_FULL]
    last_mod = tstate[TS_LAST_MOD]
    first = True
    counters[EV_IN] += n
    for i in range(n):
        xf = samples[i, 0]
        yf = samples[i, 1]
        pf = samples[i, 2]
        tf = samples[i, 3]
        if not (math.isfinite(xf) and math.isfinite(yf) and math.isfinite(pf) and math.isfinite(tf)):
            counters[EV_BAD] += 1
            continue
        if not (xf >= 0.0 and xf < width and yf >= 0.0 and yf < height and tf >= 0.0 and tf < T_MOD):
            counters[EV_BAD] += 1
            continue
        x = np.int64(xf)
        y = np.int64(yf)
        tm = np.int64(tf)
        if x != xf or y != yf or tm != tf or not (pf == 0.0 or pf == 1.0):
            counters[EV_BAD] += 1
            continue
        # unwrap
        if last_full < 0:
            t = np.int64(T_START) + tm
        else:
            d = (tm - last_mod) % T_MOD
            if first and gap_us >= T_MOD // 2:
                k = np.int64(round((gap_us - d) / T_MOD))
                if k < 0:
                    k = 0
                t = last_full + d + k * T_MOD
                counters[EV_RESYNCS] += 1
            elif d > T_MOD - BACKWARD_TOL_US:
                t = last_full
                counters[EV_TS_BACKWARDS] += 1
            else:
                t = last_full + d
        first = False
        last_full = t
        last_mod = tm
        # background activity
        if ba_window_us > 0:
            since = t - ba_window_us
            ok = (last_event[y, x] >= since or last_event[y, x + 1] >= since or last_event[y, x + 2] >= since
                  or last_event[y + 1, x] >= since or last_event[y + 1, x + 2] >= since
                  or last_event[y + 2, x] >= since or last_event[y + 2, x + 1] >= since
                  or last_event[y + 2, x + 2] >= since)
            last_event[y + 1, x + 1] = t
            if not ok:
                counters[EV_BA_DROPPED] += 1
                continue
        if refractory_us > 0:
            if t - last_pass[y, x] < refractory_us:
                counters[EV_REFRACTORY_DROPPED] += 1
                continue
            last_pass[y, x] = t
        q = np.int64(pf) if pol_channels else 0
        c = (q * grid_h + (y * grid_h) // height) * grid_w + (x * grid_w) // width
        if max_count > 0 and out[c] >= max_count:
            counters[EV_SATURATED] += 1
            continue
        out[c] += 1.0
        counters[EV_OUT] += 1
    tstate[TS_LAST_FULL] = last_full
    tstate[TS_LAST_MOD] = last_mod


# ---------------------------------------------------------------- layout conversions
@njit(cache=True, nogil=True)
def wire_to_rows(raw, raw_ts, n, offset_s, out, out_ts):
    """LSL wire rows (int32 ``x, y, p, t_us``) -> session rows (float32 ``x, y, p, t_us mod T_MOD``);
    timestamps shifted by ``offset_s`` (liblsl's clock correction). ``T_MOD`` divides the wire's
    2**31 modulus, so the reduction is consistent across wire wraps. Returns n."""
    for i in range(n):
        out[i, 0] = np.float32(raw[i, 0])
        out[i, 1] = np.float32(raw[i, 1])
        out[i, 2] = np.float32(raw[i, 2])
        out[i, 3] = np.float32(np.int64(raw[i, 3]) & (T_MOD - 1))
        out_ts[i] = raw_ts[i] + offset_s
    return n


@njit(cache=True, nogil=True)
def events_to_rows(t_us, x, y, p, start, n, offset_us, t0_us, t0_s, inv_speed, out, out_ts):
    """Decoded event columns ``[start, start + n)`` -> session rows. With ``t = t_us + offset_us``
    (``offset_us`` shifts a looped recording), ``t_mod = t mod T_MOD`` and the row timestamp is
    ``t0_s + (t - t0_us) * 1e-6 * inv_speed`` (a recording mapped onto the LSL clock)."""
    for k in range(n):
        i = start + k
        out[k, 0] = np.float32(x[i])
        out[k, 1] = np.float32(y[i])
        out[k, 2] = np.float32(1.0 if p[i] > 0 else 0.0)
        t = t_us[i] + offset_us
        out[k, 3] = np.float32(t & (T_MOD - 1))
        out_ts[k] = t0_s + (t - t0_us) * 1e-6 * inv_speed
    return n
