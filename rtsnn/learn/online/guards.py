"""Guards for online learning: rollback on divergence, pause/resume/rate control, checkpoints.

:class:`LearningGuard` keeps a copy of the last weights that passed the check (finite and
``|w| <= max_abs_weight``). When a proposed update fails, the guard restores that copy,
pauses learning and counts the event with its reason; learning resumes only by
:meth:`LearningGuard.resume` (an operator decision, e.g. after lowering the rate).

:class:`CheckpointWriter` writes the adapted model (a Model or a GraphModel) with
:func:`rtsnn.snn.model_file.save_model` (temp file + ``os.replace``, so a crash never leaves a
half-written file) every ``every_s`` seconds and once more on :meth:`CheckpointWriter.close`.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rtsnn.snn.graph import GraphModel
from rtsnn.snn.model_file import save_model
from rtsnn.snn.params import Model


class LearningGuard:
    """Snapshot / check / rollback over a dict of named weight arrays (modified in place).

    An array fails the check when it holds NaN/inf, when ``max |w| > max_abs_weight``, or (with
    ``max_growth``) when its RMS exceeds ``max_growth * max(RMS of the last good copy,
    growth_floor)``: a sudden blow-up, e.g. a learning rate of 1e300 whose steps the optimiser's
    clip to ``[w_min, w_max]`` keeps below ``max_abs_weight``."""

    def __init__(self, arrays: dict[str, np.ndarray], max_abs_weight: float = 1e3, max_growth: float | None = None,
                 growth_floor: float = 1.0):
        if not (isinstance(max_abs_weight, (int, float)) and math.isfinite(max_abs_weight) and max_abs_weight > 0):
            raise ValueError(f"max_abs_weight must be a finite number > 0, got {max_abs_weight!r}")
        if max_growth is not None and not (isinstance(max_growth, (int, float)) and math.isfinite(max_growth)
                                           and max_growth > 1):
            raise ValueError(f"max_growth must be None or a finite number > 1, got {max_growth!r}")
        self.arrays = arrays
        self.max_abs_weight = float(max_abs_weight)
        self.max_growth = None if max_growth is None else float(max_growth)
        self.growth_floor = float(growth_floor)
        self.good = {k: v.copy() for k, v in arrays.items()}
        self.paused = False
        self.rollbacks = 0
        self.pauses = 0
        self.last_reason: str | None = None
        self._lock = threading.Lock()

    def check(self) -> str | None:
        """None when every array is finite and bounded; else a reason naming the array."""
        for name, arr in self.arrays.items():
            finite = np.isfinite(arr)
            if not finite.all():
                return f"{name} has {int(arr.size - np.count_nonzero(finite))} NaN/inf entries"
            big = float(np.max(np.abs(arr))) if arr.size else 0.0
            if big > self.max_abs_weight:
                return f"{name} exploded: max |w| = {big:.3g} > max_abs_weight {self.max_abs_weight:.3g}"
            if self.max_growth is not None and arr.size:
                rms = float(np.sqrt(np.mean(np.square(arr, dtype=np.float64))))
                before = float(np.sqrt(np.mean(np.square(self.good[name], dtype=np.float64))))
                if rms > self.max_growth * max(before, self.growth_floor):
                    return (f"{name} grew {rms / max(before, 1e-30):.3g}x within one commit window (rms {before:.3g} -> "
                            f"{rms:.3g}) > max_growth {self.max_growth:g}")
        return None

    def commit_or_rollback(self) -> bool:
        """Check the arrays: keep them as the new good copy (True), or restore the last good
        copy, pause and count (False)."""
        reason = self.check()
        with self._lock:
            if reason is None:
                for k, v in self.arrays.items():
                    self.good[k][...] = v
                return True
            for k, v in self.arrays.items():
                v[...] = self.good[k]
            self.rollbacks += 1
            self.last_reason = reason
            if not self.paused:
                self.paused = True
                self.pauses += 1
            return False

    def pause(self, reason: str = "operator") -> None:
        with self._lock:
            if not self.paused:
                self.pauses += 1
            self.paused = True
            self.last_reason = reason

    def resume(self) -> None:
        with self._lock:
            self.paused = False

    def stats(self) -> dict[str, Any]:
        return {"paused": self.paused, "rollbacks": self.rollbacks, "pauses": self.pauses,
                "last_guard_reason": self.last_reason}


class CheckpointWriter:
    """Atomic checkpoints of a model on a schedule (``maybe_write``) and at ``close``.

    ``snapshot`` returns the Model or GraphModel to write (called on the writer's thread; it
    must return a consistent copy). Failures are counted and reported, never raised into the tick.
    """

    def __init__(self, path: str | Path, snapshot: Callable[[], Model | GraphModel], every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        if not (isinstance(every_s, (int, float)) and math.isfinite(every_s) and every_s > 0):
            raise ValueError(f"checkpoint_every_s must be a finite number > 0, got {every_s!r}")
        self.path = Path(path)
        if not self.path.parent.exists():
            raise ValueError(f"checkpoint_path {str(self.path)!r}: folder {str(self.path.parent)!r} does not exist")
        self.snapshot = snapshot
        self.every_s = float(every_s)
        self.clock = clock
        self.next_t = clock() + self.every_s
        self.written = 0
        self.failed = 0
        self.last_error: str | None = None

    def write(self) -> bool:
        try:
            save_model(self.path, self.snapshot())
        except (OSError, ValueError) as err:
            self.failed += 1
            self.last_error = f"{type(err).__name__}: {err}"
            return False
        self.written += 1
        return True

    def due(self) -> bool:
        """True when the schedule asks for a checkpoint."""
        return self.clock() >= self.next_t

    def maybe_write(self) -> bool:
        """Write when the schedule is due; returns True when a checkpoint was written."""
        now = self.clock()
        if now < self.next_t:
            return False
        self.next_t = now + self.every_s
        return self.write()

    def close(self) -> bool:
        return self.write()

    def stats(self) -> dict[str, Any]:
        return {"checkpoints_written": self.written, "checkpoints_failed": self.failed,
                "last_checkpoint_error": self.last_error}
