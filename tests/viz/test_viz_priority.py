"""The dashboard's own CPU priority (``rtsnn.viz.cli.lower_priority``). Each case runs in a
child process: a lowered priority cannot be raised again by an unprivileged process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, os, sys
from rtsnn.viz import cli
if sys.argv[1] == 'deny':  # a sandbox that refuses SCHED_IDLE
    def refuse(*a):
        raise PermissionError(1, 'Operation not permitted')
    os.sched_setscheduler = refuse
applied = cli.lower_priority(sys.argv[2], int(sys.argv[3]))
print(json.dumps({'applied': applied, 'niceness': os.nice(0), 'not_idle': cli.threads_not_idle()}))
"""


def _probe(how: str, mode: str, nice: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, how, mode, str(nice)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux-only")
def test_idle_puts_every_thread_under_sched_idle():
    res = _probe("plain", "idle", 10)
    assert res["applied"] == "idle" and res["not_idle"] == 0
    assert res["niceness"] == os.nice(0)  # nice untouched: SCHED_IDLE alone


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux-only")
def test_idle_falls_back_to_nice_when_refused():
    res = _probe("deny", "idle", 5)
    assert res["applied"] == "nice+5" and res["niceness"] == min(os.nice(0) + 5, 19)
    assert res["not_idle"] >= 1


def test_nice_and_normal():
    res = _probe("plain", "nice", 3)
    assert res["applied"] == "nice+3" and res["niceness"] == min(os.nice(0) + 3, 19)
    for mode, nice in (("normal", 10), ("nice", 0)):
        res = _probe("plain", mode, nice)
        assert res["applied"] == "normal" and res["niceness"] == os.nice(0)


def test_bad_arguments_are_clear():
    from rtsnn.viz.cli import lower_priority

    with pytest.raises(ValueError, match="--priority must be one of idle, nice, normal, got 'rt'"):
        lower_priority("rt", 10)
    with pytest.raises(ValueError, match="--nice must be in 0..19, got -1"):
        lower_priority("nice", -1)
