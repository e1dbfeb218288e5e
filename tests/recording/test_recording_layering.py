"""The recording layer sits below stream, events and learn: none of its modules imports them
(or anything above), so the import graph between these packages has no circle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "rtsnn"
ABOVE = ("rtsnn.stream", "rtsnn.events", "rtsnn.learn", "rtsnn.runtime", "rtsnn.viz", "rtsnn.cli",
         "rtsnn.backends", "rtsnn.api", "rtsnn_")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_recording_imports_nothing_above_it():
    files = sorted((ROOT / "recording").rglob("*.py"))
    assert len(files) > 8
    up = [f"{f.relative_to(ROOT.parent)}: {m}" for f in files for m in _imports(f) if m.startswith(ABOVE)]
    assert up == []
