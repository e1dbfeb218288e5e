"""The live dashboard window (pyqtgraph on PySide6).

It only reads what the session's monitor publishes over LSL (:mod:`rtsnn.viz.client`); the
session never waits on it. One ``QTimer`` at the target frame rate pulls (non-blocking) and
redraws:

    row 0  spike raster of the recurrent layer (last ``raster_window_s``)    | stream health
    row 1  decoded vs target, one plot per output                           | (text panel)
    row 2  per-stage latency histograms (last 5 s, log time axis) | deadline misses / s
    row 3  learning curves (learner stats, each scaled to its range) | source samples / s

Legends sit beside their plot's data area, never on it. A learner value that has not changed
over the statuses held is not drawn (scaled to its range it would be a flat line at some
arbitrary height); every learner value is listed with its current number in the text panel.

The frame rate is measured from the paint events the plot canvas actually receives, not from
timer callbacks (``fps()``).
"""

from __future__ import annotations

import os
import time
from typing import Any

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import numpy as np  # noqa: E402

from rtsnn.extras import require  # noqa: E402

require("PySide6", "the dashboard")  # pyqtgraph's Qt binding (PYQTGRAPH_QT_LIB above)
pg = require("pyqtgraph", "the dashboard")
QtCore = require("pyqtgraph.Qt", "the dashboard").QtCore
QtWidgets = require("pyqtgraph.Qt", "the dashboard").QtWidgets

from rtsnn.viz.client import MonitorClient  # noqa: E402

# input_age: a sample's timestamp to the start of the tick that took it (the part of e2e spent
# before the session had it: transport plus the wait for the tick)
STAGE_ORDER = ("ingest", "encode", "step", "readout", "learn", "emit", "tick", "e2e", "input_age")
SPIKE_RGB = (255, 215, 0)  # raster spikes: gold on black
BACKGROUND_RGB = (0, 0, 0)
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
# the compute stages take the palette in order; tick, e2e and input_age get colours (and a dash)
# no compute stage has, because e2e and input_age overlap (input_age is most of e2e)
STAGE_PENS = {stage: (PALETTE[i], "solid") for i, stage in enumerate(STAGE_ORDER[:6])}
STAGE_PENS.update(tick=((127, 127, 127), "solid"), e2e=((255, 255, 255), "solid"),
                  input_age=((23, 190, 207), "dash"))
LEGEND_TEXT_SIZE = "8pt"
# 1-pixel pens: Qt's raster engine draws them as cosmetic lines; wider ones are stroked as
# filled outlines, a visible share of a frame's cost
PEN_WIDTH = 1
HEALTH_KEYS = ("samples", "repaired_values", "dropped_samples", "losses", "reconnects", "in_gap", "connected")


def _numeric_items(d: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if not isinstance(d, dict):
        return out
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, bool):
            out[name] = float(v)
        elif isinstance(v, (int, float)) and v == v:
            out[name] = float(v)
        elif isinstance(v, dict) and not prefix:
            out.update(_numeric_items(v, name + "."))
    return out


def _fmt(v: float) -> str:
    """A learner value for the panel: integers as such, others to 3 significant digits."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:.3g}"


def _side_legend(plot: Any) -> Any:
    """A legend in its own cell right of ``plot``'s data area (the plot's grid: view box at
    row 2, column 1; right axis at column 2), so it never covers a trace and is never clipped by
    the view box. Entries are added with ``legend.addItem(curve, name)``."""
    legend = pg.LegendItem(offset=None, labelTextSize=LEGEND_TEXT_SIZE, verSpacing=-6)
    # its preferred size, not the cell's: a stretched legend spreads its rows apart and
    # misaligns each line sample with its name
    fixed = QtWidgets.QSizePolicy.Policy.Fixed
    legend.setSizePolicy(fixed, fixed)
    plot.layout.addItem(legend, 2, 3)
    plot.layout.setAlignment(legend, QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
    plot.side_legend = legend
    return legend


class _PaintCounter(QtCore.QObject):
    """Counts the frames actually drawn: the first paint event of the canvas after each
    update (Qt may paint a canvas more than once per update; those repeats are not frames)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self.frame_id = 0
        self._painted_id = -1

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt API
        if event.type() == QtCore.QEvent.Type.Paint and self.frame_id != self._painted_id:
            self._painted_id = self.frame_id
            self.times.append(time.perf_counter())
        return False


class DashboardWindow(QtWidgets.QMainWindow):
    def __init__(self, client: MonitorClient, fps: float = 30.0, raster_window_s: float = 1.0):
        super().__init__()
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        self.client = client
        self.target_fps = float(fps)
        self.setWindowTitle(f"rtsnn dashboard - {client.streams.session} ({client.streams.key})")
        pg.setConfigOptions(antialias=False, imageAxisOrder="row-major")

        central = QtWidgets.QWidget()
        layout = QtWidgets.QHBoxLayout(central)
        self.glw = pg.GraphicsLayoutWidget()
        layout.addWidget(self.glw, stretch=4)
        self.health = QtWidgets.QLabel()
        self.health.setObjectName("health")
        self.health.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.health.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        # a fixed width: text that grows or shrinks must not re-lay out (and repaint) every plot
        self.health.setFixedWidth(260)
        self.health.setWordWrap(True)
        layout.addWidget(self.health, stretch=1)
        self.setCentralWidget(central)

        c = client
        # row 0: raster
        self.raster_plot = self.glw.addPlot(row=0, col=0, colspan=2,
                                            title=f"Spike raster: first {c.raster_neurons} of {c.n_rec} "
                                                  f"recurrent neurons")
        self.raster_plot.setLabel("bottom", "time", units="s")
        self.raster_plot.setLabel("left", "neuron")
        self.raster_item = pg.ImageItem()
        lut = np.array([BACKGROUND_RGB, SPIKE_RGB], np.uint8)
        self.raster_item.setLookupTable(lut)
        self.raster_item.setLevels([0, 1])
        self.raster_plot.addItem(self.raster_item)
        self.raster_item.setImage(c.raster_image(), autoLevels=False, levels=(0, 1))  # setRect needs a size
        span_s = c.raster_cols * c.dt_s
        self.raster_item.setRect(QtCore.QRectF(-span_s, 0, span_s, max(c.raster_neurons, 1)))
        self.raster_plot.setXRange(-span_s, 0, padding=0)
        self.raster_plot.setYRange(0, max(c.raster_neurons, 1), padding=0)
        self.raster_plot.setMouseEnabled(False, False)
        self.raster_plot.setMinimumHeight(110)  # a cramped window shrinks the other rows first

        # row 1: decoded vs target
        self.output_plots = []
        self.out_curves: list[tuple[Any, Any]] = []
        outs = pg.GraphicsLayout()
        self.glw.addItem(outs, row=1, col=0, colspan=2)
        for k, label in enumerate(c.output_labels):
            p = outs.addPlot(row=0, col=k, title=f"Decoded vs target: {label}")
            dec = p.plot(pen=pg.mkPen(PALETTE[0], width=PEN_WIDTH))
            tgt = p.plot(pen=pg.mkPen(PALETTE[1], width=PEN_WIDTH, style=QtCore.Qt.PenStyle.DashLine))
            legend = _side_legend(p)
            legend.addItem(dec, "decoded")
            legend.addItem(tgt, "target")
            p.setLabel("bottom", "time", units="s")
            p.setLabel("left", label)
            p.setXRange(-c.output_window_s, 0.0, padding=0.01)  # fixed: axis ticks not regenerated per frame
            # y follows the data at most a few times a second (_fit_output_ranges): auto-ranging
            # every frame regenerates the axis ticks 30 times a second, the frame's largest cost
            p.enableAutoRange(x=False, y=False)
            self.output_plots.append(p)
            self.out_curves.append((dec, tgt))

        # row 2: latency
        self.lat_plot = self.glw.addPlot(row=2, col=0, title="Per-stage latency (last 5 s)")
        self.lat_plot.setLogMode(x=True, y=False)
        self.lat_plot.setLabel("bottom", "latency (us)")
        self.lat_plot.setLabel("left", "fraction of ticks")
        self.lat_plot.getAxis("left").enableAutoSIPrefix(False)  # 0.2, not "200 (x0.001)"
        lat_legend = _side_legend(self.lat_plot)
        self.lat_curves: dict[str, Any] = {}
        dash = {"solid": QtCore.Qt.PenStyle.SolidLine, "dash": QtCore.Qt.PenStyle.DashLine}
        for stage in STAGE_ORDER:
            rgb, style = STAGE_PENS[stage]
            curve = self.lat_plot.plot(pen=pg.mkPen(rgb, width=PEN_WIDTH, style=dash[style]))
            lat_legend.addItem(curve, stage)
            self.lat_curves[stage] = curve
        self.miss_plot = self.glw.addPlot(row=2, col=1, title="Deadline misses / s")
        self.miss_plot.setLabel("bottom", "time", units="s")
        self.miss_plot.setLabel("left", "misses / s")
        self.miss_curve = self.miss_plot.plot(pen=pg.mkPen(PALETTE[3], width=PEN_WIDTH))

        # row 3: learning and stream rate
        self.learn_plot = self.glw.addPlot(row=3, col=0, title="Learning curves (each scaled to its range)")
        self.learn_plot.setLabel("bottom", "time", units="s")
        self.learn_plot.setLabel("left", "scaled")  # min..max of each -> 0..1; ranges in the panel
        self.learn_legend = _side_legend(self.learn_plot)
        self.learn_curves: dict[str, Any] = {}
        self.learn_ranges: dict[str, tuple[float, float]] = {}  # drawn keys: (min, max) of the history
        self.learn_constant: set[str] = set()  # learner values that have not changed (not drawn)
        # shown only while no curve is drawn, so it never covers one
        self.learn_note = pg.TextItem("", color=(200, 200, 200), anchor=(0, 0))
        self.learn_note.setVisible(False)
        self.learn_plot.addItem(self.learn_note, ignoreBounds=True)
        self._learn_span_s = 0.0
        self._learn_state: tuple[tuple[str, ...], bool] | None = None  # (drawn keys, any learner values)
        self.rate_plot = self.glw.addPlot(row=3, col=1, title="Source samples / s")
        self.rate_plot.setLabel("bottom", "time", units="s")
        self.rate_plot.setLabel("left", "samples / s")
        self.rate_curve = self.rate_plot.plot(pen=pg.mkPen(PALETTE[2], width=PEN_WIDTH))

        # the status-fed plots change at the status rate (~10 Hz); auto-ranging each of them on
        # every status regenerates their axes that often. Their ranges follow the data once a
        # second instead (in frame)
        self.status_plots = [self.lat_plot, self.miss_plot, self.learn_plot, self.rate_plot]
        for p in self.status_plots:
            p.enableAutoRange(x=False, y=False)
        self._status_fit_t = -1.0

        # axes, titles and legends change a few times a second at most, but their regions overlap
        # what does change every frame; caching them as pixmaps saves replaying their text on
        # every paint. Qt drops an item's cache whenever the item calls update()
        cache = QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
        for p in [self.raster_plot] + self.output_plots + self.status_plots:
            for side in ("left", "bottom"):
                p.getAxis(side).setCacheMode(cache)
            p.titleLabel.setCacheMode(cache)
            legend = getattr(p, "side_legend", None)
            if legend is not None:
                legend.setCacheMode(cache)

        self._painter = _PaintCounter()
        self.glw.viewport().installEventFilter(self._painter)
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.frame)
        self.frames_updated = 0
        self._health_t = 0.0
        self.t_started = time.perf_counter()
        self.health.setText(self._health_html())

    # ------------------------------------------------------------------ loop
    def start(self) -> None:
        self._fit_minimum_size()
        self.t_started = time.perf_counter()
        self._painter.times.clear()
        self.timer.start(max(1, int(1000.0 / self.target_fps)))  # floor: never below target

    def stop(self) -> None:
        self.timer.stop()

    def fps(self, window_s: float | None = None) -> float:
        """Frames painted per second since ``start`` (or over the last ``window_s``)."""
        times = self._painter.times
        if len(times) < 2:
            return 0.0
        if window_s is not None:
            t_end = time.perf_counter()
            times = [t for t in times if t >= t_end - window_s]
            return len(times) / window_s
        return (len(times) - 1) / (times[-1] - times[0])

    @property
    def frames_painted(self) -> int:
        return len(self._painter.times)

    def frame(self) -> None:
        """One frame: pull everything new, then redraw. Plots fed by the ~10 Hz status only
        redraw when a status arrived, the text panel at most 4 times a second."""
        c = self.client
        n_status = c.counts["statuses"]
        c.poll()
        new_status = c.counts["statuses"] != n_status
        now = c.out_t[-1] if np.isfinite(c.out_t[-1]) else 0.0
        if c.raster_neurons:
            self.raster_item.setImage(c.raster_image(), autoLevels=False, levels=(0, 1))
        ok = np.isfinite(c.out_t)
        t = c.out_t[ok] - now
        for k, (dec, tgt) in enumerate(self.out_curves):
            dec.setData(t, c.out_v[ok, k])
            tgt.setData(t, c.out_v[ok, c.n_out + k])
        t = time.perf_counter()
        if new_status:
            self._draw_latency()
            self._draw_histories()
            if t - self._status_fit_t >= 1.0:
                self._status_fit_t = t
                for p in self.status_plots:
                    if p is self.learn_plot and not self.learn_ranges:  # nothing drawn: a plain frame
                        span_s = max(self._learn_span_s, 1.0)
                        p.setRange(xRange=(-span_s, 0.0), yRange=(0.0, 1.0), padding=0.05)
                        self.learn_note.setPos(-span_s, 1.0)
                    else:
                        p.autoRange(padding=0.05)  # once, to what the plot holds now
                self._fit_minimum_size()  # legends grow as learner values start to change
        if t - self._health_t >= 0.25:
            self._health_t = t
            self.health.setText(self._health_html())
            self._fit_output_ranges()
        self.frames_updated += 1
        self._painter.frame_id = self.frames_updated

    def _fit_output_ranges(self) -> None:
        """Set each output plot's y range to its data (decoded and target) plus 5 %, when the data
        left the range or use less than half of it."""
        c = self.client
        ok = np.isfinite(c.out_t)
        if not ok.any():
            return
        for k, p in enumerate(self.output_plots):
            v = np.concatenate([c.out_v[ok, k], c.out_v[ok, c.n_out + k]])
            v = v[np.isfinite(v)]
            if v.size == 0:
                continue
            lo, hi = float(v.min()), float(v.max())
            (y0, y1) = p.viewRange()[1]
            span = max(hi - lo, 1e-9)
            if lo < y0 or hi > y1 or span < 0.5 * (y1 - y0):
                p.setYRange(lo - 0.05 * span, hi + 0.05 * span, padding=0)

    def _draw_latency(self) -> None:
        c = self.client
        for stage, curve in self.lat_curves.items():
            counts = c.lat_window.get(stage)
            if counts is None or counts.sum() == 0:
                curve.setData([], [])
                continue
            nz = np.flatnonzero(counts)
            lo, hi = max(nz[0] - 1, 0), min(nz[-1] + 2, len(counts))
            b = np.arange(lo, hi)
            centres_us = c.lat_min_ns * np.exp2((b + 0.5) / c.lat_bins_per_octave) / 1000.0
            curve.setData(centres_us, counts[lo:hi] / counts.sum())

    def _draw_histories(self) -> None:
        c = self.client
        if not c.statuses:
            return
        t_now = float(c.statuses[-1].get("t_lsl", 0.0))
        t, misses = c.history(("counters", "deadline_misses"))
        self.miss_curve.setData(*_rate(t - t_now, misses))
        t, samples = c.history(("source", "samples"))
        self.rate_curve.setData(*_rate(t - t_now, samples))
        keys = _numeric_items(c.statuses[-1].get("learner") or {})
        ranges: dict[str, tuple[float, float]] = {}
        constant: set[str] = set()
        for key in keys:
            t, v = c.history(("learner",) + tuple(key.split(".", 1)))
            lo, hi = (float(np.min(v)), float(np.max(v))) if len(v) else (0.0, 0.0)
            if not hi > lo:  # constant so far: a number (the panel), not a flat line
                constant.add(key)
                continue
            if len(ranges) == 6:  # at most 6 curves: more cannot be told apart
                continue
            curve = self.learn_curves.get(key)
            if curve is None:
                pen = pg.mkPen(PALETTE[len(self.learn_curves) % len(PALETTE)], width=PEN_WIDTH)
                curve = self.learn_plot.plot(pen=pen)
                self.learn_curves[key] = curve
            curve.setData(t - t_now, (v - lo) / (hi - lo))
            ranges[key] = (lo, hi)
        if len(c.statuses) > 1:
            self._learn_span_s = t_now - float(c.statuses[0].get("t_lsl", t_now))
        for key in self.learn_ranges:
            if key not in ranges:  # drawn before; constant over the statuses held now, or gone
                self.learn_curves[key].setData([], [])
        self.learn_ranges = ranges
        self.learn_constant = constant
        state = (tuple(ranges), bool(keys))
        if state != self._learn_state:  # rare: a value started or stopped changing
            self._learn_state = state
            self._sync_learn_legend(has_learner=bool(keys))

    def _sync_learn_legend(self, has_learner: bool) -> None:
        """One legend entry per drawn learner value; with none drawn, a note in the empty plot."""
        for sample, label in list(self.learn_legend.items):
            if label.text not in self.learn_ranges:
                self.learn_legend.removeItem(sample.item)
        named = {label.text for _, label in self.learn_legend.items}
        for key in self.learn_ranges:
            if key not in named:
                self.learn_legend.addItem(self.learn_curves[key], key)
        if not has_learner:
            self.learn_note.setText("this session has no online learner")
        else:
            self.learn_note.setText("no learner value has changed lately:\nthe values are in the panel")
        self.learn_note.setVisible(not self.learn_ranges)

    def _fit_minimum_size(self) -> None:
        """Keep the plot canvas at least as large as its layout needs (titles, axes, legends):
        smaller, the scene overflows the canvas, its bottom is cut off and the raster row
        collapses. The window grows instead. Only raised when the canvas is too small (each
        change makes the offscreen plugin warn)."""
        need = self.glw.ci.effectiveSizeHint(QtCore.Qt.SizeHint.MinimumSize)
        frame_px = 2 * self.glw.frameWidth()
        w, h = int(np.ceil(need.width())) + frame_px, int(np.ceil(need.height())) + frame_px
        have = self.glw.size()
        if have.width() < w or have.height() < h:
            self.glw.setMinimumSize(max(w, self.glw.minimumWidth()), max(h, self.glw.minimumHeight()))

    def _health_html(self) -> str:
        c = self.client
        st = c.last_status
        rows = [f"<b>session</b> {c.streams.session}", f"<b>monitor</b> {c.streams.key}"]
        if st is None:
            rows.append("<span style='color:#c00'>waiting for status...</span>")
            return "<br>".join(rows)
        age = c.status_age_s()
        alive = age is not None and age < 2.0 and not c.lost
        rows.append(f"<b>status</b> {'live' if alive else '<span style=color:#c00>SILENT</span>'}"
                    f" ({age:.1f} s ago)" if age is not None else "")
        cnt = st.get("counters", {})
        ticks = max(int(cnt.get("ticks", 0)), 1)
        rows.append(f"<b>ticks</b> {cnt.get('ticks', 0)}")
        rows.append(f"<b>deadline misses</b> {cnt.get('deadline_misses', 0)} "
                    f"({100.0 * cnt.get('deadline_misses', 0) / ticks:.3f} %)")
        rows.append(f"<b>skipped ticks</b> {cnt.get('skipped_ticks', 0)}  <b>gap ticks</b> {cnt.get('gap_ticks', 0)}")
        series = st.get("latency", {}).get("series", {})
        for name, label in (("e2e", "e2e"), ("input_age", "input age")):
            s = series.get(name, {})
            if s.get("n") and s.get("p50_us") is not None and s.get("p99_us") is not None:
                rows.append(f"<b>{label} us</b> p50 {s['p50_us']:.0f}  p99 {s['p99_us']:.0f}")
        r2 = self.running_r2()
        if r2 is not None:
            rows.append(f"<b>R^2 (window)</b> {r2:.3f}")
        for part in ("source", "teacher"):
            s = st.get(part)
            if not isinstance(s, dict):
                continue
            rows.append(f"<br><b>{part} health</b>")
            for key in HEALTH_KEYS:
                if key in s:
                    v = s[key]
                    bad = (key == "in_gap" and v) or (key == "connected" and not v) or \
                          (key in ("dropped_samples", "losses") and v)
                    txt = f"{key}: {v}"
                    rows.append(f"<span style='color:#c00'>{txt}</span>" if bad else txt)
        learner = _numeric_items(st.get("learner") or {})
        if learner:
            rows.append("<br><b>learner</b> now (range plotted)")
            for key, v in learner.items():
                if key in self.learn_ranges:
                    lo, hi = self.learn_ranges[key]
                    rows.append(f"{key}: {_fmt(v)} ({_fmt(lo)} to {_fmt(hi)})")
                else:
                    rows.append(f"{key}: {_fmt(v)}" + (" (constant)" if key in self.learn_constant else ""))
        mon = st.get("monitor", {})
        rows.append(f"<br><b>monitor</b> lost rows {mon.get('lost_rows', 0)}; "
                    f"fps {self.fps(window_s=1.0):.1f}")
        return "<br>".join(r for r in rows if r)

    def running_r2(self) -> float | None:
        """R^2 of decoded vs target over the outputs window (mean over outputs)."""
        c = self.client
        ok = np.isfinite(c.out_t)
        if ok.sum() < 10:
            return None
        y, tgt = c.out_v[ok, : c.n_out].astype(np.float64), c.out_v[ok, c.n_out:].astype(np.float64)
        ss_tot = ((tgt - tgt.mean(axis=0)) ** 2).sum(axis=0)
        if not np.all(ss_tot > 0):
            return None
        return float(np.mean(1.0 - ((y - tgt) ** 2).sum(axis=0) / ss_tot))

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.timer.stop()
        self.client.close()
        super().closeEvent(event)


def _rate(t: np.ndarray, cumulative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-second rate of a cumulative counter sampled at times ``t`` (resets clipped to 0)."""
    if len(t) < 2:
        return np.zeros(0), np.zeros(0)
    dt = np.diff(t)
    ok = dt > 0
    rate = np.clip(np.diff(cumulative)[ok] / dt[ok], 0.0, None)
    return t[1:][ok], rate


def ensure_app() -> QtWidgets.QApplication:
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication([])
    return app
