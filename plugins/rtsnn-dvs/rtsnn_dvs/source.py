"""Session sources: ``dvs_file`` (a recording) and ``dvs_camera`` (a live iniVation camera).

Both deliver the session event rows ``x, y, p, t_mod`` (float32, 4 columns; see
:mod:`rtsnn.events.format`) with one LSL-clock timestamp per event, for the ``event_pool``
encoder.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import numpy as np

from rtsnn.events import kernels as EK
from rtsnn.events.format import N_COLUMNS
from rtsnn.stream import lslraw
from rtsnn.stream.speed import parse_speed

from .files import read_events

log = logging.getLogger(__name__)


class DvsFileSource:
    """Replays an event file (EVT2 / EVT3 / DAT / AEDAT4 / .npy) as a session source.

    With a finite ``speed`` each pull returns the events whose recording time, mapped onto
    the LSL clock from the moment of ``open`` (``t0 + (t - t_first) / speed``), is due; with
    ``speed='max'`` each pull returns the next ``max_events_per_pull`` events, stamped with the
    pull's time (deterministic: the same rows every run). ``pace='tick'`` (offline, for a
    session at ``pace: max``) releases at the k-th pull the events with recording time in
    ``[t_first + (k-1) dt_s, t_first + k dt_s)``, stamped ``(t - t_first)`` seconds: camera time
    maps onto ticks exactly and the same file gives the same rows on every run, however fast
    the session ticks. ``loop`` repeats the recording with times shifted by whole recording
    lengths. Events due but beyond the pull's capacity wait for the next pull and are counted
    in ``stats()['deferred']``.
    """

    def __init__(self, path: str, *, speed: float | str = 1.0, loop: bool = False,
                 max_events_per_pull: int = 65536, convention: str = "spec", pace: str = "clock",
                 dt_s: float = 1e-3):
        if pace not in ("clock", "tick"):
            raise ValueError(f"pace must be 'clock' (speed against the wall clock) or 'tick'; got {pace!r}")
        if not (isinstance(dt_s, (int, float)) and math.isfinite(dt_s) and dt_s > 0):
            raise ValueError(f"dt_s must be a finite number > 0; got {dt_s!r}")
        self.pace = pace
        self.dt_s = float(dt_s)
        self._dt_us = max(1, int(round(self.dt_s * 1e6)))
        self._k = 0
        self.path = str(path)
        self.speed = parse_speed(speed)
        self.loop = bool(loop)
        if int(max_events_per_pull) != max_events_per_pull or max_events_per_pull < 1:
            raise ValueError(f"max_events_per_pull must be a positive integer; got {max_events_per_pull!r}")
        self.max_events_per_pull = int(max_events_per_pull)
        self.convention = convention
        self.n_channels = N_COLUMNS
        self.width: int | None = None
        self.height: int | None = None
        self._t = self._x = self._y = self._p = None
        self._idx = 0
        self._loop_k = 0
        self._t0_s = 0.0
        self.events = 0
        self.loops = 0
        self.deferred = 0
        self.finished = False
        self.repairs: dict[str, int] = {}

    def open(self) -> None:
        rec = read_events(self.path, convention=self.convention)
        ev = rec.events
        if len(ev) == 0:
            raise ValueError(f"{self.path}: decoded to 0 events; nothing to replay")
        if np.any(np.diff(ev["t"]) < 0):
            ev = ev[np.argsort(ev["t"], kind="stable")]
        self._t = np.ascontiguousarray(ev["t"])
        self._x = np.ascontiguousarray(ev["x"])
        self._y = np.ascontiguousarray(ev["y"])
        self._p = np.ascontiguousarray(ev["p"])
        self.width = rec.width or int(self._x.max()) + 1
        self.height = rec.height or int(self._y.max()) + 1
        self.repairs = rec.repairs
        self._span_us = int(self._t[-1] - self._t[0]) + 1000
        rows = np.zeros((1, N_COLUMNS), np.float32)
        EK.events_to_rows(self._t, self._x, self._y, self._p, 0, 1, 0, int(self._t[0]), 0.0, 1.0, rows,
                          np.zeros(1))
        self._t0_s = lslraw.local_clock()

    def pull(self, samples_out: np.ndarray, timestamps_out: np.ndarray) -> int:
        if self._t is None or self.finished:
            return 0
        cap = min(samples_out.shape[0], self.max_events_per_pull)
        n_ev = self._t.shape[0]
        t_first = int(self._t[0])
        got = 0
        now = lslraw.local_clock()
        while got < cap:
            if self._idx >= n_ev:
                if not self.loop:
                    self.finished = True
                    break
                self._idx = 0
                self._loop_k += 1
                self.loops += 1
            offset = self._loop_k * self._span_us
            if self.pace == "tick":
                due_us = t_first + (self._k + 1) * self._dt_us - offset  # this tick's window end
                end = int(np.searchsorted(self._t, due_us, side="left"))
                if end <= self._idx:
                    break
            elif math.isinf(self.speed):
                end = n_ev
            else:
                due_us = t_first + int((now - self._t0_s) * self.speed * 1e6) - offset
                end = int(np.searchsorted(self._t, due_us, side="right"))
                if end <= self._idx:
                    break
            take = min(end - self._idx, cap - got)
            if self.pace == "tick":
                EK.events_to_rows(self._t, self._x, self._y, self._p, self._idx, take, offset, t_first, 0.0, 1.0,
                                  samples_out[got:], timestamps_out[got:])
            elif math.isinf(self.speed):
                EK.events_to_rows(self._t, self._x, self._y, self._p, self._idx, take, offset, t_first, now, 0.0,
                                  samples_out[got:], timestamps_out[got:])
            else:
                EK.events_to_rows(self._t, self._x, self._y, self._p, self._idx, take, offset, t_first,
                                  self._t0_s, 1.0 / self.speed, samples_out[got:], timestamps_out[got:])
            self._idx += take
            got += take
            if end - self._idx > 0 and got >= cap and not math.isinf(self.speed):
                self.deferred += end - self._idx
        if self.pace == "tick":
            self._k += 1
        self.events += got
        return got

    def stats(self) -> dict[str, Any]:
        return {"samples": self.events, "events": self.events, "loops": self.loops, "deferred": self.deferred,
                "finished": self.finished, "width": self.width, "height": self.height, "file_repairs": self.repairs}

    def close(self) -> None:
        self._t = None


class DvsCameraSource:
    """A live iniVation camera (DVS / DAVIS / DVXplorer) through dv-processing.

    ``open`` connects (``camera`` names one, e.g. ``"DVXplorer_DXA00093"``; empty: the first
    found) and starts a reader thread that calls ``getNextEventBatch`` and appends the events
    to a preallocated single-producer / single-consumer ring of ``buffer_events``; ``pull``
    drains it without locks. When the ring is full (the session stopped pulling) the
    incoming events that do not fit are dropped and counted. If the camera
    raises (unplugged), the thread reconnects with backoff 0.5 s doubling to 8 s (counted in
    ``reconnects`` / ``errors``) while the session goes on. Camera timestamps (us, host Unix
    time) are mapped onto the LSL clock with the offset measured at ``open``.

    Not exercised on hardware in this project's CI (no camera attached); the tests check the
    error when none is connected and drive the ring through a fake capture object.
    """

    def __init__(self, camera: str = "", *, buffer_events: int = 1 << 21, max_events_per_pull: int = 65536,
                 capture_factory: Any = None):
        if int(buffer_events) != buffer_events or buffer_events < 1024:
            raise ValueError(f"buffer_events must be an integer >= 1024; got {buffer_events!r}")
        self.camera = str(camera)
        self.n_channels = N_COLUMNS
        self.max_events_per_pull = int(max_events_per_pull)
        self._cap_n = int(buffer_events)
        self._t = np.zeros(self._cap_n, np.int64)
        self._x = np.zeros(self._cap_n, np.int16)
        self._y = np.zeros(self._cap_n, np.int16)
        self._p = np.zeros(self._cap_n, np.uint8)
        self._head = 0  # written by the reader thread (monotone count)
        self._tail = 0  # advanced by pull (monotone count)
        self.dropped_overflow = 0
        self.events = 0
        self.errors = 0
        self.reconnects = 0
        self.width: int | None = None
        self.height: int | None = None
        self._factory = capture_factory
        self._cap = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._offset_s = 0.0

    def _connect(self):
        if self._factory is not None:
            return self._factory(self.camera)
        try:
            import dv_processing as dv
        except ImportError:
            raise ValueError("dvs_camera needs dv-processing: pip install 'rtsnn-dvs[inivation]'") from None
        try:
            cam_mod = getattr(dv.io, "camera", None)
            if cam_mod is not None and hasattr(cam_mod, "discover"):  # dv-processing >= 2
                found = list(cam_mod.discover())
                if not found:
                    raise ValueError("no iniVation camera found (dv_processing.io.camera.discover() lists none); "
                                     "is one plugged in and readable (udev rules)?")
                return cam_mod.open(self.camera) if self.camera else cam_mod.open()
            return dv.io.CameraCapture(self.camera) if self.camera else dv.io.CameraCapture()  # dv-processing 1.x
        except (RuntimeError, IndexError) as err:
            raise ValueError(f"iniVation camera {self.camera or '(any)'} could not be opened: {err}") from None

    def open(self) -> None:
        self._cap = self._connect()
        try:
            w, h = self._cap.getEventResolution()
            self.width, self.height = int(w), int(h)
        except Exception:  # noqa: BLE001 - resolution is informational
            pass
        self._offset_s = lslraw.local_clock() - time.time()
        self._stop.clear()
        self._thread = threading.Thread(target=self._reader, name="dvs-camera", daemon=True)
        self._thread.start()

    def _append(self, t, x, y, p) -> None:
        n = len(t)
        if n > self._cap_n:  # keep the newest
            self.dropped_overflow += n - self._cap_n
            t, x, y, p, n = t[-self._cap_n:], x[-self._cap_n:], y[-self._cap_n:], p[-self._cap_n:], self._cap_n
        free = self._cap_n - (self._head - self._tail)
        if n > free:  # ring full: keep what fits (the newest of the batch); only pull moves the tail
            self.dropped_overflow += n - free
            t, x, y, p, n = t[n - free:], x[n - free:], y[n - free:], p[n - free:], free
        start = self._head % self._cap_n
        first = min(n, self._cap_n - start)
        for dst, src in ((self._t, t), (self._x, x), (self._y, y), (self._p, p)):
            dst[start:start + first] = src[:first]
            dst[:n - first] = src[first:]
        self._head += n  # publish last

    def _reader(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if self._cap is None:
                    self._cap = self._connect()
                    self.reconnects += 1
                    backoff = 0.5
                batch = self._cap.getNextEventBatch()
                if batch is None:
                    self._stop.wait(0.0005)
                    continue
                a = batch.numpy()
                if len(a):
                    self._append(a["timestamp"], a["x"], a["y"], (a["polarity"] != 0).astype(np.uint8))
            except Exception as err:  # noqa: BLE001 - never let the camera kill the session
                self.errors += 1
                log.error("camera %s failed (%s); reconnecting in %.1f s", self.camera or "(any)", err, backoff)
                self._cap = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2.0, 8.0)

    def pull(self, samples_out: np.ndarray, timestamps_out: np.ndarray) -> int:
        head, tail = self._head, self._tail
        n = min(head - tail, samples_out.shape[0], self.max_events_per_pull)
        if n <= 0:
            return 0
        start = tail % self._cap_n
        first = min(n, self._cap_n - start)
        EK.events_to_rows(self._t, self._x, self._y, self._p, start, first, 0, 0, self._offset_s, 1.0,
                          samples_out, timestamps_out)
        if n > first:
            EK.events_to_rows(self._t, self._x, self._y, self._p, 0, n - first, 0, 0, self._offset_s, 1.0,
                              samples_out[first:], timestamps_out[first:])
        self._tail = tail + n
        self.events += n
        return n

    def stats(self) -> dict[str, Any]:
        return {"samples": self.events, "events": self.events, "dropped_overflow": self.dropped_overflow,
                "errors": self.errors, "reconnects": self.reconnects, "buffered": self._head - self._tail,
                "width": self.width, "height": self.height}

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._cap = None
