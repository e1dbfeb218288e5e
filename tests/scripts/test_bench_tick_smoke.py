"""The tick benchmark runs end to end in the project venv (peers skipped) and emits its JSON.

Only the script's plumbing is checked here; its timings are benchmark output, not test
assertions (scripts/README.md has the command that produces the reported figures).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_tick.py"


def test_bench_tick_emits_one_json_line_with_every_network():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--peers", "none", "--ticks", "200", "--warmup", "20",
                           "--repeats", "2", "--calib-ticks", "400"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert set(out["rtsnn"]) == {"alif256", "lif1024"}
    for net in out["rtsnn"].values():
        assert len(net["blocks"]) == 2 and net["ticks"] == 200
        assert 0 < net["p50_us"] <= net["p99_us"] <= net["max_us"]
        assert 0.002 < net["activity"] < 0.1  # calibrated to ~2 % firing (on a short calibration run)
    assert all(p == {"skipped": "not requested (--peers)"} for p in out["peers"].values())
    assert out["ratios"] == {}
