"""A session config checked against its model's input contract (:mod:`rtsnn.snn.contract`).

:func:`contract_mismatches` is called by :func:`rtsnn.runtime.session.stage_mismatches`, so
``rtsnn run`` refuses and ``rtsnn config check`` reports the same lines. Each mismatch is one
``FILE: KEY: the model (MODEL FILE) was trained with A, the config gives B`` line:

- ``session.dt_s`` against the contract's tick;
- ``source.options.n_channels`` (what the built source delivers) against the contract's
  channel count;
- ``encoder.kind`` and every ``encoder.options`` key. Options are compared as the encoder
  will run: a key one side leaves out takes the encoder's default (its constructor's), so
  ``threshold_sd: -4.5`` written out and left to its default are the same. Numbers are
  compared to 1e-9 relative; ``dt_s`` is the session's tick, checked above.

The contract's channel labels and source stream name are not compared (a live stream may be
named and labelled differently from the recording); teacher channels against the model's
outputs are checked by ``stage_mismatches`` for every model.

:func:`placeholder_mismatches` reports the values ``rtsnn pretrain`` leaves for a user to fill
in a session config it writes (strings starting with :data:`PLACEHOLDER`).
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Any

from rtsnn.snn.contract import PLACEHOLDER
_UNSET = object()


def _same(a: Any, b: Any) -> bool:
    """Equal as config values: numbers to 1e-9 relative (4 == 4.0), bools only to bools,
    lists and objects element by element."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _show(v: Any) -> str:
    if v is _UNSET:
        return "nothing (the option has no default)"
    if isinstance(v, str):
        return repr(v)
    try:
        return json.dumps(v, allow_nan=False)
    except (TypeError, ValueError):
        return repr(v)


def _encoder_defaults(kind: str) -> dict[str, Any]:
    """The encoder plugin's constructor defaults by option name ({} when it cannot be loaded:
    the session's build reports an unknown kind)."""
    from rtsnn import plugins
    from rtsnn.config import ConfigError

    try:
        params = inspect.signature(plugins.load("rtsnn.encoders", kind).__init__).parameters
    except (ValueError, TypeError, ConfigError):
        return {}
    return {name: p.default for name, p in params.items()
            if name not in ("self", "dt_s") and p.default is not inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def contract_mismatches(cfg: Any, origin: str, *, model: Any, source: Any = None, encoder: Any = None) -> list[str]:
    """Every way the session config ``cfg`` (and its built ``source`` / ``encoder``, None when
    not built) differs from ``model.input_contract``; [] when the model has no contract."""
    contract = getattr(model, "input_contract", None)
    if contract is None:
        return []
    model_cfg = getattr(cfg, "model", None)
    path = getattr(model_cfg, "path", None)
    who = f"the model ({Path(path).name})" if path else "the model"
    out: list[str] = []
    session = getattr(cfg, "session", None)
    dt_s = getattr(session, "dt_s", None)
    if dt_s is not None and not math.isclose(contract.dt_s, dt_s, rel_tol=1e-9):
        out.append(f"{origin}: session.dt_s: {who} was trained with {contract.dt_s:g} s ticks, "
                   f"the config gives {dt_s:g} s")
    # what reaches the encoder: the source's channels (the encoder's, when the source was not built)
    delivered = getattr(source, "n_channels", None) if source is not None else getattr(encoder, "n_channels", None)
    if isinstance(delivered, int) and delivered != contract.n_channels:
        out.append(f"{origin}: source.options.n_channels: {who} was trained on {contract.n_channels} input "
                   f"channels, the config's source delivers {delivered}")
    spec = getattr(cfg, "encoder", None)
    if spec is None:
        return out
    if spec.kind != contract.encoder_kind:
        out.append(f"{origin}: encoder.kind: {who} was trained with {contract.encoder_kind!r}, "
                   f"the config gives {spec.kind!r}")
        return out  # another encoder's options mean other things: nothing more to compare
    defaults = _encoder_defaults(spec.kind)
    given = dict(spec.options or {})
    for key in sorted((set(contract.encoder_options) | set(given)) - {"dt_s"}):
        trained = contract.encoder_options.get(key, defaults.get(key, _UNSET))
        config = given.get(key, defaults.get(key, _UNSET))
        if not _same(trained, config):
            out.append(f"{origin}: encoder.options.{key}: {who} was trained with {_show(trained)}, "
                       f"the config gives {_show(config)}")
    return out


def placeholder_mismatches(cfg: Any, origin: str) -> list[str]:
    """One line per source / teacher option still holding a :data:`PLACEHOLDER` value."""
    out: list[str] = []
    for section in ("source", "teacher"):
        spec = getattr(cfg, section, None)
        for key, value in (getattr(spec, "options", None) or {}).items():
            if isinstance(value, str) and value.startswith(PLACEHOLDER):
                out.append(f"{origin}: {section}.options.{key}: still the placeholder {value!r}; fill it in")
    return out
