"""Task adapters for reward-driven learning: gymnasium control tasks and a cursor-reaching task."""

from rtsnn.envs.gym_tasks import TASKS, TaskSpec, make_env, run_episode
from rtsnn.envs.cursor import CursorReach

__all__ = ["TASKS", "TaskSpec", "make_env", "run_episode", "CursorReach"]
