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

import time
from typing import Any

import numpy as np

from rtsnn.stream.reward_queue import QueueRewardSource, RewardSource  # re-exported

__all__ = ["LslRewardSource", "QueueRewardSource", "RewardSource", "TaskRewardSource"]


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
