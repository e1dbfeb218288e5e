"""The wall-clock bounds that the unit tests no longer assert, measured. One JSON line.

The unit tests check behaviour (ordering, counts, that something happens); how *fast* it
happens depends on the machine and its load, so it is measured here, each check
``--repeats`` times, and compared with the bound the tests used to hold:

* ``clock``: 300 ticks of a 1 ms ``DeadlineClock`` with 200 us of work each: the time to the
  last tick's start (bound: under 299 + 5 ms, i.e. no drift) and each wait's lateness;
  ``skip_to_now`` after a 10.5 ms stall (bound: at most 14 slots skipped).
* ``recorder_push``: 150 pushes into a ``Recorder`` whose queue is full (bound: all in < 500 ms).
* ``supervised_pull``: ``SupervisedSource.pull`` every ~1 ms for 1 s while its adapter raises
  every 20 pulls, and for 0.8 s in which the first adapter hangs and is replaced after
  ``hang_timeout_s=0.2`` (bound: no pull over 50 ms; at least 60 gap ticks flagged).
* ``template_pull``: the template plugin's ``MySensorSource.pull`` every ~1 ms for 1 s
  (bound: no pull over 10 ms).
* ``mqtt_emit``: ``MqttSink.emit`` at ~1 kHz for 0.5 s with a private mosquitto, then 0.5 s
  after it was killed (bound: median under 200 us, none over 50 ms); skipped without mosquitto.
* ``lsl_source``: ``LslSource`` against real outlets: how long ``open`` takes to give up with
  ``resolve_timeout_s=0.3`` (bound: < 2 s), to flag a silent stream with
  ``loss_timeout_s=0.3`` (bound: 0.25 to 0.6 s after open), to flag a destroyed outlet (bound:
  < 0.8 s), and how far a sample's timestamp is from its push (bound: < 50 ms).

Each check reports the median over repeats of every figure, every repeat, its bound and
``held`` (the bound holds for the medians) / ``held_every_repeat``. ``--strict`` exits 1 when
a bound did not hold (``make test-timing``).

    .venv/bin/python scripts/bench_timing_bounds.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _us(ns: np.ndarray | list[int]) -> dict[str, float]:
    """p50 / p99 / max of durations given in ns, in microseconds."""
    a = np.asarray(ns, np.float64) / 1e3
    return {"p50_us": round(float(np.median(a)), 2), "p99_us": round(float(np.percentile(a, 99)), 2),
            "max_us": round(float(a.max()), 2)}


# ---------------------------------------------------------------- the checks (one repeat each)
def check_clock() -> dict[str, Any]:
    from rtsnn.clock import DeadlineClock

    clock = DeadlineClock(1e-3)
    clock.start()
    t0 = time.perf_counter_ns()
    late = []
    for _ in range(300):
        late.append(clock.wait())
        time.sleep(0.0002)  # work inside the tick
        clock.advance()
    elapsed_ms = (time.perf_counter_ns() - t0) / 1e6
    stall = DeadlineClock(1e-3)
    stall.start()
    time.sleep(0.0105)
    skipped = stall.skip_to_now()
    return {"elapsed_ms": round(elapsed_ms, 3), **{f"lateness_{k}": v for k, v in _us(late).items()},
            "skipped_after_10_5_ms": skipped}


def check_recorder_push() -> dict[str, Any]:
    from rtsnn.stream.recorder import Recorder

    with tempfile.TemporaryDirectory() as d:
        rec = Recorder(Path(d) / "q.xdf", flush_interval_s=10.0, max_queued_blocks=100)
        sid = rec.add_stream("x", ["a"])
        block = np.zeros((1, 1), np.float32)
        each = []
        t0 = time.perf_counter_ns()
        for _ in range(150):
            t = time.perf_counter_ns()
            rec.push(sid, 0.0, block)
            each.append(time.perf_counter_ns() - t)
        total_ms = (time.perf_counter_ns() - t0) / 1e6
        dropped = rec.stats()["dropped_blocks"]
        rec.close()
    return {"total_ms": round(total_ms, 3), **{f"push_{k}": v for k, v in _us(each).items()},
            "dropped_blocks": dropped}


class _MisbehavingAdapter:
    """A fake sensor adapter: one sample per pull; after ``fail_after`` pulls it raises
    (mode 'raise') or hangs (mode 'hang'); mode 'ok' never fails."""

    def __init__(self, mode: str, fail_after: int):
        self.mode, self.fail_after, self.n_channels = mode, fail_after, 2
        self.pulls = 0
        self.release = threading.Event()

    def open(self) -> None:
        pass

    def pull(self, samples_out, timestamps_out) -> int:
        self.pulls += 1
        if self.pulls > self.fail_after:
            if self.mode == "raise":
                raise RuntimeError("adapter exploded")
            if self.mode == "hang":
                self.release.wait(30)  # stuck in a driver call
        samples_out[0] = 1.0
        timestamps_out[0] = time.monotonic()
        return 1

    def stats(self) -> dict[str, int]:
        return {"pulls": self.pulls}

    def close(self) -> None:
        self.release.set()


def _pull_for(pull: Callable[[], Any], in_gap: Callable[[], bool], duration_s: float) -> tuple[list[int], int]:
    """Call ``pull`` every ~1 ms for ``duration_s``; returns each call's ns and the gap ticks."""
    durations, gaps = [], 0
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        t = time.perf_counter_ns()
        pull()
        durations.append(time.perf_counter_ns() - t)
        gaps += bool(in_gap())
        time.sleep(0.001)
    return durations, gaps


def check_supervised_pull() -> dict[str, Any]:
    from rtsnn.stream.supervise import SupervisedSource

    out: dict[str, Any] = {}
    buf, ts = np.zeros((64, 2), np.float32), np.zeros(64)
    made: list[_MisbehavingAdapter] = []

    def hang_once() -> _MisbehavingAdapter:  # the first instance hangs, its replacements work
        made.append(_MisbehavingAdapter("hang" if not made else "ok", 10 if not made else 10**9))
        return made[-1]

    runs = {"raise": dict(factory=lambda: _MisbehavingAdapter("raise", 20), backoff_initial_s=0.02,
                          backoff_max_s=0.08, healthy_after_s=10.0),
            "hang": dict(factory=hang_once, hang_timeout_s=0.2, backoff_initial_s=0.02)}
    for mode, kw in runs.items():
        src = SupervisedSource(**kw)
        src.open()
        try:
            durations, gaps = _pull_for(lambda: src.pull(buf, ts), lambda: src.in_gap, 1.0 if mode == "raise" else 0.8)
        finally:
            src.close()
        out.update({f"{mode}_{k}": v for k, v in _us(durations).items()})
        out[f"{mode}_gap_ticks"] = gaps
    return out


def check_template_pull() -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "plugins" / "template"))
    from rtsnn_mysensor.source import MySensorSource

    src = MySensorSource(n_channels=8, srate_hz=1000.0)
    src.open()
    buf, ts = np.zeros((1024, 8), np.float32), np.zeros(1024)
    try:
        durations, _ = _pull_for(lambda: src.pull(buf, ts), lambda: False, 1.0)
    finally:
        src.close()
    return {f"pull_{k}": v for k, v in _us(durations).items()}


def check_mqtt_emit() -> dict[str, Any]:
    from rtsnn.stream.mqtt_common import PrivateBroker, find_mosquitto
    from rtsnn.stream.mqtt_sink import MqttSink, wait_until

    if find_mosquitto() is None:
        return {"skipped": "mosquitto not installed (apt-get install -y mosquitto)"}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        broker = PrivateBroker(d).start()
        sink = MqttSink("bench", port=broker.port, queue_size=32, ttl_s=0.05, backoff_initial_s=0.05,
                        backoff_max_s=0.2)
        sink.open(["a"], ["1"])
        v = np.zeros(1, np.float32)
        try:
            if not wait_until(lambda: sink.connected, 10):
                return {"skipped": f"the sink did not connect to the private broker: {sink.stats()}"}
            for phase in ("up", "down"):
                if phase == "down":
                    broker.stop()
                    wait_until(lambda: not sink.connected, 10)
                durations, _ = _pull_for(lambda: sink.emit(v, 0.0), lambda: False, 0.5)
                out.update({f"broker_{phase}_{k}": x for k, x in _us(durations).items()})
        finally:
            sink.close()
            broker.stop()
    return out


def check_lsl_source() -> dict[str, Any]:
    import pylsl

    from rtsnn.stream.lsl_source import LslSource, StreamNotFoundError

    def outlet(name: str) -> pylsl.StreamOutlet:
        return pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 2, 1000.0, "float32", name + "-sid"))

    def wait_lost(src: LslSource, t_from: float, limit_s: float = 10.0) -> float | None:
        buf, ts = np.zeros((1024, 2), np.float32), np.zeros(1024)
        while time.monotonic() - t_from < limit_s:
            src.pull(buf, ts)
            if not src.connected:
                return time.monotonic() - t_from
            time.sleep(0.001)
        return None

    out: dict[str, Any] = {}
    absent = LslSource(name=f"rtsnn-bench-absent-{uuid.uuid4().hex[:8]}", n_channels=2, resolve_timeout_s=0.3)
    t0 = time.monotonic()
    try:
        absent.open()
    except StreamNotFoundError:
        pass
    out["resolve_give_up_s"] = round(time.monotonic() - t0, 4)

    name = f"rtsnn-bench-silent-{uuid.uuid4().hex[:8]}"
    silent_outlet = outlet(name)
    t0 = time.monotonic()
    src = LslSource(name=name, n_channels=2, loss_timeout_s=0.3, resolve_timeout_s=5.0)
    src.open()
    took = wait_lost(src, t0)
    src.close()
    del silent_outlet
    out["silence_detected_s"] = None if took is None else round(took, 4)

    name = f"rtsnn-bench-gone-{uuid.uuid4().hex[:8]}"
    gone_outlet = outlet(name)
    src = LslSource(name=name, n_channels=2, loss_timeout_s=0.3, resolve_timeout_s=5.0)
    src.open()
    buf, ts = np.zeros((1024, 2), np.float32), np.zeros(1024)
    got, t_push, deadline = 0, 0.0, time.monotonic() + 10.0
    ages = []
    while got < 20 and time.monotonic() < deadline:
        t_push = pylsl.local_clock()
        gone_outlet.push_sample([1.0, 2.0])
        time.sleep(0.002)
        n = src.pull(buf, ts)
        if n:
            ages.append(abs(ts[n - 1] - t_push))
            got += n
    out["timestamp_error_max_s"] = round(max(ages), 6) if ages else None
    del gone_outlet  # the only reference: the stream vanishes
    took = wait_lost(src, time.monotonic())
    src.close()
    out["outlet_gone_detected_s"] = None if took is None else round(took, 4)
    return out


# bound(medians) -> held; the text says what it is
BOUNDS: dict[str, tuple[str, Callable[[dict], bool]]] = {
    "clock": ("elapsed_ms < 304 (299 ms of ticks + 5 ms) and skipped_after_10_5_ms <= 14",
              lambda m: 298.0 <= m["elapsed_ms"] < 304.0 and 10 <= m["skipped_after_10_5_ms"] <= 14),
    "recorder_push": ("total_ms < 500 for 150 pushes into a full queue", lambda m: m["total_ms"] < 500.0),
    "supervised_pull": ("raise_max_us and hang_max_us < 50000; hang_gap_ticks >= 60",
                        lambda m: m["raise_max_us"] < 50e3 and m["hang_max_us"] < 50e3 and m["hang_gap_ticks"] >= 60),
    "template_pull": ("pull_max_us < 10000", lambda m: m["pull_max_us"] < 10e3),
    "mqtt_emit": ("broker_{up,down}_p50_us < 200 and broker_{up,down}_max_us < 50000",
                  lambda m: all(m[f"broker_{p}_p50_us"] < 200 and m[f"broker_{p}_max_us"] < 50e3
                                for p in ("up", "down"))),
    "lsl_source": ("resolve_give_up_s < 2; 0.25 <= silence_detected_s < 0.6; outlet_gone_detected_s < 0.8; "
                   "timestamp_error_max_s < 0.05",
                   lambda m: (m["resolve_give_up_s"] < 2.0 and m["silence_detected_s"] is not None
                              and 0.25 <= m["silence_detected_s"] < 0.6 and m["outlet_gone_detected_s"] is not None
                              and m["outlet_gone_detected_s"] < 0.8 and m["timestamp_error_max_s"] is not None
                              and m["timestamp_error_max_s"] < 0.05)),
}
CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "clock": check_clock, "recorder_push": check_recorder_push, "supervised_pull": check_supervised_pull,
    "template_pull": check_template_pull, "mqtt_emit": check_mqtt_emit, "lsl_source": check_lsl_source,
}


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median over repeats (None if any repeat had None)."""
    out = {}
    for key in runs[0]:
        vals = [r[key] for r in runs]
        out[key] = None if any(v is None for v in vals) else statistics.median(vals)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs of each check (default 5)")
    ap.add_argument("--checks", default=",".join(CHECKS), help=f"comma-separated subset of {','.join(CHECKS)}")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a bound did not hold")
    args = ap.parse_args()
    names = [c for c in args.checks.split(",") if c]
    unknown = [c for c in names if c not in CHECKS]
    if unknown:
        ap.error(f"--checks: unknown check(s) {unknown}; known: {list(CHECKS)}")
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    results: dict[str, Any] = {}
    for name in names:
        runs = []
        for k in range(args.repeats):
            print(f"[{name} {k + 1}/{args.repeats}]", file=sys.stderr, flush=True)
            runs.append(CHECKS[name]())
            if "skipped" in runs[-1]:
                break
        if "skipped" in runs[-1]:
            results[name] = {"skipped": runs[-1]["skipped"]}
            continue
        text, holds = BOUNDS[name]
        med = _median(runs)
        results[name] = {"median": med, "bound": text, "held": bool(holds(med)),
                         "held_every_repeat": all(bool(holds(r)) for r in runs), "runs": runs}
    held = [r["held"] for r in results.values() if "held" in r]
    print(json.dumps({"bench": "timing_bounds", "repeats": args.repeats, "cpus": os.cpu_count(),
                      "loadavg_1min": round(os.getloadavg()[0], 2), "checks": results, "all_held": all(held),
                      "t_end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, allow_nan=False))
    return 1 if args.strict and not all(held) else 0


if __name__ == "__main__":
    sys.exit(main())
