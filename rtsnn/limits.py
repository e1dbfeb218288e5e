"""Upper bounds on what a config may ask for, each with the environment variable that raises it.

They keep a typo (``n_rec: 10000000``) from becoming a MemoryError traceback or a minute in
an eigenvalue solver, and a tick (``dt_s: 1e-6``) from being shorter than any machine can keep.
The messages name the limit, the value and how to raise it.
"""

from __future__ import annotations

import os


def _env_number(name: str, default: float, kind: type = int) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(float(raw)) if kind is int else float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} must be a number") from None
    if not value > 0:
        raise ValueError(f"environment variable {name}={raw!r} must be > 0")
    return value


MAX_NEURONS = int(_env_number("RTSNN_MAX_NEURONS", 4096))  # per layer / random reservoir
MAX_OUTPUTS = int(_env_number("RTSNN_MAX_OUTPUTS", 1024))
MAX_CHANNELS = int(_env_number("RTSNN_MAX_CHANNELS", 4096))  # input channels of a source / encoder
MIN_DT_S = float(_env_number("RTSNN_MIN_DT_S", 1e-4, float))  # the shortest session tick


def above(what: str, value: float, limit: float, env: str, unit: str = "") -> str:
    """The message for ``value`` over ``limit``."""
    def fmt(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    return (f"{what} {fmt(value)}{unit} is above the limit {fmt(limit)}{unit} (set the environment variable "
            f"{env} to raise it)")
