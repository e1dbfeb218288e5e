"""The timing-bounds benchmark runs and emits its one JSON line (plumbing only: the figures it
measures are benchmark output, and whether its bounds held is not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_timing_bounds.py"


def _refuse_non_finite(name: str):
    raise ValueError(f"non-strict JSON constant {name}")


def test_bench_timing_bounds_emits_one_strict_json_line():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--repeats", "2", "--checks", "clock,recorder_push"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0], parse_constant=_refuse_non_finite)
    assert out["bench"] == "timing_bounds" and out["repeats"] == 2
    assert set(out["checks"]) == {"clock", "recorder_push"}
    clock = out["checks"]["clock"]
    assert len(clock["runs"]) == 2 and isinstance(clock["held"], bool) and "304" in clock["bound"]
    assert 0 <= clock["median"]["lateness_p50_us"] <= clock["median"]["lateness_p99_us"]
    assert out["checks"]["recorder_push"]["median"]["dropped_blocks"] == 51
    assert out["all_held"] == all(c["held"] for c in out["checks"].values())


def test_unknown_check_is_refused_by_name():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--checks", "clock,nope"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "unknown check(s) ['nope']" in proc.stderr and proc.stdout == ""
