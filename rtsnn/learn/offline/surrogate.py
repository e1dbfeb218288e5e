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
    ste           g = 1  for |x| <= p, else 0             p = half width of the window
                                                          (default inf: g = 1 everywhere)

Each of the first six integrates to 1 over x (:data:`SURROGATES`, the unit-area families). The
straight-through estimator ``ste`` (:data:`ESTIMATORS`) does not: it passes the gradient
unchanged, ``dz/du := 1``, which with the default ``p = inf`` is exactly snnTorch's
``surrogate.straight_through_estimator()`` (its backward returns ``grad_output`` as it is); a
finite ``p`` restricts it to a window ``|u - theta| <= p`` around the threshold.
:data:`SURROGATE_KINDS` holds every family :class:`~rtsnn.learn.offline.bptt_graph.BpttOptions`
accepts. ``g`` is evaluated by :func:`surrogate_grad` (numba) and
:func:`surrogate_grad_np` (numpy reference).

snnTorch mapping (used by the agreement tests): ``snntorch.surrogate.sigmoid(slope=p)`` and
``snntorch.surrogate.atan(alpha=p)`` are exactly our ``sigmoid`` and ``atan``; snnTorch's
``fast_sigmoid(slope=k)`` is ``1/(1 + k|x|)^2``, i.e. ``2/k`` times our unit-area form, so the
tests pass our other families to snnTorch through ``snntorch.surrogate.custom_surrogate``;
``snntorch.surrogate.straight_through_estimator()`` is our ``ste`` with the default ``p``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# the unit-area families
SURROGATES = {"sigmoid": 0, "fast_sigmoid": 1, "boxcar": 2, "triangular": 3, "exponential": 4, "atan": 5}
# estimators that are not unit-area surrogates: the straight-through estimator
ESTIMATORS = {"ste": 6}
SURROGATE_KINDS = {**SURROGATES, **ESTIMATORS}
# default parameter per family for v_th = 1 (steepness for sigmoid/fast_sigmoid/atan, width else;
# ste: the window's half width, inf = no window, as snnTorch's)
DEFAULT_PARAM = {"sigmoid": 10.0, "fast_sigmoid": 10.0, "boxcar": 0.5, "triangular": 1.0,
                 "exponential": 0.2, "atan": 2.0, "ste": math.inf}


def surrogate_id(name: str, param: float | None = None) -> tuple[int, float]:
    """``(kind id, parameter)`` for a family name; refuses unknown names and ``param <= 0``
    (and ``param = inf`` except for ``ste``, where it means no window)."""
    if name not in SURROGATE_KINDS:
        raise ValueError(f"surrogate must be one of {', '.join(SURROGATE_KINDS)}, got {name!r}")
    try:
        p = DEFAULT_PARAM[name] if param is None else float(param)
    except (TypeError, ValueError):
        raise ValueError(f"surrogate parameter for {name!r} must be a number > 0, got {param!r}") from None
    if name == "ste":
        if not (p > 0):  # also refuses NaN
            raise ValueError(f"surrogate parameter for 'ste' (window half width) must be > 0 or inf, got {param!r}")
    elif not (math.isfinite(p) and p > 0):
        raise ValueError(f"surrogate parameter for {name!r} must be a finite number > 0, got {param!r}")
    return SURROGATE_KINDS[name], p


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
    if kind == 6:
        return 1.0 if ax <= p else 0.0
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
    if kind == 6:
        return np.where(ax <= p, 1.0, 0.0)
    raise ValueError(f"unknown surrogate kind {kind}")


@njit(cache=True, nogil=True)
def surrogate_grad_array(x: np.ndarray, kind: int, p: float, out: np.ndarray) -> None:
    """:func:`surrogate_grad` over a flat array (for tests and calibration)."""
    for i in range(x.shape[0]):
        out[i] = surrogate_grad(x[i], kind, p)
