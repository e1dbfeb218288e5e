"""``rtsnn config check FILE``: everything about a config that can be known without running it.

A YAML file is either a **session config** (``session:``, ``source:``, ``encoder:`` ...; run by
``rtsnn run``) or a **pretraining config** (``data:``, ``train:`` ...; run by ``rtsnn
pretrain``); the check says which it found. For a session config it

- validates the schema (:func:`rtsnn.config.parse_config`);
- constructs every plugin stage from its options as the session does (source, teacher,
  encoder, backend, learner, reward, sinks; the session's ``dt_s`` handed to stages that take
  one) — construction only, nothing is opened: no stream is resolved, no broker contacted, no
  process started;
- checks that input files exist (``model.path``; the ``path`` option of sources and teachers,
  e.g. an ``xdf_file`` recording), relative paths taken from the current directory as ``rtsnn
  run`` reads them, and builds the model (random, ``.npz`` or NIR ``.nir``);
- runs the session's own agreement checks between the built stages
  (:func:`rtsnn.runtime.session.stage_mismatches`: channel counts of source, encoder, model and
  teacher; tick lengths; a model file's input contract against the source's channel count, the
  encoder section and ``session.dt_s``, naming both values; placeholders ``<FILL IN ...>`` a
  session config written by ``rtsnn pretrain`` leaves for the user).

For a pretraining config it validates the schema and checks that the data file exists,
relative to the config's folder as ``rtsnn pretrain`` reads it.

Every problem found is reported, one ``FILE: KEY: message`` line each, so one run shows them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

SESSION = "session config"
PRETRAIN = "pretraining config"

# top-level keys only one kind of config has ("model" and "encoder" are in both)
SESSION_KEYS = frozenset({"session", "synthetic_user", "source", "teacher", "backend", "learner",
                          "reward", "sinks"})
PRETRAIN_KEYS = frozenset({"data", "train", "baseline", "output"})


@dataclass
class CheckResult:
    """What :func:`check_config_file` found: the config's kind (None when it could not be told)
    and every problem, one ``FILE: KEY: message`` line each (empty: the config is ok)."""

    origin: str
    kind: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _missing_file(path: str, base_dir: Path | None, how: str) -> str | None:
    """None when ``path`` (relative ones resolved against ``base_dir``, else the current
    directory) is an existing file; otherwise why not, saying where a relative path was looked for."""
    p = Path(path)
    full = p if p.is_absolute() else (base_dir or Path.cwd()) / p
    if full.is_file():
        return None
    what = "is a folder, not a file" if full.is_dir() else "no such file"
    where = "" if p.is_absolute() else f" (relative to {how}: {os.path.normpath(full)})"
    return f"{what} {path!r}{where}"


def detect_kind(data: Any) -> str | None:
    """SESSION, PRETRAIN, or None when the top-level keys do not say (or say both)."""
    if not isinstance(data, dict):
        return None
    keys = set(data)
    is_session, is_pretrain = bool(keys & SESSION_KEYS), bool(keys & PRETRAIN_KEYS)
    if is_session == is_pretrain:
        return None
    return SESSION if is_session else PRETRAIN


def check_config_file(path: str | os.PathLike[str]) -> CheckResult:
    """Read ``path`` and check it as the kind of config it is (see the module docstring)."""
    # printed normalised (no a/./b, x/../y); a path that does not exist is printed as given,
    # since folding x/.. would name a file that may exist when x does not
    origin = os.path.normpath(path) if os.path.exists(path) else str(path)
    res = CheckResult(origin)
    p = Path(path)
    if not p.is_file():
        res.errors.append(f"{origin}: (file): {'is a folder, not a config file' if p.is_dir() else 'no such config file'}")
        return res
    from rtsnn.yaml_safe import YamlLimitError, load_yaml_file

    try:
        data = load_yaml_file(p)  # refuses alias bombs and oversized files before expanding them
    except YamlLimitError as err:
        res.errors.append(f"{origin}: (file): {_one_line(str(err).split(': ', 1)[-1])}")
        return res
    res.kind = detect_kind(data)
    if res.kind == SESSION:
        res.errors = check_session_data(data, origin)
    elif res.kind == PRETRAIN:
        res.errors = check_pretrain_data(data, origin, base_dir=p.resolve().parent)
    elif not isinstance(data, dict):
        res.errors.append(f"{origin}: (top level): expected a mapping of sections, got "
                          f"{'an empty file' if data is None else type(data).__name__}")
    else:
        keys = set(data)
        if keys & SESSION_KEYS and keys & PRETRAIN_KEYS:
            why = (f"mixes session sections ({', '.join(sorted(keys & SESSION_KEYS))}) with pretraining "
                   f"sections ({', '.join(sorted(keys & PRETRAIN_KEYS))})")
        else:
            why = f"has neither (top-level keys: {', '.join(map(str, data)) or 'none'})"
        res.errors.append(f"{origin}: (top level): not a session config (session:, source:, encoder: ...) nor a "
                          f"pretraining config (data:, train: ...): it {why}")
    return res


# ------------------------------------------------------------------ session configs
def _section(model: type[BaseModel], value: Any) -> Any:
    """``value`` validated as ``model``, or None when it is invalid (the full parse reports why)."""
    try:
        return model.model_validate(value)
    except ValidationError:
        return None


def _build_stage(group: str, spec: Any, key: str, origin: str, errors: list[str], *, dt_s: float | None,
                 prefix: str, **extra: Any) -> Any:
    """Construct one plugin stage as the session does (never ``open()`` it); None after
    appending the reason to ``errors`` when it cannot be built."""
    from rtsnn import plugins
    from rtsnn.config import ConfigError
    from rtsnn.protocols import StageContext
    from rtsnn.runtime.session import _substitute

    try:
        plugins.load(group, spec.kind)
    except ConfigError as err:
        errors.append(f"{origin}: {key}.kind: {_one_line(err)}")
        return None
    options = _substitute(spec.options, prefix)
    # the stage gets what a session would give it (its StageContext: dt_s for stages that take a tick)
    context = StageContext(dt_s=dt_s) if dt_s is not None else None
    try:
        return plugins.build(group, spec.kind, options, key, origin, context=context, **extra)
    except ConfigError as err:
        errors.append(_one_line(err))
    except ImportError as err:  # MissingExtraError: the message names the extra to install
        errors.append(f"{origin}: {key}: {_one_line(err)}")
    except Exception as err:  # noqa: BLE001 - a plugin's own failure is a finding, not a crash of the check
        errors.append(f"{origin}: {key}.options: {spec.kind} could not be built: {type(err).__name__}: "
                      f"{_one_line(err)}")
    return None


def check_session_data(data: dict[str, Any], origin: str) -> list[str]:
    """Every problem of a session config's contents (see the module docstring)."""
    from rtsnn import plugins
    from rtsnn.config import (ConfigError, ModelConfig, PluginSpec, SessionConfig, SessionSettings,
                              SyntheticUserConfig, parse_config)
    from rtsnn.runtime.session import _substitute, load_session_model, stage_mismatches

    errors: list[str] = []
    try:
        cfg = parse_config(data, origin)
    except ConfigError as err:
        errors += str(err).splitlines()
        cfg = None
    # the sections that are valid on their own are still built, so one run reports everything
    session = cfg.session if cfg else _section(SessionSettings, data.get("session") or {})
    su = cfg.synthetic_user if cfg else (_section(SyntheticUserConfig, data["synthetic_user"])
                                         if data.get("synthetic_user") is not None else None)
    prefix = su.prefix if su else ""
    dt_s = session.dt_s if session else None  # unknown: stages keep their own default, no dt checks

    def spec(key: str) -> Any:
        if cfg:
            return getattr(cfg, key)
        return _section(PluginSpec, data[key]) if data.get(key) is not None else None

    def build(group: str, key: str, sp: Any, **extra: Any) -> Any:
        return None if sp is None else _build_stage(group, sp, key, origin, errors, dt_s=dt_s, prefix=prefix,
                                                    **extra)

    source_spec, teacher_spec = spec("source"), spec("teacher")
    source = build("rtsnn.sources", "source", source_spec)
    teacher = build("rtsnn.sources", "teacher", teacher_spec)
    encoder = build("rtsnn.encoders", "encoder", spec("encoder"))
    # recordings and other files a source reads (xdf_file, dvs_file: options.path)
    for key, sp in (("source", source_spec), ("teacher", teacher_spec)):
        path = _substitute(sp.options, prefix).get("path") if sp is not None else None
        if isinstance(path, str):
            why = _missing_file(path, None, "the current directory")
            if why:
                errors.append(f"{origin}: {key}.options.path: {why}")

    model_cfg = cfg.model if cfg else _section(ModelConfig, data.get("model") or {})
    model = None
    if model_cfg is not None:
        why = _missing_file(model_cfg.path, None, "the current directory") if model_cfg.path else None
        if why:
            errors.append(f"{origin}: model.path: {why}")
        elif model_cfg.path or (encoder is not None and session is not None):
            # a model file does not depend on the session; a random one takes its dt_s
            view = SessionConfig.model_construct(session=session or SessionSettings(), model=model_cfg)
            try:
                model = load_session_model(view, encoder.n_out if encoder is not None else 0, origin)
            except ConfigError as err:
                errors.append(_one_line(err))
            except Exception as err:  # noqa: BLE001 - unreadable model file: report, do not crash
                errors.append(f"{origin}: model.path: {_one_line(err)}" if model_cfg.path
                              else f"{origin}: model.random: {type(err).__name__}: {_one_line(err)}")

    backend_spec = cfg.backend if cfg else (spec("backend") if "backend" in data else PluginSpec(kind="numba_cpu"))
    if backend_spec is not None:
        if model is not None:
            build("rtsnn.backends", "backend", backend_spec, model=model)
        else:  # no model to build it with: its options are still checked against its signature
            try:
                cls = plugins.load("rtsnn.backends", backend_spec.kind)
                plugins.check_options(cls, {**backend_spec.options, "model": None}, "backend", origin)
            except ConfigError as err:
                msg = _one_line(err)
                errors.append(msg if msg.startswith(f"{origin}: ") else f"{origin}: backend.kind: {msg}")
    learner_spec = spec("learner")
    learner = build("rtsnn.learners", "learner", learner_spec)
    reward_spec = spec("reward")
    if reward_spec is not None:
        build("rtsnn.rewards", "reward", reward_spec)
        if learner_spec is None or (learner is not None and not hasattr(learner, "set_reward_source")):
            errors.append(f"{origin}: reward: the learner {learner_spec.kind if learner_spec else '(none)'} does "
                          f"not take rewards; use a reward-driven learner such as actor_critic")
    raw_sinks = data.get("sinks")
    sinks = cfg.sinks if cfg else ([_section(PluginSpec, s) for s in raw_sinks] if isinstance(raw_sinks, list) else [])
    for i, sp in enumerate(sinks):
        build("rtsnn.sinks", f"sinks.{i}", sp)

    # the session's own agreement checks; with an invalid session section the tick length is
    # unknown (dt_s None) and only the channel counts are compared
    known = session or SessionSettings.model_construct(**{**SessionSettings().model_dump(), "dt_s": None})
    # the specs ride along: a model's input contract is compared with the encoder section, and
    # values rtsnn pretrain leaves to fill are looked for in the source / teacher options
    view = SessionConfig.model_construct(session=known, source=source_spec, teacher=teacher_spec,
                                         encoder=spec("encoder"), model=model_cfg, learner=learner_spec)
    errors += stage_mismatches(view, origin, source=source, teacher=teacher, encoder=encoder, model=model,
                               learner=learner)
    return errors


# ------------------------------------------------------------------ pretraining configs
def check_pretrain_data(data: dict[str, Any], origin: str, base_dir: Path) -> list[str]:
    """Every problem of a pretraining config's contents: the schema, and the data file (relative
    to the config's folder ``base_dir``, as ``rtsnn pretrain`` reads it)."""
    from rtsnn.learn.offline.pretrain import parse_pretrain_config

    errors: list[str] = []
    try:
        parse_pretrain_config(data, origin)
    except ValueError as err:
        errors += str(err).splitlines()
    d = data.get("data")
    if isinstance(d, dict) and d.get("kind") in ("chewie", "recording") and isinstance(d.get("path"), str) and d["path"]:
        why = _missing_file(d["path"], base_dir, "the config's folder")
        if why:
            errors.append(f"{origin}: data.path: {why}")
    return errors
