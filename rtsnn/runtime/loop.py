"""The compute thread: one tick body and the two drivers that pace it.

:func:`make_tick` binds, once, everything a tick touches (the stages' bound methods, the
preallocated buffers, the histograms) and returns ``tick(k, t_sched_ns, lateness_ns,
measuring) -> n``, the tick body, in this order::

    ingest   source.pull (+ teacher.pull)       every sample that arrived since the last tick
    encode   encoder.encode                     samples -> input spike counts
    step     backend.step                       the SNN advances one dt
    readout  backend.readout                    output vector
    learn    learner.observe (+ apply)          never allowed to delay inference
    emit     sink.emit for every sink           non-blocking hand-off

each stage timed with ``perf_counter_ns`` into fixed-size histograms once ``measuring``.
What differs between the paces is not a branch in the body but a :class:`Pacing`, chosen once
by the driver: how samples and output rows go into their rings (drop and count, or wait for
the I/O thread), how the learner's ``apply`` is scheduled, which clock stamps the emit, and
what a timed tick records beyond the stages (e2e latency and deadline misses, live only).

Drivers:

* :func:`run_realtime` (``session.pace: realtime``): absolute deadlines
  (:class:`rtsnn.clock.DeadlineClock`), a warm-up whose timings are forgotten (and whose median
  tick cost is checked against ``session.budget_us``, :func:`check_warmup_cost`), the
  learner's ``apply`` only when the tick has half its budget left (else deferred, counted),
  a loop more than ``max_lag_ticks`` behind skipping the missed slots (counted), e2e latency
  ``local_clock()`` at the emit minus each consumed sample's timestamp, and ``duration_s`` in
  wall time (tick slots run or skipped).
* :func:`run_max_pace` (``session.pace: max``): no deadlines and no warm-up, until the source
  reports ``finished`` (:class:`rtsnn.protocols.Finite`) or ``duration_s`` ticks ran; the
  learner's ``prepare`` and ``apply`` inline, rings waited for instead of dropping, each tick
  stamped on the recording's clock (its newest input, else one dt after the previous tick).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from numba import njit

from rtsnn.clock import SLACK, DeadlineClock
from rtsnn.protocols import Calibrates, Finite, ReadyAfterPrepare, ReportsGaps
from rtsnn.runtime.metrics import record_ns
from rtsnn.stream.ring import wait_for_room

log = logging.getLogger("rtsnn.session")

STAGES = ("ingest", "encode", "step", "readout", "learn", "emit")
SERIES = STAGES + ("compute", "tick", "e2e", "lateness", "input_age")

@njit(cache=True, nogil=True)
def _record_e2e(hist, maxima, row_e2e, row_age, t_emit_s, in_tick_ns, timestamps, n):
    """Per input sample ``i`` of this tick: e2e = ``t_emit_s - timestamps[i]`` (its timestamp to
    the emit of the output it fed) and input age = e2e - ``in_tick_ns`` (its timestamp to the
    start of the tick that took it: the transport delay plus the wait for that tick). Negative
    values (clock jitter between processes) are recorded as 0."""
    for i in range(n):
        d = (t_emit_s - timestamps[i]) * 1e9
        record_ns(hist, maxima, row_e2e, d if d > 0.0 else 0.0)
        a = d - in_tick_ns
        record_ns(hist, maxima, row_age, a if a > 0.0 else 0.0)


@njit(cache=True, nogil=True)
def _accumulate_r2(acc, y, target):
    """acc rows: n, sum t, sum t^2, sum (y - t)^2 — per output dimension."""
    for k in range(y.shape[0]):
        t = np.float64(target[k])
        e = np.float64(y[k]) - t
        acc[0, k] += 1.0
        acc[1, k] += t
        acc[2, k] += t * t
        acc[3, k] += e * e


def r2_from_acc(acc: np.ndarray) -> float | None:
    """Mean over output dimensions of 1 - SS_res / SS_tot."""
    n = acc[0]
    if n.size == 0 or n[0] < 2:
        return None
    ss_tot = acc[2] - acc[1] ** 2 / n
    r2 = 1.0 - acc[3] / np.where(ss_tot > 0, ss_tot, np.nan)
    return float(np.nanmean(r2)) if np.any(np.isfinite(r2)) else None


WARM_KEEP = 1024  # warm-up ticks whose cost is kept (the latest) for the budget check
CAUGHT_UP_S = 0.02  # warm-up: the newest pulled sample is at most this old -> backlog drained


def apply_realtime(policy: str, priority: int) -> str:
    """Raise the calling thread's scheduling priority; returns what was applied.

    ``fifo``: SCHED_FIFO at ``priority`` (a sleeping tick thread then preempts ordinary work on
    its core when its deadline comes; Linux still reserves 5 % of each second for other
    threads). ``nice``: nice -10 for this thread only. ``auto``: fifo, else nice, else nothing
    (without the privilege, e.g. CAP_SYS_NICE or root, the session runs unchanged). A policy
    asked for explicitly that cannot be applied raises ``PermissionError``.
    """
    if policy == "none":
        return "none"
    if policy in ("auto", "fifo"):
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: this thread
            return f"fifo:{priority}"
        except (PermissionError, OSError, AttributeError) as err:
            if policy == "fifo":
                raise PermissionError(f"session.realtime: fifo: SCHED_FIFO refused ({err}); run with "
                                      f"CAP_SYS_NICE or choose realtime: nice / auto / none") from None
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        return "nice:-10"
    except (PermissionError, OSError, AttributeError) as err:
        if policy == "nice":
            raise PermissionError(f"session.realtime: nice: raising the priority was refused ({err}); "
                                  f"choose realtime: auto / none") from None
    return "none (not permitted)"


def raise_background(priority: int, threads: list[threading.Thread]) -> list[tuple[int, int, int]]:
    """SCHED_FIFO at ``priority`` for ``threads`` (the session's threads that keep to
    :data:`rtsnn.clock.SLACK`: ``SLACK.followers()``), with SCHED_RESET_ON_FORK so that threads
    they start (a learner's prepare worker, liblsl's own threads for a re-attached inlet) begin
    at ordinary priority. Not the caller; not a thread already at SCHED_FIFO at that priority or
    above. Returns ``(native_id, old policy, old priority)`` of each thread changed, for
    :func:`restore_background`; a thread that refuses (no privilege) or is gone is left out."""
    me = threading.get_native_id()
    reset_flag = getattr(os, "SCHED_RESET_ON_FORK", 0)
    changed: list[tuple[int, int, int]] = []
    try:
        for t in threads:
            tid = t.native_id
            if not tid or tid == me:
                continue
            try:
                old, old_p = os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority
                if old & ~reset_flag == os.SCHED_FIFO and old_p >= priority:
                    continue
                os.sched_setscheduler(tid, os.SCHED_FIFO | reset_flag, os.sched_param(priority))
            except (OSError, AttributeError):
                continue
            changed.append((tid, old, old_p))
    except BaseException:  # nothing left raised behind an unexpected error
        restore_background(changed)
        raise
    return changed


def restore_background(changed: list[tuple[int, int, int]]) -> None:
    """Undo :func:`raise_background` for the threads still alive (a finished thread's id may
    belong to another thread by now: only live Python threads with that id are touched)."""
    live = {t.native_id for t in threading.enumerate()}
    reset_flag = getattr(os, "SCHED_RESET_ON_FORK", 0)
    for tid, policy, priority in changed:
        if tid in live:
            try:
                os.sched_setscheduler(tid, policy, os.sched_param(priority))
            except PermissionError:
                # without CAP_SYS_NICE (an RLIMIT_RTPRIO user) the kernel will not clear
                # SCHED_RESET_ON_FORK: back to the old policy with the flag kept
                try:
                    os.sched_setscheduler(tid, policy | reset_flag, os.sched_param(priority))
                except (OSError, AttributeError):
                    pass
            except (OSError, AttributeError):
                pass


@dataclass
class Pacing:
    """What a driver plugs into the tick body (see the module docstring); None: not at all.

    ``pull(samples, timestamps) -> n``: the source's pull (the max-pace clock wraps it to see
    what the tick consumed). ``now() -> float``: the emit's time stamp. ``push_inputs`` /
    ``push_teacher(values, stamps, n)``: into the recording's rings. ``push_row(row)``: into
    the output ring. ``learn_apply(t4_ns, t_sched_ns)``: after ``observe``, apply (or defer)
    the learner's update, called only while ``learn_gate.state`` is ``"ready"`` (one attribute
    read per tick, not a call). ``timed(n, t_emit, t0_ns, t6_ns, t_sched_ns)``: extra records
    of a timed tick."""

    pull: Callable[[np.ndarray, np.ndarray], int]
    now: Callable[[], float]
    push_inputs: Callable[[np.ndarray, np.ndarray, int], Any] | None
    push_teacher: Callable[[np.ndarray, np.ndarray, int], Any] | None
    push_row: Callable[[np.ndarray], Any] | None
    learn_apply: Callable[[int, int], None] | None
    learn_gate: Any
    timed: Callable[[int, float, int, int, int], None] | None


class PrepareHandoff:
    """The learner's heavy step between the threads, live pace: ``state`` goes ``"idle"`` ->
    ``"running"`` (the I/O thread runs ``prepare``) -> ``"ready"`` (the compute thread applies
    it at the first tick with budget left) -> ``"idle"``."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = "idle"


class _AlwaysReady:
    """Pace max: no hand-off, the learner is asked every tick (:func:`max_pacing`)."""

    __slots__ = ()
    state = "ready"


def make_tick(session: Any, pacing: Pacing, warm_ns: np.ndarray) -> Callable[[int, int, int, bool], int]:
    """The tick body of ``session`` (a :class:`rtsnn.runtime.session.Session` whose stages are
    open), paced by ``pacing``; ``warm_ns`` receives the work (ns, ingest to emit) of warm-up
    ticks, tick ``k`` at ``k % WARM_KEEP``. The optional parts it reads per tick (``in_gap``,
    ``calibrated``) are looked up here, once."""
    teacher, encoder, backend, learner = session.teacher, session.encoder, session.backend, session.learner
    sinks = tuple(session.sinks)
    source_pull, now = pacing.pull, pacing.now
    teacher_pull = teacher.pull if teacher is not None else None
    encode, step, readout = encoder.encode, backend.step, backend.readout
    observe = learner.observe if learner is not None else None
    observe_always = session._observe_always
    learn_apply, learn_gate = pacing.learn_apply, pacing.learn_gate
    push_inputs, push_teacher, push_row, timed = pacing.push_inputs, pacing.push_teacher, pacing.push_row, pacing.timed
    gap_source = session.source if isinstance(session.source, ReportsGaps) else None
    calibrating = learner if learner is not None and isinstance(learner, Calibrates) else None
    samples, timestamps, spikes_in, target = session.samples, session.timestamps, session.spikes_in, session.target
    t_samples = session.t_samples if teacher is not None else None
    t_timestamps = session.t_timestamps if teacher is not None else None
    hist, maxima, idx = session.stats.hist, session.stats.maxima, session.stats.index
    i_ing, i_enc, i_stp, i_rd, i_lrn, i_emt = (idx[n] for n in STAGES)
    i_cmp, i_tick, i_late = idx["compute"], idx["tick"], idx["lateness"]
    c = session.counters
    row, r2_acc = session.out_row, session.r2_acc
    n_out = session.model.n_out
    perf = time.perf_counter_ns
    has_target = False

    def tick(k: int, t_sched: int, lateness: int, measuring: bool) -> int:
        nonlocal has_target
        t0 = perf()
        # ingest
        n = source_pull(samples, timestamps)
        m = 0
        if teacher_pull is not None:
            m = teacher_pull(t_samples, t_timestamps)
            if m > 0:
                target[:] = t_samples[m - 1]
                has_target = True
        if push_inputs is not None:
            push_inputs(samples, timestamps, n)
            if push_teacher is not None and m > 0:
                push_teacher(t_samples, t_timestamps, m)
        t1 = perf()
        encode(samples, n, spikes_in)
        t2 = perf()
        step(spikes_in)
        t3 = perf()
        y = readout()
        t4 = perf()
        learned = False
        if observe is not None:
            if has_target:
                observe(backend, target)
                learned = True
            elif observe_always:
                observe(backend, None)
                learned = True
            if learn_gate.state == "ready":
                learn_apply(t4, t_sched)
        t5 = perf()
        t_source = timestamps[n - 1] if n else 0.0
        for sink in sinks:
            sink.emit(y, t_source)
        t_emit = now()
        t6 = perf()

        if measuring:
            record_ns(hist, maxima, i_ing, t1 - t0)
            record_ns(hist, maxima, i_enc, t2 - t1)
            record_ns(hist, maxima, i_stp, t3 - t2)
            record_ns(hist, maxima, i_rd, t4 - t3)
            if learned:
                record_ns(hist, maxima, i_lrn, t5 - t4)
            record_ns(hist, maxima, i_emt, t6 - t5)
            record_ns(hist, maxima, i_cmp, t4 - t1)
            record_ns(hist, maxima, i_tick, t6 - t0)
            record_ns(hist, maxima, i_late, lateness)
            if n:
                c["samples_in"] += n
            if timed is not None:
                timed(n, t_emit, t0, t6, t_sched)
            if gap_source is not None and gap_source.in_gap:
                c["gap_ticks"] += 1
            if has_target:
                if calibrating is None or calibrating.calibrated:
                    _accumulate_r2(r2_acc, y, target)
                    c["eval_ticks"] += 1
            if push_row is not None:
                row[0] = k
                row[1] = timestamps[n - 1] if n else np.nan
                row[2] = t_emit
                row[3:3 + n_out] = y
                row[3 + n_out:] = target
                push_row(row)
            c["ticks"] += 1
        else:
            warm_ns[k % WARM_KEEP] = t6 - t0
        return n

    return tick


def start_timing(session: Any, warm_ns: np.ndarray, budget_ns: int, dt_ns: int) -> None:
    """Warm-up over: forget its timings and counts, check its median tick cost against the
    budget (``warm_ns``: the kept warm-up costs, empty at pace max), and freeze what exists so
    the collector never scans it."""
    session.stats.reset()
    c = session.counters
    for key in c:
        c[key] = 0
    session.r2_acc[:] = 0.0
    # what the source dropped so far was start-up backlog (stale input queued while the session
    # compiled and caught up): reported apart from drops while live
    session.dropped_in_warmup = int(session.source.stats().get("dropped_samples", 0))
    check_warmup_cost(session, warm_ns, budget_ns, dt_ns)
    gc.collect()
    gc.freeze()


def check_warmup_cost(session: Any, tick_ns: np.ndarray, budget_ns: int, dt_ns: int) -> None:
    """Once, when timing starts: the median work per warm-up tick (ingest to emit) against
    ``session.budget_us`` and the tick; over either, one warning line (logged, and in the
    summary's ``warnings``). Nothing at pace max (no warm-up, no deadlines)."""
    if tick_ns.size == 0:
        return
    median_us = float(np.median(tick_ns)) / 1e3
    s = session.cfg.session
    session.warmup_tick_us = {"median": round(median_us, 1), "n": int(tick_ns.size), "budget_us": s.budget_us,
                              "dt_us": round(dt_ns / 1e3, 3)}
    if median_us * 1e3 <= budget_ns:
        return
    beyond = (f", longer than the tick itself (session.dt_s {s.dt_s:g} s): the loop will fall behind and "
              f"skip ticks" if median_us * 1e3 > dt_ns else "")
    line = (f"session {s.name}: a tick takes {median_us:.0f} us (median of {tick_ns.size} warm-up ticks, "
            f"ingest to emit), over session.budget_us {s.budget_us:g} us{beyond}; use a smaller model, "
            f"a longer dt_s or a larger budget_us")
    session.warnings.append(line)
    log.warning("%s", line)


# ------------------------------------------------------------------ live pacing
def miss_cause(wake_late_ns: int, work_ns: int) -> str:
    """Why a tick that missed its deadline (it ended after ``t_sched + dt``) missed it: the
    counter it goes to. ``wake_late_ns`` = tick start - scheduled start (``t0 - t_sched``),
    ``work_ns`` = its work, ingest to emit (``t6 - t0``); they add up to more than ``dt``.
    ``"misses_late_wake"`` when the late wake-up is the larger share (``wake_late_ns >
    work_ns``: the tick was woken too late for its work to fit), else ``"misses_slow_tick"``
    (the work itself took more than the slack it was given)."""
    return "misses_late_wake" if wake_late_ns > work_ns else "misses_slow_tick"


def live_pacing(session: Any, budget_ns: int) -> Pacing:
    """Real time: rings drop (and count) what does not fit, the emit is stamped with
    ``local_clock()``, a prepared learner step is applied only with half the budget left, and
    a timed tick records e2e latency and deadline misses."""
    from pylsl import local_clock

    rec = session.recording
    hist, maxima, idx = session.stats.hist, session.stats.maxima, session.stats.index
    i_e2e, i_age = idx["e2e"], idx["input_age"]
    timestamps = session.timestamps
    c = session.counters
    dt_ns = int(round(session.dt_s * 1e9))
    learner, backend = session.learner, session.backend
    half_budget_ns = budget_ns // 2
    handoff = session.handoff

    def apply_when_prepared(t4: int, t_sched: int) -> None:
        # the I/O thread ran prepare(); apply only with budget left: learning defers, inference never waits
        if t4 - t_sched < half_budget_ns:
            learner.apply(backend)
            handoff.state = "idle"
            c["learn_applied"] += 1
        else:
            c["learn_deferred"] += 1

    def timed(n: int, t_emit: float, t0: int, t6: int, t_sched: int) -> None:
        if n:
            _record_e2e(hist, maxima, i_e2e, i_age, t_emit, float(t6 - t0), timestamps, n)
        if t6 > t_sched + dt_ns:  # a miss (the only case that pays for a call)
            c["deadline_misses"] += 1
            c[miss_cause(t0 - t_sched, t6 - t0)] += 1

    return Pacing(
        pull=session.source.pull, now=local_clock,
        push_inputs=rec.inputs.push_block if rec is not None else None,
        push_teacher=rec.teacher.push_block if rec is not None and rec.teacher is not None else None,
        push_row=session.out_ring.push if session.cfg.session.record_outputs else None,
        learn_apply=apply_when_prepared if learner is not None else None, learn_gate=handoff,
        timed=timed)


# ------------------------------------------------------------------ bare timer
def bare_timer(dt_s: float, duration_s: float, *, spin_s: float, phase_ns: int | None = None,
               max_lag_ticks: int = 50, realtime: str = "none", rt_priority: int = 10) -> dict[str, Any]:
    """The machine's own deadline floor, measured in this process: ``duration_s`` of the
    real-time driver's pacing with a tick that does nothing, on a thread of its own with the
    compute thread's scheduling policy (``realtime``, ``rt_priority``).

    Same clock as :func:`run_realtime` (:class:`rtsnn.clock.DeadlineClock`: absolute deadlines
    ``t0 + k dt`` on the phase ``phase_ns``, sleep until ``spin_s`` before each, then spin), same
    skip rule (more than ``max_lag_ticks`` behind: the missed slots are skipped and counted) and
    the session's definition of a deadline miss: tick ``k`` is missed when its (empty) body ends
    after ``t0 + (k + 1) dt``, i.e. when the wake-up itself is later than one tick. Returns
    ``{"s", "ticks", "misses", "skipped", "miss_rate", "lateness_p99_us", "realtime"}``
    (``miss_rate`` = misses / ticks)."""
    if not duration_s > 0:
        raise ValueError(f"bare timer: duration_s must be > 0, got {duration_s!r}")
    out: dict[str, Any] = {}

    def body() -> None:
        try:
            applied = apply_realtime(realtime, rt_priority)
        except PermissionError:  # the session itself will say so; the floor is measured without it
            applied = "none (refused)"
        clock = DeadlineClock(dt_s, spin_s=spin_s)
        dt_ns = clock.dt_ns
        n_slots = max(1, int(round(duration_s / dt_s)))
        max_lag_ns = max_lag_ticks * dt_ns
        late = np.zeros(n_slots, np.int64)
        perf = time.perf_counter_ns
        ticks = misses = skipped = 0
        clock.start(delay_s=0.01, phase_ns=phase_ns)
        while clock.k < n_slots:
            late[ticks] = clock.wait()
            t_end = perf()  # the body: nothing
            if t_end > clock.tick_start_ns() + dt_ns:
                misses += 1
            ticks += 1
            clock.advance()
            if (perf() - clock.tick_start_ns()) > max_lag_ns:
                skipped += clock.skip_to_now()
        out.update(s=float(duration_s), ticks=ticks, misses=misses, skipped=skipped,
                   miss_rate=misses / max(ticks, 1),
                   lateness_p99_us=round(float(np.percentile(late[:ticks], 99)) / 1e3, 1),
                   realtime=applied)

    th = threading.Thread(target=body, name="rtsnn-bare-timer", daemon=True)
    th.start()
    th.join()
    if not out:
        raise RuntimeError("bare timer: the timing thread ended without a result")
    return out


def slack_busy_ns(spin_ns: int, dt_ns: int, warm_ns: np.ndarray) -> int:
    """How long the compute thread holds the GIL from each wake-up, for
    :meth:`rtsnn.clock.TickSlack.claim`: the spin plus twice the p90 of the warm-up ticks' work
    (ingest to emit), kept within [50 us, dt / 2]; with no warm-up yet, dt / 4."""
    work = 2.0 * float(np.percentile(warm_ns, 90)) if warm_ns.size else dt_ns / 4
    return int(spin_ns + min(max(work, 50_000.0), dt_ns / 2))


def run_realtime(session: Any) -> None:
    """Drive the tick body against absolute deadlines (see the module docstring)."""
    s = session.cfg.session
    session.realtime_applied = apply_realtime(s.realtime, s.rt_priority)
    clock = DeadlineClock(session.dt_s, spin_s=s.spin_us * 1e-6)
    n_total = int(round(s.duration_s / session.dt_s)) if s.duration_s else -1
    budget_ns = int(s.budget_us * 1e3)
    dt_ns = clock.dt_ns
    # warm-up: each tick's work (ingest to emit), the last WARM_KEEP of them, checked against
    # the budget when timing starts
    warm_ns = np.zeros(WARM_KEEP, np.int64)
    tick = make_tick(session, live_pacing(session, budget_ns), warm_ns)
    # the other threads of this process share this one's GIL: their Python work is kept between
    # ticks (TickSlack; until the warm-up has measured the tick, a quarter of dt is assumed), and
    # with FIFO here they run at FIFO just below, so that ordinary load cannot preempt one of them
    # while it holds the GIL (both measured: docs/benchmarks.md)
    # (only the first real-time session of a process owns the slack: a second one neither
    # publishes its wake-ups nor raises threads)
    slack = SLACK if SLACK.claim(session, dt_ns, slack_busy_ns(clock.spin_ns, dt_ns, np.zeros(0, np.int64))) \
        else None
    raised: list[tuple[int, int, int]] = []
    try:
        session.background_realtime = "none"
        if slack is None:
            session.background_realtime = "none (another session of this process holds the slack)"
        elif s.background_realtime and session.realtime_applied.startswith("fifo"):
            if s.rt_priority < 2:
                session.background_realtime = "none (rt_priority 1 leaves no lower FIFO priority)"
            else:
                raised = raise_background(s.rt_priority - 1, slack.followers())
                if raised:
                    session.background_realtime = f"fifo:{s.rt_priority - 1} ({len(raised)} threads)"
        clock.start(delay_s=0.01, phase_ns=None if s.tick_phase_us is None else int(round(s.tick_phase_us * 1e3)))
        _realtime_loop(session, clock, tick, warm_ns, budget_ns, n_total, slack)
    finally:
        if slack is not None:
            session.slack = slack.stats()
            slack.release(session)
        restore_background(raised)


def _realtime_loop(session: Any, clock: DeadlineClock, tick: Callable[[int, int, int, bool], int],
                   warm_ns: np.ndarray, budget_ns: int, n_total: int, slack: Any) -> None:
    from pylsl import local_clock

    s = session.cfg.session
    warmup = s.warmup_ticks
    dt_ns, spin_ns = clock.dt_ns, clock.spin_ns
    perf = time.perf_counter_ns
    stop, timestamps = session.stop_event, session.timestamps
    c = session.counters
    max_lag_ns = s.max_lag_ticks * dt_ns
    measuring = False
    slot0 = 0  # clock.k when timing started: duration_s counts tick slots (wall time), run or skipped
    k = 0
    # warm-up ends after `warmup` ticks once the source has caught up with its start-up
    # backlog (samples queued before the first pull would otherwise count as latency),
    # or after max_catchup_s at the latest
    catchup_ticks = warmup + int(s.max_catchup_s / session.dt_s)
    n = 0
    while not stop.is_set():
        if not measuring and k >= warmup and (n == 0 or local_clock() - timestamps[n - 1] < CAUGHT_UP_S
                                              or k >= catchup_ticks):
            start_timing(session, warm_ns[:min(k, WARM_KEEP)], budget_ns, dt_ns)
            if slack is not None:
                slack.claim(session, dt_ns, slack_busy_ns(spin_ns, dt_ns, warm_ns[:min(k, WARM_KEEP)]))
            measuring = True
            # the first timed tick in the next slot that has not begun: the current one began
            # during the collection above, and starting in it would count that as a late wake-up
            clock.skip_to_now()
            clock.advance()
            slot0 = clock.k
        # duration_s is wall time: the ticks run plus the slots skipped while behind
        if measuring and n_total >= 0 and clock.k - slot0 >= n_total:
            break
        t_start = clock.tick_start_ns()
        if slack is not None:
            slack.next_wake_ns = t_start - spin_ns  # TickSlack.publish, inlined: one store a tick
        lateness = clock.wait()
        n = tick(k, t_start, lateness, measuring)
        k += 1
        clock.advance()
        skipped = clock.skip_to_now() if (perf() - clock.tick_start_ns()) > max_lag_ns else 0
        if skipped and measuring:
            c["skipped_ticks"] += skipped


# ------------------------------------------------------------------ max pace
class RecordingClock:
    """Pace max: the time of a tick on the recording's clock, its newest input sample's
    timestamp, else one dt after the previous tick's (so recorded outputs line up with the
    inputs). ``pull`` wraps the source's to see what each tick consumed."""

    def __init__(self, source_pull: Callable[[np.ndarray, np.ndarray], int], dt_s: float):
        self._source_pull = source_pull
        self.dt_s = dt_s
        self._n = 0
        self._stamps: np.ndarray | None = None
        self._t = 0.0

    def pull(self, samples: np.ndarray, timestamps: np.ndarray) -> int:
        n = self._n = self._source_pull(samples, timestamps)
        self._stamps = timestamps
        return n

    def now(self) -> float:
        n = self._n
        self._t = float(self._stamps[n - 1]) if n else self._t + self.dt_s
        return self._t


def max_pacing(session: Any) -> Pacing:
    """Offline: rings are waited for (the I/O thread drains them; nothing dropped unless it has
    stopped), ticks are stamped on the recording's clock, and a learner's ``prepare`` and
    ``apply`` run inline whenever it wants them."""
    rec = session.recording
    io_done: threading.Event = session._io_done
    c = session.counters
    learner, backend = session.learner, session.backend
    ready = learner.ready if learner is not None and isinstance(learner, ReadyAfterPrepare) else None
    clock = RecordingClock(session.source.pull, session.dt_s)

    def prepare_and_apply(t4: int, t_sched: int) -> None:
        if learner.wants_apply():
            learner.prepare()
            if ready is None or ready():
                learner.apply(backend)
                c["learn_applied"] += 1

    def waiting(ring: Any) -> Callable[[np.ndarray, np.ndarray, int], Any]:
        def push_block(values: np.ndarray, stamps: np.ndarray, n: int) -> Any:
            wait_for_room(ring, n, io_done)
            return ring.push_block(values, stamps, n)
        return push_block

    out_ring = session.out_ring

    def push_row(row: np.ndarray) -> Any:
        wait_for_room(out_ring, 1, io_done)  # offline: wait for the I/O thread, drop nothing
        return out_ring.push(row)

    return Pacing(
        pull=clock.pull, now=clock.now,
        push_inputs=waiting(rec.inputs) if rec is not None else None,
        push_teacher=waiting(rec.teacher) if rec is not None and rec.teacher is not None else None,
        push_row=push_row if session.cfg.session.record_outputs else None,
        learn_apply=prepare_and_apply if learner is not None else None, learn_gate=_AlwaysReady(),
        timed=None)


def run_max_pace(session: Any) -> None:
    """Drive the tick body as fast as the source delivers (see the module docstring)."""
    s = session.cfg.session
    session.realtime_applied = apply_realtime(s.realtime, s.rt_priority)
    n_total = int(round(s.duration_s / session.dt_s)) if s.duration_s else -1
    tick = make_tick(session, max_pacing(session), np.zeros(0, np.int64))
    stop = session.stop_event
    finite = session.source if isinstance(session.source, Finite) else None
    perf = time.perf_counter_ns
    if stop.is_set() or (finite is not None and finite.finished):
        return
    start_timing(session, np.zeros(0, np.int64), int(s.budget_us * 1e3), int(round(session.dt_s * 1e9)))
    k = 0
    # duration_s counts ticks here (the recording's time)
    while not stop.is_set() and not (finite is not None and finite.finished) and k != n_total:
        tick(k, perf(), 0, True)
        k += 1


def compute_main(session: Any) -> None:
    """The compute thread's body: the driver of ``session.pace``; an error is kept in
    ``session.error`` (raised by ``run()``), and the session stops either way."""
    try:
        (run_max_pace if session.cfg.session.pace == "max" else run_realtime)(session)
    except BaseException as err:  # surfaced by run()
        session.error = err
    finally:
        session.stop_event.set()
