"""The one bounded, preallocated single-producer / single-consumer ring the threads of a session
hand rows through: :class:`Ring`.

A ring holds ``capacity`` rows of ``width`` values (one dtype), and optionally one float64
time stamp per row. The producer (usually the compute thread) copies rows in with at most two
slice copies into buffers allocated once; the consumer (the I/O thread, a source's worker)
takes them out. Indices only grow and each is written by one side (atomic int stores under
CPython), so neither side locks or waits for the other.

Drop policy when the rows pushed do not fit (``drop``; every dropped row is counted):

* ``"newest"``: the rows beyond the free space are dropped, the ones that fit are kept (old
  rows stay, so the stamps the consumer sees stay contiguous);
* ``"block"``: a block that does not fit as a whole is dropped as a whole (a recording keeps
  whole ticks or nothing of them);
* ``"oldest"``: the producer always writes, over the oldest rows, so the consumer always
  finds the newest ``capacity`` rows (a viewer, an actuator's command queue). It never looks
  at the consumer's index; the consumer detects what was overwritten: rows more than
  ``capacity`` behind the producer are lost, and so is any row the producer may have been
  rewriting while the consumer copied it (one spare slot is kept for the row being written,
  so ``capacity`` rows stay readable). ``read_margin`` rows more are skipped on purpose, so a
  slow reader does not copy rows about to go. Lost rows are counted in ``dropped`` when the
  consumer passes them; :meth:`Ring.lost` also counts those overwritten but not yet passed.

Either way the producer never waits: a slow consumer costs data (counted), never a tick. A
producer that must not drop (a session at ``pace: max``, offline) waits for room first with
:func:`wait_for_room`. Rows may be written in place (several typed views of one row, e.g. a
structured ``dtype``): :meth:`Ring.slot`, write, :meth:`Ring.commit`.

Every ring of the package is this type, configured: the session's output rows
(:func:`rtsnn.runtime.ring.RowRing`), the recording's blocks
(:func:`rtsnn.stream.recorder.BlockRing`), a supervised source's buffer, the MQTT sink's
command queue (:func:`rtsnn.stream.mqtt_sink.command_ring`, ``"oldest"``) and the session
monitor's tap (:class:`rtsnn.runtime.monitor.MonitorTap`, ``"oldest"``, structured rows).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

DROP_POLICIES = ("newest", "block", "oldest")


class Ring:
    """See the module docstring. ``push(row)`` one row; ``push_block(values, stamps, n)`` the
    first ``n`` rows (``stamps`` None for a ring without stamps); ``drain()`` every pending row
    (``(stamps, values)`` for a ring with stamps; allocates, consumer side);
    ``pop_into(out, out_stamps)`` as many pending rows as ``out`` holds, no allocation;
    ``read_since(cursor)`` (policy ``"oldest"``) copies of the rows from a reader's own cursor
    on, without moving ``tail``."""

    def __init__(self, capacity: int, width: int, dtype: Any = np.float64, *, stamps: bool = False,
                 drop: str = "newest", name: str = "ring", read_margin: int = 0):
        if drop not in DROP_POLICIES:
            raise ValueError(f"{name}: drop must be one of {DROP_POLICIES}, got {drop!r}")
        least = 1 if drop == "oldest" else 2
        if int(capacity) != capacity or capacity < least or int(width) != width or width < 1:
            raise ValueError(f"{name} needs capacity >= {least} and width >= 1, got {capacity}, {width}")
        if int(read_margin) != read_margin or not 0 <= read_margin < capacity or (read_margin and drop != "oldest"):
            raise ValueError(f"{name}: read_margin must be an integer in [0, capacity) and only with drop='oldest', "
                             f"got {read_margin!r}")
        self.capacity = int(capacity)
        self.drop = drop
        self.read_margin = int(read_margin)
        # "oldest": one spare slot, the one the producer may be rewriting while the consumer reads
        self._slots = self.capacity + (1 if drop == "oldest" else 0)
        self._overwrite = drop == "oldest"
        self.values = np.zeros((self._slots, int(width)), dtype=dtype)
        self.stamps = np.zeros(self._slots, np.float64) if stamps else None
        self.head = 0  # written by the producer: rows pushed so far
        self.tail = 0  # written by the consumer: rows taken (or passed as lost) so far
        self.dropped = 0  # rows dropped: by the producer ("newest", "block"), as passed by the consumer ("oldest")

    # -- both sides --------------------------------------------------------------------
    def __len__(self) -> int:
        """Rows that can still be taken."""
        return min(self.head - self.tail, self.capacity)

    def free(self) -> int:
        """Rows that fit now without dropping (``"oldest"``: always ``capacity``)."""
        return self.capacity if self._overwrite else self.capacity - (self.head - self.tail)

    def lost(self) -> int:
        """Rows dropped so far; with ``"oldest"`` also those already overwritten that the
        consumer has not passed yet (so the count is current while it is idle)."""
        if self._overwrite:
            return self.dropped + max(0, self.head - self.tail - self.capacity)
        return self.dropped

    # -- producer ----------------------------------------------------------------------
    def push(self, row: np.ndarray) -> bool:
        """Copy one row in; False (and counted) when the ring is full (never with ``"oldest"``)."""
        if not self._overwrite and self.head - self.tail >= self.capacity:
            self.dropped += 1
            return False
        self.values[self.head % self._slots] = row
        self.head += 1
        return True

    def slot(self) -> int:
        """For a row written in place: the index into ``values`` (and ``stamps``) the next row
        goes to, then :meth:`commit`; -1 (counted as dropped) when the ring is full."""
        if not self._overwrite and self.head - self.tail >= self.capacity:
            self.dropped += 1
            return -1
        return self.head % self._slots

    def commit(self) -> None:
        """Publish the row written at :meth:`slot` (after it is complete)."""
        self.head += 1

    def push_block(self, values: np.ndarray, stamps: np.ndarray | None, n: int) -> bool:
        """Copy ``values[:n]`` (and ``stamps[:n]``) in; False when rows were dropped (the
        policy says which; ``"oldest"`` keeps at most the last ``capacity`` of the block)."""
        if n <= 0:
            return True
        skip = 0
        if self._overwrite:
            skip = max(0, n - self.capacity)  # rows the block itself would overwrite
            free = n
        else:
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
        slots = self._slots
        start = (self.head + skip) % slots
        first = min(kept - skip, slots - start)
        self.values[start:start + first] = values[skip:skip + first]
        if self.stamps is not None:
            self.stamps[start:start + first] = stamps[skip:skip + first]
        if skip + first < kept:
            self.values[:kept - skip - first] = values[skip + first:kept]
            if self.stamps is not None:
                self.stamps[:kept - skip - first] = stamps[skip + first:kept]
        self.head += kept
        return kept == n

    # -- consumer ----------------------------------------------------------------------
    def drain(self) -> Any:
        """Every pending row, copied out: ``values`` (n, width), or ``(stamps, values)``."""
        if self._overwrite:
            first, end, vals, st = self._copy_since(self.tail)
            self.dropped += first - self.tail
            self.tail = end
            return vals if st is None else (st, vals)
        head = self.head
        n = head - self.tail
        if n <= 0:
            out = self.values[:0].copy()
            return out if self.stamps is None else (self.stamps[:0].copy(), out)
        start = self.tail % self._slots
        end = start + n
        if end <= self._slots:
            vals = self.values[start:end].copy()
            st = self.stamps[start:end].copy() if self.stamps is not None else None
        else:
            vals = np.concatenate([self.values[start:], self.values[: end - self._slots]])
            st = (np.concatenate([self.stamps[start:], self.stamps[: end - self._slots]])
                  if self.stamps is not None else None)
        self.tail = head
        return vals if st is None else (st, vals)

    def pop_into(self, out: np.ndarray, out_stamps: np.ndarray | None = None) -> int:
        """Copy the oldest pending rows into ``out`` (and ``out_stamps``), as many as ``out``
        holds; returns how many. No allocation."""
        while True:
            head = self.head
            first = self.tail
            if self._overwrite:
                first = max(first, head - self.capacity + self.read_margin)
            n = min(head - first, out.shape[0])
            if n <= 0:
                if self._overwrite and first > self.tail:
                    self.dropped += first - self.tail
                    self.tail = first
                return 0
            slots = self._slots
            start = first % slots
            part = min(n, slots - start)
            out[:part] = self.values[start:start + part]
            if out_stamps is not None:
                out_stamps[:part] = self.stamps[start:start + part]
            if part < n:
                out[part:n] = self.values[:n - part]
                if out_stamps is not None:
                    out_stamps[part:n] = self.stamps[:n - part]
            cut = 0
            if self._overwrite:
                # rows the producer may have rewritten while they were copied are lost
                cut = min(n, max(0, self.head - self.capacity - first))
                if cut:
                    out[:n - cut] = out[cut:n]
                    if out_stamps is not None:
                        out_stamps[:n - cut] = out_stamps[cut:n]
                self.dropped += first - self.tail + cut
            self.tail = first + n
            if n - cut > 0 or not self._overwrite:
                return n - cut

    def read_since(self, cursor: int) -> tuple[int, int, np.ndarray, np.ndarray | None]:
        """Policy ``"oldest"``, for a reader that keeps its own ``cursor`` (``tail`` is not
        moved): copies of the intact rows from row ``cursor`` on. Returns ``(first, end,
        values, stamps)``: rows ``first .. end - 1`` (``stamps`` None without stamps);
        ``first - cursor`` rows were lost. Allocates (consumer side)."""
        if not self._overwrite:
            raise ValueError("Ring.read_since needs drop='oldest' (other policies hand each row over once: drain)")
        return self._copy_since(cursor)

    def _copy_since(self, cursor: int) -> tuple[int, int, np.ndarray, np.ndarray | None]:
        head = self.head
        first = min(head, max(cursor, head - self.capacity + self.read_margin))
        idx = np.arange(first, head) % self._slots
        vals = self.values[idx]
        st = self.stamps[idx] if self.stamps is not None else None
        # the producer may be rewriting the slot of row `now - capacity - 1`: rows up to it are lost
        cut = min(head - first, max(0, self.head - self.capacity - first))
        if cut:
            vals = vals[cut:]
            st = st[cut:] if st is not None else None
            first += cut
        return first, head, vals, st

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
