"""The reward queue shared by reward inputs (MQTT, LSL, task adapters) and reward-driven
learners: it lives in the stream layer so that sources can fill it without importing the
learners above them (:mod:`rtsnn.learn.online.reward` re-exports it)."""

from __future__ import annotations

import collections
import math
import time
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class RewardSource(Protocol):
    def poll(self) -> tuple[float, float] | None:
        """The summed reward since the last poll and the newest time stamp, or None."""

    def stats(self) -> dict[str, Any]:
        """Counters (JSON-serialisable): rewards, bad, polls_with_reward, ..."""


class QueueRewardSource:
    """Thread-safe in-memory reward queue (``collections.deque``: append/popleft are atomic).

    ``maxlen`` bounds memory; when full the oldest rewards are dropped and counted.
    """

    def __init__(self, maxlen: int = 4096, clock=time.monotonic):
        if int(maxlen) != maxlen or maxlen < 1:
            raise ValueError(f"maxlen must be a positive integer, got {maxlen!r}")
        self._q: collections.deque = collections.deque(maxlen=int(maxlen))
        self._clock = clock
        self.maxlen = int(maxlen)
        self.pushed = 0
        self.bad = 0
        self.dropped = 0
        self.delivered = 0

    def push(self, reward: float, t_s: float | None = None) -> bool:
        """Queue one reward; returns False (and counts it) if it is not a finite number."""
        try:
            r = float(reward)
        except (TypeError, ValueError):
            self.bad += 1
            return False
        if not math.isfinite(r):
            self.bad += 1
            return False
        t = self._clock() if t_s is None else float(t_s)
        if len(self._q) == self.maxlen:
            self.dropped += 1
        self._q.append((r, t))
        self.pushed += 1
        return True

    def poll(self) -> tuple[float, float] | None:
        total, t_last, n = 0.0, 0.0, 0
        q = self._q
        while q:
            try:
                r, t = q.popleft()
            except IndexError:  # emptied by another consumer
                break
            total += r
            t_last = t
            n += 1
        if n == 0:
            return None
        self.delivered += n
        return total, t_last

    def stats(self) -> dict[str, Any]:
        return {"rewards": self.pushed, "bad": self.bad, "dropped": self.dropped, "delivered": self.delivered,
                "queued": len(self._q)}
