"""``lsl_events``: a session Source reading an rtsnn LSL event stream (format in :mod:`rtsnn.events.format`).

It is an :class:`rtsnn.stream.lsl_source.LslSource` (same resolve / loss / reconnect / clock
offset machinery and the same contract) whose inlet is pulled as int32, so the wire's
microsecond time channel (up to 2**31) arrives exactly, and whose rows are converted to the
session layout ``x, y, p, t_mod`` by :func:`rtsnn.events.kernels.wire_to_rows`. Value
repairs are left to the encoder (it drops and counts bad rows); timestamps are the
per-event LSL times plus liblsl's clock offset. Event streams fall silent legitimately (a
still scene), so the silence watchdog is off by default (``loss_timeout_s=None``): a lost
publisher is detected by liblsl itself.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pylsl

from rtsnn.events import kernels as K
from rtsnn.events.format import LSL_CHANNEL_FORMAT, LSL_TYPE, N_COLUMNS, N_WIRE, geometry_of
from rtsnn.stream import lslraw
from rtsnn.stream.lsl_source import LslSource, StreamMismatchError, _Conn

pull_chunk_i = ctypes.CFUNCTYPE(
    ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong,
    ctypes.c_double, ctypes.POINTER(ctypes.c_int32))(("lsl_pull_chunk_i", lslraw._lib))


class IntChunkPuller(lslraw.ChunkPuller):
    """:class:`rtsnn.stream.lslraw.ChunkPuller` pulling int32 (``data`` is int32)."""

    def __init__(self, inlet_handle: ctypes.c_void_p, n_channels: int, max_samples: int):
        super().__init__(inlet_handle, n_channels, max_samples)
        self.data = np.zeros((self.max_samples, self.n_channels), np.int32)
        self._data_ptr = ctypes.c_void_p(self.data.ctypes.data)

    def pull(self, max_n: int) -> int:
        n_values = pull_chunk_i(self.inlet_handle, self._data_ptr, self._ts_ptr, max_n * self.n_channels, max_n,
                                0.0, self._err_p)
        self.error = self._err.value
        return n_values // self.n_channels


class _EventConn(_Conn):
    def __init__(self, info: pylsl.StreamInfo, n_channels: int, max_samples: int, max_buflen: int):
        super().__init__(info, n_channels, max_samples, max_buflen)
        self.puller = IntChunkPuller(self.inlet.obj, n_channels, max_samples)


class LslEventSource(LslSource):
    """Rows ``x, y, p, t_mod`` (float32, 4 columns) from an LSL event stream.

    Args: ``name`` / ``source_id`` select the stream (type is always ``"Events"``);
    ``width`` / ``height`` (optional) must match the stream's declared geometry;
    ``max_samples`` caps one pull (events beyond it wait for the next tick: they are not
    lost while liblsl's buffer holds them); ``max_backlog_s`` drops events older than that
    (counted); ``loss_timeout_s`` as for :class:`LslSource` (default off).
    """

    def __init__(self, name: str | None = None, source_id: str | None = None, *, width: int | None = None,
                 height: int | None = None, resolve_timeout_s: float = 5.0, loss_timeout_s: float | None = None,
                 max_samples: int = 65536, max_backlog_s: float | None = 1.0, recover: bool = True):
        super().__init__(name, LSL_TYPE, source_id, n_channels=N_WIRE, channel_format=LSL_CHANNEL_FORMAT,
                         resolve_timeout_s=resolve_timeout_s, loss_timeout_s=loss_timeout_s,
                         max_samples=max_samples, max_backlog_s=max_backlog_s, recover=recover)
        self.n_channels = N_COLUMNS
        self.expected_geometry = (int(width), int(height)) if width is not None and height is not None else None
        self.geometry: tuple[int, int] | None = None
        self.events = 0
        self.dropped_backlog = 0

    def _check(self, info: pylsl.StreamInfo) -> None:
        self.n_channels = N_WIRE  # the wire has 4 int32 channels, the rows 4 float32 columns
        try:
            super()._check(info)
        finally:
            self.n_channels = N_COLUMNS

    def _connect(self, info: pylsl.StreamInfo) -> _Conn:
        conn = _EventConn(info, N_WIRE, self.max_samples, self._max_buflen)
        full = self._open_inlet(conn)
        geo = geometry_of(full)
        if self.expected_geometry is not None and geo is not None and geo != self.expected_geometry:
            conn.destroy()
            raise StreamMismatchError(f"event stream {info.name()!r} is {geo[0]}x{geo[1]} pixels, config expects "
                                      f"{self.expected_geometry[0]}x{self.expected_geometry[1]}")
        self.geometry = geo
        self.nominal_srate_hz = float(full.nominal_srate())
        return conn

    def _warm_up(self) -> None:
        raw = np.zeros((1, N_WIRE), np.int32)
        K.wire_to_rows(raw, np.zeros(1), 0, 0.0, np.zeros((1, N_COLUMNS), np.float32), np.zeros(1))

    def pull(self, samples_out: np.ndarray, timestamps_out: np.ndarray) -> int:
        conn = self._conn
        if conn is None:
            return 0
        cap = min(samples_out.shape[0], self.max_samples)
        puller = conn.puller
        n = puller.pull(cap)
        now = lslraw.local_clock()
        if puller.error != 0 or n == 0:
            self._nothing_pulled(conn, puller.error, now)
            return 0
        self._last_sample_s = now
        if self.in_gap:
            self.in_gap = False
            self.reconnects += 1
        # backlog: events are in time order, so the stale ones are a prefix
        start = 0
        if self.max_backlog_s != float("inf"):
            limit = now - self.max_backlog_s - self._offset_s
            if puller.timestamps[0] < limit:
                start = int(np.searchsorted(puller.timestamps[:n], limit))
            self.dropped_backlog += start
        k = n - start
        if start:
            K.wire_to_rows(puller.data[start:], puller.timestamps[start:], k, self._offset_s, samples_out,
                           timestamps_out)
        else:
            K.wire_to_rows(puller.data, puller.timestamps, k, self._offset_s, samples_out, timestamps_out)
        self.events += k
        return k

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update({"samples": self.events, "events": self.events, "dropped_backlog": self.dropped_backlog,
                    "dropped_samples": self.dropped_backlog,
                    "geometry": list(self.geometry) if self.geometry else None})
        return out
