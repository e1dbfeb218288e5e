"""Publish recorded events as an rtsnn LSL event stream (``rtsnn events publish FILE``).

Events are sent in chunks of ``chunk_us`` of camera time, one event per LSL sample
(int32 ``x, y, p, t_us``, see :mod:`rtsnn.events.format`), each with its own LSL timestamp
``t0 + (t - t_first) / speed``. Chunks are released at absolute deadlines on the LSL clock
(the timestamp of their last event), so the stream does not drift however long it runs;
``speed=inf`` sends as fast as liblsl accepts. With ``loop`` the recording repeats, its
times shifted by whole recording lengths (plus one chunk) so they keep increasing.
"""

from __future__ import annotations

import zipfile

import ctypes
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pylsl

from rtsnn.events.format import EVENT_DTYPE, N_WIRE, WIRE_T_MOD, check_events, lsl_stream_info
from rtsnn.stream import lslraw

log = logging.getLogger(__name__)

push_chunk_itnp = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_int32)(
    ("lsl_push_chunk_itnp", lslraw._lib))


@dataclass
class LoadedEvents:
    events: np.ndarray
    width: int
    height: int
    source: str
    repairs: dict[str, int]
    format: str = "npy"


def events_of_stream(st) -> np.ndarray:
    """The :data:`EVENT_DTYPE` array of a recording's ``Events`` stream (channels x, y, p;
    timestamps the camera time in s, as the rtsnn-dvs recording formats write it)."""
    out = np.empty(st.n_samples, EVENT_DTYPE)
    out["t"] = np.rint(st.time_stamps * 1e6)
    out["x"], out["y"], out["p"] = st.time_series[:, 0], st.time_series[:, 1], st.time_series[:, 2]
    return out


def load_events(path: str | Path, width: int | None = None, height: int | None = None) -> LoadedEvents:
    """Events of a file: ``.npy`` structured arrays natively; EVT2 / EVT3 / DAT / AEDAT4 through
    the recording layer (:func:`rtsnn.recording.open_recording`), whose event formats a plugin
    registers (rtsnn-dvs; without it the layer's error names the plugin). The file's stream of
    type ``Events`` (x, y, p; ``width`` / ``height`` in its header) is the one read."""
    path = str(path)
    if path.lower().endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # an .npz named .npy: a zip
            raise ValueError(f"{path}: not a readable .npy event array ({err})") from None
        ev = check_events(arr, f"{path}: array")
        w = width or (int(ev["x"].max()) + 1 if len(ev) else 1)
        h = height or (int(ev["y"].max()) + 1 if len(ev) else 1)
        return LoadedEvents(ev, int(w), int(h), Path(path).name, {})
    from rtsnn.recording import open_recording

    rec = open_recording(path)
    streams = [s for s in rec.streams if s.info.type == "Events" and s.info.channel_count == 3]
    if not streams:
        have = ", ".join(f"{s.name!r} ({s.info.type or 'no type'})" for s in rec.streams) or "(none)"
        raise ValueError(f"{path}: no event stream (type 'Events', channels x, y, p) in the recording; streams: {have}")
    st = streams[0]
    ev = events_of_stream(st)
    extra = st.info.extra
    w = width or (int(extra["width"]) if extra.get("width", "").isdigit() else None) or (
        int(ev["x"].max()) + 1 if len(ev) else 1)
    h = height or (int(extra["height"]) if extra.get("height", "").isdigit() else None) or (
        int(ev["y"].max()) + 1 if len(ev) else 1)
    repairs: dict[str, int] = {}
    for r in rec.repairs:
        repairs[r.kind] = repairs.get(r.kind, 0) + (int(r.detail) if r.detail.isdigit() else 1)
    return LoadedEvents(ev, int(w), int(h), Path(path).name, repairs, extra.get("event_format", ""))


def summarize(path: str, loaded: LoadedEvents) -> dict[str, Any]:
    """A JSON-ready summary of an event file (``rtsnn events info``): events, sensor size,
    duration (s, last - first event), mean rate (events/s), first / last time (us), fraction
    of ON events, repairs."""
    ev = loaded.events
    n = len(ev)
    dur = float(ev["t"][-1] - ev["t"][0]) * 1e-6 if n > 1 else 0.0
    return {"path": path, "format": loaded.format, "events": n, "width": loaded.width, "height": loaded.height,
            "duration_s": dur, "rate_ev_per_s": n / dur if dur > 0 else None,
            "t_first_us": int(ev["t"][0]) if n else None, "t_last_us": int(ev["t"][-1]) if n else None,
            "on_fraction": float(np.mean(ev["p"] > 0)) if n else None, "repairs": loaded.repairs}


class EventPublisher:
    """Streams an event array over LSL (see the module docstring)."""

    def __init__(self, events: np.ndarray, width: int, height: int, *, name: str = "rtsnn-events",
                 source: str = "", speed: float = 1.0, loop: bool = False, chunk_us: int = 1000,
                 source_id: str = ""):
        ev = check_events(events)
        if len(ev) == 0:
            raise ValueError("no events to publish (the file decoded to 0 events)")
        if not (speed > 0):
            raise ValueError(f"speed must be > 0 (or inf for as fast as possible); got {speed!r}")
        if int(chunk_us) < 1:
            raise ValueError(f"chunk_us must be >= 1; got {chunk_us!r}")
        t = ev["t"]
        order_bad = int(np.count_nonzero(np.diff(t) < 0))
        if order_bad:
            log.warning("%d events are out of time order; publishing them sorted by time", order_bad)
            ev = ev[np.argsort(t, kind="stable")]
        self.events = ev
        self.width, self.height = int(width), int(height)
        self.speed = float(speed)
        self.loop = bool(loop)
        self.chunk_us = int(chunk_us)
        self.info = lsl_stream_info(name, width, height, source, source_id)
        self.outlet: pylsl.StreamOutlet | None = None
        t_rel = ev["t"] - ev["t"][0]
        self._t_rel = t_rel
        self.span_us = int(t_rel[-1]) + self.chunk_us  # one loop's length
        self._bounds = np.searchsorted(t_rel, np.arange(self.chunk_us, self.span_us + self.chunk_us, self.chunk_us),
                                       side="left")
        self.reordered = order_bad
        self.sent = 0
        self.chunks = 0
        self.loops_done = 0
        self.max_late_s = 0.0

    def open(self) -> None:
        self.outlet = pylsl.StreamOutlet(self.info, chunk_size=0, max_buffered=360)

    def wait_for_consumer(self, timeout_s: float) -> bool:
        assert self.outlet is not None
        return bool(self.outlet.wait_for_consumers(timeout_s))

    def run(self, duration_s: float | None = None, stop=None) -> dict[str, Any]:
        """Publish until the recording ends (or ``duration_s`` of LSL time passes when looping,
        or ``stop()`` returns true). Returns a JSON-ready summary."""
        if self.outlet is None:
            self.open()
        assert self.outlet is not None
        handle = self.outlet.obj
        ev = self.events
        inv_speed = 0.0 if math.isinf(self.speed) else 1.0 / self.speed
        wire = np.zeros((max(int(np.max(np.diff(np.concatenate([[0], self._bounds])))), 1), N_WIRE), np.int32)
        stamps = np.zeros(wire.shape[0], np.float64)
        t0 = lslraw.local_clock() + 0.01
        started = time.perf_counter()
        loop_k = 0
        while True:
            offset_us = loop_k * self.span_us
            lo = 0
            for hi in self._bounds:
                hi = int(hi)
                if hi > lo:
                    k = hi - lo
                    seg = ev[lo:hi]
                    wire[:k, 0] = seg["x"]
                    wire[:k, 1] = seg["y"]
                    wire[:k, 2] = seg["p"]
                    wire[:k, 3] = (seg["t"] + offset_us) % WIRE_T_MOD
                    if inv_speed:
                        stamps[:k] = t0 + (self._t_rel[lo:hi] + offset_us) * 1e-6 * inv_speed
                        deadline = stamps[k - 1]
                        wait = deadline - lslraw.local_clock()
                        if wait > 0:
                            time.sleep(wait)
                        else:
                            self.max_late_s = max(self.max_late_s, -wait)
                    else:
                        stamps[:k] = lslraw.local_clock()
                    rc = push_chunk_itnp(handle, ctypes.c_void_p(wire.ctypes.data), k * N_WIRE,
                                         ctypes.c_void_p(stamps.ctypes.data), 1)
                    if rc != 0:
                        raise RuntimeError(f"liblsl push_chunk failed with error {rc}")
                    self.sent += k
                    self.chunks += 1
                lo = hi
                if stop is not None and stop():
                    return self._summary(started)
                if duration_s is not None and lslraw.local_clock() - t0 >= duration_s:
                    return self._summary(started)
            self.loops_done += 1
            loop_k += 1
            if not self.loop:
                return self._summary(started)

    def _summary(self, started: float) -> dict[str, Any]:
        wall = time.perf_counter() - started
        return {"events_sent": int(self.sent), "chunks": int(self.chunks), "loops": int(self.loops_done),
                "wall_s": wall, "events_per_s": self.sent / wall if wall > 0 else None,
                "max_late_s": self.max_late_s, "reordered": self.reordered,
                "speed": "max" if math.isinf(self.speed) else self.speed,  # as rtsnn replay: strict JSON
                "width": self.width, "height": self.height}

    def close(self) -> None:
        self.outlet = None


def as_event_array(t_us, x, y, p) -> np.ndarray:
    out = np.zeros(len(t_us), EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = t_us, x, y, p
    return out
