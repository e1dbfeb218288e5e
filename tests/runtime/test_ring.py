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


def test_block_policy_drops_a_whole_block_and_newest_policy_keeps_what_fits():
    from rtsnn.stream.ring import Ring

    vals = np.arange(10, dtype=np.float32).reshape(5, 2)
    stamps = np.arange(5, dtype=np.float64) + 100.0
    block = Ring(4, 2, np.float32, stamps=True, drop="block")
    assert block.push_block(vals, stamps, 3) and not block.push_block(vals, stamps, 2)
    assert block.dropped == 2 == block.dropped_samples
    st, got = block.drain()
    assert st.tolist() == [100.0, 101.0, 102.0] and got[:, 0].tolist() == [0.0, 2.0, 4.0]
    newest = Ring(4, 2, np.float32, stamps=True, drop="newest")
    assert newest.push_block(vals, stamps, 3) and not newest.push_block(vals, stamps, 2)
    assert newest.dropped == 1
    out, out_st = np.zeros((3, 2), np.float32), np.zeros(3)
    assert newest.pop_into(out, out_st) == 3 and out_st.tolist() == [100.0, 101.0, 102.0]
    assert newest.pop_into(out, out_st) == 1 and out_st[0] == 100.0 and out[0, 1] == 1.0
    assert len(newest) == 0


def test_wraparound_keeps_order_and_stamps():
    from rtsnn.stream.ring import Ring

    r = Ring(4, 1, stamps=True)
    seen = []
    for i in range(0, 12, 3):
        x = np.arange(i, i + 3, dtype=np.float64)[:, None]
        assert r.push_block(x, x[:, 0] * 10, 3)
        st, v = r.drain()
        assert (st == v[:, 0] * 10).all()
        seen += v[:, 0].tolist()
    assert seen == list(range(12))


def test_wait_for_room_gives_up_when_told_and_bad_policies_are_refused():
    import threading

    from rtsnn.stream.ring import Ring, wait_for_room

    r = Ring(2, 1)
    r.push(np.zeros(1))
    r.push(np.zeros(1))
    done = threading.Event()
    done.set()
    wait_for_room(r, 1, done)  # returns: the consumer has stopped
    wait_for_room(r, 3, threading.Event())  # larger than the ring: not waited for
    with pytest.raises(ValueError, match="drop"):
        Ring(4, 1, drop="oldest")
