"""Record streams to XDF: a :class:`Recorder` for sessions, and :func:`record_lsl` for ``rtsnn record``.

:class:`Recorder` never blocks its callers: ``push`` copies the block into a queue
(``collections.deque``, appends are atomic under the GIL) and returns; a writer thread
drains the queue every ``flush_interval_s``, encodes Samples chunks, writes a Boundary
chunk every ``boundary_interval_s``, and flushes (one ``os.write``; ``fsync`` optional). A
crash therefore loses at most the last ``flush_interval_s`` of data, and what was flushed is
readable by pyxdf and by :func:`rtsnn.recording.xdf_reader.load_xdf`. A queue grown past
``max_queued_blocks`` (the disk cannot keep up) drops the newest block and counts it.
``close`` drains, writes the footers and closes the file.

:func:`record_lsl` resolves LSL streams by name, records their raw timestamps (sender clock)
with a ClockOffset chunk every ``offset_interval_s`` (``inlet.time_correction()``, written as
LabRecorder does: collection time on the sender's clock, offset to add), as pyxdf expects.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rtsnn.clock import SLACK
from rtsnn.recording.xdf_writer import StreamInfoData, XdfWriter
from rtsnn.stream.ring import Ring

log = logging.getLogger(__name__)


class Recorder:
    """Records any number of streams into one XDF file from any thread, without blocking.

    ``add_stream(name, channel_labels, units, ...)`` returns a stream id; then
    ``push(stream_id, timestamps, block)`` with ``timestamps`` (n,) float s (LSL clock) and
    ``block`` (n, channels) numeric (or a list of string rows for a string stream), or a
    single sample with a scalar timestamp and a 1-D block.
    """

    def __init__(self, path: str | Path, *, flush_interval_s: float = 0.5, boundary_interval_s: float = 10.0,
                 fsync: bool = False, max_queued_blocks: int = 100_000, file_info: dict[str, str] | None = None):
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s!r}")
        self.path = Path(path)
        self.flush_interval_s = float(flush_interval_s)
        self.boundary_interval_s = float(boundary_interval_s)
        self.max_queued_blocks = int(max_queued_blocks)
        self.writer = XdfWriter(self.path, fsync=fsync, file_info=file_info)
        self._queue: deque = deque()
        self._infos: dict[int, StreamInfoData] = {}
        self._next_id = 1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = SLACK.follow(threading.Thread(target=self._run, name=f"xdf-recorder[{self.path.name}]",
                                                     daemon=True))
        self.dropped_blocks = 0
        self.pushed_samples: dict[int, int] = {}
        self.errors = 0
        self.last_error = ""
        self._thread.start()

    # ------------------------------------------------------------------ set-up
    def add_stream(self, name: str, channel_labels: Sequence[str] | None = None, units: Sequence[str] | None = None,
                   *, channel_count: int | None = None, type: str = "", nominal_srate_hz: float = 0.0,
                   channel_format: str = "float32", source_id: str = "", header_xml: bytes | None = None) -> int:
        """Declare a stream (header written at the next flush); returns its stream id."""
        labels = list(channel_labels or [])
        n = channel_count if channel_count is not None else len(labels)
        info = StreamInfoData(name=name, type=type, channel_count=n, nominal_srate_hz=nominal_srate_hz,
                              channel_format=channel_format, source_id=source_id or f"rtsnn:{name}",
                              channel_labels=labels, channel_units=list(units or []))
        with self._lock:
            sid = self._next_id
            self._next_id += 1
            self._infos[sid] = info
            self.pushed_samples[sid] = 0
        self._queue.append(("header", sid, info, header_xml))
        return sid

    # ------------------------------------------------------------------ hot path
    def push(self, stream_id: int, timestamps: float | np.ndarray, block: Any) -> bool:
        """Queue samples (copied); False when dropped because the queue is full. Never blocks on I/O."""
        if len(self._queue) >= self.max_queued_blocks:
            self.dropped_blocks += 1
            return False
        info = self._infos.get(stream_id)
        if info is None:
            raise ValueError(f"Recorder.push: unknown stream_id {stream_id}; call add_stream first")
        ts = np.array(timestamps, dtype=np.float64, ndmin=1)
        n = ts.shape[0]
        if info.channel_format == "string":
            if isinstance(block, str):
                block = [[block]]
            elif n == 1 and len(block) and isinstance(block[0], str):
                block = [block]
            data: Any = [[str(v) for v in row] for row in block]
            if len(data) != n or any(len(r) != info.channel_count for r in data):
                raise ValueError(f"Recorder.push: stream {info.name!r} expects {n} string rows of "
                                 f"{info.channel_count} values")
        else:
            data = np.array(block, dtype=info.dtype, copy=True)
            if data.size != n * info.channel_count:
                raise ValueError(f"Recorder.push: stream {info.name!r} got a block of shape {data.shape} for {n} "
                                 f"timestamps x {info.channel_count} channels")
            data = data.reshape(n, info.channel_count)
        self._queue.append(("samples", stream_id, ts, data))
        self.pushed_samples[stream_id] += ts.shape[0]
        return True

    def clock_offset(self, stream_id: int, collection_time_s: float, offset_s: float) -> None:
        self._queue.append(("offset", stream_id, collection_time_s, offset_s))

    # ------------------------------------------------------------------ writer thread
    def _drain(self) -> None:
        q = self._queue
        w = self.writer
        slack = SLACK  # a block at a time, each out of a real-time session's ticks
        while q:
            slack.wait()
            kind, sid, a, b = q.popleft()
            try:
                if kind == "samples":
                    w.write_samples(sid, a, b)
                elif kind == "header":
                    w.add_stream(sid, a, header_xml=b)
                elif kind == "offset":
                    w.write_clock_offset(sid, a, b)
            except Exception as err:  # noqa: BLE001 - a bad block must not stop the recording
                self.errors += 1
                self.last_error = f"{kind} for stream {sid}: {err}"
                if self.errors <= 10:
                    log.error("recorder %s: dropped %s", self.path, self.last_error)

    def _run(self) -> None:
        next_boundary = time.monotonic() + self.boundary_interval_s
        while not self._stop.wait(SLACK.aligned(self.flush_interval_s)):
            self._drain()
            if time.monotonic() >= next_boundary:
                SLACK.wait()
                self.writer.write_boundary()
                next_boundary += self.boundary_interval_s
            try:
                SLACK.wait()
                self.writer.flush()
            except OSError as err:
                self.errors += 1
                self.last_error = f"flush: {err}"
                log.error("recorder %s: %s", self.path, err)

    def flush(self) -> None:
        """Drain and flush now (from any thread; normally the writer thread does it)."""
        with self._lock:
            self._drain()
            self.writer.flush()

    def close(self) -> None:
        """Drain what is queued, write footers, close the file."""
        if self.writer.closed:
            return
        self._stop.set()
        self._thread.join(10)
        with self._lock:
            self._drain()
            self.writer.close(footers=True)

    def stats(self) -> dict[str, Any]:
        return {"path": str(self.path), "bytes": self.writer.bytes_written, "queued": len(self._queue),
                "dropped_blocks": self.dropped_blocks, "errors": self.errors,
                "samples": {self._infos[k].name: v for k, v in self.pushed_samples.items()}}

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------- LSL recording
def _info_from_lsl(info: Any) -> StreamInfoData:
    import pylsl

    from rtsnn.stream.lsl_source import channel_labels_of

    labels = channel_labels_of(info)
    return StreamInfoData(name=info.name(), type=info.type(), channel_count=info.channel_count(),
                          nominal_srate_hz=info.nominal_srate(),
                          channel_format=pylsl.lib.fmt2string[info.channel_format()], source_id=info.source_id(),
                          channel_labels=labels if len(labels) == info.channel_count() else [])


def expand_stream_patterns(names: list[str], wait_s: float) -> list[str]:
    """``names`` with each shell pattern replaced by the sorted names of the LSL streams that
    match it (listed within ``wait_s``, at most 2 s); ValueError naming a pattern that matches none."""
    import fnmatch

    import pylsl

    if not any(set(n) & set("*?[") for n in names):
        return list(names)
    wait_s = min(max(wait_s, 0.1), 2.0)
    seen = sorted({info.name() for info in pylsl.resolve_streams(wait_s)})
    out: list[str] = []
    for n in names:
        if not set(n) & set("*?["):
            out.append(n)
            continue
        hits = fnmatch.filter(seen, n)
        if not hits:
            raise ValueError(f"record: no LSL stream matches {n!r} (found within {wait_s:g} s: "
                             f"{', '.join(seen) or 'none'})")
        out += hits
    return list(dict.fromkeys(out))


def record_lsl(names: list[str], out: str | Path, *, duration_s: float | None = None, resolve_timeout_s: float = 5.0,
               offset_interval_s: float = 5.0, flush_interval_s: float = 0.5, stop: threading.Event | None = None,
               ready: threading.Event | None = None) -> dict[str, Any]:
    """Record the LSL streams with these names until ``duration_s`` or ``stop``; return a summary.

    A name with ``*``, ``?`` or ``[`` is a shell pattern (``'rtsnn-demo-*'``): it stands for
    every stream whose name matches when the streams are listed, and must match at least one.
    Every name must resolve within ``resolve_timeout_s`` (else ValueError naming the missing ones).
    """
    import pylsl

    if not names:
        raise ValueError("record: give at least one stream name (--streams NAME ...)")
    names = expand_stream_patterns(names, resolve_timeout_s)
    stop = stop or threading.Event()
    found: dict[str, Any] = {}
    deadline = time.monotonic() + resolve_timeout_s
    while len(found) < len(set(names)) and time.monotonic() < deadline:
        for name in set(names) - set(found):
            hits = pylsl.resolve_byprop("name", name, 1, min(0.5, max(0.05, deadline - time.monotonic())))
            if hits:
                found[name] = sorted(hits, key=lambda i: i.created_at())[-1]
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"record: no LSL stream named {', '.join(map(repr, missing))} found within "
                         f"{resolve_timeout_s:g} s")
    rec = Recorder(out, flush_interval_s=flush_interval_s, file_info={"recorder": "rtsnn record"})
    inlets = []
    try:
        for name in dict.fromkeys(names):
            inlet = pylsl.StreamInlet(found[name], max_buflen=360, recover=True)
            inlet.open_stream(timeout=resolve_timeout_s)
            full = inlet.info(timeout=resolve_timeout_s)
            sinfo = _info_from_lsl(full)
            sid = rec.add_stream(sinfo.name, sinfo.channel_labels, None, channel_count=sinfo.channel_count,
                                 type=sinfo.type, nominal_srate_hz=sinfo.nominal_srate_hz,
                                 channel_format=sinfo.channel_format, source_id=sinfo.source_id,
                                 header_xml=full.as_xml().encode("utf-8"))
            numeric = sinfo.channel_format != "string"
            buf = (np.zeros((4096, sinfo.channel_count), dtype=sinfo.dtype.newbyteorder("=")) if numeric else None)
            inlets.append({"inlet": inlet, "sid": sid, "name": sinfo.name, "numeric": numeric, "buf": buf,
                           "next_offset": 0.0})
        if ready is not None:
            ready.set()
        t_start = time.monotonic()
        while not stop.is_set():
            if duration_s is not None and time.monotonic() - t_start >= duration_s:
                break
            got = 0
            for st in inlets:
                inlet = st["inlet"]
                if time.monotonic() >= st["next_offset"]:
                    try:
                        off = inlet.time_correction(timeout=0.2)
                        rec.clock_offset(st["sid"], pylsl.local_clock() - off, off)
                    except Exception as err:  # noqa: BLE001 - timeout: try again next interval
                        log.debug("time_correction %s: %s", st["name"], err)
                    st["next_offset"] = time.monotonic() + offset_interval_s
                if st["numeric"]:
                    data, ts = inlet.pull_chunk(timeout=0.0, max_samples=st["buf"].shape[0], dest_obj=st["buf"])
                    if ts:
                        rec.push(st["sid"], np.asarray(ts), st["buf"][:len(ts)])
                else:
                    data, ts = inlet.pull_chunk(timeout=0.0)
                    if ts:
                        rec.push(st["sid"], np.asarray(ts), data)
                got += len(ts)
            if not got:
                stop.wait(0.005)
        # one last drain of whatever arrived meanwhile
        for st in inlets:
            if st["numeric"]:
                data, ts = st["inlet"].pull_chunk(timeout=0.0, max_samples=st["buf"].shape[0], dest_obj=st["buf"])
                if ts:
                    rec.push(st["sid"], np.asarray(ts), st["buf"][:len(ts)])
            else:
                data, ts = st["inlet"].pull_chunk(timeout=0.0)
                if ts:
                    rec.push(st["sid"], np.asarray(ts), data)
    finally:
        rec.close()
        for st in inlets:
            try:
                st["inlet"].close_stream()
            except Exception:  # noqa: BLE001
                pass
    return rec.stats()


# ---------------------------------------------------------------------------- session side
def BlockRing(capacity: int, n_channels: int) -> Ring:  # noqa: N802 - the name this ring always had
    """A :class:`rtsnn.stream.ring.Ring` of (timestamp, float32 row) samples that drops a block
    that does not fit as a whole (a recording keeps a tick's samples or none of them): the compute
    thread calls ``push_block(samples, timestamps, n)`` (at most two slice copies, the tick never
    waits), the I/O thread ``drain() -> (stamps, values)``; ``dropped_samples`` counts the drops."""
    return Ring(capacity, n_channels, np.float32, stamps=True, drop="block", name="BlockRing")


class SessionRecording:
    """A session's recording: what it consumed, was taught, rewarded, and what it emitted.

    Streams (all timestamps on the LSL clock): ``<name>-inputs`` (every input sample the
    session pulled, source timestamps), ``<name>-teacher`` (teaching samples), ``<name>-reward``
    (scalar rewards), ``<name>-outputs`` (one sample per tick at its emit time: outputs, then
    the target in force), ``<name>-events`` (strings: pause, resume, learning-rate changes...).

    Threads: the compute thread calls ``inputs.push_block`` / ``teacher.push_block`` (slice
    copies into preallocated rings, drop-and-count when full); the I/O thread calls ``drain()`` periodically and
    ``outputs_rows(rows)`` with the session's output-ring rows ``[tick, t_source, t_emit,
    y..., target...]``; ``reward(r, t)`` and ``event(text, t)`` from any thread; ``close()`` at the end.
    """

    def __init__(self, path: str | Path, name: str, *, input_labels: Sequence[str], input_units: Sequence[str] = (),
                 input_srate_hz: float = 0.0, output_labels: Sequence[str], output_units: Sequence[str] = (),
                 teacher: bool = False, dt_s: float = 1e-3, ring_samples: int = 1 << 16,
                 flush_interval_s: float = 0.5):
        self.rec = Recorder(path, flush_interval_s=flush_interval_s, file_info={"session": name})
        n_in, n_out = len(input_labels), len(output_labels)
        self.n_out = n_out
        self.sid_in = self.rec.add_stream(f"{name}-inputs", list(input_labels), list(input_units) or None,
                                          type="Input", nominal_srate_hz=input_srate_hz)
        self.inputs = BlockRing(ring_samples, n_in)
        self.sid_teacher = None
        self.teacher = None
        if teacher:
            self.sid_teacher = self.rec.add_stream(f"{name}-teacher", [f"target_{l}" for l in output_labels],
                                                   list(output_units) or None, type="Teacher")
            self.teacher = BlockRing(ring_samples, n_out)
        out_units = list(output_units) * 2 if output_units else None
        self.sid_out = self.rec.add_stream(f"{name}-outputs", [*output_labels, *[f"target_{l}" for l in output_labels]],
                                           out_units, type="Control", nominal_srate_hz=1.0 / dt_s)
        self.sid_reward = self.rec.add_stream(f"{name}-reward", ["reward"], ["1"], type="Reward")
        self.rewards = BlockRing(max(ring_samples // 16, 2), 1)
        self.sid_events = self.rec.add_stream(f"{name}-events", ["event"], channel_format="string", type="Markers")

    def drain(self) -> None:
        """I/O thread: move the compute thread's ring contents into the recorder."""
        ts, x = self.inputs.drain()
        if len(ts):
            self.rec.push(self.sid_in, ts, x)
        if self.teacher is not None:
            ts, x = self.teacher.drain()
            if len(ts):
                self.rec.push(self.sid_teacher, ts, x)
        ts, x = self.rewards.drain()
        if len(ts):
            self.rec.push(self.sid_reward, ts, x)

    def outputs_rows(self, rows: np.ndarray) -> None:
        """I/O thread: rows of the session's output ring (``[tick, t_source, t_emit, y..., target...]``)."""
        if len(rows):
            self.rec.push(self.sid_out, rows[:, 2], rows[:, 3:3 + 2 * self.n_out])

    def reward(self, value: float, t_s: float) -> None:
        self.rec.push(self.sid_reward, t_s, [value])

    def event(self, text: str, t_s: float) -> None:
        self.rec.push(self.sid_events, t_s, text)

    def stats(self) -> dict[str, Any]:
        out = self.rec.stats()
        out["dropped_input_samples"] = self.inputs.dropped_samples
        if self.teacher is not None:
            out["dropped_teacher_samples"] = self.teacher.dropped_samples
        out["dropped_rewards"] = self.rewards.dropped_samples
        return out

    def close(self) -> None:
        self.drain()
        self.rec.close()


class RewardTap:
    """Wraps a reward source (``poll() -> (reward, t_s) | None``) so that every reward the
    learner polls is also recorded: one row copied into ``recording.rewards`` (a preallocated
    :class:`BlockRing`, compute thread, no allocation); everything else is the wrapped source's."""

    def __init__(self, source: Any, recording: SessionRecording):
        self.source = source
        self.recording = recording
        self._value = np.zeros((1, 1), np.float32)
        self._stamp = np.zeros(1, np.float64)

    def poll(self) -> tuple[float, float] | None:
        got = self.source.poll()
        if got is not None:
            self._value[0, 0] = got[0]
            self._stamp[0] = got[1]
            self.recording.rewards.push_block(self._value, self._stamp, 1)
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)
