"""Replay recordings: over LSL with each stream's own timing, or straight into a session.

Timeline (``stream_times``), per stream, for ``timestamps``:

- ``raw``: the recorded timestamps as they are (sender clock).
- ``synced``: ``t + a_k + b_k t`` with ``(a_k, b_k)`` the least-squares line through the
  stream's ClockOffset measurements of clock segment ``k`` (pyxdf's ``synchronize_clocks``),
  then, for regular-rate streams only, dejittered: within each piece between gaps
  (> max(1 s, 5 / srate)) the timestamps are replaced by the least-squares line over the
  sample index. Irregular streams (markers, spikes) are never dejittered.

A *clock reset* (the sender's clock restarted: a backward step > ``RESET_BACKWARD_S``)
starts a new segment. In ``synced`` mode each segment is placed by its own clock offsets;
in ``raw`` mode (or when offsets cannot place it) the segment is spliced right after the
previous one, and the repair is reported. Small backward steps (jitter) become a running
maximum, counted. All streams are then rebased to one common ``t0`` (the earliest first
timestamp) so cross-stream offsets survive; gaps stay gaps.

Publishing (:class:`LslReplayer`) is paced by absolute deadlines
``deadline_k = start + rel_k / speed`` (``perf_counter_ns``; sleep, then spin the last
``spin_s``), so per-sample lateness never accumulates into drift. Each wake-up pushes, per
stream, every sample already due as one chunk, stamped with its intended LSL time
``lsl_start + rel / speed``. ``speed = inf`` publishes as fast as possible (no latency
test can be made from that) with timestamps ``lsl_start + rel``.

The digest is sha256 over, per stream (sorted by outlet name): the name, the sha256 of the
published values (numeric: little-endian bytes in the stream's format; strings: UTF-8 with a
4-byte length prefix) and the sha256 of the published relative times (float64, s since t0,
loop offsets included). It does not depend on chunking or wall-clock timing, so the same
file and options give the same digest on every run.

:class:`XdfFileSource` (entry point ``xdf_file``) is the session Source reading a recording
directly: with ``pace='tick'`` each ``pull`` releases the samples whose relative time falls
in the next ``dt_s`` window, independent of the wall clock, so a session's outputs are the
same on every run.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import struct
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtsnn.recording.xdf_reader import Recording, StreamData

log = logging.getLogger(__name__)

RESET_BACKWARD_S = 1.0
TICK_EPS_S = 1e-9
TIMESTAMP_MODES = ("raw", "synced")


# ---------------------------------------------------------------------------- timeline
def _clock_segments(times: np.ndarray, values: np.ndarray) -> list[slice]:
    """Split offset measurements where the collection time goes back or the offset jumps > 1 s."""
    if len(times) == 0:
        return []
    cut = np.flatnonzero((np.diff(times) < 0) | (np.abs(np.diff(values)) > RESET_BACKWARD_S)) + 1
    bounds = [0, *cut.tolist(), len(times)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = a + b x`` (b = 0 for one point or a degenerate x)."""
    if len(x) == 1 or np.ptp(x) == 0:
        return float(np.mean(y)), 0.0
    x0 = float(np.mean(x))
    xc = x - x0
    b = float(np.dot(xc, y - np.mean(y)) / np.dot(xc, xc))
    a = float(np.mean(y)) - b * x0
    return a, b


def stream_times(stream: StreamData, mode: str, rec: Recording) -> np.ndarray:
    """Monotone (non-decreasing) timestamps for replay; see the module docstring. Repairs go to ``rec``."""
    if mode not in TIMESTAMP_MODES:
        raise ValueError(f"timestamps must be one of {TIMESTAMP_MODES}, got {mode!r}")
    ts = np.array(stream.time_stamps, dtype=np.float64)
    n = len(ts)
    name = stream.name
    if n == 0:
        return ts
    bad = ~np.isfinite(ts)
    if bad.any():
        good = np.flatnonzero(~bad)
        if len(good) == 0:
            rec.repair("bad_timestamp", name, f"all {n} timestamps are non-finite; using 1/srate steps from 0")
            step = 1.0 / stream.info.nominal_srate_hz if stream.info.nominal_srate_hz > 0 else 0.0
            return np.arange(n) * step
        idx = np.maximum.accumulate(np.where(bad, -1, np.arange(n)))
        first = good[0]
        ts = np.where(idx >= 0, ts[np.maximum(idx, 0)], ts[first])
        rec.repair("bad_timestamp", name, f"{int(bad.sum())} non-finite timestamps set to the previous one")
    resets = (np.flatnonzero(np.diff(ts) < -RESET_BACKWARD_S) + 1).tolist()
    bounds = [0, *resets, n]
    segs = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    srate = stream.info.nominal_srate_hz
    step = 1.0 / srate if srate > 0 else 0.0
    placed = [False] * len(segs)
    if mode == "synced":
        csegs = _clock_segments(stream.clock_times, stream.clock_values)
        if not csegs:
            rec.repair("no_clock_offsets", name, "no clock offsets recorded; synced timestamps use the raw "
                                                 "clock", warn=False)
        for k, seg in enumerate(segs):
            if not csegs:
                break
            if len(csegs) == len(segs):
                cs = csegs[k]
            else:  # pair by time: the clock segment whose measurement times are nearest this segment
                lo, hi = ts[seg][0], ts[seg][-1]
                dist = [max(0.0, lo - stream.clock_times[c][-1], stream.clock_times[c][0] - hi) for c in csegs]
                cs = csegs[int(np.argmin(dist))]
            a, b = _line(stream.clock_times[cs], stream.clock_values[cs])
            ts[seg] = ts[seg] + (a + b * ts[seg])
            placed[k] = True
        if srate > 0:
            for seg in segs:
                t = ts[seg]
                gap = max(1.0, 5.0 / srate)
                cuts = np.flatnonzero(np.abs(np.diff(t)) > gap) + 1
                pb = [0, *cuts.tolist(), len(t)]
                for a0, b0 in zip(pb[:-1], pb[1:]):
                    if b0 - a0 >= 2:
                        k_idx = np.arange(b0 - a0, dtype=np.float64)
                        a, b = _line(k_idx, t[a0:b0])
                        t[a0:b0] = a + b * k_idx
                ts[seg] = t
    for k in range(1, len(segs)):
        prev_end = ts[segs[k - 1]][-1]
        start = ts[segs[k]][0]
        jump = start - prev_end
        if placed[k] and placed[k - 1] and jump >= -RESET_BACKWARD_S:
            rec.repair("clock_reset", name, f"clock reset at sample {segs[k].start}: segment placed by its clock "
                                            f"offsets ({jump:+.3f} s after the previous one)")
            continue
        ts[segs[k]] += (prev_end + step) - start
        how = "raw timestamps" if mode == "raw" else "clock offsets that cannot place it"
        rec.repair("clock_reset", name, f"clock reset at sample {segs[k].start}: timestamps jump by "
                                        f"{jump:+.3f} s; with {how} the segment is spliced right after the "
                                        f"previous one (cross-stream alignment after it is approximate)")
    back = np.diff(ts) < 0
    if back.any():
        rec.repair("ts_backwards", name, f"{int(back.sum())} timestamps earlier than their predecessor set to it",
                   warn=False)
        ts = np.maximum.accumulate(ts)
    return ts


@dataclass
class Timeline:
    """Selected streams with their replay times: ``rel[i]`` s since the common ``t0``."""

    streams: list[StreamData]
    abs_times: list[np.ndarray]
    rel: list[np.ndarray]
    t0: float
    duration_s: float
    period_s: float  # one loop: the duration plus one sample interval


def build_timeline(rec: Recording, names: list[str] | None = None, mode: str = "raw") -> Timeline:
    streams = rec.select(names)
    abs_times = [stream_times(s, mode, rec) for s in streams]
    firsts = [t[0] for t in abs_times if len(t)]
    if not firsts:
        raise ValueError(f"{rec.path}: the selected streams ({', '.join(s.name for s in streams) or 'none'}) "
                         f"have no samples to replay")
    t0 = float(min(firsts))
    rel = [t - t0 for t in abs_times]
    duration = float(max(r[-1] for r in rel if len(r)))
    steps = [1.0 / s.info.nominal_srate_hz for s in streams if s.info.nominal_srate_hz > 0]
    period = duration + (min(steps) if steps else 1e-3)
    return Timeline(streams, abs_times, rel, t0, duration, period)


# ---------------------------------------------------------------------------- digest
class StreamDigest:
    """sha256 of the values and of the relative times published for one stream (chunk-independent)."""

    def __init__(self, stream: StreamData):
        self.values = hashlib.sha256()
        self.times = hashlib.sha256()
        self.is_string = stream.is_string
        self.dtype = stream.info.dtype
        self.n = 0

    def update(self, values: np.ndarray, rel_s: np.ndarray) -> None:
        if self.is_string:
            for row in values:
                for s in row:
                    b = str(s).encode("utf-8")
                    self.values.update(struct.pack("<I", len(b)))
                    self.values.update(b)
        else:
            self.values.update(np.ascontiguousarray(values, dtype=self.dtype).tobytes())
        self.times.update(np.ascontiguousarray(rel_s, dtype="<f8").tobytes())
        self.n += len(rel_s)


def combine_digests(named: dict[str, StreamDigest]) -> str:
    h = hashlib.sha256()
    for name in sorted(named):
        d = named[name]
        h.update(name.encode("utf-8") + b"\0" + d.values.digest() + d.times.digest())
    return h.hexdigest()


# ---------------------------------------------------------------------------- LSL replay
def _copy_xml(src: ET.Element, dst: Any) -> None:
    """Copy an ElementTree subtree into a pylsl XMLElement."""
    for child in src:
        if len(child) == 0:
            dst.append_child_value(child.tag, (child.text or "").strip())
        else:
            _copy_xml(child, dst.append_child(child.tag))


def make_outlet_info(stream: StreamData, name: str, extra: dict[str, str]) -> Any:
    import pylsl

    info = stream.info
    sid = info.source_id or f"rtsnn-replay:{info.name}"
    out = pylsl.StreamInfo(name, info.type, info.channel_count, info.nominal_srate_hz, info.channel_format, sid)
    desc_el = ET.fromstring(info.desc_xml) if info.desc_xml else info.desc_element()
    _copy_xml(desc_el, out.desc())
    meta = out.desc().append_child("rtsnn_replay")
    for k, v in extra.items():
        meta.append_child_value(k, str(v))
    return out


def _lsl_dtype(stream: StreamData) -> np.dtype | None:
    return None if stream.is_string else stream.info.dtype.newbyteorder("=")


class LslReplayer:
    """Re-publishes a recording's streams over LSL (see the module docstring)."""

    def __init__(self, rec: Recording, streams: list[str] | None = None, *, speed: float = 1.0,
                 timestamps: str = "raw", loop: bool = False, max_loops: int | None = None,
                 name_prefix: str = "", duration_s: float | None = None, spin_s: float = 2e-4,
                 record_lateness: bool = True):
        if not (speed > 0):
            raise ValueError(f"speed must be > 0 (or inf for as fast as possible), got {speed!r}")
        if max_loops is not None and max_loops < 1:
            raise ValueError(f"max_loops must be >= 1, got {max_loops!r}")
        self.rec = rec
        self.speed = float(speed)
        self.mode = timestamps
        self.timeline = build_timeline(rec, streams, timestamps)
        self.loop = bool(loop)
        self.max_loops = max_loops if loop else 1
        self.name_prefix = name_prefix
        self.duration_s = duration_s
        self.spin_ns = int(spin_s * 1e9)
        self.record_lateness = record_lateness
        self.outlets: list[Any] = []
        self.names = [name_prefix + s.name for s in self.timeline.streams]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"{rec.path}: two selected streams share a name ({self.names}); select one with "
                             f"--streams by stream id")
        self.digests = {n: StreamDigest(s) for n, s in zip(self.names, self.timeline.streams)}
        self.published = {n: 0 for n in self.names}
        self.lateness_ns: list[np.ndarray] = []
        self.deadline_rel_s: list[np.ndarray] = []
        self.loops_done = 0
        self.wall_s = 0.0
        self._values = [s.time_series if s.is_string else np.ascontiguousarray(s.time_series, _lsl_dtype(s))
                        for s in self.timeline.streams]

    def open(self, wait_consumers_s: float = 0.0) -> None:
        import pylsl

        extra = {"file": Path(self.rec.path).name, "timestamps": self.mode, "speed": self.speed}
        for s, name in zip(self.timeline.streams, self.names):
            info = make_outlet_info(s, name, extra)
            self.outlets.append(pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360))
        if wait_consumers_s > 0:
            end = time.monotonic() + wait_consumers_s
            for o in self.outlets:
                o.wait_for_consumers(max(0.0, end - time.monotonic()))

    def close(self) -> None:
        self.outlets.clear()

    def _push(self, k: int, a: int, b: int, loop_offset_s: float, lsl_start: float) -> None:
        s = self.timeline.streams[k]
        rel = self.timeline.rel[k][a:b] + loop_offset_s
        scale = 1.0 if math.isinf(self.speed) else 1.0 / self.speed
        stamps = lsl_start + rel * scale
        vals = self._values[k][a:b]
        if s.is_string:
            self.outlets[k].push_chunk([list(map(str, row)) for row in vals], stamps.tolist())
        else:
            self.outlets[k].push_chunk(vals, stamps.tolist())
        name = self.names[k]
        self.digests[name].update(vals, rel)
        self.published[name] += b - a

    def run(self, stop: threading.Event | None = None) -> dict[str, Any]:
        """Publish until the end (or ``max_loops`` loops, ``duration_s``, or ``stop``); return the summary."""
        import pylsl

        if not self.outlets:
            self.open()
        stop = stop or threading.Event()
        tl = self.timeline
        n_streams = len(tl.streams)
        fast = math.isinf(self.speed)
        perf = time.perf_counter_ns
        # paced: recording time 0 is 5 ms ahead (time to get going); as fast as possible: now,
        # since nothing waits for it (a head start there made a short file's wall_s negative)
        start_ns = perf() + (0 if fast else 5_000_000)
        lsl_start = pylsl.local_clock() + 0.005
        self.lsl_start = lsl_start  # LSL time of relative time 0 (consumers map stamps back with it)
        stop_ns = start_ns + int(self.duration_s * 1e9) if self.duration_s else None
        loop_k = 0
        late_buf = np.zeros(65536, np.int64)
        rel_buf = np.zeros(65536, np.float64)
        n_late = 0
        while not stop.is_set():
            offset = loop_k * tl.period_s
            nxt = [0] * n_streams
            while not stop.is_set():
                # the earliest pending sample over all streams
                due_rel = math.inf
                for k in range(n_streams):
                    r = tl.rel[k]
                    if nxt[k] < len(r) and r[nxt[k]] < due_rel:
                        due_rel = r[nxt[k]]
                if math.isinf(due_rel):
                    break
                if not fast:
                    deadline = start_ns + int((offset + due_rel) * 1e9 / self.speed)
                    if stop_ns is not None and deadline > stop_ns:
                        stop.set()
                        break
                    while True:
                        now = perf()
                        remaining = deadline - now
                        if remaining <= 0:
                            break
                        if remaining > self.spin_ns:
                            time.sleep(min((remaining - self.spin_ns) * 1e-9, 0.05))
                            if stop.is_set():
                                break
                    now = perf()
                    if self.record_lateness:
                        if n_late == len(late_buf):
                            self.lateness_ns.append(late_buf.copy())
                            self.deadline_rel_s.append(rel_buf.copy())
                            n_late = 0
                        late_buf[n_late] = now - deadline
                        rel_buf[n_late] = offset + due_rel
                        n_late += 1
                    horizon = (now - start_ns) * 1e-9 * self.speed - offset
                else:  # as fast as possible: 50 ms of recording per wake-up
                    horizon = due_rel + 0.05
                for k in range(n_streams):
                    r = tl.rel[k]
                    a = nxt[k]
                    if a >= len(r) or r[a] > horizon:
                        continue
                    b = int(np.searchsorted(r, horizon, side="right"))
                    if fast:
                        b = min(b, a + 4096)
                    self._push(k, a, b, offset, lsl_start)
                    nxt[k] = b
            else:
                break
            if stop.is_set() and any(nxt[k] < len(tl.rel[k]) for k in range(n_streams)):
                break
            loop_k += 1
            self.loops_done = loop_k
            if self.max_loops is not None and loop_k >= self.max_loops:
                break
        # from recording time 0 to the end; a paced replay stopped before its first deadline
        # (stop, or a --duration shorter than the first sample's time) published nothing: 0 s
        self.wall_s = max(0, perf() - start_ns) * 1e-9
        if n_late:
            self.lateness_ns.append(late_buf[:n_late].copy())
            self.deadline_rel_s.append(rel_buf[:n_late].copy())
        return self.summary()

    def lateness(self) -> tuple[np.ndarray, np.ndarray]:
        """(deadline time since start in s, lateness in ns) of every wake-up."""
        if not self.lateness_ns:
            return np.zeros(0), np.zeros(0, np.int64)
        return np.concatenate(self.deadline_rel_s), np.concatenate(self.lateness_ns)

    def summary(self) -> dict[str, Any]:
        _, late = self.lateness()
        lat = ({"p50": float(np.percentile(late, 50) / 1e3), "p99": float(np.percentile(late, 99) / 1e3),
                "max": float(late.max() / 1e3), "n": int(len(late))} if len(late) else None)
        return {
            "file": self.rec.path,
            "streams": self.names,
            "samples": dict(self.published),
            "duration_s": round(self.timeline.duration_s, 6),
            "wall_s": round(self.wall_s, 3),
            "loops": self.loops_done,
            "speed": "max" if math.isinf(self.speed) else self.speed,
            "timestamps": self.mode,
            "repairs": self.rec.repair_counts(),
            "repair_messages": [str(r) for r in self.rec.repairs],
            "lateness_us": lat,
            "digest": combine_digests(self.digests),
        }


def replay_digest(rec: Recording, streams: list[str] | None = None, timestamps: str = "raw",
                  loops: int = 1, name_prefix: str = "") -> str:
    """The digest an LSL replay of ``loops`` loops would report, computed without publishing."""
    tl = build_timeline(rec, streams, timestamps)
    digests = {name_prefix + s.name: StreamDigest(s) for s in tl.streams}
    for loop_k in range(loops):
        for s, r in zip(tl.streams, tl.rel):
            vals = s.time_series if s.is_string else np.ascontiguousarray(s.time_series, _lsl_dtype(s))
            digests[name_prefix + s.name].update(vals, r + loop_k * tl.period_s)
    return combine_digests(digests)


# ---------------------------------------------------------------------------- session source
class XdfFileSource:
    """A recording as a session Source (entry point ``xdf_file``), no LSL involved.

    ``path``: any file :func:`rtsnn.recording.open_recording` reads (XDF, EDF/BDF, npz, CSV,
    MATLAB .mat), with its ``rate_hz`` / ``bin_s`` (a table without a rate of its own, e.g. the
    Chewie npz: ``bin_s: 0.1``), ``fmt``, ``time_column``, ``groups`` and ``markers`` options;
    ``stream``: the stream's name (may be omitted when the file has one numeric stream);
    ``n_channels`` must equal the stream's channel count. ``pace='tick'`` releases, at the
    k-th ``pull``, the samples with relative time in ``[(k-1) dt_s, k dt_s)`` (to 1 ns; deterministic,
    as fast as the session ticks); ``pace='realtime'`` releases those due by the wall clock
    since ``open`` times ``speed``. ``timestamps`` 'raw' | 'synced' as for replay; ``stamp``
    'recording' delivers the recording's own timestamps (deterministic), 'local' rebases them
    to the LSL clock at ``open`` (for latency figures in realtime pace). Relative times use
    the common t0 of the whole file, so a teacher reading another stream of the same file
    with the same ``dt_s`` stays aligned tick by tick. ``channels`` (indices or channel labels)
    delivers only those channels, in that order (``n_channels`` is then their count), e.g. the
    velocity columns of a kinematics stream as a teacher. Non-finite values are held at the last
    finite value of their channel (counted in ``repaired_values``). ``finished`` turns True
    when the recording is exhausted (``loop=False``).
    """

    def __init__(self, path: str, stream: str | None = None, *, n_channels: int, dt_s: float = 1e-3,
                 pace: str = "tick", speed: float = 1.0, timestamps: str = "raw", stamp: str = "recording",
                 loop: bool = False, max_samples: int = 1024, channels: list[int | str] | None = None,
                 rate_hz: float | None = None, bin_s: float | None = None, fmt: str | None = None,
                 time_column: str | None = None, groups: dict[str, list[str]] | None = None,
                 markers: dict[str, list[str]] | None = None):
        if channels is not None:
            if not isinstance(channels, (list, tuple)) or not channels or not all(
                    isinstance(c, (int, str)) and not isinstance(c, bool) for c in channels):
                raise ValueError(f"channels must be a non-empty list of channel indices or labels, got {channels!r}")
            if len(channels) != n_channels:
                raise ValueError(f"channels lists {len(channels)} channels but n_channels is {n_channels}")
        if pace not in ("tick", "realtime"):
            raise ValueError(f"pace must be 'tick' or 'realtime', got {pace!r}")
        if stamp not in ("recording", "local"):
            raise ValueError(f"stamp must be 'recording' or 'local', got {stamp!r}")
        if timestamps not in TIMESTAMP_MODES:
            raise ValueError(f"timestamps must be one of {TIMESTAMP_MODES}, got {timestamps!r}")
        if not dt_s > 0:
            raise ValueError(f"dt_s must be > 0, got {dt_s!r}")
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        if int(n_channels) != n_channels or n_channels < 1:
            raise ValueError(f"n_channels must be a positive integer, got {n_channels!r}")
        if int(max_samples) != max_samples or max_samples < 1:
            raise ValueError(f"max_samples must be a positive integer, got {max_samples!r}")
        self.channels = None if channels is None else list(channels)
        self.layout: dict[str, Any] = {"rate_hz": rate_hz, "bin_s": bin_s, "fmt": fmt, "time_column": time_column,
                                       "groups": groups, "markers": markers}
        if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
            raise ValueError(f"path must name a recording file, got {path!r}")
        self.path = str(path)
        self.stream_name = stream
        self.n_channels = int(n_channels)
        self.dt_s = float(dt_s)
        self.pace, self.speed, self.mode, self.stamp = pace, float(speed), timestamps, stamp
        self.loop = bool(loop)
        self.max_samples = int(max_samples)
        self.finished = False
        self.in_gap = False
        self.channel_labels: list[str] = []
        self.channel_units: list[str] = []
        self.nominal_srate_hz = 0.0
        self._rec: Recording | None = None
        self._x = np.zeros((0, self.n_channels), np.float32)
        self._t = np.zeros(0)
        self._rel = np.zeros(0)
        self._i = 0
        self._k = 0
        self._loop_k = 0
        self._period = 0.0
        self._t_base = 0.0
        self._start_ns = 0
        self.samples = 0
        self.repaired_values = 0
        self.deferred_ticks = 0

    def open(self) -> None:
        from rtsnn.recording import open_recording

        rec = open_recording(self.path, **self.layout)
        numeric = [s for s in rec.streams if not s.is_string]
        if self.stream_name is None:
            if len(numeric) != 1:
                raise ValueError(f"{self.path}: has {len(numeric)} numeric streams "
                                 f"({', '.join(repr(s.name) for s in numeric)}); name one with stream=")
            st = numeric[0]
        else:
            st = rec.select([self.stream_name])[0]
        if st.is_string:
            raise ValueError(f"{self.path}: stream {st.name!r} is a string stream; XdfFileSource delivers numeric "
                             f"streams")
        cols = self._columns(st)
        if cols is None and st.info.channel_count != self.n_channels:
            raise ValueError(f"{self.path}: stream {st.name!r} has {st.info.channel_count} channels, config "
                             f"expects {self.n_channels}")
        tl_all = build_timeline(rec, [s.name for s in rec.streams if s.n_samples], self.mode)
        k = next(i for i, s in enumerate(tl_all.streams) if s is st) if st.n_samples else -1
        if k < 0:
            raise ValueError(f"{self.path}: stream {st.name!r} has no samples")
        x = np.asarray(st.time_series, np.float32)
        labels = list(st.info.channel_labels)
        units = list(st.info.channel_units or [])
        if cols is not None:
            x = x[:, cols]
            labels = [labels[c] if c < len(labels) else f"ch{c}" for c in cols]
            units = [units[c] for c in cols] if len(units) == st.info.channel_count else []
        bad = ~np.isfinite(x)
        if bad.any():
            self.repaired_values = int(bad.sum())
            idx = np.maximum.accumulate(np.where(bad, -1, np.arange(len(x))[:, None]), axis=0)
            x = np.where(idx >= 0, x[np.maximum(idx, 0), np.arange(x.shape[1])[None, :]], 0.0).astype(np.float32)
            rec.repair("nonfinite_values", st.name, f"{self.repaired_values} non-finite values held at the last "
                                                    f"finite value of their channel")
        self._x = np.ascontiguousarray(x)
        self._rel = tl_all.rel[k]
        self._t = tl_all.abs_times[k]
        self._period = tl_all.period_s
        self._rec = rec
        self.stream_name = st.name
        self.channel_labels = labels
        self.channel_units = units
        self.nominal_srate_hz = st.info.nominal_srate_hz
        self._start_ns = time.perf_counter_ns()
        if self.stamp == "local":
            import pylsl

            self._t_base = pylsl.local_clock() - tl_all.t0
        self._i = self._k = self._loop_k = 0
        self.finished = False

    def _columns(self, st: StreamData) -> list[int] | None:
        """``channels`` resolved to column indices of ``st`` (None: all of them)."""
        if self.channels is None:
            return None
        labels = list(st.info.channel_labels)
        cols = []
        for c in self.channels:
            if isinstance(c, str):
                if c not in labels:
                    raise ValueError(f"{self.path}: stream {st.name!r} has no channel labelled {c!r} "
                                     f"(labels: {labels})")
                cols.append(labels.index(c))
            elif not 0 <= c < st.info.channel_count:
                raise ValueError(f"{self.path}: channel index {c} is out of range for stream {st.name!r} "
                                 f"({st.info.channel_count} channels)")
            else:
                cols.append(c)
        return cols

    def pull(self, samples_out: np.ndarray, timestamps_out: np.ndarray) -> int:
        if self.finished:
            return 0
        if self.pace == "tick":
            self._k += 1
            horizon = self._k * self.dt_s - self._loop_k * self._period
        else:
            horizon = (time.perf_counter_ns() - self._start_ns) * 1e-9 * self.speed - self._loop_k * self._period
        cap = min(samples_out.shape[0], timestamps_out.shape[0], self.max_samples)
        i = self._i
        rel = self._rel
        # pace 'tick': samples before the tick's end (a sample within 1 ns of the boundary, float
        # rounding of t - t0, belongs to the next tick); realtime: all due by now
        if self.pace == "tick":
            j = int(np.searchsorted(rel, horizon - TICK_EPS_S, side="left"))
        else:
            j = int(np.searchsorted(rel, horizon, side="right"))
        if j - i > cap:
            j = i + cap
            self.deferred_ticks += 1
        n = j - i
        if n > 0:
            samples_out[:n] = self._x[i:j]
            timestamps_out[:n] = self._t[i:j] + self._t_base + self._loop_k * self._period
            self._i = j
            self.samples += n
        if self._i >= len(rel):
            if self.loop:
                self._loop_k += 1
                self._i = 0
            else:
                self.finished = True
        return n

    def stats(self) -> dict[str, Any]:
        return {"samples": self.samples, "repaired_values": self.repaired_values, "dropped_samples": 0,
                "deferred_ticks": self.deferred_ticks, "loops": self._loop_k, "finished": self.finished,
                "stream": self.stream_name, "file_repairs": self._rec.repair_counts() if self._rec else {},
                "pace": self.pace, "nominal_srate_hz": self.nominal_srate_hz}

    def close(self) -> None:
        self._rec = None
