"""Control messages from any input (e.g. an MQTT control topic) reach the learner, counted."""

from __future__ import annotations

from rtsnn.config import parse_config
from rtsnn.runtime.session import Session
from rtsnn.control_messages import ControlMessage


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
    s._dispatch_control()
    assert s.learner.calls == ["pause", ("lr", 1e-4)]
    assert s.counters["control_applied"] == 2 and s.counters["control_ignored"] == 1  # no resume method
    s._dispatch_control()  # nothing new
    assert s.counters["control_applied"] == 2


def test_control_without_a_learner_is_counted_not_lost():
    s = _session()
    s.source = _Controlled([ControlMessage("pause_learning", None, 0.0)])
    s.learner = None
    s._dispatch_control()
    assert s.counters["control_ignored"] == 1
