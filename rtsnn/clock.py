"""Tick pacing against absolute deadlines.

Tick ``k`` starts at ``t0_ns + k * dt_ns`` (``perf_counter_ns``). Waiting sleeps until
``spin_ns`` before the start, then busy-waits: ``time.sleep`` alone is late by up to ~1.4 ms
at p99.9 on a 2-vCPU machine, sleep-then-spin by ~40 us at p99 (REFERENCES section 9).
Deadlines are absolute, so lateness never accumulates into drift.

Phase alignment: ``start(phase_ns=p)`` puts every tick on ``k * dt_ns + p`` of the
monotonic clock itself (``perf_counter_ns`` is ``CLOCK_MONOTONIC``, shared by every process
on the machine). Two processes started this way tick in a fixed phase relation: a source
pushing at phase 0 and a session ticking at phase ``p`` see each sample ``p`` after its
push, not after a random wait of 0..dt that differs from run to run.
"""

from __future__ import annotations

import time

_perf = time.perf_counter_ns
_sleep = time.sleep


class DeadlineClock:
    def __init__(self, dt_s: float, spin_s: float = 200e-6):
        if not dt_s > 0:
            raise ValueError(f"dt_s must be > 0, got {dt_s!r}")
        self.dt_ns = int(round(dt_s * 1e9))
        self.spin_ns = int(spin_s * 1e9)
        self.t0_ns = 0
        self.k = 0

    def start(self, delay_s: float = 0.0, phase_ns: int | None = None) -> None:
        """First tick ``delay_s`` from now; with ``phase_ns``, the first grid point
        ``m * dt_ns + phase_ns`` at or after that (``0 <= phase_ns < dt_ns``)."""
        t0 = _perf() + int(delay_s * 1e9)
        if phase_ns is not None:
            phase_ns = int(phase_ns)
            if not 0 <= phase_ns < self.dt_ns:
                raise ValueError(f"phase_ns must lie in [0, dt_ns = {self.dt_ns}), got {phase_ns}")
            t0 += (phase_ns - t0) % self.dt_ns
        self.t0_ns = t0
        self.k = 0

    def tick_start_ns(self, k: int | None = None) -> int:
        return self.t0_ns + (self.k if k is None else k) * self.dt_ns

    def wait(self) -> int:
        """Block until tick ``k`` may start; return its lateness in ns (>= 0)."""
        target = self.t0_ns + self.k * self.dt_ns
        now = _perf()
        remaining = target - now - self.spin_ns
        if remaining > 0:
            _sleep(remaining * 1e-9)
        now = _perf()
        while now < target:
            now = _perf()
        return now - target

    def advance(self) -> None:
        self.k += 1

    def skip_to_now(self) -> int:
        """Drop the ticks whose start has already passed (the loop fell behind); return how
        many were dropped. The next tick then starts on the current schedule slot."""
        behind = (_perf() - self.t0_ns) // self.dt_ns - self.k
        if behind > 0:
            self.k += int(behind)
            return int(behind)
        return 0
