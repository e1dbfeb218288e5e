"""A bounded, preallocated single-producer / single-consumer ring of fixed-width rows.

The compute thread pushes rows (no allocation: one slice copy); the I/O thread drains them.
When the ring is full the *new* row is dropped and counted: the producer never waits and
never touches the consumer's index, so a slow consumer costs data (counted), never a tick.
Indices only grow and are each written by one side; under CPython each int store is atomic.
"""

from __future__ import annotations

import numpy as np


class RowRing:
    def __init__(self, capacity: int, width: int, dtype=np.float64):
        if capacity < 2 or width < 1:
            raise ValueError(f"ring needs capacity >= 2 and width >= 1, got {capacity}, {width}")
        self.capacity = int(capacity)
        self.buf = np.zeros((self.capacity, int(width)), dtype=dtype)
        self.head = 0  # written by the producer: rows pushed so far
        self.tail = 0  # written by the consumer: rows drained so far
        self.dropped = 0

    def push(self, row: np.ndarray) -> bool:
        """Copy ``row`` in; False (and counted) when the ring is full."""
        if self.head - self.tail >= self.capacity:
            self.dropped += 1
            return False
        self.buf[self.head % self.capacity] = row
        self.head += 1
        return True

    def __len__(self) -> int:
        return self.head - self.tail

    def drain(self) -> np.ndarray:
        """Consumer side: copy out every pending row (allocates; runs on the I/O thread)."""
        head = self.head
        n = head - self.tail
        if n <= 0:
            return self.buf[:0].copy()
        start = self.tail % self.capacity
        end = start + n
        if end <= self.capacity:
            out = self.buf[start:end].copy()
        else:
            out = np.concatenate([self.buf[start:], self.buf[: end - self.capacity]])
        self.tail = head
        return out
