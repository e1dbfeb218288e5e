"""Soak test: does a long live session grow?

Runs the embedded demo session (synthetic user over LSL -> 256 ALIF decoder -> LSL outlet)
for ``--duration`` seconds (default 600) and samples this process's RSS once a second from
a monitor thread. Prints one JSON line: RSS right after warm-up (first sample once the
session's timed ticks have started), at the end, their difference, the maximum, and the
session's own summary figures.

    .venv/bin/python scripts/bench_soak.py --duration 600
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import psutil

from rtsnn.cli import _demo_config_dict
from rtsnn.config import parse_config
from rtsnn.runtime.session import Session


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--out-dir", default="sessions")
    args = ap.parse_args()

    data = _demo_config_dict()
    data["session"] = {**data["session"], "duration_s": args.duration, "out_dir": args.out_dir}
    session = Session(parse_config(data, "<demo>"), "<demo>")
    proc = psutil.Process()
    samples: list[tuple[float, int, int]] = []  # (t since start, ticks, rss bytes)
    done = threading.Event()

    def monitor() -> None:
        t0 = time.monotonic()
        while not done.wait(1.0):
            samples.append((time.monotonic() - t0, session.counters["ticks"], proc.memory_info().rss))

    th = threading.Thread(target=monitor, daemon=True)
    th.start()
    summary = session.run()
    done.set()
    th.join()
    timed = [s for s in samples if s[1] > 0]
    if len(timed) < 2:
        print(json.dumps({"bench": "soak", "error": "too few RSS samples", "samples": samples}))
        return 1
    # baseline: the first sample taken after the first full second of timed ticks
    base = next((s for s in timed if s[1] >= 1000), timed[0])
    end = timed[-1]
    result = {
        "bench": "soak",
        "duration_s": args.duration,
        "rss_after_warmup_mb": round(base[2] / 2**20, 2),
        "rss_end_mb": round(end[2] / 2**20, 2),
        "rss_growth_mb": round((end[2] - base[2]) / 2**20, 3),
        "rss_max_mb": round(max(s[2] for s in timed) / 2**20, 2),
        "baseline_at_s": round(base[0], 1),
        "ticks": summary["ticks"],
        "deadline_miss_rate": summary["deadline_miss_rate"],
        "e2e_latency_us": summary["e2e_latency_us"],
        "r2": summary["r2"],
        "floor_met": (end[2] - base[2]) < 5 * 2**20,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
