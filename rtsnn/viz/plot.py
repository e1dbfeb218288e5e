"""Pictures of finished work (``rtsnn plot``): a session folder, or a training history.

A **session folder** (``config.yaml`` + ``outputs.json`` and/or ``summary.json``, written by
:class:`rtsnn.runtime.session.Session`) gives four PNGs:

* ``outputs.png``: decoded and target value of each output dimension over session time,
* ``r2.png``: R^2 in a sliding window (see :func:`sliding_r2`), with the end of readout
  calibration marked when the config's learner has a ``calibration_s``,
* ``latency.png``: the histogram of each stage's latency (``latency_hist.npz``), p50 / p99 marked,
* ``misses.png``: deadline misses per metrics interval (differences of the cumulative
  ``deadline_misses`` of ``metrics.jsonl``).

A **training history** (``<model stem>.history.json``, written by ``rtsnn pretrain`` beside
the model) gives ``<model stem>.training.png``: loss and metric per epoch, train and held-out.

The data preparation (pure numpy, tested against plain computations) is kept apart from the
drawing. matplotlib is an optional extra (``[plot]``), imported only when drawing; figures are
rendered by the Agg canvas (no display, no pyplot global state).
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rtsnn.runtime.metrics import load_hist_npz, percentiles_from_hist
from rtsnn.runtime.outputs_file import OUTPUTS_JSON, read_outputs

# the series of latency_hist.npz drawn, in this order (lateness and compute are in the summary)
LATENCY_SERIES = ("ingest", "encode", "step", "readout", "learn", "emit", "tick", "e2e", "input_age")
LATENCY_BINS_PER_GROUP = 8  # latency_hist.npz has 64 bins per octave; drawn with 8 per octave
MAX_POINTS_PER_TRACE = 50_000  # longer output traces are drawn with every k-th row
# the "format" field of a history file (= rtsnn.learn.offline.pretrain.HISTORY_FORMAT, not
# imported so that drawing a session does not load the trainer)
HISTORY_FORMAT = "rtsnn-training-history"
HISTORY_FIELDS = ("train_loss", "heldout_loss", "train_metric", "heldout_metric", "heldout_metric_continuous",
                  "epoch_s")
DPI = 100


# ====================================================================== reading a session folder
@dataclass
class SessionData:
    """What a session folder holds, read and checked. ``rows`` is None when ``outputs.f64`` is
    missing or empty; ``summary`` / ``hist`` are None when the session did not end cleanly."""

    folder: Path
    config: dict[str, Any]
    dt_s: float
    columns: list[str]
    labels: list[str]
    units: list[str]
    rows: np.ndarray | None
    metrics: list[dict[str, Any]]
    summary: dict[str, Any] | None
    hist: dict[str, np.ndarray] | None
    calibration_s: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def n_out(self) -> int:
        return len(self.labels)


def is_session_folder(path: Path) -> bool:
    """A session folder by content: ``config.yaml`` and ``outputs.json`` or ``summary.json``."""
    return path.is_dir() and (path / "config.yaml").is_file() and (
        (path / "outputs.json").is_file() or (path / "summary.json").is_file())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not readable as JSON ({err})") from None


def read_metrics_lines(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The lines of ``metrics.jsonl`` (one JSON object each). A last line cut short (the
    session crashed while writing it) is left out with a note; a bad line before it is an error."""
    if not path.is_file():
        return [], [f"{path.name} is missing: no deadline-miss plot"]
    lines = path.read_text().splitlines()
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            if i == len(lines) - 1:
                notes.append(f"{path.name}: last line {i + 1} is incomplete and was left out")
                break
            raise ValueError(f"{path}: line {i + 1}: not a JSON object ({err})") from None
        out.append(obj)
    return out, notes


def _named_units(units: Any, n_out: int) -> bool:
    return isinstance(units, list) and len(units) == n_out and all(isinstance(u, str) and u for u in units)


def _output_units(config: dict[str, Any], folder: Path, n_out: int, outputs_meta: dict[str, Any]) -> list[str]:
    """Units of the outputs: ``outputs.json``'s ``units`` ({column: unit}, the ``y_*`` columns in
    order) when it gives every output one; for folders written before it carried units, the
    config's random model ``output_units``, else the model file's header; else ``a.u.``."""
    units = outputs_meta.get("units")
    columns = outputs_meta.get("columns")
    if isinstance(units, dict) and isinstance(columns, list):
        ys = [str(units.get(c) or "") for c in columns if isinstance(c, str) and c.startswith("y_")]
        if len(ys) == n_out and all(ys):
            return ys
    model = config.get("model") or {}
    units = (model.get("random") or {}).get("output_units") if not model.get("path") else None
    if _named_units(units, n_out):
        return [str(u) for u in units]
    if model.get("path"):
        from rtsnn.snn import read_header

        p = Path(str(model["path"]))
        for cand in ([p] if p.is_absolute() else [Path.cwd() / p, folder.parent / p, folder.parent.parent / p]):
            if cand.suffix == ".npz" and cand.is_file():
                try:
                    units = read_header(cand).get("output_units")
                except (ValueError, OSError):
                    break
                if _named_units(units, n_out):
                    return [str(u) for u in units]
                break
    return ["a.u."] * n_out


def _calibration_s(config: dict[str, Any]) -> float | None:
    learner = config.get("learner") or {}
    value = (learner.get("options") or {}).get("calibration_s")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def load_session(folder: str | Path) -> SessionData:
    """Read a session folder for drawing; raise ValueError (one line naming the file) when it
    cannot be drawn, e.g. a session that ended before its first tick."""
    folder = Path(folder)
    if not is_session_folder(folder):
        raise ValueError(f"{folder}: not a session folder (needs config.yaml and outputs.json or summary.json)")
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{folder / 'config.yaml'}: not readable as YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{folder / 'config.yaml'}: expected a mapping at the top level")
    dt_s = (config.get("session") or {}).get("dt_s")
    if not isinstance(dt_s, (int, float)) or not dt_s > 0:
        raise ValueError(f"{folder / 'config.yaml'}: session.dt_s: expected a number > 0, got {dt_s!r}")
    notes: list[str] = []
    summary = _read_json(folder / "summary.json") if (folder / "summary.json").is_file() else None
    if summary is not None and not isinstance(summary, dict):
        raise ValueError(f"{folder / 'summary.json'}: expected a JSON object")

    rec = read_outputs(folder) if (folder / OUTPUTS_JSON).is_file() else None
    columns = rec.columns if rec is not None else []
    labels = rec.labels if rec is not None else []
    rows = rec.rows if rec is not None and len(rec.rows) else None
    if rows is not None and rec.dropped_partial_bytes:
        notes.append(f"{rec.data_path.name} ends in a partial row (crash while writing?); "
                     f"drew its {len(rows)} whole rows")
    n_out = len(labels)

    if rows is None and summary is None:
        raise ValueError(f"{folder}: the session ended before its first tick (outputs.f64 is "
                         f"{'missing' if rec is None or not rec.data_found else 'empty'} and there is no "
                         f"summary.json): nothing to draw")
    if rows is None:
        notes.append("outputs.f64 holds no rows (session.record_outputs off, or no measured tick): "
                     "no outputs or R^2 plot")
    if summary is None:
        notes.append("no summary.json: the session did not end cleanly; drew what it wrote before")

    metrics, metric_notes = read_metrics_lines(folder / "metrics.jsonl")
    notes += metric_notes
    hist = None
    hist_path = folder / "latency_hist.npz"
    if hist_path.is_file():
        try:
            hist = load_hist_npz(hist_path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"{hist_path}: not a latency histogram file ({err})") from None
        counts = hist["counts"]
        if counts.ndim != 2 or counts.shape[0] != len(hist["names"]) or counts.shape[1] != len(hist["upper_edge_ns"]):
            raise ValueError(f"{hist_path}: counts has shape {counts.shape}, expected "
                             f"({len(hist['names'])}, {len(hist['upper_edge_ns'])})")
    else:
        notes.append("latency_hist.npz is missing (session ended uncleanly or predates it): no latency plot")
    return SessionData(folder=folder, config=config, dt_s=float(dt_s), columns=columns, labels=labels,
                       units=_output_units(config, folder, n_out,
                                          {"columns": columns, "units": rec.units} if rec else {}),
                       rows=rows, metrics=metrics, summary=summary, hist=hist,
                       calibration_s=_calibration_s(config), notes=notes)


# ====================================================================== data preparation
def output_series(rows: np.ndarray, n_out: int, dt_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(t_s, y, target)`` from output rows ``[tick, t_source, t_emit, y (n_out), target (n_out)]``:
    ``t_s = tick * dt_s`` is the session time of each row (0 = the first tick, warm-up included)."""
    rows = np.asarray(rows, np.float64)
    if rows.ndim != 2 or rows.shape[1] != 3 + 2 * n_out:
        raise ValueError(f"output rows must be (ticks, {3 + 2 * n_out}), got {rows.shape}")
    return rows[:, 0] * dt_s, rows[:, 3:3 + n_out], rows[:, 3 + n_out:]


def default_r2_window_ticks(n_rows: int, dt_s: float) -> int:
    """The sliding R^2 window when none is given: a tenth of the run on a 1-2-5 grid of
    seconds, kept within 1-10 s (a window shorter than a movement scores the hold phases and
    the movements separately; one longer than 10 s hides changes), yet at most half the run
    and never under 20 ticks."""
    span_s = n_rows * dt_s
    want_s = min(10.0, max(1.0, span_s / 10.0), span_s / 2.0)
    if want_s > 0:
        decade = 10.0 ** math.floor(math.log10(want_s))
        want_s = max(m * decade for m in (1.0, 2.0, 5.0, 10.0) if m * decade <= want_s * (1 + 1e-9))
    return max(20, int(round(want_s / dt_s)))


def sliding_r2(y: np.ndarray, target: np.ndarray, window_ticks: int, hop_ticks: int,
               target_var: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """R^2 in windows of ``window_ticks`` rows, one every ``hop_ticks``; returns ``(end, r2)``
    with ``end`` the row index one past each window.

    Per output dimension ``k`` and window ``W`` (rows whose y and target are all finite):
    ``R^2_k = 1 - sum_W (y_k - t_k)^2 / (n_W var_k)``, ``var_k`` = ``target_var[k]`` (e.g. the
    whole session's target variance, so that a short window holding a single movement is not
    judged against its own small variance), or the window's own target variance when None;
    ``r2`` is the mean over dimensions. NaN where a window has fewer than half its rows
    finite or no target variance."""
    y = np.asarray(y, np.float64)
    t = np.asarray(target, np.float64)
    if y.shape != t.shape or y.ndim != 2:
        raise ValueError(f"y and target must be 2-D arrays of one shape, got {y.shape} and {t.shape}")
    w, hop = int(window_ticks), int(hop_ticks)
    if w < 2 or hop < 1:
        raise ValueError(f"window_ticks must be >= 2 and hop_ticks >= 1, got {window_ticks!r}, {hop_ticks!r}")
    ok = np.all(np.isfinite(y) & np.isfinite(t), axis=1)
    t0 = np.where(ok[:, None], t, 0.0)
    e0 = np.where(ok[:, None], y - t, 0.0)

    def csum(a: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a, axis=0)])

    c_n, c_t, c_t2, c_e2 = csum(ok.astype(np.float64)), csum(t0), csum(t0 * t0), csum(e0 * e0)
    end = np.arange(w, len(y) + 1, hop)
    if end.size == 0:
        return end, np.zeros(0)
    n = (c_n[end] - c_n[end - w])[:, None]
    if target_var is None:
        s_t, s_t2 = c_t[end] - c_t[end - w], c_t2[end] - c_t2[end - w]
        ss_tot = s_t2 - s_t ** 2 / np.maximum(n, 1.0)
    else:
        ss_tot = n * np.asarray(target_var, np.float64)[None, :]
    ss_res = c_e2[end] - c_e2[end - w]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_dim = np.where((ss_tot > 1e-12 * np.maximum(n, 1.0)) & (n >= max(2, w / 2)), 1.0 - ss_res / ss_tot, np.nan)
    r2 = np.full(len(end), np.nan)
    has = np.any(np.isfinite(per_dim), axis=1)
    r2[has] = np.nanmean(per_dim[has], axis=1)
    return end, r2


def target_variance(target: np.ndarray) -> np.ndarray:
    """Per-dimension variance of the target over its finite rows."""
    t = np.asarray(target, np.float64)
    ok = np.all(np.isfinite(t), axis=1)
    return t[ok].var(axis=0) if ok.any() else np.full(t.shape[1], np.nan)


def misses_per_interval(metrics: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Deadline misses and ticks in each metrics interval: differences of the cumulative
    counters of consecutive ``metrics.jsonl`` lines (the first against zero). Returns
    ``t_end_s`` (each interval's end, s since the session's I/O thread started), ``t_start_s``,
    ``misses`` and ``ticks``. Lines without the counters are skipped."""
    t_end, misses, ticks = [], [], []
    prev_m = prev_k = 0
    prev_t = 0.0
    t_start = []
    for line in metrics:
        t, m, k = line.get("t_s"), line.get("deadline_misses"), line.get("ticks")
        if not all(isinstance(v, (int, float)) for v in (t, m, k)):
            continue
        t_start.append(prev_t)
        t_end.append(float(t))
        misses.append(int(m) - prev_m)
        ticks.append(int(k) - prev_k)
        prev_t, prev_m, prev_k = float(t), int(m), int(k)
    return {"t_start_s": np.array(t_start, np.float64), "t_end_s": np.array(t_end, np.float64),
            "misses": np.array(misses, np.int64), "ticks": np.array(ticks, np.int64)}


def coarse_histogram(counts: np.ndarray, upper_edge_ns: np.ndarray,
                     group: int = LATENCY_BINS_PER_GROUP) -> tuple[np.ndarray, np.ndarray]:
    """Sum each run of ``group`` consecutive log-spaced bins: ``(edges_us (m + 1), counts (m))``,
    cut to the range holding values (one empty group either side); empty input gives empty arrays."""
    counts = np.asarray(counts, np.int64)
    upper = np.asarray(upper_edge_ns, np.float64)
    ratio = upper[1] / upper[0]
    edges_ns = np.concatenate([[upper[0] / ratio], upper])
    m = len(counts) // group
    summed = counts[: m * group].reshape(m, group).sum(axis=1)
    edges = edges_ns[: m * group + 1: group]
    nz = np.nonzero(summed)[0]
    if nz.size == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    a, b = max(0, nz[0] - 1), min(m, nz[-1] + 2)
    return edges[a:b + 1] / 1e3, summed[a:b]


def series_percentiles_us(hist: dict[str, np.ndarray], name: str) -> dict[str, float | int | None]:
    """p50, p99 and max (us) and the count of one series of a latency histogram file (None when empty)."""
    names = [str(n) for n in hist["names"]]
    i = names.index(name)
    counts = hist["counts"][i]
    n = int(counts.sum())
    if n == 0:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    p50, p99 = percentiles_from_hist(counts, (50.0, 99.0), float(hist["max_ns"][i]))
    return {"p50": p50 / 1e3, "p99": p99 / 1e3, "max": float(hist["max_ns"][i]) / 1e3, "n": n}


# ====================================================================== training histories
def load_history(path: str | Path) -> dict[str, Any]:
    """Read and check a training-history file (see :func:`rtsnn.learn.offline.pretrain.training_history`)."""
    path = Path(path)
    doc = _read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != HISTORY_FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"{path}: not a training history: format is {got!r}, expected {HISTORY_FORMAT!r}")
    epochs = doc.get("epochs")
    if not isinstance(epochs, list) or not epochs:
        raise ValueError(f"{path}: epochs: expected a non-empty list of per-epoch records, got {epochs!r:.60}")
    for i, rec in enumerate(epochs):
        if not isinstance(rec, dict) or not isinstance(rec.get("epoch"), int):
            raise ValueError(f"{path}: epochs[{i}]: expected an object with an integer 'epoch'")
        for key in HISTORY_FIELDS:
            v = rec.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ValueError(f"{path}: epochs[{i}].{key}: expected a number or null, got {v!r:.40}")
    return doc


def history_columns(doc: dict[str, Any]) -> dict[str, np.ndarray]:
    """The per-epoch figures of a history as float arrays (NaN where null), plus ``epoch``."""
    out = {"epoch": np.array([r["epoch"] for r in doc["epochs"]], np.int64)}
    for key in HISTORY_FIELDS:
        out[key] = np.array([np.nan if r.get(key) is None else float(r[key]) for r in doc["epochs"]])
    return out


def find_history(path: Path) -> list[Path]:
    """The history file(s) a path stands for, by content: a history file itself, a model file
    (``X.npz`` -> ``X.history.json`` beside it), or a folder holding ``*.history.json``."""
    if path.is_dir():
        found = sorted(path.glob("*.history.json"))
        if not found:
            sessions = sorted(p for p in path.iterdir() if is_session_folder(p))
            hint = (f"; it holds {len(sessions)} session folder(s), e.g. {sessions[-1]}" if sessions else "")
            raise ValueError(f"{path}: not a session folder (no config.yaml with outputs.json / summary.json) and no "
                             f"training history (*.history.json) in it{hint}")
        return found
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"PK\x03\x04"):  # a zip: an .npz model file
        from rtsnn.learn.offline.pretrain import history_path_for

        hist = history_path_for(path)
        if not hist.is_file():
            raise ValueError(f"{path}: a model file without a training history beside it (expected {hist.name}; "
                             f"rtsnn pretrain writes one)")
        return [hist]
    if head.lstrip()[:1] in (b"{", b"["):
        return [path]
    raise ValueError(f"{path}: neither a session folder, a model file (.npz) nor a training history (.json)")


# ====================================================================== drawing
def _figure(width_in: float, height_in: float):
    from rtsnn.extras import require

    require("matplotlib", "rtsnn plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # Agg renders it; no display and no pyplot state
    return fig


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _title(data: SessionData) -> str:
    s = data.config.get("session") or {}
    return f"session {s.get('name', '?')} ({data.folder.name})"


def outputs_figure(data: SessionData):
    """One panel per output dimension: decoded and target over session time."""
    t, y, tgt = output_series(data.rows, data.n_out, data.dt_s)
    step = max(1, math.ceil(len(t) / MAX_POINTS_PER_TRACE))
    fig = _figure(10.0, 0.9 + 2.3 * data.n_out)
    axes = fig.subplots(data.n_out, 1, sharex=True, squeeze=False)[:, 0]
    for k, ax in enumerate(axes):
        if data.calibration_s is not None and data.calibration_s > t[0]:
            ax.axvspan(t[0], min(data.calibration_s, t[-1]), color="0.88", zorder=0,
                       label=f"calibration (calibration_s {data.calibration_s:.3g} s)")
        ax.plot(t[::step], tgt[::step, k], color="black", lw=1.2, label="target")
        ax.plot(t[::step], y[::step, k], color="tab:orange", lw=0.9, alpha=0.9, label="decoded")
        ax.set_ylabel(f"{data.labels[k]} ({data.units[k]})")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("session time (s)")
    axes[-1].set_xlim(t[0], t[-1])
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=len(names), frameon=False)
    thinned = f", one tick in {step} drawn" if step > 1 else ""
    fig.suptitle(f"Decoded vs target: {_title(data)}, tick {data.dt_s * 1e3:g} ms{thinned}")
    return fig


def r2_curve(data: SessionData, window_ticks: int | None = None) -> dict[str, Any]:
    """The sliding R^2 drawn in ``r2.png``: window (default :func:`default_r2_window_ticks`),
    hop a tenth of it; denominator the target variance over the rows after calibration (all
    rows without one), the rows the session's own R^2 is computed on, so the windows' mean
    error matches that figure."""
    t, y, tgt = output_series(data.rows, data.n_out, data.dt_s)
    evaluated = t >= data.calibration_s if data.calibration_s is not None else np.ones(len(t), bool)
    var = target_variance(tgt[evaluated] if evaluated.sum() >= 2 else tgt)
    w = int(window_ticks) if window_ticks else default_r2_window_ticks(len(t), data.dt_s)
    if w < 2:
        raise ValueError(f"--r2-window-s is {w} tick(s) long at dt_s {data.dt_s:g} s; it must span >= 2 ticks")
    if w > len(t):
        raise ValueError(f"{data.folder}: --r2-window-s ({w * data.dt_s:g} s) is longer than the recorded "
                         f"outputs ({len(t) * data.dt_s:g} s)")
    hop = max(1, w // 10)
    end, r2 = sliding_r2(y, tgt, w, hop, var)
    return {"t_s": t[end - 1], "r2": r2, "window_ticks": w, "hop_ticks": hop, "window_s": w * data.dt_s}


def r2_figure(data: SessionData, window_ticks: int | None = None):
    """Sliding R² over session time (:func:`r2_curve`), calibration and the session's R² marked."""
    cur = r2_curve(data, window_ticks)
    t0 = data.rows[0, 0] * data.dt_s
    fig = _figure(10.0, 4.0)
    ax = fig.subplots()
    if data.calibration_s is not None:  # windows in here score a decoder not yet calibrated
        if data.calibration_s > t0:
            ax.axvspan(t0, data.calibration_s, color="0.88", zorder=0)
        ax.axvline(data.calibration_s, color="tab:red", ls="--", lw=1.2,
                   label=f"calibration ends (calibration_s {data.calibration_s:.3g} s)")
    summary_r2 = (data.summary or {}).get("r2")
    if isinstance(summary_r2, (int, float)):
        ax.axhline(summary_r2, color="0.4", ls=":", lw=1.2, label=f"session R² (summary.json) {summary_r2:.3f}")
    ax.plot(cur["t_s"], cur["r2"], color="tab:blue", lw=1.5, marker="." if len(cur["r2"]) < 60 else None,
            label=f"R² in a {cur['window_s']:g} s window (every {cur['hop_ticks'] * data.dt_s:g} s)")
    finite = cur["r2"][np.isfinite(cur["r2"])]
    low = max(-1.0, float(finite.min()) - 0.05) if finite.size else -1.0
    ax.set_ylim(min(low, 0.0), 1.02)
    clipped = finite.size and finite.min() < -1.0
    ax.set_ylabel("R² (mean over outputs)" + (" - axis cut at -1" if clipped else ""))
    ax.set_xlim(t0, data.rows[-1, 0] * data.dt_s)
    ax.set_xlabel("session time at the window's end (s)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    fig.suptitle(f"Decoding R² over time: {_title(data)}\n"
                 f"window {cur['window_s']:g} s; denominator: the target's variance after calibration", fontsize=11)
    return fig


def latency_figure(data: SessionData):
    """One log-x histogram per stage (microseconds), p50 and p99 marked."""
    hist = data.hist
    names = [str(n) for n in hist["names"]]
    series = [s for s in LATENCY_SERIES if s in names]
    budget_us = (data.config.get("session") or {}).get("budget_us")
    pace = (data.config.get("session") or {}).get("pace", "realtime")
    ncols = 3
    nrows = math.ceil(len(series) / ncols)
    fig = _figure(12.0, 0.8 + 2.5 * nrows)
    from matplotlib.ticker import FuncFormatter, NullFormatter  # after _figure: matplotlib is there

    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, series):
        i = names.index(name)
        edges, counts = coarse_histogram(hist["counts"][i], hist["upper_edge_ns"])
        st = series_percentiles_us(hist, name)
        if not st["n"]:
            why = ("not measured at pace max" if name in ("e2e", "input_age") and pace == "max"
                   else "the stage never ran")
            ax.text(0.5, 0.5, f"no samples\n({why})", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(name, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ax.stairs(counts, edges, fill=True, color="tab:blue", alpha=0.6)
        ax.axvline(st["p50"], color="tab:green", lw=1.5, label="p50")
        ax.axvline(st["p99"], color="tab:red", lw=1.5, ls="--", label="p99")
        ax.set_xscale("log")
        ax.set_yscale("log")
        right = edges[-1]
        if name == "tick" and isinstance(budget_us, (int, float)) and budget_us > 0:
            ax.axvline(budget_us, color="black", lw=1.2, ls=":", label="session.budget_us")
            right = max(right, budget_us * 1.1)
        # whole decades, labelled 0.1 / 1 / 10 / 100: at least two labelled ticks, never crowded
        ax.set_xlim(10.0 ** math.floor(math.log10(edges[0])), 10.0 ** math.ceil(math.log10(right)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0.7, counts.max() * 3)
        ax.set_title(f"{name}: p50 {_fmt_us(st['p50'])}, p99 {_fmt_us(st['p99'])} µs (n {st['n']})", fontsize=10)
        ax.set_xlabel("latency (µs)")
        ax.grid(alpha=0.3, which="major")
    for ax in axes[len(series):]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel("count per bin")
    handles = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center", ncol=len(handles),
               frameon=False)
    fig.suptitle(f"Latency per stage: {_title(data)} ({LATENCY_BINS_PER_GROUP} bins per octave; "
                 f"e2e and input_age per input sample, the rest per tick)", fontsize=11)
    return fig


def _fmt_us(v: float) -> str:
    """Three significant digits below 1000 us, whole microseconds above (no 2.57e+03)."""
    return f"{v:.3g}" if v < 1000 else f"{v:.0f}"


def misses_figure(data: SessionData):
    """Deadline misses in each metrics interval (bars), and that interval's miss rate."""
    iv = misses_per_interval(data.metrics)
    fig = _figure(10.0, 3.8)
    ax = fig.subplots()
    widths = iv["t_end_s"] - iv["t_start_s"]
    ax.bar(iv["t_start_s"], iv["misses"], width=widths, align="edge", color="tab:red", alpha=0.75,
           edgecolor="white", lw=0.5)
    total_m, total_k = int(iv["misses"].sum()), int(iv["ticks"].sum())
    rate = f"{100 * total_m / total_k:.3f} % of {total_k} ticks" if total_k else "no ticks"
    interval = float(np.median(widths)) if len(widths) else 0.0
    ax.set_xlabel("session time (s, from the metrics writer's start)")
    ax.set_ylabel(f"misses per interval (~{interval:.3g} s)")
    if len(iv["t_end_s"]):
        ax.set_xlim(0, iv["t_end_s"][-1])
    ax.set_ylim(0, max(1, int(iv["misses"].max()) if len(iv["misses"]) else 1) * 1.15)
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"Deadline misses: {_title(data)}\ntotal {total_m} = {rate}", fontsize=11)
    return fig


def training_figure(doc: dict[str, Any], source: Path):
    """Loss (left) and metric (right) per epoch, train and held-out."""
    h = history_columns(doc)
    ep = h["epoch"]
    fig = _figure(11.0, 4.6)
    ax_l, ax_m = fig.subplots(1, 2)
    marker = "o" if len(ep) <= 40 else None
    for key, lab, col in (("train_loss", "train", "tab:blue"), ("heldout_loss", "held-out", "tab:orange")):
        if np.isfinite(h[key]).any():
            ax_l.plot(ep, h[key], color=col, marker=marker, ms=3, label=lab)
    loss_vals = np.concatenate([h["train_loss"], h["heldout_loss"]])
    loss_vals = loss_vals[np.isfinite(loss_vals) & (loss_vals > 0)]
    if loss_vals.size and loss_vals.max() / loss_vals.min() > 20:
        ax_l.set_yscale("log")
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("loss (dimensionless)")
    ax_l.set_title("loss per epoch", fontsize=10)
    metric = str(doc.get("metric", "metric")).replace("^2", "²")
    both = np.isfinite(h["heldout_metric_continuous"]).any()  # a trainer that also runs the continuous stream
    for key, lab, col, ls in (("train_metric", "train", "tab:blue", "-"),
                              ("heldout_metric", "held-out, reset per trial" if both else "held-out", "tab:orange", "-"),
                              ("heldout_metric_continuous", "held-out, continuous", "tab:red", "--")):
        if np.isfinite(h[key]).any():
            ax_m.plot(ep, h[key], color=col, ls=ls, marker=marker, ms=3, label=lab)
    base = doc.get("baseline")
    for key, what, ls in (("heldout_metric", "reset per trial" if both else "held-out", "--"),
                          ("heldout_metric_continuous", "continuous", ":")):
        if isinstance(base, dict) and isinstance(base.get(key), (int, float)):
            ax_m.axhline(base[key], color="0.35", ls=ls, lw=1.2, label=f"{base.get('name', 'baseline')}, {what}")
    ax_m.set_xlabel("epoch")
    ax_m.set_ylabel(metric)
    ax_m.set_title(f"{metric} per epoch", fontsize=10)
    for ax in (ax_l, ax_m):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False, fontsize=9)
    epoch_s = h["epoch_s"][np.isfinite(h["epoch_s"])]
    timing = f", median {np.median(epoch_s):.3g} s per epoch" if epoch_s.size else ""
    what = doc.get("model_file") or source.name
    fig.suptitle(f"Training: {what} ({doc.get('method', '?')}, {len(ep)} epochs{timing})", fontsize=11)
    return fig


# ====================================================================== whole commands
def plot_session(folder: str | Path, out_dir: str | Path | None = None,
                 r2_window_s: float | None = None) -> dict[str, Any]:
    """Draw every picture a session folder allows; ``{"written": [paths], "notes": [...]}``."""
    data = load_session(folder)
    out = Path(out_dir) if out_dir is not None else data.folder / "plots"
    written: list[Path] = []
    notes = list(data.notes)
    w = None
    if r2_window_s is not None:  # checked before anything is drawn
        if not (r2_window_s > 0 and math.isfinite(r2_window_s)):
            raise ValueError(f"--r2-window-s must be > 0 and finite, got {r2_window_s!r}")
        w = int(round(r2_window_s / data.dt_s))
        if data.rows is not None:
            r2_curve(data, w)
    if data.rows is not None:
        written.append(_save(outputs_figure(data), out / "outputs.png"))
        if target_variance(output_series(data.rows, data.n_out, data.dt_s)[2]).max(initial=0.0) > 0:
            written.append(_save(r2_figure(data, w), out / "r2.png"))
        else:
            notes.append("the target never varies (no teaching signal?): no R^2 plot")
    if data.hist is not None:
        written.append(_save(latency_figure(data), out / "latency.png"))
    if (data.config.get("session") or {}).get("pace") == "max":
        notes.append("session.pace is max (no deadlines): no deadline-miss plot")
    elif len(misses_per_interval(data.metrics)["t_end_s"]):
        written.append(_save(misses_figure(data), out / "misses.png"))
    if not written:
        raise ValueError(f"{data.folder}: nothing to draw ({'; '.join(notes)})")
    return {"kind": "session", "input": data.folder, "written": written, "notes": notes}


def plot_training(path: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Draw the training curves of each history ``path`` stands for (see :func:`find_history`)."""
    written = []
    for hist in find_history(Path(path)):
        doc = load_history(hist)
        stem = hist.name[: -len(".history.json")] if hist.name.endswith(".history.json") else hist.stem
        dest = (Path(out_dir) if out_dir is not None else hist.parent) / f"{stem}.training.png"
        written.append(_save(training_figure(doc, hist), dest))
    return {"kind": "training", "input": Path(path), "written": written, "notes": []}


def plot_path(path: str | Path, out_dir: str | Path | None = None, r2_window_s: float | None = None) -> dict[str, Any]:
    """``rtsnn plot PATH``: a session folder, or a model / history / folder of histories,
    told apart by what they hold."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such file or folder")
    if is_session_folder(p):
        return plot_session(p, out_dir, r2_window_s)
    if p.is_dir() and (p / "config.yaml").is_file() and not any(p.glob("*.history.json")):
        raise ValueError(f"{p}: has config.yaml but no outputs.json or summary.json: not a session folder "
                         f"(or one whose session never started)")
    if r2_window_s is not None:
        raise ValueError(f"{p}: --r2-window-s applies to session folders; this is a training run")
    return plot_training(p, out_dir)
