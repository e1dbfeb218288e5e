"""YAML loading with limits: every config and option file goes through :func:`load_yaml`.

PyYAML's ``safe_load`` builds anchors and aliases as shared objects, so a 1 KB file of nested
anchors (``a: &a [1,1,...]``, ``b: &b [*a,*a,...]``, ...) loads quickly but *expands*
exponentially wherever the data is walked -- validation, JSON dumps, copying. Before
constructing anything, :func:`load_yaml` composes the node graph and measures the size the
document has once every alias is expanded (memoised, so the measurement is linear in the
file), refusing more than :data:`MAX_EXPANDED_NODES` nodes, more than :data:`MAX_ALIASES`
aliases, or a file larger than :data:`MAX_YAML_BYTES`. Errors are one line naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rtsnn.errors import RtsnnValueError

MAX_YAML_BYTES = 4 << 20  # 4 MiB: configs are a few KB
MAX_ALIASES = 1000
MAX_EXPANDED_NODES = 200_000


class YamlLimitError(RtsnnValueError):
    """A YAML document over one of the limits, or not YAML at all."""


def _expanded_size(root: yaml.Node) -> int:
    """Nodes the document has with every alias expanded (iterative, memoised by node id)."""
    memo: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in memo:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            on_path.discard(key)
            total = 1 + sum(memo.get(id(c), 0) for c in children)
            memo[key] = min(total, MAX_EXPANDED_NODES + 1)
            continue
        if key in on_path:  # a recursive alias: infinite when expanded
            return MAX_EXPANDED_NODES + 1
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in memo)
    return memo[id(root)]


def load_yaml(text: str | bytes, source: str = "<yaml>") -> Any:
    """Parse one YAML document with PyYAML's safe constructors and the limits above."""
    if isinstance(text, bytes):
        if len(text) > MAX_YAML_BYTES:
            raise YamlLimitError(f"{source}: {len(text)} bytes is more than the {MAX_YAML_BYTES} a config may have")
        text = text.decode("utf-8", errors="strict")
    if len(text) > MAX_YAML_BYTES:
        raise YamlLimitError(f"{source}: {len(text)} characters is more than the {MAX_YAML_BYTES} a config may have")
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as err:  # the reader refuses control characters before any parsing
        raise YamlLimitError(f"{source}: not valid YAML: {' '.join(str(err).split())}") from None
    try:
        aliases = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise YamlLimitError(f"{source}: more than {MAX_ALIASES} YAML aliases (*name); refused")
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node)
        if size > MAX_EXPANDED_NODES:
            raise YamlLimitError(f"{source}: the YAML expands to more than {MAX_EXPANDED_NODES} values through its "
                                 f"anchors and aliases (an alias bomb?); refused")
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(err, "problem", None) or " ".join(str(err).split())
        raise YamlLimitError(f"{source}: not valid YAML{where}: {what}") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path) -> Any:
    """:func:`load_yaml` of a file (refusing one over the size limit before reading it)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as err:
        raise YamlLimitError(f"{p}: cannot be read: {err.strerror or err}") from None
    if size > MAX_YAML_BYTES:
        raise YamlLimitError(f"{p}: {size} bytes is more than the {MAX_YAML_BYTES} a config may have")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise YamlLimitError(f"{p}: cannot be read as UTF-8 text: {err}") from None
    return load_yaml(text, str(p))
