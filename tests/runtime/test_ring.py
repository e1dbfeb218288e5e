import numpy as np
import pytest

from rtsnn.runtime.ring import RowRing


def test_fifo_order_across_wraparound():
    r = RowRing(4, 2)
    got = []
    for i in range(10):
        assert r.push(np.array([i, -i], float))
        if i % 3 == 2:
            got.extend(r.drain()[:, 0].tolist())
    got.extend(r.drain()[:, 0].tolist())
    assert got == list(range(10))
    assert r.dropped == 0


def test_full_ring_drops_newest_and_counts():
    r = RowRing(3, 1)
    results = [r.push(np.array([float(i)])) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert r.dropped == 2
    assert r.drain()[:, 0].tolist() == [0.0, 1.0, 2.0]
    assert len(r) == 0


def test_bad_sizes_refused():
    with pytest.raises(ValueError, match="capacity"):
        RowRing(1, 3)
