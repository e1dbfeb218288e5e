"""Repairs applied to every chunk a source delivers: pure functions on numpy arrays.

``repair_chunk`` (numba) is what ``LslSource.pull`` runs per tick; ``repair_chunk_reference``
is a plain-numpy restatement, written differently on purpose (vectorised, masks and
running maxima instead of one loop), that the tests check the kernel against.

For each raw sample ``i`` (in arrival order) with timestamp ``t_i = raw_ts[i] + offset_s``
(``offset_s``: liblsl's clock correction, s):

1. backlog: if ``t_i < now_s - max_backlog_s`` the sample is stale (a consumer that fell
   behind); it is dropped and counted in ``DROPPED_BACKLOG``. Newer samples are kept.
2. non-finite values (NaN, +-inf), by ``policy``:
   ``POLICY_HOLD``: each bad value becomes the last finite value of its channel
   (``last_good``, starts at 0), counted per value in ``REPAIRED``;
   ``POLICY_ZERO``: bad values become 0, counted per value in ``REPAIRED``;
   ``POLICY_DROP``: a sample with any bad value is dropped, counted in ``DROPPED_NONFINITE``.
   Finite values update ``last_good`` under every policy.
3. timestamps: with ``prev`` the timestamp of the last delivered sample (``prev_ts[0]``,
   NaN before the first), a ``t_i < prev`` (or a non-finite ``t_i``) is counted in
   ``TS_BACKWARDS`` and repaired to ``prev`` (so downstream latency is never negative);
   a forward step ``t_i - prev > max_jump_s`` is counted in ``TS_JUMPS`` and kept.

Delivered samples are written compactly to ``out[:k]``, ``out_ts[:k]``; ``k`` is returned
and added to ``SAMPLES``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

POLICY_HOLD = 0
POLICY_ZERO = 1
POLICY_DROP = 2
POLICIES = {"hold": POLICY_HOLD, "zero": POLICY_ZERO, "drop": POLICY_DROP}

# indices into the int64 counters array
SAMPLES = 0
REPAIRED = 1
DROPPED_NONFINITE = 2
DROPPED_BACKLOG = 3
TS_BACKWARDS = 4
TS_JUMPS = 5
N_COUNTERS = 6


def new_counters() -> np.ndarray:
    return np.zeros(N_COUNTERS, np.int64)


@njit(cache=True, nogil=True)
def repair_chunk(raw, raw_ts, n, offset_s, now_s, max_backlog_s, max_jump_s, policy,
                 last_good, prev_ts, out, out_ts, counters):  # pragma: no cover - compiled
    """See the module docstring. raw float32[m, c], raw_ts float64[m], last_good float32[c],
    prev_ts float64[1] (state), out float32[>=n, c], out_ts float64[>=n], counters int64[6]."""
    n_ch = raw.shape[1]
    if out.shape[1] != n_ch or last_good.shape[0] != n_ch:
        raise ValueError("repair_chunk: out and last_good must have the raw chunk's channel count")
    if out.shape[0] < n or out_ts.shape[0] < n or raw.shape[0] < n or raw_ts.shape[0] < n:
        raise ValueError("repair_chunk: buffers shorter than n")
    oldest_ok = now_s - max_backlog_s
    prev = prev_ts[0]
    k = 0
    for i in range(n):
        t = raw_ts[i] + offset_s
        if t < oldest_ok:
            counters[DROPPED_BACKLOG] += 1
            continue
        if policy == POLICY_DROP:
            bad = False
            for c in range(n_ch):
                if not np.isfinite(raw[i, c]):
                    bad = True
                    break
            if bad:
                counters[DROPPED_NONFINITE] += 1
                continue
        for c in range(n_ch):
            v = raw[i, c]
            if np.isfinite(v):
                last_good[c] = v
                out[k, c] = v
            else:
                counters[REPAIRED] += 1
                if policy == POLICY_HOLD:
                    out[k, c] = last_good[c]
                else:
                    out[k, c] = 0.0
        if prev == prev:  # not NaN: a previous sample exists
            if not (t >= prev):  # also catches a NaN t
                counters[TS_BACKWARDS] += 1
                t = prev
            elif t - prev > max_jump_s:
                counters[TS_JUMPS] += 1
        elif not np.isfinite(t):
            counters[TS_BACKWARDS] += 1
            t = now_s
        out_ts[k] = t
        prev = t
        k += 1
    prev_ts[0] = prev
    counters[SAMPLES] += k
    return k


def repair_chunk_reference(raw, raw_ts, n, offset_s, now_s, max_backlog_s, max_jump_s, policy,
                           last_good, prev_ts, out, out_ts, counters) -> int:
    """Plain-numpy restatement of ``repair_chunk`` (same arguments, same in-place effects)."""
    x = np.asarray(raw[:n], np.float32)
    t = np.asarray(raw_ts[:n], np.float64) + offset_s
    keep = ~(t < now_s - max_backlog_s)
    counters[DROPPED_BACKLOG] += int(np.sum(~keep))
    x, t = x[keep], t[keep]
    finite = np.isfinite(x)
    if policy == POLICY_DROP:
        ok = finite.all(axis=1)
        counters[DROPPED_NONFINITE] += int(np.sum(~ok))
        x, t, finite = x[ok], t[ok], finite[ok]
    else:
        counters[REPAIRED] += int(np.sum(~finite))
    k = len(t)
    if k:
        if policy == POLICY_HOLD:
            # index of the last finite value at or before each row, -1 if none
            idx = np.where(finite, np.arange(k)[:, None], -1)
            idx = np.maximum.accumulate(idx, axis=0)
            filled = np.where(idx >= 0, x[np.maximum(idx, 0), np.arange(x.shape[1])[None, :]],
                              last_good[None, :])
        else:
            filled = np.where(finite, x, np.float32(0.0))
        if finite.any():
            last_row = np.maximum.accumulate(np.where(finite, np.arange(k)[:, None], -1), axis=0)[-1]
            has = last_row >= 0
            last_good[has] = x[last_row[has], np.flatnonzero(has)]
        # timestamps: the repaired series is the running maximum (NaN counts as backwards)
        start = prev_ts[0]
        if np.isnan(start):
            first = t[0] if np.isfinite(t[0]) else now_s
            counters[TS_BACKWARDS] += int(not np.isfinite(t[0]))
            rest = t[1:]
            base = first
            head = np.array([first])
        else:
            rest = t
            base = start
            head = np.array([], np.float64)
        safe = np.where(np.isfinite(rest), rest, -np.inf)
        running = np.maximum.accumulate(np.concatenate([[base], safe]))
        before = running[:-1]
        counters[TS_BACKWARDS] += int(np.sum(~(rest >= before)))
        repaired = np.concatenate([head, running[1:]])
        steps = np.diff(np.concatenate([[base] if head.size == 0 else [], repaired]))
        counters[TS_JUMPS] += int(np.sum(steps > max_jump_s))
        out[:k] = filled
        out_ts[:k] = repaired
        prev_ts[0] = repaired[-1]
    counters[SAMPLES] += k
    return k
