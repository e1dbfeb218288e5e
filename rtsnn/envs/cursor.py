"""A 2-D cursor-reaching task (the reward-only BCI adaptation setting), gymnasium-like API.

State: cursor ``c`` and target ``g`` in the unit disc; observation ``g - c`` (2 values).
Action: a movement direction (rad); the cursor moves ``speed_per_s * window_s`` that way each
step. Reward: 1 when ``|g - c| < target_radius`` (terminal), else 0; an episode is truncated
after ``max_steps``. Targets lie on a circle of radius ``target_distance`` around the start.
"""

from __future__ import annotations

import math

import numpy as np


class CursorReach:
    def __init__(self, target_distance: float = 0.5, target_radius: float = 0.1, speed_per_s: float = 1.0,
                 window_s: float = 0.05, max_steps: int = 100, n_targets: int = 8):
        if not (target_distance > 0 and target_radius > 0 and speed_per_s > 0 and window_s > 0):
            raise ValueError("CursorReach: distances, speed and window_s must be > 0")
        if int(max_steps) != max_steps or max_steps < 1 or int(n_targets) != n_targets or n_targets < 1:
            raise ValueError("CursorReach: max_steps and n_targets must be positive integers")
        self.target_distance, self.target_radius = float(target_distance), float(target_radius)
        self.step_len = float(speed_per_s) * float(window_s)
        self.window_s, self.max_steps, self.n_targets = float(window_s), int(max_steps), int(n_targets)
        self.rng = np.random.default_rng(0)
        self.cursor = np.zeros(2)
        self.target = np.zeros(2)
        self.steps = 0

    def reset(self, seed: int | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        k = int(self.rng.integers(self.n_targets))
        ang = 2 * math.pi * k / self.n_targets
        self.cursor[:] = 0.0
        self.target[:] = self.target_distance * math.cos(ang), self.target_distance * math.sin(ang)
        self.steps = 0
        return self.target - self.cursor, {}

    def step(self, action):
        a = float(np.asarray(action).ravel()[0])
        if not math.isfinite(a):
            raise ValueError(f"CursorReach.step: action must be a finite angle (rad), got {a!r}")
        self.cursor += self.step_len * np.array([math.cos(a), math.sin(a)])
        np.clip(self.cursor, -1.0, 1.0, out=self.cursor)
        self.steps += 1
        d = self.target - self.cursor
        hit = float(np.hypot(d[0], d[1])) < self.target_radius
        return d.copy(), (1.0 if hit else 0.0), hit, (not hit and self.steps >= self.max_steps), {}
