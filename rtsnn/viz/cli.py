"""``rtsnn dashboard``: attach the live dashboard to a running session's monitor.

    rtsnn dashboard [--session NAME | --source-id PREFIX] [--fps 30] [--wait S]
                    [--screenshot FILE --after S] [--json]

Without a display (no ``DISPLAY`` / ``WAYLAND_DISPLAY`` and no ``QT_QPA_PLATFORM``) the
dashboard can only run offscreen, which is useful with ``--screenshot``: it then runs ``--after``
seconds, saves a PNG of the window, prints one JSON line (frames painted, measured fps,
samples received) and exits.

On an X display Qt's xcb platform plugin needs a few X libraries that a minimal Debian lacks;
without them Qt aborts the whole process (SIGABRT, no Python exception). So before Qt starts,
``check_xcb`` loads each library the plugin links to and connects to the display, and a
failure becomes one error line naming the Debian packages to install (docs/dashboard.md).
"""

from __future__ import annotations

import argparse
import ctypes
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
    p.add_argument("--size", default="1400x900",
                   help="window size WxH (default 1400x900); the window grows where its plots need more room")
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


# The shared libraries Qt's xcb platform plugin needs (``ldd`` of PySide6's
# plugins/platforms/libqxcb.so, 6.11, its Qt libraries aside) and the Debian 12 package that
# ships each. The first ten are missing on a Debian 12 that has only what Qt offscreen needs;
# installing the first five brings the other five along.
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
}
OFFSCREEN_HINT = "or run offscreen: --screenshot FILE (or QT_QPA_PLATFORM=offscreen)"


def qt_platform(env: dict[str, str], system: str = sys.platform) -> str | None:
    """The Qt platform plugin the dashboard will start with: the first name in
    ``QT_QPA_PLATFORM`` (``xcb``, ``wayland``, ``offscreen``...); else on macOS / Windows
    their own (``native``, whatever ``DISPLAY`` says: XQuartz sets it); else ``wayland`` on a
    Wayland session (Qt 6 prefers it there), ``xcb`` where only ``DISPLAY`` is set; None
    without a display."""
    named = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if named:
        return named
    if system == "darwin" or system.startswith(("win", "cygwin")):
        return "native"
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
        return "wayland"
    if env.get("DISPLAY"):
        return "xcb"
    return None


def _loadable(soname: str) -> bool:
    """Whether the dynamic linker finds and loads ``soname`` (the same search Qt's plugin gets)."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_xcb_libraries() -> list[str]:
    """The libraries of ``XCB_LIBRARIES`` that cannot be loaded here."""
    return [soname for soname in XCB_LIBRARIES if not _loadable(soname)]


def _x_display_error(display: str | None) -> int:
    """libxcb's error code for a connection to ``display`` (None: ``$DISPLAY``), 0 when it opens.
    It is the connection Qt's xcb plugin makes first, and aborts on."""
    xcb = ctypes.CDLL("libxcb.so.1")
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(display.encode() if display else None, None)
    try:
        return int(xcb.xcb_connection_has_error(conn))
    finally:
        xcb.xcb_disconnect(conn)  # also frees the error connection object


def check_xcb(env: dict[str, str]) -> None:
    """Raise ValueError (one line) when Qt's xcb plugin would abort: a library it links to is
    missing (naming the Debian packages to install) or the X display does not accept a
    connection."""
    missing = missing_xcb_libraries()
    if missing:
        packages = " ".join(dict.fromkeys(XCB_LIBRARIES[s] for s in missing))
        raise ValueError(f"the dashboard's Qt X11 (xcb) platform plugin cannot load {', '.join(missing)}: "
                         f"install them (Debian/Ubuntu: sudo apt-get install {packages}), {OFFSCREEN_HINT}")
    display = env.get("DISPLAY") or None
    code = _x_display_error(display)
    if code:
        raise ValueError(f"cannot connect to X display {display or '(DISPLAY unset)'} (libxcb error {code}): "
                         f"start the X server or fix DISPLAY / XAUTHORITY, {OFFSCREEN_HINT}")


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
    platform = qt_platform(dict(os.environ))
    if platform is None:
        if not (args.screenshot or args.duration):
            raise ValueError("no display (DISPLAY / WAYLAND_DISPLAY unset): run with a display, or offscreen "
                             "with --screenshot FILE or --duration S")
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    elif platform == "xcb":
        check_xcb(dict(os.environ))  # before Qt starts: Qt aborts the process where this fails
    priority = lower_priority(args.priority, args.nice)
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
    result.update(platform=app.platformName(), priority=priority, session=streams.session, key=streams.key,
                  seconds=round(wall_s, 3), target_fps=args.fps, fps=round(win.fps(), 2), frames=win.frames_painted,
                  updates=win.frames_updated, **client.counts)
    client.close()
    if args.json:
        from rtsnn.jsonout import json_safe

        print(json.dumps(json_safe(result), allow_nan=False))
    if "error" in result:
        print(f"rtsnn: error: {result['error']}", file=sys.stderr)
        return 1
    return 0
