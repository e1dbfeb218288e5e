"""The dashboard on an X desktop (Qt's xcb platform plugin).

Qt aborts the whole process when the xcb plugin cannot load one of its X libraries, or cannot
reach the display, so ``rtsnn dashboard`` checks both before Qt starts and fails with one line
naming the Debian packages (or the display) and the offscreen alternative. Here: that check
against a library reported missing and against a display nobody serves; the library table
against what the installed plugin really links to; and a real window on a private Xvfb server,
read back from the X server's own screen.

Xvfb and the xcb libraries are Debian packages (docs/dashboard.md); outside CI the tests that
need them skip where they are missing, under CI (``CI`` set) they fail instead.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import import_or_skip, skip_or_fail

from rtsnn.cli import main
from rtsnn.viz import cli as viz_cli

REPO = Path(__file__).resolve().parents[2]
IN_CI = bool(os.environ.get("CI"))
XVFB_PACKAGES = "xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxkbcommon-x11-0"


def _x_env(display: str) -> dict[str, str]:
    """This environment on X display ``display``: no Qt platform forced, no Wayland."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    env["DISPLAY"] = display
    return env


def _unserved_display() -> str:
    """A display number no X server on this machine listens on."""
    for n in range(173, 400):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            return f":{n}"
    skip_or_fail("no free X display number in :173..:399")


@pytest.mark.parametrize("env, platform", [
    ({}, None),
    ({"DISPLAY": ":0"}, "xcb"),
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "wayland"),  # Qt 6 prefers Wayland there
    ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, "wayland"),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "offscreen"),
    ({"WAYLAND_DISPLAY": "wayland-0", "QT_QPA_PLATFORM": "xcb"}, "xcb"),
    ({"QT_QPA_PLATFORM": "xcb:nograb;wayland"}, "xcb"),  # options and fallbacks: the first name
])
def test_platform_qt_will_pick(env, platform):
    assert viz_cli.qt_platform(env, system="linux") == platform


def test_macos_display_is_not_xcb():
    # XQuartz sets DISPLAY on macOS, where Qt still uses cocoa: no xcb check there
    assert viz_cli.qt_platform({"DISPLAY": "/private/tmp/xquartz:0"}, system="darwin") == "native"


def test_missing_xcb_library_is_one_line_naming_the_packages(monkeypatch, capsys):
    # the check runs before Qt starts (Qt would abort): report two libraries missing
    for var in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DISPLAY", _unserved_display())
    real = viz_cli._loadable
    gone = ("libxcb-cursor.so.0", "libxcb-keysyms.so.1")
    monkeypatch.setattr(viz_cli, "_loadable", lambda soname: soname not in gone and real(soname))
    rc = main(["dashboard", "--session", "viz-desktop-none", "--wait", "0.1", "--priority", "normal"])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("rtsnn: error: the dashboard's Qt X11 (xcb) platform plugin cannot load "
                          "libxcb-cursor.so.0, libxcb-keysyms.so.1: ")
    assert "sudo apt-get install libxcb-cursor0 libxcb-keysyms1)" in err
    assert "--screenshot FILE" in err and "QT_QPA_PLATFORM=offscreen" in err
    # offscreen needs none of them: the same run with QT_QPA_PLATFORM=offscreen gets past the
    # check to the session lookup
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    import_or_skip("pyqtgraph")
    rc = main(["dashboard", "--session", "viz-desktop-none", "--wait", "0.1", "--priority", "normal"])
    assert rc == 2 and "no rtsnn session monitor (session 'viz-desktop-none')" in capsys.readouterr().err


def test_unserved_display_is_one_line_not_an_abort():
    if viz_cli.missing_xcb_libraries():
        if IN_CI:
            pytest.fail(f"xcb libraries missing under CI: apt-get install {XVFB_PACKAGES}")
        pytest.skip(f"xcb libraries missing: {viz_cli.missing_xcb_libraries()}")
    display = _unserved_display()
    proc = subprocess.run([sys.executable, "-m", "rtsnn.cli", "dashboard", "--session", "x", "--wait", "0.1"],
                          capture_output=True, text=True, timeout=60, env=_x_env(display), cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-2000:]  # Qt's abort would be -6
    assert proc.stderr.startswith(f"rtsnn: error: cannot connect to X display {display} (libxcb error ")
    assert len(proc.stderr.strip().splitlines()) == 1 and "QT_QPA_PLATFORM=offscreen" in proc.stderr


def test_library_table_covers_what_the_plugin_links_to():
    # the X libraries of the installed PySide6's xcb plugin (and of the Qt library it uses) must
    # all be in the table, or a missing one would still abort Qt instead of being named
    PySide6 = import_or_skip("PySide6")
    ldd = shutil.which("ldd")
    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    if sys.platform != "linux":
        pytest.skip("ldd and the xcb plugin are Linux-only")
    if ldd is None or not plugin.exists():
        skip_or_fail(f"no ldd ({ldd}) or no xcb plugin at {plugin}")
    out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=60).stdout
    linked = {line.split()[0] for line in out.splitlines() if "=>" in line}
    x_libs = {s for s in linked if s.startswith(("libxcb", "libX11", "libxkbcommon"))}
    assert "libxcb-cursor.so.0" in x_libs  # the parse found them
    assert x_libs <= set(viz_cli.XCB_LIBRARIES), f"not in XCB_LIBRARIES: {sorted(x_libs - set(viz_cli.XCB_LIBRARIES))}"


# ---------------------------------------------------------------- a real X server
@pytest.fixture(scope="module")
def xvfb():
    """A private Xvfb server; yields its display (":N")."""
    exe = shutil.which("Xvfb")
    if exe is None or viz_cli.missing_xcb_libraries():
        if IN_CI:
            pytest.fail(f"Xvfb or xcb libraries missing under CI: apt-get install {XVFB_PACKAGES}")
        pytest.skip(f"needs Xvfb and the xcb libraries (apt-get install {XVFB_PACKAGES})")
    read_fd, write_fd = os.pipe()
    # -displayfd: Xvfb picks a free display number and writes it to the pipe once it serves it
    proc = subprocess.Popen([exe, "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 30.0)
        number = os.read(read_fd, 64).decode().strip() if ready else ""
        if not number:
            proc.kill()
            pytest.fail(f"Xvfb did not start: {proc.communicate(timeout=10)[1][-500:]!r}")
        yield f":{number}"
    finally:
        os.close(read_fd)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# runs in its own process on the X display: grabs the X server's root window (what the screen
# shows, drawn by whichever client) until it holds enough raster-spike pixels, and saves it
GRAB_SCREEN = textwrap.dedent("""
    import sys, time
    import numpy as np
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication
    out, deadline_s, r, g, b, want = sys.argv[1], float(sys.argv[2]), *map(int, sys.argv[3:7])
    app = QApplication([])
    best, t_end = 0, time.monotonic() + deadline_s
    while time.monotonic() < t_end:
        img = app.primaryScreen().grabWindow(0).toImage().convertToFormat(QImage.Format.Format_RGB32)
        a = np.frombuffer(img.constBits(), np.uint8, count=img.height() * img.bytesPerLine())
        a = a.reshape(img.height(), img.bytesPerLine() // 4, 4)[:, : img.width(), 2::-1].astype(int)
        best = int(np.all(np.abs(a - (r, g, b)) < 40, axis=2).sum())
        if best >= want:
            img.save(out)
            break
        time.sleep(0.3)
    print(app.platformName(), img.width(), img.height(), best)
""")


@pytest.mark.lsl
def test_real_window_on_xvfb(xvfb, tmp_path):
    import_or_skip("pyqtgraph")
    from viz_fake_session import FakeSession

    from rtsnn.viz.dashboard import SPIKE_RGB

    fake = FakeSession(f"viz-desk-{time.monotonic_ns() % 10**9}", n_rec=64).start()
    try:
        env = _x_env(xvfb)
        window_png, screen_png = tmp_path / "window.png", tmp_path / "screen.png"
        dash = subprocess.Popen([sys.executable, "-m", "rtsnn.cli", "dashboard", "--session", fake.name,
                                 "--screenshot", str(window_png), "--after", "8", "--size", "900x600", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        grab = subprocess.run([sys.executable, "-c", GRAB_SCREEN, str(screen_png), "25", *map(str, SPIKE_RGB),
                               "300"], capture_output=True, text=True, timeout=90, env=env, cwd=REPO)
        out, err = dash.communicate(timeout=90)
    finally:
        fake.stop()
    assert dash.returncode == 0, err[-2000:]
    res = json.loads(out.strip().splitlines()[-1])
    assert res["platform"] == "xcb" and res["session"] == fake.name  # a real X window, not offscreen
    assert res["frames"] >= 10 and res["statuses"] >= 3
    assert window_png.stat().st_size > 10_000
    # the X server's own screen shows the raster: the window was mapped and drawn there
    assert grab.returncode == 0, grab.stderr[-2000:]
    platform, width, height, spike_pixels = grab.stdout.split()
    assert (platform, width, height) == ("xcb", "1280", "800")
    assert int(spike_pixels) >= 300 and screen_png.exists(), f"{spike_pixels} raster pixels on the X screen"
