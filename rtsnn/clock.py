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

import threading
import time
import weakref

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


# ------------------------------------------------------------------ the compute thread's slack
_OPEN_NS = 1 << 62  # "no wake-up ahead": no real-time loop claims the slack, every wait returns at once


class TickSlack:
    """When the real-time compute thread will want the GIL next, for the other threads of its
    process, so that their Python work runs while it sleeps instead of across its wake-up.

    Every Python thread of a process shares one GIL. A thread that holds it when the compute
    thread wakes delays that tick until it lets go: until its next blocking call, or for up to
    the switch interval. Traced on the dev VM (2 vCPUs, the demo), such hand-overs put the
    tick's p99 lateness at ~100 us and its p99.9 work at ~700 us, and cost deadlines that a
    bare timer in the same process kept (docs/benchmarks.md; ``scripts/trace_demo.py``).

    The contract, cooperative and process-wide (:data:`SLACK`):

    * the compute thread :meth:`claim` s it when its deadlines start and, before each wait,
      :meth:`publish` es its next wake-up ``w_k = t0 + k dt - spin`` (one attribute store);
      the tick then holds the GIL from ``w_k`` for about ``busy_ns`` (the spin, the tick's work
      and a margin), and the window ``[w_k + busy_ns, w_{k+1} - margin_ns)`` is free;
    * another thread calls :meth:`wait` ``(cost_ns)`` before a piece of Python work of about
      that cost: it returns at once when ``now + min(cost_ns, window / 2) + margin_ns <= w_k``,
      else it sleeps until the current tick is over and checks again (at most ``max_wait_ns``
      in all: background work is delayed, never starved);
    * a thread that sleeps between passes asks :meth:`aligned` ``(seconds)`` for its timeout:
      at least ``seconds``, ending at the start of a window, so that its wake-up itself (the GIL
      taken to run the first bytecodes) does not land on a tick;
    * when the loop is behind (its published wake-up more than ``dt`` in the past: a tick
      overran), waiting cannot find a window: the work goes ahead at once (``gave_up``);
    * a thread that follows these rules is registered with :meth:`follow` by whoever starts it,
      so that a session can raise exactly those threads' priority (``followers()``).

    With no claim (no real-time loop in the process, ``pace: max``, tests) every call returns
    at once and ``aligned`` returns its argument. Nothing here blocks the compute thread.
    """

    __slots__ = ("next_wake_ns", "dt_ns", "busy_ns", "margin_ns", "max_wait_ns", "owner", "waits", "waited_ns",
                 "gave_up", "_followers")

    def __init__(self) -> None:
        self.next_wake_ns = _OPEN_NS
        self.dt_ns = 0
        self.busy_ns = 0
        self.margin_ns = 50_000
        self.max_wait_ns = 0
        self.owner: object | None = None
        self.waits = 0  # calls of wait() that had to sleep
        self.waited_ns = 0  # their time asleep, in all
        self.gave_up = 0  # calls that found no window (the loop behind, or none within max_wait_ns)
        self._followers: weakref.WeakSet[threading.Thread] = weakref.WeakSet()

    # -- compute thread
    def claim(self, owner: object, dt_ns: int, busy_ns: int) -> bool:
        """Take the slack for a loop ticking every ``dt_ns`` that holds the GIL ``busy_ns`` from
        each wake-up. False (nothing changed) when another loop holds it: the first real-time
        loop of a process is the one its background threads keep clear of."""
        if self.owner is not None and self.owner is not owner:
            return False
        if not (dt_ns > 0 and 0 <= busy_ns):
            raise ValueError(f"TickSlack.claim: dt_ns must be > 0 and busy_ns >= 0, got {dt_ns}, {busy_ns}")
        self.owner = owner
        self.dt_ns = int(dt_ns)
        self.busy_ns = int(min(busy_ns, dt_ns))
        self.max_wait_ns = 20 * self.dt_ns
        self.waits = self.waited_ns = self.gave_up = 0
        return True

    def follow(self, thread: threading.Thread) -> threading.Thread:
        """Register ``thread`` (started or not) as one that keeps to this slack; returns it."""
        self._followers.add(thread)
        return thread

    def unfollow(self, thread: threading.Thread) -> None:
        """``thread`` no longer keeps to the slack (e.g. a caller whose ``Session.run`` returned)."""
        self._followers.discard(thread)

    def followers(self) -> list[threading.Thread]:
        """The registered threads that are alive now."""
        return [t for t in list(self._followers) if t.is_alive()]

    def publish(self, next_wake_ns: int) -> None:
        """The compute thread's next wake-up (``perf_counter_ns``), before it sleeps for it. (The
        real-time loop makes this same store inline, ``next_wake_ns = ...``, to save the call.)"""
        self.next_wake_ns = next_wake_ns

    def release(self, owner: object) -> None:
        """The loop ``owner`` stopped: every wait returns at once again."""
        if self.owner is owner:
            self.owner = None
            self.next_wake_ns = _OPEN_NS

    def stats(self) -> dict[str, int]:
        """Since the last claim: ``busy_us`` (what the ticks were given), ``waits`` (other
        threads' calls that slept), ``waited_us`` (their sleep in all), ``gave_up`` (calls that
        found no window in time and went ahead)."""
        return {"busy_us": self.busy_ns // 1000, "waits": self.waits, "waited_us": self.waited_ns // 1000,
                "gave_up": self.gave_up}

    # -- other threads
    def window_ns(self) -> int:
        """The free time between one tick's end and the next wake-up (0: none)."""
        return max(0, self.dt_ns - self.busy_ns - self.margin_ns)

    def wait(self, cost_ns: int = 300_000) -> int:
        """Block until a piece of work of about ``cost_ns`` can run before the compute thread
        next wakes (see the class docstring); returns the ns slept (0: at once)."""
        w = self.next_wake_ns
        now = _perf()
        if w == _OPEN_NS:
            return 0
        cost = min(cost_ns, self.window_ns() // 2)  # longer work: started in a window's first half
        if now + cost + self.margin_ns <= w:
            return 0
        if now - w > self.dt_ns:  # the loop is behind (a tick overran): no window to wait for
            self.gave_up += 1
            return 0
        start = now
        give_up = start + self.max_wait_ns
        poll_ns = max(self.dt_ns // 4, 50_000)
        while True:
            # the compute thread wakes (or runs) before this would end: sleep past its tick
            _sleep(max(w + self.busy_ns - now, poll_ns) * 1e-9)
            w = self.next_wake_ns
            now = _perf()
            if w == _OPEN_NS or now + cost + self.margin_ns <= w:
                break
            if now >= give_up or now - w > self.dt_ns:  # no window in time, or the loop fell behind
                self.gave_up += 1
                break
        self.waits += 1
        self.waited_ns += now - start
        return now - start

    def aligned(self, seconds: float) -> float:
        """A sleep of at least ``seconds`` that ends at the start of a window (``seconds`` itself
        when no loop claims the slack)."""
        w = self.next_wake_ns
        if w == _OPEN_NS or seconds < 0:
            return seconds
        now = _perf()
        target = now + int(seconds * 1e9)
        first = w + self.busy_ns  # the start of the window after the tick that wakes at w
        if target > first:
            first += -(-(target - first) // self.dt_ns) * self.dt_ns  # the next window start after target
        return (first - now) * 1e-9


SLACK = TickSlack()
"""The process's one :class:`TickSlack` (one GIL per process, so one schedule to keep clear of)."""
