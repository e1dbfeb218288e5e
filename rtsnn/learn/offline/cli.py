"""``rtsnn pretrain CONFIG``: offline BPTT pretraining of a runtime decoder (see
:mod:`rtsnn.learn.offline.pretrain`). Prints one JSON line with the held-out R^2 of the SNN
and of the Wiener-filter baseline, and saves the per-epoch history as ``<model stem>.history.json``
beside the model (``rtsnn plot MODEL`` draws it). A config with a ``sweep:`` section, or
``--sweep key=v1,v2`` / ``--sweep seeds=N``, runs a hyperparameter sweep on Ray Tune instead
(see :mod:`rtsnn.learn.offline.sweep`, docs/sweeps.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_pretrain(args: argparse.Namespace) -> int:
    from rtsnn.learn.offline.pretrain import emit, load_pretrain_config, run_pretrain

    cfg = load_pretrain_config(args.config)
    base = Path(args.config).resolve().parent
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": args.epochs})})
    if args.out is not None:
        cfg = cfg.model_copy(update={"output": cfg.output.model_copy(update={"model_path": str(Path(args.out).resolve())})})
    if args.sweep or cfg.sweep is not None:
        if args.session_config is not None:
            raise ValueError("--session-config applies to a single pretraining, not to a sweep (the best trial's "
                             "session config is written beside the exported model)")
        return _sweep(cfg, base, args)
    if args.sweep_dir or args.address or args.no_ray:
        raise ValueError("--sweep-dir, --address and --no-ray apply to sweeps: the config has no sweep: section "
                         "and no --sweep was given")
    if args.session_config is not None and not Path(args.session_config).resolve().parent.is_dir():
        # refused before training, not after it
        raise ValueError(f"--session-config: folder {Path(args.session_config).resolve().parent} does not exist")
    try:
        result = run_pretrain(cfg, base, progress=not args.quiet, resume=args.resume,
                              session_config_path=args.session_config and Path(args.session_config).resolve())
    except KeyboardInterrupt:
        return 130
    emit(result)
    return 0


def _sweep(cfg, base: Path, args: argparse.Namespace) -> int:
    import json
    import sys

    from rtsnn.learn.offline.sweep import SweepInterrupted, run_sweep, with_cli_grid
    from rtsnn.jsonout import json_safe

    cfg = with_cli_grid(cfg, args.sweep)
    try:
        summary = run_sweep(cfg, base, sweep_dir=Path(args.sweep_dir) if args.sweep_dir else None,
                            resume=args.resume, address=args.address, use_ray=not args.no_ray)
    except SweepInterrupted as err:
        print(f"rtsnn: {err}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        return 130
    print(json.dumps(json_safe(summary), allow_nan=False), flush=True)
    return 0 if summary["best"] is not None else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("pretrain", help="pretrain a decoder offline with BPTT (surrogate gradients)")
    p.add_argument("config", help="pretrain YAML config (see configs/pretrain_chewie.yaml)")
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    p.add_argument("--out", default=None, help="override output.model_path")
    p.add_argument("--resume", action="store_true",
                   help="continue from output.checkpoint_path; with a sweep: continue the sweep in --sweep-dir")
    p.add_argument("--session-config", default=None, metavar="OUT.yaml",
                   help="where to write the session config that runs the model live "
                        "(default: <model stem>.session.yaml beside the model)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--sweep", action="append", default=None,
                   help="seeds=N or dotted.key=v1,v2,... (repeatable): grid keys added to the config's sweep: "
                        "section; runs on Ray Tune when installed")
    p.add_argument("--sweep-dir", default=None,
                   help="sweep results folder (default: <model stem>.sweep/ beside output.model_path)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address, e.g. ray://head:10001 or auto (default: a local Ray on every CPU)")
    p.add_argument("--no-ray", action="store_true", help="run sweep trials sequentially even if Ray is installed")
    p.set_defaults(func=cmd_pretrain)
