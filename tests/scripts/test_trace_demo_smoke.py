"""The demo trace runs a short demo and emits its one JSON line (plumbing: the figures are a
diagnostic, not asserted); bad input is one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "trace_demo.py"


def _refuse_non_finite(name: str):
    raise ValueError(f"non-strict JSON constant {name}")


def test_trace_demo_splits_every_traced_tick_and_times_the_other_threads(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--duration", "2", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1], parse_constant=_refuse_non_finite)
    assert out["trace"] == "demo_ticks" and out["slack"] is True
    # duration_s is wall time: ticks run plus slots skipped (a stall on a loaded machine skips some)
    assert out["summary"]["ticks"] + out["summary"]["skipped_ticks"] >= 2000 and out["ticks_traced"] >= 1500
    for key in ("os_wake_late_us", "gil_wait_us", "lateness_us", "work_us"):
        p = out[key]
        assert 0 <= p["p50"] <= p["p99"] <= p["p99.9"] <= p["max"], (key, p)
    # the I/O loop's pieces and the slack's waits were timed on their threads
    assert {"io.write_rows", "monitor.service", "slack.wait"} <= set(out["pieces_us"])
    assert out["bad_ticks_with_no_traced_work"] <= out["bad_ticks"] <= out["ticks_traced"]
    assert out["summary"]["background_slack"]["busy_us"] >= 250


def test_a_bad_duration_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--duration", "0"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "trace_demo: --duration must be > 0, got 0.0"
