"""Config YAML is parsed with limits: an alias bomb, too many aliases, a recursive alias and an
oversized file are refused with one line naming the file, before anything expands."""

from __future__ import annotations

import tracemalloc

import pytest

from rtsnn.yaml_safe import (MAX_EXPANDED_NODES, MAX_YAML_BYTES, YamlLimitError, load_yaml, load_yaml_file)


def _bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["l0: &l0 [" + ", ".join(["x"] * width) + "]"]
    for k in range(1, levels):
        lines.append(f"l{k}: &l{k} [" + ", ".join([f"*l{k - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_without_expanding():
    text = _bomb()
    assert len(text) < 1024  # the "1 KB YAML file of nested anchors"
    tracemalloc.start()
    try:
        with pytest.raises(YamlLimitError, match=r"cfg\.yaml: the YAML expands to more than .* alias bomb"):
            load_yaml(text, "cfg.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # 9^9 = 387M values were never built


def test_ordinary_anchors_still_work():
    doc = load_yaml("base: &b {tau_mem_s: 0.02, v_th: 1.0}\nlayer1: *b\nlayer2: {<<: *b, v_th: 2.0}\n")
    assert doc["layer1"] == {"tau_mem_s": 0.02, "v_th": 1.0}
    assert doc["layer2"] == {"tau_mem_s": 0.02, "v_th": 2.0}


def test_too_many_aliases_recursive_aliases_and_big_files_are_refused(tmp_path):
    many = "a: &a 1\nb: [" + ", ".join(["*a"] * 1001) + "]\n"
    with pytest.raises(YamlLimitError, match="more than 1000 YAML aliases"):
        load_yaml(many, "many.yaml")
    with pytest.raises(YamlLimitError, match="alias bomb"):
        load_yaml("a: &a [1, *a]\n", "rec.yaml")
    big = tmp_path / "big.yaml"
    big.write_text("k: " + "x" * (MAX_YAML_BYTES + 1) + "\n")
    with pytest.raises(YamlLimitError, match=r"big\.yaml: \d+ bytes is more than"):
        load_yaml_file(big)
    assert MAX_EXPANDED_NODES >= 100_000  # real configs (a few hundred values) are far below


def test_not_yaml_and_missing_files_are_one_line(tmp_path):
    with pytest.raises(YamlLimitError, match=r"bad\.yaml: not valid YAML") as err:
        load_yaml("a: [1, 2\nb: }", "bad.yaml")
    assert "\n" not in str(err.value)
    with pytest.raises(YamlLimitError, match="cannot be read"):
        load_yaml_file(tmp_path / "nope.yaml")
