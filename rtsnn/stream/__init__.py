"""Streams: LSL source and sink, the synthetic user, and the repairs applied to input.

Names are imported lazily, so ``python -m rtsnn.stream.synthetic`` does not import the
module twice and importing one part does not pull in the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LslSource": "rtsnn.stream.lsl_source",
    "StreamMismatchError": "rtsnn.stream.lsl_source",
    "StreamNotFoundError": "rtsnn.stream.lsl_source",
    "LslSink": "rtsnn.stream.lsl_sink",
    "SyntheticUser": "rtsnn.stream.synthetic",
    "SyntheticUserPublisher": "rtsnn.stream.synthetic",
    "spawn_synthetic_user": "rtsnn.stream.synthetic",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rtsnn.stream' has no attribute {name!r}")
