import time

import pytest

from rtsnn.runtime.clock import DeadlineClock


def test_absolute_deadlines_do_not_drift():
    clock = DeadlineClock(1e-3)
    clock.start()
    t0 = time.perf_counter_ns()
    for _ in range(300):
        clock.wait()
        time.sleep(0.0002)  # work inside the tick
        clock.advance()
    elapsed_ms = (time.perf_counter_ns() - t0) / 1e6
    # 300 ticks of 1 ms: the last wait returns at 299 ms; relative pacing would add the work time
    assert 298.0 <= elapsed_ms < 299.0 + 5.0


def test_skip_to_now_counts_missed_slots():
    clock = DeadlineClock(1e-3)
    clock.start()
    time.sleep(0.0105)
    skipped = clock.skip_to_now()
    assert 10 <= skipped <= 14
    assert clock.k == skipped
    assert clock.skip_to_now() == 0


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
