"""Small classification benchmarks (Yin-Yang, XOR, Iris) as plain numpy arrays.

Every loader returns a :class:`Split` (features ``x`` float64 (n, d), integer labels ``y``
(n,)); :func:`check_dataset` validates user-supplied arrays and names the bad one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """One split of a dataset: ``x`` (n, n_features) float64, ``y`` (n,) int64."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        check_dataset(self.x, self.y)

    def __len__(self) -> int:
        return int(self.y.shape[0])


def check_dataset(x: np.ndarray, y: np.ndarray, *, x_name: str = "x", y_name: str = "y",
                  n_features: int | None = None, n_classes: int | None = None) -> None:
    """Raise ValueError naming the array if ``x`` is not finite 2-D or ``y`` is not a 1-D
    integer label vector of the same length (labels in [0, n_classes) when given)."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"{x_name} must be 2-D (n_samples, n_features), got shape {x.shape}")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"{x_name} must have {n_features} features, got {x.shape[1]}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{x_name} must be numeric, got dtype {x.dtype}")
    if np.any(np.isnan(x)):
        raise ValueError(f"{x_name} contains NaN ({int(np.isnan(x).sum())} values)")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{x_name} contains inf")
    if y.ndim != 1:
        raise ValueError(f"{y_name} must be 1-D (n_samples,), got shape {y.shape}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{y_name} has {y.shape[0]} labels but {x_name} has {x.shape[0]} rows")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{y_name} must hold integer labels, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"{y_name} contains negative labels")
    if n_classes is not None and y.size and y.max() >= n_classes:
        raise ValueError(f"{y_name} labels must be < {n_classes}, got {y.max()}")


def minmax_scale(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every column to [0, 1] with the train split's min/max (others are clipped)."""
    lo = train.min(axis=0)
    span = np.where(train.max(axis=0) > lo, train.max(axis=0) - lo, 1.0)
    out = [(train - lo) / span]
    out += [np.clip((o - lo) / span, 0.0, 1.0) for o in others]
    return out


from rtsnn.datasets.iris import load_iris  # noqa: E402
from rtsnn.datasets.xor import load_xor  # noqa: E402
from rtsnn.datasets.yinyang import generate_yinyang, load_yinyang  # noqa: E402

__all__ = ["Split", "check_dataset", "minmax_scale", "generate_yinyang", "load_yinyang",
           "load_xor", "load_iris"]
