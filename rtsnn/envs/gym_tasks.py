"""Gymnasium control tasks as agent loops.

A :class:`TaskSpec` names what an agent needs from a task: the observation box used by the
place-cell encoder (the tasks' own ranges, clipped where gymnasium reports infinity), the
action kind, the decision window (the task's own time step, so the spiking agent runs in
the task's simulated time) and the return that counts as solved. Rewards are the
environment's own, unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtsnn.extras import require


@dataclass(frozen=True)
class TaskSpec:
    env_id: str
    obs_low: tuple[float, ...]
    obs_high: tuple[float, ...]
    window_s: float  # the environment's own time step
    n_actions: int | None = None  # discrete actions
    action_low: float | None = None  # continuous 1-D action
    action_high: float | None = None
    solved_return: float | None = None  # mean over `solved_window` consecutive episodes
    solved_window: int = 100


TASKS: dict[str, TaskSpec] = {
    # x, x_dot, theta, theta_dot; termination at |x| > 2.4, |theta| > 12 deg; tau = 0.02 s
    "CartPole-v1": TaskSpec("CartPole-v1", (-2.4, -3.0, -0.21, -3.5), (2.4, 3.0, 0.21, 3.5), 0.02,
                            n_actions=2, solved_return=475.0),
    # cos t1, sin t1, cos t2, sin t2, t1_dot, t2_dot; dt = 0.2 s
    "Acrobot-v1": TaskSpec("Acrobot-v1", (-1, -1, -1, -1, -4 * math.pi, -9 * math.pi),
                           (1, 1, 1, 1, 4 * math.pi, 9 * math.pi), 0.2, n_actions=3, solved_return=-100.0),
    # cos, sin, theta_dot; dt = 0.05 s; torque in [-2, 2]
    "Pendulum-v1": TaskSpec("Pendulum-v1", (-1, -1, -8), (1, 1, 8), 0.05, action_low=-2.0, action_high=2.0),
}


def make_env(env_id: str, seed: int):
    """A gymnasium env, raising a clear error when gymnasium or the env is missing."""
    gym = require("gymnasium", "gymnasium tasks")
    if env_id not in TASKS:
        raise ValueError(f"unknown env {env_id!r}; known: {', '.join(TASKS)}")
    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def run_episode(env, agent, spec: TaskSpec, seed: int | None = None, max_steps: int | None = None) -> float:
    """Run one episode of ``agent`` (begin_episode/act/end_episode) on ``env``; return the
    sum of the environment's rewards."""
    obs, _ = env.reset(seed=seed)
    agent.begin_episode(obs)
    total = 0.0
    r = 0.0
    steps = 0
    while True:
        a = agent.act(obs, r)
        if spec.n_actions is None:
            a = np.array([a], dtype=np.float32)
        obs, r, term, trunc, _ = env.step(a)
        r = float(r)
        total += r
        steps += 1
        if term or trunc or (max_steps is not None and steps >= max_steps):
            agent.end_episode(r, terminal=bool(term))
            return total


def summarize_run(returns: list[float], spec: TaskSpec) -> dict[str, Any]:
    """First episode at which the mean over the last ``solved_window`` episodes reached the
    solved return (None if never), and the final window's mean."""
    w = spec.solved_window
    arr = np.asarray(returns, float)
    solved_at = None
    if spec.solved_return is not None and arr.size >= w:
        c = np.convolve(arr, np.ones(w) / w, mode="valid")
        hit = np.flatnonzero(c >= spec.solved_return)
        if hit.size:
            solved_at = int(hit[0] + w)
    final = float(arr[-w:].mean()) if arr.size else float("nan")
    return {"solved_at": solved_at, "final_return_mean": final, "episodes": int(arr.size)}
