"""The closed-loop session: one compute thread paced by absolute deadlines, one I/O thread.

Per tick (``dt_s``, 1 ms by default), in the compute thread:

    ingest   source.pull (+ teacher.pull)       every sample that arrived since the last tick
    encode   encoder.encode                     samples -> input spike counts
    step     backend.step                       the SNN advances one dt
    readout  backend.readout                    output vector
    learn    learner.observe (+ deferred apply) never allowed to delay inference
    emit     sink.emit for every sink           non-blocking hand-off

Each stage is timed with ``perf_counter_ns`` into fixed-size histograms; end-to-end latency
is ``local_clock()`` right after the last sink took the output minus the LSL timestamp of
every input sample that tick consumed. Overrun policy: the learner's ``apply`` runs only
when the tick has budget left (else it is deferred and counted); a tick that ends after the
next tick's start is a deadline miss; a loop more than ``max_lag_ticks`` behind drops the
missed tick slots (counted as skipped) instead of running them back to back — their input
is not lost, the next tick consumes it.

The I/O thread runs an asyncio loop: it writes metrics as JSON lines, drains the output ring
to the session folder, and runs learners' heavy ``prepare`` step.

``session.record``: the compute thread also copies every input and teacher sample it pulled,
and every reward the learner polled, into preallocated rings (full: the block is dropped and
counted); the I/O thread moves them, the output rows and the control events it dispatched
into ``recording.xdf`` (:class:`rtsnn.stream.recorder.SessionRecording`), flushed every 0.5 s.

``session.duration_s`` is wall time: the run ends once that many tick slots have passed since
timing started, the ticks run plus the slots skipped while behind (a loop slower than its tick
still stops on time, its skipped ticks counted). When timing starts, the median work of the
warm-up ticks is checked against ``session.budget_us``: over it, one warning line (logged, and
in the summary's ``warnings`` with ``warmup_tick_us``).

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
recording's time), not wall time. Every tick's decoded and target
outputs are then the same on every run; latency and deadline figures are not meaningful
(e2e and deadline misses are not counted).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import gc
import json
import logging
import os
import shutil
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from numba import njit

from rtsnn import plugins
from rtsnn.config import ConfigError, SessionConfig, config_to_yaml, session_name_problem
from rtsnn.clock import DeadlineClock
from rtsnn.protocols import MayFail, TakesEvents
from rtsnn.runtime.metrics import LatencyStats, json_safe, record_ns
from rtsnn.runtime.outputs_file import OUTPUTS_JSON, outputs_description
from rtsnn.runtime.ring import RowRing

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


def _now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


log = logging.getLogger("rtsnn.session")

FAILED_FILE = "FAILED"  # in a session folder whose run ended in a failure: the reason, one line


def _owner_only(path: str | os.PathLike, flags: int) -> int:
    """An ``opener`` for :func:`open`: the file is created 0600 and made 0600 if it existed
    (the mode given to ``os.open`` only applies to a new file and is masked by the umask, which
    can only take bits away)."""
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _atomic_write(path: Path, text: str) -> None:
    """``text`` to ``path`` owner-only (0600), through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", opener=_owner_only) as f:
        f.write(text)
    os.replace(tmp, path)


def restrict_to_owner(folder: Path) -> None:
    """``folder`` and every folder under it 0700, every regular file 0600 (links are not
    followed, sockets left alone): what stages wrote with their own modes becomes private too."""
    try:
        os.chmod(folder, 0o700)
    except OSError:  # the folder is gone (removed by hand mid-run): nothing left to protect
        return
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            try:
                mode = os.lstat(p).st_mode
                if stat.S_ISDIR(mode):
                    os.chmod(p, 0o700)
                elif stat.S_ISREG(mode):
                    os.chmod(p, 0o600)
            except OSError:  # gone meanwhile (a temp file renamed): nothing to protect
                pass


def check_session_name(name: Any, origin: str = "<config>") -> None:
    """Refuse a ``session.name`` that is not one plain folder-name component
    (:func:`rtsnn.config.session_name_problem`): the session folder is
    ``<out_dir>/<name>-<UTC time>`` and must never land outside ``out_dir``. The config schema
    refuses such names too; this guards sessions built from configs made in code. Raises
    ConfigError naming ``session.name``."""
    why = session_name_problem(name)
    if why is not None:
        shown = repr(name if not isinstance(name, str) or len(name) <= 40 else name[:40] + "...")
        raise ConfigError(f"{origin}: session.name: {shown} {why}; it names the session folder inside "
                          f"session.out_dir, so it must be one plain name (e.g. 'lab-rig-2')")


def _os_reason(err: OSError, path: Path) -> str:
    """What went wrong making ``path``, in words (a file in the way, no permission, ...)."""
    for p in [path, *path.parents]:
        if p.exists() and not p.is_dir():
            return f"{str(p)!r} is a file, not a folder"
    return err.strerror or str(err)


def _substitute(options: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Replace the placeholder ``{synthetic}`` in string options by the synthetic user's prefix."""
    return {k: (v.replace("{synthetic}", prefix) if isinstance(v, str) else v) for k, v in options.items()}


WARM_KEEP = 1024  # warm-up ticks whose cost is kept (the latest) for the budget check
CAUGHT_UP_S = 0.02  # warm-up: the newest pulled sample is at most this old -> backlog drained


def _with_session_dt(group: str, kind: str, options: dict[str, Any], dt_s: float) -> dict[str, Any]:
    """``options`` plus ``dt_s`` = the session's tick when the plugin takes a ``dt_s`` argument
    and the config leaves it out (an explicit, different value is refused by the session)."""
    if "dt_s" in options:
        return options
    import inspect

    try:
        params = inspect.signature(plugins.load(group, kind).__init__).parameters
    except (ValueError, TypeError, ConfigError):  # unknown kind: plugins.build reports it
        return options
    return {**options, "dt_s": dt_s} if "dt_s" in params else options


def stage_mismatches(cfg: SessionConfig, origin: str = "<config>", *, source: Any = None, teacher: Any = None,
                     encoder: Any = None, model: Any = None, learner: Any = None) -> list[str]:
    """Every way the built stages disagree with the session or with each other, one
    ``FILE: KEY: message`` line each (empty: they fit). Stages passed as None are not checked,
    so ``rtsnn config check`` can call it with whatever it managed to build; nor are tick
    lengths when ``session.dt_s`` is None (an invalid session section there). A model with an
    input contract is also checked against the config (:mod:`rtsnn.runtime.model_contract`), and
    a built ``learner`` against the model's topology (:func:`learner_mismatches`)."""
    from rtsnn.runtime.model_contract import contract_mismatches, placeholder_mismatches

    s = cfg.session
    dt_known = s.dt_s is not None
    out: list[str] = []
    if source is not None and s.pace == "max" and s.duration_s is None and not hasattr(source, "finished"):
        out.append(f"{origin}: session.pace: pace 'max' needs a source that ends (one with a `finished` flag, e.g. "
                   f"xdf_file or dvs_file) or session.duration_s; source {cfg.source.kind!r} has none")
    # stages that keep their own tick length (given dt_s = session.dt_s when the config is
    # silent) must agree with the session's, or rates and file windows are off by the ratio
    for section, stage in (("source", source), ("teacher", teacher), ("encoder", encoder)):
        stage_dt = getattr(stage, "dt_s", None) if stage is not None else None
        if dt_known and isinstance(stage_dt, (int, float)) and abs(stage_dt - s.dt_s) > 1e-12 * max(1.0, s.dt_s):
            out.append(f"{origin}: {section}.options.dt_s ({stage_dt:g} s) differs from session.dt_s "
                       f"({s.dt_s:g} s); set them equal")
    if encoder is not None and source is not None and encoder.n_channels != source.n_channels:
        out.append(f"{origin}: encoder.options.n_channels: encoder expects {encoder.n_channels} channels but the "
                   f"source delivers {source.n_channels}")
    if source is not None:
        out += placeholder_mismatches(cfg, origin)
    if model is not None:
        # the contract's check names the config key and both values; it covers the tick
        has_contract = getattr(model, "input_contract", None) is not None
        out += contract_mismatches(cfg, origin, model=model, source=source, encoder=encoder)
        model_dt = model_dt_s(model)
        if dt_known and not has_contract and model_dt is not None and abs(model_dt - s.dt_s) > 1e-12:
            out.append(f"{origin}: model: model dt_s {model_dt} differs from session.dt_s {s.dt_s}")
        if encoder is not None and model.n_in != encoder.n_out:
            out.append(f"{origin}: model: model has {model.n_in} inputs but the encoder produces "
                       f"{encoder.n_out} spike channels")
        if teacher is not None and teacher.n_channels != model.n_out:
            out.append(f"{origin}: teacher: teacher has {teacher.n_channels} channels but the model has "
                       f"{model.n_out} outputs")
        out += learner_mismatches(cfg, origin, learner, model)
    return out


def model_dt_s(model: Any) -> float | None:
    """The tick a model was made for: a GraphModel's ``dt_s``, a Model's ``settings.dt_s``."""
    dt = getattr(model, "dt_s", None)
    if dt is None:
        dt = getattr(getattr(model, "settings", None), "dt_s", None)
    return None if dt is None else float(dt)


def model_graph_summary(model: Any) -> list[dict[str, Any]] | None:
    """One ``{name, kind, shape}`` per node of the model's graph in evaluation order (today's
    single layer as its graph, :func:`rtsnn.snn.graph.graph_from_model`); None for a model
    that is neither."""
    from rtsnn.snn.graph import GraphModel, graph_from_model
    from rtsnn.snn.params import Model

    if isinstance(model, Model):
        model = graph_from_model(model)
    if not isinstance(model, GraphModel):
        return None
    return [{"name": r["name"], "kind": r["kind"], "shape": list(r["shape"])} for r in model.graph.summary()]


def learner_mismatches(cfg: SessionConfig, origin: str, learner: Any, model: Any) -> list[str]:
    """``FILE: learner.kind: learner KIND: needs ...; model graph has ...`` when the learner
    states (``model_problem(model)``) that it cannot train this model; [] when it can or
    states nothing."""
    check = getattr(learner, "model_problem", None)
    if learner is None or model is None or not callable(check):
        return []
    problem = check(model)
    if not problem:
        return []
    kind = cfg.learner.kind if getattr(cfg, "learner", None) is not None else type(learner).__name__
    return [f"{origin}: learner.kind: learner {kind}: " + " ".join(str(problem).split())]


def load_session_model(cfg: SessionConfig, n_in: int, origin: str = "<config>") -> Any:
    """The decoder ``cfg.model`` names: ``model.path`` read as a NIR graph (``.nir``, its rtsnn
    metadata giving convention and dt; a :class:`~rtsnn.snn.params.Model` for the single-layer
    pattern, else a :class:`~rtsnn.snn.graph.GraphModel`) or an rtsnn model file (a
    :class:`~rtsnn.snn.params.Model` for today's single layer, else a
    :class:`~rtsnn.snn.graph.GraphModel`: any graph the backend runs), else a random reservoir
    with ``n_in`` inputs (the encoder's spike channels) at ``session.dt_s``."""
    from rtsnn.snn import Model, NeuronSettings, load_model  # local: keep import light

    if cfg.model.path and str(cfg.model.path).endswith(".nir"):
        from rtsnn.interop.nir import load_nir

        try:
            model, _notes = load_nir(cfg.model.path)
        except ValueError as err:
            raise ConfigError(f"{origin}: model.path: {err}") from None
        return model
    if cfg.model.path:
        return load_model(cfg.model.path)
    r = cfg.model.random
    settings = NeuronSettings(dt_s=cfg.session.dt_s, **r.neuron.model_dump())
    kw: dict[str, Any] = {"spectral_radius": r.spectral_radius}
    if r.input_gain is not None:
        kw["input_gain"] = r.input_gain
    model = Model.random(n_in, r.n_rec, r.n_out, settings, seed=r.seed, **kw)
    if r.output_labels:
        model.output_labels = list(r.output_labels)
    if r.output_units:
        model.output_units = list(r.output_units)
    return model


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


class Session:
    """Builds every stage from a :class:`SessionConfig` and runs the tick loop."""

    def __init__(self, cfg: SessionConfig, origin: str = "<config>"):
        self.cfg = cfg
        self.origin = origin
        s = cfg.session
        check_session_name(s.name, origin)  # first: before any stage is built or anything is made
        self.dt_s = s.dt_s
        self._synthetic_proc = None
        su = cfg.synthetic_user
        self.synthetic_prefix = (f"{su.prefix}-{os.getpid()}" if su.unique_prefix else su.prefix) if su else ""
        src_opts = _with_session_dt("rtsnn.sources", cfg.source.kind,
                                    _substitute(cfg.source.options, self.synthetic_prefix), s.dt_s)
        self.source = plugins.build("rtsnn.sources", cfg.source.kind, src_opts, "source", origin)
        self.teacher = (plugins.build("rtsnn.sources", cfg.teacher.kind,
                                      _with_session_dt("rtsnn.sources", cfg.teacher.kind,
                                                       _substitute(cfg.teacher.options, self.synthetic_prefix),
                                                       s.dt_s), "teacher", origin)
                        if cfg.teacher else None)
        self.encoder = plugins.build("rtsnn.encoders", cfg.encoder.kind,
                                     _with_session_dt("rtsnn.encoders", cfg.encoder.kind, cfg.encoder.options,
                                                      s.dt_s), "encoder", origin)
        problems = stage_mismatches(cfg, origin, source=self.source, teacher=self.teacher, encoder=self.encoder)
        if problems:
            raise ConfigError("\n".join(problems))
        model = load_session_model(cfg, self.encoder.n_out, origin)
        problems = stage_mismatches(cfg, origin, teacher=self.teacher, encoder=self.encoder, model=model)
        if problems:
            raise ConfigError("\n".join(problems))
        self.model = model
        self.backend = plugins.build("rtsnn.backends", cfg.backend.kind, cfg.backend.options, "backend",
                                     origin, model=model)
        self.learner = (plugins.build("rtsnn.learners", cfg.learner.kind, cfg.learner.options, "learner", origin)
                        if cfg.learner else None)
        problems = learner_mismatches(cfg, origin, self.learner, model)  # what it needs, said before any I/O
        if problems:
            raise ConfigError("\n".join(problems))
        self.reward = None
        if cfg.reward is not None:
            if self.learner is None or not hasattr(self.learner, "set_reward_source"):
                raise ConfigError(f"{origin}: reward: the learner "
                                  f"{cfg.learner.kind if cfg.learner else '(none)'} does not take rewards; "
                                  f"use a reward-driven learner such as actor_critic")
            self.reward = plugins.build("rtsnn.rewards", cfg.reward.kind,
                                        _substitute(cfg.reward.options, self.synthetic_prefix), "reward", origin)
            self.learner.set_reward_source(self.reward)
        # learners that learn from reward alone observe every tick, with target None
        self._observe_always = self.learner is not None and not getattr(self.learner, "needs_target", True)
        self.sinks = [plugins.build("rtsnn.sinks", sp.kind, _substitute(sp.options, self.synthetic_prefix),
                                   f"sinks.{i}", origin)
                      for i, sp in enumerate(cfg.sinks)]
        self.monitor = None
        if s.monitor:
            from rtsnn.runtime.monitor import SessionMonitor  # numpy + pylsl only, no Qt

            spikes = getattr(self.backend, "spikes", None)
            n_spk = int(spikes().shape[0]) if callable(spikes) else int(getattr(self.backend, "n_rec", 0))
            self.monitor = SessionMonitor(s.name, n_spk, model.n_out, s.dt_s,
                                          output_labels=list(model.output_labels) or None)

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
        self.counters: dict[str, int] = dict(ticks=0, deadline_misses=0, skipped_ticks=0, gap_ticks=0,
                                             learn_deferred=0, learn_applied=0, samples_in=0,
                                             eval_ticks=0, nonfinite_outputs=0, control_applied=0,
                                             control_ignored=0)
        self.error: BaseException | None = None
        self.io_error: BaseException | None = None
        self.folder: Path | None = None
        self._prepare_state = "idle"  # idle -> running -> ready
        self.summary: dict[str, Any] | None = None
        self.recording = None
        self.control = None  # the local control socket (rtsnn control ...), opened by run()
        self._pace_max = s.pace == "max"
        # why the run failed (a stage's failure(), the compute or I/O thread's error); None: it did not
        self.failed: str | None = None
        self.warnings: list[str] = []  # one line each, also logged (e.g. a tick that does not fit its budget)
        self.warmup_tick_us: dict[str, Any] | None = None  # median tick work measured in warm-up
        self.stage_events = 0  # events taken from stages' take_events() (recorded with session.record)
        self._may_fail: list[tuple[str, Any]] = []  # (role, stage) implementing failure(), set by run()
        self._event_stages: list[tuple[str, Any]] = []  # (role, stage) implementing take_events()

    # ------------------------------------------------------------------ set-up
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

    def _open(self) -> None:
        self._spawn_synthetic_user()
        self.source.open()
        if self.teacher is not None:
            self.teacher.open()
        if self.reward is not None and hasattr(self.reward, "open"):
            self.reward.open()
        if self.monitor is not None:
            self.monitor.open()
        labels = list(self.model.output_labels)
        units = list(self.model.output_units)
        for sink in self.sinks:
            sink.open(labels, units)
        self._open_recording()  # before the learner attaches: every reward it polls is recorded
        if self.learner is not None:
            self.learner.attach(self.backend, self.dt_s)
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

    def _open_recording(self) -> None:
        """``session.record``: <folder>/recording.xdf; the reward source is wrapped so that
        what the learner polls is recorded too."""
        if not self.cfg.session.record:
            return
        from rtsnn.stream.recorder import RewardTap, SessionRecording

        assert self.folder is not None
        n_in = self.source.n_channels
        labels = list(getattr(self.source, "channel_labels", []) or [])
        if len(labels) != n_in:
            labels = [f"ch{i}" for i in range(n_in)]
        units = list(getattr(self.source, "channel_units", []) or [])
        self.recording = SessionRecording(
            self.folder / "recording.xdf", self.cfg.session.name, input_labels=labels,
            input_units=units if len(units) == n_in else (),
            input_srate_hz=float(getattr(self.source, "nominal_srate_hz", 0.0) or 0.0),
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
        """``<out_dir>/<name>-<UTC time>``, owner-only (0700), with ``config.yaml`` and
        ``outputs.json`` (0600). An ``out_dir`` that cannot be made or used (a file in the
        way, no permission) is an OSError whose one-line message names ``session.out_dir``."""
        s = self.cfg.session
        out_dir = Path(os.path.normpath(s.out_dir))  # printed: no "a/../"
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OSError(f"{self.origin}: session.out_dir: cannot create {str(s.out_dir)!r}: "
                          f"{_os_reason(err, out_dir)}") from None
        # check_session_name made the name one path component: the folder is a child of out_dir
        folder = out_dir / f"{s.name}-{_now_utc()}"
        if folder.parent != out_dir or folder.name in ("", ".", ".."):
            raise ConfigError(f"{self.origin}: session.name: {s.name!r} would leave session.out_dir")
        try:
            folder.mkdir(mode=0o700)
            os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
        except OSError as err:
            raise OSError(f"{self.origin}: session.out_dir: cannot create the session folder in "
                          f"{str(s.out_dir)!r}: {_os_reason(err, out_dir)}") from None
        _atomic_write(folder / "config.yaml", config_to_yaml(self.cfg))
        _atomic_write(folder / OUTPUTS_JSON, json.dumps(  # read back by outputs_file.read_outputs
            outputs_description(self.model.output_labels, self.model.output_units), indent=1, allow_nan=False))
        return folder

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
        """``FAILED`` in the session folder: the reason the run failed, one line (0600)."""
        if self.folder is None or self.failed is None:
            return
        try:
            _atomic_write(self.folder / FAILED_FILE, " ".join(self.failed.split()) + "\n")
        except OSError as err:  # the folder went away / the disk is full: the error itself still reaches the caller
            log.error("could not write %s: %s", self.folder / FAILED_FILE, err)

    def _fail(self, reason: str) -> None:
        """The run failed: remember why (``failed``) and stop it (``stopped_by = "failed: ..."``)."""
        if self.failed is None:
            self.failed = " ".join(str(reason).split())
        if self.stopped_by is None:
            self.stopped_by = f"failed: {self.failed}"
        self.stop_event.set()

    def _collect_optional_stages(self) -> None:
        """Once per run: which stages implement the optional ``failure()`` and ``take_events()``
        (:mod:`rtsnn.protocols`), so the I/O thread calls them without probing each time."""
        tap = self.monitor.sink if self.monitor is not None else None
        stages = [("source", self.source), ("teacher", self.teacher), ("encoder", self.encoder),
                  ("backend", self.backend), ("learner", self.learner), ("reward", self.reward)]
        stages += [(f"sinks.{i}", sink) for i, sink in enumerate(self.sinks) if sink is not tap]
        stages = [(role, st) for role, st in stages if st is not None]
        self._may_fail = [(role, st) for role, st in stages if isinstance(st, MayFail)]
        self._event_stages = [(role, st) for role, st in stages if isinstance(st, TakesEvents)]

    def _check_failures(self) -> None:
        """I/O thread (and once after the run): the first stage that reports a failure ends the
        run; a stage marked optional reports none (e.g. ``MqttSink(optional=True)``)."""
        if self.failed is not None:
            return
        for role, stage in self._may_fail:
            why = stage.failure()
            if why:
                log.error("session %s: %s failed: %s", self.cfg.session.name, role, why)
                self._fail(f"{role}: {why}")
                return

    def _drain_stage_events(self) -> None:
        """I/O thread: events stages noted (``take_events``) go into the recording, counted."""
        for _role, stage in self._event_stages:
            for text, t_s in stage.take_events():
                self.stage_events += 1
                if self.recording is not None:
                    self.recording.event(str(text), float(t_s))

    # ------------------------------------------------------------------ run
    running = False  # True while the compute thread runs (read by status())
    dropped_in_warmup = 0  # samples the source dropped before timing started (stale start-up backlog)
    stopped_by: str | None = None  # why stop() was called; None: the run reached its end
    _t_start: float | None = None  # time.monotonic() when the threads started

    def run(self, *, on_start: Callable[[dict[str, Any]], None] | None = None,
            on_status: Callable[[dict[str, Any]], None] | None = None,
            status_interval_s: float = 5.0) -> dict[str, Any]:
        """Open everything, run until duration or stop(), close, return the summary.

        ``on_start(info)`` is called once every stage is open, before the first tick, with
        ``{"folder": str, "streams": self.lsl_streams()}``; ``on_status(status)`` every
        ``status_interval_s`` with :meth:`status` (its e2e p99 over the interval since the
        previous call). Both run on the calling thread, which otherwise only waits for the
        compute thread; an exception in either stops further calls, never the session.
        """
        self._collect_optional_stages()
        self.folder = self._make_folder()
        try:
            self._open()
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
            sys.setswitchinterval(2e-4)  # bound how long the I/O thread can hold the GIL
            io_thread = threading.Thread(target=self._io_thread_main, name="rtsnn-io", daemon=True)
            compute = threading.Thread(target=self._compute_main, name="rtsnn-compute", daemon=True)
            self._io_done = threading.Event()
            io_thread.start()
            self._t_start = time.monotonic()
            self.running = True
            compute.start()
            try:
                self._wait_reporting(compute, on_status, status_interval_s)
            except KeyboardInterrupt:
                self.stop("interrupt")
                compute.join()
            self._io_done.set()
            io_thread.join(10)
        finally:
            self.running = False
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
        _atomic_write(self.folder / "summary.json", json.dumps(self.summary, indent=1, allow_nan=False))
        self._mark_failed()  # a stage's failure ended it: FAILED beside the summary
        restrict_to_owner(self.folder)  # what stages wrote with their own modes (recording, histograms)
        return self.summary

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
        while compute.is_alive():
            compute.join(0.1)
            if on_status is None or time.monotonic() < next_t or not compute.is_alive():
                continue
            next_t += interval_s
            hist = self.stats.hist.copy()
            status = self.status(hist_since=prev_hist, hist_now=hist)
            # the first line, and one right after the warm-up reset: since timing started
            status["e2e_p99_over_s"] = interval_s if status["e2e_p99_since_snapshot"] else None
            prev_hist = hist
            try:
                on_status(status)
            except Exception:  # noqa: BLE001 - e.g. a closed terminal: stop reporting, keep running
                on_status = None

    # ------------------------------------------------------------------ live status
    def lsl_streams(self) -> list[dict[str, str]]:
        """Every LSL stream this session reads or publishes, from its stages' optional
        ``lsl_streams()`` (:mod:`rtsnn.protocols`), each with ``role``: ``source``,
        ``teacher``, ``reward``, ``sinks.<i>``, ``monitor`` or ``synthetic_user`` (the
        demo's simulated user, a child process whose outlets the source and teacher read)."""
        out: list[dict[str, str]] = []
        if self.cfg.synthetic_user is not None:
            from rtsnn.stream.synthetic import synthetic_streams

            out += [{**st, "role": "synthetic_user"} for st in synthetic_streams(self.synthetic_prefix)]
        tap = self.monitor.sink if self.monitor is not None else None
        stages = [("source", self.source), ("teacher", self.teacher), ("reward", self.reward)]
        stages += [(f"sinks.{i}", sink) for i, sink in enumerate(self.sinks) if sink is not tap]
        stages.append(("monitor", self.monitor))
        for role, stage in stages:
            describe = getattr(stage, "lsl_streams", None) if stage is not None else None
            if describe is not None:
                out += [{**st, "role": role} for st in describe()]
        return out

    def status(self, hist_since: np.ndarray | None = None, hist_now: np.ndarray | None = None) -> dict[str, Any]:
        """A snapshot, safe to take from any thread while the session runs: ``running``,
        ``ticks`` and ``deadline_misses`` (timed ticks, after warm-up), ``e2e_p99_us`` (so far,
        or since the histogram snapshot ``hist_since`` when ``e2e_p99_since_snapshot``; ``hist_now``:
        a copy of the histograms just taken, else one is taken here), ``r2`` (so far, None before
        the learner has calibrated), ``source`` health (samples, repaired values, dropped samples,
        ``connected`` / ``in_gap`` when the source reports them), ``folder``, ``error``."""
        c = self.counters
        hist = self.stats.hist.copy() if hist_now is None else hist_now
        since_snapshot = False
        if hist_since is not None:
            delta = hist - hist_since
            since_snapshot = not (delta < 0).any()  # negative: the warm-up reset cleared the counts since
            if since_snapshot:
                hist = delta
        e2e = self.stats.summary_us("e2e", hist=hist)
        try:
            src = self.source.stats()
        except Exception as err:  # noqa: BLE001 - a status report must not raise
            src = {"error": f"{type(err).__name__}: {err}"}
        health = {"samples": src.get("samples"), "repaired": src.get("repaired_values"),
                  # as the summary counts them: start-up backlog dropped in warm-up apart
                  "dropped": None if src.get("dropped_samples") is None
                  else int(src["dropped_samples"]) - self.dropped_in_warmup}
        for key in ("connected", "in_gap", "finished"):
            if key in src:
                health[key] = src[key]
        err = self.error or self.io_error
        t0 = self._t_start
        return {"running": self.running, "elapsed_s": 0.0 if t0 is None else round(time.monotonic() - t0, 3),
                "ticks": c["ticks"], "deadline_misses": c["deadline_misses"],
                "e2e_p99_us": e2e["p99"], "e2e_p99_since_snapshot": since_snapshot,
                "r2": r2_from_acc(self.r2_acc.copy()), "source": health,
                "folder": str(self.folder) if self.folder is not None else None,  # normalised when made
                "stopped_by": self.stopped_by, "failed": self.failed,
                "error": None if err is None else f"{type(err).__name__}: {err}"}

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

    # ------------------------------------------------------------------ compute thread
    def _compute_main(self) -> None:
        try:
            self._loop()
        except BaseException as err:  # surfaced by run()
            self.error = err
        finally:
            self.stop_event.set()

    def _loop(self) -> None:
        s = self.cfg.session
        self.realtime_applied = apply_realtime(s.realtime, s.rt_priority)
        clock = DeadlineClock(self.dt_s, spin_s=s.spin_us * 1e-6)
        n_total = int(round(s.duration_s / self.dt_s)) if s.duration_s else -1
        warmup = s.warmup_ticks
        budget_ns = int(s.budget_us * 1e3)
        dt_ns = clock.dt_ns
        perf = time.perf_counter_ns
        from pylsl import local_clock

        source, teacher, encoder, backend = self.source, self.teacher, self.encoder, self.backend
        learner, sinks = self.learner, self.sinks
        samples, timestamps, spikes_in, target = self.samples, self.timestamps, self.spikes_in, self.target
        hist, maxima, idx = self.stats.hist, self.stats.maxima, self.stats.index
        i_ing, i_enc, i_stp, i_rd, i_lrn, i_emt = (idx[n] for n in STAGES)
        i_cmp, i_tick, i_e2e, i_late = idx["compute"], idx["tick"], idx["e2e"], idx["lateness"]
        i_age = idx["input_age"]
        c = self.counters
        ring, row, r2_acc = self.out_ring, self.out_row, self.r2_acc
        n_out = self.model.n_out
        has_target = False
        observe_always = self._observe_always
        measuring = False
        k_measured = 0
        rec = self.recording
        rec_in = rec.inputs if rec is not None else None
        rec_t = rec.teacher if rec is not None else None
        pace_max = self._pace_max
        t_emit = 0.0
        if pace_max:
            warmup = 0
        # warm-up: each tick's work (ingest to emit), the last WARM_KEEP of them, checked against
        # the budget when timing starts
        warm_ns = np.zeros(WARM_KEEP, np.int64)
        k_warm = 0
        slot0 = 0  # clock.k when timing started: duration_s counts tick slots (wall time), run or skipped

        clock.start(delay_s=0.01, phase_ns=None if s.tick_phase_us is None else int(round(s.tick_phase_us * 1e3)))
        k = 0
        # warm-up ends after `warmup` ticks once the source has caught up with its start-up
        # backlog (samples queued before the first pull would otherwise count as latency),
        # or after max_catchup_s at the latest
        catchup_ticks = warmup + int(s.max_catchup_s / self.dt_s)
        n = 0
        while not self.stop_event.is_set():
            if pace_max and getattr(source, "finished", False):
                break
            if not measuring and (pace_max or k >= warmup) and (n == 0 or local_clock() - timestamps[n - 1] < CAUGHT_UP_S
                                                   or k >= catchup_ticks):
                # warm-up over: forget its timings, freeze what exists so gc never scans it
                self.stats.reset()
                for key in c:
                    c[key] = 0
                r2_acc[:] = 0.0
                # what the source dropped so far was start-up backlog (stale input queued while
                # the session compiled and caught up): reported apart from drops while live
                self.dropped_in_warmup = int(source.stats().get("dropped_samples", 0))
                self._check_warmup_cost(warm_ns[:min(k_warm, WARM_KEEP)], budget_ns, dt_ns)
                gc.collect()
                gc.freeze()
                measuring = True
                clock.skip_to_now()
                slot0 = clock.k
            # duration_s: live, wall time (the ticks run plus the slots skipped while behind);
            # pace max, ticks (the recording's time)
            if measuring and n_total >= 0 and (k_measured if pace_max else clock.k - slot0) >= n_total:
                break
            if pace_max:
                lateness = 0
                t_sched = perf()
            else:
                lateness = clock.wait()
                t_sched = clock.tick_start_ns()
            t0 = perf()
            # ingest
            n = source.pull(samples, timestamps)
            if teacher is not None:
                m = teacher.pull(self.t_samples, self.t_timestamps)
                if m > 0:
                    target[:] = self.t_samples[m - 1]
                    has_target = True
            if rec_in is not None:
                if pace_max:
                    self._wait_for_room(rec_in, n)
                rec_in.push_block(samples, timestamps, n)
                if rec_t is not None and m > 0:
                    if pace_max:
                        self._wait_for_room(rec_t, m)
                    rec_t.push_block(self.t_samples, self.t_timestamps, m)
            t1 = perf()
            encoder.encode(samples, n, spikes_in)
            t2 = perf()
            backend.step(spikes_in)
            t3 = perf()
            y = backend.readout()
            t4 = perf()
            learned = False
            if learner is not None:
                if has_target:
                    learner.observe(backend, target)
                    learned = True
                elif observe_always:
                    learner.observe(backend, None)
                    learned = True
                if pace_max:
                    if learner.wants_apply():
                        learner.prepare()
                        if getattr(learner, "ready", lambda: True)():
                            learner.apply(backend)
                            c["learn_applied"] += 1
                elif self._prepare_state == "ready":
                    if t4 - t_sched < budget_ns // 2:
                        learner.apply(backend)
                        self._prepare_state = "idle"
                        c["learn_applied"] += 1
                    else:
                        c["learn_deferred"] += 1
            t5 = perf()
            for sink in sinks:
                sink.emit(y, timestamps[n - 1] if n else 0.0)
            if pace_max:
                # offline: the tick's time on the recording's clock (its newest input, else one
                # dt after the previous tick), so recorded outputs line up with the inputs
                t_emit = timestamps[n - 1] if n else t_emit + self.dt_s
            else:
                t_emit = local_clock()
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
                    if not pace_max:
                        _record_e2e(hist, maxima, i_e2e, i_age, t_emit, float(t6 - t0), timestamps, n)
                    c["samples_in"] += n
                if t6 > t_sched + dt_ns and not pace_max:
                    c["deadline_misses"] += 1
                if getattr(source, "in_gap", False):
                    c["gap_ticks"] += 1
                if has_target:
                    calibrated = learner is None or getattr(learner, "calibrated", True)
                    if calibrated:
                        _accumulate_r2(r2_acc, y, target)
                        c["eval_ticks"] += 1
                if self.cfg.session.record_outputs:
                    row[0] = k
                    row[1] = timestamps[n - 1] if n else np.nan
                    row[2] = t_emit
                    row[3:3 + n_out] = y
                    row[3 + n_out:] = target
                    if pace_max:
                        while len(ring) >= ring.capacity and not self._io_done.is_set():
                            time.sleep(5e-4)  # offline: wait for the I/O thread, drop nothing
                    ring.push(row)
                c["ticks"] += 1
                k_measured += 1
            else:
                warm_ns[k_warm % WARM_KEEP] = t6 - t0
                k_warm += 1
            k += 1
            if pace_max:
                continue
            clock.advance()
            skipped = clock.skip_to_now() if (perf() - clock.tick_start_ns()) > s.max_lag_ticks * dt_ns else 0
            if skipped and measuring:
                c["skipped_ticks"] += skipped

    def _check_warmup_cost(self, tick_ns: np.ndarray, budget_ns: int, dt_ns: int) -> None:
        """Once, when timing starts: the median work per warm-up tick (ingest to emit) against
        ``session.budget_us`` and the tick; over either, one warning line (logged, and in the
        summary's ``warnings``). Nothing at pace max (no warm-up, no deadlines)."""
        if tick_ns.size == 0:
            return
        median_us = float(np.median(tick_ns)) / 1e3
        s = self.cfg.session
        self.warmup_tick_us = {"median": round(median_us, 1), "n": int(tick_ns.size), "budget_us": s.budget_us,
                               "dt_us": round(dt_ns / 1e3, 3)}
        if median_us * 1e3 <= budget_ns:
            return
        beyond = (f", longer than the tick itself (session.dt_s {s.dt_s:g} s): the loop will fall behind and "
                  f"skip ticks" if median_us * 1e3 > dt_ns else "")
        line = (f"session {s.name}: a tick takes {median_us:.0f} us (median of {tick_ns.size} warm-up ticks, "
                f"ingest to emit), over session.budget_us {s.budget_us:g} us{beyond}; use a smaller model, "
                f"a longer dt_s or a larger budget_us")
        self.warnings.append(line)
        log.warning("%s", line)

    def _wait_for_room(self, ring: Any, n: int) -> None:
        """'max' pace: wait until the I/O thread has drained enough of ``ring`` (a BlockRing)
        for ``n`` samples, rather than dropping them (a block larger than the ring still drops)."""
        while (n <= ring.capacity and ring.capacity - (ring.head - ring.tail) < n
               and not self._io_done.is_set()):
            time.sleep(5e-4)

    # ------------------------------------------------------------------ I/O thread
    def _io_thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._io_main())
        except BaseException as err:  # the session stops and run() raises it: outputs must not vanish
            self.io_error = err
            self.stop_event.set()
        finally:
            loop.close()

    async def _io_main(self) -> None:
        assert self.folder is not None
        interval = self.cfg.session.metrics_interval_s
        metrics_path = self.folder / "metrics.jsonl"
        outputs_path = self.folder / "outputs.f64"
        loop = asyncio.get_running_loop()
        prev_hist = self.stats.hist.copy()
        t_start = time.monotonic()
        mon_task = asyncio.create_task(self.monitor.run(self)) if self.monitor is not None else None
        with open(metrics_path, "a", buffering=1, opener=_owner_only) as mf, \
                open(outputs_path, "ab", opener=_owner_only) as of:
            next_t = time.monotonic() + interval
            # at least one pass, ending with the final drain: a short run may be over before this
            # thread gets here, and its rows must still reach outputs.f64
            while True:
                await asyncio.sleep(min(0.05, max(0.0, next_t - time.monotonic())))
                # at pace max the compute thread runs prepare / apply inline: a second prepare
                # here would race it (e.g. a ridge solve read half-installed state)
                if (self.learner is not None and not self._pace_max and not self._io_done.is_set()
                        and self._prepare_state == "idle" and self.learner.wants_apply()):
                    self._prepare_state = "running"
                    await loop.run_in_executor(None, self.learner.prepare)
                    self._prepare_state = "ready" if getattr(self.learner, "ready", lambda: True)() else "idle"
                rows = self.out_ring.drain()
                if len(rows):
                    rows.astype("<f8").tofile(of)
                self._record_rows(rows)
                self._dispatch_control()
                self._drain_stage_events()
                self._check_failures()
                if time.monotonic() >= next_t or self._io_done.is_set():
                    next_t += interval
                    hist = self.stats.hist.copy()
                    line = self._interval_metrics(hist - prev_hist, time.monotonic() - t_start)
                    prev_hist = hist
                    mf.write(json.dumps(json_safe(line), allow_nan=False) + "\n")
                if self._io_done.is_set():
                    rows = self.out_ring.drain()
                    if len(rows):
                        rows.astype("<f8").tofile(of)
                    self._record_rows(rows)
                    self._drain_stage_events()  # before run() closes the recording
                    break
        if mon_task is not None:
            mon_task.cancel()

    def _record_rows(self, rows: np.ndarray) -> None:
        rec = self.recording
        if rec is not None:
            rec.drain()
            rec.outputs_rows(rows)

    def _dispatch_control(self) -> None:
        """I/O thread: hand control messages (pause / resume learning, learning rate) that any
        input received (the local control socket, an MQTT control topic) to the learner;
        counted either way, and answered (applied, or refused with the reason) on channels
        that have a reply path (``reply(msg, ok, reason)``: the control socket)."""
        from rtsnn.control_messages import apply_control

        for obj in (self.source, self.teacher, self.reward, self.control):
            poll = getattr(obj, "poll_control", None)
            if poll is None:
                continue
            reply = getattr(obj, "reply", None)
            for msg in poll():
                why = ""
                if self.learner is None:
                    ok, why = False, "the session has no learner (its config has no learner section)"
                else:
                    try:
                        ok = apply_control(msg, self.learner)
                    except (ValueError, TypeError) as err:  # refused by the learner: counted, never fatal
                        ok, why = False, str(err)[:200]
                    if not ok and not why:
                        kind = self.cfg.learner.kind if self.cfg.learner is not None else type(self.learner).__name__
                        why = f"the learner ({kind}) does not take {msg.command}"
                if not ok:
                    self.last_control_error = why
                self.counters["control_applied" if ok else "control_ignored"] += 1
                if reply is not None and msg.reply_to is not None:
                    reply(msg, ok, why)  # non-blocking; a client gone is counted by the channel
                if self.recording is not None:
                    text = msg.command + ("" if msg.value is None else f" {msg.value}") + \
                        ("" if ok else f" (ignored: {why})")
                    self.recording.event(text, msg.t_s)

    def _interval_metrics(self, hist_delta: np.ndarray, elapsed_s: float) -> dict[str, Any]:
        out: dict[str, Any] = {"t_s": round(elapsed_s, 3), **dict(self.counters)}
        for name in ("compute", "e2e", "tick"):
            out[f"{name}_us"] = self.stats.summary_us(name, hist=hist_delta)
        out["source"] = self.source.stats()
        if self.learner is not None:
            out["learner"] = self.learner.stats()
        return out

    # ------------------------------------------------------------------ summary
    def _summary(self) -> dict[str, Any]:
        c = self.counters
        ticks = max(c["ticks"], 1)
        stage = {n: self.stats.summary_us(n) for n in STAGES + ("compute", "tick", "lateness")}
        e2e = self.stats.summary_us("e2e")
        age = self.stats.summary_us("input_age")
        src = self.source.stats()
        dropped = int(src.get("dropped_samples", 0)) - self.dropped_in_warmup + int(self.out_ring.dropped)
        out = {
            "session": self.cfg.session.name,
            "folder": str(self.folder),
            "ticks": c["ticks"],
            "dt_s": self.dt_s,
            "e2e_latency_us": {k: e2e[k] for k in ("p50", "p99", "p999", "max", "n")},
            # e2e = input age (before the session had the sample) + the tick (inside it)
            "input_age_us": {k: age[k] for k in ("p50", "p99", "p999", "max", "n")},
            # samples that reached the session more than one tick after their timestamp: late
            # delivery a percentile hides (p99 jumps by a whole tick once 1 % of them are late)
            "input_age_over_one_tick": self.stats.fraction_above("input_age", self.dt_s * 1e9),
            "stage_latency_us": stage,
            "deadline_misses": c["deadline_misses"],
            "deadline_miss_rate": c["deadline_misses"] / ticks,
            "skipped_ticks": c["skipped_ticks"],
            "dropped_samples": dropped,
            "dropped_in_warmup": self.dropped_in_warmup,
            "repaired_samples": int(src.get("repaired_values", 0)),
            "gap_ticks": c["gap_ticks"],
            "samples_in": c["samples_in"],
            "learn_applied": c["learn_applied"],
            "learn_deferred": c["learn_deferred"],
            "eval_ticks": c["eval_ticks"],
            "r2": r2_from_acc(self.r2_acc),
            "source": src,
            "outputs_dropped": int(self.out_ring.dropped),
            "realtime": getattr(self, "realtime_applied", "none"),
            "stopped_by": self.stopped_by,  # None: ran to its duration or the source's end
            "failed": self.failed,  # None, or why the run failed (also in the folder's FAILED file)
            "warmup_tick_us": self.warmup_tick_us,  # median tick work in warm-up vs budget_us / dt_s
            "warnings": list(self.warnings),
            "stage_events": self.stage_events,  # e.g. impostor streams an LSL source refused
            "model_graph": model_graph_summary(self.model),  # the nodes that ran, in evaluation order
        }
        if self.teacher is not None:
            out["teacher"] = self.teacher.stats()
        if self.learner is not None:
            out["learner"] = self.learner.stats()
        tap = self.monitor.sink if self.monitor is not None else None
        out["sinks"] = [s.stats() for s in self.sinks if s is not tap]
        if self.monitor is not None:
            out["monitor"] = dict(self.monitor.counters)
        out["pace"] = self.cfg.session.pace
        out["control"] = {"applied": self.counters["control_applied"], "ignored": self.counters["control_ignored"],
                          "last_refusal": getattr(self, "last_control_error", ""),
                          **(self.control.stats() if self.control is not None
                             else {"socket": getattr(self, "control_error", "unsupported")})}
        if self.recording is not None:
            out["recording"] = self.recording.stats()
        return out
