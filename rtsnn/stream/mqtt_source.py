"""Teaching signals, rewards and control messages from MQTT.

Topics (``prefix`` ``rtsnn`` by default; see :mod:`rtsnn.stream.mqtt_common`):

``rtsnn/<session>/teaching``
    The target vector: a list of ``n_channels`` numbers, a bare number when
    ``n_channels == 1``, or ``{"values": [...], "t": t_s}``. Read through
    :class:`MqttSource` (entry point ``rtsnn.sources: mqtt``), a Source whose ``pull`` fills the
    session's teacher buffers.
``rtsnn/<session>/reward``
    A number, or ``{"reward": r, "t": t_s}``. Read through ``MqttSource.poll_reward()`` or
    :class:`MqttRewardSource` (entry point ``rtsnn.rewards: mqtt``), which follows the
    :class:`rtsnn.protocols.RewardSource` contract: ``poll() -> (summed reward, t_s) | None``.
``rtsnn/<session>/control``
    ``{"cmd": "pause_learning"}``, ``{"cmd": "resume_learning"}``,
    ``{"cmd": "set_learning_rate", "value": 1e-4}`` (JSON or msgpack), or the bare text
    ``pause_learning`` / ``resume_learning``. Read with ``poll_control() -> list[ControlMessage]``;
    :func:`rtsnn.control_messages.apply_control` hands one message to a learner.

Timestamps (``timestamps=``): ``'receipt'`` (default) stamps each message with this machine's
LSL clock when it arrives, so it is comparable with the session's other timestamps;
``'payload'`` uses the message's ``"t"`` (the sender's clock: only meaningful when the sender
stamps with the same LSL clock) and falls back to receipt time, counted in ``no_payload_t``.

Bad messages are never passed on and never raise in the session: undecodable payloads
(``bad_payload``), a teaching vector of the wrong length (``bad_shape``), non-finite values
(``nonfinite``), unknown control commands or bad learning rates (``bad_control``) are counted,
and the last reason is kept in ``last_bad``. Queues are bounded; when full the oldest entry is
dropped and counted (``dropped_teaching``, reward ``dropped``, ``dropped_control``).

Threads: messages arrive on a daemon thread running an asyncio loop (reconnecting with
exponential backoff; ``connects``/``disconnects`` counted); the compute thread's ``pull``,
``poll_reward`` and ``poll_control`` only try a lock held for O(1) queue operations and return
nothing this tick if it is busy, so they never wait.
"""

from __future__ import annotations

import asyncio
import collections
import math
import socket
import threading
from typing import Any, Callable

import numpy as np
import pylsl

from rtsnn.control_messages import CONTROL_COMMANDS, ControlMessage, parse_control
from rtsnn.extras import require
from rtsnn.stream.mqtt_common import (READ_FORMATS, BrokerSettings, LoopThread, PayloadError, check_segment,
                                      decode_payload, log, require_mqtt, scrub, topic)
from rtsnn.stream.supervise import Backoff

TIMESTAMPS = ("receipt", "payload")


def _finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class _Subscriber:
    """One broker connection that routes messages of a few topics to handlers (loop thread)."""

    def __init__(self, name: str, broker: BrokerSettings, handlers: dict[str, Callable[[bytes], None]],
                 backoff: Backoff):
        self.name = name
        self.broker = broker
        self.handlers = handlers
        self.backoff = backoff
        self._thread = LoopThread(name)
        self._stop_event: asyncio.Event | None = None
        self._closing = False
        self.connected = False
        self.subscribed = threading.Event()
        self.connects = 0
        self.disconnects = 0
        self.messages = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self.broker.client_kwargs()  # refuse a half-set secret pair here, in the caller's thread
        self._thread.start(self._main)

    def stop(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._stop_event is not None:
            self._thread.call(self._stop_event.set)
        self._thread.stop(3.0)
        self.connected = False

    async def _main(self) -> None:
        aiomqtt = require("aiomqtt", "MQTT inputs")

        self._stop_event = asyncio.Event()
        while not self._closing:
            try:
                async with aiomqtt.Client(**self.broker.client_kwargs()) as client:
                    self.connected = True
                    self.connects += 1
                    for t in self.handlers:
                        await client.subscribe(t, qos=0)
                    self.backoff.reset()
                    self.subscribed.set()
                    reader = asyncio.ensure_future(self._read(client))
                    stopper = asyncio.ensure_future(self._stop_event.wait())
                    done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    for fut in (reader, stopper):
                        if fut not in done:
                            fut.cancel()
                    if reader in done and reader.exception() is not None:
                        raise reader.exception()
                    if self._closing:
                        self.connected = False
                        return
            except aiomqtt.MqttError as err:
                if self.connected:
                    self.disconnects += 1
                self.connected = False
                self.subscribed.clear()
                self._error(err)
            except (OSError, ValueError) as err:
                self.connected = False
                self.subscribed.clear()
                self._error(err)
            if self._closing:
                return
            try:
                await asyncio.wait_for(self._stop_event.wait(), self.backoff.next())
            except asyncio.TimeoutError:
                pass

    async def _read(self, client) -> None:
        async for m in client.messages:
            self.messages += 1
            h = self.handlers.get(str(m.topic))
            if h is not None:
                payload = m.payload
                h(payload if isinstance(payload, (bytes, bytearray)) else str(payload).encode())

    def _error(self, err: BaseException) -> None:
        self.last_error = scrub(f"{type(err).__name__}: {err}", *self.broker.secrets())
        log.warning("%s: %s", self.name, self.last_error)


def _broker_from(host, port, keepalive_s, connect_timeout_s, tls, tls_ca_file, tls_insecure, username_env,
                 password_env, client_id, session, role) -> BrokerSettings:
    return BrokerSettings(host=host, port=port, keepalive_s=keepalive_s, connect_timeout_s=connect_timeout_s,
                          tls=tls, tls_ca_file=tls_ca_file, tls_insecure=tls_insecure,
                          username_env=username_env, password_env=password_env,
                          client_id=client_id or f"rtsnn-{session}-{role}-{socket.gethostname()}")


class MqttSource:
    """Teaching vectors (as a Source), rewards and control messages from one MQTT connection.

    See the module docstring for topics, payloads, timestamps and counters.
    """

    def __init__(self, session: str = "rtsnn", n_channels: int = 1, host: str = "127.0.0.1", port: int = 1883, *,
                 prefix: str = "rtsnn", payload_format: str = "auto", timestamps: str = "receipt",
                 teaching: bool = True, reward: bool = True, control: bool = True, queue_size: int = 1024,
                 keepalive_s: int = 10, connect_timeout_s: float = 3.0, tls: bool = False,
                 tls_ca_file: str | None = None, tls_insecure: bool = False,
                 username_env: str = "RTSNN_MQTT_USERNAME", password_env: str = "RTSNN_MQTT_PASSWORD",
                 client_id: str | None = None, backoff_initial_s: float = 0.1, backoff_max_s: float = 5.0,
                 anonymous_control_topic: str | None = None):
        from rtsnn.stream.reward_queue import QueueRewardSource

        self.session = check_segment(session, "session")
        self.prefix = check_segment(prefix, "prefix")
        if int(n_channels) != n_channels or n_channels < 1:
            raise ValueError(f"n_channels must be a positive integer, got {n_channels!r}")
        if payload_format not in READ_FORMATS:
            raise ValueError(f"payload_format must be one of {READ_FORMATS}, got {payload_format!r}")
        require_mqtt("MQTT inputs")  # at build time, so a missing extra stops the session before it starts
        if timestamps not in TIMESTAMPS:
            raise ValueError(f"timestamps must be one of {TIMESTAMPS}, got {timestamps!r}")
        if int(queue_size) != queue_size or queue_size < 1:
            raise ValueError(f"queue_size must be a positive integer, got {queue_size!r}")
        if not (teaching or reward or control):
            raise ValueError("MqttSource: at least one of teaching, reward, control must be True")
        self.n_channels = int(n_channels)
        self.payload_format = payload_format
        self.timestamps = timestamps
        self.queue_size = int(queue_size)
        self.broker = _broker_from(host, port, keepalive_s, connect_timeout_s, tls, tls_ca_file, tls_insecure,
                                   username_env, password_env, client_id, session, "source")
        self.teaching_topic = topic(self.prefix, self.session, "teaching")
        self.reward_topic = topic(self.prefix, self.session, "reward")
        self.control_topic = topic(self.prefix, self.session, "control")
        self.control_off_reason = ""
        if control and self.broker.secrets()[0] is None:
            # whoever may publish on the topic could steer the decoder: without a broker login
            # that is anyone who can reach the broker, so it takes an explicit opt-in by name
            if anonymous_control_topic is None:
                control = False
                self.control_off_reason = (f"MQTT control is off: the broker connection is not authenticated "
                                           f"(set {self.broker.username_env} / {self.broker.password_env}), "
                                           f"or opt in with anonymous_control_topic: {self.control_topic}")
                log.warning("%s", self.control_off_reason)
            elif anonymous_control_topic != self.control_topic:
                raise ValueError(f"anonymous_control_topic {anonymous_control_topic!r} is not this source's "
                                 f"control topic {self.control_topic!r}; name it exactly to opt in")
        self.control_enabled = bool(control)
        handlers: dict[str, Callable[[bytes], None]] = {}
        if teaching:
            handlers[self.teaching_topic] = self._on_teaching
        if reward:
            handlers[self.reward_topic] = self._on_reward
        if control:
            handlers[self.control_topic] = self._on_control
        if not handlers:
            raise ValueError(f"MqttSource {session!r} would subscribe to nothing: {self.control_off_reason}")
        self._sub = _Subscriber(f"rtsnn-mqtt-source-{session}", self.broker, handlers,
                                Backoff(backoff_initial_s, backoff_max_s))
        self._lock = threading.Lock()
        self._teaching: collections.deque = collections.deque()
        self._control: collections.deque = collections.deque()
        self.rewards = QueueRewardSource(maxlen=self.queue_size, clock=pylsl.local_clock)
        self._opened = False
        self.counters = dict(teaching=0, delivered=0, dropped_teaching=0, control=0, dropped_control=0,
                             bad_payload=0, bad_shape=0, nonfinite=0, bad_control=0, no_payload_t=0)
        self.last_bad: str | None = None

    def __repr__(self) -> str:
        return (f"MqttSource(session={self.session!r}, host={self.broker.host!r}, port={self.broker.port}, "
                f"tls={self.broker.tls}, n_channels={self.n_channels})")

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        if self._opened:
            raise RuntimeError("MqttSource.open called twice")
        self._opened = True
        self._sub.start()

    def close(self) -> None:
        self._sub.stop()

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Block until subscribed (set-up and tests only; never from the tick)."""
        return self._sub.subscribed.wait(timeout_s)

    @property
    def connected(self) -> bool:
        return self._sub.connected

    @property
    def in_gap(self) -> bool:
        return not self._sub.connected

    # ------------------------------------------------------------------ compute thread
    def pull(self, samples_out: np.ndarray, timestamps_out: np.ndarray) -> int:
        """Teaching vectors received since the last call (oldest first); never waits."""
        q = self._teaching
        if not q or not self._lock.acquire(blocking=False):
            return 0
        try:
            n = min(len(q), samples_out.shape[0])
            for i in range(n):
                vals, t = q.popleft()
                samples_out[i] = vals
                timestamps_out[i] = t
        finally:
            self._lock.release()
        self.counters["delivered"] += n
        return n

    def poll_reward(self) -> tuple[float, float] | None:
        """Summed reward since the last poll and its newest timestamp, or None."""
        return self.rewards.poll()

    def poll_control(self) -> list[ControlMessage]:
        """Control messages received since the last call, oldest first ([] when none)."""
        q = self._control
        if not q or not self._lock.acquire(blocking=False):
            return []
        try:
            out = list(q)
            q.clear()
        finally:
            self._lock.release()
        return out

    def stats(self) -> dict[str, Any]:
        return {"kind": "mqtt", "session": self.session, "broker": self.broker.public(),
                "connected": self._sub.connected, "connects": self._sub.connects,
                "disconnects": self._sub.disconnects, "messages": self._sub.messages, **self.counters,
                "reward": self.rewards.stats(), "last_bad": self.last_bad, "last_error": self._sub.last_error,
                "control_enabled": self.control_enabled, "control_off_reason": self.control_off_reason}

    # ------------------------------------------------------------------ loop thread
    def _bad(self, counter: str, where: str, why: str) -> None:
        self.counters[counter] += 1
        self.last_bad = f"{where}: {why}"
        log.debug("mqtt source %s: %s", self.session, self.last_bad)

    def _stamp(self, obj: Any) -> float:
        if self.timestamps == "payload":
            t = obj.get("t") if isinstance(obj, dict) else None
            if _finite_number(t):
                return float(t)
            self.counters["no_payload_t"] += 1
        return pylsl.local_clock()

    def _on_teaching(self, payload: bytes) -> None:
        where = self.teaching_topic
        try:
            obj = decode_payload(payload, self.payload_format)
        except PayloadError as err:
            return self._bad("bad_payload", where, str(err))
        vals = obj.get("values") if isinstance(obj, dict) else obj
        if _finite_number(vals) or (isinstance(vals, float) and not math.isfinite(vals)):
            vals = [vals]
        if not isinstance(vals, list) or len(vals) != self.n_channels:
            got = f"{len(vals)} values" if isinstance(vals, list) else type(vals).__name__
            return self._bad("bad_shape", where, f"expected a list of {self.n_channels} numbers, got {got}")
        try:
            arr = np.asarray(vals, dtype=np.float32)
        except (TypeError, ValueError):
            return self._bad("bad_shape", where, "values must all be numbers")
        if not np.all(np.isfinite(arr)):
            return self._bad("nonfinite", where, "non-finite teaching value(s); message dropped")
        t = self._stamp(obj)
        with self._lock:
            if len(self._teaching) >= self.queue_size:
                self._teaching.popleft()
                self.counters["dropped_teaching"] += 1
            self._teaching.append((arr, t))
        self.counters["teaching"] += 1

    def _on_reward(self, payload: bytes) -> None:
        where = self.reward_topic
        try:
            obj = decode_payload(payload, self.payload_format)
        except PayloadError as err:
            return self._bad("bad_payload", where, str(err))
        r = obj.get("reward") if isinstance(obj, dict) else obj
        if isinstance(r, bool) or not isinstance(r, (int, float)):
            return self._bad("bad_payload", where, f"reward must be a number, got {type(r).__name__}")
        if not self.rewards.push(r, self._stamp(obj)):  # non-finite: counted in rewards.bad
            self.last_bad = f"{where}: non-finite reward {r!r} ignored"

    def _on_control(self, payload: bytes) -> None:
        where = self.control_topic
        try:
            obj = decode_payload(payload, self.payload_format)
        except PayloadError as err:
            text = bytes(payload).decode("utf-8", errors="replace").strip()
            if text not in CONTROL_COMMANDS:
                return self._bad("bad_payload", where, str(err))
            obj = text
        try:
            cmd, value = parse_control(obj)
        except ValueError as err:
            return self._bad("bad_control", where, str(err))
        msg = ControlMessage(cmd, value, pylsl.local_clock())
        with self._lock:
            if len(self._control) >= self.queue_size:
                self._control.popleft()
                self.counters["dropped_control"] += 1
            self._control.append(msg)
        self.counters["control"] += 1


class MqttRewardSource:
    """A :class:`rtsnn.protocols.RewardSource` on ``rtsnn/<session>/reward`` (entry point
    ``rtsnn.rewards: mqtt``). Options are :class:`MqttSource`'s; ``open``/``close`` manage the
    connection. ``poll()`` returns the summed reward since the last poll, or None."""

    def __init__(self, session: str = "rtsnn", host: str = "127.0.0.1", port: int = 1883, **options: Any):
        for k in ("teaching", "reward", "control", "n_channels"):
            if k in options:
                raise ValueError(f"MqttRewardSource: option {k!r} is fixed (reward topic only)")
        self.source = MqttSource(session, 1, host, port, teaching=False, reward=True, control=False, **options)

    def __repr__(self) -> str:
        return f"MqttRewardSource({self.source!r})"

    def open(self) -> None:
        self.source.open()

    def close(self) -> None:
        self.source.close()

    def wait_subscribed(self, timeout_s: float) -> bool:
        return self.source.wait_subscribed(timeout_s)

    def poll(self) -> tuple[float, float] | None:
        return self.source.poll_reward()

    def stats(self) -> dict[str, Any]:
        s = self.source.stats()
        return {"kind": "mqtt", "topic": self.source.reward_topic, "connected": s["connected"],
                "connects": s["connects"], "bad_payload": s["bad_payload"], **s["reward"],
                "last_bad": s["last_bad"], "last_error": s["last_error"]}
