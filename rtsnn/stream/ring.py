"""The one bounded, preallocated single-producer / single-consumer ring the threads of a session
hand rows through: :class:`Ring`.

A ring holds ``capacity`` rows of ``width`` values (one dtype), and optionally one float64
time stamp per row. The producer (usually the compute thread) copies rows in with at most two
slice copies into buffers allocated once; the consumer (the I/O thread, a source's worker)
takes them out. Indices only grow and each is written by one side (atomic int stores under
CPython), so neither side locks or waits for the other.

Drop policy when the rows pushed do not fit (``drop``; every dropped row is counted in
``dropped``):

* ``"newest"``: the rows beyond the free space are dropped, the ones that fit are kept (old
  rows stay, so the stamps the consumer sees stay contiguous);
* ``"block"``: a block that does not fit as a whole is dropped as a whole (a recording keeps
  whole ticks or nothing of them).

Either way the producer never waits: a slow consumer costs data (counted), never a tick. A
producer that must not drop (a session at ``pace: max``, offline) waits for room first with
:func:`wait_for_room`.

Rings that overwrite their *oldest* rows so that a reader always finds the newest (the MQTT
sink's :class:`rtsnn.stream.mqtt_sink.CommandRing`, the session monitor's tap) detect
overwritten rows with sequence numbers and are kept apart.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

DROP_POLICIES = ("newest", "block")


class Ring:
    """See the module docstring. ``push(row)`` one row; ``push_block(values, stamps, n)`` the
    first ``n`` rows (``stamps`` None for a ring without stamps); ``drain()`` every pending row
    (``(stamps, values)`` for a ring with stamps; allocates, consumer side);
    ``pop_into(out, out_stamps)`` as many pending rows as ``out`` holds, no allocation."""

    def __init__(self, capacity: int, width: int, dtype: Any = np.float64, *, stamps: bool = False,
                 drop: str = "newest", name: str = "ring"):
        if int(capacity) != capacity or capacity < 2 or int(width) != width or width < 1:
            raise ValueError(f"{name} needs capacity >= 2 and width >= 1, got {capacity}, {width}")
        if drop not in DROP_POLICIES:
            raise ValueError(f"{name}: drop must be one of {DROP_POLICIES}, got {drop!r}")
        self.capacity = int(capacity)
        self.values = np.zeros((self.capacity, int(width)), dtype=dtype)
        self.stamps = np.zeros(self.capacity, np.float64) if stamps else None
        self.drop = drop
        self.head = 0  # written by the producer: rows pushed so far
        self.tail = 0  # written by the consumer: rows taken so far
        self.dropped = 0  # rows dropped because they did not fit

    # -- both sides --------------------------------------------------------------------
    def __len__(self) -> int:
        return self.head - self.tail

    def free(self) -> int:
        """Rows that fit now."""
        return self.capacity - (self.head - self.tail)

    # -- producer ----------------------------------------------------------------------
    def push(self, row: np.ndarray) -> bool:
        """Copy one row in; False (and counted) when the ring is full."""
        if self.head - self.tail >= self.capacity:
            self.dropped += 1
            return False
        self.values[self.head % self.capacity] = row
        self.head += 1
        return True

    def push_block(self, values: np.ndarray, stamps: np.ndarray | None, n: int) -> bool:
        """Copy ``values[:n]`` (and ``stamps[:n]``) in; False when rows were dropped (the
        policy says which)."""
        if n <= 0:
            return True
        free = self.capacity - (self.head - self.tail)
        kept = n
        if n > free:
            if self.drop == "block":
                self.dropped += n
                return False
            self.dropped += n - free
            kept = free
            if kept <= 0:
                return False
        start = self.head % self.capacity
        first = min(kept, self.capacity - start)
        self.values[start:start + first] = values[:first]
        if self.stamps is not None:
            self.stamps[start:start + first] = stamps[:first]
        if first < kept:
            self.values[:kept - first] = values[first:kept]
            if self.stamps is not None:
                self.stamps[:kept - first] = stamps[first:kept]
        self.head += kept
        return kept == n

    # -- consumer ----------------------------------------------------------------------
    def drain(self) -> Any:
        """Every pending row, copied out: ``values`` (n, width), or ``(stamps, values)``."""
        head = self.head
        n = head - self.tail
        if n <= 0:
            out = self.values[:0].copy()
            return out if self.stamps is None else (self.stamps[:0].copy(), out)
        start = self.tail % self.capacity
        end = start + n
        if end <= self.capacity:
            vals = self.values[start:end].copy()
            st = self.stamps[start:end].copy() if self.stamps is not None else None
        else:
            vals = np.concatenate([self.values[start:], self.values[: end - self.capacity]])
            st = (np.concatenate([self.stamps[start:], self.stamps[: end - self.capacity]])
                  if self.stamps is not None else None)
        self.tail = head
        return vals if st is None else (st, vals)

    def pop_into(self, out: np.ndarray, out_stamps: np.ndarray | None = None) -> int:
        """Copy the oldest pending rows into ``out`` (and ``out_stamps``), as many as ``out``
        holds; returns how many. No allocation."""
        n = min(self.head - self.tail, out.shape[0])
        if n <= 0:
            return 0
        start = self.tail % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self.values[start:start + first]
        if out_stamps is not None:
            out_stamps[:first] = self.stamps[start:start + first]
        if first < n:
            out[first:n] = self.values[:n - first]
            if out_stamps is not None:
                out_stamps[first:n] = self.stamps[:n - first]
        self.tail += n
        return n

    @property
    def dropped_samples(self) -> int:
        """``dropped``, by the name the recorder's rings have always reported it under."""
        return self.dropped


def wait_for_room(ring: Ring, n: int, give_up: threading.Event) -> None:
    """Producer side, when nothing may be dropped (``pace: max``): wait until the consumer has
    taken enough of ``ring`` for ``n`` rows, or until ``give_up`` is set (the consumer has
    stopped). A block larger than the whole ring is not waited for (it drops as its policy says)."""
    while n <= ring.capacity and ring.capacity - (ring.head - ring.tail) < n and not give_up.is_set():
        time.sleep(5e-4)
