"""XOR: the four points of {0, 1}^2 with label x0 XOR x1 (train = test)."""

from __future__ import annotations

import numpy as np

from rtsnn.datasets import Split


def load_xor() -> Split:
    """Features (4, 2) in {0, 1}, labels (4,): 0, 1, 1, 0."""
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return Split(x, y)
