"""The shipped adapter packages (plugins/template, plugins/rtsnn-brainflow): their declared
entry points resolve to classes that satisfy the Source contract, and the template's own tests
pass. Nothing is installed: the packages are put on sys.path / PYTHONPATH."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from conftest import import_or_skip

from rtsnn.plugins import check_options
from rtsnn.config import ConfigError
from rtsnn.protocols import Source

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"template": ROOT / "plugins" / "template", "brainflow": ROOT / "plugins" / "rtsnn-brainflow"}


def _entry_points(pkg: Path) -> dict[str, str]:
    meta = tomllib.loads((pkg / "pyproject.toml").read_text())
    return meta["project"]["entry-points"]["rtsnn.sources"]


def _resolve(pkg: Path, target: str):
    if str(pkg) not in sys.path:
        sys.path.insert(0, str(pkg))
    mod, _, attr = target.partition(":")
    return getattr(importlib.import_module(mod), attr)


def test_template_entry_point_resolves_and_follows_the_contract():
    eps = _entry_points(PACKAGES["template"])
    assert list(eps) == ["mysensor"]
    cls = _resolve(PACKAGES["template"], eps["mysensor"])
    with pytest.raises(ConfigError, match="unknown option.*colour"):
        check_options(cls, {"colour": "red"}, "source")
    src = cls(n_channels=2)
    assert isinstance(src, Source)
    src.open()
    try:
        import time

        time.sleep(0.02)
        buf, ts = np.zeros((64, 2), np.float32), np.zeros(64)
        assert src.pull(buf, ts) > 0
    finally:
        src.close()


def test_brainflow_entry_point_resolves():
    import_or_skip("brainflow")
    eps = _entry_points(PACKAGES["brainflow"])
    assert list(eps) == ["brainflow"]
    cls = _resolve(PACKAGES["brainflow"], eps["brainflow"])
    src = cls(board_id=-1)
    assert isinstance(src, Source) and src.n_channels == 16


def test_template_own_tests_pass():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGES["template"]), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                        str(PACKAGES["template"]), str(PACKAGES["template"] / "tests")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout
