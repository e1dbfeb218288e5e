"""The compute thread's scheduling policy: what the session reports is what the thread got."""

from __future__ import annotations

import os
import threading

import pytest

from rtsnn.config import ConfigError, parse_config
from rtsnn.runtime.session import apply_realtime


def _in_thread(policy: str, priority: int = 10) -> tuple[str | Exception, int, int]:
    out: dict = {}

    def body() -> None:
        try:
            out["applied"] = apply_realtime(policy, priority)
        except PermissionError as err:
            out["applied"] = err
        out["sched"] = os.sched_getscheduler(0)
        out["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    th = threading.Thread(target=body)
    th.start()
    th.join()
    return out["applied"], out["sched"], out["nice"]


def test_auto_reports_the_policy_the_thread_actually_has():
    applied, sched, nice = _in_thread("auto", 7)
    if applied == "fifo:7":
        assert sched == os.SCHED_FIFO
    elif applied == "nice:-10":
        assert sched == os.SCHED_OTHER and nice == -10
    else:
        assert applied == "none (not permitted)" and sched == os.SCHED_OTHER


def test_none_leaves_the_thread_alone_and_other_threads_are_unaffected():
    applied, sched, _ = _in_thread("none")
    assert applied == "none" and sched == os.SCHED_OTHER
    _in_thread("auto")
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # only the calling thread was changed


def test_explicit_fifo_either_applies_or_says_how_to_get_it():
    applied, sched, _ = _in_thread("fifo", 3)
    if isinstance(applied, PermissionError):
        assert "CAP_SYS_NICE" in str(applied) and sched == os.SCHED_OTHER
    else:
        assert applied == "fifo:3" and sched == os.SCHED_FIFO


@pytest.mark.parametrize("bad", [{"realtime": "rt"}, {"rt_priority": 0}, {"rt_priority": 100}])
def test_bad_realtime_settings_name_the_key(bad):
    with pytest.raises(ConfigError) as e:
        parse_config({"session": bad, "source": {"kind": "lsl"}, "encoder": {"kind": "passthrough"},
                      "model": {"random": {}}}, "x.yaml")
    assert f"session.{next(iter(bad))}" in str(e.value)
