"""Does an attached dashboard slow the session? One JSON line.

Runs the embedded demo session (synthetic user over LSL -> 256-neuron ALIF decoder -> LSL
outlet) for ``--duration`` seconds, ``--repeats`` times in each of two modes, alternating:

* ``without``: the session publishes its monitor (raster, outputs, status), nobody watches;
* ``with``:    the same, plus ``rtsnn dashboard`` attached offscreen for the whole run.

Each session runs in its own process with its own monitor (``session.monitor``: the tap on
the compute thread, the publisher on the session's I/O thread), as every session does.

Prints: both end-to-end p99s (median over repeats), their ratio, deadline-miss rates, the
per-stage p99s in both modes (to see where a difference comes from), the dashboard's measured
frame rate, the monitor's lost rows, and the machine's load average
(the numbers are only comparable within one run of this script), and each repeat's e2e p99,
lateness p99 and miss rate, to set a difference against the run-to-run spread. The demo config
ticks the session 500 us after the synthetic user's pushes (``session.tick_phase_us``), so e2e
no longer carries a random 0..1 ms phase between the two 1 kHz clocks.

    python scripts/bench_dashboard.py --duration 20 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _demo_config(name: str, duration_s: float, out_dir: str) -> dict:
    data = yaml.safe_load(resources.files("rtsnn").joinpath("configs/demo.yaml").read_text())
    data["session"].update(name=name, duration_s=duration_s, out_dir=out_dir)
    if data.get("learner", {}).get("kind") == "ridge_readout":
        data["learner"]["options"]["calibration_s"] = min(20.0, duration_s / 3.0)
    return data


def child(name: str, duration_s: float, tick_phase_us: float | None) -> None:
    """Run one demo session (it publishes its own monitor streams, ``session.monitor``);
    print its summary plus the monitor counters."""
    from rtsnn.config import parse_config
    from rtsnn.runtime.session import Session

    with tempfile.TemporaryDirectory() as out_dir:
        data = _demo_config(name, duration_s, out_dir)
        data["session"]["monitor"] = True
        if tick_phase_us is not None:  # else the demo config's
            data["session"]["tick_phase_us"] = tick_phase_us
        cfg = parse_config(data, "<bench demo>")
        session = Session(cfg, "<bench demo>")
        monitor = session.monitor
        summary = session.run()
    st = summary["stage_latency_us"]
    print(json.dumps({"e2e_p99_us": summary["e2e_latency_us"]["p99"], "e2e_p50_us": summary["e2e_latency_us"]["p50"],
                      "input_age_p99_us": summary["input_age_us"]["p99"],
                      "deadline_miss_rate": summary["deadline_miss_rate"], "ticks": summary["ticks"],
                      "stage_p99_us": {k: st[k]["p99"] for k in ("lateness", "ingest", "emit", "compute", "tick")},
                      "monitor": monitor.counters, "monitor_service_us_max": monitor.service_us_max}))


def run_mode(with_dashboard: bool, duration_s: float, k: int, tick_phase_us: float | None) -> dict:
    name = f"bench-dash-{os.getpid()}-{k}-{int(with_dashboard)}"
    py = sys.executable
    phase = [] if tick_phase_us is None else ["--tick-phase-us", str(tick_phase_us)]
    sess = subprocess.Popen([py, __file__, "--child", name, "--duration", str(duration_s)] + phase,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    dash = None
    if with_dashboard:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        # attached for the session's whole run (set-up and warm-up take a few seconds)
        dash = subprocess.Popen([py, "-m", "rtsnn.cli", "dashboard", "--session", name, "--wait", "60",
                                 "--duration", str(duration_s + 2.0), "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=env)
    out, _ = sess.communicate(timeout=duration_s + 180)
    if sess.returncode != 0 or not out.strip():
        raise RuntimeError(f"session child failed (rc {sess.returncode})")
    res = json.loads(out.strip().splitlines()[-1])
    if dash is not None:
        dout, _ = dash.communicate(timeout=duration_s + 120)
        lines = dout.strip().splitlines()
        res["dashboard"] = json.loads(lines[-1]) if dash.returncode == 0 and lines else {"error": dash.returncode}
    return res


def _cpu_jiffies() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs from /proc/stat (Linux), else None. Steal is time the
    hypervisor ran something else on this VM's vCPUs: a run with much of it is not comparable."""
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (vals[7] if len(vals) > 7 else 0), sum(vals[:8])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per session (default 20)")
    ap.add_argument("--repeats", type=int, default=1, help="sessions per mode, alternating (default 1)")
    ap.add_argument("--tick-phase-us", type=float, default=None,
                    help="session.tick_phase_us for both modes (default: the demo config's)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.duration, args.tick_phase_us)
        return 0
    if args.duration < 5 or args.repeats < 1:
        raise SystemExit("--duration must be >= 5 s and --repeats >= 1")
    runs: dict[str, list[dict]] = {"without": [], "with": []}
    j0 = _cpu_jiffies()
    for k in range(args.repeats):
        runs["without"].append(run_mode(False, args.duration, k, args.tick_phase_us))
        runs["with"].append(run_mode(True, args.duration, k, args.tick_phase_us))
    j1 = _cpu_jiffies()
    steal = round((j1[0] - j0[0]) / max(j1[1] - j0[1], 1), 4) if j0 and j1 else None
    p99_wo = statistics.median(r["e2e_p99_us"] for r in runs["without"])
    p99_w = statistics.median(r["e2e_p99_us"] for r in runs["with"])
    fps = [r["dashboard"].get("fps", 0.0) for r in runs["with"]]
    print(json.dumps({
        "bench": "dashboard", "duration_s": args.duration, "repeats": args.repeats,
        "e2e_p99_us_without": p99_wo, "e2e_p99_us_with": p99_w,
        "p99_ratio_with_over_without": round(p99_w / p99_wo, 3) if p99_wo else None,
        "e2e_p50_us_without": statistics.median(r["e2e_p50_us"] for r in runs["without"]),
        "e2e_p50_us_with": statistics.median(r["e2e_p50_us"] for r in runs["with"]),
        "deadline_miss_rate_without": statistics.median(r["deadline_miss_rate"] for r in runs["without"]),
        "deadline_miss_rate_with": statistics.median(r["deadline_miss_rate"] for r in runs["with"]),
        # where the difference comes from: wake-up lateness (scheduler), ingest (LSL pulls),
        # emit (sinks incl. the monitor tap), compute (encode+step+readout), whole tick
        "stage_p99_us_without": {k: statistics.median(r["stage_p99_us"][k] for r in runs["without"])
                                 for k in runs["without"][0]["stage_p99_us"]},
        "stage_p99_us_with": {k: statistics.median(r["stage_p99_us"][k] for r in runs["with"])
                              for k in runs["with"][0]["stage_p99_us"]},
        # the part of e2e before the session had the sample (transport + wait for the tick)
        "input_age_p99_us_without": statistics.median(r["input_age_p99_us"] for r in runs["without"]),
        "input_age_p99_us_with": statistics.median(r["input_age_p99_us"] for r in runs["with"]),
        "per_repeat": {mode: {"e2e_p99_us": [r["e2e_p99_us"] for r in rs],
                              "input_age_p99_us": [r["input_age_p99_us"] for r in rs],
                              "lateness_p99_us": [r["stage_p99_us"]["lateness"] for r in rs],
                              "deadline_miss_rate": [r["deadline_miss_rate"] for r in rs]}
                       for mode, rs in runs.items()},
        "dashboard_fps": statistics.median(fps), "dashboard_fps_per_repeat": fps, "dashboard_target_fps": 30.0,
        "dashboard_cpu_fraction": [r["dashboard"].get("cpu_fraction") for r in runs["with"]],
        "dashboard_raster_rows": [r["dashboard"].get("raster_rows") for r in runs["with"]],
        "monitor_lost_rows": [r["monitor"]["lost_rows"] for r in runs["without"] + runs["with"]],
        "loadavg_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(), "steal_fraction": steal,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
