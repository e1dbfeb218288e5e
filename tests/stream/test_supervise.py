"""Adapter supervision: a raising and a hanging fake adapter never stop the ticks."""

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


def _ticks(src: SupervisedSource, duration_s: float) -> tuple[list[float], list[int], int]:
    """Pull every 1 ms like the compute thread; returns pull durations, values seen, gap ticks."""
    buf, ts = np.zeros((64, src.n_channels), np.float32), np.zeros(64)
    durations, values, gaps = [], [], 0
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        t0 = time.perf_counter()
        n = src.pull(buf, ts)
        durations.append(time.perf_counter() - t0)
        values += [int(v) for v in buf[:n, 0]]
        gaps += src.in_gap
        time.sleep(0.001)
    return durations, values, gaps


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
        durations, values, gaps = _ticks(src, 1.0)
    finally:
        src.close()
    s = src.stats()
    assert s["errors"] >= 3 and s["restarts"] >= 3 and s["hangs"] == 0
    assert s["last_error"] == "RuntimeError: adapter exploded"
    assert len(set(values)) >= 3  # samples kept arriving from successive fresh instances
    assert values == sorted(values)  # an old instance never delivers after its successor
    assert gaps > 0  # the restarts were flagged as gaps
    assert max(durations) < 0.05  # pulls never waited for the adapter


def test_adapter_that_fails_to_open_is_retried():
    made = []

    def factory():
        a = FakeAdapter("raise_open" if len(made) < 3 else "ok")
        made.append(a)
        return a

    src = SupervisedSource(factory=factory, backoff_initial_s=0.01, backoff_max_s=0.02)
    src.open()
    try:
        assert wait_until(lambda: src.healthy, 3), src.stats()
        assert src.stats()["errors"] == 3 and "ConnectionError: device not found" in src.stats()["last_error"]
        _, values, _ = _ticks(src, 0.1)
        assert values and set(values) == {made[3].k}
    finally:
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
        durations, values, gaps = _ticks(src, 0.8)
        s = src.stats()
        assert s["hangs"] == 1 and s["restarts"] == 1 and s["errors"] == 0
        assert made[0].closed  # best-effort close of the stuck adapter
        assert set(values) == {made[0].k, made[1].k}  # samples before the hang, then from the new one
        # the stall is flagged after stall_s (50 ms) until the replacement delivers (~170 ms of
        # ~1 ms ticks; fewer ticks fit when sleeps overshoot on a loaded machine)
        assert gaps >= 60, gaps
        assert max(durations) < 0.05
        made[0].release.set()  # the stuck call returns 3 samples late: discarded, counted
        assert wait_until(lambda: src.stats()["discarded_late"] == 3, 2)
        _, values2, _ = _ticks(src, 0.05)
        assert set(values2) <= {made[1].k}
    finally:
        src.close()


def test_healthy_adapter_passes_samples_and_stats():
    src = SupervisedSource(factory=lambda: FakeAdapter("ok", fail_after=10**9))
    src.open()
    try:
        _, values, _ = _ticks(src, 0.2)
        s = src.stats()
    finally:
        src.close()
    assert len(values) > 50 and s["restarts"] == 0 and s["errors"] == 0 and s["adapter_stats"]["pulls"] > 50
