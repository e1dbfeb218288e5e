"""The Yin-Yang benchmark (Kriener, Goeltz, Petrovici), regenerated bit for bit.

Points (x, y) are drawn uniformly in [0, 2 r_big]^2 inside the big circle (centre
(r_big, r_big), radius r_big) by rejection; for each sample the target class is drawn first
(``randint(3)``) and points are redrawn until their class matches, which balances the classes.
Class rule with d_r, d_l the distances to (1.5 r_big, r_big) and (0.5 r_big, r_big)::

    dot (2)  if d_r < r_small or d_l < r_small
    yin (1)  elif d_r <= r_small or r_small < d_l <= r_big / 2 or (y > r_big and d_r > r_big / 2)
    yang (0) otherwise

Features ``[x, y, 1 - x, 1 - y]``. Random numbers come from ``numpy.random.RandomState(seed)``
in the published order (one ``randint(3)`` per sample, then ``rand(2)`` per attempt), so the
published sets are reproduced exactly: train 5000 / seed 42, validation 1000 / 41,
test 1000 / 40.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rtsnn.datasets import Split

PUBLISHED = {"train": (5000, 42), "validation": (1000, 41), "test": (1000, 40)}
CLASS_NAMES = ("yang", "yin", "dot")


def yinyang_class(x: float, y: float, r_small: float = 0.1, r_big: float = 0.5) -> int:
    """Class of a point inside the big circle (see the module docstring)."""
    d_r = math.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
    d_l = math.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
    if d_r < r_small or d_l < r_small:
        return 2
    if d_r <= r_small or (r_small < d_l <= 0.5 * r_big) or (y > r_big and d_r > 0.5 * r_big):
        return 1
    return 0


def generate_yinyang(n: int, seed: int, r_small: float = 0.1, r_big: float = 0.5) -> Split:
    """``n`` samples from the generator seeded with ``seed`` (features (n, 4), labels (n,))."""
    if int(n) < 0:
        raise ValueError(f"n must be >= 0, got {n!r}")
    if not (0 < r_small < r_big):
        raise ValueError(f"need 0 < r_small < r_big, got r_small={r_small}, r_big={r_big}")
    rng = np.random.RandomState(seed)
    feats = np.empty((int(n), 4))
    labels = np.empty(int(n), dtype=np.int64)
    for k in range(int(n)):
        goal = rng.randint(3)
        while True:
            x, y = rng.rand(2) * 2.0 * r_big
            if math.sqrt((x - r_big) ** 2 + (y - r_big) ** 2) > r_big:
                continue
            if yinyang_class(x, y, r_small, r_big) == goal:
                break
        feats[k] = (x, y, 1.0 - x, 1.0 - y)
        labels[k] = goal
    return Split(feats, labels)


def load_yinyang(split: str = "train", data_dir: str | Path | None = None) -> Split:
    """A published split, regenerated (default) or read from ``data_dir`` (the published
    ``{split}_samples.npy`` / ``{split}_labels.npy``)."""
    if split not in PUBLISHED:
        raise ValueError(f"split must be one of {sorted(PUBLISHED)}, got {split!r}")
    if data_dir is None:
        n, seed = PUBLISHED[split]
        return generate_yinyang(n, seed)
    d = Path(data_dir)
    x = np.load(d / f"{split}_samples.npy", allow_pickle=False)
    y = np.load(d / f"{split}_labels.npy", allow_pickle=False)
    return Split(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64))
