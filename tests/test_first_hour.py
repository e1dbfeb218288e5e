"""The README's "first hour" path, end to end and shortened: a live demo, `rtsnn streams`,
`rtsnn record` of the demo's streams by pattern, `rtsnn replay` of that file, `rtsnn plot` of
the demo's session folder. Every command runs as a user types it, in its own process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import import_or_skip

ROOT = Path(__file__).resolve().parents[1]
RTSNN = [sys.executable, "-m", "rtsnn.cli"]


def _readme_first_hour() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Your first hour")
    return text[start:text.index("\n## ", start + 1)]


def _rtsnn(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(RTSNN + list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_readme_first_hour_lists_the_commands_this_test_runs():
    section = _readme_first_hour()
    for command in ("rtsnn demo --duration", "rtsnn streams", "rtsnn record --streams 'rtsnn-demo-*' --out demo.xdf",
                    "rtsnn replay demo.xdf", "rtsnn plot sessions/demo-",
                    "cd configs && rtsnn pretrain pretrain_synthetic.yaml",
                    "rtsnn run sessions/pretrained_synthetic.session.yaml",
                    "python scripts/workflow_record_pretrain_run.py"):
        assert command in section, command


@pytest.mark.lsl
def test_first_hour_path_runs_end_to_end(tmp_path):
    import_or_skip("matplotlib", reason="rtsnn plot needs the [plot] extra (part of the dev install)")
    demo = subprocess.Popen(RTSNN + ["demo", "--duration", "15"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # 1. the demo names its session folder and its streams before the first tick
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while not any(line.startswith("LSL out:") for line in lines):
            line = demo.stderr.readline()
            assert line or demo.poll() is None, "demo ended before it started: " + "".join(lines)
            lines.append(line)
            assert time.monotonic() < deadline, "".join(lines)
        folder = tmp_path / next(l.split(":", 1)[1].strip() for l in lines if l.startswith("session folder:"))
        prefix = f"rtsnn-demo-{demo.pid}-"
        assert prefix + "spikes" in "".join(lines)

        # 2. rtsnn streams shows them
        p = _rtsnn("streams", "--name", prefix + "*", "--wait", "2", "--json", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        found = {s["name"]: s for s in json.loads(p.stdout)}
        assert {prefix + "spikes", prefix + "velocity", prefix + "decoded"} <= set(found)
        assert found[prefix + "spikes"]["n_channels"] == 96

        # 3. record them by pattern
        p = _rtsnn("record", "--streams", prefix + "*", "--out", "demo.xdf", "--duration", "3", "--json", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        recorded = json.loads(p.stdout.strip().splitlines()[-1])["samples"]
        assert recorded[prefix + "spikes"] > 1000 and recorded[prefix + "velocity"] > 1000

        out, err = demo.communicate(timeout=120)
        assert demo.returncode == 0, err[-2000:]
        assert "decoding R^2" in out
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()

    # 4. replay the recording (at max speed here; the README uses --speed 1)
    tag = f"replay-{uuid.uuid4().hex[:6]}-"
    p = _rtsnn("replay", "demo.xdf", "--speed", "max", "--prefix", tag, "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    replayed = json.loads(p.stdout.strip().splitlines()[-1])["samples"]
    assert replayed[tag + prefix + "spikes"] == recorded[prefix + "spikes"]

    # 5. plot the demo's session folder
    p = _rtsnn("plot", str(folder.relative_to(tmp_path)), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    pngs = sorted(x.name for x in (folder / "plots").glob("*.png"))
    assert pngs == ["latency.png", "misses.png", "outputs.png", "r2.png"]
    assert all(re.search(r"plots/\w+\.png", line) for line in p.stdout.strip().splitlines())
    assert os.path.getsize(folder / "plots" / "outputs.png") > 10_000
