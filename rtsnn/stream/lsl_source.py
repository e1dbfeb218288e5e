"""An LSL inlet as a session Source: non-blocking, allocation-free pulls, repairs, reconnects.

Threads: ``pull`` runs in the compute thread every tick. A daemon *monitor* thread owned
by the source (started in ``open``, stopped in ``close``) refreshes the clock offset once a
second, and after a loss re-resolves the stream every ~0.2 s, builds a new inlet and swaps
it in. The two threads hand inlets over through single attribute writes (atomic under the
GIL): the compute thread only ever clears ``_conn`` (and parks the lost inlet in
``_retired``), the monitor only ever sets ``_conn`` while it is clear, and only the
monitor destroys inlets, so the compute thread never waits on liblsl's teardown.

Loss: liblsl reports the stream lost (our inlets are created with liblsl's own recovery
off, so a vanished outlet shows up at the next pull), or no sample arrived for
``loss_timeout_s`` (liblsl's own watchdog would take 15 s). Then ``connected`` is False,
``in_gap`` True, ``losses`` +1, and ``pull`` returns 0 at once. When the monitor finds a
matching stream again it attaches an inlet (``connected`` True again); the gap ends, and
``reconnects`` is counted, when the first sample arrives through it. If no sample comes
within ``loss_timeout_s`` of attaching, the inlet is detached again (same gap, no new loss).
For streams that may legitimately fall silent (markers, irregular events) pass
``loss_timeout_s=None`` to rely on liblsl's lost-stream report only.

Pinning (``pin='identity'``, the default): the first stream ``open`` connects to fixes the
*identity* a reconnect must match -- its ``source_id`` and ``hostname`` (and, when the outlet
set no source_id, also its name and type). liblsl answers discovery queries on every network
interface, so any host on the LAN can publish a stream of the same name; after a loss such a
stream is refused, not attached: counted in ``impostors_refused`` (once per stream uid), logged
as a warning, and offered to the session as an event for the recording (``take_events``). To
pin from the start, give ``source_id`` in the config (it joins the resolve predicate).
``pin='none'`` restores the old behaviour (reconnect to the newest stream matching the
predicate).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import numpy as np
import pylsl

from rtsnn.clock import SLACK
from rtsnn.errors import RtsnnValueError
from rtsnn.stream import lslraw
from rtsnn.stream.repair import (DROPPED_BACKLOG, DROPPED_NONFINITE, POLICIES, REPAIRED, SAMPLES,
                                 TS_BACKWARDS, TS_JUMPS, new_counters, repair_chunk)

log = logging.getLogger(__name__)

NUMERIC_FORMATS = ("float32", "double64", "int8", "int16", "int32", "int64")
PINS = ("identity", "none")
MAX_EVENTS = 256  # events kept for the recording between two take_events() calls
RESOLVE_RETRY_S = 0.2
CLOCK_REFRESH_S = 1.0


class StreamMismatchError(RtsnnValueError):
    """The resolved stream's channel count or format differs from the configuration."""


class StreamNotFoundError(RtsnnValueError):
    """No stream matching the predicate answered within the resolve timeout."""


def _quote(value: str) -> str:
    if "'" in value:
        raise ValueError(f"stream property values must not contain a single quote, got {value!r}")
    return f"'{value}'"


def build_predicate(name: str | None = None, type: str | None = None, source_id: str | None = None) -> str:
    """XPath 1.0 predicate over the stream's <info> fields, e.g. ``name='x' and type='y'``."""
    parts = [f"{key}={_quote(v)}" for key, v in (("name", name), ("type", type), ("source_id", source_id))
             if v is not None]
    if not parts:
        raise ValueError("LslSource needs at least one of name, type, source_id; got none")
    return " and ".join(parts)


def channel_labels_of(info: pylsl.StreamInfo) -> list[str]:
    """Labels from <desc><channels><channel><label> (empty list when absent)."""
    labels: list[str] = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty():
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling("channel")
    return labels


def _identity(info: pylsl.StreamInfo) -> dict[str, str]:
    """What pins a stream: source_id and hostname, plus name and type when there is no
    source_id (an outlet that set none gets a new uid every start, so nothing else is stable)."""
    ident = {"source_id": info.source_id(), "host": info.hostname()}
    if not ident["source_id"]:
        ident.update(name=info.name(), type=info.type())
    return ident


class _Conn:
    """One inlet plus its puller; owned by the monitor thread, used by the compute thread."""

    def __init__(self, info: pylsl.StreamInfo, n_channels: int, max_samples: int, max_buflen: int):
        self.uid = info.uid()
        self.created_at = info.created_at()
        # liblsl counts max_buflen in seconds for regular streams but in hundreds of samples
        # for irregular ones, whose rate we do not know: give those liblsl's default
        buflen = max_buflen if info.nominal_srate() > 0 else 360
        self.inlet = pylsl.StreamInlet(info, max_buflen=buflen, max_chunklen=0, recover=False)
        self.puller = lslraw.ChunkPuller(self.inlet.obj, n_channels, max_samples)
        self.attached_at = 0.0  # LSL clock when swapped in (for the loss watchdog)

    def destroy(self) -> None:
        try:
            self.inlet.close_stream()
        except Exception:  # noqa: BLE001 - teardown of a lost inlet must not raise
            pass
        self.puller.inlet_handle = None
        del self.inlet


class LslSource:
    """Pulls samples from one LSL stream (see the module docstring for threads and losses).

    Parameters (units in the names): ``name``/``type``/``source_id`` select the stream (at
    least one; all given must match); ``n_channels`` and ``channel_format`` must equal the
    stream's or ``open`` refuses with ``StreamMismatchError``; ``resolve_timeout_s`` bounds
    ``open``; ``loss_timeout_s`` (None: off) is the silence after which the stream counts
    as lost; ``max_samples`` caps one pull; ``nan_policy`` is 'hold' | 'zero' | 'drop';
    ``max_jump_s`` is the forward timestamp step counted as a jump; ``max_backlog_s``
    (None: off) drops samples older than that relative to now; ``recover`` enables the
    background reconnect.

    Timestamps delivered are on this machine's LSL clock (remote timestamp + liblsl's clock
    offset, refreshed in the background).
    """

    def __init__(self, name: str | None = None, type: str | None = None, source_id: str | None = None, *,
                 n_channels: int, channel_format: str = "float32", resolve_timeout_s: float = 5.0,
                 loss_timeout_s: float | None = 1.0, max_samples: int = 1024, nan_policy: str = "hold",
                 max_jump_s: float = 1.0, max_backlog_s: float | None = 1.0, recover: bool = True,
                 pin: str = "identity"):
        self.predicate = build_predicate(name, type, source_id)
        if pin not in PINS:
            raise ValueError(f"pin must be one of {', '.join(PINS)}, got {pin!r}")
        self.pin = pin
        self.name, self.type, self.source_id = name, type, source_id
        if int(n_channels) != n_channels or n_channels < 1:
            raise ValueError(f"n_channels must be a positive integer, got {n_channels!r}")
        if channel_format not in NUMERIC_FORMATS:
            raise ValueError(f"channel_format must be one of {NUMERIC_FORMATS}, got {channel_format!r}")
        if nan_policy not in POLICIES:
            raise ValueError(f"nan_policy must be one of {tuple(POLICIES)}, got {nan_policy!r}")
        if not resolve_timeout_s > 0:
            raise ValueError(f"resolve_timeout_s must be > 0, got {resolve_timeout_s!r}")
        if loss_timeout_s is not None and not loss_timeout_s > 0:
            raise ValueError(f"loss_timeout_s must be > 0 or None, got {loss_timeout_s!r}")
        if int(max_samples) != max_samples or max_samples < 1:
            raise ValueError(f"max_samples must be a positive integer, got {max_samples!r}")
        if not max_jump_s >= 0:
            raise ValueError(f"max_jump_s must be >= 0, got {max_jump_s!r}")
        if max_backlog_s is not None and not max_backlog_s > 0:
            raise ValueError(f"max_backlog_s must be > 0 or None, got {max_backlog_s!r}")
        self.n_channels = int(n_channels)
        self.channel_format = channel_format
        self.resolve_timeout_s = float(resolve_timeout_s)
        self.loss_timeout_s = math.inf if loss_timeout_s is None else float(loss_timeout_s)
        self.max_samples = int(max_samples)
        self.nan_policy = nan_policy
        self._policy = POLICIES[nan_policy]
        self.max_jump_s = float(max_jump_s)
        self.max_backlog_s = math.inf if max_backlog_s is None else float(max_backlog_s)
        self.recover = bool(recover)
        # liblsl's inlet buffer: seconds for regular streams (x100 samples for irregular);
        # no point keeping more than the backlog we would drop anyway.
        self._max_buflen = 360 if math.isinf(self.max_backlog_s) else max(1, math.ceil(self.max_backlog_s) + 1)

        self.connected = False
        self.in_gap = False
        self.nominal_srate_hz = 0.0
        self.channel_labels: list[str] = []
        self.resolved: dict[str, str] = {}  # name / type / source_id / host of the stream open() found
        self._conn: _Conn | None = None
        self._retired: list[_Conn] = []  # lost inlets waiting for the monitor to destroy them
        self._lost_uid: str | None = None
        self._lost_by_liblsl = False
        self._offset_s = 0.0
        self._offset_known = False
        self._last_sample_s = 0.0
        self._counters = new_counters()
        self._last_good = np.zeros(self.n_channels, np.float32)
        self._prev_ts = np.full(1, np.nan)
        self.losses = 0
        self.reconnects = 0
        self.mismatches = 0
        self.identity: dict[str, str] = {}  # what a reconnect must match (pin='identity')
        self.impostors_refused = 0
        self._impostor_uids: set[str] = set()
        self._events: list[tuple[str, float]] = []
        self._events_lock = threading.Lock()  # the monitor thread appends, the I/O thread takes
        self.errors = 0
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None

    # ------------------------------------------------------------------ set-up
    def _resolve(self, timeout_s: float) -> list[pylsl.StreamInfo]:
        return pylsl.resolve_bypred(self.predicate, 1, timeout_s)

    def _check(self, info: pylsl.StreamInfo) -> None:
        label = f"stream {info.name()!r}"
        where = f" (matched by {self.predicate}, source_id {info.source_id()!r})"
        if info.channel_count() != self.n_channels:
            raise StreamMismatchError(f"{label} has {info.channel_count()} channels, config expects "
                                      f"{self.n_channels}{where}")
        fmt = pylsl.lib.fmt2string[info.channel_format()]
        if fmt != self.channel_format:
            raise StreamMismatchError(f"{label} has channel format {fmt!r}, config expects "
                                      f"{self.channel_format!r}{where}")

    def _open_inlet(self, conn: _Conn) -> pylsl.StreamInfo:
        """Open ``conn``'s stream and return its full info (with the description); on any
        failure ``conn`` is destroyed and the error raised."""
        try:
            conn.inlet.open_stream(timeout=min(self.resolve_timeout_s, 5.0))
            return conn.inlet.info(timeout=min(self.resolve_timeout_s, 5.0))
        except Exception:
            conn.destroy()
            raise

    def _connect(self, info: pylsl.StreamInfo) -> _Conn:
        conn = _Conn(info, self.n_channels, self.max_samples, self._max_buflen)
        full = self._open_inlet(conn)
        self.channel_labels = channel_labels_of(full)
        self.nominal_srate_hz = float(full.nominal_srate())
        return conn

    def _warm_up(self) -> None:
        """Compile (or load from cache) the repair kernel now, not inside the first tick."""
        data = np.zeros((1, self.n_channels), np.float32)
        ts = np.zeros(1, np.float64)
        repair_chunk(data, ts, 0, 0.0, 0.0, self.max_backlog_s, self.max_jump_s, self._policy,
                     np.zeros(self.n_channels, np.float32), np.full(1, np.nan), data, ts, new_counters())

    def open(self) -> None:
        """Resolve, check channel count and format, connect, start the monitor thread."""
        if self._conn is not None:
            raise RuntimeError("LslSource.open called twice")
        self._warm_up()
        found = self._resolve(self.resolve_timeout_s)
        if not found:
            raise StreamNotFoundError(f"no LSL stream matching {self.predicate} found within "
                                      f"{self.resolve_timeout_s:g} s")
        found.sort(key=lambda i: i.created_at(), reverse=True)
        if len(found) > 1:
            log.warning("%d LSL streams match %s; using the newest (uid %s)", len(found), self.predicate,
                        found[0].uid())
        self._check(found[0])
        conn = self._connect(found[0])
        info = found[0]
        self.resolved = {"name": info.name(), "type": info.type(), "source_id": info.source_id(),
                         "host": info.hostname()}
        if self.pin == "identity":
            self.identity = _identity(info)
        conn.attached_at = lslraw.local_clock()
        self._last_sample_s = conn.attached_at
        # liblsl's first clock-offset estimate takes ~0.6 s; the monitor gets it in the
        # background (loopback offset is ~0, so 0 is the right value meanwhile)
        self._offset_s, self._offset_known = 0.0, False
        if self.nominal_srate_hz > 0 and self.loss_timeout_s < 5.0 / self.nominal_srate_hz:
            log.warning("loss_timeout_s=%g is under 5 sample intervals of %s (%g Hz): expect false losses",
                        self.loss_timeout_s, self.predicate, self.nominal_srate_hz)
        self._conn = conn
        self.connected, self.in_gap = True, False
        self._stop.clear()
        watch = threading.Thread(target=self._monitor_loop, name=f"lsl-monitor[{self.predicate}]", daemon=True)
        self._monitor = SLACK.follow(watch)  # keeps to a real-time session's slack (rtsnn.clock)
        self._monitor.start()

    # ------------------------------------------------------------------ per tick
    def pull(self, samples_out: np.ndarray, timestamps_out: np.ndarray) -> int:
        """Copy every sample that arrived since the last call (at most ``max_samples`` and the
        buffers' length) into ``samples_out``/``timestamps_out``, repaired; return how many."""
        conn = self._conn
        if conn is None:
            return 0
        cap = samples_out.shape[0]
        if cap > self.max_samples:
            cap = self.max_samples
        puller = conn.puller
        n = puller.pull(cap)
        now = lslraw.local_clock()
        if puller.error != 0 or n == 0:
            self._nothing_pulled(conn, puller.error, now)
            return 0
        self._last_sample_s = now
        if self.in_gap:  # first sample through a re-attached inlet: the gap is over
            self.in_gap = False
            self.reconnects += 1
        return repair_chunk(puller.data, puller.timestamps, n, self._offset_s, now, self.max_backlog_s,
                            self.max_jump_s, self._policy, self._last_good, self._prev_ts, samples_out,
                            timestamps_out, self._counters)

    def _nothing_pulled(self, conn: _Conn, error: int, now: float) -> None:
        """Compute thread, a pull that brought no sample: liblsl's lost error loses the inlet,
        another error is counted in ``errors``; no error but a silence (since the last sample,
        or since the inlet was attached while in a gap) longer than ``loss_timeout_s`` loses it."""
        if error != 0:
            if error == lslraw.LSL_LOST_ERROR:
                self._lose(conn, by_liblsl=True)
            else:
                self.errors += 1
        elif now - (self._last_sample_s if not self.in_gap else conn.attached_at) > self.loss_timeout_s:
            self._lose(conn, by_liblsl=False)

    def _lose(self, conn: _Conn, by_liblsl: bool) -> None:
        """Compute thread: detach the inlet and leave it to the monitor."""
        if not self.in_gap:
            self.losses += 1
            self.in_gap = True
        self._lost_uid = conn.uid
        self._lost_by_liblsl = by_liblsl
        self._retired.append(conn)  # keeps it alive: only the monitor destroys inlets
        self.connected = False
        self._conn = None  # last: the monitor may swap a new inlet in from here on

    # ------------------------------------------------------------------ background
    def _monitor_loop(self) -> None:
        next_clock = time.monotonic()
        while not self._stop.is_set():
            SLACK.wait()  # out of a real-time session's ticks (its compute thread shares the GIL)
            self._destroy_retired()
            conn = self._conn
            if conn is None:
                if not self.recover:
                    self._stop.wait(RESOLVE_RETRY_S)
                    continue
                started = time.monotonic()
                self._try_reconnect()  # a resolve that finds nothing waits RESOLVE_RETRY_S itself
                if self._conn is None:
                    self._stop.wait(max(0.0, RESOLVE_RETRY_S - (time.monotonic() - started)))
                continue
            if time.monotonic() >= next_clock:
                # until liblsl has its first estimate (~0.6 s) ask often with a short wait
                # (liblsl keeps measuring in between), so close() is never held up long
                next_clock = time.monotonic() + (CLOCK_REFRESH_S if self._offset_known else 0.0)
                offset = conn.puller.time_correction(0.0 if self._offset_known else 0.1)
                if offset is not None:
                    self._offset_s, self._offset_known = offset, True
            self._stop.wait(SLACK.aligned(0.05))
        self._destroy_retired()

    def _destroy_retired(self) -> None:
        while self._retired:
            keep = self._retired.pop()
            if keep is self._conn:  # re-attached: still in use
                continue
            keep.destroy()

    def _try_reconnect(self) -> None:
        try:
            found = self._resolve(RESOLVE_RETRY_S)
        except Exception as err:  # noqa: BLE001 - keep trying, never crash the session
            self.errors += 1
            log.error("resolving %s failed: %s", self.predicate, err)
            return
        if self._lost_by_liblsl:  # that outlet is gone; a stale answer must not win
            found = [i for i in found if i.uid() != self._lost_uid]
        if self.identity:
            found = [i for i in found if not self._impostor(i)]
        if not found:
            return
        found.sort(key=lambda i: i.created_at(), reverse=True)
        info = found[0]
        try:
            self._check(info)
        except StreamMismatchError as err:
            self.mismatches += 1
            if self.mismatches % 50 == 1:  # retried every 0.2 s: log the first and then every 10 s
                log.error("not reconnecting (%d attempts so far): %s", self.mismatches, err)
            return
        try:
            conn = self._connect(info)
        except Exception as err:  # noqa: BLE001
            self.errors += 1
            log.error("reconnecting to %s failed: %s", self.predicate, err)
            return
        self._offset_known = False  # a new connection (maybe a new host): estimate again
        conn.attached_at = lslraw.local_clock()
        self.connected = True
        self._conn = conn  # the swap: the compute thread picks it up at its next pull
        log.info("LSL stream %s re-attached (uid %s)", self.predicate, conn.uid)

    def _impostor(self, info: pylsl.StreamInfo) -> bool:
        """True (and counted, logged, recorded once per stream uid) when ``info`` matches the
        predicate but is not the pinned stream."""
        got = _identity(info)
        if got == self.identity:
            return False
        uid = info.uid()
        if uid not in self._impostor_uids:
            self._impostor_uids.add(uid)
            self.impostors_refused += 1
            diff = ", ".join(f"{k} {got.get(k)!r} (pinned {v!r})" for k, v in self.identity.items()
                             if got.get(k) != v)
            text = f"LSL source {self.predicate}: refused a stream with another identity: {diff}"
            log.warning("%s; not attaching it (set pin: none to allow any matching stream)", text)
            with self._events_lock:
                if len(self._events) < MAX_EVENTS:
                    self._events.append((text, lslraw.local_clock()))
        return True

    def take_events(self) -> list[tuple[str, float]]:
        """Events for the session's recording since the last call: ``(text, t_s)`` (LSL clock)."""
        with self._events_lock:
            out, self._events = self._events, []
        return out

    def close(self) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5.0)
            self._monitor = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.destroy()
        self._destroy_retired()
        self.connected = False

    # ------------------------------------------------------------------ report
    def lsl_streams(self) -> list[dict[str, str]]:
        """The stream this source reads (see :mod:`rtsnn.protocols`): after ``open`` the one it
        resolved, before it what the config asked for."""
        if self.resolved:
            return [{**self.resolved, "direction": "in", "match": self.predicate}]
        return [{"name": self.name or "", "type": self.type or "", "direction": "in", "match": self.predicate}]

    def stats(self) -> dict[str, Any]:
        c = self._counters
        return {
            "samples": int(c[SAMPLES]),
            "repaired_values": int(c[REPAIRED]),
            "dropped_samples": int(c[DROPPED_NONFINITE] + c[DROPPED_BACKLOG]),
            "dropped_nonfinite": int(c[DROPPED_NONFINITE]),
            "dropped_backlog": int(c[DROPPED_BACKLOG]),
            "ts_backwards": int(c[TS_BACKWARDS]),
            "ts_jumps": int(c[TS_JUMPS]),
            "losses": self.losses,
            "reconnects": self.reconnects,
            "mismatches": self.mismatches,
            "impostors_refused": self.impostors_refused,
            "pinned": dict(self.identity),
            "errors": self.errors,
            "connected": bool(self.connected),
            "in_gap": bool(self.in_gap),
            "clock_offset_s": float(self._offset_s),
            "nominal_srate_hz": self.nominal_srate_hz,
            "predicate": self.predicate,
        }
