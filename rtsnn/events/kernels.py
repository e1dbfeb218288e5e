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
TS_EPOCH = 2  # epoch of the per-pixel time maps (us): a map holds t - epoch + 1, 0 = no event yet
TS_N = 3

# per-pixel time maps are uint16 when the longest filter window is at most this (us), else uint32
MAP16_MAX_WINDOW_US = 16383


@njit(cache=True, nogil=True)
def rebase_time_map(m, shift):
    """Move a per-pixel time map to an epoch ``shift`` us later: ``s <- s - shift`` if
    ``s > shift`` else 0 (times before the new epoch become "no event yet")."""
    flat = m.reshape(-1)
    for i in range(flat.shape[0]):
        s = np.int64(flat[i])
        flat[i] = s - shift if s > shift else 0


@njit(cache=True, nogil=True)
def pool_events(samples, n, width, height, cell_x, cell_y, pol_stride, refractory_us, ba_window_us,
                max_count, gap_us, tmap, tstate, out, counters):
    """Spatial pooling of one tick's events into spike counts, with two filters.

    For each row ``i < n`` of ``samples`` (float32 ``x, y, p, t_mod``):

    1. validity: x, y, p, t finite; x, y integers with ``0 <= x < width``, ``0 <= y < height``;
       ``p`` 0 or 1; ``0 <= t_mod < T_MOD``. Otherwise dropped and counted in ``EV_BAD``.
    2. time unwrap: ``d = (t_mod - last_mod) mod T_MOD``; ``t = last + d``, except that a
       ``d > T_MOD - BACKWARD_TOL_US`` is a small backwards step (``t = last``, counted), and for
       the first event of a call with ``gap_us >= T_MOD / 2`` (a long silence measured by the tick
       clock) ``t = last + d + k * T_MOD`` with ``k = round((gap_us - d) / T_MOD)`` (>= 0).
       So ``t`` never decreases.
    3. background-activity filter (``ba_window_us > 0``): the event passes iff one of its 8
       neighbours had an event (kept or not) at a time ``>= t - ba_window_us``; every event then
       stores ``t`` as the pixel's last event, ``tmap[y + 1, x + 1, 0]`` (padded by one pixel).
    4. refractory (``refractory_us > 0``): the event passes iff ``t - last_pass >= refractory_us``,
       ``last_pass = tmap[y + 1, x + 1, 1]`` holding the pixel's last event that passed 3 and 4.
    5. ``out[c] += 1`` with ``c = p * pol_stride + cell_y[y] + cell_x[x]`` (the encoder passes
       ``cell_x[x] = x * grid_w // width``, ``cell_y[y] = (y * grid_h // height) * grid_w`` and
       ``pol_stride = grid_w * grid_h`` with polarity channels, else 0); with ``max_count > 0``
       a channel stops at ``max_count``.

    Time map: ``tmap`` (``(height + 2, width + 2, 2)``, uint16 or uint32, zero-filled at the
    start; the two times of a pixel share a cache line) holds
    ``s = t - E + 1`` for an epoch ``E = tstate[TS_EPOCH]``, 0 meaning "no event yet". When
    ``t - E + 1`` would exceed the dtype's range the maps are rebased (:func:`rebase_time_map`)
    to ``E' = t - max(ba_window_us, refractory_us)``; the entries that become 0 then lie more than
    both windows in the past, and since ``t`` never decreases they can never pass a window test
    again, so the results equal those of unbounded integer times. ``out`` (float32, ``n_out``) is
    overwritten. Times are microseconds.
    """
    for c in range(out.shape[0]):
        out[c] = 0.0
    map_max = np.int64(np.iinfo(tmap.dtype).max)
    keep_us = np.int64(max(ba_window_us, refractory_us))
    use_ba = ba_window_us > 0
    use_rf = refractory_us > 0
    last_full = tstate[TS_LAST_FULL]
    last_mod = tstate[TS_LAST_MOD]
    epoch = tstate[TS_EPOCH]
    n_bad = 0
    n_ba = 0
    n_rf = 0
    n_back = 0
    n_sat = 0
    n_out = 0
    n_resync = 0
    first = True
    fw = np.float32(width)
    fh = np.float32(height)
    for i in range(n):
        xf = samples[i, 0]
        yf = samples[i, 1]
        pf = samples[i, 2]
        tf = samples[i, 3]
        # NaN fails every comparison; +-inf fails the range tests
        if not (xf >= 0.0 and xf < fw and yf >= 0.0 and yf < fh and tf >= 0.0 and tf < T_MOD
                and (pf == 0.0 or pf == 1.0)):
            n_bad += 1
            continue
        x = np.int64(xf)
        y = np.int64(yf)
        tm = np.int64(tf)
        if x != xf or y != yf or tm != tf:
            n_bad += 1
            continue
        # unwrap
        if last_full < 0:
            t = np.int64(T_START) + tm
            epoch = t - keep_us  # maps are all "no event yet" before the first event
        else:
            d = (tm - last_mod) & (T_MOD - 1)
            if first and gap_us >= T_MOD // 2:
                k = np.int64(round((gap_us - d) / T_MOD))
                if k < 0:
                    k = 0
                t = last_full + d + k * T_MOD
                n_resync += 1
            elif d > T_MOD - BACKWARD_TOL_US:
                t = last_full
                n_back += 1
            else:
                t = last_full + d
        first = False
        last_full = t
        last_mod = tm
        tr = t - epoch + 1
        if tr > map_max:
            new_epoch = t - keep_us
            rebase_time_map(tmap, new_epoch - epoch)
            epoch = new_epoch
            tr = t - epoch + 1
        if use_ba:
            thr = tr - ba_window_us
            if thr < 1:
                thr = 1
            r0 = tmap[y]
            r1 = tmap[y + 1]
            r2 = tmap[y + 2]
            m = max(max(max(r0[x, 0], r0[x + 1, 0]), max(r0[x + 2, 0], r1[x, 0])),
                    max(max(r1[x + 2, 0], r2[x, 0]), max(r2[x + 1, 0], r2[x + 2, 0])))
            r1[x + 1, 0] = tr
            if np.int64(m) < thr:
                n_ba += 1
                continue
        if use_rf:
            s = np.int64(tmap[y + 1, x + 1, 1])
            if s != 0 and tr - s < refractory_us:
                n_rf += 1
                continue
            tmap[y + 1, x + 1, 1] = tr
        c = cell_y[y] + cell_x[x]
        if pf == 1.0:
            c += pol_stride
        if max_count > 0 and out[c] >= max_count:
            n_sat += 1
            continue
        out[c] += 1.0
        n_out += 1
    tstate[TS_LAST_FULL] = last_full
    tstate[TS_LAST_MOD] = last_mod
    tstate[TS_EPOCH] = epoch
    counters[EV_IN] += n
    counters[EV_OUT] += n_out
    counters[EV_BAD] += n_bad
    counters[EV_BA_DROPPED] += n_ba
    counters[EV_REFRACTORY_DROPPED] += n_rf
    counters[EV_TS_BACKWARDS] += n_back
    counters[EV_SATURATED] += n_sat
    counters[EV_RESYNCS] += n_resync


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
