import json
import subprocess
import sys

import pytest


def rtsnn(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "rtsnn.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_plugins_lists_builtins_json():
    p = rtsnn("plugins", "--json")
    assert p.returncode == 0, p.stderr
    table = json.loads(p.stdout)
    assert any(r["name"] == "numba_cpu" for r in table["rtsnn.backends"])


def test_config_check_ok_and_bad(tmp_path):
    p = rtsnn("config", "check", "configs/demo.yaml")
    assert p.returncode == 0 and "ok" in p.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: {kind: lsl, options: {name: x, n_channels: 2, colour: red}}\n"
                   "encoder: {kind: passthrough, options: {n_channels: 2}}\n")
    p = rtsnn("config", "check", str(bad))
    assert p.returncode == 2
    assert str(bad) in p.stderr and "source.options" in p.stderr and "colour" in p.stderr
    bad.write_text("source: {kind: lsl, options: {name: x, n_channels: 2}}\n"
                   "encoder: {kind: passthrough, options: {n_channels: 2}}\n"
                   "learner: {kind: actor_critic}\n"
                   "reward: {kind: telepathy}\n")
    p = rtsnn("config", "check", str(bad))
    assert p.returncode == 2 and "no rtsnn.rewards plugin named 'telepathy'" in p.stderr


def test_run_with_invalid_config_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("session: {dt_s: fast}\nsource: {kind: lsl}\nencoder: {kind: passthrough}\n")
    p = rtsnn("run", str(bad))
    assert p.returncode == 2 and "session.dt_s" in p.stderr
