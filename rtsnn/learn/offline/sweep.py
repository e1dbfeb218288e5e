"""Hyperparameter sweeps of ``rtsnn pretrain`` on Ray Tune (docs/sweeps.md).

A pretrain config with a ``sweep:`` section (:class:`rtsnn.learn.offline.pretrain.SweepConfig`),
or ``rtsnn pretrain CONFIG --sweep key=v1,v2``, runs one pretraining per point of the search
space. Every trial reports its held-out metrics after each epoch, so an ASHA scheduler can stop
the poor ones early. The results folder (``--sweep-dir``, default ``<model stem>.sweep/`` beside
the model) holds Tune's experiment (``tune/``, restorable with ``--resume``), the results table
(``results.csv``, ``results.json``: one row per trial) and ``sweep.json`` (what was run). The
best completed trial's model and its history file are copied to ``output.model_path``.

Trials are ranked (and stopped by ASHA) on ``sweep.metric``, by default a figure of the
validation trials (``train.validation_fraction``, which a sweep therefore requires): the test
trials choose nothing, so the best trial's test figures stay an unbiased estimate. Ranking on a
test metric needs ``sweep.select_on_test: true``; the results then say ``selected_on: test``
and warn that the best trial's test figures are optimistically biased.

Without Ray (the ``[sweep]`` extra) or with ``--no-ray`` the same trials run one after another
in this process (random keys drawn with numpy from ``sweep.seed``; no early stopping), with the
same table and the same ``--resume``.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from rtsnn.extras import MissingExtraError, install_hint, require
from rtsnn.jsonout import json_safe

# a trial's figures for the model it saved (run_pretrain's result): on the validation trials
# (continuous stream), then on the test trials (regression, then classification)
VALIDATION_KEYS = ("validation_r2_continuous", "validation_acc_continuous", "validation_loss_continuous")
TEST_KEYS = ("snn_r2", "snn_r2_continuous", "wiener_r2", "snn_acc", "snn_acc_continuous", "csp_lda_acc")
FINAL_KEYS = (*VALIDATION_KEYS, *TEST_KEYS)
RESULT_COLUMNS = ("trial_id", "status", "epochs", "final_metric", "best_metric", "best_epoch", "selected_epoch",
                  "selected_metric", *FINAL_KEYS, "wall_s", "model_path", "error")
TEST_SELECTION_WARNING = ("trials were ranked on the test split (sweep.select_on_test): the best trial's test "
                          "figures are optimistically biased; rank on a validation metric for a figure to report")
# keys a sweep may not vary: the sweep itself, and where models go (set per trial)
FORBIDDEN_PREFIXES = ("sweep", "output")


class SweepInterrupted(Exception):
    """The sweep stopped before every trial ran (Ctrl-C); ``--resume`` continues it."""


# ------------------------------------------------------------------ the search space
def grid_shorthand(specs: list[str]) -> dict[str, dict]:
    """``--sweep`` options -> search-space entries: ``key=v1,v2`` is ``{key: {grid: [v1, v2]}}``
    (each value read as YAML, so ``8`` is an int and ``lif`` a string); ``seeds=N`` is
    ``{train.seed: {grid: [0 .. N-1]}}``."""
    space: dict[str, dict] = {}
    for s in specs:
        key, sep, vals = s.partition("=")
        if not sep or not key or not vals:
            raise ValueError(f"--sweep expects seeds=N or dotted.key=v1,v2; got {s!r}")
        if key == "seeds":
            if not vals.isdigit() or int(vals) < 1:
                raise ValueError(f"--sweep seeds must be an int >= 1, got {vals!r}")
            space["train.seed"] = {"grid": list(range(int(vals)))}
        else:
            space[key] = {"grid": [yaml.safe_load(v) for v in vals.split(",")]}
    return space


def with_cli_grid(cfg, specs: list[str] | None):
    """``cfg`` with the ``--sweep`` grid keys added to (or replacing) its ``sweep.space``; the
    result is validated like a config file (errors name ``--sweep``)."""
    if not specs:
        return cfg
    from rtsnn.learn.offline.pretrain import parse_pretrain_config

    d = cfg.model_dump()
    sweep = d.get("sweep") or {}
    sweep["space"] = {**(sweep.get("space") or {}), **grid_shorthand(specs)}
    d["sweep"] = sweep
    return parse_pretrain_config(d, "--sweep")


def _set(d: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for i, p in enumerate(parts[:-1]):
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ValueError(f"{'.'.join(parts[:i + 1])} is a value, not a section with key {parts[i + 1]!r}")
        d = nxt
    d[parts[-1]] = value


def candidates(param) -> list[Any]:
    """Values that stand for a key's whole search space when checking it: every listed value;
    for a range both ends and one inside (not a round number, so an integer key is refused)."""
    if param.choice is not None:
        return list(param.choice)
    if param.grid is not None:
        return list(param.grid)
    if param.uniform is not None:
        lo, hi = param.uniform
        return [lo, hi, lo + 0.37 * (hi - lo)]
    lo, hi = param.loguniform
    return [lo, hi, lo * (hi / lo) ** 0.37]


def check_space(cfg, origin: str) -> None:
    """Raise ValueError (one line per bad key, naming ``origin`` and the key) unless every
    candidate value of every key of ``cfg.sweep.space``, put alone into the config, gives a
    valid config. (Values of two keys that conflict only together fail as that trial.)"""
    from pydantic import ValidationError

    from rtsnn.learn.offline.pretrain import PretrainConfig

    base = cfg.model_dump(exclude={"sweep"})
    problems = []
    for key, param in cfg.sweep.space.items():
        where = f"{origin}: sweep.space.{key}"
        if not key or any(not p for p in key.split(".")):
            problems.append(f"{where}: not a dotted config key")
            continue
        if key.split(".")[0] in FORBIDDEN_PREFIXES:
            problems.append(f"{where}: {key.split('.')[0]}.* cannot be swept (every trial writes its own model)")
            continue
        for value in candidates(param):
            d = copy.deepcopy(base)
            try:
                _set(d, key, value)
                PretrainConfig.model_validate(d)
            except ValidationError as err:
                e = err.errors()[0]
                loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
                msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
                problems.append(f"{where}.{param.kind}: {value!r} makes an invalid config: {loc}: {msg}")
                break
            except ValueError as err:
                problems.append(f"{where}: {err}")
                break
    if cfg.sweep.scheduler is not None and "train.epochs" in cfg.sweep.space:
        problems.append(f"{origin}: sweep.space.train.epochs: cannot be swept with the asha scheduler "
                        "(its max_t is train.epochs)")
    if problems:
        raise ValueError("\n".join(problems))


def trial_count(sweep) -> int:
    """Trials a sweep runs: ``num_samples`` x the product of the grid sizes."""
    n = sweep.num_samples
    for p in sweep.space.values():
        if p.grid is not None:
            n *= len(p.grid)
    return n


def draw_trials(sweep) -> list[dict[str, Any]]:
    """The trials of a sweep without Ray, in the order Tune generates them: for each of
    ``num_samples`` draws, every point of the grid (first key varying slowest), with the random
    keys drawn afresh per trial from ``numpy.random.default_rng(sweep.seed)``."""
    rng = np.random.default_rng(sweep.seed)
    grid_keys = [k for k, p in sweep.space.items() if p.grid is not None]
    trials = []
    for _ in range(sweep.num_samples):
        for combo in itertools.product(*(sweep.space[k].grid for k in grid_keys)):
            params: dict[str, Any] = {}
            point = dict(zip(grid_keys, combo))
            for key, p in sweep.space.items():
                if p.grid is not None:
                    params[key] = point[key]
                elif p.choice is not None:
                    params[key] = p.choice[int(rng.integers(len(p.choice)))]
                elif p.uniform is not None:
                    params[key] = float(rng.uniform(*p.uniform))
                else:
                    params[key] = float(math.exp(rng.uniform(math.log(p.loguniform[0]), math.log(p.loguniform[1]))))
            trials.append(params)
    return trials


def tune_space(sweep, tune) -> dict[str, Any]:
    """The search space as Tune's ``param_space`` (flat, keyed by the dotted config key)."""
    space = {}
    for key, p in sweep.space.items():
        if p.grid is not None:
            space[key] = tune.grid_search(list(p.grid))
        elif p.choice is not None:
            space[key] = tune.choice(list(p.choice))
        elif p.uniform is not None:
            space[key] = tune.uniform(*p.uniform)
        else:
            space[key] = tune.loguniform(*p.loguniform)
    return space


# ------------------------------------------------------------------ one trial
@dataclass(frozen=True)
class Plan:
    """What every trial needs, picklable (it travels to Ray workers): the base config without
    its sweep section, the folder relative paths in it are resolved against, the model file
    name, the metric (and the split it is scored on) and the epoch count."""
    base: dict
    base_dir: str
    model_name: str
    metric: str
    mode: str
    epochs: int
    space_keys: tuple[str, ...]
    selected_on: str = "validation"


def trial_pretrain_config(plan: Plan, params: dict[str, Any], model_dir: Path):
    """The trial's pretrain config: the base with ``params`` set, writing its model to
    ``model_dir`` (no training checkpoint: a restored sweep restarts an unfinished trial)."""
    from rtsnn.learn.offline.pretrain import parse_pretrain_config

    d = copy.deepcopy(plan.base)
    for key in plan.space_keys:
        _set(d, key, params[key])
    d["output"] = {**d.get("output", {}), "model_path": str(model_dir / plan.model_name), "checkpoint_path": None}
    return parse_pretrain_config(d, "<sweep trial>")


def run_trial(plan: Plan, params: dict[str, Any], model_dir: Path,
              on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> dict:
    """Pretrain one trial into ``model_dir``; ``run_pretrain``'s result dict."""
    from rtsnn.learn.offline.pretrain import run_pretrain

    cfg = trial_pretrain_config(plan, params, model_dir)
    return run_pretrain(cfg, Path(plan.base_dir), progress=False, on_epoch=on_epoch)


def _tune_trainable(config: dict, plan: Plan) -> None:
    """Ray Tune function trainable: reports ``plan.metric`` and the other per-epoch metrics
    after every epoch; the last epoch's report comes after the model is saved and carries it
    as a Tune checkpoint (so it reaches the results folder from any node), plus the saved
    model's validation and test figures (:data:`FINAL_KEYS`), its ``selected_epoch`` and
    ``completed = 1``."""
    from ray import tune

    if tune.get_checkpoint() is not None:
        # only the final report carries a checkpoint: this trial finished before the sweep was
        # interrupted (Tune had not yet marked it so); its results stand, nothing to redo
        return
    last: dict[str, float] = {}

    def report(epoch: int, metrics: dict[str, float]) -> None:
        check_metric(plan, metrics)
        row = {**metrics, "epoch": epoch}
        if epoch < plan.epochs:
            tune.report(row)
        else:
            last.update(row)

    tmp = Path(tempfile.mkdtemp(prefix="rtsnn-trial-"))
    try:
        res = run_trial(plan, config, tmp, report)
        final = {**last, **{k: res[k] for k in FINAL_KEYS if res.get(k) is not None},
                 "selected_epoch": res.get("selected_epoch"), "train_wall_s": res["wall_s"], "completed": 1}
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(str(tmp)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------ the results table
def _best(values: list[float], mode: str) -> tuple[float | None, int | None]:
    finite = [(v, i) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if not finite:
        return None, None
    v, i = (max if mode == "max" else min)(finite)
    return v, i + 1


def make_row(trial_id: str, status: str, params: dict, per_epoch: list[float], plan: Plan,
             final: dict | None = None, model_path: str | None = None, error: str | None = None,
             wall_s: float | None = None) -> dict:
    """One row of the results table (the trial's parameters under ``params``): the metric per
    epoch summed up (``final_metric``: last epoch, ``best_metric`` / ``best_epoch``), and for a
    completed trial the epoch whose parameters it saved (``selected_epoch``: the last, or with
    ``train.select: best_validation`` the best validation epoch), the metric there
    (``selected_metric``: what trials are ranked by) and the saved model's validation and
    test figures (``final``: run_pretrain's result)."""
    best, best_epoch = _best(per_epoch, plan.mode)
    final = final or {}
    sel_epoch = sel_metric = None
    if status == "completed" and per_epoch:
        sel_epoch = final.get("selected_epoch") or len(per_epoch)
        sel_metric = per_epoch[sel_epoch - 1] if 1 <= sel_epoch <= len(per_epoch) else None
    return json_safe({"trial_id": trial_id, "status": status, "params": dict(params), "epochs": len(per_epoch),
                      "final_metric": per_epoch[-1] if per_epoch else None, "best_metric": best,
                      "best_epoch": best_epoch, "selected_epoch": sel_epoch, "selected_metric": sel_metric,
                      **{k: final.get(k) for k in FINAL_KEYS},
                      "wall_s": wall_s, "model_path": model_path, "error": error})


def check_metric(plan: Plan, metrics: dict) -> None:
    """Refuse a ``sweep.metric`` the trial's per-epoch evaluation does not produce (say
    ``test_r2`` for a classification config)."""
    if plan.metric not in metrics:
        raise ValueError(f"sweep.metric {plan.metric!r} is not among this pretraining's per-epoch metrics "
                         f"({', '.join(sorted(metrics))})")


def best_row(rows: list[dict], mode: str) -> dict | None:
    """The completed trial whose saved model has the best metric (``selected_metric``; the
    first of ties, in table order)."""
    done = [r for r in rows if r["status"] == "completed" and r["selected_metric"] is not None]
    if not done:
        return None
    return (max if mode == "max" else min)(done, key=lambda r: r["selected_metric"])


def best_figures(best: dict | None, plan: Plan) -> dict | None:
    """What to report of the best trial: the split and metric it was selected on and its value
    there, its validation figures, and its test figures (reported, not used for the choice,
    unless ``selected_on`` is ``test``)."""
    if best is None:
        return None
    return {"trial_id": best["trial_id"], "selected_on": plan.selected_on, "metric": plan.metric,
            "selected_metric": best["selected_metric"], "selected_epoch": best["selected_epoch"],
            "validation": {k: best.get(k) for k in VALIDATION_KEYS if best.get(k) is not None},
            "test": {k: best.get(k) for k in TEST_KEYS if best.get(k) is not None}}


def write_table(sweep_dir: Path, rows: list[dict], plan: Plan) -> None:
    """``results.json`` (the rows as strict JSON) and ``results.csv`` (one column per
    parameter key), each written to a temp file and renamed."""
    doc = {"metric": plan.metric, "mode": plan.mode, "selected_on": plan.selected_on, "epochs": plan.epochs,
           **({"warning": TEST_SELECTION_WARNING} if plan.selected_on == "test" else {}),
           "best": best_figures(best_row(rows, plan.mode), plan), "trials": rows}
    tmp = sweep_dir / "results.json.tmp"
    tmp.write_text(json.dumps(json_safe(doc), indent=1, allow_nan=False) + "\n")
    tmp.replace(sweep_dir / "results.json")
    tmp = sweep_dir / "results.csv.tmp"
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*RESULT_COLUMNS[:2], *plan.space_keys, *RESULT_COLUMNS[2:]])
        for r in rows:
            w.writerow([r["trial_id"], r["status"], *(r["params"].get(k) for k in plan.space_keys),
                        *("" if r[c] is None else r[c] for c in RESULT_COLUMNS[2:])])
    tmp.replace(sweep_dir / "results.csv")


def print_table(rows: list[dict], plan: Plan, log) -> None:
    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    finals = [k for k in FINAL_KEYS if any(r.get(k) is not None for r in rows)]
    head = ["trial", "status", *plan.space_keys, "epochs", f"{plan.metric} (ranked)", "final", "best",
            *(k.replace("validation_", "val_").replace("_continuous", "_co") for k in finals)]
    body = [[r["trial_id"], r["status"], *(fmt(r["params"].get(k)) for k in plan.space_keys), fmt(r["epochs"]),
             fmt(r["selected_metric"]), fmt(r["final_metric"]), fmt(r["best_metric"]), *(fmt(r.get(k)) for k in finals)]
            for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    for line in [head, *body]:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip(), file=log)
    print(f"trials ranked on the {plan.selected_on} split by {plan.metric} ({plan.mode}) of each trial's saved "
          f"model" + ("" if plan.selected_on == "test" else "; test figures reported, not used"), file=log)
    if plan.selected_on == "test":
        print(f"WARNING: {TEST_SELECTION_WARNING}", file=log)


def export_best(row: dict, out_path: Path, plan: Plan) -> tuple[Path, Path, Path]:
    """Copy the best trial's model and history file to ``out_path`` and its
    ``<stem>.history.json`` (temp file + rename: the previous model stays whole until then),
    and write the session config that runs it (``<stem>.session.yaml``, naming ``out_path``)."""
    from rtsnn.learn.offline.pretrain import (history_path_for, session_config_for, session_config_path_for,
                                              write_session_config)
    from rtsnn.snn.model_file import load_model

    src = Path(row["model_path"])
    if not src.is_file():  # else whatever model was already at out_path would pass for the best one
        raise ValueError(f"sweep: the best trial's model {src} is missing (a cluster node's local disk, or a moved "
                         f"sweep folder?); nothing was exported to {out_path}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    for a, b in [(src, out_path), (history_path_for(src), history_path_for(out_path))]:
        if a.is_file():
            tmp = b.with_name(b.name + ".tmp")
            shutil.copyfile(a, tmp)
            tmp.replace(b)
    cfg = trial_pretrain_config(plan, row["params"], out_path.parent)
    scfg = write_session_config(session_config_path_for(out_path),
                                *session_config_for(cfg, out_path, load_model(out_path)))
    return out_path, history_path_for(out_path), scfg


# ------------------------------------------------------------------ the sweep
def default_sweep_dir(model_path: Path) -> Path:
    return model_path.with_name(model_path.stem + ".sweep")


def config_digest(cfg) -> str:
    return hashlib.sha256(json.dumps(cfg.model_dump(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _prepare_dir(sweep_dir: Path, cfg, resume: bool, engine: str) -> str:
    """Create or check the results folder; returns the engine to use (on resume: the one the
    sweep started with)."""
    info_path = sweep_dir / "sweep.json"
    if resume:
        if not info_path.is_file():
            raise ValueError(f"{sweep_dir}: no sweep to resume here (no sweep.json); run without --resume to start one")
        info = json.loads(info_path.read_text())
        if info.get("config_digest") != config_digest(cfg):
            raise ValueError(f"{sweep_dir}: the config (or its command-line overrides) changed since this sweep "
                             "began; resume with the same config and options, or start a new --sweep-dir")
        return info["engine"]
    if info_path.is_file():
        raise ValueError(f"{sweep_dir}: holds a sweep already; pass --resume to continue it, or choose another "
                         "--sweep-dir")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps({"config_digest": config_digest(cfg), "engine": engine,
                                     "started_unix": time.time()}) + "\n")
    return engine


def run_sweep(cfg, base_dir: Path, *, sweep_dir: Path | None = None, resume: bool = False,
              address: str | None = None, use_ray: bool = True, log=None) -> dict:
    """Run the sweep of ``cfg.sweep``; returns the summary (``trials``: the results table,
    ``best``, ``model_path``: the exported best model, ``engine``, ``sweep_dir``).
    Raises :class:`SweepInterrupted` (after writing the table) when stopped early by Ctrl-C."""
    log = sys.stderr if log is None else log  # looked up per call: stderr may have been replaced
    from rtsnn.learn.offline.pretrain import _resolve

    sweep = cfg.sweep
    base_dir = Path(base_dir).resolve()  # trials may run in other processes, with another cwd
    out_path = _resolve(cfg.output.model_path, base_dir).resolve()
    sweep_dir = Path(sweep_dir).resolve() if sweep_dir is not None else default_sweep_dir(out_path)
    epochs = cfg.train.epochs
    plan = Plan(base=cfg.model_dump(exclude={"sweep"}), base_dir=str(base_dir), model_name=out_path.name,
                metric=sweep.metric, mode=sweep.best_mode, epochs=epochs, space_keys=tuple(sweep.space),
                selected_on=sweep.selected_on)
    ray = None
    why = "Ray disabled (--no-ray)"
    if use_ray:
        try:
            ray = require("ray", "sweeps on Ray")
            require("ray.tune", "sweeps on Ray Tune")
        except MissingExtraError:
            ray, why = None, f"Ray not installed ({install_hint('ray')})"
        except ImportError as err:  # ray without its tune dependencies (pandas, pyarrow)
            ray, why = None, f"Ray Tune unusable ({err}; pip install 'ray[tune]')"
    if ray is not None and address is not None:
        check_address(address)  # before the results folder is claimed
    engine = _prepare_dir(sweep_dir, cfg, resume, "tune" if ray is not None else "sequential")
    if engine == "tune" and ray is None:
        raise ValueError(f"{sweep_dir}: this sweep began on Ray Tune ({why} now); resume it where Ray is installed")
    n = trial_count(sweep)
    if engine == "sequential":
        if ray is not None:
            why = "this sweep began without Ray"
        print(f"{why}: running {n} trials sequentially in this process (no early stopping)", file=log, flush=True)
        rows, interrupted = _run_sequential(plan, sweep, sweep_dir, resume, log)
    else:
        rows, interrupted = _run_tune(plan, sweep, sweep_dir, resume, address, log)
    write_table(sweep_dir, rows, plan)
    print_table(rows, plan, log)
    if interrupted:
        raise SweepInterrupted(f"sweep interrupted: {sum(r['status'] == 'completed' for r in rows)} of {n} "
                               f"trials completed; table in {sweep_dir}; continue with the same command and --resume")
    best = best_row(rows, plan.mode)
    summary = {"engine": engine, "sweep_dir": str(sweep_dir), "metric": plan.metric, "mode": plan.mode,
               "selected_on": plan.selected_on,
               **({"warning": TEST_SELECTION_WARNING} if plan.selected_on == "test" else {}),
               "trials": rows, "best": best, "best_figures": best_figures(best, plan), "model_path": None,
               "history_path": None, "session_config_path": None}
    if best is not None:
        m, h, sc = export_best(best, out_path, plan)
        summary["model_path"], summary["history_path"], summary["session_config_path"] = str(m), str(h), str(sc)
        figs = summary["best_figures"]
        test = ", ".join(f"{k} {v:.4f}" for k, v in figs["test"].items()) or "-"
        biased = " (biased: selected on it)" if plan.selected_on == "test" else " (not used to select)"
        print(f"best trial {best['trial_id']} (selected on {plan.selected_on}: {plan.metric} "
              f"{best['selected_metric']:.4f} at epoch {best['selected_epoch']}; test{biased}: {test}; "
              f"{best['params']}): model -> {m}", file=log, flush=True)
    else:
        print("no trial completed: no model exported", file=log, flush=True)
    return summary


def _run_sequential(plan: Plan, sweep, sweep_dir: Path, resume: bool, log) -> tuple[list[dict], bool]:
    """Every trial of :func:`draw_trials` in turn; each finished row is appended to
    ``sequential.jsonl`` so ``--resume`` skips it."""
    trials = draw_trials(sweep)
    done_path = sweep_dir / "sequential.jsonl"
    done: dict[str, dict] = {}
    if resume and done_path.is_file():
        for line in done_path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[r["trial_id"]] = r
        print(f"resuming: {len(done)} of {len(trials)} trials already ran", file=log, flush=True)
    rows = []
    interrupted = False
    for i, params in enumerate(trials):
        tid = f"trial_{i:05d}"
        if tid in done:
            rows.append(done[tid])
            continue
        if interrupted:
            rows.append(make_row(tid, "not_run", params, [], plan))
            continue
        per_epoch: list[float] = []
        model_dir = sweep_dir / "trials" / tid
        model_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        try:
            def record(epoch: int, metrics: dict) -> None:
                check_metric(plan, metrics)
                per_epoch.append(metrics[plan.metric])

            res = run_trial(plan, params, model_dir, record)
            row = make_row(tid, "completed", params, per_epoch, plan, final=res, model_path=res["model_path"],
                           wall_s=time.perf_counter() - t0)
        except KeyboardInterrupt:
            interrupted = True
            rows.append(make_row(tid, "unfinished", params, per_epoch, plan))
            continue
        except Exception as err:  # noqa: BLE001 - a failed trial is a row of the table, not the end
            row = make_row(tid, "error", params, per_epoch, plan, error=f"{type(err).__name__}: {err}".splitlines()[0],
                           wall_s=time.perf_counter() - t0)
        rows.append(row)
        with done_path.open("a") as f:
            f.write(json.dumps(row, allow_nan=False) + "\n")
        fm = row["final_metric"]
        what = row["error"] or f"{plan.metric} " + ("-" if fm is None else f"{fm:.4f}")
        print(f"[{i + 1}/{len(trials)}] {tid} {row['status']}: {what} {params}", file=log, flush=True)
    return rows, interrupted


def _run_tune(plan: Plan, sweep, sweep_dir: Path, resume: bool, address: str | None,
              log) -> tuple[list[dict], bool]:
    import ray
    from ray import tune

    started_ray = False
    if not ray.is_initialized():
        # a local cluster with every CPU of this machine, or the cluster at --address
        kw = {"num_cpus": os.cpu_count()} if address is None else {"address": address}
        try:
            ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING", **kw)
        except ConnectionError as err:
            raise ValueError(f"--address {address}: no Ray cluster reachable there ({_first_line(err)})") from None
        started_ray = True
    try:
        n_cpus = int(ray.cluster_resources().get("CPU", 1))
        exp_dir = sweep_dir / "tune"
        trainable = tune.with_resources(tune.with_parameters(_tune_trainable, plan=plan), {"cpu": 1})
        progress = _progress_callback(trial_count(sweep), plan.metric)
        if resume:
            if not tune.Tuner.can_restore(str(exp_dir)):
                raise ValueError(f"{exp_dir}: no Tune experiment state to resume (it was interrupted before "
                                 "Tune saved any); start a new --sweep-dir")
            print(f"resuming the Tune experiment in {exp_dir}", file=log, flush=True)
            tuner = tune.Tuner.restore(str(exp_dir), trainable=trainable, resume_unfinished=True)
        else:
            scheduler = None
            if sweep.scheduler is not None:
                from ray.tune.schedulers import ASHAScheduler

                scheduler = ASHAScheduler(time_attr="training_iteration", max_t=plan.epochs,
                                          grace_period=sweep.scheduler.grace_period,
                                          reduction_factor=sweep.scheduler.reduction_factor)
            from ray.tune.search.basic_variant import BasicVariantGenerator

            tuner = tune.Tuner(
                trainable, param_space=tune_space(sweep, tune),
                tune_config=tune.TuneConfig(
                    metric=plan.metric, mode=plan.mode, num_samples=sweep.num_samples, scheduler=scheduler,
                    search_alg=BasicVariantGenerator(random_state=sweep.seed,
                                                     max_concurrent=sweep.max_concurrent_trials or n_cpus),
                    # one worker process runs trial after trial: no per-trial process start,
                    # rtsnn import or numba cache load
                    reuse_actors=True,
                    trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}"),
                run_config=tune.RunConfig(name="tune", storage_path=str(sweep_dir), verbose=0,
                                          callbacks=[progress]))
        print(f"Ray Tune: {trial_count(sweep)} trials on {n_cpus} CPUs, "
              f"{sweep.max_concurrent_trials or n_cpus} at a time; results in {sweep_dir}", file=log, flush=True)
        import contextlib

        with contextlib.redirect_stdout(log):  # Tune prints its banner to stdout even when silent
            grid = tuner.fit()
        rows = [_tune_row(r, plan) for r in grid]
        rows.sort(key=lambda r: r["trial_id"])
        # a trial with no report at all was never run (ASHA only stops trials that reported)
        interrupted = (grid.num_terminated + grid.num_errors < len(grid) or len(grid) < trial_count(sweep)
                       or any(r["status"] == "unfinished" for r in rows))
        if interrupted:
            for r in rows:
                if r["status"] == "stopped_early":
                    r["status"] = "unfinished"  # Tune's state tells the two apart only once it resumes
        return rows, interrupted
    finally:
        if started_ray:
            ray.shutdown()


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) ``--address`` where nothing accepts a TCP
    connection within ``timeout_s``: Ray itself would retry for minutes. ``auto`` and other
    forms are left to Ray."""
    import socket

    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ValueError(f"--address {address}: no Ray cluster reachable there ({err})") from None


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _tune_row(result, plan: Plan) -> dict:
    """A table row from a Tune :class:`Result`: completed (final report with the model),
    error, or stopped early (fewer epochs; ``unfinished`` when the run was interrupted)."""
    metrics = result.metrics or {}
    config = result.config or {}
    trial_id = str(metrics.get("trial_id") or Path(result.path).name.removeprefix("trial_"))
    df = result.metrics_dataframe
    per_epoch = [] if df is None or plan.metric not in df else [float(v) for v in df[plan.metric].tolist()]
    if per_epoch and "epoch" in df:
        # a trial restarted after an interruption reports from epoch 1 again: keep its last run
        starts = [i for i, e in enumerate(df["epoch"].tolist()) if e == 1]
        per_epoch = per_epoch[starts[-1]:] if starts else per_epoch
    params = {k: config.get(k) for k in plan.space_keys}
    if result.error is not None:
        msg = str(result.error).strip().splitlines()
        return make_row(trial_id, "error", params, per_epoch, plan, error=msg[-1] if msg else type(result.error).__name__)
    if metrics.get("completed") == 1 and result.checkpoint is not None:
        ckpt = result.checkpoint
        return make_row(trial_id, "completed", params, per_epoch, plan, final=metrics,
                        model_path=str(Path(ckpt.path) / plan.model_name), wall_s=metrics.get("time_total_s"))
    return make_row(trial_id, "stopped_early" if per_epoch else "unfinished", params, per_epoch, plan,
                    wall_s=metrics.get("time_total_s"))


def _progress_callback(total: int, metric: str):
    """A Tune callback printing one stderr line per finished trial. Tune pickles it into the
    experiment state, so its class is made once (Ray is optional, hence not at import) and
    kept as this module's ``_TuneProgress``, where unpickling finds it; it holds no stream."""
    cls = globals().get("_TuneProgress")
    if cls is None:
        from ray.tune import Callback

        class _TuneProgress(Callback):
            def __init__(self, total: int, metric: str):
                self.total, self.metric = total, metric

            def _line(self, trials, trial, what: str) -> None:
                done = 1 + sum(t is not trial and t.status in ("TERMINATED", "ERROR") for t in trials)
                value = (trial.last_result or {}).get(self.metric)
                shown = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
                print(f"[{done}/{self.total}] trial {trial.trial_id} {what}: {self.metric} {shown} "
                      f"{dict(trial.config)}", file=sys.stderr, flush=True)

            def on_trial_complete(self, iteration, trials, trial, **info):
                self._line(trials, trial, "finished")

            def on_trial_error(self, iteration, trials, trial, **info):
                self._line(trials, trial, "error")

        cls = globals()["_TuneProgress"] = _TuneProgress
        cls.__qualname__ = "_TuneProgress"
    return cls(total, metric)
