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


def caller_rate(where: str, rate_hz: float | None, bin_s: float | None) -> Rate | None:
    """The caller's rate from ``rate_hz`` and/or ``bin_s`` (both given: they must agree)."""
    if rate_hz is None and bin_s is None:
        return None
    if rate_hz is not None:
        hz = _positive(rate_hz, "rate_hz", where)
    if bin_s is not None:
        b = _positive(bin_s, "bin_s", where)
        if rate_hz is not None and not math.isclose(hz * b, 1.0, rel_tol=1e-9):
            raise ValueError(f"{where}: rate_hz {rate_hz:g} and bin_s {bin_s:g} disagree (1/bin_s = {1 / b:g} Hz); "
                             f"give one of them")
        if rate_hz is None:
            return Rate(1.0 / b, f"bin_s {bin_s:g} given")
    return Rate(hz, f"rate_hz {rate_hz:g} given")


def scalar_rate(where: str, scalars: dict[str, float]) -> Rate | None:
    """The file's own rate from its ``rate_hz`` / ``bin_s`` scalars (both present: they must agree)."""
    hz = scalars.get("rate_hz")
    b = scalars.get("bin_s")
    if hz is None and b is None:
        return None
    if hz is not None:
        hz = _positive(hz, "the file's rate_hz", where)
    if b is not None:
        b = _positive(b, "the file's bin_s", where)
        if hz is not None and not math.isclose(hz * b, 1.0, rel_tol=1e-9):
            raise ValueError(f"{where}: the file's rate_hz {hz:g} and bin_s {b:g} disagree")
        if hz is None:
            return Rate(1.0 / b, f"the file's bin_s {b:g}")
    return Rate(hz, f"the file's rate_hz {hz:g}")


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
