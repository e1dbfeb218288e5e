"""Helpers for rtsnn's test suites and those of its plugins (pytest is imported on use only).

Under CI (the ``CI`` environment variable set) every optional package and system dependency
the tests use is installed, so a missing one is a broken install and must fail, not skip;
on a user's machine the same test skips with its reason.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def skip_or_fail(reason: str) -> None:
    """Skip the test (or, at import time, the whole module) with ``reason``; under CI fail instead."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so this must not skip: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def import_or_skip(module: str, reason: str | None = None) -> ModuleType:
    """``importlib.import_module(module)``; when that raises ImportError, :func:`skip_or_fail`
    with ``reason`` (default: "<module> is not installed")."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        skip_or_fail(f"{reason or f'{module} is not installed'} ({exc})")
        raise  # unreachable: skip_or_fail always raises
