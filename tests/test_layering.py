"""The import contract of DESIGN.md ("Layers"): an import goes down, never up, and never
sideways in a circle; the core never imports a plugin (plugins add themselves through entry
points).

Every ``import`` / ``from ... import`` in the package is read from the source (function-level
imports included: a lazy import up a layer is still a dependency up a layer).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "rtsnn"

# top to bottom; a module may import its own layer (without a cycle) or any layer below
LAYERS: list[tuple[str, ...]] = [
    ("cli", "api", "config_check"),  # commands (and every subpackage's cli.py, see _layer_of)
    ("runtime", "viz"),
    ("learn",),
    ("stream", "events", "encode", "recording", "datasets", "envs", "backends"),
    ("snn", "interop"),
    ("config", "protocols", "plugins", "extras", "jsonout", "control_messages", "clock", "limits",
     "yaml_safe", "testing", "errors", "__init__"),
]


def _unit(module: str) -> str:
    """The layering unit of a dotted module name: ``rtsnn.<first part>``'s first part."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer_of(module: str) -> int:
    if module.split(".")[-1] == "cli":  # a subpackage's command module is a command
        return 0
    unit = _unit(module)
    for k, names in enumerate(LAYERS):
        if unit in names:
            return k
    raise AssertionError(f"{module}: package rtsnn.{unit} is in no layer of tests/test_layering.py; add it")


def _imports() -> list[tuple[str, str, str]]:
    """(importing module, imported module, 'file:line') for every rtsnn.* and rtsnn_* import."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names
                                         if node.module == "rtsnn"]
            else:
                continue
            for name in names:
                if name == "rtsnn" or name.startswith(("rtsnn.", "rtsnn_")):
                    out.append((module, name, f"{path.relative_to(ROOT.parent)}:{node.lineno}"))
    return out


def test_the_core_imports_no_plugin():
    bad = [f"{where}: {mod} imports {name}" for mod, name, where in _imports() if name.startswith("rtsnn_")]
    assert not bad, "the core imports plugins (use an entry point):\n" + "\n".join(bad)


def test_imports_go_down_the_layers():
    bad = []
    for mod, name, where in _imports():
        if name == "rtsnn" or name.startswith("rtsnn_"):  # plugins: the test above
            continue
        src, dst = _layer_of(mod), _layer_of(name)
        if dst < src:
            bad.append(f"{where}: {mod} (layer {src}) imports {name} (layer {dst}, above it)")
    assert not bad, "imports up the layers:\n" + "\n".join(bad)


def test_no_circle_between_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], str] = {}
    for mod, name, at in _imports():
        if name == "rtsnn" or name.startswith("rtsnn_") or mod.split(".")[-1] == "cli":
            continue
        a, b = _unit(mod), _unit(name)
        if a != b:
            graph[a].add(b)
            where.setdefault((a, b), f"{at} ({mod} -> {name})")
    # depth-first search for a back edge
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        path.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return path[path.index(v):] + [v]
            if v not in state:
                found = visit(v)
                if found:
                    return found
        path.pop()
        state[u] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            assert cycle is None, "packages import each other in a circle: " + " -> ".join(cycle) + "\n" + \
                "\n".join(where[(a, b)] for a, b in zip(cycle, cycle[1:]))
