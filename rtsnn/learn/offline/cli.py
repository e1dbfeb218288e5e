"""``rtsnn pretrain CONFIG``: offline BPTT pretraining of a runtime decoder (see
:mod:`rtsnn.learn.offline.pretrain`). Prints one JSON line with the held-out R^2 of the SNN
and of the Wiener-filter baseline, and saves the per-epoch history as ``<model stem>.history.json``
beside the model (``rtsnn plot MODEL`` draws it); ``--sweep seeds=N`` or ``--sweep key=v1,v2``
runs several trials (see :mod:`rtsnn.learn.offline.sweep`)."""

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
    if args.sweep:
        from rtsnn.learn.offline.sweep import run_sweep

        run_sweep(cfg, base, args.sweep, address=args.address, use_ray=not args.no_ray)
        return 0
    try:
        result = run_pretrain(cfg, base, progress=not args.quiet, resume=args.resume)
    except KeyboardInterrupt:
        return 130
    emit(result)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("pretrain", help="pretrain a decoder offline with BPTT (surrogate gradients)")
    p.add_argument("config", help="pretrain YAML config (see configs/pretrain_chewie.yaml)")
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    p.add_argument("--out", default=None, help="override output.model_path")
    p.add_argument("--resume", action="store_true", help="continue from output.checkpoint_path")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--sweep", action="append", default=None,
                   help="seeds=N or dotted.key=v1,v2,... (repeatable: grid); runs on Ray when installed")
    p.add_argument("--address", default=None, help="Ray cluster address (default: a local cluster)")
    p.add_argument("--no-ray", action="store_true", help="run sweep trials sequentially even if Ray is installed")
    p.set_defaults(func=cmd_pretrain)
