"""TickSlack: the other threads' Python work kept out of the compute thread's ticks; those
threads raised to SCHED_FIFO just below it while a session runs.

The rules are checked against a simulated clock whose sleeps run a simulated compute thread
(it publishes its next wake-up as the real loop does), so every decision is exact; the real
loop's use of it is checked through a live session's summary and the slack's own state. What
it does to deadline misses is a benchmark (scripts/bench_demo.py), not a test.
"""

import os
import threading

import numpy as np
import pytest

from rtsnn import clock as clock_mod
from rtsnn.clock import TickSlack
from rtsnn.config import parse_config
from rtsnn.runtime.loop import raise_background, restore_background, slack_busy_ns
from rtsnn.runtime.session import Session

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


def test_a_loop_that_is_behind_is_not_waited_for(slack, monkeypatch):
    # the published wake-up lies more than dt in the past (a tick overran): no window will come
    # before the loop catches up, so the work goes ahead at once, counted
    assert slack.claim("loop", DT, BUSY)
    t = Ticking(slack, behind=True)
    monkeypatch.setattr(clock_mod, "_perf", t.perf)
    monkeypatch.setattr(clock_mod, "_sleep", t.sleep)
    assert slack.wait(100_000) == 0 and t.sleeps == []
    assert slack.stats()["gave_up"] == 1 and slack.stats()["waits"] == 0


def test_a_loop_that_falls_behind_during_a_wait_ends_it(ticking):
    slack = ticking.slack
    ticking.now_ns = ticking.t0 - ticking.spin - 100_000
    ticking._publish()
    ticking.behind = True  # from the first sleep on, the loop overruns
    waited = slack.wait(300_000)
    assert 0 < waited <= DT and len(ticking.sleeps) == 1
    assert slack.stats()["gave_up"] == 1


def test_waits_give_up_after_max_wait_when_no_window_comes(slack, monkeypatch):
    # a compute thread that is always about to wake (its next wake-up 10 us ahead whenever the
    # waiter looks): never a window, never behind; the waiter goes ahead after max_wait_ns
    assert slack.claim("loop", DT, BUSY)
    now = [10**12]

    def perf():
        now[0] += 100
        return now[0]

    def sleep(s):
        now[0] += int(s * 1e9)
        slack.publish(now[0] + 10_000)

    monkeypatch.setattr(clock_mod, "_perf", perf)
    monkeypatch.setattr(clock_mod, "_sleep", sleep)
    slack.publish(now[0] + 10_000)
    waited = slack.wait(100_000)
    assert slack.max_wait_ns <= waited < slack.max_wait_ns + DT
    assert slack.stats()["gave_up"] == 1 and slack.stats()["waits"] == 1


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


# ------------------------------------------------------------------ a live session
def _fifo_permitted() -> bool:
    try:
        old = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        os.sched_setscheduler(0, old[0], old[1])
        return True
    except (PermissionError, OSError):
        return False


def test_followers_are_the_registered_threads_still_alive(slack):
    done = threading.Event()
    live = slack.follow(threading.Thread(target=done.wait, daemon=True))
    ended = slack.follow(threading.Thread(target=lambda: None, daemon=True))
    live.start()
    ended.start()
    ended.join()
    try:
        assert slack.followers() == [live]
    finally:
        done.set()
        live.join()
    assert slack.followers() == []


def test_the_followers_are_raised_below_the_compute_thread_and_restored_and_their_children_are_not():
    release = threading.Event()
    seen = {}

    def follower():
        release.wait()
        # a thread it starts while raised (a prepare worker, liblsl's threads) begins at ordinary priority
        child = threading.Thread(target=lambda: seen.update(child=os.sched_getscheduler(0)))
        child.start()
        child.join()

    other = threading.Thread(target=follower, daemon=True)
    bystander = threading.Thread(target=release.wait, daemon=True)  # not a follower: left alone
    other.start()
    bystander.start()
    try:
        before = os.sched_getscheduler(other.native_id)
        changed = raise_background(3, [other, threading.current_thread()])
        ids = {tid for tid, _, _ in changed}
        if _fifo_permitted():
            assert ids == {other.native_id}  # never the caller
            assert os.sched_getscheduler(other.native_id) & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO
            assert os.sched_getparam(other.native_id).sched_priority == 3
        else:  # without the privilege nothing changes and nothing is claimed
            assert changed == []
        assert os.sched_getscheduler(bystander.native_id) == before
        release.set()
        other.join()
        assert seen["child"] == os.SCHED_OTHER
        restore_background(changed)  # the follower has ended: its id is not touched
    finally:
        release.set()
        other.join()
        bystander.join()
    # a live follower is put back as it was
    again = threading.Event()
    third = threading.Thread(target=again.wait, daemon=True)
    third.start()
    try:
        policy = os.sched_getscheduler(third.native_id)
        restore_background(raise_background(3, [third]))
        assert os.sched_getscheduler(third.native_id) == policy
    finally:
        again.set()
        third.join()


def test_a_live_session_reports_its_slack_and_leaves_the_callers_scheduling_as_it_found_it(tmp_path,
                                                                                          spike_recording):
    path, _ = spike_recording(3000, 4)
    policy_before = os.sched_getscheduler(0)

    def run(background):
        return Session(parse_config({
            "session": {"name": f"slack-{background}", "duration_s": 0.5, "out_dir": str(tmp_path / "s"),
                        "warmup_ticks": 20, "monitor": True, "background_realtime": background},
            "source": {"kind": "xdf_file", "options": {"path": str(path), "n_channels": 4, "pace": "realtime",
                                                       "stamp": "local"}},
            "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
            "model": {"random": {"n_rec": 16, "n_out": 2}}}, "<test>")).run()

    on, off = run(True), run(False)
    assert clock_mod.SLACK.followers() == []  # the I/O thread and the LSL watch threads have ended
    for summary in (on, off):
        slack = summary["background_slack"]
        # the ticks were given the 200 us spin and at least 50 us of work, at most dt / 2 of it
        assert 250 <= slack["busy_us"] <= 700, slack
        assert set(slack) == {"busy_us", "waits", "waited_us", "gave_up"}
    assert off["background_realtime"] == "none"
    if on["realtime"].startswith("fifo"):
        assert on["background_realtime"].startswith("fifo:9 (")  # the I/O thread and this one at least
    else:
        assert on["background_realtime"] == "none"
    assert os.sched_getscheduler(0) == policy_before  # the calling (main) thread is back as it was
    assert clock_mod.SLACK.owner is None and clock_mod.SLACK.wait(10**9) == 0  # released


def _short_live_session(tmp_path, path, name, **session):
    return Session(parse_config({
        "session": {"name": name, "duration_s": 0.3, "out_dir": str(tmp_path / "s"), "warmup_ticks": 20,
                    **session},
        "source": {"kind": "xdf_file", "options": {"path": str(path), "n_channels": 4, "pace": "realtime",
                                                   "stamp": "local"}},
        "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
        "model": {"random": {"n_rec": 16, "n_out": 2}}}, "<test>"))


def test_a_second_live_session_neither_publishes_nor_raises(tmp_path, spike_recording):
    # another real-time loop of this process holds the slack: this session's wake-ups must not
    # overwrite its schedule, nor its end release it
    path, _ = spike_recording(2000, 4)
    slack = clock_mod.SLACK
    assert slack.claim("the first loop", DT, BUSY)
    slack.publish(12345)
    try:
        summary = _short_live_session(tmp_path, path, "second", monitor=False).run()
        assert slack.owner == "the first loop" and slack.next_wake_ns == 12345
        assert summary["background_slack"] is None
        assert summary["background_realtime"] == "none (another session of this process holds the slack)"
        assert summary["ticks"] > 0
    finally:
        slack.release("the first loop")


def test_a_failing_monitor_is_counted_and_never_ends_the_session(tmp_path, spike_recording, monkeypatch):
    from rtsnn.runtime.monitor import SessionMonitor

    def broken(self, session, now_lsl=None):
        raise RuntimeError("the viewer side broke")

    monkeypatch.setattr(SessionMonitor, "service", broken)
    path, _ = spike_recording(2000, 4)
    s = _short_live_session(tmp_path, path, "monitor-broken", monitor=True)
    summary = s.run()
    assert summary["failed"] is None and summary["ticks"] > 0
    assert s.monitor.counters["errors"] >= 1


def test_restore_keeps_the_reset_on_fork_flag_when_the_kernel_will_not_clear_it(monkeypatch):
    # a user with RLIMIT_RTPRIO but no CAP_SYS_NICE may not clear SCHED_RESET_ON_FORK: the
    # thread must still go back to its old policy (with the flag), not stay at FIFO
    calls = []

    def setscheduler(tid, policy, param):
        calls.append(policy)
        if not policy & os.SCHED_RESET_ON_FORK:
            raise PermissionError("may not clear SCHED_RESET_ON_FORK")

    monkeypatch.setattr(os, "sched_setscheduler", setscheduler)
    tid = threading.get_native_id()
    restore_background([(tid, os.SCHED_OTHER, 0)])
    assert calls == [os.SCHED_OTHER, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK]


def test_the_sessions_threads_wait_for_room_and_sleep_to_windows(tmp_path, spike_recording, monkeypatch):
    # the wiring: the I/O loop (and the monitor it services), the caller's status lines and the
    # recorder's thread all go through the slack while a live session runs
    calls = {"wait": set(), "aligned": set()}
    real_wait, real_aligned = TickSlack.wait, TickSlack.aligned

    def wait(self, cost_ns=300_000):
        calls["wait"].add(threading.current_thread().name)
        return real_wait(self, cost_ns)

    def aligned(self, seconds):
        calls["aligned"].add(threading.current_thread().name)
        return real_aligned(self, seconds)

    monkeypatch.setattr(TickSlack, "wait", wait)
    monkeypatch.setattr(TickSlack, "aligned", aligned)
    path, _ = spike_recording(3000, 4)
    s = _short_live_session(tmp_path, path, "wiring", monitor=True, record=True, duration_s=0.6)
    s.run(on_status=lambda status: None, status_interval_s=0.2)
    me = threading.current_thread().name
    assert {"rtsnn-io", me} <= calls["wait"]
    assert any(name.startswith("xdf-recorder") for name in calls["wait"])
    assert {"rtsnn-io", me} <= calls["aligned"]
    assert "rtsnn-compute" not in calls["wait"]  # the compute thread never waits for itself
