"""The monitor's tap on the compute thread: ``MonitorTap.emit`` writes its ring's slot in place
with no Python call beyond itself and its copies (index arithmetic on the ring's ``head``, no
``Ring.slot`` / ``Ring.commit``), and any capacity
>= 64 works (the ring indexes ``capacity + 1`` slots with ``%``; no power of two needed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from rtsnn.runtime.monitor import MonitorTap


def _tap(cap: int, n_rec: int = 8, n_out: int = 2):
    tap = MonitorTap(n_rec, n_out, capacity_ticks=cap)
    z, tgt = np.zeros(n_rec, np.float32), np.zeros(n_out, np.float32)
    tap.bind(z, tgt)
    return tap, z, tgt


@pytest.mark.parametrize("cap", [64, 100, 1000])
def test_any_capacity_keeps_the_newest_rows_in_order(cap):
    tap, z, tgt = _tap(cap)
    y = np.zeros(2, np.float32)
    n = 3 * cap + 7  # wraps the ring several times, ending off a slot boundary
    for k in range(n):
        y[:] = (k, -k)
        tgt[:] = (2 * k, 0)
        z[:] = 0
        z[k % 8] = 1
        tap.emit(y, 0.0)
    first, head, zr, yt = tap.read_since(0)
    assert head == n == tap.head and first == n - cap + cap // 8  # the reader's margin from the writer
    rows = np.arange(first, n)
    np.testing.assert_array_equal(yt[:, 0], rows)
    np.testing.assert_array_equal(yt[:, 1], -rows)
    np.testing.assert_array_equal(yt[:, 2], 2 * rows)
    np.testing.assert_array_equal(zr[np.arange(rows.size), rows % 8], 1)


def test_emit_makes_no_python_call_of_its_own():
    tap, _, _ = _tap(128)
    y = np.ones(2, np.float32)
    tap.emit(y, 0.0)
    calls: list[str] = []

    def profile(frame, event, arg):
        if event == "call":
            calls.append(frame.f_code.co_qualname)

    sys.setprofile(profile)
    try:
        tap.emit(y, 0.0)
    finally:
        sys.setprofile(None)
    # numpy's copyto (the three row copies) has a Python-level dispatcher; nothing else is called
    assert [c for c in calls if c != "copyto"] == ["MonitorTap.emit"]
    assert tap.head == 2 and tap.ring.head == 2


@pytest.mark.parametrize("cap", [32, 63, 100.5])
def test_capacity_below_64_or_fractional_is_refused(cap):
    with pytest.raises(ValueError, match="capacity_ticks must be an integer >= 64"):
        MonitorTap(8, 2, capacity_ticks=cap)
