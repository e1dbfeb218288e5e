"""TickSlack: the other threads' Python work kept out of the compute thread's ticks.

The rules are checked against a simulated clock whose sleeps run a simulated compute thread
(it publishes its next wake-up as the real loop does), so every decision is exact; the real
loop's use of it is checked through a live session's summary and the slack's own state.
"""

import numpy as np
import pytest

from rtsnn import clock as clock_mod
from rtsnn.clock import TickSlack
from rtsnn.runtime.loop import slack_busy_ns

DT, BUSY = 1_000_000, 300_000


class Ticking:
    """Simulated time with a compute thread ticking every ``DT`` from ``t0``: it wakes at
    ``t0 + k DT - spin`` and, while simulated time passes, publishes the wake-up after the
    current one as the real loop does once a tick is over (``behind``: it never catches up,
    its wake-ups stay in the past)."""

    def __init__(self, slack, t0=10**12, spin=200_000, behind=False):
        self.slack, self.t0, self.spin, self.behind = slack, t0, spin, behind
        self.now_ns = t0 - 900_000
        self.read_cost_ns = 100
        self.sleeps = []
        self._publish()

    def _publish(self):
        if self.behind:
            self.slack.publish(self.now_ns - 10 * DT)
            return
        k = max(0, -(-(self.now_ns - (self.t0 - self.spin)) // DT))  # the first wake-up at or after now
        wake = self.t0 - self.spin + k * DT
        if wake - DT + BUSY > self.now_ns:  # still inside the previous tick: that one is the current wake-up
            wake -= DT
        self.slack.publish(wake)

    def perf(self):
        self.now_ns += self.read_cost_ns
        return self.now_ns

    def sleep(self, s):
        self.sleeps.append(s)
        self.now_ns += int(s * 1e9)
        self._publish()


@pytest.fixture
def slack():
    s = TickSlack()
    yield s
    s.release(s.owner)


@pytest.fixture
def ticking(slack, monkeypatch):
    assert slack.claim("loop", DT, BUSY)
    t = Ticking(slack)
    monkeypatch.setattr(clock_mod, "_perf", t.perf)
    monkeypatch.setattr(clock_mod, "_sleep", t.sleep)
    return t


def test_unclaimed_slack_never_waits(slack, monkeypatch):
    monkeypatch.setattr(clock_mod, "_sleep", lambda s: pytest.fail("slept with no loop claiming the slack"))
    assert slack.wait(10**9) == 0
    assert slack.aligned(0.05) == 0.05
    assert slack.stats()["waits"] == 0


def test_work_that_fits_before_the_wake_up_goes_at_once(ticking):
    ticking.now_ns = ticking.t0 - ticking.spin - 600_000  # 600 us before the next wake-up
    assert ticking.slack.wait(300_000) == 0
    assert ticking.sleeps == []


def test_work_that_would_cross_the_wake_up_waits_for_the_tick_to_end(ticking):
    slack = ticking.slack
    wake = ticking.t0 - ticking.spin
    ticking.now_ns = wake - 200_000  # 200 us left: 300 us of work would run into the tick
    ticking._publish()
    waited = slack.wait(300_000)
    assert waited > 0 and slack.stats()["waits"] == 1
    # it resumed after the tick (wake-up + busy), with room for the work before the next one
    assert ticking.now_ns >= wake + BUSY
    assert ticking.now_ns + 300_000 + slack.margin_ns <= slack.next_wake_ns


def test_a_cost_longer_than_the_window_starts_at_a_window(ticking):
    slack = ticking.slack
    ticking.now_ns = ticking.t0 - ticking.spin - 100_000
    ticking._publish()
    slack.wait(5_000_000)  # never fits: it goes in the first half of the next window
    assert ticking.now_ns >= ticking.t0 - ticking.spin + BUSY
    assert ticking.now_ns + slack.window_ns() // 2 + slack.margin_ns <= slack.next_wake_ns
    assert slack.stats()["gave_up"] == 0


def test_a_loop_that_is_always_behind_is_given_up_on_not_waited_for_forever(slack, monkeypatch):
    assert slack.claim("loop", DT, BUSY)
    t = Ticking(slack, behind=True)
    monkeypatch.setattr(clock_mod, "_perf", t.perf)
    monkeypatch.setattr(clock_mod, "_sleep", t.sleep)
    waited = slack.wait(100_000)
    assert slack.max_wait_ns <= waited < slack.max_wait_ns + 2 * DT
    assert slack.stats()["gave_up"] == 1


def test_aligned_timeouts_end_at_the_start_of_a_window(ticking):
    slack = ticking.slack
    ticking.read_cost_ns = 0  # "now" here is the now aligned() reads
    for seconds in (0.0, 0.0004, 0.05, 0.1234567):
        now = ticking.now_ns
        end = now + int(slack.aligned(seconds) * 1e9)
        assert end >= now + int(seconds * 1e9)
        # on the grid of window starts (wake-up + busy), the first one at or after now + seconds
        phase = (end - (slack.next_wake_ns + BUSY)) % DT
        assert min(phase, DT - phase) <= 1  # float seconds: 1 ns of rounding
        assert end - (now + int(seconds * 1e9)) <= DT


def test_claims_belong_to_one_loop(slack):
    assert slack.claim("a", DT, BUSY)
    assert not slack.claim("b", DT, BUSY)  # the first real-time loop of the process keeps it
    slack.publish(123)
    slack.release("b")  # not the owner: nothing happens
    assert slack.owner == "a" and slack.next_wake_ns == 123
    slack.release("a")
    assert slack.owner is None and slack.wait(10**9) == 0
    with pytest.raises(ValueError, match="dt_ns"):
        slack.claim("c", 0, BUSY)


def test_busy_time_is_the_spin_plus_twice_the_warm_up_p90():
    spin = 200_000
    assert slack_busy_ns(spin, DT, np.zeros(0, np.int64)) == spin + DT // 4  # nothing measured yet
    work = np.full(100, 40_000, np.int64)
    assert slack_busy_ns(spin, DT, work) == spin + 80_000
    assert slack_busy_ns(spin, DT, np.full(10, 1_000, np.int64)) == spin + 50_000  # at least 50 us
    assert slack_busy_ns(spin, DT, np.full(10, 900_000, np.int64)) == spin + DT // 2  # at most dt / 2
