"""Task adapters: solved-window bookkeeping and one real gymnasium episode."""

import numpy as np
import pytest

from conftest import import_or_skip

from rtsnn.envs.gym_tasks import TASKS, make_env, run_episode, summarize_run
from rtsnn.learn.online.actor_critic import LinearActorCritic, PlaceCellEncoder


def test_summarize_run_finds_first_solving_window():
    spec = TASKS["CartPole-v1"]
    rets = [10.0] * 50 + [500.0] * 120
    out = summarize_run(rets, spec)
    assert out["solved_at"] == 50 + 95  # 95 x 500 + 5 x 10 = 47550 >= 100 x 475
    assert summarize_run([10.0] * 150, spec)["solved_at"] is None


def test_run_episode_on_cartpole_and_unknown_env():
    import_or_skip("gymnasium")
    spec = TASKS["CartPole-v1"]
    env = make_env("CartPole-v1", 0)
    ag = LinearActorCritic(PlaceCellEncoder(spec.obs_low, spec.obs_high), 2, seed=0)
    ret = run_episode(env, ag, spec, seed=0)
    assert 1 <= ret <= 500
    with pytest.raises(ValueError, match="unknown env"):
        make_env("NoSuchEnv-v0", 0)
