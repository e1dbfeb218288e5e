"""rtsnn: a real-time runtime for spiking-neural-network decoders in closed loops.

The public Python API (docs/python_api.md) is the names in ``__all__``; everything else may
change. They are imported on first use, so ``import rtsnn`` (and the command line's start-up)
stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_config": "rtsnn.api",
    "Session": "rtsnn.api",
    "load_outputs": "rtsnn.api",
    "load_model": "rtsnn.snn",
    "save_model": "rtsnn.snn",
    "ConfigError": "rtsnn.config",
    "SessionConfig": "rtsnn.config",
}

__all__ = ["__version__", *_EXPORTS]


def _version() -> str:
    """The installed distribution's version; a fallback when run from a bare source tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rtsnn")
    except PackageNotFoundError:
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = _version()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'rtsnn' has no attribute {name!r}")
    globals()[name] = value  # cached: the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | {n for n in globals() if n.startswith("__")})
