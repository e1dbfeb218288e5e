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
        Ring(4, 1, drop="random")
    with pytest.raises(ValueError, match="read_margin"):
        Ring(4, 1, drop="newest", read_margin=1)  # a margin means nothing where rows are never overwritten
    with pytest.raises(ValueError, match="read_margin"):
        Ring(4, 1, drop="oldest", read_margin=4)


# ---------------------------------------------------------------- drop="oldest"
def test_oldest_policy_overwrites_and_the_consumer_counts_what_it_lost():
    from rtsnn.stream.ring import Ring

    r = Ring(4, 1, drop="oldest")
    assert all(r.push(np.array([float(i)])) for i in range(10))  # the producer never refuses
    assert r.lost() == 6 and r.dropped == 0 and len(r) == 4  # counted once the consumer passes them
    assert r.drain()[:, 0].tolist() == [6.0, 7.0, 8.0, 9.0]
    assert r.dropped == 6 == r.lost() and len(r) == 0
    r.push(np.array([10.0]))
    out = np.zeros((3, 1))
    assert r.pop_into(out) == 1 and out[0, 0] == 10.0 and r.pop_into(out) == 0


def test_oldest_policy_blocks_keep_the_newest_rows_with_their_stamps():
    from rtsnn.stream.ring import Ring

    r = Ring(3, 1, stamps=True, drop="oldest")
    x = np.arange(5, dtype=np.float64)[:, None]
    assert r.push_block(x, x[:, 0] + 100, 5)  # nothing refused: the oldest rows go
    st, v = r.drain()
    assert v[:, 0].tolist() == [2.0, 3.0, 4.0] and st.tolist() == [102.0, 103.0, 104.0] and r.dropped == 2


def test_read_since_leaves_tail_alone_and_keeps_its_margin_from_the_writer():
    from rtsnn.stream.ring import Ring

    r = Ring(8, 1, drop="oldest", read_margin=2)
    for i in range(5):
        r.push(np.array([float(i)]))
    first, end, v, st = r.read_since(0)
    assert (first, end) == (0, 5) and v[:, 0].tolist() == [0, 1, 2, 3, 4] and st is None and r.tail == 0
    for i in range(5, 20):
        r.push(np.array([float(i)]))
    first, end, v, _ = r.read_since(5)
    assert (first, end) == (20 - 8 + 2, 20)  # rows within the margin of being overwritten: skipped
    assert v[:, 0].tolist() == list(range(first, 20))
    with pytest.raises(ValueError, match="oldest"):
        Ring(4, 1).read_since(0)


def test_rows_written_in_place_through_slot_and_commit():
    from rtsnn.stream.ring import Ring

    row = np.dtype([("a", np.uint8, (3,)), ("b", np.float32, (2,))])
    r = Ring(4, 1, row, drop="oldest")
    for k in range(6):
        i = r.slot()
        r.values["a"][i, 0] = k
        r.values["b"][i, 0] = (k, -k)
        r.commit()
    got = r.drain()
    assert got["a"][:, 0, 0].tolist() == [2, 3, 4, 5] and got["b"][:, 0, 1].tolist() == [-2, -3, -4, -5]
    full = Ring(2, 1)  # "newest": a full ring gives no slot and counts the row as dropped
    for _ in range(2):
        full.slot()
        full.commit()
    assert full.slot() == -1 and full.dropped == 1


def test_oldest_policy_never_hands_out_a_row_rewritten_while_it_was_copied():
    """A producer thread writes rows whose every value is the row's index, wide enough that
    copies take a while; a consumer that keeps up only now and then must get only whole rows,
    in order, each at most once, and count every row it did not get."""
    import threading

    from rtsnn.stream.ring import Ring

    r = Ring(8, 2048, drop="oldest")
    n_rows = 20000
    stop = threading.Event()

    def produce() -> None:
        row = np.zeros(2048)
        for k in range(n_rows):
            row[:] = k
            r.push(row)
        stop.set()

    th = threading.Thread(target=produce)
    th.start()
    seen: list[int] = []
    out = np.zeros((3, 2048))
    while True:
        done = stop.is_set()
        n = r.pop_into(out)
        for j in range(n):
            assert (out[j] == out[j, 0]).all(), "a torn row"
            seen.append(int(out[j, 0]))
        if done and n == 0:
            break
    th.join()
    assert seen == sorted(set(seen))
    assert len(seen) + r.lost() == n_rows == r.head
