"""The closed-loop session: one compute thread paced by absolute deadlines, one I/O thread.

A :class:`Session` is laid out over small modules, one job each; read them in this order:

=================================  ==========================================================
:mod:`rtsnn.runtime.build`         stages from the config (each given the session's
                                   :class:`~rtsnn.protocols.StageContext`), the checks that
                                   they fit together, the optional parts they implement
:mod:`rtsnn.runtime.folder`        the session folder: 0700 / 0600, ``FAILED``
:mod:`rtsnn.runtime.loop`          the tick body and its two drivers (``pace: realtime`` /
                                   ``pace: max``), the warm-up and its budget check
:mod:`rtsnn.runtime.io_thread`     the I/O thread (a plain loop): outputs, metrics, control,
                                   learners' ``prepare``, stage failures and events
:mod:`rtsnn.runtime.summary`       the summary at the end and the status snapshot meanwhile
:mod:`rtsnn.stream.ring`           the one ring type the threads hand rows through
=================================  ==========================================================

This module holds the :class:`Session` that owns them: it builds the stages, opens them, starts
the two threads, waits (reporting status), closes everything and writes the summary.

Per tick (``dt_s``, 1 ms by default), in the compute thread: ingest (source.pull, teacher.pull),
encode, step, readout, learn (observe; apply deferred while the tick lacks budget), emit to
every sink, each stage timed; end-to-end latency is ``local_clock()`` right after the last sink
took the output minus the LSL timestamp of every input sample that tick consumed. A tick that
ends after the next tick's start is a deadline miss; a loop more than ``max_lag_ticks`` behind
drops the missed tick slots (counted as skipped) instead of running them back to back.

Deadline misses (issue 17 item 7): ``run(bare_timer_s=...)`` (``rtsnn demo`` default 2 s,
``rtsnn run --bare-timer-s``; live pace only) first times an empty loop on the same pacing in
this process (:func:`rtsnn.runtime.loop.bare_timer`), once the outputs are open and before the
inputs open (nothing queues input meanwhile), and the summary reports it beside the session's misses
(``bare_timer_miss_rate``, ``deadline_miss_ratio``), with the misses split by cause
(``deadline_miss_causes``: a late wake-up, or a tick longer than its slack). The compute thread
needs the GIL after every sleep and every call that releases it, so work other threads do with
the GIL held can make it late: the monitor's status pass is computed for all series at once
over the histogram band in use, and the switch interval is ``SWITCH_INTERVAL_S`` while the
session runs (docs/benchmarks.md: what was measured, and what was tried and not kept).

``session.record``: the compute thread also copies every input and teacher sample it pulled,
and every reward the learner polled, into preallocated rings (full: the block is dropped and
counted); the I/O thread moves them, the output rows and the control events it dispatched
into ``recording.xdf`` (:class:`rtsnn.stream.recorder.SessionRecording`), flushed every 0.5 s.

``session.duration_s`` is wall time: the run ends once that many tick slots have passed since
timing started, the ticks run plus the slots skipped while behind. When timing starts, the
median work of the warm-up ticks is checked against ``session.budget_us``: over it, one warning
line (logged, and in the summary's ``warnings`` with ``warmup_tick_us``).

Housekeeping (docs/session_folder.md): ``session.name`` must be one plain folder name
(:func:`check_session_name`, refused at build); the folder is created 0700 and every file in it
is written 0600. A start that fails before the first tick (a source that cannot resolve, a
sink that cannot open) removes the folder it made; a run that fails later keeps it, with a
``FAILED`` file holding the reason. Stages that implement ``failure()``
(:class:`rtsnn.protocols.MayFail`) are asked on the I/O thread; the first failure ends the run
with ``stopped_by = "failed: <stage>: <reason>"`` and :attr:`Session.failed` set (``rtsnn run``
exits 1 on it). Events from stages' ``take_events()`` (:class:`rtsnn.protocols.TakesEvents`,
e.g. an LSL source refusing an impostor stream) are taken on the I/O thread into the
recording and counted (``stage_events``).

``session.pace: max`` (offline, for a finite source such as ``xdf_file``): no deadlines and
no warm-up, the loop runs until the source reports ``finished`` (or the duration), learners'
``prepare`` and ``apply`` run inline on the compute thread, and the producer waits for the
I/O thread instead of dropping rows when a ring is full; ``duration_s`` counts ticks (the
recording's time), not wall time. Every tick's decoded and target outputs are then the same on
every run; latency and deadline figures are not meaningful (e2e and deadline misses are not
counted).

The functions the CLI, ``rtsnn config check`` and the tests import from here live in the modules
above and are re-exported (``stage_mismatches``, ``load_session_model``, ``check_session_name``,
``apply_realtime``, ``r2_from_acc``, ``FAILED_FILE``, ...).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rtsnn.clock import SLACK
from rtsnn.config import ConfigError, SessionConfig
from rtsnn.protocols import DescribesChannels, ReadyAfterPrepare
from rtsnn.runtime import io_thread
from rtsnn.runtime.build import (_substitute, _with_session_dt, build_stages, check_session_name,  # noqa: F401
                                 learner_mismatches, load_session_model, model_dt_s, model_graph_summary,
                                 optional_parts, stage_mismatches, synthetic_prefix)
from rtsnn.runtime.folder import (FAILED_FILE, atomic_write, log, make_session_folder, mark_failed,  # noqa: F401
                                  owner_only, restrict_to_owner)
from rtsnn.runtime.loop import (CAUGHT_UP_S, SERIES, STAGES, WARM_KEEP, _accumulate_r2, _record_e2e,  # noqa: F401
                                PrepareHandoff, apply_realtime, compute_main, r2_from_acc)
from rtsnn.runtime.metrics import LatencyStats, json_safe, record_ns
from rtsnn.runtime.ring import RowRing
from rtsnn.runtime.summary import session_status, session_summary

# while a session runs: the longest another thread may keep the GIL from the compute thread
# between two bytecodes (CPython's default is 5 ms, five ticks)
SWITCH_INTERVAL_S = 2e-4

# the names these had before the session was laid out over modules
_atomic_write, _owner_only = atomic_write, owner_only


class Session:
    """Builds every stage from a :class:`SessionConfig` and runs the tick loop."""

    running = False  # True while the compute thread runs (read by status())
    dropped_in_warmup = 0  # samples the source dropped before timing started (stale start-up backlog)
    stopped_by: str | None = None  # why stop() was called; None: the run reached its end
    _t_start: float | None = None  # time.monotonic() when the threads started
    bare: dict[str, Any] | None = None  # run(bare_timer_s=...): the machine's floor, measured before the start
    slack: dict[str, int] | None = None  # live pace: rtsnn.clock.TickSlack.stats() of this run
    background_realtime = "none"  # live pace: the scheduling the other threads got (loop.raise_background)

    def __init__(self, cfg: SessionConfig, origin: str = "<config>"):
        self.cfg = cfg
        self.origin = origin
        s = cfg.session
        check_session_name(s.name, origin)  # first: before any stage is built or anything is made
        self.dt_s = s.dt_s
        self._synthetic_proc = None
        self.synthetic_prefix = synthetic_prefix(cfg)
        st = build_stages(cfg, origin, self.synthetic_prefix)
        self.context = st.context
        self.source, self.teacher, self.encoder = st.source, st.teacher, st.encoder
        self.model, self.backend, self.learner, self.reward = st.model, st.backend, st.learner, st.reward
        self.sinks, self.monitor = st.sinks, st.monitor
        self.parts = st.parts
        # learners that learn from reward alone observe every tick, with target None
        self._observe_always = st.parts.observe_always
        model = self.model

        # preallocated tick buffers
        cap = s.max_samples_per_tick
        self.samples = np.zeros((cap, self.source.n_channels), np.float32)
        self.timestamps = np.zeros(cap, np.float64)
        if self.teacher is not None:
            self.t_samples = np.zeros((cap, self.teacher.n_channels), np.float32)
            self.t_timestamps = np.zeros(cap, np.float64)
        self.spikes_in = np.zeros(model.n_in, np.float32)
        self.target = np.zeros(model.n_out, np.float32)
        self.stats = LatencyStats(list(SERIES))
        self.r2_acc = np.zeros((4, model.n_out), np.float64)
        self.out_ring = RowRing(4096, 3 + 2 * model.n_out)
        self.out_row = np.zeros(3 + 2 * model.n_out, np.float64)
        if self.monitor is not None:
            # its tap is one more sink: three copies into a preallocated ring per tick
            self.monitor.attach(self.backend, self.target)
            self.sinks.append(self.monitor.sink)

        self.stop_event = threading.Event()
        self._io_done = threading.Event()
        self.counters: dict[str, int] = dict(ticks=0, deadline_misses=0, misses_late_wake=0, misses_slow_tick=0,
                                             skipped_ticks=0, gap_ticks=0,
                                             learn_deferred=0, learn_applied=0, samples_in=0,
                                             eval_ticks=0, nonfinite_outputs=0, control_applied=0,
                                             control_ignored=0)
        self.error: BaseException | None = None
        self.io_error: BaseException | None = None
        self.folder: Path | None = None
        self.handoff = PrepareHandoff()  # the learner's prepare (I/O thread) -> apply (compute thread)
        self.summary: dict[str, Any] | None = None
        self.recording = None
        self.control = None  # the local control socket (rtsnn control ...), opened by run()
        self.control_error = "unsupported"  # why there is no control socket
        self.last_control_error = ""  # the last control message's refusal
        self.realtime_applied = "none"  # the scheduling policy the compute thread got
        # why the run failed (a stage's failure(), the compute or I/O thread's error); None: it did not
        self.failed: str | None = None
        self.warnings: list[str] = []  # one line each, also logged (e.g. a tick that does not fit its budget)
        self.warmup_tick_us: dict[str, Any] | None = None  # median tick work measured in warm-up
        self.stage_events = 0  # events taken from stages' take_events() (recorded with session.record)
        self.learner_ready = None
        self._collect_optional_stages()

    # ------------------------------------------------------------------ set-up
    def _collect_optional_stages(self) -> None:
        """Which stages implement which optional part of their contract (:mod:`rtsnn.protocols`),
        looked up once (at build, and again by run() in case a stage was replaced since), so the
        threads call those parts without probing."""
        tap = self.monitor.sink if self.monitor is not None else None
        self.parts = optional_parts(source=self.source, teacher=self.teacher, encoder=self.encoder,
                                    backend=self.backend, learner=self.learner, reward=self.reward,
                                    sinks=[s for s in self.sinks if s is not tap], monitor=self.monitor)
        self.learner_ready = (self.learner.ready if self.learner is not None
                              and isinstance(self.learner, ReadyAfterPrepare) else None)

    def _spawn_synthetic_user(self) -> None:
        su = self.cfg.synthetic_user
        if su is None:
            return
        from rtsnn.stream.synthetic import spawn_synthetic_user

        s = self.cfg.session
        # run a little longer than the session (warm-up, set-up); terminated in _close anyway
        duration_s = (s.duration_s + s.warmup_ticks * s.dt_s + 30.0) if s.duration_s else 1e9
        self._synthetic_proc = spawn_synthetic_user(
            self.synthetic_prefix, duration_s=duration_s, seed=su.seed, n_neurons=su.n_neurons,
            baseline_hz=su.baseline_hz, depth_hz=su.depth_hz, drift_deg_per_s=su.drift_deg_per_s,
            dropout_fraction=su.dropout_fraction, dropout_at_s=su.dropout_at_s,
            rotation_deg=su.rotation_deg, rotation_at_s=su.rotation_at_s)

    def _open(self, bare_timer_s: float = 0.0) -> None:
        """Open every stage, outputs first, then the inputs; ``bare_timer_s`` > 0: time the
        bare loop in between (see :meth:`run`), when nothing is yet buffering input for the
        session."""
        self._open_outputs()
        if bare_timer_s > 0:
            old_switch = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL_S)  # the GIL switch interval the session runs with
            try:
                self.bare = self._bare_timer(bare_timer_s)
            finally:
                sys.setswitchinterval(old_switch)
        self._open_inputs()

    def _open_outputs(self) -> None:
        """What a tick writes to and runs on: the synthetic user's process (its outlets up),
        the monitor, the sinks, the backend (warmed up) and every per-tick path exercised once.
        None of these buffers the session's input."""
        self._spawn_synthetic_user()
        if self.monitor is not None:
            self.monitor.open()
        labels = list(self.model.output_labels)
        units = list(self.model.output_units)
        for sink in self.sinks:
            sink.open(labels, units)
        self.backend.warm_up()
        # exercise every per-tick path once so nothing compiles inside the loop
        self.encoder.encode(self.samples, 0, self.spikes_in)
        self.encoder.reset()
        _record_e2e(self.stats.hist, self.stats.maxima, self.stats.index["e2e"], self.stats.index["input_age"],
                    1.0, 0.0, self.timestamps, 0)
        _accumulate_r2(np.zeros_like(self.r2_acc), self.backend.readout(), self.target)
        # the loop times stages with integer ns (perf_counter_ns differences): a specialisation of
        # its own, which a cold numba cache (a new user's first run) would otherwise compile at
        # the first timed tick, stalling it ~0.1 s while input piles up
        record_ns(np.zeros_like(self.stats.hist), np.zeros_like(self.stats.maxima), 0, 0)

    def _open_inputs(self) -> None:
        """What buffers input from the moment it opens (an LSL inlet keeps, and past
        ``max_backlog_s`` drops, what arrives before the first pull): source, teacher, reward;
        then the recording (it takes the source's channel labels) and the learner."""
        self.source.open()
        if self.teacher is not None:
            self.teacher.open()
        if self.parts.opens_reward:
            self.reward.open()
        self._open_recording()  # before the learner attaches: every reward it polls is recorded
        if self.learner is not None:
            self.learner.attach(self.backend, self.dt_s)

    def _open_recording(self) -> None:
        """``session.record``: <folder>/recording.xdf; the reward source is wrapped so that
        what the learner polls is recorded too. Channel labels, units and rate come from a
        source that describes them (:class:`rtsnn.protocols.DescribesChannels`)."""
        if not self.cfg.session.record:
            return
        from rtsnn.stream.recorder import RewardTap, SessionRecording

        assert self.folder is not None
        n_in = self.source.n_channels
        described = isinstance(self.source, DescribesChannels)
        labels = list(self.source.channel_labels or []) if described else []
        if len(labels) != n_in:
            labels = [f"ch{i}" for i in range(n_in)]
        units = list(self.source.channel_units or []) if described else []
        self.recording = SessionRecording(
            self.folder / "recording.xdf", self.cfg.session.name, input_labels=labels,
            input_units=units if len(units) == n_in else (),
            input_srate_hz=float(self.source.nominal_srate_hz or 0.0) if described else 0.0,
            output_labels=list(self.model.output_labels), output_units=list(self.model.output_units),
            teacher=self.teacher is not None, dt_s=self.dt_s,
            ring_samples=max(1 << 16, 8 * self.cfg.session.max_samples_per_tick))
        os.chmod(self.folder / "recording.xdf", 0o600)  # neural data: owner-only from its first byte on
        if self.reward is not None:
            self.learner.set_reward_source(RewardTap(self.reward, self.recording))

    def _open_control(self) -> None:
        """The local control socket for ``rtsnn control`` (Linux; elsewhere MQTT only)."""
        from rtsnn.runtime import control

        if not control.supported():
            return
        try:
            self.control = control.ControlSocket(self.folder, self.cfg.session.name)
        except OSError as err:  # e.g. the same name in the same process twice: no CLI control
            self.control_error = str(err)

    def _make_folder(self) -> Path:
        return make_session_folder(self.cfg, self.origin, self.model.output_labels, self.model.output_units)

    def _discard_folder(self) -> None:
        """A start that failed before the first tick leaves no session folder behind (it held
        only the config and the outputs' description); if it cannot be removed, it is marked
        ``FAILED`` instead."""
        folder, self.folder = self.folder, None
        if folder is None:
            return
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            self.folder = folder
            self._mark_failed()

    def _mark_failed(self) -> None:
        mark_failed(self.folder, self.failed)

    def _fail(self, reason: str) -> None:
        """The run failed: remember why (``failed``) and stop it (``stopped_by = "failed: ..."``)."""
        if self.failed is None:
            self.failed = " ".join(str(reason).split())
        if self.stopped_by is None:
            self.stopped_by = f"failed: {self.failed}"
        self.stop_event.set()

    # the I/O thread's steps (rtsnn.runtime.io_thread), callable on their own
    def _check_failures(self) -> None:
        io_thread.check_failures(self)

    def _drain_stage_events(self) -> None:
        io_thread.drain_stage_events(self)

    def _dispatch_control(self) -> None:
        io_thread.dispatch_control(self)

    # ------------------------------------------------------------------ run
    def run(self, *, on_start: Callable[[dict[str, Any]], None] | None = None,
            on_status: Callable[[dict[str, Any]], None] | None = None,
            status_interval_s: float = 5.0, bare_timer_s: float = 0.0) -> dict[str, Any]:
        """Open everything, run until duration or stop(), close, return the summary.

        ``on_start(info)`` is called once every stage is open, before the first tick, with
        ``{"folder": str, "streams": self.lsl_streams()}``; ``on_status(status)`` every
        ``status_interval_s`` with :meth:`status` (its e2e p99 over the interval since the
        previous call). Both run on the calling thread, which otherwise only waits for the
        compute thread; an exception in either stops further calls, never the session.

        ``bare_timer_s`` > 0 (``session.pace: realtime`` only; with ``max`` there are no
        deadlines to compare and it is refused with a :class:`~rtsnn.config.ConfigError`):
        measure the machine's own deadline floor for that long
        (:func:`rtsnn.runtime.loop.bare_timer`: the session's pacing, tick and scheduling
        policy with an empty tick body) in this process, with the outputs open (synthetic user,
        monitor, sinks, backend warmed up) but before the source, teacher and reward open, so
        no input queues up during it (the warm-up's ``dropped_in_warmup`` is what it would be
        without the timer); the summary reports it next to the session's
        ``deadline_miss_rate`` (``bare_timer_miss_rate``, ``deadline_miss_ratio``).
        """
        if not (isinstance(bare_timer_s, (int, float)) and 0 <= bare_timer_s < float("inf")):
            raise ValueError(f"bare_timer_s must be a finite number >= 0 (s), got {bare_timer_s!r}")
        if bare_timer_s > 0 and self.cfg.session.pace == "max":
            raise ConfigError(f"{self.origin}: bare_timer_s {bare_timer_s:g} measures the floor of live deadlines, "
                              f"but session.pace is max (no deadlines); use bare_timer_s 0")
        self._collect_optional_stages()
        self.folder = self._make_folder()
        try:
            self._open(bare_timer_s)
            self._open_control()
        except BaseException:
            # nothing ran: no folder left behind (a source that cannot resolve, a sink refused, ...)
            self._close()
            self._discard_folder()
            raise
        old_switch = sys.getswitchinterval()
        try:
            if on_start is not None:
                try:
                    on_start({"folder": str(self.folder), "streams": self.lsl_streams()})
                except Exception:  # noqa: BLE001 - reporting must not stop the session
                    pass
            sys.setswitchinterval(SWITCH_INTERVAL_S)  # bound how long another thread can hold the GIL
            # the I/O thread and this one (status lines) keep to the compute thread's slack
            io = SLACK.follow(threading.Thread(target=io_thread.io_thread_main, args=(self,), name="rtsnn-io",
                                               daemon=True))
            SLACK.follow(threading.current_thread())
            compute = threading.Thread(target=compute_main, args=(self,), name="rtsnn-compute", daemon=True)
            self._io_done = threading.Event()
            io.start()
            self._t_start = time.monotonic()
            self.running = True
            compute.start()
            try:
                self._wait_reporting(compute, on_status, status_interval_s)
            except KeyboardInterrupt:
                self.stop("interrupt")
                compute.join()
            self._io_done.set()
            io.join(10)
        finally:
            self.running = False
            SLACK.unfollow(threading.current_thread())
            sys.setswitchinterval(old_switch)
            gc.unfreeze()
            if self.error is None and self.io_error is None:
                self._check_failures()  # a failure the I/O thread had no pass left to see
            self._close()
        if self.error is not None:
            self.failed = self.failed or f"the compute thread failed ({type(self.error).__name__}: {self.error})"
            self._mark_failed()
            restrict_to_owner(self.folder)
            raise self.error
        if self.io_error is not None:
            self.failed = self.failed or (f"the I/O thread failed ({type(self.io_error).__name__}: "
                                          f"{self.io_error})")
            self._mark_failed()
            restrict_to_owner(self.folder)
            raise RuntimeError(f"the session's I/O thread failed ({type(self.io_error).__name__}: "
                               f"{self.io_error}); outputs and metrics after that point were not written "
                               f"to {self.folder}") from self.io_error
        self.summary = json_safe(self._summary())
        self.stats.save_npz(self.folder / "latency_hist.npz")  # every series' histogram, for `rtsnn plot`
        os.chmod(self.folder / "latency_hist.npz", 0o600)
        atomic_write(self.folder / "summary.json", json.dumps(self.summary, indent=1, allow_nan=False))
        self._mark_failed()  # a stage's failure ended it: FAILED beside the summary
        restrict_to_owner(self.folder)  # what stages wrote with their own modes (recording, histograms)
        return self.summary

    def _bare_timer(self, duration_s: float) -> dict[str, Any]:
        """The session's own pacing with an empty tick, here and now (see :meth:`run`)."""
        from rtsnn.runtime.loop import bare_timer

        s = self.cfg.session
        return bare_timer(self.dt_s, duration_s, spin_s=s.spin_us * 1e-6,
                          phase_ns=None if s.tick_phase_us is None else int(round(s.tick_phase_us * 1e3)),
                          max_lag_ticks=s.max_lag_ticks, realtime=s.realtime, rt_priority=s.rt_priority)

    def stop(self, reason: str = "stop()") -> None:
        """Ask the compute thread to end after its current tick (safe from any thread and from
        a signal handler); ``reason`` goes to the summary's ``stopped_by``."""
        if self.stopped_by is None and not self.stop_event.is_set():  # set: the run already ended
            self.stopped_by = reason
        self.stop_event.set()

    def _wait_reporting(self, compute: threading.Thread, on_status: Callable[[dict[str, Any]], None] | None,
                        interval_s: float) -> None:
        """Wait for the compute thread; every ``interval_s`` hand :meth:`status` to
        ``on_status`` (here, never on the compute thread: the tick loop neither allocates nor
        prints for it)."""
        next_t = time.monotonic() + interval_s
        prev_hist: np.ndarray | None = None
        slack = SLACK  # this thread's wake-ups and work stay out of the ticks
        while compute.is_alive():
            compute.join(slack.aligned(0.1))
            if on_status is None or time.monotonic() < next_t or not compute.is_alive():
                continue
            next_t += interval_s
            slack.wait()
            hist = self.stats.hist.copy()
            status = self.status(hist_since=prev_hist, hist_now=hist)
            # the first line, and one right after the warm-up reset: since timing started
            status["e2e_p99_over_s"] = interval_s if status["e2e_p99_since_snapshot"] else None
            prev_hist = hist
            slack.wait()
            try:
                on_status(status)
            except Exception:  # noqa: BLE001 - e.g. a closed terminal: stop reporting, keep running
                on_status = None

    # ------------------------------------------------------------------ live status
    def lsl_streams(self) -> list[dict[str, str]]:
        """Every LSL stream this session reads or publishes, from its stages' optional
        ``lsl_streams()`` (:class:`rtsnn.protocols.ListsStreams`), each with ``role``:
        ``source``, ``teacher``, ``reward``, ``sinks.<i>``, ``monitor`` or ``synthetic_user``
        (the demo's simulated user, a child process whose outlets the source and teacher read)."""
        out: list[dict[str, str]] = []
        if self.cfg.synthetic_user is not None:
            from rtsnn.stream.synthetic import synthetic_streams

            out += [{**st, "role": "synthetic_user"} for st in synthetic_streams(self.synthetic_prefix)]
        for role, stage in self.parts.lists_streams:
            out += [{**st, "role": role} for st in stage.lsl_streams()]
        return out

    def status(self, hist_since: np.ndarray | None = None, hist_now: np.ndarray | None = None) -> dict[str, Any]:
        """A snapshot, safe to take from any thread while the session runs: ``running``,
        ``ticks`` and ``deadline_misses`` (timed ticks, after warm-up), ``e2e_p99_us`` (so far,
        or since the histogram snapshot ``hist_since`` when ``e2e_p99_since_snapshot``; ``hist_now``:
        a copy of the histograms just taken, else one is taken here), ``r2`` (so far, None before
        the learner has calibrated), ``source`` health (samples, repaired values, dropped samples,
        ``connected`` / ``in_gap`` when the source reports them), ``folder``, ``error``."""
        return session_status(self, hist_since, hist_now)

    def _close(self) -> None:
        for c in [self.learner, self.source, self.teacher, self.reward, *self.sinks, self.monitor,
                  self.recording, self.control]:
            if c is None:
                continue
            try:
                c.close()
            except Exception:  # closing must not mask the session's own result
                pass
        proc = self._synthetic_proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except Exception:
                proc.kill()

    # ------------------------------------------------------------------ summary
    def _summary(self) -> dict[str, Any]:
        return session_summary(self)
