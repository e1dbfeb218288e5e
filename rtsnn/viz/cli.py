"""``rtsnn dashboard``: attach the live dashboard to a running session's monitor.

    rtsnn dashboard [--session NAME | --source-id PREFIX] [--fps 30] [--wait S]
                    [--screenshot FILE --after S] [--json]

Without a display (no ``DISPLAY`` / ``WAYLAND_DISPLAY`` and no ``QT_QPA_PLATFORM``) the
dashboard can only run offscreen, which is useful with ``--screenshot``: it then runs ``--after``
seconds, saves a PNG of the window, prints one JSON line (frames painted, measured fps,
samples received) and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("dashboard", help="live dashboard of a running session (pyqtgraph)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--session", help="session name (session.name in its config); default: the newest")
    who.add_argument("--source-id", help="prefix of the monitor's LSL source_id, e.g. rtsnn-monitor:host:pid")
    p.add_argument("--fps", type=float, default=30.0, help="target frame rate (default 30)")
    p.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the session to appear")
    p.add_argument("--raster-window", type=float, default=1.0, help="seconds of spike raster shown")
    p.add_argument("--screenshot", help="save a PNG of the window after --after seconds, then exit")
    p.add_argument("--after", type=float, default=2.0, help="seconds before the screenshot (default 2)")
    p.add_argument("--duration", type=float, help="exit after this many seconds (no screenshot)")
    p.add_argument("--size", default="1400x900", help="window size WxH (default 1400x900)")
    p.add_argument("--priority", choices=PRIORITIES, default="idle",
                   help="the dashboard's own CPU priority. idle (default): SCHED_IDLE for all its threads "
                        "(Linux), so any session, data-source or LSL thread that wakes up preempts it at once "
                        "(falls back to nice elsewhere); nice: raise its niceness by --nice; normal: unchanged")
    p.add_argument("--nice", type=int, default=10,
                   help="niceness increment for --priority nice and the fallback of idle (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON line with fps and counts at exit")
    p.set_defaults(func=cmd_dashboard)


PRIORITIES = ("idle", "nice", "normal")


def lower_priority(mode: str, nice: int) -> str:
    """Lower this process's CPU priority; returns what was applied: ``idle``, ``nice+N`` or
    ``normal``.

    ``idle`` puts every thread that exists now under SCHED_IDLE, and threads started later
    (liblsl's, Qt's) inherit it. A SCHED_IDLE thread runs only when no ordinary thread wants
    that CPU, and a waking ordinary thread preempts it at once. Niceness only weights the
    share of CPU time: on the 2-vCPU development VM, with a dashboard at nice 10 beside the
    demo, 5.2 % of the co-located synthetic user's samples reached the session a tick late
    (1.7 % unwatched) and the e2e p99 went from 1.58 to 2.59 ms; at SCHED_IDLE 2.5 % and
    1.61 ms (``scripts/bench_dashboard.py --priority idle,nice``, docs/dashboard.md).
    Lowering a priority needs no privilege.
    """
    if mode not in PRIORITIES:
        raise ValueError(f"--priority must be one of {', '.join(PRIORITIES)}, got {mode!r}")
    if not 0 <= nice <= 19:
        raise ValueError(f"--nice must be in 0..19, got {nice}")
    if mode == "idle" and hasattr(os, "SCHED_IDLE"):
        try:
            for tid in _thread_ids() or [0]:
                try:
                    os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
                except ProcessLookupError:  # that thread ended meanwhile
                    pass
            return "idle"
        except OSError:
            pass  # e.g. a sandbox that forbids it: nice still helps
    if mode in ("idle", "nice") and nice:
        os.nice(nice)
        return f"nice+{nice}"
    return "normal"


def _thread_ids() -> list[int] | None:
    """This process's thread ids (Linux /proc), None where they cannot be listed."""
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return None


def threads_not_idle() -> int | None:
    """How many of this process's threads are not under SCHED_IDLE (None off Linux)."""
    tids = _thread_ids() if hasattr(os, "SCHED_IDLE") else None
    if tids is None:
        return None
    n = 0
    for tid in tids:
        try:
            n += os.sched_getscheduler(tid) != os.SCHED_IDLE
        except OSError:  # the thread ended meanwhile
            pass
    return n


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 1400x900, got {text!r}") from None
    if w < 200 or h < 150:
        raise ValueError(f"--size must be at least 200x150, got {text!r}")
    return w, h


def cmd_dashboard(args: argparse.Namespace) -> int:
    if not args.fps > 0:
        raise ValueError(f"--fps must be > 0, got {args.fps}")
    if args.screenshot and not args.after > 0:
        raise ValueError(f"--after must be > 0 s, got {args.after}")
    if args.duration is not None and not args.duration > 0:
        raise ValueError(f"--duration must be > 0 s, got {args.duration}")
    size = _parse_size(args.size)
    priority = lower_priority(args.priority, args.nice)
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or
                    os.environ.get("QT_QPA_PLATFORM"))
    if headless:
        if not (args.screenshot or args.duration):
            raise ValueError("no display (DISPLAY / WAYLAND_DISPLAY unset): run with a display, or offscreen "
                             "with --screenshot FILE or --duration S")
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from rtsnn.viz.dashboard import DashboardWindow, ensure_app  # MissingExtraError names the extra
    from rtsnn.viz.client import MonitorClient, discover

    streams = discover(session=args.session, source_id=args.source_id, timeout_s=args.wait)
    app = ensure_app()
    client = MonitorClient(streams, raster_window_s=args.raster_window)
    win = DashboardWindow(client, fps=args.fps)
    win.resize(*size)
    win.show()
    win.start()
    run_s = args.after if args.screenshot else args.duration
    result: dict[str, Any] = {}
    if run_s is not None:
        from pyqtgraph.Qt import QtCore

        def finish() -> None:
            if args.screenshot:
                if not win.grab().save(args.screenshot):
                    result["error"] = f"could not write {args.screenshot}"
                result["screenshot"] = args.screenshot
            app.quit()

        QtCore.QTimer.singleShot(int(run_s * 1000), finish)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    app.exec()
    win.stop()
    wall_s = time.perf_counter() - t0
    # the dashboard's own CPU use (all its threads): what it takes from the session's machine
    result["cpu_fraction"] = round((time.process_time() - cpu0) / wall_s, 3) if wall_s > 0 else None
    if priority == "idle":
        result["threads_not_idle"] = threads_not_idle()  # 0: liblsl's and Qt's threads inherited it
    if hasattr(os, "nice"):
        result["niceness"] = os.nice(0)
    result.update(priority=priority, session=streams.session, key=streams.key, seconds=round(wall_s, 3),
                  target_fps=args.fps, fps=round(win.fps(), 2), frames=win.frames_painted,
                  updates=win.frames_updated, **client.counts)
    client.close()
    if args.json:
        print(json.dumps(result))
    if "error" in result:
        print(f"rtsnn: error: {result['error']}", file=sys.stderr)
        return 1
    return 0
