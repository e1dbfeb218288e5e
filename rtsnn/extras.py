"""Optional extras: which ``pip install 'rtsnn[...]'`` brings which third-party package.

The live path (config -> session -> LSL in and out -> numba kernels) needs only the core
dependencies. Every other feature imports its third-party package through :func:`require`
at the moment it is used, so a missing package becomes one line naming the feature and the
extra to install, never a traceback at import time::

    msgpack = require("msgpack", "MQTT payloads")
    # MissingExtraError: MQTT payloads: needs the Python package 'msgpack', which is not
    # installed; install it with: pip install 'rtsnn[mqtt]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from rtsnn.errors import RtsnnImportError

# top-level package name -> the extra of pyproject.toml that installs it
EXTRA_OF: dict[str, str] = {
    "msgpack": "mqtt",
    "aiomqtt": "mqtt",
    "pyqtgraph": "dashboard",
    "PySide6": "dashboard",
    "matplotlib": "plot",
    "ray": "sweep",
    "mne": "recording",
    "pyxdf": "recording",
    "scipy": "recording",
    "nir": "nir",
    "sklearn": "recording",  # CSP + LDA baseline of rtsnn pretrain (scikit-learn)
    "h5py": "recording",  # MATLAB v7.3 files; the nir extra brings it too
    "gymnasium": "control",
    "torch": "dev",
    "snntorch": "dev",
    "nest": "dev",
}


class MissingExtraError(RtsnnImportError):
    """An optional package a feature needs is not installed; the message says which extra."""


def install_hint(package: str) -> str:
    extra = EXTRA_OF.get(package.split(".")[0])
    return f"pip install 'rtsnn[{extra}]'" if extra else f"pip install {package.split('.')[0]}"


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (e.g. ``"pyqtgraph"``, ``"matplotlib.pyplot"``) for ``feature``;
    raise :class:`MissingExtraError` with the install hint when its package is missing."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        top = module.split(".")[0]
        if err.name is None or err.name.split(".")[0] != top:
            raise  # the package is there but itself lacks something: not ours to rename
        raise MissingExtraError(f"{feature}: needs the Python package {top!r}, which is not installed; "
                                f"install it with: {install_hint(top)}") from None
