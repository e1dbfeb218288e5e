"""Building a session's stages from its config, and checking that they fit together.

:func:`build_stages` makes every stage the config names (source, teacher, encoder, the model and
its backend, learner, reward source, sinks, the monitor), each through
:func:`rtsnn.plugins.build` with the session's :class:`rtsnn.protocols.StageContext`, and
refuses a combination that cannot work (:func:`stage_mismatches`) before anything is opened.
It also reads, once, which optional parts of their contracts the stages implement
(:class:`OptionalParts`, the protocols of :mod:`rtsnn.protocols`): the loop and the I/O thread
call those parts without asking again.

``rtsnn config check`` (:mod:`rtsnn.config_check`) uses the same checks on whatever it managed
to build.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from rtsnn import plugins
from rtsnn.config import ConfigError, SessionConfig, session_name_problem
from rtsnn.protocols import (ChecksModel, ControlInput, ExposesSpikes, Finite, KeepsTick, ListsStreams, MayFail,
                             Opens, RepliesToControl, StageContext, TakesEvents, TakesRewards, TargetOptional)


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



def _substitute(options: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Replace the placeholder ``{synthetic}`` in string options by the synthetic user's prefix."""
    return {k: (v.replace("{synthetic}", prefix) if isinstance(v, str) else v) for k, v in options.items()}



def _with_session_dt(group: str, kind: str, options: dict[str, Any], dt_s: float) -> dict[str, Any]:
    """``options`` plus ``dt_s`` = the session's tick when the plugin's constructor takes a
    ``dt_s`` argument and the config leaves it out (an explicit, different value is refused by
    the session): what :func:`rtsnn.plugins.build` adds given a :class:`StageContext` at
    ``dt_s``, for callers that build stages without one (``rtsnn config check``)."""
    if "dt_s" in options:
        return options
    try:
        cls = plugins.load(group, kind)
    except ConfigError:  # unknown kind: plugins.build reports it
        return options
    extra = plugins.session_arguments(cls, options, StageContext(dt_s=dt_s))
    return {**options, "dt_s": extra["dt_s"]} if "dt_s" in extra else options


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
    if source is not None and s.pace == "max" and s.duration_s is None and not isinstance(source, Finite):
        out.append(f"{origin}: session.pace: pace 'max' needs a source that ends (one with a `finished` flag, e.g. "
                   f"xdf_file or dvs_file) or session.duration_s; source {cfg.source.kind!r} has none")
    # stages that keep their own tick length (given dt_s = session.dt_s when the config is
    # silent) must agree with the session's, or rates and file windows are off by the ratio
    for section, stage in (("source", source), ("teacher", teacher), ("encoder", encoder)):
        stage_dt = stage.dt_s if stage is not None and isinstance(stage, KeepsTick) else None
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
    """The tick a model was made for: its ``dt_s`` (a GraphModel's and a Model's); None if it has none."""
    dt = getattr(model, "dt_s", None)
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
    states (:class:`rtsnn.protocols.ChecksModel`) that it cannot train this model; [] when it
    can or states nothing."""
    if learner is None or model is None or not isinstance(learner, ChecksModel):
        return []
    problem = learner.model_problem(model)
    if not problem:
        return []
    kind = cfg.learner.kind if cfg.learner is not None else type(learner).__name__
    return [f"{origin}: learner.kind: learner {kind}: " + " ".join(str(problem).split())]


def load_session_model(cfg: SessionConfig, n_in: int, origin: str = "<config>") -> Any:
    """The decoder ``cfg.model`` names: ``model.path`` read as a NIR graph (``.nir``, its rtsnn
    metadata giving convention and dt; a :class:`~rtsnn.snn.params.Model` for the single-layer
    pattern, else a :class:`~rtsnn.snn.graph.GraphModel`) or an rtsnn model file (a
    :class:`~rtsnn.snn.params.Model` for today's single layer, else a
    :class:`~rtsnn.snn.graph.GraphModel`: any graph the backend runs), else a random reservoir
    with ``n_in`` inputs (the encoder's spike channels) at ``session.dt_s``."""
    from rtsnn.snn import Model, layer_from_config, load_model  # local: keep import light

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
    hidden, trace = layer_from_config(r.neuron, r.n_rec)
    kw: dict[str, Any] = {"spectral_radius": r.spectral_radius}
    if r.input_gain is not None:
        kw["input_gain"] = r.input_gain
    model = Model.random(n_in, r.n_rec, r.n_out, hidden, trace, dt_s=cfg.session.dt_s, seed=r.seed, **kw)
    if r.output_labels:
        model.output_labels = list(r.output_labels)
    if r.output_units:
        model.output_units = list(r.output_units)
    return model


@dataclass
class OptionalParts:
    """Which stages implement which optional part of their contract (:mod:`rtsnn.protocols`),
    read once, as (role, stage) pairs, so that nobody probes a stage per call. The parts a loop
    reads per tick (``finished``, ``in_gap``, ``calibrated``: attributes a stage may only set
    when it opens) are looked up once more when the loop starts (:mod:`rtsnn.runtime.loop`)."""

    may_fail: list[tuple[str, Any]] = field(default_factory=list)  # MayFail: failure()
    takes_events: list[tuple[str, Any]] = field(default_factory=list)  # TakesEvents: take_events()
    lists_streams: list[tuple[str, Any]] = field(default_factory=list)  # ListsStreams: lsl_streams()
    control_inputs: list[tuple[Any, Any]] = field(default_factory=list)  # (ControlInput, its reply or None)
    opens_reward: bool = False  # the reward source has open() (Opens)
    observe_always: bool = False  # a learner with needs_target False (TargetOptional)


@dataclass
class Stages:
    """Every stage of a session, built and checked (:func:`build_stages`). ``sinks`` are the
    config's, without the monitor's tap (the session appends it)."""

    context: StageContext
    source: Any
    teacher: Any
    encoder: Any
    model: Any
    backend: Any
    learner: Any
    reward: Any
    sinks: list[Any]
    monitor: Any
    parts: OptionalParts


def stage_context(cfg: SessionConfig) -> StageContext:
    """The :class:`StageContext` a session hands its stages."""
    from pylsl import local_clock

    s = cfg.session
    return StageContext(dt_s=s.dt_s, session_name=s.name, pace=s.pace, clock=local_clock,
                        max_samples_per_tick=s.max_samples_per_tick)


def synthetic_prefix(cfg: SessionConfig) -> str:
    """The prefix of the synthetic user's streams (``{synthetic}`` in options), '' without one."""
    su = cfg.synthetic_user
    return (f"{su.prefix}-{os.getpid()}" if su.unique_prefix else su.prefix) if su else ""


def build_stages(cfg: SessionConfig, origin: str, prefix: str) -> Stages:
    """Build every stage ``cfg`` names (nothing is opened), refusing with one ConfigError (a
    line per problem) stages that do not fit together; ``prefix``: :func:`synthetic_prefix`."""
    s = cfg.session
    ctx = stage_context(cfg)
    source = plugins.build("rtsnn.sources", cfg.source.kind, _substitute(cfg.source.options, prefix), "source",
                           origin, context=ctx)
    teacher = (plugins.build("rtsnn.sources", cfg.teacher.kind, _substitute(cfg.teacher.options, prefix),
                             "teacher", origin, context=ctx)
               if cfg.teacher else None)
    encoder = plugins.build("rtsnn.encoders", cfg.encoder.kind, cfg.encoder.options, "encoder", origin, context=ctx)
    problems = stage_mismatches(cfg, origin, source=source, teacher=teacher, encoder=encoder)
    if problems:
        raise ConfigError("\n".join(problems))
    model = load_session_model(cfg, encoder.n_out, origin)
    problems = stage_mismatches(cfg, origin, teacher=teacher, encoder=encoder, model=model)
    if problems:
        raise ConfigError("\n".join(problems))
    backend = plugins.build("rtsnn.backends", cfg.backend.kind, cfg.backend.options, "backend", origin,
                            context=ctx, model=model)
    learner = (plugins.build("rtsnn.learners", cfg.learner.kind, cfg.learner.options, "learner", origin,
                             context=ctx)
               if cfg.learner else None)
    problems = learner_mismatches(cfg, origin, learner, model)  # what it needs, said before any I/O
    if problems:
        raise ConfigError("\n".join(problems))
    reward = None
    if cfg.reward is not None:
        if learner is None or not isinstance(learner, TakesRewards):
            raise ConfigError(f"{origin}: reward: the learner "
                              f"{cfg.learner.kind if cfg.learner else '(none)'} does not take rewards; "
                              f"use a reward-driven learner such as actor_critic")
        reward = plugins.build("rtsnn.rewards", cfg.reward.kind, _substitute(cfg.reward.options, prefix), "reward",
                               origin, context=ctx)
        learner.set_reward_source(reward)
    sinks = [plugins.build("rtsnn.sinks", sp.kind, _substitute(sp.options, prefix), f"sinks.{i}", origin,
                           context=ctx)
             for i, sp in enumerate(cfg.sinks)]
    monitor = None
    if s.monitor:
        from rtsnn.runtime.monitor import SessionMonitor  # numpy + pylsl only, no Qt

        n_spk = int(backend.spikes().shape[0]) if isinstance(backend, ExposesSpikes) else int(backend.n_rec)
        monitor = SessionMonitor(s.name, n_spk, model.n_out, s.dt_s, output_labels=list(model.output_labels) or None)
    parts = optional_parts(source=source, teacher=teacher, encoder=encoder, backend=backend, learner=learner,
                           reward=reward, sinks=sinks, monitor=monitor)
    return Stages(ctx, source, teacher, encoder, model, backend, learner, reward, sinks, monitor, parts)


def optional_parts(*, source: Any, teacher: Any, encoder: Any, backend: Any, learner: Any, reward: Any,
                   sinks: list[Any], monitor: Any) -> OptionalParts:
    """Which of these stages implement which optional part (``sinks`` without the monitor's tap)."""
    roles = [("source", source), ("teacher", teacher), ("encoder", encoder), ("backend", backend),
             ("learner", learner), ("reward", reward)]
    roles += [(f"sinks.{i}", sink) for i, sink in enumerate(sinks)]
    roles = [(role, st) for role, st in roles if st is not None]
    listed = [("source", source), ("teacher", teacher), ("reward", reward)]
    listed += [(f"sinks.{i}", sink) for i, sink in enumerate(sinks)] + [("monitor", monitor)]
    return OptionalParts(
        may_fail=[(role, st) for role, st in roles if isinstance(st, MayFail)],
        takes_events=[(role, st) for role, st in roles if isinstance(st, TakesEvents)],
        lists_streams=[(role, st) for role, st in listed if st is not None and isinstance(st, ListsStreams)],
        control_inputs=[(st, st.reply if isinstance(st, RepliesToControl) else None)
                        for st in (source, teacher, reward) if st is not None and isinstance(st, ControlInput)],
        opens_reward=reward is not None and isinstance(reward, Opens),
        observe_always=learner is not None and isinstance(learner, TargetOptional) and not learner.needs_target)
