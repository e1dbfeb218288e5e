"""Reward sources: queue (the MQTT hand-off), task adapter, LSL; NaN rewards counted, ignored."""

import time

import numpy as np
import pytest

from rtsnn.envs.cursor import CursorReach
from rtsnn.learn.online.reward import LslRewardSource, QueueRewardSource, RewardSource, TaskRewardSource


def test_queue_sums_between_polls_and_counts_bad():
    q = QueueRewardSource(maxlen=3)
    assert isinstance(q, RewardSource)
    assert q.poll() is None
    assert q.push(1.0, 10.0) and q.push(2.5, 11.0)
    assert not q.push(float("nan")) and not q.push("x")
    assert q.poll() == (3.5, 11.0)
    assert q.poll() is None
    for k in range(5):
        q.push(1.0, float(k))
    assert q.stats()["dropped"] == 2 and q.poll() == (3.0, 4.0)
    assert q.stats()["bad"] == 2
    with pytest.raises(ValueError, match="maxlen"):
        QueueRewardSource(maxlen=0)


def test_task_reward_source_forwards_env_rewards():
    env = CursorReach(target_distance=0.15, target_radius=0.1, window_s=0.1, n_targets=1)
    src = TaskRewardSource(env)
    env.reset(seed=0)
    out = src.step(0.0)  # target at angle 0: one step of 0.1 reaches within 0.1
    assert out[1] == 1.0 and out[2] is True
    assert src.poll()[0] == 1.0


def test_cursor_rejects_bad_action():
    env = CursorReach()
    env.reset(seed=1)
    with pytest.raises(ValueError, match="finite angle"):
        env.step(float("nan"))
    with pytest.raises(ValueError, match="max_steps"):
        CursorReach(max_steps=0)


@pytest.mark.lsl
def test_lsl_reward_source_drops_nan():
    import pylsl

    name = f"rtsnn-reward-test-{time.time_ns()}"
    info = pylsl.StreamInfo(name, "Reward", 1, 0.0, "float32", name)
    outlet = pylsl.StreamOutlet(info)
    src = LslRewardSource(name=name, n_channels=1, resolve_timeout_s=5.0)
    src.open()
    try:
        deadline = time.monotonic() + 5.0
        got = []
        sent = False
        while time.monotonic() < deadline and sum(g[0] for g in got) < 3.0:
            if not sent:
                time.sleep(0.3)
                for v in (1.0, float("nan"), 2.0):
                    outlet.push_sample([v])
                sent = True
            r = src.poll()
            if r is not None:
                got.append(r)
            time.sleep(0.01)
        assert sum(g[0] for g in got) == pytest.approx(3.0)
        st = src.stats()
        assert st["rewards"] == 2
    finally:
        src.close()
