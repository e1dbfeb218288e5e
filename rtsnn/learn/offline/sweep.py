"""``rtsnn pretrain CONFIG --sweep seeds=N [--sweep dotted.key=v1,v2 ...]``: run the grid of
settings x seeds, on Ray when it is installed (local cluster, or ``--address``), otherwise
sequentially (saying so); print one JSON line per trial and end with a table of
mean +- sd of the held-out R^2 per setting (stderr) and a JSON summary line (stdout)."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from rtsnn.extras import MissingExtraError, install_hint, require
from rtsnn.runtime.metrics import json_safe


def parse_sweep(specs: list[str]) -> tuple[int, dict[str, list]]:
    seeds, grid = 1, {}
    for s in specs:
        if "=" not in s:
            raise ValueError(f"--sweep expects seeds=N or key=v1,v2; got {s!r}")
        key, vals = s.split("=", 1)
        if key == "seeds":
            if not vals.isdigit() or int(vals) < 1:
                raise ValueError(f"--sweep seeds must be an int >= 1, got {vals!r}")
            seeds = int(vals)
        else:
            grid[key] = [yaml.safe_load(v) for v in vals.split(",")]
    return seeds, grid


def _set(d: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


def _trial(cfg_dict: dict, base: str, out_path: str) -> dict:
    from rtsnn.learn.offline.pretrain import parse_pretrain_config, run_pretrain

    cfg = parse_pretrain_config(cfg_dict, "<sweep>")
    cfg = cfg.model_copy(update={"output": cfg.output.model_copy(update={"model_path": out_path,
                                                                        "checkpoint_path": None})})
    return run_pretrain(cfg, Path(base), progress=False)


def run_sweep(cfg, base: Path, specs: list[str], address: str | None = None, use_ray: bool = True,
              log=None) -> list[dict]:
    log = sys.stderr if log is None else log  # looked up per call: stderr may have been replaced
    seeds, grid = parse_sweep(specs)
    keys = sorted(grid)
    settings = [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))] or [{}]
    jobs = []
    out_dir = Path(cfg.output.model_path)
    out_dir = (out_dir if out_dir.is_absolute() else base / out_dir).parent
    for si, setting in enumerate(settings):
        for seed in range(seeds):
            d = cfg.model_dump()
            for k, v in setting.items():
                _set(d, k, v)
            d["train"]["seed"] = seed
            jobs.append((si, setting, seed, d, str(out_dir / f"sweep_s{si}_seed{seed}.npz")))
    for _, _, _, d, _ in jobs:  # validate every setting before starting anything
        from rtsnn.learn.offline.pretrain import parse_pretrain_config
        parse_pretrain_config(d, "--sweep")
    results = []
    ray = None
    if use_ray:
        try:
            ray = require("ray", "sweeps on Ray")
        except MissingExtraError:
            ray = None
    if ray is None:
        why = "disabled (--no-ray)" if not use_ray else f"not installed ({install_hint('ray')})"
        print(f"Ray {why}: running {len(jobs)} trials sequentially", file=log, flush=True)
        for i, (si, setting, seed, d, out) in enumerate(jobs):
            r = _trial(d, str(base), out)
            results.append({"setting": setting, "seed": seed, **r})
            print(json.dumps(json_safe(results[-1]), allow_nan=False), flush=True)
            print(f"[{i + 1}/{len(jobs)}] setting {setting} seed {seed}: snn_r2 {r['snn_r2']:.4f}", file=log, flush=True)
    else:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        remote = ray.remote(_trial)
        refs = {remote.remote(d, str(base), out): (si, setting, seed) for si, setting, seed, d, out in jobs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            si, setting, seed = refs[done[0]]
            r = ray.get(done[0])
            results.append({"setting": setting, "seed": seed, **r})
            print(json.dumps(json_safe(results[-1]), allow_nan=False), flush=True)
            print(f"[{len(results)}/{len(jobs)}] setting {setting} seed {seed}: snn_r2 {r['snn_r2']:.4f}", file=log, flush=True)
    table = []
    print(f"{'setting':<40} {'n':>3} {'snn_r2 mean +- sd':>22} {'wiener_r2':>10}", file=log)
    for si, setting in enumerate(settings):
        rs = [r for r in results if r["setting"] == setting]
        a = np.array([r["snn_r2"] for r in rs])
        w = float(np.mean([r["wiener_r2"] for r in rs]))
        sd = float(a.std(ddof=1)) if a.size > 1 else 0.0
        table.append({"setting": setting, "n": int(a.size), "snn_r2_mean": float(a.mean()), "snn_r2_sd": sd,
                      "wiener_r2": w})
        print(f"{json.dumps(setting):<40} {a.size:>3} {a.mean():>12.4f} +- {sd:<7.4f} {w:>10.4f}", file=log)
    print(json.dumps(json_safe({"sweep": table, "ray": ray is not None}), allow_nan=False), flush=True)
    return results
