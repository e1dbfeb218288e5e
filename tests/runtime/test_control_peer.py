"""Only the session's owner steers it: the control socket checks each sender's kernel-attached
credentials (SCM_CREDENTIALS) and, when ``RTSNN_CONTROL_TOKEN`` is set, a shared token.

The foreign sender is a real process running as uid 65534 (nobody), forked from the test and
dropped to that uid, sending the datagram an attacker would send: ``set_learning_rate 1e300``.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time

import pytest

from rtsnn.runtime import control
from rtsnn.testing import skip_or_fail

pytestmark = pytest.mark.skipif(not control.supported(), reason="abstract Unix sockets are Linux-only")

NOBODY = 65534


def _send_as(uid: int | None, address: str, payload: dict) -> tuple[int, int]:
    """Send ``payload`` to ``address`` from a child process running as ``uid`` (None: this
    process's uid); returns the child's pid and the pipe it writes the answer it got into."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            if uid is not None:
                os.setgid(uid)
                os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.bind(f"\0rtsnn-test-client/{os.getpid()}")
                s.sendto(json.dumps(payload).encode(), address)
                s.settimeout(5.0)
                try:
                    answer = s.recv(65536)
                except TimeoutError:
                    answer = b"null"
            os.write(w, answer)
        except BaseException:  # noqa: BLE001 - report through the exit status
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def _collect(sock: control.ControlSocket, pid: int, r: int) -> tuple[list, dict | None]:
    got: list = []
    before = sock.received
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and sock.received == before:
        got += sock.poll_control()
        time.sleep(0.01)
    for msg in got:
        sock.reply(msg, True)
    _, status = os.waitpid(pid, 0)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    assert os.waitstatus_to_exitcode(status) == 0
    return got, json.loads(data.decode()) if data else None


def test_a_message_from_another_uid_is_refused_answered_and_counted(tmp_path):
    if os.geteuid() != 0:
        skip_or_fail("sending as another uid needs root (CI runs as root)")
    sock = control.ControlSocket(tmp_path, "victim", token=None)
    try:
        pid, r = _send_as(NOBODY, sock.address, {"cmd": "set_learning_rate", "value": 1e300, "id": "a"})
        got, answer = _collect(sock, pid, r)
        assert got == []  # nothing reaches the learner
        assert sock.stats()["refused_peer"] == 1 and sock.stats()["received"] == 1
        assert answer is not None and answer["ok"] is False
        assert f"uid {NOBODY}" in answer["reason"] and "owner" in answer["reason"]
    finally:
        sock.close()


def test_the_owner_is_heard(tmp_path):
    sock = control.ControlSocket(tmp_path, "mine", token=None)
    try:
        pid, r = _send_as(None, sock.address, {"cmd": "pause_learning", "id": "b"})
        got, answer = _collect(sock, pid, r)
        assert [m.command for m in got] == ["pause_learning"]
        assert answer == {"ok": True, "cmd": "pause_learning", "value": None, "reason": "", "id": "b"}
        assert sock.stats()["refused_peer"] == 0
    finally:
        sock.close()


def test_a_configured_token_is_required(tmp_path):
    sock = control.ControlSocket(tmp_path, "tok", token="s3cret")
    try:
        pid, r = _send_as(None, sock.address, {"cmd": "resume_learning", "id": "c"})
        got, answer = _collect(sock, pid, r)
        assert got == [] and sock.stats()["refused_token"] == 1
        assert answer["ok"] is False and control.TOKEN_ENV in answer["reason"]
        pid, r = _send_as(None, sock.address, {"cmd": "resume_learning", "id": "d", "token": "s3cret"})
        got, answer = _collect(sock, pid, r)
        assert [m.command for m in got] == ["resume_learning"] and answer["ok"] is True
        pid, r = _send_as(None, sock.address, {"cmd": "resume_learning", "id": "e", "token": "guess"})
        got, answer = _collect(sock, pid, r)
        assert got == [] and sock.stats()["refused_token"] == 2
    finally:
        sock.close()


def test_the_token_comes_from_the_environment_on_both_sides(tmp_path, monkeypatch):
    monkeypatch.setenv(control.TOKEN_ENV, "from-env")
    sock = control.ControlSocket(tmp_path, "envtok")
    try:
        assert json.loads((tmp_path / control.CONTROL_FILE).read_text())["token_required"] is True
        import threading

        answers = []
        t = threading.Thread(target=lambda: answers.append(
            control.request_control(tmp_path, {"cmd": "pause_learning"}, timeout_s=5.0)))
        t.start()
        deadline = time.monotonic() + 5.0
        got = []
        while not got and time.monotonic() < deadline:
            got = sock.poll_control()
            time.sleep(0.01)
        for m in got:
            sock.reply(m, True)
        t.join(5.0)
        assert [m.command for m in got] == ["pause_learning"] and answers[0]["ok"] is True
    finally:
        sock.close()


def test_control_json_is_owner_only(tmp_path):
    sock = control.ControlSocket(tmp_path, "perm", token=None)
    try:
        mode = stat.S_IMODE((tmp_path / control.CONTROL_FILE).stat().st_mode)
        assert mode == 0o600
    finally:
        sock.close()
