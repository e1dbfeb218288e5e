"""Plain-Python restatements of :mod:`rtsnn.events.kernels`, for the agreement tests.

Written from the docstrings with different data structures on purpose: per-pixel times live
in dicts keyed by ``(x, y)`` (no padded arrays, no sentinel values), the time unwrap is
spelled out with Python integers, and the output is built with ``numpy.add.at``-free
explicit counting.
"""

from __future__ import annotations

import math

import numpy as np

from rtsnn.events.kernels import BACKWARD_TOL_US, T_MOD, T_START

NAMES = ("in", "out", "bad", "ba_dropped", "refractory_dropped", "ts_backwards", "saturated", "resyncs")


class PoolReference:
    """State of the reference pooling (the kernel keeps the same in arrays)."""

    def __init__(self, width: int, height: int, grid_w: int, grid_h: int, pol_channels: bool,
                 refractory_us: int, ba_window_us: int, max_count: int):
        self.width, self.height, self.grid_w, self.grid_h = width, height, grid_w, grid_h
        self.pol_channels = pol_channels
        self.refractory_us, self.ba_window_us, self.max_count = refractory_us, ba_window_us, max_count
        self.n_out = grid_w * grid_h * (2 if pol_channels else 1)
        self.last_event: dict[tuple[int, int], int] = {}
        self.last_pass: dict[tuple[int, int], int] = {}
        self.last_full: int | None = None
        self.last_mod = 0
        self.counts = dict.fromkeys(NAMES, 0)

    def _valid(self, row) -> tuple[int, int, int, int] | None:
        x, y, p, t = (float(v) for v in row)
        if not all(math.isfinite(v) for v in (x, y, p, t)):
            return None
        if not (x.is_integer() and y.is_integer() and t.is_integer() and p in (0.0, 1.0)):
            return None
        if not (0 <= x < self.width and 0 <= y < self.height and 0 <= t < T_MOD):
            return None
        return int(x), int(y), int(p), int(t)

    def _unwrap(self, tm: int, first: bool, gap_us: int) -> int:
        if self.last_full is None:
            return T_START + tm
        d = (tm - self.last_mod) % T_MOD
        if first and gap_us >= T_MOD // 2:
            self.counts["resyncs"] += 1
            return self.last_full + d + max(0, round((gap_us - d) / T_MOD)) * T_MOD
        if d > T_MOD - BACKWARD_TOL_US:
            self.counts["ts_backwards"] += 1
            return self.last_full
        return self.last_full + d

    def encode(self, rows: np.ndarray, gap_us: int = 0) -> np.ndarray:
        out = [0] * self.n_out
        first = True
        for row in rows:
            self.counts["in"] += 1
            ev = self._valid(row)
            if ev is None:
                self.counts["bad"] += 1
                continue
            x, y, p, tm = ev
            t = self._unwrap(tm, first, gap_us)
            first = False
            self.last_full, self.last_mod = t, tm
            if self.ba_window_us > 0:
                supported = any(
                    self.last_event.get((x + dx, y + dy), None) is not None
                    and self.last_event[(x + dx, y + dy)] >= t - self.ba_window_us
                    for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0))
                self.last_event[(x, y)] = t
                if not supported:
                    self.counts["ba_dropped"] += 1
                    continue
            if self.refractory_us > 0:
                prev = self.last_pass.get((x, y))
                if prev is not None and t - prev < self.refractory_us:
                    self.counts["refractory_dropped"] += 1
                    continue
                self.last_pass[(x, y)] = t
            gx, gy = x * self.grid_w // self.width, y * self.grid_h // self.height
            q = p if self.pol_channels else 0
            ch = (q * self.grid_h + gy) * self.grid_w + gx
            if self.max_count > 0 and out[ch] >= self.max_count:
                self.counts["saturated"] += 1
                continue
            out[ch] += 1
            self.counts["out"] += 1
        return np.array(out, np.float32)


def events_to_rows_reference(events: np.ndarray, offset_us: int, t0_us: int, t0_s: float, speed: float):
    """Decoded events -> (session rows, timestamps) as the file source delivers them."""
    rows = np.stack([events["x"].astype(np.float32), events["y"].astype(np.float32),
                     (events["p"] > 0).astype(np.float32),
                     ((events["t"] + offset_us) % T_MOD).astype(np.float32)], axis=1)
    ts = t0_s + (events["t"] + offset_us - t0_us) * 1e-6 * (1.0 / speed)
    return rows, ts


def rebase_time_map_reference(m: np.ndarray, shift: int) -> np.ndarray:
    """A per-pixel time map moved to an epoch ``shift`` us later (0 = no event yet), as a new array."""
    s = m.astype(object)
    return np.array([[[v - shift if v > shift else 0 for v in px] for px in row] for row in s], m.dtype) \
        if m.ndim == 3 else np.array([v - shift if v > shift else 0 for v in s.ravel()], m.dtype).reshape(m.shape)
