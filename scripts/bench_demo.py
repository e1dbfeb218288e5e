"""The live demo's deadline misses and latency next to the machine's own floor. JSON out.

Each repeat runs ``rtsnn demo --duration D --json --quiet --bare-timer-s B`` once per variant
(variants alternate inside a repeat, so a change of load hits them alike), then a bare timer in
a fresh process for ``--timer-s`` seconds, and with ``--concurrent-timer`` one more in a fresh
process *while* each demo ticks (the machine's own floor over the same seconds). All bare timers are
:func:`rtsnn.runtime.loop.bare_timer`: the session's own pacing (absolute 1 ms deadlines on the
demo's 500 us phase, sleep then spin the last 200 us, SCHED_FIFO when permitted, the same skip
rule) with an empty tick body, and a miss defined as the session's (the tick ends after the next
tick's start). The one inside the demo runs in the session's process once every stage is open,
just before the first tick (the summary's ``bare_timer_*`` and ``deadline_miss_ratio``); the
fresh-process one runs after the demo, with nothing else of the session alive.

Reported per run and per variant (medians over repeats, and pooled: total misses / total ticks
over every repeat, which a rare event needs): the session's deadline-miss rate and its causes
(``late_wake``: woken later than the tick's work took; ``slow_tick``), both bare timers' miss
rates and the ratios session / bare, e2e p50 / p99, tick lateness and tick work p99, R^2, the
scheduling policy, and the load average (1, 5, 15 min) before and after each run: this machine is
shared, so read the ratios with the load next to them.

    python scripts/bench_demo.py --duration 20 --repeats 5 --out demo_bench.json
    # before / after: a variant is NAME=PYTHONPATH (a copy of the package tree to import first)
    python scripts/bench_demo.py --variant before=/tmp/old --variant after= --repeats 5
    # loaded: two CPU-bound processes beside every run
    python scripts/bench_demo.py --load 2 --repeats 3
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]

TIMER_CHILD = r"""
import json, sys
from rtsnn.runtime.loop import bare_timer
print(json.dumps(bare_timer(0.001, float(sys.argv[1]), spin_s=200e-6, phase_ns=500_000, realtime="auto")))
"""


LOAD_CHILD = "while True: pass"  # --load: one CPU-bound process at ordinary priority


def _cwd(pythonpath: str, out_dir: str) -> str:
    """The repository for the installed tree; elsewhere for another tree (``python -m`` and
    ``-c`` put the working directory ahead of PYTHONPATH)."""
    if not pythonpath:
        return str(REPO)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return out_dir


def _env(pythonpath: str) -> dict[str, str]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_demo(duration_s: float, bare_timer_s: float, pythonpath: str, out_dir: str,
             concurrent: tuple[float, float] | None = None) -> dict[str, Any]:
    """One demo run; ``concurrent = (delay_s, length_s)``: a fresh-process bare timer started
    ``delay_s`` after the demo, for ``length_s``, while the session ticks (its result is
    ``concurrent_timer``)."""
    cmd = [sys.executable, "-m", "rtsnn.cli", "demo", "--duration", str(duration_s), "--json", "--quiet",
           "--out-dir", out_dir]
    cwd = _cwd(pythonpath, out_dir)
    p, timer = _demo_with_timer(cmd + ["--bare-timer-s", str(bare_timer_s)], cwd, pythonpath, out_dir, concurrent)
    if p.returncode == 2 and "--bare-timer-s" in p.stderr:  # a tree from before the in-process timer
        p, timer = _demo_with_timer(cmd, cwd, pythonpath, out_dir, concurrent)
    if p.returncode != 0:
        raise SystemExit(f"bench_demo: the demo failed (exit {p.returncode}): {p.stderr.strip()[-2000:]}")
    d = json.loads(p.stdout.strip().splitlines()[-1])
    causes = d.get("deadline_miss_causes") or {}
    return {"ticks": d["ticks"], "deadline_misses": d["deadline_misses"], "deadline_miss_rate": d["deadline_miss_rate"],
            "late_wake": causes.get("late_wake"), "slow_tick": causes.get("slow_tick"),
            "bare_timer_ticks": d.get("bare_timer_ticks"), "bare_timer_misses": d.get("bare_timer_misses"),
            "bare_timer_miss_rate": d.get("bare_timer_miss_rate"), "deadline_miss_ratio": d.get("deadline_miss_ratio"),
            "e2e_p50_us": d["e2e_latency_us"]["p50"], "e2e_p99_us": d["e2e_latency_us"]["p99"],
            "tick_lateness_p99_us": d["stage_latency_us"]["lateness"]["p99"],
            "tick_lateness_p999_us": d["stage_latency_us"]["lateness"]["p999"],
            "tick_p99_us": d["stage_latency_us"]["tick"]["p99"], "skipped_ticks": d["skipped_ticks"],
            "r2": d["r2"], "realtime": d["realtime"], "background_slack": d.get("background_slack"),
            "background_realtime": d.get("background_realtime"),
            "concurrent_timer": timer}


def _demo_with_timer(cmd: list[str], cwd: str, pythonpath: str, out_dir: str,
                     concurrent: tuple[float, float] | None) -> tuple[Any, dict[str, Any] | None]:
    demo = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env=_env(pythonpath))
    timer = None
    if concurrent is not None:
        time.sleep(concurrent[0])
        timer = run_fresh_timer(concurrent[1], pythonpath, out_dir)
    out, err = demo.communicate()
    return subprocess.CompletedProcess(cmd, demo.returncode, out, err), timer


def run_fresh_timer(timer_s: float, pythonpath: str, out_dir: str) -> dict[str, Any]:
    t = subprocess.run([sys.executable, "-c", TIMER_CHILD, str(timer_s)], capture_output=True, text=True,
                       cwd=_cwd(pythonpath, out_dir), env=_env(pythonpath))
    if t.returncode != 0:
        raise SystemExit(f"bench_demo: the bare timer failed: {t.stderr.strip()[-2000:]}")
    return json.loads(t.stdout)


def _median(vals: list[Any]) -> Any:
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def _rate(misses: int, ticks: int) -> float | None:
    return misses / ticks if ticks else None


def summarise(runs: list[dict[str, Any]], timers: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians and pooled rates of one variant's runs; ``timers``: the fresh-process bare timers."""
    med = {k: _median([r[k] for r in runs]) for k in (
        "deadline_miss_rate", "bare_timer_miss_rate", "deadline_miss_ratio", "e2e_p50_us", "e2e_p99_us",
        "tick_lateness_p99_us", "tick_lateness_p999_us", "tick_p99_us", "r2")}
    misses, ticks = sum(r["deadline_misses"] for r in runs), sum(r["ticks"] for r in runs)
    b_runs = [r for r in runs if r["bare_timer_ticks"]]
    b_miss, b_ticks = sum(r["bare_timer_misses"] for r in b_runs), sum(r["bare_timer_ticks"] for r in b_runs)
    f_miss, f_ticks = sum(t["misses"] for t in timers), sum(t["ticks"] for t in timers)
    session = _rate(misses, ticks)
    inproc = _rate(b_miss, b_ticks)
    fresh = _rate(f_miss, f_ticks)
    pooled = {"session_misses": misses, "session_ticks": ticks, "session_miss_rate": session,
              "late_wake": sum(r["late_wake"] or 0 for r in runs), "slow_tick": sum(r["slow_tick"] or 0 for r in runs),
              "bare_inprocess_misses": b_miss, "bare_inprocess_ticks": b_ticks, "bare_inprocess_miss_rate": inproc,
              "ratio_vs_inprocess": session / inproc if session is not None and inproc else None,
              "bare_fresh_misses": f_miss, "bare_fresh_ticks": f_ticks, "bare_fresh_miss_rate": fresh,
              "ratio_vs_fresh": session / fresh if session is not None and fresh else None}
    c_runs = [r for r in runs if r.get("concurrent_timer")]
    if c_runs:  # the machine's floor while the session ticked: the same bursts hit both
        c_miss = sum(r["concurrent_timer"]["misses"] for r in c_runs)
        c_ticks = sum(r["concurrent_timer"]["ticks"] for r in c_runs)
        conc = _rate(c_miss, c_ticks)
        pooled.update(bare_concurrent_misses=c_miss, bare_concurrent_ticks=c_ticks, bare_concurrent_miss_rate=conc,
                      ratio_vs_concurrent=session / conc if session is not None and conc else None)
    return {"median": med, "pooled": pooled, "runs": len(runs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per demo run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bare-timer-s", type=float, default=5.0, help="the demo's in-process bare timer (s)")
    ap.add_argument("--timer-s", type=float, default=10.0, help="fresh-process bare timer per repeat (s); 0: none")
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME=PYTHONPATH (empty: the installed tree); repeat to compare trees; default: one, 'this'")
    ap.add_argument("--timer-pythonpath", default="", help="PYTHONPATH for the fresh-process timer")
    ap.add_argument("--concurrent-timer", action="store_true",
                    help="also run a fresh-process bare timer during each demo, from --bare-timer-s + 4 s after "
                         "its start for --duration - 6 s (while the session ticks)")
    ap.add_argument("--load", type=int, default=0,
                    help="run N CPU-bound processes (ordinary priority) through every run: the loaded case")
    ap.add_argument("--out-dir", default=str(Path("/tmp") / "rtsnn-bench-demo"), help="session folders go here")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    variants = [v.split("=", 1) if "=" in v else (v, "") for v in args.variant] or [("this", "")]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    timers: list[dict[str, Any]] = []
    if args.load < 0:
        raise SystemExit(f"bench_demo: --load must be >= 0, got {args.load}")
    hogs = [subprocess.Popen([sys.executable, "-c", LOAD_CHILD]) for _ in range(args.load)]
    try:
        _repeats(args, variants, runs, timers)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    out = {"bench": "demo_deadlines", "duration_s": args.duration, "repeats": args.repeats,
           "bare_timer_s": args.bare_timer_s, "fresh_timer_s": args.timer_s, "cpus": os.cpu_count(),
           "load_processes": args.load,
           "floor": "session miss rate <= 1.2x the bare timer's in the same run",
           "variants": {name: summarise(runs[name], timers) for name, _ in variants},
           "runs": runs, "fresh_timers": timers, "t_end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    text = json.dumps(out, allow_nan=False)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


def _repeats(args: argparse.Namespace, variants: list[Any], runs: dict[str, list[dict[str, Any]]],
             timers: list[dict[str, Any]]) -> None:
    for k in range(args.repeats):
        order = variants if k % 2 == 0 else variants[::-1]
        for name, path in order:
            print(f"[{k + 1}/{args.repeats}] {name}: demo {args.duration:g} s", file=sys.stderr, flush=True)
            before = _load()
            conc = (args.bare_timer_s + 4.0, max(1.0, args.duration - 6.0)) if args.concurrent_timer else None
            r = run_demo(args.duration, args.bare_timer_s, path, args.out_dir, conc)
            runs[name].append({"repeat": k, **r, "loadavg_before": before, "loadavg_after": _load()})
            print(f"    misses {r['deadline_misses']}/{r['ticks']} (late wake {r['late_wake']}, slow tick "
                  f"{r['slow_tick']}), bare in-process {r['bare_timer_misses']}/{r['bare_timer_ticks']}, "
                  f"load {before}" + (f", concurrent bare {r['concurrent_timer']['misses']}/"
                                      f"{r['concurrent_timer']['ticks']}" if r["concurrent_timer"] else ""),
                  file=sys.stderr, flush=True)
        if args.timer_s > 0:
            before = _load()
            t = run_fresh_timer(args.timer_s, args.timer_pythonpath, args.out_dir)
            timers.append({"repeat": k, **t, "loadavg_before": before, "loadavg_after": _load()})
            print(f"    fresh bare timer {t['misses']}/{t['ticks']}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
