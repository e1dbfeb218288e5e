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
