"""The session's monitor channel: what a dashboard (or any LSL tool) can watch, published so
that the session never waits for a viewer.

Two halves, one per thread of the session:

* :class:`MonitorTap` runs in the **compute thread**. It is a Sink (``open`` / ``emit`` /
  ``stats`` / ``close``), so a session feeds it by appending it to its sinks: ``emit`` copies
  the recurrent layer's spikes of this tick (a view bound once), the decoded outputs and the
  target into one preallocated ring row. Three slice copies, no allocation, no lock, no
  call into liblsl: O(1) per tick whatever happens on the viewer side. The ring
  *overwrites* its oldest rows (a viewer wants the newest data); rows the reader had not
  taken yet when they were overwritten are counted as lost, never waited for.
* :class:`SessionMonitor` runs in the **I/O thread** (``monitor.service(session)`` every
  ``publish_period_s`` from its loop, or ``await monitor.run(session)`` as an asyncio task).
  Each call drains the tap and pushes to three LSL outlets, each piece after
  :data:`rtsnn.clock.SLACK` has room for it (out of the compute thread's ticks); liblsl sends
  from its own threads and keeps at most ``max_buffered_s`` per consumer, so a slow or absent
  dashboard costs nothing but dropped samples inside liblsl.

Outlets (``<name>`` = the session name; ``source_id`` = ``rtsnn-monitor:<host>:<pid>:<name>:<kind>``):

=====================  =====================  ===========================================
name                   type                   content
=====================  =====================  ===========================================
``<name>-monitor``     ``rtsnn.monitor``      string, irregular: one JSON status ~10 Hz
``<name>-raster``      ``rtsnn.raster``       int32, 1/dt Hz: the tick's spikes, bit-packed
``<name>-outputs``     ``rtsnn.outputs``      float32, 1/(dt*decimation) Hz: y..., target...
=====================  =====================  ===========================================

Raster packing: the first ``raster_neurons`` spikes ``z`` (0/1) of a tick are packed
little-endian bit order (neuron ``i`` is bit ``i % 8`` of byte ``i // 8``), the bytes padded
to a multiple of 4 and sent as ``ceil(raster_neurons / 32)`` int32 channels.

Why LSL and not a local socket: the session already lives on LSL, so discovery by session
name is ``resolve`` (no port or path convention, nothing left behind by a crash), any number
of dashboards may attach (and ``rtsnn record`` / LabRecorder can record the monitor next to
the data), the timestamps share the data's clock, and pushes are non-blocking hand-offs to
liblsl's sender threads with a bounded per-consumer buffer. A UDP socket would need a
registry for discovery, one sender per viewer and its own fragmentation of large frames.

Status JSON (``MONITOR_VERSION`` 1)::

    {"v": 1, "seq": n, "t_lsl": s, "session": name, "dt_s": dt, "uptime_s": s,
     "counters": {ticks, deadline_misses, skipped_ticks, gap_ticks, ...},
     "latency": {"bins_per_octave": 8, "min_ns": 10.0,
                 "series": {stage: {"p50_us", "p99_us", "max_us", "n",
                                    "bins": [[bin, count], ...]}}},   # since the last status
     "source": {...}, "teacher": {...}, "learner": {...},             # their stats()
     "monitor": {"raster_rows", "lost_rows", "outputs_pushed", "status_sent",
                 "service_us_max"}}

Latency bin ``b`` covers ``[min_ns * 2**(b/8), min_ns * 2**((b+1)/8))`` ns: the session's
64-bins-per-octave histograms summed over groups of 8 bins.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import time
from typing import Any

import numpy as np
import pylsl

from rtsnn.clock import SLACK
from rtsnn.runtime.metrics import BINS_PER_OCTAVE, MIN_NS, bin_upper_ns
from rtsnn.stream.ring import Ring

MONITOR_VERSION = 1
STATUS_TYPE = "rtsnn.monitor"
RASTER_TYPE = "rtsnn.raster"
OUTPUTS_TYPE = "rtsnn.outputs"
STATUS_BINS_PER_OCTAVE = 8
_COARSEN = BINS_PER_OCTAVE // STATUS_BINS_PER_OCTAVE
_copyto = np.copyto


def raster_words(n_neurons: int) -> int:
    """int32 channels needed for ``n_neurons`` bits."""
    return max(1, (int(n_neurons) + 31) // 32)


def pack_raster(z_rows: np.ndarray, n_words: int) -> np.ndarray:
    """Spike rows (n, n_neurons) of 0/1 -> (n, n_words) int32, bit ``i % 8`` of byte ``i // 8``."""
    n, n_neurons = z_rows.shape
    packed = np.zeros((n, 4 * n_words), np.uint8)
    if n:
        packed[:, : (n_neurons + 7) // 8] = np.packbits(z_rows != 0, axis=1, bitorder="little")
    return packed.view("<i4")


def unpack_raster(words: np.ndarray, n_neurons: int) -> np.ndarray:
    """(n, n_words) int32 -> (n, n_neurons) uint8 0/1; inverse of :func:`pack_raster`."""
    w = np.ascontiguousarray(words, dtype="<i4")
    return np.unpackbits(w.view(np.uint8), axis=1, bitorder="little")[:, :n_neurons]


def hist_bin_edges_ns(n_bins: int) -> np.ndarray:
    """Edges (n_bins + 1) of the status message's coarse latency bins, in ns."""
    return MIN_NS * np.exp2(np.arange(n_bins + 1, dtype=np.float64) / STATUS_BINS_PER_OCTAVE)


class MonitorTap:
    """Compute-thread half: a Sink whose ``emit`` copies one tick into an overwrite ring.

    ``bind(spikes, target)`` (before the first tick) gives it the views it copies from:
    ``spikes`` the recurrent layer's spike vector of the last step (float 0/1, n_rec; may be
    None: no raster), ``target`` the session's current target vector (n_out; may be None).
    ``capacity_ticks``: rows kept (an integer >= 64; any size: the ring indexes its
    ``capacity + 1`` slots with ``%``, not a mask), in a :class:`rtsnn.stream.ring.Ring` with
    drop policy ``"oldest"`` and structured rows. ``emit`` writes the slot ``head % slots`` in
    place and then advances ``head`` (what :meth:`Ring.slot` / :meth:`Ring.commit` do, inline:
    two index operations per tick and no method call).
    """

    def __init__(self, n_rec: int, n_out: int, raster_neurons: int | None = None, capacity_ticks: int = 2048):
        if n_rec < 0 or n_out < 1:
            raise ValueError(f"MonitorTap needs n_rec >= 0 and n_out >= 1, got n_rec={n_rec}, n_out={n_out}")
        if int(capacity_ticks) != capacity_ticks or capacity_ticks < 64:
            raise ValueError(f"capacity_ticks must be an integer >= 64, got {capacity_ticks}")
        rn = n_rec if raster_neurons is None else min(int(raster_neurons), n_rec)
        if rn < 0:
            raise ValueError(f"raster_neurons must be >= 0, got {raster_neurons}")
        self.n_rec, self.n_out, self.raster_neurons = int(n_rec), int(n_out), rn
        self.capacity = int(capacity_ticks)
        # one structured row per tick: the raster bits and the outputs + target; the reader keeps
        # capacity // 8 rows away from the writer (rows about to be overwritten are not copied)
        row = np.dtype([("z", np.uint8, (max(rn, 1),)), ("yt", np.float32, (2 * self.n_out,))])
        self.ring = Ring(self.capacity, 1, row, drop="oldest", read_margin=self.capacity // 8, name="MonitorTap")
        z, yt = self.ring.values["z"], self.ring.values["yt"]
        # per-slot views made once, so emit never builds a view object
        slots = self._slots = z.shape[0]  # capacity + 1 (the ring's spare slot)
        self._z_rows = [z[i, 0, :rn] for i in range(slots)]
        self._y_rows = [yt[i, 0, : self.n_out] for i in range(slots)]
        self._t_rows = [yt[i, 0, self.n_out:] for i in range(slots)]
        self._spikes: np.ndarray | None = None
        self._target: np.ndarray | None = None
        self.emitted = 0

    @property
    def head(self) -> int:
        """Rows written so far (compute thread)."""
        return self.ring.head

    def bind(self, spikes: np.ndarray | None, target: np.ndarray | None) -> None:
        if spikes is not None:
            spikes = np.asarray(spikes)
            if spikes.ndim != 1 or spikes.shape[0] < self.raster_neurons:
                raise ValueError(f"MonitorTap.bind: spikes must be a 1-D view with >= {self.raster_neurons} "
                                 f"entries, got shape {spikes.shape}")
            self._spikes = spikes[: self.raster_neurons] if self.raster_neurons else None
        if target is not None:
            target = np.asarray(target)
            if target.shape != (self.n_out,):
                raise ValueError(f"MonitorTap.bind: target must have shape ({self.n_out},), got {target.shape}")
            self._target = target

    # -- Sink protocol (compute thread) -------------------------------------------------
    def open(self, channel_labels: list[str], units: list[str]) -> None:
        if len(channel_labels) != self.n_out:
            raise ValueError(f"MonitorTap: {len(channel_labels)} output labels for n_out={self.n_out}")

    def emit(self, values: np.ndarray, t_source: float) -> None:
        ring = self.ring
        head = ring.head
        i = head % self._slots  # Ring.slot() inline ("oldest": always a slot)
        if self._spikes is not None:
            _copyto(self._z_rows[i], self._spikes, "unsafe")  # copyto: no temporary view
        _copyto(self._y_rows[i], values, "unsafe")
        if self._target is not None:
            _copyto(self._t_rows[i], self._target, "unsafe")
        ring.head = head + 1  # Ring.commit() inline: published after the row is complete

    def stats(self) -> dict[str, Any]:
        return {"name": "monitor", "rows": self.head}

    def close(self) -> None:
        pass

    # -- reader side (I/O thread) ------------------------------------------------------
    def read_since(self, tail: int) -> tuple[int, int, np.ndarray, np.ndarray]:
        """Copy the rows written since row ``tail``: returns (first, end, z, yt).

        Rows older than ``capacity - capacity // 8`` behind the head are skipped (the writer
        may be about to overwrite them); rows overwritten while being copied are dropped
        after the copy (:meth:`rtsnn.stream.ring.Ring.read_since`). ``first - tail`` rows were
        lost. Allocates (I/O thread only).
        """
        first, head, rows, _ = self.ring.read_since(tail)
        return first, head, rows["z"][:, 0, :], rows["yt"][:, 0, :]


class SessionMonitor:
    """I/O-thread half: owns the tap and the three LSL outlets.

    ``session_name``: the name dashboards find it by; ``dt_s``: the tick; ``output_labels``:
    one per output; ``raster_neurons``: how many recurrent neurons the raster shows (the
    first ones; capped at ``n_rec``); ``output_decimation``: publish every k-th tick's
    outputs; ``status_hz``: status messages per second; ``publish_hz``: how often ``run``
    drains the tap.
    """

    def __init__(self, session_name: str, n_rec: int, n_out: int, dt_s: float,
                 output_labels: list[str] | None = None, raster_neurons: int = 1024,
                 output_decimation: int = 4, status_hz: float = 10.0, publish_hz: float = 30.0,
                 capacity_ticks: int = 2048, max_buffered_s: float = 2.0):
        if not session_name or not isinstance(session_name, str):
            raise ValueError(f"SessionMonitor: session_name must be a non-empty string, got {session_name!r}")
        if not dt_s > 0:
            raise ValueError(f"SessionMonitor: dt_s must be > 0, got {dt_s!r}")
        if output_decimation < 1:
            raise ValueError(f"SessionMonitor: output_decimation must be >= 1, got {output_decimation}")
        if not (status_hz > 0 and publish_hz > 0):
            raise ValueError(f"SessionMonitor: status_hz and publish_hz must be > 0, got {status_hz}, {publish_hz}")
        labels = list(output_labels) if output_labels else [f"y{i}" for i in range(n_out)]
        if len(labels) != n_out:
            raise ValueError(f"SessionMonitor: {len(labels)} output_labels for n_out={n_out}")
        self.name = session_name
        self.dt_s = float(dt_s)
        self.output_labels = labels
        self.output_decimation = int(output_decimation)
        self.status_period_s = 1.0 / status_hz
        self.publish_period_s = 1.0 / publish_hz
        self.max_buffered_s = float(max_buffered_s)
        self.tap = MonitorTap(n_rec, n_out, raster_neurons=raster_neurons, capacity_ticks=capacity_ticks)
        self.n_words = raster_words(self.tap.raster_neurons)
        self.key = f"{socket.gethostname()}:{os.getpid()}:{session_name}"
        self._outlets: dict[str, pylsl.StreamOutlet] = {}
        self._tail = 0
        self._next_status = 0.0
        self._prev_hist: np.ndarray | None = None
        self._t_open = 0.0
        self.counters = dict(raster_rows=0, lost_rows=0, outputs_pushed=0, status_sent=0, errors=0,
                             outputs_restamped=0)
        self._last_out_t = -math.inf  # LSL time of the newest output row pushed
        self.service_us_max = 0.0
        self.seq = 0

    @property
    def sink(self) -> MonitorTap:
        """The compute-thread Sink to append to the session's sinks."""
        return self.tap

    def source_id(self, kind: str) -> str:
        return f"rtsnn-monitor:{self.key}:{kind}"

    def lsl_streams(self) -> list[dict[str, str]]:
        """The three outlets ``open`` creates (see :mod:`rtsnn.protocols`)."""
        return [{"name": f"{self.name}-{suffix}", "type": type_, "direction": "out",
                 "source_id": self.source_id(suffix)}
                for suffix, type_ in (("monitor", STATUS_TYPE), ("raster", RASTER_TYPE), ("outputs", OUTPUTS_TYPE))]

    def attach(self, backend: Any, target: np.ndarray | None) -> None:
        """Bind the tap to ``backend``'s spike vector (``backend.spikes()`` or
        ``backend.network.spikes()``; none -> no raster) and the session's target buffer."""
        spikes = None
        for owner in (backend, getattr(backend, "network", None)):
            fn = getattr(owner, "spikes", None)
            if callable(fn):
                spikes = fn()
                break
        self.tap.bind(spikes if self.tap.raster_neurons else None, target)

    # ------------------------------------------------------------------ outlets
    def _info(self, suffix: str, type_: str, n_ch: int, srate: float, fmt: str) -> pylsl.StreamInfo:
        info = pylsl.StreamInfo(f"{self.name}-{suffix}", type_, n_ch, srate, fmt, self.source_id(suffix))
        desc = info.desc()
        m = desc.append_child("rtsnn_monitor")
        for key, val in (("version", MONITOR_VERSION), ("session", self.name), ("key", self.key),
                         ("pid", os.getpid()), ("host", socket.gethostname()), ("dt_s", repr(self.dt_s)),
                         ("n_rec", self.tap.n_rec), ("n_out", self.tap.n_out),
                         ("raster_neurons", self.tap.raster_neurons),
                         ("output_decimation", self.output_decimation)):
            m.append_child_value(key, str(val))
        labels = m.append_child("output_labels")
        for label in self.output_labels:
            labels.append_child_value("label", label)
        return info

    def open(self) -> None:
        """Create the outlets (blocking set-up; call before the session's first tick)."""
        if self._outlets:
            raise RuntimeError("SessionMonitor.open called twice")
        rate = 1.0 / self.dt_s
        buf = max(1, int(math.ceil(self.max_buffered_s)))
        status = pylsl.StreamOutlet(self._info("monitor", STATUS_TYPE, 1, 0.0, "string"), 0, buf * 20)
        raster = pylsl.StreamOutlet(self._info("raster", RASTER_TYPE, self.n_words, rate, "int32"), 0, buf)
        outputs = pylsl.StreamOutlet(self._info("outputs", OUTPUTS_TYPE, 2 * self.tap.n_out,
                                                rate / self.output_decimation, "float32"), 0, buf)
        self._outlets = {"monitor": status, "raster": raster, "outputs": outputs}
        self._t_open = time.monotonic()

    def close(self) -> None:
        self._outlets = {}

    # ------------------------------------------------------------------ I/O thread
    def service(self, session: Any, now_lsl: float | None = None) -> None:
        """Drain the tap to the raster / outputs outlets and, when due, push a status.

        ``session`` needs ``stats`` (a LatencyStats), ``counters`` (dict), ``source`` and
        optionally ``teacher`` / ``learner`` with ``stats()``. Never blocks on a consumer.
        """
        if not self._outlets:
            return
        slack = SLACK  # each piece waits for room before the compute thread's next wake-up
        slack.wait()
        t0 = time.perf_counter()
        now = pylsl.local_clock() if now_lsl is None else now_lsl
        first, head, z, yt = self.tap.read_since(self._tail)
        self.counters["lost_rows"] += first - self._tail
        self._tail = head
        n = head - first
        if n:
            if self.tap.raster_neurons:
                self._outlets["raster"].push_chunk(pack_raster(z, self.n_words), now)
            self.counters["raster_rows"] += n
            d = self.output_decimation
            k0 = (-first) % d  # rows whose global index is a multiple of d
            sel = yt[k0::d]
            if len(sel):
                t_last = now - (n - 1 - (k0 + d * (len(sel) - 1))) * self.dt_s
                # rows are stamped back from the service time, one tick apart; a compute thread
                # catching up after a stall produces more ticks than time passed, and the chunk
                # would start before the previous one ended: shift it to keep time increasing
                overlap = self._last_out_t + d * self.dt_s - (t_last - d * self.dt_s * (len(sel) - 1))
                if overlap > 1e-9:  # more than float rounding of back-to-back chunks
                    t_last += overlap
                    self.counters["outputs_restamped"] += len(sel)
                self._last_out_t = t_last
                self._outlets["outputs"].push_chunk(np.ascontiguousarray(sel), t_last)
                self.counters["outputs_pushed"] += len(sel)
        if time.monotonic() >= self._next_status:
            self._next_status = time.monotonic() + self.status_period_s
            slack.wait()
            self._outlets["monitor"].push_sample([json.dumps(self.status(session, now))], now)
            self.counters["status_sent"] += 1
        self.service_us_max = max(self.service_us_max, (time.perf_counter() - t0) * 1e6)

    def status(self, session: Any, now_lsl: float) -> dict[str, Any]:
        """The status message (see the module docstring); latency bins since the last call."""
        lat = session.stats
        hist = lat.hist.copy()
        prev = self._prev_hist if self._prev_hist is not None else np.zeros_like(hist)
        delta = hist - prev
        self._prev_hist = hist
        # every series at once and only over the band of bins that changed (this runs on the I/O
        # thread, and each ms it holds the GIL is a ms the compute thread may wait for it); the
        # same figures as percentiles_from_hist and a per-series loop over all bins
        used = np.flatnonzero(delta.any(axis=0))
        lo = int(used[0]) // _COARSEN * _COARSEN if used.size else 0
        hi = (int(used[-1]) // _COARSEN + 1) * _COARSEN if used.size else 0
        band = delta[:, lo:hi]
        coarse = band.reshape(band.shape[0], -1, _COARSEN).sum(axis=2)
        p50s, p99s = percentile_rows(band, (50.0, 99.0), lat.maxima, first_bin=lo)
        ever = hist.any(axis=1).tolist()
        counts = coarse.sum(axis=1).tolist()
        bins: list[list[list[int]]] = [[] for _ in lat.names]
        rows, cols = np.nonzero(coarse)
        for r, b, v in zip(rows.tolist(), (cols + lo // _COARSEN).tolist(), coarse[rows, cols].tolist()):
            bins[r].append([b, v])
        maxima = lat.maxima.tolist()
        series: dict[str, Any] = {}
        for i, name in enumerate(lat.names):
            series[name] = {"p50_us": _us(p50s[i]), "p99_us": _us(p99s[i]),
                            "max_us": _us(maxima[i]) if ever[i] else None,
                            "n": int(counts[i]), "bins": bins[i]}
        self.seq += 1
        out: dict[str, Any] = {
            "v": MONITOR_VERSION, "seq": self.seq, "t_lsl": now_lsl, "session": self.name, "dt_s": self.dt_s,
            "uptime_s": round(time.monotonic() - self._t_open, 3),
            "counters": {k: int(v) for k, v in dict(session.counters).items()},
            "latency": {"bins_per_octave": STATUS_BINS_PER_OCTAVE, "min_ns": MIN_NS, "series": series},
        }
        for part in ("source", "teacher", "learner"):
            obj = getattr(session, part, None)
            if obj is not None and hasattr(obj, "stats"):
                try:
                    out[part] = _jsonable(obj.stats())
                except Exception as err:  # a faulty stats() must not stop the monitor
                    out[part] = {"error": f"{type(err).__name__}: {err}"}
                    self.counters["errors"] += 1
        out["monitor"] = {**self.counters, "service_us_max": round(self.service_us_max, 1)}
        return out

    async def run(self, session: Any) -> None:
        """Service every ``publish_period_s`` until cancelled (run it as an asyncio task)."""
        loop_t = time.monotonic()
        while True:
            try:
                self.service(session)
            except Exception:  # never let a viewer-side problem end the session's I/O loop
                self.counters["errors"] += 1
            loop_t += self.publish_period_s
            delay = loop_t - time.monotonic()
            if delay < 0:
                loop_t = time.monotonic()
                delay = 0.0
            await asyncio.sleep(delay)


def percentile_rows(counts: np.ndarray, qs: tuple[float, ...], max_ns: np.ndarray,
                    first_bin: int = 0) -> list[list[float]]:
    """:func:`rtsnn.runtime.metrics.percentiles_from_hist` of every row of ``counts`` at once:
    for each q, per row the upper edge of the bin holding the ``max(1, ceil(q / 100 * total))``-th
    value, capped at the row's exact maximum ``max_ns``; NaN for an empty row. ``counts`` may be
    a band of the histogram's bins starting at bin ``first_bin`` (every count outside it zero).
    Returns one list (one float per row) for each q."""
    totals = counts.sum(axis=1)
    cdf = np.cumsum(counts, axis=1)
    out = []
    for q in qs:
        rank = np.maximum(1, np.ceil(q / 100.0 * totals))
        b = (cdf < rank[:, None]).sum(axis=1) + first_bin  # = searchsorted(cdf_row, rank, "left")
        val = np.minimum(bin_upper_ns(b), max_ns)
        out.append(np.where(totals > 0, val, np.nan).tolist())
    return out


def _us(ns: float) -> float | None:
    return round(ns / 1000.0, 2) if ns == ns else None


def _jsonable(obj: Any) -> Any:
    """Stats dicts as plain JSON values (numpy scalars -> Python, NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)
