"""The dashboard window offscreen against a session-shaped feeder: what it draws is checked
against what was sent (raster pixels, curve data, histogram peak, health text), where its
legends sit (beside the data, whole), that unchanging learner values are numbers and not
lines, plus the measured frame rate, the screenshot and the CLI. The window on a real X server:
test_viz_desktop.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import import_or_skip

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import_or_skip("PySide6.QtWidgets", reason="dashboard extra (PySide6) not installed")
import_or_skip("pyqtgraph", reason="dashboard extra (pyqtgraph) not installed")

from viz_fake_session import FakeSession  # noqa: E402

from rtsnn.viz.client import MonitorClient, discover  # noqa: E402
from rtsnn.viz.dashboard import SPIKE_RGB, STAGE_ORDER, DashboardWindow, ensure_app  # noqa: E402

pytestmark = pytest.mark.lsl
REPO = Path(__file__).resolve().parents[2]


def _run_qt(app, seconds: float) -> None:
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        app.processEvents()
        time.sleep(0.002)


def _spike_pixels(img) -> np.ndarray:
    """Boolean mask of raster-spike-coloured pixels in a QImage."""
    from pyqtgraph.Qt import QtGui

    if isinstance(img, QtGui.QPixmap):
        img = img.toImage()
    img = img.convertToFormat(QtGui.QImage.Format.Format_RGB32)
    ptr = img.constBits()
    arr = np.frombuffer(ptr, np.uint8, count=img.height() * img.bytesPerLine())
    arr = arr.reshape(img.height(), img.bytesPerLine() // 4, 4)[:, : img.width(), :3][..., ::-1]  # BGRA -> RGB
    return np.all(np.abs(arr.astype(int) - np.array(SPIKE_RGB)) < 40, axis=2)


class _LearnerWithCounters:
    """The fake session's learner (a falling loss, calibrated after 1 s) plus two counters that
    never change."""

    def __init__(self):
        self.t_s = 0.0

    def stats(self) -> dict:
        return {"loss": 1.0 / (1.0 + self.t_s), "calibrated": self.t_s > 1.0, "refits": 0, "solve_failed": 3}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    name = f"viz-dash-{time.monotonic_ns() % 10**9}"
    fake = FakeSession(name, n_rec=64)
    fake.learner = _LearnerWithCounters()
    fake.start()
    app = ensure_app()
    client = MonitorClient(discover(session=name, timeout_s=10.0), raster_window_s=1.0)
    win = DashboardWindow(client, fps=30.0)
    win.resize(1200, 800)
    win.show()
    win.start()
    _run_qt(app, 2.5)
    shot = tmp_path_factory.mktemp("viz") / "dashboard.png"
    assert win.grab().save(str(shot))
    yield fake, app, win, shot
    win.stop()
    win.close()
    fake.stop()


def test_frames_show_the_session_and_screenshot(live):
    # frames were painted, and what the last one drew is the fake session's known content (the
    # frame rate is measured by scripts/bench_dashboard.py, not asserted here)
    fake, _, win, shot = live
    assert win.frames_painted > 0
    assert win.client.counts["raster_rows"] > 0 and win.client.counts["outputs"] > 0
    image = np.asarray(win.raster_item.image)
    half = fake.n_rec // 2
    assert image.shape[0] == fake.n_rec
    assert (image[:half].sum(axis=1) > 0).all(), "a neuron of the firing half shows no spike"
    assert image[half:].sum() == 0, "spikes drawn for neurons that never fire"
    lit = image[:half].mean()
    # each tick fires 6 or 7 of those 32 neurons (<= 0.22 of them); columns of ticks not yet
    # received are blank
    assert 0.05 < lit <= 0.22, f"{lit:.3f} of the firing half lit; each of its neurons fires every 5th tick"
    (_, y0), (_, y1) = (win.out_curves[k][0].getData() for k in range(2))
    (_, t0), (_, t1) = (win.out_curves[k][1].getData() for k in range(2))
    assert len(y0) > 0 and len(y0) == len(y1)
    np.testing.assert_allclose(np.hypot(y0, y1), 1.0, atol=1e-3)  # the fake's (sin, cos) outputs
    np.testing.assert_allclose(t0, 0.5 * y0, atol=1e-3)  # and its targets, 0.5 * y
    np.testing.assert_allclose(t1, 0.5 * y1, atol=1e-3)
    from pyqtgraph.Qt import QtGui

    img = QtGui.QImage(str(shot))
    assert img.width() == 1200 and img.height() == 800
    assert _spike_pixels(img).sum() > 500  # the raster is visible in the full screenshot


def test_raster_pixels_where_spikes_were_sent(live):
    _, _, win, _ = live
    # the view box of the raster plot, in canvas pixels
    vb = win.raster_plot.getViewBox()
    rect = win.glw.mapFromScene(vb.sceneBoundingRect()).boundingRect()
    mask = _spike_pixels(win.glw.grab(rect))
    h = mask.shape[0]
    lower = mask[h // 2 + 2:]  # neurons 0..31 (y grows upwards): fire every 5th tick
    upper = mask[: h // 2 - 2]  # neurons 32..63: never fire
    assert lower.mean() > 0.05, f"only {lower.mean():.3f} of the spiking half is lit"
    assert upper.sum() == 0, f"{upper.sum()} spike pixels where no neuron fired"
    # the data behind it: the same split
    img = win.client.raster_image()
    assert img[:32].mean() > 0.1 and not img[32:].any()


def test_output_curves_hold_decoded_and_target(live):
    _, _, win, _ = live
    for k, (dec, tgt) in enumerate(win.out_curves):
        xd, yd = dec.getData()
        xt, yt = tgt.getData()
        assert len(yd) > 100 and len(yd) == len(yt)
        np.testing.assert_allclose(yt, 0.5 * yd, atol=1e-6)  # fake target = y / 2
        assert xd[-1] == pytest.approx(0.0) and xd[0] < -1.0  # seconds before the newest sample
        assert yd.max() > 0.9 and yd.min() < -0.9  # a sine / cosine of amplitude 1 over > 1 s
    titles = [p.titleLabel.text for p in win.output_plots]
    assert titles == ["Decoded vs target: out0", "Decoded vs target: out1"]
    assert "Spike raster" in win.raster_plot.titleLabel.text


def test_latency_histograms_peak_where_recorded(live):
    _, _, win, _ = live
    # the fake records stage i at (i + 1) us every tick; e2e (index 8) at 9 us, input_age at 11
    expect_us = {"ingest": 1.0, "step": 3.0, "emit": 6.0, "tick": 8.0, "e2e": 9.0, "input_age": 11.0}
    for stage, us in expect_us.items():
        x, y = win.lat_curves[stage].xData, win.lat_curves[stage].yData
        assert len(y) and y.max() == pytest.approx(1.0)
        peak = x[np.argmax(y)]
        assert us / 1.1 < peak < us * 1.1, f"{stage}: histogram peak at {peak} us, recorded {us} us"


def test_learning_curve_health_and_misses(live):
    _, _, win, _ = live
    x, y = win.learn_curves["loss"].getData()
    assert len(y) >= 10 and y[0] == pytest.approx(1.0) and y[-1] == pytest.approx(0.0)  # falling, scaled
    text = win.health.text()
    for needle in ("in_gap: True", "losses: 3", "reconnects: 2", "repaired_values: 7", "deadline misses"):
        assert needle in text, f"{needle!r} missing from the health panel"
    # the range each curve is scaled from, in the panel
    lo, hi = win.learn_ranges["loss"]
    assert 0.0 < lo < hi <= 1.0 and "loss: " in text and " to " in text


def test_constant_counters_are_numbers_not_lines(live):
    # scaled to its range, a counter that never changes would be a flat line at an arbitrary
    # height: it is not drawn, and the panel gives its value
    _, _, win, _ = live
    # which values held still over the statuses the client holds: 'calibrated' flips at the fake's
    # t = 1 s, so it is constant too when a loaded machine attached the client only after that
    held = {key: win.client.history(("learner", key))[1] for key in ("loss", "calibrated", "refits", "solve_failed")}
    still = {key for key, v in held.items() if len(v) and v.min() == v.max()}
    assert {"refits", "solve_failed"} <= still and "loss" not in still
    assert win.learn_constant == still
    for key in still:
        curve = win.learn_curves.get(key)
        assert curve is None or len(curve.getData()[1] or []) == 0, f"{key} drawn as a line"
    legend_names = [label.text for _, label in win.learn_legend.items]
    assert legend_names == [k for k in ("loss", "calibrated") if k not in still]  # only what is drawn
    text = win.health.text()
    assert "refits: 0 (constant)" in text and "solve_failed: 3 (constant)" in text
    assert not win.learn_note.isVisible()  # the note is for a plot with nothing drawn


def _scene_rect(item):
    return item.mapRectToScene(item.boundingRect())


def test_legends_beside_the_data_and_whole(live):
    # each legend lies outside its plot's data area (never on a trace) and inside the plot's own
    # area (not clipped, not over a neighbour); its entries do not overlap each other
    _, _, win, _ = live
    plots = win.output_plots + [win.lat_plot, win.learn_plot]
    for p in plots:
        legend = p.side_legend
        view = _scene_rect(p.getViewBox())
        inside = _scene_rect(p).adjusted(-0.5, -0.5, 0.5, 0.5)
        rects = []
        for sample, label in legend.items:
            for item in (sample, label):
                r = _scene_rect(item)
                assert r.height() > 5 and r.width() > 5
                assert not r.intersects(view), f"legend entry {label.text!r} on the data of {p.titleLabel.text!r}"
                assert inside.contains(r), f"legend entry {label.text!r} clipped from {p.titleLabel.text!r}"
            margin = label.item.document().documentMargin()  # blank padding around the text
            rects.append(_scene_rect(label).adjusted(margin, margin, -margin, -margin))
        for i, a in enumerate(rects):
            for b in rects[i + 1:]:
                assert not a.intersects(b)
    # the latency legend names every stage, e2e and input_age with pens that tell them apart
    assert [label.text for _, label in win.lat_plot.side_legend.items] == list(STAGE_ORDER)
    e2e, age = win.lat_curves["e2e"].opts["pen"], win.lat_curves["input_age"].opts["pen"]
    assert (e2e.color().getRgb(), e2e.style()) != (age.color().getRgb(), age.style())
    assert len({win.lat_curves[s].opts["pen"].color().getRgb() for s in STAGE_ORDER}) == len(STAGE_ORDER)
    _, misses = win.miss_curve.getData()
    assert len(misses) >= 5 and np.median(misses) > 0  # the fake misses every 100th tick
    _, rate = win.rate_curve.getData()
    assert 300 < np.median(rate) < 1200  # ~1000 samples/s (the fake may skip ticks under load)


def test_cli_screenshot_json(live, tmp_path):
    fake = live[0]
    out = tmp_path / "cli.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-m", "rtsnn.cli", "dashboard", "--session", fake.name, "--screenshot",
                           str(out), "--after", "1.5", "--json", "--size", "900x600"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["session"] == fake.name and res["raster_rows"] > 100 and res["statuses"] >= 3
    assert res["frames"] > 0  # painted (the frame rate: scripts/bench_dashboard.py)
    assert 0.0 < res["cpu_fraction"] <= os.cpu_count()  # its own CPU use (all threads)
    assert out.stat().st_size > 10_000
    if sys.platform.startswith("linux"):  # default --priority idle: every thread, liblsl's and Qt's too
        assert res["priority"] == "idle" and res["threads_not_idle"] == 0


def test_cli_priority_modes(live):
    # nice: the niceness read back in the child; normal: unchanged
    fake = live[0]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    base = [sys.executable, "-m", "rtsnn.cli", "dashboard", "--session", fake.name, "--duration", "0.5", "--json"]
    proc = subprocess.run(base + ["--priority", "nice", "--nice", "7"], capture_output=True, text=True,
                          timeout=60, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["priority"] == "nice+7" and res["niceness"] == min(os.nice(0) + 7, 19)
    proc = subprocess.run(base + ["--priority", "normal"], capture_output=True, text=True, timeout=60, env=env,
                          cwd=REPO)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["priority"] == "normal" and res["niceness"] == os.nice(0) and "threads_not_idle" not in res


def test_cli_errors_are_clear():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-m", "rtsnn.cli", "dashboard", "--session", "viz-no-such-session",
                           "--wait", "0.6", "--screenshot", "x.png"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert proc.returncode == 2 and "no rtsnn session monitor (session 'viz-no-such-session')" in proc.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, "-m", "rtsnn.cli", "dashboard", "--session", "x"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert proc.returncode == 2 and "no display" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "rtsnn.cli", "dashboard", "--fps", "0", "--screenshot", "x.png"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert proc.returncode == 2 and "--fps must be > 0" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "rtsnn.cli", "dashboard", "--priority", "nice", "--nice", "25",
                           "--duration", "1"], capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert proc.returncode == 2 and "--nice must be in 0..19, got 25" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "rtsnn.cli", "dashboard", "--priority", "realtime",
                           "--duration", "1"], capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert proc.returncode == 2 and "invalid choice: 'realtime'" in proc.stderr


def test_plot_ranges_follow_their_data(live):
    # auto-range is off on these plots (it regenerated the axes at the status rate); the
    # once-a-second fit must still bring the data into view: ~1000 samples/s is far outside
    # a never-fitted [0, 1] range
    _, _, win, _ = live
    _, rate = win.rate_curve.getData()
    (_, _), (y0, y1) = win.rate_plot.viewRange()
    assert y0 <= np.median(rate) <= y1 and y1 > 100
    (x0, x1), _ = win.lat_plot.viewRange()  # log10 axis: the 9 us peak lies inside
    assert x0 <= np.log10(9.0) <= x1
    # the output plots (auto-range off too) are fitted a few times a second: the fake's sine of
    # amplitude 1 lies within the range, which a never-fitted [0, 1] would not hold
    for p in win.output_plots:
        _, (y0, y1) = p.viewRange()
        assert y0 < -0.9 and y1 > 0.9


def test_cached_axes_redraw_when_their_range_changes(live):
    # axes are painted from a pixmap cache; a new range must still show new tick labels
    _, app, win, _ = live
    win.stop()  # no frames (and no range fits) while comparing
    try:
        app.processEvents()
        ax = win.rate_plot.getAxis("left")
        from pyqtgraph.Qt import QtWidgets

        assert ax.cacheMode() == QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache  # the cached path

        def axis_image():
            rect = win.glw.mapFromScene(ax.mapRectToScene(ax.boundingRect())).boundingRect()
            return win.glw.grab(rect).toImage()

        before = axis_image()
        assert axis_image() == before  # nothing changed: the same pixels (the check can tell)
        (_, _), (y0, y1) = win.rate_plot.viewRange()
        win.rate_plot.setYRange(1e6, 3e6, padding=0)
        app.processEvents()
        assert axis_image() != before
        win.rate_plot.setYRange(y0, y1, padding=0)
    finally:
        win.start()
