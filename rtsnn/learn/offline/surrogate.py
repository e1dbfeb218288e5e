"""Unit-area surrogate derivatives of the Heaviside spike function (REFERENCES section 1).

Forward passes always use the exact Heaviside ``z = H(u - theta)``; the backward pass
replaces ``dz/du`` by ``scale * g(x)``, ``x = u - theta``, with one of (``p`` = the family's
parameter, steepness or width)::

    sigmoid       g = p s(p x) (1 - s(p x))              s logistic, p = steepness
    fast_sigmoid  g = p / (2 (1 + p |x|)^2)              p = steepness
    boxcar        g = 1 / (2 p)  for |x| <= p, else 0     p = half width
    triangular    g = (1/p) max(0, 1 - |x| / p)           p = half width
    exponential   g = exp(-|x| / p) / (2 p)               p = scale (Laplace)
    atan          g = (p/2) / (1 + (pi p x / 2)^2)        p = steepness (snnTorch's ATan)

Each integrates to 1 over x. ``g`` is evaluated by :func:`surrogate_grad` (numba) and
:func:`surrogate_grad_np` (numpy reference).

snnTorch mapping (used by the agreement tests): ``snntorch.surrogate.sigmoid(slope=p)`` and
``snntorch.surrogate.atan(alpha=p)`` are exactly our ``sigmoid`` and ``atan``; snnTorch's
``fast_sigmoid(slope=k)`` is ``1/(1 + k|x|)^2``, i.e. ``2/k`` times our unit-area form, so the
tests pass our other families to snnTorch through ``snntorch.surrogate.custom_surrogate``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

SURROGATES = {"sigmoid": 0, "fast_sigmoid": 1, "boxcar": 2, "triangular": 3, "exponential": 4, "atan": 5}
# default parameter per family for v_th = 1 (steepness for sigmoid/fast_sigmoid/atan, width else)
DEFAULT_PARAM = {"sigmoid": 10.0, "fast_sigmoid": 10.0, "boxcar": 0.5, "triangular": 1.0,
                 "exponential": 0.2, "atan": 2.0}


def surrogate_id(name: str, param: float | None = None) -> tuple[int, float]:
    """``(kind id, parameter)`` for a family name; refuses unknown names and ``param <= 0``."""
    if name not in SURROGATES:
        raise ValueError(f"surrogate must be one of {', '.join(SURROGATES)}, got {name!r}")
    p = DEFAULT_PARAM[name] if param is None else float(param)
    if not (math.isfinite(p) and p > 0):
        raise ValueError(f"surrogate parameter for {name!r} must be a finite number > 0, got {param!r}")
    return SURROGATES[name], p


@njit(cache=True, nogil=True, inline="always")
def surrogate_grad(x: float, kind: int, p: float) -> float:
    """``g(x)`` of family ``kind`` (see module docstring), float64 arithmetic."""
    ax = abs(x)
    if kind == 0:
        # p s(px)(1-s(px)) written with e = exp(-p|x|) (symmetric, no overflow)
        e = math.exp(-p * ax)
        return p * e / ((1.0 + e) * (1.0 + e))
    if kind == 1:
        d = 1.0 + p * ax
        return p / (2.0 * d * d)
    if kind == 2:
        return 1.0 / (2.0 * p) if ax <= p else 0.0
    if kind == 3:
        return max(0.0, 1.0 - ax / p) / p
    if kind == 4:
        return math.exp(-ax / p) / (2.0 * p)
    q = 0.5 * math.pi * p * x
    return 0.5 * p / (1.0 + q * q)


def surrogate_grad_np(x: np.ndarray, kind: int, p: float) -> np.ndarray:
    """Plain-numpy reference of :func:`surrogate_grad`, elementwise (float64)."""
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    if kind == 0:
        s = 1.0 / (1.0 + np.exp(p * ax))  # s(-p|x|): g is even, and this side has no cancellation
        return p * s * (1.0 - s)
    if kind == 1:
        return p / (2.0 * (1.0 + p * ax) ** 2)
    if kind == 2:
        return np.where(ax <= p, 1.0 / (2.0 * p), 0.0)
    if kind == 3:
        return np.maximum(0.0, 1.0 - ax / p) / p
    if kind == 4:
        return np.exp(-ax / p) / (2.0 * p)
    if kind == 5:
        return 0.5 * p / (1.0 + (0.5 * np.pi * p * x) ** 2)
    raise ValueError(f"unknown surrogate kind {kind}")


@njit(cache=True, nogil=True)
def surrogate_grad_array(x: np.ndarray, kind: int, p: float, out: np.ndarray) -> None:
    """:func:`surrogate_grad` over a flat array (for tests and calibration)."""
    for i in range(x.shape[0]):
        out[i] = surrogate_grad(x[i], kind, p)
