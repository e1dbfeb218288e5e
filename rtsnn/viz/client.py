"""Reading side of the monitor channel, without Qt: discovery and non-blocking pulls.

:func:`discover` finds a running session's monitor outlets over LSL (by session name or a
``source_id`` prefix; the newest when several match). :class:`MonitorClient` owns the three
inlets and turns what arrives into fixed-size display buffers:

* ``raster``: (raster_neurons, raster_cols) uint8, column ``c`` = one tick, newest on the
  right once :meth:`raster_image` rolls it;
* ``out_t`` / ``out_v``: the last ``output_window_s`` of (y..., target...) samples;
* ``statuses``: the recent status messages (dicts), and ``lat_window``: per latency series
  the coarse histogram summed over the last ``latency_window_s``.

``poll()`` never waits (timeouts 0) so a GUI frame is never held by the session.
"""

from __future__ import annotations

from rtsnn.errors import RtsnnValueError

import collections
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pylsl

try:  # pylsl >= 1.17 keeps its exceptions in pylsl.util, not at the top level
    from pylsl.util import LostError
except ImportError:  # pragma: no cover - older layout
    LostError = pylsl.LostError  # type: ignore[attr-defined]

from rtsnn.runtime.monitor import OUTPUTS_TYPE, RASTER_TYPE, STATUS_TYPE, raster_words, unpack_raster


class MonitorNotFoundError(RtsnnValueError):
    """No session monitor answered the resolve."""


@dataclass
class MonitorStreams:
    key: str
    session: str
    status: pylsl.StreamInfo
    raster: pylsl.StreamInfo | None
    outputs: pylsl.StreamInfo | None
    meta: dict[str, str] = field(default_factory=dict)
    output_labels: list[str] = field(default_factory=list)


def _meta(info: pylsl.StreamInfo) -> tuple[dict[str, str], list[str]]:
    node = info.desc().child("rtsnn_monitor")
    meta: dict[str, str] = {}
    child = node.first_child()
    while not child.empty():
        if child.name() != "output_labels":
            meta[child.name()] = child.child_value()
        child = child.next_sibling()
    labels = []
    lab = node.child("output_labels").child("label")
    while not lab.empty():
        labels.append(lab.child_value())
        lab = lab.next_sibling("label")
    return meta, labels


def _quote(value: str, what: str) -> str:
    if "'" in value:
        raise ValueError(f"{what} must not contain a single quote, got {value!r}")
    return f"'{value}'"


def discover(session: str | None = None, source_id: str | None = None, timeout_s: float = 5.0) -> MonitorStreams:
    """Resolve a session's monitor streams; raises :class:`MonitorNotFoundError`."""
    pred = f"type='{STATUS_TYPE}'"
    if session:
        pred += f" and name={_quote(session + '-monitor', 'session')}"
    if source_id:
        pred += f" and starts-with(source_id,{_quote(source_id, 'source_id')})"
    deadline = time.monotonic() + timeout_s
    found: list[pylsl.StreamInfo] = []
    while not found:
        left = deadline - time.monotonic()
        if left <= 0:
            what = f"session {session!r}" if session else (f"source_id {source_id!r}" if source_id else "any session")
            raise MonitorNotFoundError(f"no rtsnn session monitor ({what}) found over LSL within {timeout_s} s; "
                                       f"is the session running with its monitor enabled?")
        # minimum 0: wait the whole slice so that every matching session answers
        found = pylsl.resolve_bypred(pred, 0, min(0.5, max(left, 0.05)))
    # full infos (desc) come with the inlet; pick the newest monitor
    best = max(found, key=lambda i: i.created_at())
    sid = best.source_id()
    if not sid.endswith(":monitor"):
        raise MonitorNotFoundError(f"unexpected monitor source_id {sid!r}")
    key_prefix = sid[: -len(":monitor")]

    def by_id(kind: str, type_: str) -> pylsl.StreamInfo | None:
        res = pylsl.resolve_bypred(f"type='{type_}' and source_id={_quote(key_prefix + ':' + kind, 'source_id')}",
                                   1, max(1.0, deadline - time.monotonic()))
        return res[0] if res else None

    return MonitorStreams(key=key_prefix, session=best.name()[: -len("-monitor")], status=best,
                          raster=by_id("raster", RASTER_TYPE), outputs=by_id("outputs", OUTPUTS_TYPE))


class MonitorClient:
    """Inlets for one session's monitor plus the dashboard's display buffers."""

    def __init__(self, streams: MonitorStreams, raster_window_s: float = 1.0, output_window_s: float = 5.0,
                 latency_window_s: float = 5.0, history_s: float = 120.0, open_timeout_s: float = 5.0):
        self.streams = streams
        self.status_inlet = pylsl.StreamInlet(streams.status, max_buflen=5, recover=False)
        full = self.status_inlet.info(open_timeout_s)
        streams.meta, streams.output_labels = _meta(full)
        m = streams.meta
        self.dt_s = float(m.get("dt_s", "0.001"))
        self.n_rec = int(m.get("n_rec", "0"))
        self.n_out = int(m.get("n_out", "1"))
        self.raster_neurons = int(m.get("raster_neurons", "0"))
        self.output_decimation = int(m.get("output_decimation", "1"))
        self.output_labels = streams.output_labels or [f"y{i}" for i in range(self.n_out)]
        self.n_words = raster_words(self.raster_neurons)

        self.raster_inlet = (pylsl.StreamInlet(streams.raster, max_buflen=2, recover=False)
                             if streams.raster is not None and self.raster_neurons else None)
        self.outputs_inlet = (pylsl.StreamInlet(streams.outputs, max_buflen=2, recover=False)
                              if streams.outputs is not None else None)
        self.raster_cols = max(8, int(round(raster_window_s / self.dt_s)))
        self.raster = np.zeros((max(self.raster_neurons, 1), self.raster_cols), np.uint8)
        self._raster_col = 0
        self._rbuf = np.zeros((4096, self.n_words), np.int32)
        self.output_window_s = float(output_window_s)
        n_keep = max(16, int(round(output_window_s / (self.dt_s * self.output_decimation))))
        self.out_t = np.full(n_keep, np.nan)
        self.out_v = np.full((n_keep, 2 * self.n_out), np.nan, np.float32)
        self._obuf = np.zeros((1024, 2 * self.n_out), np.float32)
        self.latency_window_s = latency_window_s
        self._lat_hist: collections.deque[tuple[float, dict[str, np.ndarray]]] = collections.deque()
        self.lat_window: dict[str, np.ndarray] = {}
        self.lat_bins_per_octave = 8
        self.lat_min_ns = 10.0
        self.statuses: collections.deque[dict[str, Any]] = collections.deque(maxlen=int(history_s * 12))
        self.last_status: dict[str, Any] | None = None
        self.counts = dict(raster_rows=0, outputs=0, statuses=0, bad_status=0, lost=0)
        self.last_rx = time.monotonic()
        self.lost = False

    # ------------------------------------------------------------------ pulls
    def poll(self) -> bool:
        """Pull whatever arrived (never waits); True when anything new came in."""
        got = False
        try:
            got |= self._poll_raster()
            got |= self._poll_outputs()
            got |= self._poll_status()
        except LostError:
            if not self.lost:
                self.counts["lost"] += 1
            self.lost = True
        if got:
            self.last_rx = time.monotonic()
            self.lost = False
        return got

    def _poll_raster(self) -> bool:
        if self.raster_inlet is None:
            return False
        got = False
        while True:
            _, ts = self.raster_inlet.pull_chunk(0.0, self._rbuf.shape[0], dest_obj=self._rbuf)
            n = len(ts)
            if n == 0:
                return got
            got = True
            self.counts["raster_rows"] += n
            rows = unpack_raster(self._rbuf[:n], self.raster_neurons)  # (n, neurons)
            if n >= self.raster_cols:
                self.raster[:, :] = rows[-self.raster_cols:].T
                self._raster_col = 0
            else:
                c = self._raster_col
                first = min(n, self.raster_cols - c)
                self.raster[:, c:c + first] = rows[:first].T
                if first < n:
                    self.raster[:, : n - first] = rows[first:].T
                self._raster_col = (c + n) % self.raster_cols
            if n < self._rbuf.shape[0]:
                return got

    def _poll_outputs(self) -> bool:
        if self.outputs_inlet is None:
            return False
        got = False
        while True:
            _, ts = self.outputs_inlet.pull_chunk(0.0, self._obuf.shape[0], dest_obj=self._obuf)
            n = len(ts)
            if n == 0:
                return got
            got = True
            self.counts["outputs"] += n
            keep = len(self.out_t)
            n_use = min(n, keep)
            self.out_t = np.roll(self.out_t, -n_use)
            self.out_v = np.roll(self.out_v, -n_use, axis=0)
            self.out_t[-n_use:] = np.asarray(ts)[-n_use:]
            self.out_v[-n_use:] = self._obuf[n - n_use:n]
            if n < self._obuf.shape[0]:
                return got

    def _poll_status(self) -> bool:
        samples, ts = self.status_inlet.pull_chunk(0.0, 256)
        for s in samples:
            try:
                msg = json.loads(s[0])
                if not isinstance(msg, dict) or msg.get("v") != 1:
                    raise ValueError("not a version-1 status")
            except ValueError:
                self.counts["bad_status"] += 1
                continue
            self._add_status(msg)
        return bool(samples)

    def _add_status(self, msg: dict[str, Any]) -> None:
        self.counts["statuses"] += 1
        self.last_status = msg
        self.statuses.append(msg)
        lat = msg.get("latency", {})
        self.lat_bins_per_octave = int(lat.get("bins_per_octave", 8))
        self.lat_min_ns = float(lat.get("min_ns", 10.0))
        t = float(msg.get("t_lsl", 0.0))
        arrays: dict[str, np.ndarray] = {}
        for name, s in lat.get("series", {}).items():
            bins = s.get("bins") or []
            if not bins:
                continue
            b = np.asarray(bins, dtype=np.int64)
            arr = np.zeros(int(b[:, 0].max()) + 1, np.int64)
            arr[b[:, 0]] = b[:, 1]
            arrays[name] = arr
        self._lat_hist.append((t, arrays))
        while self._lat_hist and self._lat_hist[0][0] < t - self.latency_window_s:
            self._lat_hist.popleft()
        window: dict[str, np.ndarray] = {}
        for _, arrs in self._lat_hist:
            for name, arr in arrs.items():
                acc = window.get(name)
                if acc is None or len(acc) < len(arr):
                    grown = np.zeros(len(arr), np.int64)
                    if acc is not None:
                        grown[: len(acc)] = acc
                    acc = grown
                acc[: len(arr)] += arr
                window[name] = acc
        self.lat_window = window

    # ------------------------------------------------------------------ views
    def raster_image(self) -> np.ndarray:
        """(neurons, cols) with the newest tick in the last column."""
        return np.roll(self.raster, -self._raster_col, axis=1)

    def status_age_s(self) -> float | None:
        if self.last_status is None:
            return None
        return pylsl.local_clock() - float(self.last_status.get("t_lsl", 0.0))

    def history(self, path: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(t_lsl, value) of a numeric field of the statuses, e.g. ('counters', 'deadline_misses')."""
        ts, vs = [], []
        for msg in self.statuses:
            v: Any = msg
            for p in path:
                v = v.get(p) if isinstance(v, dict) else None
            if isinstance(v, bool):
                v = float(v)
            if isinstance(v, (int, float)):
                ts.append(float(msg.get("t_lsl", 0.0)))
                vs.append(float(v))
        return np.asarray(ts), np.asarray(vs)

    def close(self) -> None:
        for inlet in (self.status_inlet, self.raster_inlet, self.outputs_inlet):
            if inlet is not None:
                try:
                    inlet.close_stream()
                except Exception:  # noqa: BLE001 - closing must not fail the caller
                    pass
