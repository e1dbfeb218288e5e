"""The ``rtsnn`` command line.

    rtsnn run CONFIG [--duration S] [--json] [--quiet]   run a session from a YAML config
    rtsnn demo [--duration S] [--json] [--quiet]         the embedded default closed loop (no external service)
    rtsnn plugins [--json]                     installed sources, encoders, sinks, backends, learners
    rtsnn model info FILE [--json]             a model file's graph: one line per node
    rtsnn model simulate MODEL --input IN.npy --output OUT.npy   outputs per tick from a fresh state
    rtsnn model convert IN OUT                 .npz <-> NIR (.nir)
    rtsnn config check FILE                    validate a config (and its plugins' options)

Every failure is a message on stderr, never a bare traceback (rtsnn.errors):

* an expected failure (an :class:`rtsnn.errors.RtsnnError`: bad config, model, recording, graph,
  stream or missing extra; or a ``ValueError`` / ``OSError`` / ``KeyError``, whose messages name
  the file, key or stream): ``rtsnn: error: <message>`` (``rtsnn: config error: ...`` for a
  config, whose message may list several problems, one per line), exit 2;
* a bad argument (argparse): ``rtsnn CMD: error: <message> (`rtsnn CMD --help`: usage)``, exit 2;
* a session that failed while running: ``rtsnn: session failed: <message>``, exit 1;
* anything else is a bug: ``rtsnn: internal error: <Type>: <message> (run with --debug for the
  traceback)``, exit 1;
* Ctrl-C before a session ran: exit 130 (a running session stops with its summary, exit 0).

``--debug`` (anywhere on the line) or ``RTSNN_TRACEBACK=1`` prints the traceback before the message.

``run`` and ``demo`` print the session folder and every LSL stream they read or publish at
start, then one status line every 5 s, all on stderr (``--quiet``: none of them); stdout
carries only the summary. SIGTERM stops them as Ctrl-C does: summary printed and written,
exit 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rtsnn.config import ConfigError, load_config, parse_config
from rtsnn.errors import RtsnnError, SessionFailed
from rtsnn.extras import MissingExtraError
from rtsnn.interop.nir import CONVENTIONS as NIR_CONVENTIONS  # numpy only: the nir package loads on use
from rtsnn.interop.nir import NEURONS as NIR_NEURONS
from rtsnn.interop.nir import RESET_OVERRIDES as NIR_RESETS


def _demo_config_dict() -> dict[str, Any]:
    text = resources.files("rtsnn").joinpath("configs/demo.yaml").read_text()
    return yaml.safe_load(text)


def _with_overrides(data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    data = dict(data)
    session = dict(data.get("session") or {})
    if getattr(args, "duration", None) is not None:
        session["duration_s"] = args.duration
        learner = data.get("learner")
        # keep a third of a short demo for evaluation after calibration
        if learner and learner.get("kind") == "ridge_readout":
            opts = dict(learner.get("options") or {})
            opts["calibration_s"] = min(float(opts.get("calibration_s", 20.0)), args.duration / 3.0)
            data["learner"] = {**learner, "options": opts}
    if getattr(args, "out_dir", None):
        session["out_dir"] = args.out_dir
    data["session"] = session
    return data


STATUS_INTERVAL_S = 5.0  # one status line this often during `run` / `demo`


def _progress(line: str) -> None:
    """Start and status lines go to stderr, always: stdout carries only the result (the text
    summary, or with --json one JSON line), so `rtsnn demo --json > s.json` still shows them."""
    print(line, file=sys.stderr, flush=True)


def _print_start(info: dict[str, Any]) -> None:
    """The session folder and every LSL stream the session reads or publishes, by role."""
    _progress(f"session folder: {info['folder']}")
    groups: dict[tuple[str, str], list[str]] = {}
    for st in info["streams"]:
        key = ("synthetic user (child process) publishes" if st["role"] == "synthetic_user"
               else "LSL in " if st["direction"] == "in" else "LSL out", st["role"])
        groups.setdefault(key, []).append(st["name"] or st.get("match", "?"))
    for head in ("LSL in ", "LSL out", "synthetic user (child process) publishes"):
        parts = [", ".join(names) + ("" if role == "synthetic_user" else f" [{role}]")
                 for (h, role), names in groups.items() if h == head]
        if parts:
            _progress(f"{head.strip()}: " + "; ".join(parts))
    _progress(f"status every {STATUS_INTERVAL_S:g} s (--quiet: none); Ctrl-C or SIGTERM stops with the summary")


def format_status_line(st: dict[str, Any]) -> str:
    """One line from :meth:`rtsnn.runtime.session.Session.status`: ticks, deadline misses, e2e
    p99 over the last interval, R^2 so far, and the source's health."""
    ticks = st["ticks"]
    head = f"[{st['elapsed_s']:7.1f} s] "
    if ticks == 0:
        return head + "warming up (timing starts once the source's start-up backlog is drained)"
    miss_pct = 100.0 * st["deadline_misses"] / ticks
    over_s = st.get("e2e_p99_over_s")
    window = "so far" if over_s is None else f"last {over_s:g} s"
    p99 = st["e2e_p99_us"]
    p99_txt = "-" if p99 is None else f"{p99 / 1000:.2f} ms"
    r2 = st["r2"]
    r2_txt = "- (not calibrated yet)" if r2 is None else f"{r2:.3f} (so far)"
    src = st["source"]
    health = ", ".join(f"{src[k]} {k}" for k in ("samples", "repaired", "dropped") if src.get(k) is not None)
    if "connected" in src:
        health += ", " + ("gap" if src.get("in_gap") else "connected" if src["connected"] else "lost")
    if src.get("finished"):
        health += ", finished"
    return (head + f"ticks {ticks}  misses {st['deadline_misses']} ({miss_pct:.2f} %)  "
            f"e2e p99 {p99_txt} ({window})  R^2 {r2_txt}  source: {health}")


class _StopOnSigterm:
    """While active (main thread only), SIGTERM asks the session to stop like Ctrl-C: the
    summary is printed and written and the command exits 0 (a supervisor's stop request,
    e.g. systemd's, is a clean end, not a failure)."""

    def __init__(self, session: Any):
        self.session = session
        self.previous: Any = None

    def __enter__(self) -> "_StopOnSigterm":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, lambda signum, frame: self.session.stop("SIGTERM"))
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _run_session(data: dict[str, Any], origin: str, args: argparse.Namespace, post=None) -> int:
    from rtsnn.runtime.session import Session
    from rtsnn.jsonout import json_safe

    bare_timer_s = getattr(args, "bare_timer_s", 0.0) or 0.0
    try:
        cfg = parse_config(data, origin)
        if bare_timer_s > 0 and cfg.session.pace == "max":  # before anything is built or spawned
            raise ConfigError(f"{origin}: --bare-timer-s {bare_timer_s:g} measures the floor of live deadlines, "
                              f"but session.pace is max (no deadlines); leave it out or give 0")
        session = Session(cfg, origin)
    except ConfigError as err:  # every config error names the file (a plugin lookup's does not, yet)
        if origin in str(err):
            raise
        raise ConfigError(f"{origin}: {err}") from err
    quiet = getattr(args, "quiet", False)
    try:
        with _StopOnSigterm(session):
            summary = session.run(on_start=None if quiet else _print_start,
                                  on_status=None if quiet else (lambda st: _progress(format_status_line(st))),
                                  status_interval_s=STATUS_INTERVAL_S,
                                  bare_timer_s=bare_timer_s)
    except Exception as err:
        failed = getattr(session, "failed", None)  # set once the session ran: its thread or a stage failed
        if isinstance(failed, str) and failed:
            raise SessionFailed(failed) from err  # exit 1
        if isinstance(err, (RtsnnError, ValueError, OSError)):
            raise  # bad input met while starting (a stream that does not fit, a file): exit 2
        raise SessionFailed(_one_line(err) if isinstance(err, RuntimeError) and str(err)
                            else f"{type(err).__name__}: {_one_line(err)}") from err
    if post is not None:  # extra figures computed from the finished session (e.g. --drift)
        summary = json_safe({**summary, **post(session, summary)})
    if args.json:
        print(json.dumps(summary, allow_nan=False))
    else:
        e2e = summary["e2e_latency_us"]
        print(f"session folder: {summary['folder']}")
        if summary.get("stopped_by"):
            print(f"stopped by {summary['stopped_by']}")
        print(f"ticks {summary['ticks']}  deadline misses {summary['deadline_misses']} "
              f"({100 * summary['deadline_miss_rate']:.3f} %)  dropped samples {summary['dropped_samples']}"
              + (f" (+{summary['dropped_in_warmup']} stale at start-up)" if summary.get("dropped_in_warmup") else ""))
        if summary.get("bare_timer_ticks"):
            ratio = summary["deadline_miss_ratio"]
            print(f"bare timer before the start ({summary['bare_timer_s']:g} s, same pacing, empty tick): misses "
                  f"{summary['bare_timer_misses']} of {summary['bare_timer_ticks']} "
                  f"({100 * summary['bare_timer_miss_rate']:.3f} %); session / bare "
                  + ("- (the bare timer missed none)" if ratio is None else f"{ratio:.2f}x"))
        print(f"end-to-end latency us: p50 {e2e['p50']}  p99 {e2e['p99']}  p99.9 {e2e['p999']}  max {e2e['max']}")
        age = summary.get("input_age_us") or {}
        if age.get("n"):
            late = summary.get("input_age_over_one_tick")
            late_txt = "" if late is None else f"  ({100 * late:.2f} % of samples older than one tick)"
            print(f"  of which input age (timestamp -> tick start) us: p50 {age['p50']}  p99 {age['p99']}{late_txt}")
        for name, st in summary["stage_latency_us"].items():
            p50, p99, mx = ("-" if st[k] is None else st[k] for k in ("p50", "p99", "max"))
            print(f"  {name:9s} p50 {p50:>9}  p99 {p99:>9}  max {mx:>9}")
        if summary.get("r2") is not None:
            print(f"decoding R^2{' (after calibration)' if 'learner' in summary else ''}: {summary['r2']:.3f}")
        if "drift" in summary:
            d = summary["drift"]
            print("R^2 by phase: " + "  ".join(f"{k} {v:.3f}" if v is not None else f"{k} -"
                                               for k, v in d["r2"].items()))
            print("recovery s: " + "  ".join(f"{k} {v}" for k, v in d["recovery_s"].items()))
    failed = getattr(session, "failed", None)  # a session that ended by a failure, its summary written
    if isinstance(failed, str) and failed:
        raise SessionFailed(failed)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    path = Path(args.config)
    load_config(path)  # validates, names file and key on error
    data = yaml.safe_load(path.read_text())
    return _run_session(_with_overrides(data, args), str(path), args)


def cmd_demo(args: argparse.Namespace) -> int:
    base = _demo_config_dict()
    origin = "<embedded demo config>"
    if getattr(args, "drift", False):
        from rtsnn.learn.online.adaptation import DRIFT_DURATION_S, drift_demo_config, drift_report

        if args.duration is not None and args.duration < DRIFT_DURATION_S:
            raise ValueError(f"--drift runs a {DRIFT_DURATION_S:g} s schedule (rotation at 120 s, dropout at "
                             f"240 s); --duration must be >= {DRIFT_DURATION_S:g}, got {args.duration:g}")
        base = drift_demo_config(base)
        origin = "<embedded demo config, --drift>"

        def post(session, summary):
            n_out = session.model.n_out
            rows = np.fromfile(Path(summary["folder"]) / "outputs.f64", "<f8").reshape(-1, 3 + 2 * n_out)
            return {"drift": drift_report(rows, n_out, session.dt_s)}

        return _run_session(_with_overrides(base, args), origin, args, post)
    return _run_session(_with_overrides(base, args), origin, args)


def cmd_plugins(args: argparse.Namespace) -> int:
    from rtsnn.plugins import describe_all

    table = describe_all()
    if args.json:
        print(json.dumps(table, allow_nan=False))
        return 0
    for group, rows in table.items():
        print(group)
        for r in rows or [{"name": "(none)", "target": "", "distribution": ""}]:
            print(f"  {r['name']:20s} {r['target']:50s} {r['distribution']}")
    return 0


def cmd_model_info(args: argparse.Namespace) -> int:
    """The model's graph (any format version; docs/model_graph.md): one line per node in
    evaluation order (name, kind, shape, inputs, recurrent ones marked "(t-1)", parameters),
    then outputs, input contract and provenance; ``--json``: all of it and the raw header."""
    from rtsnn.jsonout import json_safe
    from rtsnn.snn.model_tools import describe_model, format_description

    d = describe_model(args.file)
    if args.json:
        print(json.dumps(json_safe(d), indent=1, allow_nan=False))
    else:
        print("\n".join(format_description(d)))
    return 0


def cmd_model_simulate(args: argparse.Namespace) -> int:
    """Run MODEL over --input (a .npy of ticks x n_in network inputs) from a fresh state and
    write the Output node's values per tick (float32, ticks x n_out) to --output (.npy)."""
    from rtsnn.snn.model_tools import simulate_file

    res = simulate_file(args.model, args.input, args.output, propagation=args.propagation)
    if args.json:
        print(json.dumps(res, allow_nan=False))
    else:
        labels = ", ".join(res["output_labels"])
        print(f"wrote {os.path.normpath(res['output'])}: {res['ticks']} ticks x {res['n_out']} outputs ({labels}), "
              f"float32; tick {res['dt_s'] * 1e3:g} ms, {res['spikes']} spikes")
    return 0


def _model_summary(model: Any) -> str:
    """``3 in, 5 neurons, 2 out`` for a single-layer model; for a graph, its nodes too."""
    if hasattr(model, "n_rec"):  # rtsnn.snn.params.Model: one recurrent layer
        return f"{model.n_in} in, {model.n_rec} neurons, {model.n_out} out"
    nodes = model.graph.nodes
    neurons = sum(v.n for v in nodes.values() if v.spiking)
    kinds: dict[str, int] = {}
    for v in nodes.values():
        kinds[v.kind] = kinds.get(v.kind, 0) + 1
    return (f"{model.n_in} in, {neurons} neurons, {model.n_out} out; graph of {len(nodes)} nodes: "
            + ", ".join(f"{n} {k}" for k, n in kinds.items()))


def cmd_model_convert(args: argparse.Namespace) -> int:
    """rtsnn .npz <-> NIR (.nir, HDF5), chosen by the file endings (docs/nir.md)."""
    from rtsnn.interop.nir import load_nir, save_nir
    from rtsnn.snn import load_model, save_model

    src, dst = Path(args.input), Path(args.output)
    if src.suffix == ".npz" and dst.suffix == ".nir":
        if args.reset is not None:
            raise ValueError("--reset applies to .nir -> .npz (how to read the NIR file's reset); the export "
                             "records each node's reset in the graph's metadata")
        kw: dict[str, Any] = {"convention": args.convention or "snntorch", "neuron": args.neuron}
        if args.dt_s is not None:
            kw["dt_s"] = args.dt_s
        save_nir(load_model(src), dst, **kw)
        print(f"wrote {os.path.normpath(dst)} (NIR, {kw['convention']} convention, {args.neuron})")
    elif src.suffix == ".nir" and dst.suffix == ".npz":
        model, notes = load_nir(src, convention=args.convention, dt_s=args.dt_s, reset=args.reset)
        save_model(dst, model)
        print(f"wrote {os.path.normpath(dst)} ({_model_summary(model)})")
        for n in notes:
            print(f"note: {n}")
    else:
        raise ValueError(f"model convert goes .npz -> .nir or .nir -> .npz; got {src.name!r} -> {dst.name!r}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    """Check a session or pretraining config without running it (see :mod:`rtsnn.config_check`):
    ``FILE: ok (KIND)`` and exit 0, or every problem on its own line on stderr and exit 2."""
    from rtsnn.config_check import check_config_file

    res = check_config_file(args.file)
    if res.errors:
        for line in res.errors:
            print(line, file=sys.stderr)
        return 2
    print(f"{res.origin}: ok ({res.kind})")
    return 0


# Modules that add their own subcommands: each defines ``register(subparsers) -> None``.
# Listed here so ``rtsnn --help`` shows every command of the installed package.
COMMAND_MODULES: tuple[str, ...] = (
    "rtsnn.learn.offline.cli",   # pretrain
    "rtsnn.learn.online.cli",    # online-learning commands
    "rtsnn.stream.cli",          # record, replay
    "rtsnn.recording.cli",       # recording info
    "rtsnn.backends.cli",        # backend report
    "rtsnn.events.cli",          # events publish
    "rtsnn.viz.cli",             # dashboard
    "rtsnn.viz.plot_cli",        # plot
)


def _register_command_modules(sub: Any) -> None:
    import importlib

    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and (name == err.name or name.startswith(err.name + ".")):  # area has no commands yet
                continue
            raise
        mod.register(sub)


def number_arg(unit: str = "seconds", *, zero: bool = False) -> Any:
    """An argparse ``type``: a finite number > 0 (``zero``: >= 0) of ``unit``; ``nan``, ``inf``,
    ``-1``, ``1e400`` and text are refused as a one-line usage error naming the flag."""
    least = ">= 0" if zero else "> 0"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number of {unit}, got {text!r}") from None
        if not (math.isfinite(value) and (value >= 0 if zero else value > 0)):
            raise argparse.ArgumentTypeError(f"must be a finite number of {unit} {least}, got {text!r}")
        return value

    parse.__name__ = unit
    return parse


def count_arg(text: str) -> int:
    """An argparse ``type``: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


_seconds = number_arg("seconds")
_seconds_or_zero = number_arg("seconds", zero=True)


class _Parser(argparse.ArgumentParser):
    """An argument error is one line on stderr (exit 2), like every other failure; the usage is
    one ``--help`` away."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (`{self.prog} --help`: usage)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rtsnn", description="real-time SNN decoders for closed loops",
                epilog="exit status: 0 ok; 2 bad config, file, option or argument (one line on stderr); "
                       "1 a session that failed while running, or an internal error; 130 interrupted")
    p.add_argument("--debug", action="store_true",
                   help="print the traceback of a failure (also RTSNN_TRACEBACK=1); may go anywhere on the line")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run a session from a YAML config")
    r.add_argument("config")
    r.add_argument("--duration", type=_seconds, help="override session.duration_s (s)")
    r.add_argument("--out-dir", help="override session.out_dir")
    r.add_argument("--json", action="store_true", help="print one JSON summary line at the end")
    r.add_argument("--bare-timer-s", type=_seconds_or_zero, default=0.0,
                   help="before the inputs open, time this long an empty loop on the session's pacing (the "
                        "machine's deadline floor, reported beside the session's misses); default 0: off; "
                        "refused with session.pace: max (no deadlines)")
    r.add_argument("--quiet", action="store_true", help="no start lines (folder, streams) and no status "
                                                         "lines on stderr; the summary still prints")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="synthetic user over LSL -> SNN decoder -> LSL outlet")
    d.add_argument("--duration", type=_seconds, default=None, help="seconds (default 60)")
    d.add_argument("--out-dir", help="where the session folder goes (default ./sessions)")
    d.add_argument("--json", action="store_true", help="print one JSON summary line at the end")
    d.add_argument("--bare-timer-s", type=_seconds_or_zero, default=2.0,
                   help="before the inputs open, time this long an empty loop on the session's pacing (the "
                        "machine's deadline floor, reported beside the session's misses); 0: off (default 2)")
    d.add_argument("--quiet", action="store_true", help="no start lines (folder, streams) and no status "
                                                         "lines on stderr; the summary still prints")
    d.add_argument("--drift", action="store_true",
                   help="the user's preferred directions rotate 30 deg at 120 s and 20 %% of neurons fall "
                        "silent at 240 s; the decoder adapts online by e-prop (360 s unless --duration)")
    d.set_defaults(func=cmd_demo)

    pl = sub.add_parser("plugins", help="list installed plugins")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=cmd_plugins)

    m = sub.add_parser("model", help="model files")
    msub = m.add_subparsers(dest="model_cmd", required=True)
    mi = msub.add_parser("info", help="print a model file's graph: one line per node (name, kind, shape, "
                                      "inputs, '(t-1)' for recurrent ones), outputs, contract, provenance")
    mi.add_argument("file")
    mi.add_argument("--json", action="store_true", help="everything as one JSON object, with the raw header")
    mi.set_defaults(func=cmd_model_info)
    ms = msub.add_parser("simulate", help="run a model over an input array (ticks x channels, .npy) from a fresh "
                                          "state; write the output node's values per tick (.npy)")
    ms.add_argument("model")
    ms.add_argument("--input", required=True, help=".npy, ticks x n_in network inputs (what the encoder gives)")
    ms.add_argument("--output", required=True, help=".npy to write: ticks x n_out float32")
    ms.add_argument("--propagation", choices=("auto", "dense", "event"), default="auto",
                    help="how projections propagate (every choice gives the same bits)")
    ms.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    ms.set_defaults(func=cmd_model_simulate)
    mc = msub.add_parser("convert", help="rtsnn model file <-> NIR graph (by the endings .npz / .nir)")
    mc.add_argument("input")
    mc.add_argument("output")
    mc.add_argument("--convention", choices=NIR_CONVENTIONS, default=None,
                    help="discretisation the NIR time constants follow (docs/nir.md; export default snntorch; "
                         "import default: the graph's rtsnn metadata)")
    mc.add_argument("--dt-s", type=_seconds, default=None,
                    help="the model's tick, which the NIR time constants refer to (s)")
    mc.add_argument("--neuron", choices=NIR_NEURONS, default="lif", help="NIR neuron to export as")
    mc.add_argument("--reset", choices=NIR_RESETS, default=None,
                    help="import only: read every spiking node's reset as this (snnTorch's export loses "
                         "reset_mechanism; default: NIR's reset to v_reset, or rtsnn's recorded reset)")
    mc.set_defaults(func=cmd_model_convert)

    c = sub.add_parser("config", help="configs")
    csub = c.add_subparsers(dest="config_cmd", required=True)
    cc = csub.add_parser("check", help="check a session or pretraining config: schema, every plugin stage built "
                                       "from its options, files, channel counts; all problems at once")
    cc.add_argument("file")
    cc.set_defaults(func=cmd_config_check)
    _register_command_modules(sub)
    return p


def _one_line(err: BaseException | str) -> str:
    """``err``'s message on one line (whitespace runs collapsed), at most 500 characters; a
    ``KeyError`` shows its message, not its repr."""
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        text = err.args[0]
    else:
        text = str(err)
    text = " ".join(text.split())
    if not text and isinstance(err, BaseException):
        text = type(err).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def _take_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without its ``--debug`` flags (before a ``--``), and whether there was one."""
    end = argv.index("--") if "--" in argv else len(argv)
    rest = [a for a in argv[:end] if a != "--debug"] + argv[end:]
    return rest, len(rest) != len(argv)


def _expected_message(err: BaseException) -> str:
    """The stderr text of an expected failure: its message as written (a config error may list
    several problems, one per line); other multi-line messages are joined into one line."""
    if isinstance(err, ConfigError):
        text = str(err).strip() or type(err).__name__
        return f"rtsnn: config error: {text}"
    if isinstance(err, SessionFailed):
        hint = "" if err.__cause__ is None else " (run with --debug for the traceback)"
        return f"rtsnn: session failed: {_one_line(err)}{hint}"
    if isinstance(err, MissingExtraError):
        return f"rtsnn: {_one_line(err)}"
    return f"rtsnn: error: {_one_line(err)}"


def report_failure(err: BaseException, debug: bool = False) -> int:
    """Print ``err`` as the command's failure (stderr) and return the exit status: 2 for an
    expected failure (:class:`~rtsnn.errors.RtsnnError`, ``ValueError``, ``OSError``,
    ``KeyError``), the error's own ``exit_status`` for an RtsnnError, 1 for anything else (a
    bug: ``internal error``). ``debug``: the traceback first."""
    if debug:
        traceback.print_exception(err, file=sys.stderr)
    if isinstance(err, (RtsnnError, ValueError, OSError, KeyError)):
        print(_expected_message(err), file=sys.stderr)
        return int(getattr(err, "exit_status", 2))
    hint = "" if debug else " (run with --debug for the traceback)"
    print(f"rtsnn: internal error: {type(err).__name__}: {_one_line(err)}{hint}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    argv, debug = _take_debug(list(sys.argv[1:] if argv is None else argv))
    debug = debug or os.environ.get("RTSNN_TRACEBACK", "") not in ("", "0")
    try:
        args = build_parser().parse_args(argv)  # a bad argument: one line and SystemExit(2)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # outside a session's loop (which stops with its summary): set-up, a second Ctrl-C
        if debug:
            traceback.print_exc()
        print("rtsnn: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every failure reaches the user as a message
        return report_failure(err, debug)


if __name__ == "__main__":
    sys.exit(main())
