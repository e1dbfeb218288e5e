"""Adam with global-norm gradient clipping, on a dict of float64 arrays.

``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
``p <- p - lr * m_hat / (sqrt(v_hat) + eps)`` with bias-corrected ``m_hat, v_hat``; before the
update the gradients are scaled by ``min(1, clip_norm / ||g||_2)`` (global norm over the
trained keys) when ``clip_norm`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def global_norm(grads: dict[str, np.ndarray], keys) -> float:
    return float(np.sqrt(sum(float(np.sum(grads[k] ** 2)) for k in keys)))


@dataclass
class Adam:
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    clip_norm: float | None = None
    step_count: int = 0
    m: dict[str, np.ndarray] = field(default_factory=dict)
    v: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0 or None, got {self.clip_norm!r}")

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], keys) -> float:
        """Update ``params[k]`` in place for ``k in keys``; returns the pre-clip gradient norm."""
        keys = list(keys)
        norm = global_norm(grads, keys)
        scale = 1.0
        if self.clip_norm is not None and norm > self.clip_norm:
            scale = self.clip_norm / norm
        self.step_count += 1
        b1c = 1.0 - self.beta1 ** self.step_count
        b2c = 1.0 - self.beta2 ** self.step_count
        for k in keys:
            g = grads[k] * scale
            if k not in self.m:
                self.m[k] = np.zeros_like(params[k])
                self.v[k] = np.zeros_like(params[k])
            self.m[k] = self.beta1 * self.m[k] + (1.0 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1.0 - self.beta2) * g * g
            params[k] -= self.lr * (self.m[k] / b1c) / (np.sqrt(self.v[k] / b2c) + self.eps)
        return norm

    def state_arrays(self) -> dict[str, np.ndarray]:
        out = {f"adam_m/{k}": v for k, v in self.m.items()}
        out.update({f"adam_v/{k}": v for k, v in self.v.items()})
        return out

    def load_state_arrays(self, arrays: dict[str, np.ndarray], step_count: int) -> None:
        self.m = {k[len("adam_m/"):]: np.array(v) for k, v in arrays.items() if k.startswith("adam_m/")}
        self.v = {k[len("adam_v/"):]: np.array(v) for k, v in arrays.items() if k.startswith("adam_v/")}
        self.step_count = int(step_count)
