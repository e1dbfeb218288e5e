"""A running session's local control channel: ``rtsnn control pause|resume|rate``.

Each session binds a Unix datagram socket in Linux's abstract namespace (no file to clean up;
address ``\\0rtsnn-control/<session name>/<pid>``) and writes the address into
``<session folder>/control.json``. A datagram is one JSON object, the payload of the MQTT
control topic: ``{"cmd": "pause_learning"}``, ``{"cmd": "resume_learning"}`` or
``{"cmd": "set_learning_rate", "value": 1e-4}``, plus an optional ``"id"`` (a short string).

Request and answer: the client (:func:`request_control`) binds its own abstract address
(``\\0rtsnn-control-client/<pid>/<random>``), so the session learns it from ``recvfrom``
and answers there with one JSON object ``{"ok": bool, "cmd": ..., "value": ..., "reason":
"...", "id": <the request's id>}``; the id echo lets the client tell its answer from a late
one to an earlier request. The session's I/O thread drains the socket (non-blocking) with the
other control inputs and hands each message to the learner (``apply_control``); the answer
is sent once the learner took or refused it (:meth:`ControlSocket.reply`). Malformed
datagrams are answered at once (``ok: false`` with the parse error) and counted, never
raised. Answers are sent without blocking: a client that went away (or whose queue is full)
is counted in ``replies_failed``. Senders without an address get no answer.

Only processes of this machine can reach the socket (abstract Unix sockets are not on any
network), and of those only the session's owner may steer it: the socket has ``SO_PASSCRED``
set, so the kernel attaches each sender's pid/uid/gid (``SCM_CREDENTIALS``, not forgeable by
the sender), and a datagram from any uid but the session's effective uid is refused,
answered (``ok: false``, the reason) and counted in ``refused_peer``. When the environment
variable ``RTSNN_CONTROL_TOKEN`` is set for the session, every message must also carry
``"token"`` with the same value (compared in constant time; refusals counted in
``refused_token``); :func:`request_control` sends the token from the client's environment.
``control.json`` is written owner-only (0600).
"""

from __future__ import annotations

import hmac
import json
import math
import os
import secrets
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from rtsnn.control_messages import ControlMessage, parse_control

CONTROL_FILE = "control.json"
MAX_DATAGRAM_BYTES = 65536
MAX_ID_CHARS = 64
TOKEN_ENV = "RTSNN_CONTROL_TOKEN"
_UCRED = struct.Struct("iII")  # struct ucred: pid_t pid, uid_t uid, gid_t gid


def supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "AF_UNIX")


def _abstract(address_text: str) -> str:
    """``@name`` (the form written in control.json) -> the socket address ``\\0name``."""
    return "\0" + address_text[1:]


def _request_id(obj: Any) -> str | None:
    """The request's ``id`` when it is a short string (echoed in the answer), else None."""
    rid = obj.get("id") if isinstance(obj, dict) else None
    return rid if isinstance(rid, str) and len(rid) <= MAX_ID_CHARS else None


class ControlSocket:
    """Session side: ``poll_control() -> list[ControlMessage]`` (the protocol the session's
    control dispatch uses for its sources), ``reply(msg, ok, reason)``, ``stats()``,
    ``close()``."""

    def __init__(self, folder: str | Path, session_name: str, max_per_poll: int = 64,
                 token: str | None = None):
        self.address = f"\0rtsnn-control/{session_name}/{os.getpid()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # the kernel attaches every sender's credentials to what we receive
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.address)
        self.sock.setblocking(False)
        self.owner_uid = os.geteuid()
        self.token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
        self.max_per_poll = int(max_per_poll)
        self.received = 0
        self.bad = 0
        self.refused_peer = 0
        self.refused_token = 0
        self.last_refused = ""
        self.last_error = ""
        self.replies = 0
        self.replies_failed = 0
        self.last_reply_error = ""
        self.path = Path(folder) / CONTROL_FILE
        tmp = self.path.with_name(CONTROL_FILE + ".tmp")
        try:  # temp file + rename: a client never reads half of it
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                os.fchmod(f.fileno(), 0o600)  # also when tmp already existed
                f.write(json.dumps({"socket": "@" + self.address[1:], "pid": os.getpid(),
                                    "session": session_name, "uid": self.owner_uid,
                                    "token_required": self.token is not None}))
            os.replace(tmp, self.path)
        except OSError:
            self.sock.close()
            raise

    def poll_control(self) -> list[ControlMessage]:
        """Every datagram waiting (at most ``max_per_poll``), parsed; malformed ones are
        answered with the reason and counted in ``bad``."""
        from pylsl import local_clock

        out: list[ControlMessage] = []
        for _ in range(self.max_per_poll):
            try:
                data, anc, _flags, sender = self.sock.recvmsg(MAX_DATAGRAM_BYTES,
                                                              socket.CMSG_SPACE(_UCRED.size))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as err:  # a closed socket: nothing more to read
                self.last_error = str(err)
                break
            self.received += 1
            obj: Any = None
            uid = _sender_uid(anc)
            if uid != self.owner_uid:
                self.refused_peer += 1
                self.last_refused = f"control from uid {uid} refused: only the session's owner (uid " \
                                    f"{self.owner_uid}) may steer it"
                self._send_reply(sender, {"ok": False, "cmd": None, "value": None, "reason": self.last_refused,
                                          "id": None})
                continue
            try:
                obj = json.loads(data.decode("utf-8"))
                if self.token is not None:
                    given = obj.pop("token", None) if isinstance(obj, dict) else None
                    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self.token.encode()):
                        self.refused_token += 1
                        self.last_refused = f"control message without the session's token (set {TOKEN_ENV})"
                        self._send_reply(sender, {"ok": False, "cmd": None, "value": None,
                                                  "reason": self.last_refused, "id": _request_id(obj)})
                        continue
                elif isinstance(obj, dict):
                    obj.pop("token", None)
                cmd, value = parse_control(obj)
            except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
                self.bad += 1
                self.last_error = str(err)[:200]
                cmd_text = obj.get("cmd") if isinstance(obj, dict) else None
                self._send_reply(sender, {"ok": False, "cmd": cmd_text if isinstance(cmd_text, str) else None,
                                          "value": None, "reason": f"malformed control message: {self.last_error}",
                                          "id": _request_id(obj)})
                continue
            reply_to = (sender, _request_id(obj)) if sender else None
            out.append(ControlMessage(cmd, value, local_clock(), reply_to=reply_to))
        return out

    def reply(self, msg: ControlMessage, ok: bool, reason: str = "") -> None:
        """Answer ``msg``'s sender: applied (``ok``) or refused with ``reason``. Never blocks
        and never raises; messages without a reply address (MQTT, anonymous senders) are
        skipped."""
        if not msg.reply_to:
            return
        sender, rid = msg.reply_to
        self._send_reply(sender, {"ok": bool(ok), "cmd": msg.command, "value": msg.value,
                                  "reason": "" if ok else reason, "id": rid})

    def _send_reply(self, sender: Any, answer: dict[str, Any]) -> None:
        if not sender:  # an unbound sender: nowhere to answer
            return
        try:
            self.sock.sendto(json.dumps(answer, allow_nan=False).encode("utf-8"), sender)
            self.replies += 1
        except (OSError, ValueError) as err:  # gone, queue full, closed: counted, never raised
            self.replies_failed += 1
            self.last_reply_error = str(err)[:200]

    def stats(self) -> dict[str, Any]:
        return {"received": self.received, "bad": self.bad, "last_error": self.last_error,
                "refused_peer": self.refused_peer, "refused_token": self.refused_token,
                "last_refused": self.last_refused,
                "replies": self.replies, "replies_failed": self.replies_failed,
                "last_reply_error": self.last_reply_error}

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            try:
                self.path.unlink()
            except OSError:
                pass


def _sender_uid(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The uid in a datagram's ``SCM_CREDENTIALS`` (None when absent: refused)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= _UCRED.size:
            return int(_UCRED.unpack_from(data)[1])
    return None


# ---------------------------------------------------------------------------- client side
def _read_info(folder: Path) -> dict[str, Any] | None:
    """``control.json`` of ``folder`` when it is readable and names a socket, else None."""
    try:
        info = json.loads((folder / CONTROL_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("socket"), str) or not info["socket"].startswith("@"):
        return None
    return info


def _answers(info: dict[str, Any]) -> bool:
    """Whether a socket is bound at the address in ``info`` (connect sends nothing)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(_abstract(info["socket"]))
        except OSError:
            return False
    return True


def live_sessions(out_dir: str | Path = "sessions") -> dict[str, Path]:
    """Session name -> newest folder, for every session under ``out_dir`` whose control
    socket is bound (its ``control.json`` is not stale)."""
    found: dict[str, Path] = {}
    base = Path(out_dir)
    if not base.is_dir():
        return found
    for path in sorted(base.glob(f"*/{CONTROL_FILE}")):
        info = _read_info(path.parent)
        if info is not None and _answers(info):
            found[str(info.get("session", path.parent.name))] = path.parent
    return found


def find_session(name: str, out_dir: str | Path = "sessions") -> Path:
    """The newest running session folder of session ``name`` under ``out_dir`` (one whose
    ``control.json`` names ``name`` and whose socket is bound). Raises ValueError saying
    whether the session ended (stale ``control.json``) or was never there, with the live
    sessions found."""
    if not supported():
        raise ValueError("rtsnn control needs Linux (abstract Unix sockets); send the same JSON on the "
                         "session's MQTT control topic instead")
    base = Path(out_dir)
    mine: list[tuple[Path, dict[str, Any]]] = []
    if base.is_dir():
        for path in sorted(base.glob(f"*/{CONTROL_FILE}"), key=lambda p: p.parent.name):
            info = _read_info(path.parent)
            if info is not None and info.get("session", path.parent.name) == name:
                mine.append((path.parent, info))
    for folder, info in reversed(mine):
        if _answers(info):
            return folder
    if mine:
        folder, info = mine[-1]
        raise ValueError(f"session {name!r} is not running: its process (pid {info.get('pid')}) is gone "
                         f"and left a stale {folder / CONTROL_FILE}")
    live = sorted(live_sessions(base))
    there = f"live sessions there: {', '.join(live)}" if live else "no session is running there"
    raise ValueError(f"no running session named {name!r} under {base}/ ({there})")


def request_control(folder: str | Path, payload: dict[str, Any], timeout_s: float = 2.0) -> dict[str, Any] | None:
    """Send one control message to the session whose folder is ``folder`` and wait up to
    ``timeout_s`` for its answer: the session's reply object (``ok``, ``cmd``, ``value``,
    ``reason``, ``id``), or None when none came in time. A bad ``payload`` is refused here
    (ValueError, the words the session would use); so is a session that is not running."""
    parse_control(payload)
    if isinstance(timeout_s, bool) or not (isinstance(timeout_s, (int, float)) and 0 < timeout_s < math.inf):
        raise ValueError(f"the control timeout must be > 0 s, got {timeout_s!r}")
    folder = Path(folder)
    info = _read_info(folder)
    if info is None:
        raise ValueError(f"{folder / CONTROL_FILE} is missing or unreadable: the session is not running")
    rid = secrets.token_hex(8)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(f"\0rtsnn-control-client/{os.getpid()}/{rid}")
        try:
            msg = {**payload, "id": rid}
            if os.environ.get(TOKEN_ENV):
                msg["token"] = os.environ[TOKEN_ENV]
            s.sendto(json.dumps(msg, allow_nan=False).encode("utf-8"), _abstract(info["socket"]))
        except (ConnectionRefusedError, FileNotFoundError):
            raise ValueError(f"session {info.get('session', folder.name)!r} in {folder} is not running any more "
                             f"(pid {info.get('pid')})") from None
        deadline = time.monotonic() + float(timeout_s)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            s.settimeout(left)
            try:
                data = s.recv(MAX_DATAGRAM_BYTES)
            except TimeoutError:
                return None
            try:
                answer = json.loads(data.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue  # not an answer: keep waiting for ours
            if isinstance(answer, dict) and answer.get("id") == rid:
                return answer
