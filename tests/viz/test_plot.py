"""``rtsnn plot``: pictures of a real session folder and of a real pretraining run. The data
preparation (sliding R^2, misses per interval, histogram regrouping) is checked against plain
numpy; the figures against the data they were drawn from; the PNGs by their header; bad
input by its one-line error and exit status 2."""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import reach_session
from rtsnn.cli import main
from rtsnn.viz import plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails unless the file is a PNG."""
    head = Path(path).read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def fig_px(fig) -> tuple[int, int]:
    w, h = fig.get_size_inches()
    return int(round(w * plot.DPI)), int(round(h * plot.DPI))


# ------------------------------------------------------------------ a real session on a file
N_NEURONS, DT_S, N_BINS, CALIB_S = 24, 0.01, 1200, 4.0


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory) -> Path:
    """One max-pace session replaying a recording through the whole session: encoder, SNN, ridge
    calibration, outputs.f64, metrics, summary, histograms."""
    folder = reach_session(tmp_path_factory.mktemp("plot_session"), name="plot-test", n_bins=N_BINS,
                           n_neurons=N_NEURONS, dt_s=DT_S, n_rec=64,
                           neuron={"model": "lif", "tau_mem_s": 0.1, "refractory_s": 0.0, "tau_out_s": 0.1},
                           learner={"kind": "ridge_readout", "options": {"calibration_s": CALIB_S, "ridge": 1.0}})
    assert json.loads((folder / "summary.json").read_text())["r2"] is not None
    return folder


def _rows(folder: Path) -> np.ndarray:
    cols = json.loads((folder / "outputs.json").read_text())["columns"]
    return np.fromfile(folder / "outputs.f64", "<f8").reshape(-1, len(cols))


# ------------------------------------------------------------------ data preparation
def _plain_r2(y, t, w, hop, var):
    """The definition, one window at a time: rows with any non-finite value left out."""
    out = []
    for end in range(w, len(y) + 1, hop):
        yy, tt = y[end - w:end], t[end - w:end]
        ok = np.all(np.isfinite(yy) & np.isfinite(tt), axis=1)
        yy, tt = yy[ok], tt[ok]
        per = []
        for k in range(y.shape[1]):
            ss_tot = len(tt) * var[k] if var is not None else np.sum((tt[:, k] - tt[:, k].mean()) ** 2)
            per.append(1 - np.sum((yy[:, k] - tt[:, k]) ** 2) / ss_tot if ok.sum() >= w / 2 and ss_tot > 0 else np.nan)
        out.append(np.nanmean(per) if np.isfinite(per).any() else np.nan)
    return np.array(out)


@pytest.mark.parametrize("use_var", [True, False])
def test_sliding_r2_matches_the_definition(use_var):
    rng = np.random.default_rng(4)
    t = np.cumsum(rng.normal(size=(503, 3)), axis=0)
    y = t + rng.normal(scale=3.0, size=t.shape)
    y[17, 1] = np.nan  # a non-finite output leaves its row out of the window
    t[300:, 2] = 5.0  # a constant target dimension: no variance in late windows
    var = t.var(axis=0) if use_var else None
    end, r2 = plot.sliding_r2(y, t, 40, 7, var)
    assert np.array_equal(end, np.arange(40, 504, 7))
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(r2, _plain_r2(y, t, 40, 7, var), rtol=1e-9, atol=1e-9)
    # a perfect decoder scores 1 in every window
    assert np.allclose(plot.sliding_r2(t[:, :2], t[:, :2], 40, 7, var if var is None else var[:2])[1], 1.0)
    with pytest.raises(ValueError, match="window_ticks must be >= 2"):
        plot.sliding_r2(y, t, 1, 1)


def test_default_r2_window_is_a_tenth_of_the_run_within_1_to_10_s():
    assert plot.default_r2_window_ticks(60_000, 0.001) == 5000  # 60 s at 1 ms: 6 s -> 5 s
    assert plot.default_r2_window_ticks(600_000, 0.001) == 10_000  # 10 min: capped at 10 s
    assert plot.default_r2_window_ticks(4000, 0.001) == 1000  # 4 s: at least 1 s
    assert plot.default_r2_window_ticks(1200, 0.01) == 100  # 12 s of 10 ms ticks: 1 s
    assert plot.default_r2_window_ticks(30, 0.1) == 20  # never under 20 ticks


def test_misses_per_interval_are_differences_of_the_cumulative_counters():
    lines = [{"t_s": 1.0, "ticks": 800, "deadline_misses": 4}, {"t_s": 2.0, "ticks": 1800, "deadline_misses": 4},
             {"note": "no counters"}, {"t_s": 3.1, "ticks": 2900, "deadline_misses": 11}]
    iv = plot.misses_per_interval(lines)
    assert iv["misses"].tolist() == [4, 0, 7] and iv["ticks"].tolist() == [800, 1000, 1100]
    assert iv["t_start_s"].tolist() == [0.0, 1.0, 2.0] and iv["t_end_s"].tolist() == [1.0, 2.0, 3.1]


def test_histogram_regrouping_keeps_counts_and_percentiles(tmp_path):
    from rtsnn.runtime.metrics import LatencyStats, load_hist_npz

    stats = LatencyStats(["step", "learn"])
    values_ns = np.random.default_rng(1).lognormal(np.log(5000), 0.6, size=3000)
    for v in values_ns:
        stats.record("step", v)
    stats.save_npz(tmp_path / "h.npz")
    hist = load_hist_npz(tmp_path / "h.npz")
    edges_us, counts = plot.coarse_histogram(hist["counts"][0], hist["upper_edge_ns"])
    assert counts.sum() == 3000 and len(edges_us) == len(counts) + 1
    assert edges_us[0] <= values_ns.min() / 1e3 and edges_us[-1] >= values_ns.max() / 1e3
    np.testing.assert_allclose(edges_us[1:] / edges_us[:-1], 2 ** (plot.LATENCY_BINS_PER_GROUP / 64))
    st = plot.series_percentiles_us(hist, "step")
    ref = stats.summary_us("step")
    assert st["p50"] == pytest.approx(ref["p50"], abs=0.01) and st["p99"] == pytest.approx(ref["p99"], abs=0.01)
    assert st["p50"] == pytest.approx(np.percentile(values_ns, 50) / 1e3, rel=0.02)
    assert plot.series_percentiles_us(hist, "learn") == {"p50": None, "p99": None, "max": None, "n": 0}
    assert plot.coarse_histogram(hist["counts"][1], hist["upper_edge_ns"])[1].size == 0


# ------------------------------------------------------------------ a session folder
def test_plot_session_writes_the_pngs(session_dir, tmp_path, capsys):
    out = tmp_path / "pics"
    assert main(["plot", str(session_dir), "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["kind"] == "session" and res["input"] == str(session_dir.resolve())
    names = [Path(p).name for p in res["written"]]
    assert names == ["outputs.png", "r2.png", "latency.png"]  # pace max: no deadlines, no misses plot
    assert any("pace is max" in n for n in res["notes"])
    data = plot.load_session(session_dir)
    sizes = {"outputs.png": fig_px(plot.outputs_figure(data)), "r2.png": fig_px(plot.r2_figure(data)),
             "latency.png": fig_px(plot.latency_figure(data))}
    for p in res["written"]:
        assert Path(p).parent == out.resolve()
        assert png_size(p) == sizes[Path(p).name]
    assert sizes["outputs.png"] == (1000, 550)  # 10 in wide at 100 dpi, 0.9 + 2.3 in per output
    # the default folder is SESSION_DIR/plots; plain output is one normalised path per line
    assert main(["plot", str(session_dir) + "/./"]) == 0
    lines = capsys.readouterr().out.split()
    assert lines == [str((session_dir / "plots" / n).resolve()) for n in names]


def test_outputs_figure_draws_the_recorded_columns(session_dir):
    data = plot.load_session(session_dir)
    rows = _rows(session_dir)
    fig = plot.outputs_figure(data)
    axes = [ax for ax in fig.axes if ax.lines]
    assert len(axes) == 2
    for k, ax in enumerate(axes):
        by_label = {ln.get_label(): ln for ln in ax.lines}
        np.testing.assert_array_equal(by_label["target"].get_xdata(), rows[:, 0] * DT_S)
        np.testing.assert_array_equal(by_label["target"].get_ydata(), rows[:, 5 + k])
        np.testing.assert_array_equal(by_label["decoded"].get_ydata(), rows[:, 3 + k])
        assert ax.get_ylabel() == f"{['vx', 'vy'][k]} (cm/s)"  # outputs.json's units (the model's)


def test_output_units_of_a_folder_written_before_outputs_json_had_them(session_dir, tmp_path):
    """Older folders have no ``units`` in outputs.json: the config's model gives them, else a.u."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(session_dir, old)
    meta = json.loads((old / "outputs.json").read_text())
    assert meta["units"]["y_vx"] == "cm/s"
    del meta["units"]
    (old / "outputs.json").write_text(json.dumps(meta))
    assert plot.load_session(old).units == ["cm/s", "cm/s"]
    cfg = (old / "config.yaml").read_text().replace("cm/s", "")
    assert "output_units" in cfg
    (old / "config.yaml").write_text(cfg)
    assert plot.load_session(old).units == ["a.u.", "a.u."]


def test_r2_figure_is_the_sliding_r2_of_the_outputs(session_dir):
    data = plot.load_session(session_dir)
    rows = _rows(session_dir)
    y, t = rows[:, 3:5], rows[:, 5:7]
    after = rows[:, 0] * DT_S >= CALIB_S
    w = 100  # default for 12 s of 10 ms ticks: 1 s
    expected = _plain_r2(y, t, w, w // 10, t[after].var(axis=0))
    fig = plot.r2_figure(data)
    ax = fig.axes[0]
    curve = next(ln for ln in ax.lines if ln.get_label().startswith("R²"))
    np.testing.assert_allclose(curve.get_ydata(), expected, rtol=1e-9)
    assert "1 s window" in curve.get_label()
    calib = next(ln for ln in ax.lines if ln.get_label().startswith("calibration ends"))
    assert calib.get_xdata()[0] == CALIB_S
    # the windows after calibration average to the session's own R^2 (same denominator)
    summary = json.loads((session_dir / "summary.json").read_text())
    post = expected[np.arange(w, len(y) + 1, w // 10) - w >= np.argmax(after)]
    assert np.mean(post) == pytest.approx(summary["r2"], abs=0.1)
    # a chosen window
    fig = plot.r2_figure(data, 200)
    curve = next(ln for ln in fig.axes[0].lines if ln.get_label().startswith("R²"))
    assert "2 s window" in curve.get_label() and len(curve.get_ydata()) == len(range(200, len(y) + 1, 20))


def test_latency_figure_shows_each_stage_with_its_percentiles(session_dir):
    data = plot.load_session(session_dir)
    fig = plot.latency_figure(data)
    titles = {ax.get_title().split(":")[0]: ax for ax in fig.axes if ax.get_visible()}
    assert list(titles) == list(plot.LATENCY_SERIES)
    summary = json.loads((session_dir / "summary.json").read_text())
    for stage in ("step", "tick", "ingest"):
        ax = titles[stage]
        want = summary["stage_latency_us"][stage]
        xs = sorted(ln.get_xdata()[0] for ln in ax.lines if ln.get_label() in ("p50", "p99"))
        assert xs == pytest.approx([want["p50"], want["p99"]], abs=0.01)
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "latency (µs)"
    # at pace max no sample has an end-to-end latency: the panel says so instead of drawing
    assert not titles["e2e"].lines and "pace max" in titles["e2e"].texts[0].get_text()


def test_misses_figure_from_metrics(session_dir, tmp_path):
    folder = tmp_path / "live"
    shutil.copytree(session_dir, folder)
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    cfg["session"]["pace"] = "realtime"
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines = [{"t_s": 1.0, "ticks": 900, "deadline_misses": 2}, {"t_s": 2.0, "ticks": 1900, "deadline_misses": 9}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    data = plot.load_session(folder)
    fig = plot.misses_figure(data)
    bars = fig.axes[0].patches
    assert [b.get_height() for b in bars] == [2, 7] and [b.get_x() for b in bars] == [0.0, 1.0]
    assert "total 9" in fig.get_suptitle()
    res = plot.plot_session(folder)
    assert [p.name for p in res["written"]] == ["outputs.png", "r2.png", "latency.png", "misses.png"]
    assert png_size(res["written"][-1]) == fig_px(fig)


@pytest.mark.lsl
def test_plot_a_live_demo_session(tmp_path, capsys):
    """The README's path: a real demo (synthetic user over LSL), then its pictures."""
    assert main(["demo", "--duration", "4", "--out-dir", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    folder = Path(summary["folder"])
    assert main(["plot", str(folder), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [Path(p).name for p in res["written"]] == ["outputs.png", "r2.png", "latency.png", "misses.png"]
    for p in res["written"]:
        png_size(p)
    data = plot.load_session(folder)
    iv = plot.misses_per_interval(data.metrics)
    assert iv["misses"].sum() == summary["deadline_misses"] and iv["ticks"].sum() == summary["ticks"]
    assert data.units == ["a.u./s", "a.u./s"] and data.calibration_s == pytest.approx(4 / 3)
    e2e = next(ax for ax in plot.latency_figure(data).axes if ax.get_title().startswith("e2e"))
    assert e2e.patches  # live: end-to-end latency is measured and drawn


# ------------------------------------------------------------------ bad input
def _error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_folder_that_is_not_a_session(tmp_path, capsys, session_dir):
    (tmp_path / "notes.txt").write_text("hello")
    assert "not a session folder" in _error(["plot", str(tmp_path)], capsys)
    # the folder above sessions: named, with a session inside it as the hint
    err = _error(["plot", str(session_dir.parent)], capsys)
    assert "not a session folder" in err and session_dir.name in err


def test_a_session_that_crashed_before_its_first_tick(tmp_path, capsys, session_dir):
    folder = tmp_path / "crashed"
    folder.mkdir()
    for name in ("config.yaml", "outputs.json"):
        shutil.copy(session_dir / name, folder / name)
    (folder / "outputs.f64").write_bytes(b"")
    (folder / "metrics.jsonl").write_text("")
    err = _error(["plot", str(folder)], capsys)
    assert str(folder) in err and "ended before its first tick" in err and "outputs.f64 is empty" in err
    (folder / "outputs.f64").unlink()
    assert "outputs.f64 is missing" in _error(["plot", str(folder)], capsys)
    assert not (folder / "plots").exists()


def test_a_session_that_crashed_mid_run_draws_what_it_wrote(tmp_path, capsys, session_dir):
    folder = tmp_path / "midrun"
    folder.mkdir()
    for name in ("config.yaml", "outputs.json", "metrics.jsonl"):
        shutil.copy(session_dir / name, folder / name)
    raw = (session_dir / "outputs.f64").read_bytes()
    (folder / "outputs.f64").write_bytes(raw[: len(raw) // 2 + 13])  # cut inside a row
    with open(folder / "metrics.jsonl", "a") as f:
        f.write('{"t_s": 9.0, "ticks": 12')  # the line being written when it died
    assert main(["plot", str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    assert [Path(p).name for p in res["written"]] == ["outputs.png", "r2.png"]
    notes = " | ".join(res["notes"])
    assert "partial row" in notes and "no summary.json" in notes and "latency_hist.npz is missing" in notes
    assert "last line 2 is incomplete" in notes
    data = plot.load_session(folder)
    assert len(data.rows) == (len(raw) // 2 + 13) // (8 * 7)


def test_bad_r2_window(session_dir, tmp_path, capsys):
    out = ["--out", str(tmp_path)]
    assert "--r2-window-s must be > 0" in _error(["plot", str(session_dir), "--r2-window-s", "0", *out], capsys)
    assert "longer than the recorded outputs (12 s)" in _error(
        ["plot", str(session_dir), "--r2-window-s", "60", *out], capsys)
    assert not list(tmp_path.iterdir())  # refused before anything was drawn


def test_a_missing_path(tmp_path, capsys):
    err = _error(["plot", str(tmp_path / "nope")], capsys)
    assert "nope: no such file or folder" in err


def test_bad_history_files(tmp_path, capsys):
    bad = tmp_path / "a.history.json"
    bad.write_text("{not json")
    assert "not readable as JSON" in _error(["plot", str(bad)], capsys)
    bad.write_text(json.dumps({"format": "something-else", "epochs": []}))
    assert "not a training history: format is 'something-else'" in _error(["plot", str(bad)], capsys)
    bad.write_text(json.dumps({"format": plot.HISTORY_FORMAT, "epochs": []}))
    assert "epochs: expected a non-empty list" in _error(["plot", str(bad)], capsys)
    bad.write_text(json.dumps({"format": plot.HISTORY_FORMAT,
                               "epochs": [{"epoch": 1, "train_loss": 0.3}, {"epoch": 2, "train_loss": "low"}]}))
    assert "epochs[1].train_loss: expected a number or null" in _error(["plot", str(bad)], capsys)
    (tmp_path / "m.npz").write_bytes(b"PK\x03\x04rest")
    assert "without a training history beside it (expected m.history.json" in _error(
        ["plot", str(tmp_path / "m.npz")], capsys)
    (tmp_path / "x.bin").write_bytes(b"\x00\x01")
    assert "neither a session folder" in _error(["plot", str(tmp_path / "x.bin")], capsys)


def test_missing_matplotlib_gives_the_install_hint(session_dir, tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ModuleNotFoundError
    err = _error(["plot", str(session_dir), "--out", str(tmp_path)], capsys)
    assert "pip install 'rtsnn[plot]'" in err and "matplotlib" in err


# ------------------------------------------------------------------ training runs
def test_pretrain_writes_its_history_and_plot_draws_it(tmp_path, capsys):
    cfg = {"data": {"kind": "synthetic", "bin_s": 0.02, "synthetic": {"duration_s": 8.0, "trial_s": 1.0}},
           "model": {"n_rec": 16, "neuron": {"tau_mem_s": 0.05, "tau_out_s": 0.1}},
           "train": {"epochs": 3, "batch_size": 4},
           "output": {"model_path": "runs/tiny.npz"}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "runs").mkdir()
    assert main(["pretrain", str(tmp_path / "p.yaml"), "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    hist_path = tmp_path / "runs" / "tiny.history.json"
    assert result["history_path"] == str(hist_path)

    def no_nan(x):
        raise AssertionError(f"non-strict JSON constant {x}")

    doc = json.loads(hist_path.read_text(), parse_constant=no_nan)
    from rtsnn.learn.offline.pretrain import HISTORY_FORMAT

    assert doc["format"] == HISTORY_FORMAT == plot.HISTORY_FORMAT and doc["model_file"] == "tiny.npz" and doc["metric"] == "R^2"
    assert [e["epoch"] for e in doc["epochs"]] == [1, 2, 3]
    for e in doc["epochs"]:
        assert e["train_loss"] > 0 and e["heldout_loss"] > 0 and e["epoch_s"] > 0 and e["train_metric"] is None
    # the last epoch's held-out R^2 is the model's reported one (same weights, same test trials)
    assert doc["epochs"][-1]["heldout_metric"] == pytest.approx(result["snn_r2"], abs=1e-6)
    assert doc["baseline"]["heldout_metric"] == pytest.approx(result["wiener_r2"])

    # the model file, the history itself and the folder all lead to the same picture
    want = str((tmp_path / "runs" / "tiny.training.png").resolve())
    for arg in ("runs/tiny.npz", "runs/tiny.history.json", "runs"):
        assert main(["plot", str(tmp_path / arg), "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["kind"] == "training" and res["written"] == [want]
    fig = plot.training_figure(plot.load_history(hist_path), hist_path)
    assert png_size(want) == fig_px(fig)
    ax_loss, ax_metric = fig.axes[:2]
    lines = {ln.get_label(): ln for ln in ax_loss.lines}
    np.testing.assert_allclose(lines["train"].get_ydata(), [e["train_loss"] for e in doc["epochs"]])
    np.testing.assert_allclose(lines["held-out"].get_ydata(), [e["heldout_loss"] for e in doc["epochs"]])
    assert list(lines["train"].get_xdata()) == [1, 2, 3]
    metric = {ln.get_label(): ln for ln in ax_metric.lines}
    np.testing.assert_allclose(metric["held-out, reset per trial"].get_ydata(),
                               [e["heldout_metric"] for e in doc["epochs"]])
    np.testing.assert_allclose(metric["held-out, continuous"].get_ydata(),
                               [e["heldout_metric_continuous"] for e in doc["epochs"]])
    assert doc["baseline"]["heldout_metric_continuous"] == pytest.approx(result["wiener_r2_continuous"])
    assert ax_metric.get_ylabel() == "R²" and ax_loss.get_xlabel() == "epoch"
    # --out
    assert main(["plot", str(tmp_path / "runs"), "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.split() == [str((tmp_path / "o" / "tiny.training.png").resolve())]


def test_fp_history_uses_the_same_format(tmp_path):
    from rtsnn.datasets import load_xor
    from rtsnn.learn.offline import fp
    from rtsnn.learn.offline.pretrain import FP_HISTORY_KEYS, save_history, training_history

    xor = load_xor()
    x = fp.encode_latency(xor.x)
    trained = fp.train_classifier_fp(x, xor.y, hidden=[4], n_classes=2, epochs=3, seed=0, batch_size=4,
                                     x_val=x, y_val=xor.y)
    doc = training_history(trained.history, method="fp", metric="accuracy", loss="TTFS loss",
                           keys=FP_HISTORY_KEYS)
    path = save_history(tmp_path / "xor.history.json", doc)
    res = plot.plot_training(path)
    assert [p.name for p in res["written"]] == ["xor.training.png"]
    fig = plot.training_figure(plot.load_history(path), path)
    metric = {ln.get_label(): ln for ln in fig.axes[1].lines}
    np.testing.assert_allclose(metric["train"].get_ydata(), [h["train_acc"] for h in trained.history])
    np.testing.assert_allclose(metric["held-out"].get_ydata(), [h["val_acc"] for h in trained.history])
    assert fig.axes[1].get_ylabel() == "accuracy"
