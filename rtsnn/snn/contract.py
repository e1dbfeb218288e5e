"""A model's input contract: what the network expects at its input, stored in the model file.

A decoder is trained on inputs made a particular way (how many channels a stream delivers,
the tick they are summed over, the encoder and its options that turn them into the
network's input). A session that feeds the same model something else runs, but decodes
nonsense. The contract records that recipe so a session can compare itself with it
(:func:`rtsnn.runtime.model_contract.contract_mismatches`) and refuse a mismatch.

Schema (the ``input_contract`` object of a model file's JSON header; every key required
except where said)::

    n_channels      int >= 1   channels of the input stream as the source delivers them
                               (before the encoder)
    channel_labels  [str]      one label per channel, or [] when unknown
    dt_s            float > 0  the tick the encoder and network run at (= the model's dt_s)
    encoder         {"kind": str, "options": {...}}
                               exactly a session config's ``encoder:`` section (its ``dt_s``
                               option, if any, is the session's tick and is left out here)
    source          {"kind": str | null, "name": str | null, "type": str | null} | null
                               the stream the training data came from, when known
                               (informational: a live stream may be named differently)

The output labels and units are the model's own ``output_labels`` / ``output_units``.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any

PLACEHOLDER = "<FILL IN"  # how a config value a user must replace starts, e.g. "<FILL IN: stream name>"

_KEYS = ("n_channels", "channel_labels", "dt_s", "encoder", "source")
_SOURCE_KEYS = ("kind", "name", "type")


def _fail(key: str, msg: str) -> None:
    raise ValueError(f"input_contract.{key}: {msg}")


@dataclass(frozen=True)
class InputContract:
    """What a model expects at its input (see the module docstring for each field)."""

    n_channels: int
    dt_s: float
    encoder_kind: str
    encoder_options: dict[str, Any] = field(default_factory=dict)
    channel_labels: tuple[str, ...] = ()
    source: dict[str, str | None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.n_channels, int) or isinstance(self.n_channels, bool) or self.n_channels < 1:
            _fail("n_channels", f"must be an integer >= 1, got {self.n_channels!r}")
        if (not isinstance(self.dt_s, (int, float)) or isinstance(self.dt_s, bool) or not math.isfinite(self.dt_s)
                or self.dt_s <= 0):
            _fail("dt_s", f"must be a finite number > 0, got {self.dt_s!r}")
        if not isinstance(self.encoder_kind, str) or not self.encoder_kind:
            _fail("encoder.kind", f"must be a non-empty string, got {self.encoder_kind!r}")
        if not isinstance(self.encoder_options, dict) or not all(isinstance(k, str) for k in self.encoder_options):
            _fail("encoder.options", f"must be an object with string keys, got {self.encoder_options!r}")
        if "dt_s" in self.encoder_options:
            _fail("encoder.options.dt_s", "must not be given: the contract's dt_s is the encoder's tick")
        try:
            json.dumps(self.encoder_options, allow_nan=False)
        except (TypeError, ValueError) as err:
            _fail("encoder.options", f"must be JSON (numbers, strings, lists, objects): {err}")
        labels = self.channel_labels
        if not isinstance(labels, (list, tuple)) or not all(isinstance(s, str) for s in labels):
            _fail("channel_labels", f"must be a list of strings, got {labels!r}")
        if labels and len(labels) != self.n_channels:
            _fail("channel_labels", f"must have n_channels = {self.n_channels} entries or none, got {len(labels)}")
        object.__setattr__(self, "channel_labels", tuple(labels))
        object.__setattr__(self, "dt_s", float(self.dt_s))
        object.__setattr__(self, "encoder_options", copy.deepcopy(self.encoder_options))
        if self.source is not None:
            if not isinstance(self.source, dict):
                _fail("source", f"must be an object or null, got {self.source!r}")
            unknown = sorted(set(self.source) - set(_SOURCE_KEYS))
            if unknown:
                _fail(f"source.{unknown[0]}", f"unknown key (known: {', '.join(_SOURCE_KEYS)})")
            for k in _SOURCE_KEYS:
                v = self.source.get(k)
                if v is not None and not isinstance(v, str):
                    _fail(f"source.{k}", f"must be a string or null, got {v!r}")
            object.__setattr__(self, "source", {k: self.source.get(k) for k in _SOURCE_KEYS})

    def to_dict(self) -> dict[str, Any]:
        """The header's ``input_contract`` object (plain JSON types)."""
        return {"n_channels": self.n_channels, "channel_labels": list(self.channel_labels), "dt_s": self.dt_s,
                "encoder": {"kind": self.encoder_kind, "options": copy.deepcopy(self.encoder_options)},
                "source": dict(self.source) if self.source is not None else None}

    @classmethod
    def from_dict(cls, d: Any) -> InputContract:
        """Parse a header's ``input_contract``; ``ValueError('input_contract.KEY: why')`` when malformed."""
        if not isinstance(d, dict):
            raise ValueError(f"input_contract: must be an object, got {type(d).__name__}")
        unknown = sorted(set(d) - set(_KEYS))
        if unknown:
            _fail(unknown[0], f"unknown key (known: {', '.join(_KEYS)})")
        missing = [k for k in _KEYS if k not in d]
        if missing:
            _fail(missing[0], "missing")
        enc = d["encoder"]
        if not isinstance(enc, dict):
            _fail("encoder", f"must be an object {{kind, options}}, got {enc!r}")
        if set(enc) - {"kind", "options"} or "kind" not in enc:
            _fail("encoder", f"must have the keys kind and options (optional), got {sorted(enc)}")
        labels = d["channel_labels"]
        if not isinstance(labels, list):
            _fail("channel_labels", f"must be a list of strings, got {labels!r}")
        return cls(n_channels=d["n_channels"], dt_s=d["dt_s"], encoder_kind=enc["kind"],
                   encoder_options=enc.get("options", {}) if enc.get("options") is not None else {},
                   channel_labels=tuple(labels), source=d["source"])
