"""Does an attached dashboard slow the session? One JSON line.

Runs the embedded demo session (synthetic user over LSL -> 256-neuron ALIF decoder -> LSL
outlet) for ``--duration`` seconds, ``--repeats`` times in each mode, alternating:

* ``without``:  the session publishes its monitor (raster, outputs, status), nobody watches;
* ``with_<p>``: the same, plus ``rtsnn dashboard --priority <p>`` attached offscreen for the
  whole run, one mode per value of ``--priority`` (default ``idle``, the dashboard's default);
* ``with_consumer`` (``--consumer``): the dashboard's monitor client alone (LSL inlets polled
  30 times a second, no Qt, SCHED_IDLE), to tell the cost of being watched from that of drawing;
* ``with_burner`` (``--burner``): a peer that only spins 10 ms in every 33 ms under SCHED_IDLE,
  the dashboard's CPU pattern without its work: what any such load costs on this machine.

Each session runs in its own process with its own monitor (``session.monitor``: the tap on
the compute thread, the publisher on the session's I/O thread), as every session does.

Prints, per mode (medians over repeats, then each repeat's figures to set a difference
against the run-to-run spread): end-to-end p50 / p99, input age p99 (sample timestamp to the
start of the tick that took it) and the fraction of samples older than one tick, deadline-miss rate, per-stage p99s, monitor lost rows and,
with a dashboard, its measured frame rate, CPU share and applied priority; then each
with-mode's e2e p99 over the without-mode's, the load average and the hypervisor steal over
the run (numbers are only comparable within one run of this script, at low steal). The demo
config ticks the session 500 us after the synthetic user's pushes (``session.tick_phase_us``),
so e2e does not carry a random 0..1 ms phase between the two 1 kHz clocks.

    python scripts/bench_dashboard.py --duration 20 --repeats 5 --priority idle,nice
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
                      "input_age_over_one_tick": summary["input_age_over_one_tick"],
                      "deadline_miss_rate": summary["deadline_miss_rate"], "ticks": summary["ticks"],
                      "stage_p99_us": {k: st[k]["p99"] for k in ("lateness", "ingest", "emit", "compute", "tick")},
                      "monitor": monitor.counters, "monitor_service_us_max": monitor.service_us_max}))


def _paced(duration_s: float, rate_hz: float, work) -> float:
    """Call ``work()`` ``rate_hz`` times a second on absolute deadlines for ``duration_s``;
    returns this process's CPU use as a share of a core."""
    t0, c0 = time.perf_counter(), time.process_time()
    k = 0
    while time.perf_counter() < t0 + duration_s:
        work()
        k += 1
        time.sleep(max(0.0, t0 + k / rate_hz - time.perf_counter()))
    return round((time.process_time() - c0) / (time.perf_counter() - t0), 3)


def consume(name: str, duration_s: float) -> None:
    """The monitor client without Qt (the LSL inlets and buffers the dashboard reads), under
    SCHED_IDLE, polled 30 times a second: what attaching costs the session without drawing."""
    from rtsnn.viz.cli import lower_priority
    from rtsnn.viz.client import MonitorClient, discover

    applied = lower_priority("idle", 10)
    client = MonitorClient(discover(session=name, timeout_s=60.0))
    cpu = _paced(duration_s, 30.0, client.poll)
    print(json.dumps({"priority": applied, "cpu_fraction": cpu, "fps": None, **client.counts}))
    client.close()


def burn(name: str, duration_s: float, busy_ms: float = 10.0) -> None:
    """A peer with the dashboard's CPU pattern and nothing else: under SCHED_IDLE, from when
    the session's monitor appears (as the dashboard starts), spin ``busy_ms`` 30 times a
    second (30 frames of ~10 ms: ~0.3 of a core)."""
    from rtsnn.viz.cli import lower_priority
    from rtsnn.viz.client import discover

    applied = lower_priority("idle", 10)
    discover(session=name, timeout_s=60.0)

    def spin() -> None:
        t_end = time.perf_counter() + busy_ms / 1000.0
        while time.perf_counter() < t_end:
            pass

    print(json.dumps({"priority": applied, "cpu_fraction": _paced(duration_s, 30.0, spin), "fps": None}))


def run_mode(priority: str | None, duration_s: float, k: int, tick_phase_us: float | None) -> dict:
    """One session; with a dashboard attached at ``priority`` unless that is None (``consumer``:
    the bare monitor client instead; ``burner``: the CPU-only peer instead)."""
    name = f"bench-dash-{os.getpid()}-{k}-{priority or 'none'}"
    j0 = _cpu_jiffies()
    py = sys.executable
    phase = [] if tick_phase_us is None else ["--tick-phase-us", str(tick_phase_us)]
    sess = subprocess.Popen([py, __file__, "--child", name, "--duration", str(duration_s)] + phase,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    dash = None
    if priority == "burner":
        dash = subprocess.Popen([py, __file__, "--burn", name, "--duration", str(duration_s + 2.0)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    elif priority == "consumer":
        dash = subprocess.Popen([py, __file__, "--consume", name, "--duration", str(duration_s + 2.0)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    elif priority is not None:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        # attached for the session's whole run (set-up and warm-up take a few seconds)
        dash = subprocess.Popen([py, "-m", "rtsnn.cli", "dashboard", "--session", name, "--wait", "60",
                                 "--duration", str(duration_s + 2.0), "--json", "--priority", priority],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=env)
    out, _ = sess.communicate(timeout=duration_s + 180)
    if sess.returncode != 0 or not out.strip():
        raise RuntimeError(f"session child failed (rc {sess.returncode})")
    res = json.loads(out.strip().splitlines()[-1])
    res["steal_fraction"] = _steal(j0, _cpu_jiffies())
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


def _median(runs: list[dict], get) -> float:
    return statistics.median(get(r) for r in runs)


def _mode_summary(rs: list[dict]) -> dict:
    out = {"e2e_p99_us": _median(rs, lambda r: r["e2e_p99_us"]),
           "e2e_p50_us": _median(rs, lambda r: r["e2e_p50_us"]),
           # the part of e2e before the session had the sample (transport + wait for the tick)
           "input_age_p99_us": _median(rs, lambda r: r["input_age_p99_us"]),
           # the fraction of samples the session got more than one tick after their timestamp
           "input_age_over_one_tick": _median(rs, lambda r: r["input_age_over_one_tick"]),
           "deadline_miss_rate": _median(rs, lambda r: r["deadline_miss_rate"]),
           # where a difference comes from: wake-up lateness (scheduler), ingest (LSL pulls),
           # emit (sinks incl. the monitor tap), compute (encode+step+readout), whole tick
           "stage_p99_us": {k: _median(rs, lambda r: r["stage_p99_us"][k]) for k in rs[0]["stage_p99_us"]},
           "per_repeat": {"e2e_p99_us": [r["e2e_p99_us"] for r in rs],
                          "input_age_p99_us": [r["input_age_p99_us"] for r in rs],
                          "input_age_over_one_tick": [r["input_age_over_one_tick"] for r in rs],
                          "lateness_p99_us": [r["stage_p99_us"]["lateness"] for r in rs],
                          "deadline_miss_rate": [r["deadline_miss_rate"] for r in rs],
                          "steal_fraction": [r["steal_fraction"] for r in rs]},
           "monitor_lost_rows": [r["monitor"]["lost_rows"] for r in rs]}
    if "dashboard" in rs[0]:
        fps = [r["dashboard"].get("fps") or 0.0 for r in rs]
        out.update(dashboard_fps=statistics.median(fps), dashboard_fps_per_repeat=fps,
                   dashboard_cpu_fraction=[r["dashboard"].get("cpu_fraction") for r in rs],
                   dashboard_priority=[r["dashboard"].get("priority") for r in rs],
                   dashboard_raster_rows=[r["dashboard"].get("raster_rows") for r in rs])
    return out


def _steal(j0: tuple[int, int] | None, j1: tuple[int, int] | None) -> float | None:
    return round((j1[0] - j0[0]) / max(j1[1] - j0[1], 1), 4) if j0 and j1 else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per session (default 20)")
    ap.add_argument("--repeats", type=int, default=1, help="sessions per mode, alternating (default 1)")
    ap.add_argument("--tick-phase-us", type=float, default=None,
                    help="session.tick_phase_us for all modes (default: the demo config's)")
    ap.add_argument("--priority", default="idle",
                    help="the dashboard's --priority; a comma list (idle,nice) runs one 'with' mode per "
                         "value in each repeat (default idle, the dashboard's default)")
    ap.add_argument("--max-steal", type=float, default=0.01,
                    help="also summarise only the repeats in which every mode's run saw at most this "
                         "hypervisor steal (fraction of CPU time, default 0.01); runs above it are "
                         "slowed by other VMs, not by the dashboard")
    ap.add_argument("--consumer", action="store_true",
                    help="add a mode with the bare monitor client (LSL inlets, no Qt, SCHED_IDLE) attached "
                         "instead of the dashboard: the part of any difference that is not drawing")
    ap.add_argument("--burner", action="store_true",
                    help="add a mode with a peer that only burns the dashboard's CPU pattern (10 ms busy in "
                         "every 33 ms, SCHED_IDLE): the part of any difference any such load would cause")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--consume", help=argparse.SUPPRESS)
    ap.add_argument("--burn", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.duration, args.tick_phase_us)
        return 0
    if args.consume:
        consume(args.consume, args.duration)
        return 0
    if args.burn:
        burn(args.burn, args.duration)
        return 0
    priorities = [p.strip() for p in args.priority.split(",") if p.strip()]
    if args.duration < 5 or args.repeats < 1 or not priorities:
        raise SystemExit("--duration must be >= 5 s, --repeats >= 1 and --priority name at least one")
    for p in priorities:
        if p not in ("idle", "nice", "normal"):
            raise SystemExit(f"--priority: unknown {p!r} (idle, nice, normal)")
    if args.consumer:
        priorities.append("consumer")
    if args.burner:
        priorities.append("burner")
    modes = ["without"] + [f"with_{p}" for p in priorities]
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    j0 = _cpu_jiffies()
    for k in range(args.repeats):
        runs["without"].append(run_mode(None, args.duration, k, args.tick_phase_us))
        for p in priorities:
            runs[f"with_{p}"].append(run_mode(p, args.duration, k, args.tick_phase_us))
    j1 = _cpu_jiffies()
    steal = _steal(j0, j1)
    summary = {m: _mode_summary(rs) for m, rs in runs.items()}
    base = summary["without"]["e2e_p99_us"]
    ratios = {m: round(summary[m]["e2e_p99_us"] / base, 3) if base else None for m in modes[1:]}
    quiet = [k for k in range(args.repeats)
             if all((runs[m][k]["steal_fraction"] or 0.0) <= args.max_steal for m in modes)]
    low = None
    if quiet:
        low_summary = {m: _mode_summary([runs[m][k] for k in quiet]) for m in modes}
        b = low_summary["without"]["e2e_p99_us"]
        low = {"max_steal": args.max_steal, "repeats": quiet,
               "e2e_p99_ratio_with_over_without": {m: round(low_summary[m]["e2e_p99_us"] / b, 3) if b else None
                                                   for m in modes[1:]},
               "modes": {m: {k: v for k, v in ms.items() if k != "per_repeat"} for m, ms in low_summary.items()}}
    print(json.dumps({
        "bench": "dashboard", "duration_s": args.duration, "repeats": args.repeats, "modes": summary,
        "e2e_p99_ratio_with_over_without": ratios, "low_steal": low, "dashboard_target_fps": 30.0,
        "loadavg_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(), "steal_fraction": steal,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
