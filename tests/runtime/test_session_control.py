"""Control messages from any input (the local control socket, an MQTT control topic) reach the
learner, counted; on the control socket each one is answered: applied, or refused with the reason."""

from __future__ import annotations

import json
import socket
import uuid

import pytest

from rtsnn.config import parse_config
from rtsnn.control_messages import ControlMessage
from rtsnn.runtime import control
from rtsnn.runtime.session import Session


class _Controlled:
    def __init__(self, msgs):
        self.msgs = list(msgs)

    def poll_control(self):
        out, self.msgs = self.msgs, []
        return out


class _Learner:
    def __init__(self):
        self.calls = []

    def pause_learning(self):
        self.calls.append("pause")

    def set_learning_rate(self, lr):
        self.calls.append(("lr", lr))


def _session():
    return Session(parse_config({"session": {"monitor": False},
                                 "source": {"kind": "lsl", "options": {"name": "never-opened", "n_channels": 2}},
                                 "encoder": {"kind": "passthrough", "options": {"n_channels": 2}},
                                 "model": {"random": {"n_rec": 8}}}, "<test>"))


def test_control_messages_are_applied_or_counted_as_ignored():
    s = _session()
    s.source = _Controlled([ControlMessage("pause_learning", None, 0.0),
                            ControlMessage("set_learning_rate", 1e-4, 0.0),
                            ControlMessage("resume_learning", None, 0.0)])
    s.learner = _Learner()
    s._collect_optional_stages()  # the stages were replaced: read their optional parts again
    s._dispatch_control()
    assert s.learner.calls == ["pause", ("lr", 1e-4)]
    assert s.counters["control_applied"] == 2 and s.counters["control_ignored"] == 1  # no resume method
    s._dispatch_control()  # nothing new
    assert s.counters["control_applied"] == 2


def test_control_without_a_learner_is_counted_not_lost():
    s = _session()
    s.source = _Controlled([ControlMessage("pause_learning", None, 0.0)])
    s.learner = None
    s._collect_optional_stages()
    s._dispatch_control()
    assert s.counters["control_ignored"] == 1


# ---------------------------------------------------------------------------- answers on the control socket
needs_control_socket = pytest.mark.skipif(not control.supported(), reason="abstract Unix sockets are Linux-only")


class _StrictLearner(_Learner):
    """Takes pause and rate, refuses rates above 1 the way a real learner refuses a value."""

    def set_learning_rate(self, lr):
        if lr > 1:
            raise ValueError(f"learning rate {lr} is above 1")
        super().set_learning_rate(lr)


def _client():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(f"\0rtsnn-test-client/{uuid.uuid4().hex}")
    s.settimeout(5.0)
    return s


def _ask(sess, client, payload: bytes | dict) -> dict:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    client.sendto(data, sess.control.address)
    sess._dispatch_control()
    return json.loads(client.recv(65536))


@needs_control_socket
def test_each_datagram_is_answered_applied_or_refused_with_the_reason(tmp_path):
    s = _session()
    s.control = control.ControlSocket(tmp_path, f"ans-{uuid.uuid4().hex[:8]}")
    s.learner = _StrictLearner()
    try:
        with _client() as c:
            a = _ask(s, c, {"cmd": "pause_learning", "id": "r1"})
            assert a == {"ok": True, "cmd": "pause_learning", "value": None, "reason": "", "id": "r1"}
            a = _ask(s, c, {"cmd": "set_learning_rate", "value": 0.01, "id": "r2"})
            assert a["ok"] is True and a["value"] == 0.01 and a["id"] == "r2"
            a = _ask(s, c, {"cmd": "set_learning_rate", "value": 5.0, "id": "r3"})  # the learner refuses it
            assert a["ok"] is False and a["reason"] == "learning rate 5.0 is above 1" and a["id"] == "r3"
            a = _ask(s, c, {"cmd": "resume_learning", "id": "r4"})  # _Learner has no resume_learning
            assert a["ok"] is False and a["reason"] == "the learner (_StrictLearner) does not take resume_learning"
            a = _ask(s, c, b'{"cmd": "explode", "id": "r5"}')  # unknown command: answered, counted as bad
            assert a["ok"] is False and a["id"] == "r5" and a["cmd"] == "explode"
            assert "malformed control message" in a["reason"] and "explode" in a["reason"]
            a = _ask(s, c, b"{not json")  # no id to echo: answered with id null
            assert a["ok"] is False and a["id"] is None and "malformed control message" in a["reason"]
            s.learner = None
            a = _ask(s, c, {"cmd": "pause_learning", "id": "r7"})
            assert a["ok"] is False and "no learner" in a["reason"]
        assert s.learner is None and s.counters["control_applied"] == 2 and s.counters["control_ignored"] == 3
        st = s.control.stats()
        assert st["received"] == 7 and st["bad"] == 2 and st["replies"] == 7 and st["replies_failed"] == 0
        assert "no learner" in s.last_control_error
    finally:
        s.control.close()
    assert not (tmp_path / control.CONTROL_FILE).exists()


@needs_control_socket
def test_a_client_gone_or_anonymous_is_counted_never_raised(tmp_path):
    s = _session()
    s.control = control.ControlSocket(tmp_path, f"gone-{uuid.uuid4().hex[:8]}")
    s.learner = _Learner()
    try:
        c = _client()
        c.sendto(json.dumps({"cmd": "pause_learning", "id": "x"}).encode(), s.control.address)
        c.sendto(b"garbage", s.control.address)
        c.close()  # went away before the session answered
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as anon:  # unbound: nowhere to answer
            anon.sendto(json.dumps({"cmd": "set_learning_rate", "value": 0.5}).encode(), s.control.address)
        s._dispatch_control()
        assert s.learner.calls == ["pause", ("lr", 0.5)]  # both applied all the same
        st = s.control.stats()
        assert st["received"] == 3 and st["bad"] == 1
        assert st["replies"] == 0 and st["replies_failed"] == 2 and st["last_reply_error"]
    finally:
        s.control.close()


def test_messages_without_a_reply_path_are_applied_and_not_answered():
    """MQTT control messages carry no reply address: applied and counted as before."""
    class _NoReplyChannel(_Controlled):
        def reply(self, msg, ok, reason=""):
            raise AssertionError("a message without reply_to must not be answered")

    s = _session()
    s.source = _NoReplyChannel([ControlMessage("pause_learning", None, 0.0)])
    s.learner = _Learner()
    s._collect_optional_stages()
    s._dispatch_control()
    assert s.learner.calls == ["pause"] and s.counters["control_applied"] == 1
