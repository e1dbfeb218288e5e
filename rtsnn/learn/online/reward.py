"""Where a reward-driven learner gets its reward from.

:class:`RewardSource` is the contract: ``poll()`` returns the reward that arrived since the
last call as ``(reward, t_s)`` (``t_s`` the time stamp of the newest contribution, on the
source's clock) or ``None`` when nothing arrived; it never blocks. Several rewards arriving
between two polls are summed (rewards are additive over time). Non-finite rewards are
counted in ``stats()['bad']`` and ignored, never passed on.

Adapters:

* :class:`QueueRewardSource` -- an in-memory, thread-safe hand-off (``push`` from any thread,
  ``poll`` from the compute thread). It is also the interface an MQTT reward subscriber
  implements: its message callback calls ``push(reward, t_s)``.
* :class:`TaskRewardSource` -- wraps a task adapter (a gymnasium-like env with ``step``) and
  pushes every reward its ``step`` returns.
* :class:`LslRewardSource` -- one channel of an LSL stream through
  :class:`rtsnn.stream.LslSource` (its repairs, loss detection and reconnects).
"""

from __future__ import annotations

import collections
import math
import time
from typing import Any, Protocol, runtime_checkable

import numpy as np


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


class TaskRewardSource(QueueRewardSource):
    """Pushes every reward a task adapter's ``step`` returns (gymnasium-like:
    ``obs, reward, terminated, truncated, info``). Use :meth:`step` in place of ``env.step``."""

    def __init__(self, env, maxlen: int = 4096, clock=time.monotonic):
        super().__init__(maxlen, clock)
        self.env = env

    def step(self, action):
        out = self.env.step(action)
        self.push(out[1])
        return out


class LslRewardSource:
    """Reward from channel ``channel`` of an LSL stream (opened with ``open()``).

    ``source`` defaults to an :class:`rtsnn.stream.LslSource` built from ``lsl_options``
    (``name``/``type``/``source_id``, ``n_channels``...); its NaN policy is forced to 'drop' so
    a NaN reward is dropped and counted there, never held or zeroed into a fake reward.
    """

    def __init__(self, channel: int = 0, source=None, max_samples: int = 256, **lsl_options):
        if source is None:
            from rtsnn.stream.lsl_source import LslSource

            lsl_options.setdefault("n_channels", channel + 1)
            lsl_options["nan_policy"] = "drop"
            lsl_options.setdefault("loss_timeout_s", None)  # rewards are irregular: silence is normal
            source = LslSource(**lsl_options)
        if int(channel) != channel or not 0 <= channel < source.n_channels:
            raise ValueError(f"channel must be an integer in [0, {source.n_channels}), got {channel!r}")
        self.source = source
        self.channel = int(channel)
        self._samples = np.zeros((max_samples, source.n_channels), np.float32)
        self._ts = np.zeros(max_samples, np.float64)
        self.bad = 0
        self.rewards = 0

    def open(self) -> None:
        self.source.open()

    def close(self) -> None:
        self.source.close()

    def poll(self) -> tuple[float, float] | None:
        n = self.source.pull(self._samples, self._ts)
        if n <= 0:
            return None
        col = self._samples[:n, self.channel].astype(np.float64)
        ok = np.isfinite(col)
        self.bad += int(n - ok.sum())
        if not ok.any():
            return None
        self.rewards += int(ok.sum())
        return float(col[ok].sum()), float(self._ts[:n][ok][-1])

    def stats(self) -> dict[str, Any]:
        return {"rewards": self.rewards, "bad": self.bad, "source": self.source.stats()}
