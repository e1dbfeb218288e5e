"""DeadlineClock: ticks on an absolute grid, skipped slots counted, phase alignment.

The grid and the skipping are checked against a simulated clock (exact, whatever the load on
the machine); the real clock is only bracketed, never bounded. How late the real clock's
wake-ups are and how far 300 real ticks drift: scripts/bench_timing_bounds.py (check clock).
"""

import time

import pytest

from rtsnn import clock as clock_mod
from rtsnn.clock import DeadlineClock


class SimulatedTime:
    """Stands in for perf_counter_ns and sleep: every read costs ``read_cost_ns`` and every
    sleep oversleeps by ``oversleep_ns`` (a late wake-up), so pacing errors show exactly."""

    def __init__(self, read_cost_ns=1_000, oversleep_ns=300_000):
        self.now_ns = 10**12
        self.read_cost_ns, self.oversleep_ns = read_cost_ns, oversleep_ns
        self.sleeps = 0

    def perf(self):
        self.now_ns += self.read_cost_ns
        return self.now_ns

    def sleep(self, s):
        self.sleeps += 1
        self.now_ns += int(s * 1e9) + self.oversleep_ns


@pytest.fixture
def sim(monkeypatch):
    t = SimulatedTime()
    monkeypatch.setattr(clock_mod, "_perf", t.perf)
    monkeypatch.setattr(clock_mod, "_sleep", t.sleep)
    return t


@pytest.mark.parametrize("oversleep_us", [0, 150, 300])
def test_absolute_deadlines_do_not_drift(sim, oversleep_us):
    """300 ticks of 1 ms with 200 us of work each and wake-ups late by ``oversleep_us``: every
    wait returns at or after its tick's start, late only by what the 200 us spin cannot absorb,
    and never more on later ticks (no drift); relative pacing would add the work and the
    oversleep on every tick (up to ~450 ms)."""
    sim.oversleep_ns = oversleep_us * 1000
    clock = DeadlineClock(1e-3)
    clock.start()
    t0 = clock.t0_ns
    lateness = []
    for _ in range(300):
        lateness.append(clock.wait())
        sim.now_ns += 200_000  # work inside the tick
        clock.advance()
    assert clock.tick_start_ns(299) == t0 + 299_000_000
    most = max(0, sim.oversleep_ns - clock.spin_ns) + 2 * sim.read_cost_ns
    assert all(0 <= late <= most for late in lateness), (max(lateness), most)
    assert sim.sleeps >= 299  # it slept, rather than spinning whole ticks
    assert sim.now_ns - t0 < 300_000_000  # the last tick ended inside its own slot


def test_a_late_tick_does_not_shift_the_grid(sim):
    clock = DeadlineClock(1e-3)
    clock.start()
    clock.wait()
    sim.now_ns += 2_500_000  # tick 0 overran by 1.5 ticks
    clock.advance()
    assert clock.wait() > 0  # tick 1 starts at once, late
    clock.advance()
    assert clock.wait() > 0  # tick 2 (t0 + 2 ms) has passed too
    clock.advance()
    late = clock.wait()  # tick 3 (t0 + 3 ms) is ahead again: back on the grid
    assert 0 <= late <= max(0, sim.oversleep_ns - clock.spin_ns) + 2 * sim.read_cost_ns
    assert clock.tick_start_ns() == clock.t0_ns + 3_000_000


def test_skip_to_now_counts_missed_slots(sim):
    clock = DeadlineClock(1e-3)
    clock.start()
    sim.now_ns += 10_500_000
    skipped = clock.skip_to_now()
    assert skipped == 10  # slots 1..10 started during the 10.5 ms; slot 0 is the current one
    assert clock.k == skipped
    assert clock.skip_to_now() == 0


def test_real_clock_waits_never_return_early_and_skips_match_the_elapsed_time():
    clock = DeadlineClock(1e-3)
    clock.start()
    for _ in range(20):
        late = clock.wait()
        assert late >= 0 and time.perf_counter_ns() >= clock.tick_start_ns()
        clock.advance()
    time.sleep(0.0105)
    before = time.perf_counter_ns()
    skipped = clock.skip_to_now()
    after = time.perf_counter_ns()
    # bracketed by the real clock read just before and after, not bounded by a guess
    assert (before - clock.t0_ns) // clock.dt_ns - 20 <= skipped <= (after - clock.t0_ns) // clock.dt_ns - 20
    assert skipped >= 9  # >= 10.5 ms after tick 19 started, 20 being the current slot


def test_bad_dt_refused():
    with pytest.raises(ValueError, match="dt_s"):
        DeadlineClock(0.0)


def test_phase_puts_every_tick_on_the_monotonic_grid():
    dt_ns = 1_000_000
    for phase in (0, 250_000, 999_999):
        clock = DeadlineClock(1e-3)
        before = time.perf_counter_ns()
        clock.start(delay_s=0.002, phase_ns=phase)
        assert clock.t0_ns % dt_ns == phase
        # the first grid point at or after now + delay, not a whole tick later
        assert before + 2_000_000 <= clock.t0_ns < time.perf_counter_ns() + 2_000_000 + dt_ns
        clock.advance()
        assert clock.tick_start_ns() % dt_ns == phase
        clock.wait()
        assert time.perf_counter_ns() >= clock.tick_start_ns()


def test_two_clocks_with_the_same_phase_share_their_deadlines():
    a, b = DeadlineClock(1e-3), DeadlineClock(1e-3)
    a.start(phase_ns=100_000)
    time.sleep(0.0037)
    b.start(phase_ns=100_000)
    assert (b.t0_ns - a.t0_ns) % 1_000_000 == 0


@pytest.mark.parametrize("phase", [-1, 1_000_000, 5_000_000])
def test_phase_outside_the_tick_refused(phase):
    clock = DeadlineClock(1e-3)
    with pytest.raises(ValueError, match="phase_ns"):
        clock.start(phase_ns=phase)
