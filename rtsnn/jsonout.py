"""Strict JSON for everything rtsnn prints or writes: NaN and infinities become ``null``.

Python's ``json`` writes ``NaN`` / ``Infinity`` by default, which other JSON readers refuse;
every command's ``--json`` line and every file rtsnn writes goes through :func:`dumps_strict`
(or :func:`json_safe` then ``json.dumps(..., allow_nan=False)``). Standard library and numpy
only, so any layer may use it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def json_safe(obj):
    """``obj`` with every non-finite float (NaN, inf) replaced by None, recursively through
    dicts, lists and tuples, so ``json.dumps`` writes strict JSON (``null``, never ``NaN``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.floating):
        return json_safe(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def dumps_strict(obj: Any, **kw: Any) -> str:
    """``json.dumps`` of :func:`json_safe` ``(obj)`` that refuses NaN / infinities."""
    return json.dumps(json_safe(obj), allow_nan=False, **kw)
