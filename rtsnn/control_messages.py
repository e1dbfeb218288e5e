"""The control vocabulary a running session understands, whatever carried the message.

A control message is one JSON-like object::

    {"cmd": "pause_learning"}
    {"cmd": "resume_learning"}
    {"cmd": "set_learning_rate", "value": 1e-4}     # value: finite, > 0

(or the bare text ``pause_learning`` / ``resume_learning``). The local control socket
(:mod:`rtsnn.runtime.control`) and the MQTT control topic (:mod:`rtsnn.stream.mqtt_source`)
both parse with :func:`parse_control`; the session hands each message to its learner with
:func:`apply_control`. This module needs nothing beyond the standard library, so the live
path can use it without any optional extra installed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

CONTROL_COMMANDS = ("pause_learning", "resume_learning", "set_learning_rate")


@dataclass(frozen=True)
class ControlMessage:
    """One control request. ``value`` is the learning rate for ``set_learning_rate``, else None;
    ``t_s`` the LSL clock at receipt. ``reply_to`` is the carrying channel's own handle for the
    answer (the local control socket: ``(sender address, request id)``); None where the channel
    has no reply path (MQTT)."""

    command: str
    value: float | None
    t_s: float
    reply_to: Any = field(default=None, compare=False)


def parse_control(obj: Any) -> tuple[str, float | None]:
    """Validate a decoded control payload; raises ValueError saying what was expected."""
    if isinstance(obj, str):
        obj = {"cmd": obj}
    if not isinstance(obj, dict):
        raise ValueError(f"control payload must be an object with 'cmd', got {type(obj).__name__}")
    cmd = obj.get("cmd")
    if cmd not in CONTROL_COMMANDS:
        raise ValueError(f"control cmd must be one of {CONTROL_COMMANDS}, got {cmd!r}")
    if cmd != "set_learning_rate":
        return cmd, None
    v = obj.get("value")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"set_learning_rate needs a finite number value > 0, got {v!r}")
    return cmd, float(v)


def apply_control(msg: ControlMessage, learner: Any) -> bool:
    """Hand ``msg`` to ``learner``: ``pause_learning()``, ``resume_learning()`` or
    ``set_learning_rate(value)``. Returns False when the learner lacks that method."""
    fn = getattr(learner, msg.command, None)
    if fn is None:
        return False
    if msg.command == "set_learning_rate":
        fn(msg.value)
    else:
        fn()
    return True
