"""Plugin registry on Python entry points.

Built-ins and third-party packages register the same way, under the groups in
:data:`rtsnn.protocols.GROUPS`, e.g. in a plugin's ``pyproject.toml``::

    [project.entry-points."rtsnn.sources"]
    my_sensor = "my_pkg.source:MySensorSource"

A config then chooses it by name (``source: {kind: my_sensor, options: {...}}``); options
are checked against the class's constructor before it is called.

The session's :class:`rtsnn.protocols.StageContext` reaches a class that declares it: a
constructor parameter ``context`` receives it, and a parameter ``dt_s`` (the older way)
receives ``context.dt_s`` when the options leave it out (:func:`session_arguments`). Both
are read from the constructor's signature, at build, as the option check reads it.
"""

from __future__ import annotations

import inspect
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from rtsnn.config import ConfigError
from rtsnn.protocols import GROUPS, StageContext


def available(group: str) -> dict[str, EntryPoint]:
    if group not in GROUPS:
        raise ValueError(f"unknown plugin group {group!r}; expected one of {', '.join(GROUPS)}")
    return {ep.name: ep for ep in entry_points(group=group)}


def load(group: str, name: str) -> type:
    eps = available(group)
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none (is rtsnn installed? pip install -e .)"
        raise ConfigError(f"no {group} plugin named {name!r}; installed: {known}")
    try:
        return eps[name].load()
    except Exception as err:  # a broken third-party plugin must not look like our bug
        raise ConfigError(f"{group} plugin {name!r} ({eps[name].value}) failed to load: {err}") from err


def check_options(cls: type, options: dict[str, Any], key: str, origin: str = "<config>") -> None:
    """Refuse unknown or missing constructor arguments with the config key in the message."""
    sig = inspect.signature(cls)
    params = sig.parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not accepts_any:
        unknown = sorted(set(options) - set(params))
        if unknown:
            expected = ", ".join(n for n in params if n not in ("self",))
            raise ConfigError(
                f"{origin}: {key}.options: unknown option(s) {', '.join(unknown)} for "
                f"{cls.__name__}; expected some of: {expected}"
            )
    missing = [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and n not in options
    ]
    if missing:
        raise ConfigError(f"{origin}: {key}.options: missing required option(s) {', '.join(missing)}")


def _parameters(cls: type) -> Any:
    try:
        return inspect.signature(cls).parameters
    except (ValueError, TypeError):  # a builtin or C class without a signature: nothing declared
        return {}


def session_arguments(cls: type, options: dict[str, Any], context: StageContext | None) -> dict[str, Any]:
    """What a session adds to ``options`` for a plugin class, by what its constructor declares:
    ``context`` (the :class:`~rtsnn.protocols.StageContext`) for a parameter named ``context``,
    ``dt_s`` (``context.dt_s``) for a parameter named ``dt_s`` that ``options`` leave out
    (a value given there is kept, and compared with the session's by the session). Nothing
    when ``context`` is None."""
    if context is None:
        return {}
    params = _parameters(cls)
    out: dict[str, Any] = {}
    if "context" in params:
        out["context"] = context
    if "dt_s" in params and "dt_s" not in options:
        out["dt_s"] = context.dt_s
    return out


def build(group: str, name: str, options: dict[str, Any], key: str, origin: str = "<config>", *,
          context: StageContext | None = None, **extra: Any) -> Any:
    """Load plugin ``name`` from ``group`` and construct it from config ``options`` (plus
    ``extra`` arguments the session supplies, such as the model for a backend, and what the
    class declares it takes of ``context``: :func:`session_arguments`)."""
    try:
        cls = load(group, name)
    except ConfigError as err:
        raise ConfigError(f"{origin}: {key}.kind: {err}") from None
    if "context" in options:
        raise ConfigError(f"{origin}: {key}.options: context: set by the session (its StageContext), "
                          f"not by a config option")
    extra = {**session_arguments(cls, options, context), **extra}
    check_options(cls, {**options, **extra}, key, origin)
    try:
        return cls(**options, **extra)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{origin}: {key}.options: {err}") from err


def describe_all() -> dict[str, list[dict[str, str]]]:
    """Every installed plugin: {group: [{name, target, distribution}]}."""
    out: dict[str, list[dict[str, str]]] = {}
    for group in GROUPS:
        rows = []
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            rows.append({"name": ep.name, "target": ep.value,
                         "distribution": f"{dist.name} {dist.version}" if dist else "?"})
        out[group] = rows
    return out
