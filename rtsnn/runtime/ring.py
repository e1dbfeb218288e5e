"""The session's output ring: :class:`rtsnn.stream.ring.Ring`, which every ring of the session
is (this module keeps the name :class:`RowRing` for it).

The compute thread pushes one row per timed tick (no allocation: one slice copy); the I/O
thread drains them. When the ring is full the *new* row is dropped and counted: the producer
never waits and never touches the consumer's index, so a slow consumer costs data (counted),
never a tick.
"""

from __future__ import annotations

import numpy as np

from rtsnn.stream.ring import Ring, wait_for_room

__all__ = ["Ring", "RowRing", "wait_for_room"]


def RowRing(capacity: int, width: int, dtype=np.float64) -> Ring:  # noqa: N802 - the old class name
    """A ring of ``width``-wide rows without stamps that drops the newest row when full."""
    return Ring(capacity, width, dtype, drop="newest", name="ring")
