"""The live demo's latency next to what the machine's timer allows. One JSON line.

Runs ``rtsnn demo --duration D --json`` ``--repeats`` times, each followed by a bare timer
loop in a fresh process: ``--timer-s`` seconds of the session's own pacing (absolute 1 ms
deadlines, sleep then spin the last 200 us, SCHED_FIFO when permitted) doing no work. The
bare loop's lateness is the floor any 1 kHz Python loop on this machine sees (scheduler and
hypervisor); a session whose tick lateness is close to it loses nothing of its own.

Prints per repeat and as medians: the session's end-to-end p50 / p99, deadline-miss rate,
tick lateness p99, and the bare loop's lateness p99 / p99.9 and fraction of wake-ups later
than 1 ms, plus the load average.

    python scripts/bench_demo.py --duration 60 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TIMER_CHILD = r"""
import json, os, sys, time
import numpy as np
policy = "none"
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    policy = "fifo:10"
except (AttributeError, PermissionError, OSError):
    pass
dt, spin = 1_000_000, 200_000
n = int(float(sys.argv[1]) * 1000)
late = np.zeros(n)
t0 = time.perf_counter_ns() + dt
for k in range(n):
    dl = t0 + k * dt
    rem = dl - time.perf_counter_ns() - spin
    if rem > 0:
        time.sleep(rem / 1e9)
    while time.perf_counter_ns() < dl:
        pass
    late[k] = time.perf_counter_ns() - dl
us = late / 1000.0
print(json.dumps({"policy": policy, "ticks": n, "lateness_p50_us": round(float(np.median(us)), 2),
                  "lateness_p99_us": round(float(np.percentile(us, 99)), 2),
                  "lateness_p999_us": round(float(np.percentile(us, 99.9)), 2),
                  "late_over_1ms_fraction": float(np.mean(us > 1000.0))}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per demo run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timer-s", type=float, default=20.0, help="seconds of the bare timer loop per repeat")
    args = ap.parse_args()
    rtsnn = str(Path(sys.executable).with_name("rtsnn"))
    runs = []
    for k in range(args.repeats):
        print(f"[{k + 1}/{args.repeats}] demo {args.duration:g} s", file=sys.stderr, flush=True)
        p = subprocess.run([rtsnn, "demo", "--duration", str(args.duration), "--json"], capture_output=True,
                           text=True, cwd=REPO, check=True)
        d = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"[{k + 1}/{args.repeats}] bare timer {args.timer_s:g} s", file=sys.stderr, flush=True)
        t = subprocess.run([sys.executable, "-c", TIMER_CHILD, str(args.timer_s)], capture_output=True, text=True,
                           check=True)
        timer = json.loads(t.stdout)
        runs.append({"e2e_p50_us": d["e2e_latency_us"]["p50"], "e2e_p99_us": d["e2e_latency_us"]["p99"],
                     "deadline_miss_rate": d["deadline_miss_rate"],
                     "tick_lateness_p99_us": d["stage_latency_us"]["lateness"]["p99"],
                     "tick_compute_p99_us": d["stage_latency_us"]["tick"]["p99"], "r2": d["r2"],
                     "realtime": d["realtime"], "bare_timer": timer, "loadavg_1min": os.getloadavg()[0]})

    def med(key, sub=None):
        vals = [(r[sub][key] if sub else r[key]) for r in runs]
        return statistics.median(vals)

    print(json.dumps({
        "bench": "demo_latency", "duration_s": args.duration, "repeats": args.repeats, "cpus": os.cpu_count(),
        "median": {"e2e_p50_us": med("e2e_p50_us"), "e2e_p99_us": med("e2e_p99_us"),
                   "deadline_miss_rate": med("deadline_miss_rate"), "tick_lateness_p99_us": med("tick_lateness_p99_us"),
                   "bare_timer_lateness_p99_us": med("lateness_p99_us", "bare_timer"),
                   "bare_timer_late_over_1ms_fraction": med("late_over_1ms_fraction", "bare_timer")},
        "floors": {"e2e_p99_us": 2000.0, "deadline_miss_rate": 0.001},
        "runs": runs, "t_end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))


if __name__ == "__main__":
    main()
