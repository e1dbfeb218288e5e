"""Decoded commands to an MQTT broker (a session Sink, entry point ``mqtt``).

Threads. ``emit`` runs in the compute thread and only writes one row into a preallocated
ring (``seq, t_source, t_emit, values``) and, when the publisher is idle, wakes it with one
non-blocking ``call_soon_threadsafe``: the tick never waits for the broker. A daemon thread
owned by the sink runs an asyncio loop with one ``aiomqtt.Client``; it drains the ring and
publishes each row as one QoS 0 message on ``rtsnn/<session>/command``::

    {"seq": 17, "t_source": 1234.5678, "t_emit": 1234.5691, "ttl_s": 0.1, "values": [0.2, -0.1]}

``seq`` counts every command the session produced (gaps in ``seq`` at the receiver are
commands dropped on the way), ``t_source`` is the LSL timestamp (s) of the newest input
sample the command was decoded from, ``t_emit`` the LSL clock when the session emitted it,
``ttl_s`` how long it stays valid: a receiver must ignore a command whose ``t_emit + ttl_s``
has passed. QoS 0 on purpose: a stale actuator command redelivered is worse than a dropped one.

Drops, all counted in ``stats()``: the ring is bounded (``queue_size``); when it is full the
*oldest* command is overwritten (``dropped_overflow``); a command already older than
``ttl_s`` when its turn to be published comes (typically queued while the broker was away) is
discarded (``dropped_expired``); a publish that fails because the connection broke is
``publish_errors``. While connected and keeping up, ``produced = published + dropped_* +
publish_errors + queued`` holds exactly.

Connection: a retained ``online`` on ``rtsnn/<session>/status`` after each connect, with the
retained last will ``offline`` (published by the broker if the sink dies without closing)
and an explicit retained ``offline`` on ``close``; a retained ``rtsnn/<session>/meta`` with
labels and units. A lost broker is retried with exponential backoff (``backoff_initial_s``
doubling up to ``backoff_max_s``); publishing resumes on its own when the broker returns.
Credentials: see :mod:`rtsnn.stream.mqtt_common` (environment only, never logged).
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from typing import Any

import numpy as np
import pylsl

from rtsnn.extras import require
from rtsnn.stream.mqtt_common import (PAYLOAD_FORMATS, BrokerSettings, LoopThread, check_segment,
                                      encode_payload, log, require_mqtt, scrub, topic)
from rtsnn.stream.ring import Ring
from rtsnn.stream.supervise import Backoff

COL_SEQ, COL_T_SOURCE, COL_T_EMIT, N_HEAD = 0, 1, 2, 3


def command_ring(capacity: int, n_values: int) -> Ring:
    """The sink's command queue: a :class:`rtsnn.stream.ring.Ring` of rows ``seq, t_source,
    t_emit, values...`` (float64) that overwrites its *oldest* row when full; the publisher
    takes rows with ``pop_into`` and the rows overwritten before it got to them are counted
    (``Ring.lost()``). Row ``k`` carries ``seq = k``."""
    if int(capacity) != capacity or capacity < 1:
        raise ValueError(f"queue_size must be a positive integer, got {capacity!r}")
    return Ring(int(capacity), N_HEAD + int(n_values), np.float64, drop="oldest", name="queue_size")


class MqttSink:
    """Publishes decoded outputs to MQTT (see the module docstring).

    ``every_n_ticks`` publishes one emit in n (actuators rarely want 1 kHz); the others are
    not queued and not counted as drops. ``round_digits`` (None: full precision) shortens JSON
    payloads.
    """

    def __init__(self, session: str = "rtsnn", host: str = "127.0.0.1", port: int = 1883, *,
                 prefix: str = "rtsnn", payload_format: str = "json", ttl_s: float = 0.1,
                 every_n_ticks: int = 1, queue_size: int = 256, keepalive_s: int = 10,
                 connect_timeout_s: float = 3.0, tls: bool = False, tls_ca_file: str | None = None,
                 tls_insecure: bool = False, username_env: str = "RTSNN_MQTT_USERNAME",
                 password_env: str = "RTSNN_MQTT_PASSWORD", client_id: str | None = None,
                 backoff_initial_s: float = 0.1, backoff_max_s: float = 5.0, round_digits: int | None = None,
                 optional: bool = False):
        self.session = check_segment(session, "session")
        self.optional = bool(optional)
        self.prefix = check_segment(prefix, "prefix")
        if payload_format not in PAYLOAD_FORMATS:
            raise ValueError(f"payload_format must be one of {PAYLOAD_FORMATS}, got {payload_format!r}")
        # here, not on the loop thread: without the [mqtt] extra the session must refuse to start
        # (a sink whose thread died on import would take outputs and publish none)
        require_mqtt("the MQTT sink")
        if not (isinstance(ttl_s, (int, float)) and math.isfinite(ttl_s) and ttl_s > 0):
            raise ValueError(f"ttl_s must be a finite number > 0, got {ttl_s!r}")
        if int(every_n_ticks) != every_n_ticks or every_n_ticks < 1:
            raise ValueError(f"every_n_ticks must be a positive integer, got {every_n_ticks!r}")
        if int(queue_size) != queue_size or queue_size < 1:
            raise ValueError(f"queue_size must be a positive integer, got {queue_size!r}")
        if round_digits is not None and (int(round_digits) != round_digits or round_digits < 0):
            raise ValueError(f"round_digits must be a non-negative integer or None, got {round_digits!r}")
        self.broker = BrokerSettings(host=host, port=port, keepalive_s=keepalive_s,
                                     connect_timeout_s=connect_timeout_s, tls=tls, tls_ca_file=tls_ca_file,
                                     tls_insecure=tls_insecure, username_env=username_env,
                                     password_env=password_env,
                                     client_id=client_id or f"rtsnn-{session}-sink-{socket.gethostname()}")
        self.payload_format = payload_format
        self.ttl_s = float(ttl_s)
        self.every_n_ticks = int(every_n_ticks)
        self.queue_size = int(queue_size)
        self.round_digits = round_digits
        self.backoff = Backoff(backoff_initial_s, backoff_max_s)
        self.command_topic = topic(self.prefix, self.session, "command")
        self.status_topic = topic(self.prefix, self.session, "status")
        self.meta_topic = topic(self.prefix, self.session, "meta")

        self.ring: Ring | None = None  # command_ring(), made by open()
        self._stage: np.ndarray | None = None  # the row emit() composes before pushing it
        self.channel_labels: list[str] = []
        self.units: list[str] = []
        self._thread = LoopThread(f"rtsnn-mqtt-sink-{session}")
        self._wake: asyncio.Event | None = None
        self._idle = False  # publisher waiting for work (set by it, cleared by emit)
        self._closing = False
        self._emits = 0
        self.connected = False
        self.connects = 0
        self.disconnects = 0
        self.published = 0
        self.dropped_expired = 0
        self.publish_errors = 0
        self.last_error: str | None = None
        self.fatal: str | None = None  # set when retrying cannot help (the broker refused the login)

    def __repr__(self) -> str:
        b = self.broker
        return (f"MqttSink(session={self.session!r}, host={b.host!r}, port={b.port}, tls={b.tls}, "
                f"payload_format={self.payload_format!r}, ttl_s={self.ttl_s})")

    # ------------------------------------------------------------------ compute thread
    def open(self, channel_labels: list[str], units: list[str]) -> None:
        if self.ring is not None:
            raise RuntimeError("MqttSink.open called twice")
        labels = [str(x) for x in channel_labels]
        if not labels:
            raise ValueError("MqttSink.open needs at least one channel label, got none")
        if len(units) != len(labels):
            raise ValueError(f"MqttSink.open: {len(labels)} channel labels but {len(units)} units")
        self.broker.client_kwargs()  # refuse a half-configured secret set now, not in the thread
        self.channel_labels, self.units = labels, [str(u) for u in units]
        self.ring = command_ring(self.queue_size, len(labels))
        self._stage = np.zeros(N_HEAD + len(labels), np.float64)
        self._thread.start(self._main)

    def emit(self, values: np.ndarray, t_source: float) -> None:
        """Queue one command (non-blocking; a full queue overwrites the oldest)."""
        self._emits += 1
        if self._emits % self.every_n_ticks:
            return
        ring, st = self.ring, self._stage
        st[COL_SEQ] = ring.head
        st[COL_T_SOURCE] = t_source
        st[COL_T_EMIT] = pylsl.local_clock()
        st[N_HEAD:] = values
        ring.push(st)  # one row copy; a full queue overwrites its oldest row
        if self._idle:
            self._idle = False
            self._thread.call(self._wake.set)

    def stats(self) -> dict[str, Any]:
        ring = self.ring
        produced = ring.head if ring is not None else 0
        return {"kind": "mqtt", "session": self.session, "topic": self.command_topic, "broker": self.broker.public(),
                "connected": self.connected, "connects": self.connects, "disconnects": self.disconnects,
                "produced": produced, "published": self.published,
                "dropped_overflow": ring.lost() if ring is not None else 0,
                "dropped_expired": self.dropped_expired, "publish_errors": self.publish_errors,
                "queued": len(ring) if ring is not None else 0, "last_error": self.last_error,
                "failed": self.fatal}

    def failure(self) -> str | None:
        """Why this sink cannot work at all (the broker refused its login), else None. A session
        ends with a non-zero status on it unless the sink was configured ``optional: true``."""
        return None if self.optional else self.fatal

    def close(self, timeout_s: float = 3.0) -> None:
        """Publish what is queued (within ``timeout_s``), the retained ``offline``, disconnect."""
        if self.ring is None or self._closing:
            return
        self._closing = True
        self._thread.call(self._wake.set)
        self._thread.stop(timeout_s)
        self.connected = False

    # ------------------------------------------------------------------ I/O thread
    def _error(self, err: BaseException) -> None:
        self.last_error = scrub(f"{type(err).__name__}: {err}", *self.broker.secrets())
        log.warning("mqtt sink %s: %s", self.session, self.last_error)

    async def _main(self) -> None:
        aiomqtt = require("aiomqtt", "the MQTT sink")

        self._wake = asyncio.Event()
        meta = encode_payload({"labels": self.channel_labels, "units": self.units,
                               "payload_format": self.payload_format, "ttl_s": self.ttl_s,
                               "every_n_ticks": self.every_n_ticks}, "json")
        while not self._closing:
            try:
                will = aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True)
                async with aiomqtt.Client(**self.broker.client_kwargs(), will=will) as client:
                    self.connected = True
                    self.connects += 1
                    await client.publish(self.status_topic, b"online", qos=1, retain=True)
                    await client.publish(self.meta_topic, meta, qos=1, retain=True)
                    self.backoff.reset()
                    await self._publish_loop(client)
                    # clean shutdown: the will is not sent on a clean disconnect, so say it ourselves
                    await client.publish(self.status_topic, b"offline", qos=1, retain=True, timeout=1.0)
                    self.connected = False
                    return
            except aiomqtt.MqttError as err:
                if self.connected:
                    self.disconnects += 1
                self.connected = False
                self._error(err)
                if _login_refused(err):  # retrying with the same credentials cannot help
                    self.fatal = (f"MQTT sink {self.session!r}: the broker {self.broker.host}:{self.broker.port} "
                                  f"refused the login ({self.last_error}); check {self.broker.username_env} / "
                                  f"{self.broker.password_env}")
                    log.error("%s", self.fatal)
                    return
            except (OSError, ValueError) as err:  # DNS failure, TLS set-up
                self.connected = False
                self._error(err)
            if self._closing:
                return
            delay = self.backoff.next()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)  # close() wakes us early
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def _publish_loop(self, client) -> None:
        aiomqtt = require("aiomqtt", "the MQTT sink")

        ring = self.ring
        row = np.zeros(ring.values.shape[1], np.float64)
        rows = row[None, :]  # pop_into takes a block of rows: this one
        fmt, ttl, digits = self.payload_format, self.ttl_s, self.round_digits
        wake = self._wake
        disconnected = getattr(client, "_disconnected", None)  # aiomqtt's own lost-connection future
        while True:
            if not ring.pop_into(rows):
                if self._closing:
                    return
                if disconnected is not None and disconnected.done():
                    raise aiomqtt.MqttError("connection to the broker lost")
                wake.clear()
                self._idle = True
                if ring.head == ring.tail and not self._closing:  # re-check: emit may have raced us
                    try:
                        await asyncio.wait_for(wake.wait(), 0.1)
                    except asyncio.TimeoutError:
                        pass
                self._idle = False
                continue
            t_emit = float(row[COL_T_EMIT])
            if pylsl.local_clock() - t_emit > ttl:
                self.dropped_expired += 1
                continue
            vals = row[N_HEAD:]
            msg = {"seq": int(row[COL_SEQ]), "t_source": float(row[COL_T_SOURCE]), "t_emit": t_emit,
                   "ttl_s": ttl,
                   "values": [round(float(v), digits) if digits is not None else float(v) for v in vals]}
            if not all(math.isfinite(v) for v in msg["values"]):
                # JSON has no NaN: send null for a non-finite output (the receiver sees it is invalid)
                msg["values"] = [v if math.isfinite(v) else None for v in msg["values"]]
            try:
                await client.publish(self.command_topic, encode_payload(msg, fmt), qos=0)
            except aiomqtt.MqttError:
                self.publish_errors += 1
                raise
            self.published += 1


# CONNACK codes of a refused login: MQTT 3.1.1 (4 bad user name or password, 5 not authorised)
# and MQTT 5 (134, 135)
_LOGIN_REFUSED = (4, 5, 134, 135)


def _login_refused(err: BaseException) -> bool:
    """True for a CONNACK that refused the login; aiomqtt raises those as MqttConnectError (its
    other MqttCodeErrors reuse the small numbers for paho's own codes: rc 4 there is "not
    currently connected", a broker that went away, which retrying does cure)."""
    if not any(c.__name__ == "MqttConnectError" for c in type(err).__mro__):
        return False
    rc = getattr(err, "rc", None)
    value = getattr(rc, "value", rc)
    return isinstance(value, int) and value in _LOGIN_REFUSED


def wait_until(pred, timeout_s: float, interval_s: float = 0.01) -> bool:
    """Poll ``pred()`` until true or ``timeout_s`` passed (tests and scripts)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval_s)
    return bool(pred())
