"""The ``event_pool`` encoder: camera events -> input spike counts on a coarse grid.

A sensor of ``width x height`` pixels is divided into ``grid_w x grid_h`` cells (cell of pixel
``(x, y)``: ``(x * grid_w // width, y * grid_h // height)``, so uneven divisions are allowed);
with ``polarity_channels`` the ON and OFF events of a cell go to separate inputs. Input index::

    c = (q * grid_h + gy) * grid_w + gx,   q = p (0 OFF, 1 ON) with polarity_channels, else 0
    n_out = grid_w * grid_h * (2 if polarity_channels else 1)

Before pooling, two optional per-pixel filters remove noise (equations in
:func:`rtsnn.events.kernels.pool_events`):

* background-activity filter (``ba_window_us`` > 0): an event is kept only if one of its 8
  neighbours had an event in the last ``ba_window_us`` (isolated events are sensor noise);
* refractory period (``refractory_us`` > 0): a pixel's events closer than ``refractory_us``
  to its previous kept event are dropped (hot pixels, bursts).

``max_count_per_tick`` (0: off) caps each input's count per tick. Input rows are the session
event layout ``x, y, p, t_mod`` of :mod:`rtsnn.events.format`; the encoder unwraps ``t_mod``
itself, using its own tick count to bridge silences longer than 8.4 s. Bad rows are dropped
and counted in :meth:`stats`, never an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtsnn.encode import EncoderBase, check_float, check_int
from rtsnn.events import kernels as K
from rtsnn.events.format import N_COLUMNS


class EventPoolEncoder(EncoderBase):
    """Events (x, y, p, t_mod rows) -> pooled spike counts per grid cell and polarity.

    Args:
        width, height: sensor size in pixels (events outside are dropped and counted).
        grid_w, grid_h: output grid (``1 <= grid_w <= width``, ``1 <= grid_h <= height``).
        polarity_channels: separate ON / OFF inputs (doubles ``n_out``).
        refractory_us: per-pixel refractory period (0: off).
        ba_window_us: background-activity filter window (0: off).
        max_count_per_tick: cap of one input's count per tick (0: no cap).
        dt_s: tick length, used to measure silences between ticks.
        n_channels: columns of the event rows (4).
    """

    def __init__(self, width: int, height: int, grid_w: int = 16, grid_h: int = 12, *,
                 polarity_channels: bool = True, refractory_us: int = 0, ba_window_us: int = 0,
                 max_count_per_tick: int = 0, dt_s: float = 1e-3, n_channels: int = N_COLUMNS):
        self.width = check_int("width", width, 1)
        self.height = check_int("height", height, 1)
        if self.width > 1 << 15 or self.height > 1 << 15:
            raise ValueError(f"width and height must be <= 32768 pixels; got {self.width}x{self.height}")
        self.grid_w = check_int("grid_w", grid_w, 1)
        self.grid_h = check_int("grid_h", grid_h, 1)
        if self.grid_w > self.width or self.grid_h > self.height:
            raise ValueError(f"the grid ({self.grid_w}x{self.grid_h}) must not be finer than the sensor "
                             f"({self.width}x{self.height})")
        if not isinstance(polarity_channels, bool):
            raise ValueError(f"polarity_channels must be true or false; got {polarity_channels!r}")
        self.polarity_channels = polarity_channels
        self.refractory_us = check_int("refractory_us", refractory_us, 0)
        self.ba_window_us = check_int("ba_window_us", ba_window_us, 0)
        for name, v in (("refractory_us", self.refractory_us), ("ba_window_us", self.ba_window_us)):
            if v >= K.T_MOD // 2:
                raise ValueError(f"{name} must be < {K.T_MOD // 2} us (8.4 s); got {v}")
        self.max_count_per_tick = check_int("max_count_per_tick", max_count_per_tick, 0)
        self.dt_s = check_float("dt_s", dt_s, gt=0.0)
        self.n_channels = check_int("n_channels", n_channels, N_COLUMNS)
        if self.n_channels != N_COLUMNS:
            raise ValueError(f"event rows have {N_COLUMNS} columns (x, y, p, t_mod); got n_channels={n_channels}")
        self.n_out = self.grid_w * self.grid_h * (2 if polarity_channels else 1)
        self._dt_us = int(round(self.dt_s * 1e6))
        # per-pixel time maps relative to a moving epoch (see kernels.pool_events): 2 bytes per pixel
        # when both windows fit in 16 bits with room to spare, else 4; zero = no event yet
        keep_us = max(self.refractory_us, self.ba_window_us)
        self._map_dtype = np.uint16 if keep_us <= K.MAP16_MAX_WINDOW_US else np.uint32
        # [y + 1, x + 1, 0]: last event, [.., 1]: last kept event (one cache line for both)
        self._tmap = np.zeros((self.height + 2, self.width + 2, 2) if keep_us else (1, 1, 2), self._map_dtype)
        # pixel -> input index parts (no divisions per event)
        self._cell_x = (np.arange(self.width, dtype=np.int64) * self.grid_w // self.width).astype(np.int32)
        self._cell_y = (np.arange(self.height, dtype=np.int64) * self.grid_h // self.height * self.grid_w).astype(np.int32)
        self._pol_stride = self.grid_w * self.grid_h if polarity_channels else 0
        self._tstate = np.array([-1, 0, 0], np.int64)
        self._counters = np.zeros(K.EV_N, np.int64)
        self._idle_ticks = 0

    def encode(self, samples: np.ndarray, n: int, spikes_out: np.ndarray) -> None:
        """Write this tick's pooled counts into ``spikes_out`` (see the module docstring)."""
        self._check_call(samples, n, spikes_out)
        gap_us = self._idle_ticks * self._dt_us if n else 0
        self._idle_ticks = 0 if n else self._idle_ticks + 1
        K.pool_events(samples, n, self.width, self.height, self._cell_x, self._cell_y, self._pol_stride,
                      self.refractory_us, self.ba_window_us, self.max_count_per_tick, gap_us, self._tmap,
                      self._tstate, spikes_out, self._counters)

    def channel_of(self, x: int, y: int, p: int) -> int:
        """Input index of an event at pixel (x, y) with polarity p."""
        q = int(p) if self.polarity_channels else 0
        return (q * self.grid_h + y * self.grid_h // self.height) * self.grid_w + x * self.grid_w // self.width

    def reset(self) -> None:
        self._tmap.fill(0)
        self._tstate[:] = (-1, 0, 0)
        self._counters[:] = 0
        self._idle_ticks = 0

    def stats(self) -> dict[str, Any]:
        c = self._counters
        return {
            "events_in": int(c[K.EV_IN]), "events_out": int(c[K.EV_OUT]), "dropped_bad": int(c[K.EV_BAD]),
            "dropped_background": int(c[K.EV_BA_DROPPED]), "dropped_refractory": int(c[K.EV_REFRACTORY_DROPPED]),
            "dropped_saturated": int(c[K.EV_SATURATED]), "ts_backwards": int(c[K.EV_TS_BACKWARDS]),
            "resyncs": int(c[K.EV_RESYNCS]),
        }
