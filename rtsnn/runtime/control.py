"""A running session's local control channel: ``rtsnn control pause|resume|rate``.

Each session binds a Unix datagram socket in Linux's abstract namespace (no file to clean up;
address ``\\0rtsnn-control/<session name>/<pid>``) and writes the address into
``<session folder>/control.json``. A datagram is one JSON object, the payload of the MQTT
control topic: ``{"cmd": "pause_learning"}``, ``{"cmd": "resume_learning"}`` or
``{"cmd": "set_learning_rate", "value": 1e-4}``. The session's I/O thread drains the socket
(non-blocking) with the other control inputs and hands each message to the learner
(``apply_control``); malformed datagrams are counted, never raised. Only processes of this
machine can reach the socket (abstract Unix sockets are not on any network).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from rtsnn.control_messages import ControlMessage, parse_control

CONTROL_FILE = "control.json"


def supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "AF_UNIX")


class ControlSocket:
    """Session side: ``poll_control() -> list[ControlMessage]`` (the protocol the session's
    control dispatch uses for its sources), ``stats()``, ``close()``."""

    def __init__(self, folder: str | Path, session_name: str, max_per_poll: int = 64):
        self.address = f"\0rtsnn-control/{session_name}/{os.getpid()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.address)
        self.sock.setblocking(False)
        self.max_per_poll = int(max_per_poll)
        self.received = 0
        self.bad = 0
        self.last_error = ""
        self.path = Path(folder) / CONTROL_FILE
        self.path.write_text(json.dumps({"socket": "@" + self.address[1:], "pid": os.getpid(),
                                         "session": session_name}))

    def poll_control(self) -> list[ControlMessage]:
        from pylsl import local_clock

        out: list[ControlMessage] = []
        for _ in range(self.max_per_poll):
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as err:  # a closed socket: nothing more to read
                self.last_error = str(err)
                break
            self.received += 1
            try:
                cmd, value = parse_control(json.loads(data.decode("utf-8")))
            except (ValueError, UnicodeDecodeError) as err:
                self.bad += 1
                self.last_error = str(err)[:200]
                continue
            out.append(ControlMessage(cmd, value, local_clock()))
        return out

    def stats(self) -> dict[str, Any]:
        return {"received": self.received, "bad": self.bad, "last_error": self.last_error}

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            try:
                self.path.unlink()
            except OSError:
                pass


def find_session(name: str, out_dir: str | Path = "sessions") -> Path:
    """The newest running session folder ``<out_dir>/<name>-<UTC time>`` (one with a
    ``control.json``); raises ValueError naming what was searched."""
    base = Path(out_dir)
    found = sorted((p for p in base.glob(f"{name}-*") if (p / CONTROL_FILE).is_file()), key=lambda p: p.name)
    if not found:
        raise ValueError(f"no running session named {name!r} under {base}/ (a running session has "
                         f"{base}/{name}-<time>/{CONTROL_FILE})")
    return found[-1]


def send_control(folder: str | Path, payload: dict[str, Any]) -> None:
    """Send one control message to the session whose folder is ``folder``."""
    parse_control(payload)  # refuse a bad message here, with the same words the session would use
    info = json.loads((Path(folder) / CONTROL_FILE).read_text())
    address = "\0" + info["socket"][1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(json.dumps(payload).encode("utf-8"), address)
        except (ConnectionRefusedError, FileNotFoundError):
            raise ValueError(f"session in {folder} is not running any more (pid {info.get('pid')})") from None
