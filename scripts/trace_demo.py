"""Where the demo's late ticks come from: the compute thread's wake-ups against the other
threads' Python work, traced in-process. JSON out.

Runs ``rtsnn demo`` in this process for ``--duration`` seconds with three probes (diagnostics;
they cost a few us a tick, so read the figures next to each other, not as the session's own):

* the compute thread's sleep is done by a numba ``nogil`` function that calls
  ``clock_nanosleep`` and reads ``CLOCK_MONOTONIC`` before it returns, so each tick splits into
  ``os_wake_late`` (the kernel woke the thread this long after its sleep target), ``gil_wait``
  (it then waited this long for the GIL), ``lateness`` (start after the deadline, after the
  spin) and ``work`` (the tick body, ingest to emit);
* the I/O loop's pieces, the monitor's service and status, the main thread's status and
  :meth:`rtsnn.clock.TickSlack.wait` are timed as intervals ``(name, thread, start, end)``;
* a tick is *bad* when its GIL wait was over 50 us, its lateness over 100 us or it missed its
  deadline; each bad tick is attributed to every traced interval that overlaps it (none: the
  machine, or a thread not traced); each miss goes to its largest delay (``misses_by_cause``:
  ``kernel_wake``, ``gil_wait``, ``work``, or ``carried`` when the loop was already behind).

    python scripts/trace_demo.py --duration 20
    python scripts/trace_demo.py --duration 20 --no-slack   # the other threads not kept out of the ticks
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import sys
import threading
import time
from typing import Any

import numpy as np
from numba import njit

_libc = ctypes.CDLL(None, use_errno=True)
_nanosleep = _libc.clock_nanosleep
_nanosleep.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_nanosleep.restype = ctypes.c_int
_gettime = _libc.clock_gettime
_gettime.argtypes = [ctypes.c_int, ctypes.c_void_p]
_gettime.restype = ctypes.c_int
_CLOCK_MONOTONIC, _TIMER_ABSTIME = 1, 1


@njit(nogil=True)
def _sleep_until_ns(target_ns: int, ts: np.ndarray) -> int:
    """Sleep until ``target_ns`` on CLOCK_MONOTONIC (perf_counter_ns's clock) without the GIL;
    returns the clock read on waking, before the GIL is taken back."""
    ts[0] = target_ns // 1_000_000_000
    ts[1] = target_ns % 1_000_000_000
    _nanosleep(_CLOCK_MONOTONIC, _TIMER_ABSTIME, ts.ctypes, ts.ctypes)
    _gettime(_CLOCK_MONOTONIC, ts.ctypes)
    return ts[0] * 1_000_000_000 + ts[1]


def _pct_us(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {}
    return {**{f"p{q:g}": round(float(np.percentile(x, q)) / 1e3, 1) for q in (50, 99, 99.9)},
            "max": round(float(x.max()) / 1e3, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of timed ticks")
    ap.add_argument("--no-slack", action="store_true", help="the other threads ignore the compute thread's slack")
    ap.add_argument("--no-background-fifo", action="store_true",
                    help="session.background_realtime false: the other threads keep ordinary scheduling")
    ap.add_argument("--out-dir", default="/tmp/rtsnn-trace-demo", help="the session folder goes here")
    args = ap.parse_args()
    if not args.duration > 0:
        print(f"trace_demo: --duration must be > 0, got {args.duration}", file=sys.stderr)
        raise SystemExit(2)

    import rtsnn.clock as rclock
    import rtsnn.runtime.io_thread as rio
    import rtsnn.runtime.loop as rloop
    import rtsnn.runtime.monitor as rmon
    import rtsnn.runtime.session as rsess
    from rtsnn.cli import _demo_config_dict, _with_overrides
    from rtsnn.config import parse_config

    perf = time.perf_counter_ns
    n_max = int(args.duration * 1000 * 2) + 100_000
    rec = {k: np.zeros(n_max, np.int64) for k in ("target", "os_wake", "got_gil", "spin_end", "tick_end", "slept")}
    idx = [0]
    ts = np.zeros(2, np.int64)
    _sleep_until_ns(perf() - 1, ts)  # compiled before the session starts
    owner: dict[str, Any] = {}
    real_wait = rclock.DeadlineClock.wait

    def traced_wait(self: Any) -> int:
        if owner.setdefault("clock", self) is not self:  # the bare timer's clock, if any: untraced
            return real_wait(self)
        target = self.t0_ns + self.k * self.dt_ns
        wake_at = target - self.spin_ns
        now = perf()
        slept = wake_at > now  # else the loop is behind: an earlier tick's delay carried over
        if slept:
            woke = _sleep_until_ns(wake_at, ts)
            got = perf()
        else:
            woke = got = now
        now = perf()
        while now < target:
            now = perf()
        i = idx[0]
        if i < n_max:
            rec["target"][i], rec["os_wake"][i], rec["got_gil"][i], rec["spin_end"][i] = target, woke, got, now
            rec["slept"][i] = slept
        return now - target

    real_make_tick = rloop.make_tick

    def traced_make_tick(*a: Any, **kw: Any) -> Any:
        tick = real_make_tick(*a, **kw)

        def body(k: int, t_sched: int, late: int, measuring: bool) -> int:
            n = tick(k, t_sched, late, measuring)
            i = idx[0]
            if i < n_max:
                rec["tick_end"][i] = perf()
            idx[0] = i + 1
            return n
        return body

    spans: list[tuple[str, str, int, int]] = []

    def timed(owner_obj: Any, name: str, label: str) -> None:
        fn = getattr(owner_obj, name)

        def wrapper(*a: Any, **kw: Any) -> Any:
            t = perf()
            try:
                return fn(*a, **kw)
            finally:
                spans.append((label, threading.current_thread().name, t, perf()))
        setattr(owner_obj, name, wrapper)

    rclock.DeadlineClock.wait = traced_wait
    rloop.make_tick = traced_make_tick
    for name in ("write_rows", "dispatch_control", "drain_stage_events", "check_failures", "interval_metrics"):
        timed(rio, name, f"io.{name}")
    timed(rmon.SessionMonitor, "service", "monitor.service")
    timed(rmon.SessionMonitor, "status", "monitor.status")
    timed(rsess.Session, "status", "session.status")
    if args.no_slack:
        rclock.TickSlack.wait = lambda self, cost_ns=0: 0
        rclock.TickSlack.aligned = lambda self, seconds: seconds
    else:
        timed(rclock.TickSlack, "wait", "slack.wait")

    ns = argparse.Namespace(duration=args.duration, out_dir=args.out_dir)
    data = _with_overrides(_demo_config_dict(), ns)
    data["session"] = {**data["session"], "background_realtime": not args.no_background_fifo}
    cfg = parse_config(data, "<embedded demo config>")
    summary = rsess.Session(cfg, "<embedded demo config>").run()

    n = idx[0]
    keep = slice(n // 10, n)  # the first tenth: warm-up and start
    tg, woke, got, spin_end, tick_end, slept = (rec[k][keep] for k in ("target", "os_wake", "got_gil", "spin_end",
                                                                          "tick_end", "slept"))
    spin = int(cfg.session.spin_us * 1e3)
    dt = int(round(cfg.session.dt_s * 1e9))
    os_late, gil_wait, late, work = woke - (tg - spin), got - woke, spin_end - tg, tick_end - spin_end
    miss = tick_end > tg + dt
    bad = (gil_wait > 50_000) | (late > 100_000) | miss
    iv = np.array([[s[2], s[3]] for s in spans], np.int64).reshape(-1, 2)
    labels = np.array([s[0] for s in spans])
    blame: collections.Counter = collections.Counter()
    unexplained = 0
    for i in np.flatnonzero(bad):
        hit = set(labels[(iv[:, 0] < tick_end[i]) & (iv[:, 1] > tg[i] - spin)].tolist()) if len(iv) else set()
        unexplained += not hit
        blame.update(hit)
    # each miss by its largest delay: the kernel's wake-up, the wait for the GIL, the tick's own
    # work, or an earlier tick's delay carried over (the loop was behind: no sleep at all)
    causes = collections.Counter()
    for i in np.flatnonzero(miss):
        if not slept[i]:
            causes["carried"] += 1
        else:
            parts = {"kernel_wake": os_late[i], "gil_wait": gil_wait[i], "work": work[i]}
            causes[max(parts, key=parts.get)] += 1
    pieces = {lab: {"n": int((labels == lab).sum()), **_pct_us(iv[labels == lab, 1] - iv[labels == lab, 0])}
              for lab in sorted(set(labels.tolist()))}
    print(json.dumps({
        "trace": "demo_ticks", "duration_s": args.duration, "slack": not args.no_slack,
        "background_fifo": not args.no_background_fifo,
        "ticks_traced": int(tg.size), "misses": int(miss.sum()),
        "misses_by_cause": {k: causes.get(k, 0) for k in ("kernel_wake", "gil_wait", "work", "carried")},
        "os_wake_late_us": _pct_us(os_late), "gil_wait_us": _pct_us(gil_wait),
        "lateness_us": _pct_us(late), "work_us": _pct_us(work),
        "bad_ticks": int(bad.sum()), "bad_ticks_with_no_traced_work": unexplained,
        "bad_ticks_overlapping": dict(blame.most_common()), "pieces_us": pieces,
        "summary": {k: summary.get(k) for k in ("ticks", "skipped_ticks", "deadline_misses", "deadline_miss_causes",
                                                 "realtime", "background_realtime", "background_slack")},
    }, allow_nan=False))


if __name__ == "__main__":
    main()
