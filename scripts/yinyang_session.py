"""An FP Yin-Yang classifier run in a session: the test set replayed at ``pace: max``.

What runs (nothing here simulates the network itself):

1. an FP network (:func:`rtsnn.learn.offline.fp.train_classifier_fp`, trained here with a
   configuration of ``scripts/reproduce_yinyang.py`` or loaded with ``--load``) is exported
   with :func:`rtsnn.learn.offline.export.fp_to_graph` at the tick ``--dt-s`` (one FP time
   unit = ``--unit-s`` seconds) and saved as a model file with its input contract (5 channels,
   that tick, the ``passthrough`` encoder);
2. the test set becomes recordings (one per chunk of ``--chunk`` samples; npz, ``rate_hz = 1 / dt_s``, one row per tick): stream
   ``spikes`` (5 channels ``x, y, 1-x, 1-y, bias``: 1 in the tick of each input spike,
   :func:`rtsnn.learn.offline.export.fp_input_raster`) and stream ``label`` (3 channels, the
   one-hot class during the sample's window, 0 in the gaps), sample after sample: a window of
   ``W = floor(t_max / D)`` ticks (``D = dt_s / unit_s``) then a silent gap of ``G`` ticks;
3. ``rtsnn run`` on a config with ``session.pace: max``, source ``xdf_file`` (stream
   ``spikes``), teacher ``xdf_file`` (stream ``label``, so the targets land in the outputs),
   encoder ``passthrough``, the model file: the session ticks through the whole file (one
   session per chunk, one after another: the outputs take 72 bytes a tick);
4. ``outputs.f64`` (read with :func:`rtsnn.api.load_outputs`) cut into samples: sample ``s``
   owns ticks ``[s (W + G), s (W + G) + W)``; its class is the output column that is 1
   first (a tie within a tick goes to the lower index and is counted), none: no class
   (counted wrong), as FP's silent outputs; the label is the argmax of its target columns.

The network is never reset between samples: the gap lets it forget. The gap is ``--gap-taus``
(default 12) of the slowest time constant, ``G D = 12 / min(alpha, beta)`` units, so currents
and potentials decay by ``exp(-12)`` = 6e-6 before the next sample (alpha = beta = 1: 12
units; the ``beyond`` configuration's beta 0.25: 48 units), and never fewer than ``W + 2``
ticks (the refractory period ``fp_to_graph`` gives a neuron that fired in the window). A
neuron whose potential is still above threshold when its refractory period ends fires again
in the gap (``gap_output_spikes`` counts the outputs' such spikes; harmless while the gap
outlasts them). Checked on every run: the session's first output tick and class per sample
against :func:`rtsnn.learn.offline.export.graph_first_spikes` (the same graph from a fresh state
per sample: ``first_tick_equal_fresh_graph``, ``agree_with_fresh_graph``).

The tick: FP's time unit is a free scale, so what sets the error is ``D = dt_s / unit_s``, the
tick in FP units. The session's shortest tick is 0.1 ms (``rtsnn.limits.MIN_DT_S``); a finer
``D`` takes a longer ``unit_s`` (a slower network in seconds, same in units).

Prints one strict JSON line: FP's continuous-time test accuracy, the session's, their
difference in percentage points, the fresh-state graph's, agreements, ties, wall times.

    python scripts/yinyang_session.py --epochs 20 --seed 0                 # own, D = 0.02
    python scripts/yinyang_session.py --config beyond --unit-s 0.02        # D = 0.005
    python scripts/yinyang_session.py --load fp_yy.npz --dt-s 1e-4         # weights saved by --save
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtsnn.learn.offline import fp  # noqa: E402
from rtsnn.learn.offline.export import (fp_input_raster, fp_n_ticks, fp_to_graph,  # noqa: E402
                                        graph_first_spikes)

CHANNELS = ["x", "y", "1-x", "1-y", "bias"]
CLASSES = ["yang", "yin", "dot"]  # rtsnn.datasets.yinyang.CLASS_NAMES
PROG = "yinyang_session.py"


def _repro():
    """scripts/reproduce_yinyang.py as a module (its configurations and its trainer)."""
    spec = importlib.util.spec_from_file_location("_reproduce_yinyang",
                                                  Path(__file__).with_name("reproduce_yinyang.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def gap_units_for(settings: fp.FPSettings, gap_taus: float, neurons: fp.NeuronParams | None = None) -> float:
    """``gap_taus`` of the network's slowest time constant, in FP units: the settings'
    ``1/alpha``, ``1/beta``, or with trained per-neuron ``neurons`` the longest of their
    ``tau_syn`` / ``tau_mem``."""
    if not (math.isfinite(gap_taus) and gap_taus >= 0):
        raise ValueError(f"--gap-taus must be a finite number >= 0, got {gap_taus!r}")
    if neurons is not None:
        return gap_taus * max(float(np.max(t)) for t in (*neurons.tau_syn, *neurons.tau_mem))
    return gap_taus / min(settings.alpha, settings.beta)


def gap_ticks_for(window_ticks: int, dt_s: float, unit_s: float, gap_units: float) -> int:
    """Silent ticks after each sample: ``gap_units`` FP time units, and never fewer than
    ``window_ticks + 2`` (the refractory period of a neuron that fired in the window)."""
    if not (math.isfinite(gap_units) and gap_units >= 0):
        raise ValueError(f"gap_units must be a finite number >= 0, got {gap_units!r}")
    return max(int(math.ceil(gap_units * unit_s / dt_s - 1e-9)), window_ticks + 2)


def build_stream(in_times: np.ndarray, labels: np.ndarray, n_classes: int, *, dt_s: float, unit_s: float,
                 t_max: float, gap_ticks: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(spikes (n (W + G), n_in) float32, one-hot labels (n (W + G), n_classes) float32, W):
    sample ``s`` occupies rows ``[s (W + G), s (W + G) + W)``, then ``G`` silent rows."""
    in_times = np.asarray(in_times, np.float64)
    labels = np.asarray(labels, np.int64)
    if in_times.ndim != 2 or labels.shape != (in_times.shape[0],):
        raise ValueError(f"in_times must be (n, n_in) and labels (n,), got {in_times.shape} and {labels.shape}")
    if gap_ticks < 0:
        raise ValueError(f"gap_ticks must be >= 0, got {gap_ticks}")
    n, n_in = in_times.shape
    w = fp_n_ticks(t_max, dt_s, unit_s)
    raster = fp_input_raster(in_times, dt_s, unit_s, w)  # (n, W, n_in)
    period = w + gap_ticks
    spikes = np.zeros((n, period, n_in), np.float32)
    spikes[:, :w] = raster
    onehot = np.zeros((n, period, n_classes), np.float32)
    onehot[np.arange(n), :w, labels] = 1.0
    return spikes.reshape(n * period, n_in), onehot.reshape(n * period, n_classes), w


def write_recording(path: Path, spikes: np.ndarray, onehot: np.ndarray, dt_s: float) -> Path:
    """The stream as an npz recording (docs/recordings.md): ``rate_hz``, ``spikes``, ``label``."""
    np.savez_compressed(path, rate_hz=np.float64(1.0 / dt_s), spikes=spikes, spikes_labels=np.array(CHANNELS),
                        label=onehot, label_labels=np.array(CLASSES[:onehot.shape[1]]))
    return path


def session_config(recording: Path, model_path: Path, out_dir: Path, dt_s: float, *, n_in: int, n_out: int,
                   name: str = "yinyang-fp") -> dict:
    """A max-pace session replaying ``recording`` into the model file, labels as the teacher."""
    src = {"path": str(recording), "stream": "spikes", "rate_hz": 1.0 / dt_s, "n_channels": n_in}
    return {"session": {"name": name, "dt_s": dt_s, "pace": "max", "out_dir": str(out_dir), "monitor": False,
                        "budget_us": 0.8 * dt_s * 1e6},
            "source": {"kind": "xdf_file", "options": src},
            "teacher": {"kind": "xdf_file", "options": {**src, "stream": "label", "n_channels": n_out}},
            "encoder": {"kind": "passthrough", "options": {"n_channels": n_in}},
            "model": {"path": str(model_path)}}


def classes_from_outputs(out: dict, labels: list[str], n_samples: int, window_ticks: int, gap_ticks: int) -> dict:
    """Per sample, from a session's outputs (:func:`rtsnn.api.load_outputs`): ``pred`` (first
    output column to be 1 in the window; ties: lower index; none: -1), ``first_tick`` (-1: none),
    ``label`` (argmax of the targets in the window), ``ties``, ``gap_spikes`` (outputs in gaps)."""
    period = window_ticks + gap_ticks
    ticks = np.asarray(out["tick"], np.int64)
    if ticks.size == 0 or not np.array_equal(ticks, ticks[0] + np.arange(ticks.size)):
        raise ValueError("outputs: the tick column is not one row per consecutive tick")
    y = np.stack([out[f"y_{k}"] for k in labels], axis=1)
    tgt = np.stack([out[f"target_{k}"] for k in labels], axis=1)
    need = n_samples * period - gap_ticks
    if y.shape[0] < need:
        raise ValueError(f"outputs: {y.shape[0]} ticks, the {n_samples} samples need {need}")
    rows = np.zeros((n_samples * period, len(labels)))
    rows[:min(y.shape[0], rows.shape[0])] = y[:rows.shape[0]]
    win = rows.reshape(n_samples, period, -1)[:, :window_ticks] != 0
    any_t = win.any(axis=2)
    fired = any_t.any(axis=1)
    first_tick = np.where(fired, np.argmax(any_t, axis=1), -1)
    at_first = win[np.arange(n_samples), np.maximum(first_tick, 0)]
    pred = np.where(fired, np.argmax(at_first, axis=1), -1)
    ties = int(np.sum(fired & (at_first.sum(axis=1) > 1)))
    trows = np.zeros_like(rows)
    trows[:min(tgt.shape[0], rows.shape[0])] = tgt[:rows.shape[0]]
    label = np.argmax(trows.reshape(n_samples, period, -1)[:, :window_ticks].sum(axis=1), axis=1)
    gap_spikes = int(np.count_nonzero(rows.reshape(n_samples, period, -1)[:, window_ticks:]))
    return {"pred": pred, "first_tick": first_tick, "label": label, "ties": ties, "gap_spikes": gap_spikes}


def run_session(config: dict, folder: Path) -> dict:
    """``rtsnn run CONFIG --json --quiet`` in a subprocess (the user's command); its summary."""
    import yaml

    path = folder / "session.yaml"
    path.write_text(yaml.safe_dump(config))
    p = subprocess.run([sys.executable, "-m", "rtsnn.cli", "run", str(path), "--json", "--quiet"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"rtsnn run {path} failed (exit {p.returncode}): {p.stderr.strip()[-500:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def session_accuracy(model: fp.TrainedFP, in_times: np.ndarray, labels: np.ndarray, *, dt_s: float, unit_s: float,
                     work_dir: Path, gap_units: float | None = None, gap_taus: float = 12.0,
                     fresh_check: bool = True, chunk: int | None = None, keep: bool = True) -> dict:
    """Export ``model``, replay ``in_times`` through a session, read the classes; the figures.
    The gap: ``gap_units`` FP units if given, else ``gap_taus`` slowest time constants.
    ``chunk``: samples per session (None: all in one); ``keep`` False deletes each session's
    folder and recording once read."""
    from rtsnn.api import load_outputs
    from rtsnn.snn.contract import InputContract
    from rtsnn.snn.model_file import load_graph_model, save_model

    s = model.settings
    n, n_in = in_times.shape
    n_out = model.net.sizes[-1]
    gm = fp_to_graph(model, dt_s, unit_s=unit_s, output_labels=CLASSES[:n_out])
    gm.input_contract = InputContract(n_channels=n_in, dt_s=dt_s, encoder_kind="passthrough",
                                      encoder_options={"n_channels": n_in},
                                      channel_labels=tuple(CHANNELS[:n_in]))
    gm.validate()  # the contract's tick against the graph's
    model_path = save_model(work_dir / "fp_yinyang.npz", gm)
    w = fp_n_ticks(s.t_max, dt_s, unit_s)
    if gap_units is None:
        gap_units = gap_units_for(s, gap_taus, model.neurons)
    g = gap_ticks_for(w, dt_s, unit_s, gap_units)
    parts, ticks, session_wall, rec_bytes, folders = [], 0, 0.0, 0, []
    chunk = max(1, int(chunk or n))
    for c, a in enumerate(range(0, n, chunk)):  # one session per chunk of samples, one after another
        b = min(n, a + chunk)
        spikes, onehot, w = build_stream(in_times[a:b], labels[a:b], n_out, dt_s=dt_s, unit_s=unit_s,
                                         t_max=s.t_max, gap_ticks=g)
        rec = write_recording(work_dir / f"yinyang_test_stream_{c}.npz", spikes, onehot, dt_s)
        del spikes, onehot
        cfg = session_config(rec, model_path, work_dir / "sessions", dt_s, n_in=n_in, n_out=n_out,
                             name=f"yinyang-fp-{c}")
        t0 = time.perf_counter()
        summary = run_session(cfg, work_dir)
        session_wall += time.perf_counter() - t0
        ticks += int(summary["ticks"])
        rec_bytes += rec.stat().st_size
        parts.append(classes_from_outputs(load_outputs(summary["folder"]), CLASSES[:n_out], b - a, w, g))
        if keep:
            folders.append(summary["folder"])
        else:  # the outputs of a long run are large (72 bytes a tick)
            shutil.rmtree(summary["folder"], ignore_errors=True)
            rec.unlink()
    got = {k: np.concatenate([p[k] for p in parts]) for k in ("pred", "first_tick", "label")}
    got.update(ties=sum(p["ties"] for p in parts), gap_spikes=sum(p["gap_spikes"] for p in parts))
    t_fp = model.first_spike_times(in_times)
    pred_fp = fp.predict_from_times(t_fp, s.t_max)
    out = {"dt_s": dt_s, "unit_s": unit_s, "tick_units": dt_s / unit_s, "window_ticks": w, "gap_ticks": g,
           "gap_units": g * dt_s / unit_s, "ticks": ticks,
           "samples": n, "fp_continuous_acc": float(np.mean(pred_fp == labels)),
           "session_acc": float(np.mean(got["pred"] == labels)),
           "labels_from_targets_ok": bool(np.array_equal(got["label"], labels)),
           "session_agree_with_fp": float(np.mean(got["pred"] == pred_fp)),
           "session_silent": int(np.sum(got["pred"] < 0)), "session_ties": got["ties"],
           "gap_output_spikes": got["gap_spikes"], "session_wall_s": session_wall,
           "session_us_per_tick": session_wall / max(ticks, 1) * 1e6, "sessions": len(parts),
           "recording_bytes": rec_bytes, "session_folders": folders}
    out["diff_pp"] = 100.0 * (out["session_acc"] - out["fp_continuous_acc"])
    if fresh_check:
        t1 = time.perf_counter()
        first, pred_g = graph_first_spikes(load_graph_model(model_path),
                                           fp_input_raster(in_times, dt_s, unit_s, w), stop_at_first=True)
        first_any = np.where((first >= 0).any(axis=1), np.where(first >= 0, first, w).min(axis=1), -1)
        out.update(fresh_graph_acc=float(np.mean(pred_g == labels)),
                   agree_with_fresh_graph=float(np.mean(pred_g == got["pred"])),
                   first_tick_equal_fresh_graph=float(np.mean(first_any == got["first_tick"])),
                   fresh_graph_wall_s=time.perf_counter() - t1)
    return out


def _load_weights(path: str) -> tuple[fp.TrainedFP, dict]:
    import zipfile

    try:
        if not Path(path).is_file():
            raise ValueError("no such file")
        if not zipfile.is_zipfile(path):
            raise ValueError("not an npz archive")
        with np.load(path, allow_pickle=False) as z:
            n_layers = int(z["n_layers"])
            ws = [np.asarray(z[f"w{l}"]) for l in range(n_layers)]
            meta = json.loads(str(z["meta_json"])) if "meta_json" in z.files else {}
            nrn = ({k: [np.asarray(z[f"{k}{l}"]) for l in range(n_layers)] for k in ("theta", "tau_syn", "tau_mem")}
                   if "theta0" in z.files else None)
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"--load {path}: not an FP weights file written by --save ({err})") from None
    settings = meta.get("settings")
    if settings is None:  # a file from fp_tick_accuracy.py --save: its (= CONFIG's) settings
        settings = _repro().CONFIG["settings"]
    try:
        neurons = fp.NeuronParams(**nrn) if nrn is not None else None
        return fp.TrainedFP(fp.FPNetwork(ws), fp.FPSettings(**settings), [], neurons=neurons), meta
    except (TypeError, ValueError) as err:
        raise ValueError(f"--load {path}: {err}") from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="own",
                    help="a configuration of reproduce_yinyang.py (own | beyond | beyond_trainable)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs (default: the configuration's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--load", help="FP weights (.npz written by --save here or by fp_tick_accuracy.py --save)")
    ap.add_argument("--save", help="write the trained FP weights and settings here (.npz)")
    ap.add_argument("--dt-s", type=float, default=1e-4, help="the session's tick (s), default 1e-4")
    ap.add_argument("--unit-s", type=float, default=5e-3, help="seconds per FP time unit (default 5e-3)")
    ap.add_argument("--gap-taus", type=float, default=12.0,
                    help="silence after each sample, in slowest time constants (default 12)")
    ap.add_argument("--gap-units", type=float, default=None,
                    help="silence after each sample in FP time units (overrides --gap-taus)")
    ap.add_argument("--n-test", type=int, default=None, help="first N test samples only (quick checks)")
    ap.add_argument("--chunk", type=int, default=250,
                    help="samples per session (the sessions run one after another; default 250)")
    ap.add_argument("--keep", help="keep the recording, model and session folder in this directory")
    ap.add_argument("--no-fresh-check", action="store_true", help="skip the fresh-state graph comparison")
    args = ap.parse_args(argv)
    try:
        for k in ("dt_s", "unit_s"):
            v = getattr(args, k)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"--{k.replace('_', '-')} must be a finite number > 0, got {v!r}")
        if (args.epochs is not None and args.epochs < 1) or (args.n_test is not None and args.n_test < 1) \
                or args.chunk < 1:
            raise ValueError("--epochs, --n-test and --chunk must be >= 1")
        repro = _repro()
        t0 = time.perf_counter()
        if args.load:
            model, meta = _load_weights(args.load)
            enc = meta.get("encoding")
            trained = {"loaded": args.load, **{k: meta[k] for k in ("config", "seed", "epochs") if k in meta}}
        else:
            cfg, epochs = repro.named_config(args.config, args.epochs)
            model = repro.train_model(args.seed, epochs, cfg)
            enc = cfg.get("encoding")
            trained = {"config": args.config, "seed": args.seed, "epochs": epochs,
                       "train_s": time.perf_counter() - t0, "heuristics": model.heuristics}
            if args.save:
                meta = {"settings": fp.settings_dict(model.settings), "encoding": enc, "config": args.config,
                        "seed": args.seed, "epochs": epochs}
                nrn = model.neurons  # trained per-neuron thresholds / time constants, when there are any
                np.savez(args.save, n_layers=len(model.net.w), meta_json=json.dumps(meta, allow_nan=False),
                         **{f"w{l}": w for l, w in enumerate(model.net.w)},
                         **({} if nrn is None else {f"{k}{l}": a for k in ("theta", "tau_syn", "tau_mem")
                                                    for l, a in enumerate(getattr(nrn, k))}))
        te = repro.load_yinyang("test")
        x_te = repro.encode(te.x, {"encoding": enc} if enc else {})
        y_te = te.y
        if args.n_test:
            x_te, y_te = x_te[:args.n_test], y_te[:args.n_test]
        if args.keep:
            work = Path(args.keep)
            work.mkdir(parents=True, exist_ok=True)
            res = session_accuracy(model, x_te, y_te, dt_s=args.dt_s, unit_s=args.unit_s,
                                   gap_units=args.gap_units, gap_taus=args.gap_taus, work_dir=work,
                                   fresh_check=not args.no_fresh_check, chunk=args.chunk)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                res = session_accuracy(model, x_te, y_te, dt_s=args.dt_s, unit_s=args.unit_s,
                                       gap_units=args.gap_units, gap_taus=args.gap_taus, work_dir=Path(tmp),
                                       fresh_check=not args.no_fresh_check, chunk=args.chunk, keep=False)
    except (ValueError, RuntimeError) as err:
        print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    out = {"benchmark": "yinyang_session", "dataset": f"yinyang test ({len(y_te)})", "train": trained,
           "settings": fp.settings_dict(model.settings), **res, "wall_s": time.perf_counter() - t0,
           "command": "python scripts/yinyang_session.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    print(json.dumps(out, allow_nan=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
