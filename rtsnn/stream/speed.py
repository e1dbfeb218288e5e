"""Playback speed: a positive factor or the word ``max`` (as fast as possible).

Shared by ``rtsnn replay --speed``, ``rtsnn events publish --speed`` and the ``dvs_file``
source's ``speed`` option, so that all three accept and reject the same values.
"""

from __future__ import annotations

from rtsnn.errors import RtsnnValueError

import argparse
import math
from typing import Any


class SpeedError(RtsnnValueError, argparse.ArgumentTypeError):
    """A bad speed. A ``ValueError`` (the CLI's exit 2, a config error) that argparse also
    reports with this message when :func:`parse_speed` is used as an argument ``type``."""


def parse_speed(value: Any, *, what: str = "speed") -> float:
    """``'max'`` (any case) -> ``math.inf``; otherwise a finite number > 0, as a float.

    Zero, negatives, NaN, infinities (``'inf'``, ``1e999``; write ``'max'``) and anything that
    is not a number raise :class:`SpeedError` naming ``what`` (e.g. ``--speed``).
    """
    if isinstance(value, str) and value.lower() == "max":
        return math.inf
    msg = f"{what} must be a positive number or 'max', got {value!r}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SpeedError(msg) from None
    if math.isinf(v):
        raise SpeedError(f"{msg} (write 'max' for as fast as possible)")
    if not v > 0:
        raise SpeedError(msg)
    return v

