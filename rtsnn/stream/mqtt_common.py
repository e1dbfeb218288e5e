"""What the MQTT sink and source share: broker settings, secrets, payload codecs, topics, and
the daemon thread that runs their asyncio loop.

Secrets. The user name and password are read from environment variables (names given by
``username_env`` / ``password_env``, default ``RTSNN_MQTT_USERNAME`` / ``RTSNN_MQTT_PASSWORD``)
only at the moment a connection is made, and are never stored on an object, so ``repr``,
``stats()`` and log lines cannot contain them; error texts are scrubbed of both values
before they are kept or logged (:func:`scrub`). TLS is switched on with ``tls=True``; the CA
file may be given by option or by ``RTSNN_MQTT_CA_FILE``.

Topics. Everything a session publishes or reads lives under ``rtsnn/<session>/``:

=========================== ====== =====================================================
``rtsnn/<s>/command``        out    decoded outputs, QoS 0, one message per published tick
``rtsnn/<s>/status``         out    retained ``online``; the broker publishes the retained
                                    last will ``offline`` if the connection dies uncleanly,
                                    and the sink publishes ``offline`` itself on close
``rtsnn/<s>/meta``           out    retained: channel labels, units, payload format
``rtsnn/<s>/reward``         in     a number, or ``{"reward": r, "t": t_s}``
``rtsnn/<s>/teaching``       in     a list, or ``{"values": [...], "t": t_s}``
``rtsnn/<s>/control``        in     ``{"cmd": "pause_learning" | "resume_learning" |
                                    "set_learning_rate", "value": x}``
=========================== ====== =====================================================

Payloads are JSON (UTF-8) or msgpack; a reader with ``payload_format='auto'`` accepts both
(JSON is tried first for payloads starting with printable ASCII; msgpack maps and arrays start
with bytes >= 0x80). Python's JSON reader accepts ``NaN``/``Infinity``: such values are then
refused as non-finite by the reader, never passed on.
"""

from __future__ import annotations

from rtsnn.errors import RtsnnValueError

import asyncio
import json
import logging
import os
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Callable

from rtsnn.extras import require

log = logging.getLogger("rtsnn.stream.mqtt")

PAYLOAD_FORMATS = ("json", "msgpack")
READ_FORMATS = PAYLOAD_FORMATS + ("auto",)
DEFAULT_USERNAME_ENV = "RTSNN_MQTT_USERNAME"
DEFAULT_PASSWORD_ENV = "RTSNN_MQTT_PASSWORD"
CA_FILE_ENV = "RTSNN_MQTT_CA_FILE"
_FORBIDDEN_IN_SEGMENT = ("/", "+", "#", "\x00")


class PayloadError(RtsnnValueError):
    """A message payload that cannot be decoded or has the wrong shape."""


def check_segment(value: str, what: str) -> str:
    """A topic segment (session name, prefix): non-empty, no '/', '+', '#' or NUL."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    bad = [c for c in _FORBIDDEN_IN_SEGMENT if c in value]
    if bad:
        raise ValueError(f"{what} {value!r} must not contain {' '.join(repr(c) for c in bad)} "
                         f"(MQTT topic separators and wildcards)")
    return value


def topic(prefix: str, session: str, leaf: str) -> str:
    return f"{prefix}/{session}/{leaf}"


def require_mqtt(feature: str) -> None:
    """Raise :class:`rtsnn.extras.MissingExtraError` unless the ``[mqtt]`` extra (aiomqtt for the
    connection, msgpack for payloads) is installed. Stages call it when they are built."""
    require("aiomqtt", feature)
    require("msgpack", feature)


def encode_payload(obj: Any, fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    if fmt == "msgpack":
        return require("msgpack", "MQTT msgpack payloads").packb(obj, use_bin_type=True)
    raise ValueError(f"payload_format must be one of {PAYLOAD_FORMATS}, got {fmt!r}")


def decode_payload(data: bytes | bytearray | str | None, fmt: str) -> Any:
    """Decode one payload; raises :class:`PayloadError` naming the format on failure."""
    if data is None:
        raise PayloadError("empty payload")
    if isinstance(data, str):
        data = data.encode()
    data = bytes(data)
    if not data:
        raise PayloadError("empty payload")
    if fmt == "auto":
        # JSON text first when the payload starts with printable ASCII (maps and arrays in
        # msgpack start with bytes >= 0x80, so they are never mistaken); a short payload that
        # is both (a bare msgpack integer 0x20-0x7e) is read as JSON text, e.g. b"1" -> 1
        first = data[0]
        if 0x20 <= first < 0x7F or first in (0x09, 0x0A, 0x0D):
            try:
                return json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                pass
        fmt = "msgpack"
    msgpack = require("msgpack", "MQTT msgpack payloads") if fmt == "msgpack" else None
    try:
        if fmt == "json":
            return json.loads(data.decode("utf-8"))
        if msgpack is not None:
            return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as err:  # noqa: BLE001 - any decode failure is the payload's fault
        raise PayloadError(f"not valid {fmt}: {type(err).__name__}: {err}") from None
    raise ValueError(f"payload_format must be one of {READ_FORMATS}, got {fmt!r}")


def scrub(text: str, *secrets: str | None) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


@dataclass(frozen=True)
class BrokerSettings:
    """Where and how to connect. Holds the *names* of the secret variables, never values."""

    host: str = "127.0.0.1"
    port: int = 1883
    keepalive_s: int = 10
    connect_timeout_s: float = 3.0
    tls: bool = False
    tls_ca_file: str | None = None
    tls_insecure: bool = False
    username_env: str = DEFAULT_USERNAME_ENV
    password_env: str = DEFAULT_PASSWORD_ENV
    client_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"host must be a non-empty string, got {self.host!r}")
        if int(self.port) != self.port or not 0 < self.port < 65536:
            raise ValueError(f"port must be an integer in 1..65535, got {self.port!r}")
        if int(self.keepalive_s) != self.keepalive_s or self.keepalive_s < 1:
            raise ValueError(f"keepalive_s must be a positive integer, got {self.keepalive_s!r}")
        if not self.connect_timeout_s > 0:
            raise ValueError(f"connect_timeout_s must be > 0, got {self.connect_timeout_s!r}")
        if self.tls_ca_file is not None and not os.path.isfile(self.tls_ca_file):
            raise ValueError(f"tls_ca_file {self.tls_ca_file!r} does not exist")

    def secrets(self) -> tuple[str | None, str | None]:
        return os.environ.get(self.username_env) or None, os.environ.get(self.password_env) or None

    def public(self) -> dict[str, Any]:
        """What may appear in stats and logs (no secret values; only whether they were set)."""
        user, pw = self.secrets()
        return {"host": self.host, "port": self.port, "tls": self.tls, "username_set": user is not None,
                "password_set": pw is not None}

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``aiomqtt.Client`` (built per connection; do not keep them)."""
        user, pw = self.secrets()
        if pw is not None and user is None:
            raise ValueError(f"{self.password_env} is set but {self.username_env} is not; MQTT needs a user name "
                             f"to send a password")
        kw: dict[str, Any] = dict(hostname=self.host, port=int(self.port), username=user, password=pw,
                                  keepalive=int(self.keepalive_s), timeout=float(self.connect_timeout_s),
                                  identifier=self.client_id, logger=log)
        if self.tls:
            ca = self.tls_ca_file or os.environ.get(CA_FILE_ENV) or None
            ctx = ssl.create_default_context(cafile=ca)
            if self.tls_insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            kw["tls_context"] = ctx
        return kw


class LoopThread:
    """A daemon thread running one asyncio loop for one sink or source.

    The sink and source own their loop rather than borrowing the session's I/O loop, so they
    work under any session (and in tests) and a stuck broker call can never delay the
    session's own I/O work. ``run(coro_fn)`` starts ``coro_fn()`` on the loop; ``stop``
    cancels it (after ``coro_fn``'s own clean shutdown had ``timeout_s`` to finish).
    """

    def __init__(self, name: str):
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self._task: asyncio.Task | None = None
        self._ready = threading.Event()

    def start(self, coro_fn: Callable[[], Any]) -> None:
        if self.thread is not None:
            raise RuntimeError(f"{self.name}: started twice")

        def main() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            self._task = loop.create_task(coro_fn())
            self._ready.set()
            try:
                loop.run_until_complete(self._task)
            except asyncio.CancelledError:
                pass
            except Exception:  # noqa: BLE001 - reported by the owner's counters; never raise in a thread
                log.exception("%s: loop ended with an error", self.name)
            finally:
                try:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                finally:
                    loop.close()

        self.thread = threading.Thread(target=main, name=self.name, daemon=True)
        self.thread.start()
        self._ready.wait(5.0)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` on the loop from any thread (no-op once it has stopped)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # closed between the check and the call
                pass

    def stop(self, timeout_s: float = 3.0) -> None:
        th = self.thread
        if th is None:
            return
        th.join(timeout_s)
        if th.is_alive() and self._task is not None:
            self.call(self._task.cancel)
            th.join(2.0)


MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    import shutil

    for p in MOSQUITTO_PATHS:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return shutil.which("mosquitto")


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PrivateBroker:
    """A throwaway mosquitto on a loopback port (tests, benchmarks, demos).

    Writes a config with one ``listener PORT 127.0.0.1``, anonymous clients allowed unless a
    ``password_file`` is given, TLS when ``tls_cert``/``tls_key`` are given, no persistence; ``start`` returns once the port accepts TCP
    connections. ``stop`` kills it (SIGKILL: clients see the connection drop, as when a
    broker machine dies); ``start`` again reuses the same port.
    """

    def __init__(self, workdir: str, port: int | None = None, password_file: str | None = None,
                 binary: str | None = None, tls_cert: str | None = None, tls_key: str | None = None):
        self.binary = binary or find_mosquitto()
        if self.binary is None:
            raise FileNotFoundError("mosquitto not found (Debian/Ubuntu: apt-get install -y mosquitto)")
        self.workdir = workdir
        self.port = port or free_port()
        self.conf = os.path.join(workdir, f"mosquitto-{self.port}.conf")
        import getpass

        # run as ourselves: mosquitto started as root would switch to user 'mosquitto', which
        # cannot read files in a private temporary folder
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr",
                 "log_type error", f"user {getpass.getuser()}"]
        if password_file:
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if tls_cert or tls_key:
            if not (tls_cert and tls_key):
                raise ValueError("PrivateBroker: TLS needs both tls_cert and tls_key")
            lines += [f"certfile {tls_cert}", f"keyfile {tls_key}"]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def start(self, timeout_s: float = 5.0) -> "PrivateBroker":
        import socket
        import subprocess
        import time

        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("broker already running")
        self.log_path = os.path.join(self.workdir, f"mosquitto-{self.port}.log")
        with open(self.log_path, "ab") as logf:  # a file, not a pipe: a full pipe would stall the broker
            self.proc = subprocess.Popen([self.binary, "-c", self.conf], stdout=subprocess.DEVNULL, stderr=logf)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                with open(self.log_path, "rb") as f:
                    err = f.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"mosquitto did not accept connections on port {self.port} within {timeout_s} s")

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(5)
