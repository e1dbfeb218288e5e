"""The sampling rate of a tabular recording: from the file or from the caller, never guessed.

A rate can come from three places: a scalar ``rate_hz`` or ``bin_s`` in the file (npz key,
MATLAB variable), a time column (its median step), or the caller's ``rate_hz`` / ``bin_s``.
When both the file and the caller give one they must agree (to a relative 1e-6 for a stated
scalar, 1e-3 for a median time step, which carries the clock's jitter); a contradiction is a
ValueError naming both. No rate anywhere is a ValueError saying how to give one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

HOW_TO_GIVE = ("give it: --rate-hz R or --bin-s S (rtsnn replay / rtsnn recording info), options rate_hz / "
               "bin_s (xdf_file source), open_recording(..., rate_hz=R or bin_s=S), or a rate_hz / bin_s "
               "scalar in the file")


@dataclass(frozen=True)
class Rate:
    """A resolved rate: ``hz`` and where it came from (``source``, for messages and describe)."""

    hz: float
    source: str

    @property
    def period_s(self) -> float:
        return 1.0 / self.hz


def _positive(value: float, what: str, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {what} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{where}: {what} must be a positive finite number, got {value!r}")
    return v


def _rate_pair(where: str, rate_hz: float | None, bin_s: float | None, whose: str) -> Rate | None:
    """A rate from ``rate_hz`` and/or ``bin_s`` (both given: they must agree); ``whose`` is ""
    for the caller's values, "the file's " for the file's own."""
    if rate_hz is None and bin_s is None:
        return None
    hz = None if rate_hz is None else _positive(rate_hz, f"{whose}rate_hz", where)
    b = None if bin_s is None else _positive(bin_s, f"{whose}bin_s", where)
    if hz is not None and b is not None and not math.isclose(hz * b, 1.0, rel_tol=1e-9):
        hint = "" if whose else "; give one of them"
        raise ValueError(f"{where}: {whose}rate_hz {hz:g} and bin_s {b:g} disagree (1/bin_s = {1 / b:g} Hz){hint}")
    given = "" if whose else " given"
    if hz is None:
        return Rate(1.0 / b, f"{whose}bin_s {b:g}{given}")
    return Rate(hz, f"{whose}rate_hz {hz:g}{given}")


def caller_rate(where: str, rate_hz: float | None, bin_s: float | None) -> Rate | None:
    """The caller's rate from ``rate_hz`` and/or ``bin_s`` (both given: they must agree)."""
    return _rate_pair(where, rate_hz, bin_s, "")


def scalar_rate(where: str, scalars: dict[str, float]) -> Rate | None:
    """The file's own rate from its ``rate_hz`` / ``bin_s`` scalars (both present: they must agree)."""
    return _rate_pair(where, scalars.get("rate_hz"), scalars.get("bin_s"), "the file's ")


def times_rate(times_s: np.ndarray, column: str) -> Rate | None:
    """Nominal rate of a time column: 1 / median step, snapped to a whole number of Hz within 1e-6;
    None for fewer than 2 rows or no positive step."""
    if len(times_s) < 2:
        return None
    steps = np.diff(times_s)
    steps = steps[steps > 0]
    if not len(steps):
        return None
    hz = 1.0 / float(np.median(steps))
    if abs(hz - round(hz)) <= 1e-6 * hz:
        hz = float(round(hz))
    return Rate(hz, f"time column {column!r} (median step {1 / hz:g} s)")


def agree(where: str, file_rate: Rate | None, given: Rate | None, rel_tol: float = 1e-6) -> Rate:
    """The rate to use: the file's, checked against the caller's; the caller's when the file has none."""
    if file_rate is None and given is None:
        raise ValueError(f"{where}: no sampling rate: the file states none (no rate_hz / bin_s scalar, no time "
                         f"column); {HOW_TO_GIVE}")
    if file_rate is None:
        return given  # type: ignore[return-value]
    if given is not None and not math.isclose(file_rate.hz, given.hz, rel_tol=rel_tol):
        raise ValueError(f"{where}: {given.source} ({given.hz:g} Hz) contradicts {file_rate.source} "
                         f"({file_rate.hz:g} Hz); drop the option or fix the file")
    return file_rate
