"""Tests to keep when you copy the template: options, the contract, and the data itself.

No test here bounds how long a call takes (a shared or loaded test machine makes such bounds
flaky); rtsnn's scripts/bench_timing_bounds.py times this template's pull (check
template_pull) and is the model for timing your own adapter.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pylsl
import pytest

from rtsnn.protocols import Source
from rtsnn_mysensor.source import MySensorSource


@pytest.mark.parametrize("kwargs, msg", [({"n_channels": 0}, "n_channels"), ({"srate_hz": -1}, "srate_hz"),
                                         ({"freq_hz": 200.0}, "freq_hz")])
def test_bad_options_are_named(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        MySensorSource(**kwargs)


def test_contract_and_values():
    src = MySensorSource(n_channels=3, srate_hz=1000.0, freq_hz=5.0)
    assert isinstance(src, Source)
    src.open()
    try:
        buf, ts = np.zeros((1024, 3), np.float32), np.zeros(1024)
        time.sleep(0.05)
        before = pylsl.local_clock()
        n = src.pull(buf, ts)
        after = pylsl.local_clock()
        # a pull delivers what was due when it was called and does not wait for more: every
        # sample stamped at or before the call, at least those due just before it
        assert int((before - src._t0) * 1000.0) + 1 <= n
        assert ts[n - 1] <= after
        k = np.arange(n)
        expect = np.sin(2 * math.pi * 5.0 * k[:, None] / 1000.0 + np.arange(3) * math.pi / 3)
        np.testing.assert_allclose(buf[:n], expect, atol=1e-6)
        np.testing.assert_allclose(np.diff(ts[:n]), 1e-3, atol=1e-9)
        last = ts[n - 1]
        time.sleep(0.005)
        m = src.pull(buf, ts)  # only what became due since, continuing where the last pull ended
        assert m >= 1 and ts[0] == pytest.approx(last + 1e-3)
        assert src.stats()["samples"] >= n
    finally:
        src.close()


def test_small_buffer_is_counted_not_lost():
    src = MySensorSource(n_channels=1, srate_hz=1000.0)
    src.open()
    buf, ts = np.zeros((4, 1), np.float32), np.zeros(4)
    time.sleep(0.02)
    assert src.pull(buf, ts) == 4 and src.truncated > 0
    assert src.pull(buf, ts) == 4  # the rest comes on the next calls
    assert ts[0] == pytest.approx(src._t0 + 4e-3)
    src.close()
