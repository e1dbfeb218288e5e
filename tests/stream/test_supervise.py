"""Adapter supervision: a raising and a hanging fake adapter never stop the ticks.

Each test pulls like the compute thread until what it waits for has happened (a generous
limit only catches a hang); how long one pull takes while the adapter raises or hangs is
measured by scripts/bench_timing_bounds.py (check supervised_pull).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from rtsnn.stream.mqtt_sink import wait_until
from rtsnn.stream.supervise import Backoff, SupervisedSource


class FakeAdapter:
    """Delivers one sample per pull with value = its instance number; misbehaves on request."""

    instances = 0

    def __init__(self, mode: str = "ok", fail_after: int = 5, n_channels: int = 2):
        FakeAdapter.instances += 1
        self.k = FakeAdapter.instances
        self.mode, self.fail_after, self.n_channels = mode, fail_after, n_channels
        self.pulls = 0
        self.closed = False
        self.release = threading.Event()

    def open(self) -> None:
        if self.mode == "raise_open":
            raise ConnectionError("device not found on /dev/ttyFAKE")

    def pull(self, samples_out, timestamps_out) -> int:
        self.pulls += 1
        if self.pulls > self.fail_after:
            if self.mode == "raise":
                raise RuntimeError("adapter exploded")
            if self.mode == "hang":
                self.release.wait(30)  # stuck in a driver call
                return 3  # comes back late: must be discarded
        samples_out[0] = self.k
        timestamps_out[0] = time.monotonic()
        return 1

    def stats(self):
        return {"pulls": self.pulls}

    def close(self) -> None:
        self.closed = True


def _ticks(src: SupervisedSource, until, limit_s: float = 20.0) -> tuple[list[int], int, int]:
    """Pull every ~1 ms like the compute thread until ``until(values_so_far)`` is true (checked
    after each pull; a number means that many seconds) or ``limit_s`` passed (a hang guard,
    not a bound); returns values seen, gap ticks, ticks."""
    if isinstance(until, (int, float)):
        end_s = time.monotonic() + until
        until = lambda _: time.monotonic() >= end_s  # noqa: E731
    buf, ts = np.zeros((64, src.n_channels), np.float32), np.zeros(64)
    values, gaps, ticks = [], 0, 0
    limit = time.monotonic() + limit_s
    while time.monotonic() < limit:
        n = src.pull(buf, ts)
        values += [int(v) for v in buf[:n, 0]]
        gaps += src.in_gap
        ticks += 1
        if until(values):
            break
        time.sleep(0.001)
    return values, gaps, ticks


def test_backoff_doubles_and_caps():
    b = Backoff(0.1, 0.5)
    assert [b.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    b.reset()
    assert b.next() == 0.1
    with pytest.raises(ValueError, match="max_s"):
        Backoff(1.0, 0.5)


def test_bad_options():
    with pytest.raises(ValueError, match="exactly one of kind"):
        SupervisedSource()
    with pytest.raises(ValueError, match="hang_timeout_s"):
        SupervisedSource(factory=FakeAdapter, hang_timeout_s=0)


def test_unknown_plugin_named_in_error():
    from rtsnn.config import ConfigError

    with pytest.raises(ConfigError, match="no rtsnn.sources plugin named 'nope'"):
        SupervisedSource("nope", {})


def test_raising_adapter_restarts_with_backoff():
    src = SupervisedSource(factory=lambda: FakeAdapter("raise", fail_after=20), backoff_initial_s=0.02,
                           backoff_max_s=0.08, healthy_after_s=10.0, poll_interval_s=0.001)
    src.open()
    try:
        values, gaps, _ = _ticks(src, lambda v: src.stats()["restarts"] >= 3 and len(set(v)) >= 3)
    finally:
        src.close()
    s = src.stats()
    assert s["errors"] >= 3 and s["restarts"] >= 3 and s["hangs"] == 0
    assert s["last_error"] == "RuntimeError: adapter exploded"
    assert len(set(values)) >= 3  # samples kept arriving from successive fresh instances
    assert values == sorted(values)  # an old instance never delivers after its successor
    assert gaps > 0  # the restarts were flagged as gaps


def test_adapter_that_fails_to_open_is_retried():
    made = []

    def factory():
        a = FakeAdapter("raise_open" if len(made) < 3 else "ok")
        made.append(a)
        return a

    src = SupervisedSource(factory=factory, backoff_initial_s=0.01, backoff_max_s=0.02)
    src.open()
    try:
        assert wait_until(lambda: src.healthy, 10), src.stats()
        assert src.stats()["errors"] == 3 and "ConnectionError: device not found" in src.stats()["last_error"]
        values, _, _ = _ticks(src, lambda v: len(v) >= 20)
        assert values and set(values) == {made[3].k}
    finally:
        src.close()


def test_pull_never_waits_for_an_adapter_stuck_in_its_pull():
    """pull only reads the ring: with hang_timeout_s = 30 s and the adapter stuck inside its own
    pull (not yet declared hung), 2000 pulls all return within a 10 s hang guard, which a pull
    that waited even once for the adapter (up to 30 s) could not do."""
    made = []

    def factory():
        a = FakeAdapter("hang", fail_after=10)
        made.append(a)
        return a

    src = SupervisedSource(factory=factory, hang_timeout_s=30.0)
    src.open()
    try:
        assert wait_until(lambda: made and made[0].pulls == 11, 10), src.stats()  # inside the hung pull
        buf, ts = np.zeros((64, src.n_channels), np.float32), np.zeros(64)
        before = src.pull(buf, ts)  # the 10 samples delivered before the hang
        n_pulls, got = 2000, []

        def compute_thread():
            for _ in range(n_pulls):
                got.append(src.pull(buf, ts))

        th = threading.Thread(target=compute_thread, daemon=True)
        th.start()
        th.join(10.0)  # hang guard, far below the 30 s one blocking pull could take
        assert not th.is_alive() and len(got) == n_pulls, f"{len(got)} of {n_pulls} pulls returned"
        assert before == 10 and got == [0] * n_pulls  # nothing invented while the adapter is stuck
        assert not made[0].release.is_set() and made[0].pulls == 11  # still stuck the whole time
        assert src.stats()["hangs"] == 0 and len(made) == 1  # far from the 30 s hang timeout
        assert wait_until(lambda: src.in_gap, 5)  # the stall is flagged after stall_s
    finally:
        for a in made:
            a.release.set()  # let the stuck call return so close() need not wait out the timeout
        src.close()


def test_hanging_adapter_is_abandoned_and_replaced():
    made = []

    def factory():
        a = FakeAdapter("hang" if not made else "ok", fail_after=10)
        made.append(a)
        return a

    src = SupervisedSource(factory=factory, hang_timeout_s=0.2, backoff_initial_s=0.02)
    src.open()
    try:
        # tick until the replacement delivers: all that time the first adapter is stuck in
        # its pull (its release is never set before), so every tick below returned without it
        values, gaps, ticks = _ticks(src, lambda v: len(made) > 1 and made[1].k in v)
        assert not made[0].release.is_set() and made[0].pulls == 11  # still inside its hung pull
        s = src.stats()
        assert s["hangs"] == 1 and s["restarts"] == 1 and s["errors"] == 0
        assert made[0].closed  # best-effort close of the stuck adapter
        assert set(values) == {made[0].k, made[1].k}  # samples before the hang, then from the new one
        assert values == sorted(values)
        # the stall was flagged (after stall_s, 50 ms) on the ticks until the replacement delivered
        assert 0 < gaps < ticks, (gaps, ticks)
        made[0].release.set()  # the stuck call returns 3 samples late: discarded, counted
        assert wait_until(lambda: src.stats()["discarded_late"] == 3, 10)
        values2, _, _ = _ticks(src, 0.05)
        assert set(values2) <= {made[1].k}
    finally:
        src.close()


def test_healthy_adapter_passes_samples_and_stats():
    src = SupervisedSource(factory=lambda: FakeAdapter("ok", fail_after=10**9))
    src.open()
    try:
        values, _, _ = _ticks(src, lambda v: len(v) > 50 and src.stats()["adapter_stats"]["pulls"] > 50)
        s = src.stats()
    finally:
        src.close()
    assert len(values) > 50 and s["restarts"] == 0 and s["errors"] == 0 and s["adapter_stats"]["pulls"] > 50
    assert len(set(values)) == 1  # one instance throughout
