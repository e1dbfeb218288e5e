"""Every failure of the command line is a message (rtsnn.errors, rtsnn.cli): hypothesis feeds the
commands that read a file bad files (random bytes, real files cut short or with bytes flipped,
wrong suffixes, missing paths, folders) and bad numbers, in-process through ``rtsnn.cli.main``.

Each call must end with exit status 2 and one line on stderr naming the file or flag (a config
error may list several problems, one per line), or with 0 where the damaged input is in fact
still valid (checked by reading it with the library), and never print a traceback.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import import_or_skip
from rtsnn.cli import main
from rtsnn.errors import RtsnnError, RtsnnImportError, RtsnnRuntimeError, RtsnnValueError, SessionFailed

# a fixed set of examples in the suite (no flaky run); RTSNN_FUZZ_EXAMPLES=500 explores afresh, longer
_EXPLORE = int(os.environ.get("RTSNN_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_EXPLORE or 40, deadline=None, derandomize=not _EXPLORE, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FEW = settings(FUZZ, max_examples=_EXPLORE or 25)


# ------------------------------------------------------------------ valid files, built once
@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """A valid file of each kind the commands read, by name -> path."""
    from rtsnn.learn.offline.pretrain import training_history
    from rtsnn.recording.xdf_writer import write_xdf_stream
    from rtsnn.snn import Model, save_model

    d = tmp_path_factory.mktemp("valid")
    save_model(d / "model.npz", Model.random(4, 6, 2, seed=0))
    save_model(d / "graph.npz", _two_layer_graph())
    np.save(d / "in.npy", np.random.default_rng(0).poisson(0.3, (30, 4)).astype(np.float32))
    write_xdf_stream(d / "rec.xdf", (np.random.default_rng(1).random((200, 3)) < 0.1).astype(np.float32), 1000.0,
                     name="spk", type="Spikes")
    cfg = {"source": {"kind": "xdf_file", "options": {"path": str(d / "missing.xdf"), "n_channels": 4}},
           "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
           "model": {"random": {"n_rec": 8, "n_out": 2}},
           "session": {"name": "fuzz", "pace": "max", "out_dir": str(d / "sessions"), "monitor": False}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    hist = training_history([{"loss": 1.0 / (k + 1), "test_loss": 1.2 / (k + 1), "test_r2": 0.1 * k, "epoch_s": 0.5}
                             for k in range(4)], method="bptt", metric="r2", loss="mse")
    (d / "m.history.json").write_text(json.dumps(hist, allow_nan=False))
    out = {p.name: p for p in d.iterdir()}
    if _has("nir"):
        from rtsnn.interop.nir import save_nir
        from rtsnn.snn import load_model

        save_nir(load_model(d / "graph.npz"), d / "graph.nir", convention="nir")
        out["graph.nir"] = d / "graph.nir"
    return out


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _two_layer_graph():
    from rtsnn.snn import LIF, Affine, Graph, GraphModel, Input, Linear, Output

    rng = np.random.default_rng(3)

    def w(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    return GraphModel(Graph({"in": Input(shape=(4,)), "w1": Linear(weight=w(4, 5)), "h1": LIF(n=5, tau_mem_s=0.02),
                             "w2": Linear(weight=w(5, 3)), "h2": LIF(n=3, tau_mem_s=[0.01, 0.02, 0.03]),
                             "ro": Affine(weight=w(3, 2), bias=np.zeros(2, np.float32)), "out": Output(shape=(2,))},
                            [("in", "w1"), ("w1", "h1"), ("h1", "w2"), ("w2", "h2"), ("h2", "ro"), ("ro", "out")]))


# ------------------------------------------------------------------ bad inputs
MISSING, FOLDER = "<missing>", "<folder>"


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    b = bytearray(data)
    for pos, x in flips:
        b[pos % len(b)] ^= x
    return bytes(b)


def damaged(data: bytes) -> st.SearchStrategy:
    """Bytes that are not ``data`` any more (or a missing path / a folder in its place)."""
    return st.one_of(
        st.binary(max_size=600),
        st.integers(0, len(data) - 1).map(lambda k: data[:k]),
        st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)), min_size=1, max_size=6)
          .map(lambda flips: _flip(data, flips)),
        st.sampled_from([MISSING, FOLDER]),
    )


_counter = itertools.count()


def _place(root: Path, name: str, content) -> Path:
    """Write ``content`` (bytes, MISSING, FOLDER) at a fresh ``root/<n>/name``."""
    d = root / f"x{next(_counter)}"
    d.mkdir()
    p = d / name
    if content == FOLDER:
        p.mkdir()
    elif content != MISSING:
        p.write_bytes(content)
    return p


def _call(capsys, argv: list[str]) -> tuple[int, str, str]:
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse: a bad argument
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def _failed_cleanly(rc: int, out: str, err: str, names: list[str], argv, *, several_lines: bool = False) -> None:
    """Exit 2, nothing on stdout, one line on stderr naming one of ``names`` (a config error,
    or ``several_lines``: a first line naming it, then more problems)."""
    ctx = (argv, rc, out[-300:], err[-1500:])
    assert "Traceback" not in out + err, ctx
    assert rc == 2, ctx
    lines = err.strip().splitlines()
    assert lines and out == "", ctx
    if not (several_lines or lines[0].startswith("rtsnn: config error:")):
        assert len(lines) == 1, ctx
    assert any(str(n) in lines[0] for n in names), ctx


def _outcome(rc, out, err, argv, names, still_valid, **kw) -> None:
    """``rc`` 0 only when ``still_valid()`` (the library reads the damaged input), else a clean failure."""
    assert "Traceback" not in out + err, (argv, rc, err[-1500:])
    if rc == 0:
        assert still_valid(), (argv, "exit 0 on an input the library refuses", out[-300:], err[-300:])
    else:
        _failed_cleanly(rc, out, err, names, argv, **kw)


def _loads(fn, *args, **kw) -> bool:
    try:
        fn(*args, **kw)
        return True
    except Exception:  # noqa: BLE001 - any refusal means "not valid"
        return False


# ------------------------------------------------------------------ the package's error classes
def test_every_package_error_is_an_rtsnn_error_and_stays_what_it_was():
    from rtsnn.config import ConfigError
    from rtsnn.extras import MissingExtraError
    from rtsnn.learn.offline.bptt import TrainingDiverged
    from rtsnn.recording.xdf_reader import XdfError
    from rtsnn.snn.model_file import ModelFileError
    from rtsnn.snn.nodes import GraphError
    from rtsnn.stream.lsl_source import StreamMismatchError, StreamNotFoundError
    from rtsnn.encode import EncoderInputError
    from rtsnn.learn.offline.checkpoint import CheckpointError
    from rtsnn.stream.mqtt_common import PayloadError
    from rtsnn.stream.speed import SpeedError
    from rtsnn.viz.client import MonitorNotFoundError
    from rtsnn.yaml_safe import YamlLimitError

    for cls in (ConfigError, YamlLimitError, GraphError, ModelFileError, XdfError, StreamMismatchError,
                StreamNotFoundError, EncoderInputError, CheckpointError, PayloadError, SpeedError,
                MonitorNotFoundError):
        assert issubclass(cls, RtsnnValueError) and issubclass(cls, ValueError), cls
    assert issubclass(TrainingDiverged, RtsnnRuntimeError) and issubclass(TrainingDiverged, RuntimeError)
    assert issubclass(MissingExtraError, RtsnnImportError) and issubclass(MissingExtraError, ImportError)
    for cls in (RtsnnValueError, RtsnnRuntimeError, RtsnnImportError, SessionFailed):
        assert issubclass(cls, RtsnnError)
    with pytest.raises(RtsnnError, match="model file"):
        raise ModelFileError("model file x.npz not found")
    assert RtsnnError.exit_status == 2 and ModelFileError("m").exit_status == 2 and SessionFailed.exit_status == 1


# ------------------------------------------------------------------ messages and exit statuses of main()
def test_expected_unexpected_and_debug(tmp_path, capsys, monkeypatch):
    import rtsnn.cli as cli

    monkeypatch.delenv("RTSNN_TRACEBACK", raising=False)
    argv = ["model", "info", str(tmp_path / "none.npz")]
    rc, out, err = _call(capsys, argv)
    assert rc == 2 and err == f"rtsnn: error: model file {tmp_path / 'none.npz'} not found\n" and out == ""
    rc, out, err = _call(capsys, ["--debug"] + argv)  # the traceback, then the same line
    assert rc == 2 and err.startswith("Traceback") and "ModelFileError" in err
    assert err.strip().splitlines()[-1] == f"rtsnn: error: model file {tmp_path / 'none.npz'} not found"
    rc, _, err2 = _call(capsys, argv + ["--debug"])  # anywhere on the line
    assert rc == 2 and err2 == err
    monkeypatch.setenv("RTSNN_TRACEBACK", "1")
    rc, _, err3 = _call(capsys, argv)
    assert rc == 2 and err3 == err
    monkeypatch.delenv("RTSNN_TRACEBACK")

    def bug(args):
        return {}["no such key"] if args.file == "key" else [][1]

    monkeypatch.setattr(cli, "cmd_model_info", bug)
    rc, out, err = _call(capsys, ["model", "info", "list"])
    assert rc == 1 and err == ("rtsnn: internal error: IndexError: list index out of range "
                               "(run with --debug for the traceback)\n")
    rc, _, err = _call(capsys, ["model", "info", "key"])  # a KeyError with our message: expected, exit 2
    assert rc == 2 and err == "rtsnn: error: no such key\n"
    rc, _, err = _call(capsys, ["--debug", "model", "info", "list"])
    assert rc == 1 and "Traceback" in err and err.strip().splitlines()[-1] == \
        "rtsnn: internal error: IndexError: list index out of range"

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_model_info", interrupted)
    assert _call(capsys, ["model", "info", "x"])[:3] == (130, "", "rtsnn: interrupted\n")


def test_a_session_that_fails_while_running_exits_1(valid, tmp_path, capsys, monkeypatch):
    """A failure of the session's threads (not bad input) is ``session failed``, exit 1; a session
    that reports ``failed`` after its summary is the same; bad input met while running stays 2."""
    import rtsnn.runtime.session as session_mod

    cfg = valid["config.yaml"]  # parses; its source's file is missing, but the stub never opens it

    class Stub:
        failed = None

        def __init__(self, cfg, origin):
            pass

        def run(self, **kw):
            return Stub.result()

    monkeypatch.setattr(session_mod, "Session", Stub)

    def thread_died():
        raise RuntimeError("the session's I/O thread failed (OSError: disk full)")

    Stub.result = staticmethod(thread_died)
    rc, out, err = _call(capsys, ["run", cfg, "--quiet"])
    assert rc == 1 and out == "" and err == ("rtsnn: session failed: the session's I/O thread failed (OSError: disk "
                                             "full) (run with --debug for the traceback)\n")

    def kernel_bug():
        raise TypeError("bad operand")

    Stub.result = staticmethod(kernel_bug)
    rc, _, err = _call(capsys, ["run", cfg, "--quiet"])
    assert rc == 1 and err.startswith("rtsnn: session failed: TypeError: bad operand")

    def bad_stream():
        from rtsnn.stream.lsl_source import StreamMismatchError

        raise StreamMismatchError("stream 'eeg': 8 channels, the config says 96")

    Stub.result = staticmethod(bad_stream)  # at start, before the session ran: bad input, exit 2
    rc, _, err = _call(capsys, ["run", cfg, "--quiet"])
    assert rc == 2 and err == "rtsnn: error: stream 'eeg': 8 channels, the config says 96\n"

    def compute_thread_died():  # the session ran: Session.failed says why, exit 1
        Stub.failed = "the compute thread failed (ValueError: encoder input has 3 channels)"
        raise ValueError("encoder input has 3 channels")

    Stub.result = staticmethod(compute_thread_died)
    rc, _, err = _call(capsys, ["run", cfg, "--quiet"])
    assert rc == 1 and err == ("rtsnn: session failed: the compute thread failed (ValueError: encoder input has 3 "
                               "channels) (run with --debug for the traceback)\n")
    Stub.failed = None

    summary = {"folder": str(tmp_path / "s" / "x"), "ticks": 10, "deadline_misses": 0, "deadline_miss_rate": 0.0,
               "dropped_samples": 0, "e2e_latency_us": {"p50": 1, "p99": 2, "p999": 3, "max": 4},
               "stage_latency_us": {}, "r2": None}

    def ended_by_failure():
        Stub.failed = "source 'lsl' lost for 30 s (stream 'eeg')"
        return summary

    Stub.result = staticmethod(ended_by_failure)
    rc, out, err = _call(capsys, ["run", cfg, "--quiet", "--json"])
    assert rc == 1 and json.loads(out)["ticks"] == 10  # the summary is still printed
    assert err == "rtsnn: session failed: source 'lsl' lost for 30 s (stream 'eeg')\n"


def test_argument_errors_are_one_line(capsys):
    rc, out, err = _call(capsys, ["model", "convert", "a.npz", "b.nir", "--convention", "brian"])
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("rtsnn model convert: error: argument --convention: invalid choice: 'brian'")
    assert err.strip().endswith("(`rtsnn model convert --help`: usage)")


# ------------------------------------------------------------------ model files
@FUZZ
@given(data=st.data())
def test_model_info_and_simulate_on_damaged_model_files(valid, tmp_path, capsys, data):
    from rtsnn.snn import load_model

    src = data.draw(st.sampled_from(["model.npz", "graph.npz"]))
    content = data.draw(damaged(valid[src].read_bytes()))
    suffix = data.draw(st.sampled_from([".npz", ".npz", ".nir", ".yaml", ""]))
    path = _place(tmp_path, "m" + suffix, content)
    argv = ["model", "info", path]
    _outcome(*_call(capsys, argv), argv, [path], lambda: _loads(load_model, path))
    out = path.parent / "y.npy"
    argv = ["model", "simulate", path, "--input", valid["in.npy"], "--output", out]
    rc, o, e = _call(capsys, argv)
    _outcome(rc, o, e, argv, [path], lambda: _loads(load_model, path))
    assert (rc == 0) == out.is_file()


@FEW
@given(data=st.data())
def test_model_simulate_on_damaged_input_arrays(valid, tmp_path, capsys, data):
    content = data.draw(damaged(valid["in.npy"].read_bytes()))
    path = _place(tmp_path, data.draw(st.sampled_from(["in.npy", "in.npz", "in"])), content)

    def ok():
        x = np.load(path, allow_pickle=False)
        return isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1] == 4 and np.isfinite(x).all()

    argv = ["model", "simulate", valid["model.npz"], "--input", path, "--output", path.parent / "y.npy"]
    _outcome(*_call(capsys, argv), argv, [path], lambda: _loads(ok) and ok())


@FUZZ
@given(data=st.data())
def test_model_convert_npz_to_nir_on_damaged_model_files(valid, tmp_path, capsys, data):
    import_or_skip("nir", reason="the [nir] extra is not installed")
    from rtsnn.snn import load_model

    content = data.draw(damaged(valid["graph.npz"].read_bytes()))
    path = _place(tmp_path, "g.npz", content)
    dst = data.draw(st.sampled_from(["g.nir", "g.nir", "g.npz", "g.h5", "nodir/g.nir"]))
    argv = ["model", "convert", path, path.parent / dst, "--convention", data.draw(st.sampled_from(
        ["snntorch", "norse", "nir", "rockpool"]))]
    _outcome(*_call(capsys, argv), argv, [path, dst], lambda: dst == "g.nir" and _loads(load_model, path))


@FUZZ
@given(data=st.data())
def test_model_convert_nir_to_npz_on_damaged_nir_files(valid, tmp_path, capsys, data):
    import_or_skip("nir", reason="the [nir] extra is not installed")
    from rtsnn.interop.nir import load_nir

    content = data.draw(damaged(valid["graph.nir"].read_bytes()))
    path = _place(tmp_path, "g.nir", content)
    argv = ["model", "convert", path, path.parent / "g.npz"]
    _outcome(*_call(capsys, argv), argv, [path], lambda: _loads(load_nir, path))


# ------------------------------------------------------------------ configs
@FUZZ
@given(data=st.data())
def test_config_check_and_run_on_damaged_configs(valid, tmp_path, capsys, data):
    """The config's source replays a file that does not exist, so no session ever starts: `run`
    always fails (exit 2), naming the config or that file; `config check` may pass a config
    that is still valid."""
    from rtsnn.config import load_config

    content = data.draw(damaged(valid["config.yaml"].read_bytes()))
    path = _place(tmp_path, data.draw(st.sampled_from(["c.yaml", "c.yaml", "c.yml", "c.npz"])), content)
    argv = ["config", "check", path]
    _outcome(*_call(capsys, argv), argv, [path], lambda: _loads(load_config, path), several_lines=True)
    argv = ["run", path, "--quiet"]
    _failed_cleanly(*_call(capsys, argv), [path, "missing.xdf", "fuzz"], argv)


# ------------------------------------------------------------------ recordings and events
@FUZZ
@given(data=st.data())
def test_recording_info_and_replay_on_damaged_recordings(valid, tmp_path, capsys, data):
    """`recording info` may read a truncated XDF (repairs listed); `replay --streams nope` always
    ends before publishing anything: at the file, or at the stream it does not have."""
    from rtsnn.recording import open_recording

    content = data.draw(damaged(valid["rec.xdf"].read_bytes()))
    name = data.draw(st.sampled_from(["r.xdf", "r.xdf", "r.npz", "r.csv", "r.edf", "r.bdf", "r.mat", "r.txt"]))
    path = _place(tmp_path, name, content)
    argv = ["recording", "info", path]
    _outcome(*_call(capsys, argv), argv, [path], lambda: _loads(open_recording, path))
    argv = ["replay", path, "--streams", "nope"]
    _failed_cleanly(*_call(capsys, argv), [path, "nope"], argv)


@FEW
@given(content=st.one_of(st.binary(max_size=400), st.sampled_from([MISSING, FOLDER])),
       name=st.sampled_from(["e.npy", "e.raw", "e.dat", "e.aedat4"]))
def test_events_info_on_bad_files(tmp_path, capsys, content, name):
    path = _place(tmp_path, name, content)
    argv = ["events", "info", path]
    _failed_cleanly(*_call(capsys, argv), [path], argv)


# ------------------------------------------------------------------ plot
@FEW
@given(data=st.data())
def test_plot_on_damaged_histories_and_session_folders(valid, tmp_path, capsys, data):
    import_or_skip("matplotlib", reason="the [plot] extra is not installed")
    from rtsnn.viz.plot import load_history

    content = data.draw(damaged(valid["m.history.json"].read_bytes()))
    kind = data.draw(st.sampled_from(["history", "model", "session"]))
    if kind == "history":
        path = _place(tmp_path, "m.history.json", content)
        target = path
        names = [path]
    elif kind == "model":  # a model file with the damaged history beside it
        hist = _place(tmp_path, "m.history.json", content)
        target = hist.parent / "m.npz"
        shutil.copy(valid["model.npz"], target)
        names = [hist, target]
    else:  # a session folder whose summary.json / outputs.json is the damaged file
        target = tmp_path / f"s{next(_counter)}"
        target.mkdir()
        (target / "config.yaml").write_text("session: {}\n")
        _place(target, "summary.json", content).parent.rename(target / "sub")
        member = data.draw(st.sampled_from(["summary.json", "outputs.json"]))
        if content == FOLDER:
            (target / member).mkdir()
        elif content != MISSING:
            (target / member).write_bytes(content)
        else:
            (target / "outputs.f64").write_bytes(b"\0" * 24)
        names = [target]
    argv = ["plot", target, "--out", target.parent / "plots"]

    def ok():
        return kind != "session" and _loads(load_history, hist if kind == "model" else path)

    _outcome(*_call(capsys, argv), argv, names, ok)


# ------------------------------------------------------------------ numbers
def _positive_finite(text: str) -> bool:
    try:
        v = float(text)
    except ValueError:
        return False
    return math.isfinite(v) and v > 0


BAD_NUMBERS = st.one_of(st.sampled_from(["nan", "NaN", "-1", "0", "1e400", "-1e400", "inf", "-inf", "1e-400",
                                         "text", "", " ", "1,5", "0x10"]),
                        st.floats().map(repr).filter(lambda s: not _positive_finite(s)),
                        st.text(max_size=8).filter(lambda s: not _positive_finite(s)))


@FUZZ
@given(value=BAD_NUMBERS, which=st.sampled_from(["run", "demo", "convert", "replay", "publish", "plot"]))
def test_bad_numbers_on_numeric_flags(valid, tmp_path, capsys, value, which):
    """A number of seconds that is not finite and > 0 is refused before anything runs (a valid
    one here would start a live demo, a replay or a publisher: the values are all bad)."""
    import_or_skip("nir", reason="the [nir] extra is not installed")
    argv, flag = {
        "run": (["run", valid["config.yaml"], "--duration"], "--duration"),
        "demo": (["demo", "--duration"], "--duration"),
        "convert": (["model", "convert", valid["model.npz"], tmp_path / "m.nir", "--dt-s"], "--dt-s"),
        "replay": (["replay", valid["rec.xdf"], "--duration"], "--duration"),
        "publish": (["events", "publish", valid["in.npy"], "--chunk-ms"], "--chunk-ms"),
        "plot": (["plot", valid["m.history.json"], "--r2-window-s"], "--r2-window-s"),
    }[which]
    argv = argv[:-1] + [f"{flag}={value}"]  # `--flag=-1`: a value that starts with '-' is the flag's
    _failed_cleanly(*_call(capsys, argv), [flag], argv)
    assert not (tmp_path / "m.nir").exists()


# ------------------------------------------------------------------ model convert, both directions
def test_model_convert_a_two_layer_graph_both_ways(tmp_path, capsys):
    import_or_skip("nir", reason="the [nir] extra is not installed")
    from rtsnn.snn import load_model, save_model, simulate

    gm = _two_layer_graph()
    save_model(tmp_path / "g.npz", gm)
    for conv in ("snntorch", "norse", "nir", "rockpool"):
        rc, out, err = _call(capsys, ["model", "convert", tmp_path / "g.npz", tmp_path / f"g-{conv}.nir",
                                      "--convention", conv])
        assert rc == 0 and out == f"wrote {tmp_path / f'g-{conv}.nir'} (NIR, {conv} convention, lif)\n", err
        rc, out, err = _call(capsys, ["model", "convert", tmp_path / f"g-{conv}.nir", tmp_path / f"back-{conv}.npz"])
        assert rc == 0, err
        assert out.splitlines()[0] == (f"wrote {tmp_path / f'back-{conv}.npz'} (4 in, 8 neurons, 2 out; graph of "
                                       "7 nodes: 1 Input, 2 Linear, 2 LIF, 1 Affine, 1 Output)"), out
        back = load_model(tmp_path / f"back-{conv}.npz")
        xs = np.random.default_rng(0).poisson(0.8, (60, 4)).astype(np.float32)
        np.testing.assert_allclose(simulate(back, xs), simulate(gm, xs), rtol=1e-5, atol=1e-5)
    # --reset applies on import: every spiking node read as reset to v_reset (the graph subtracts)
    rc, out, err = _call(capsys, ["model", "convert", tmp_path / "g-nir.nir", tmp_path / "zero.npz",
                                  "--reset", "zero"])
    assert rc == 0, err
    zero = load_model(tmp_path / "zero.npz").graph.nodes
    assert [h for h, node in zero.items() if node.spiking] == ["h1", "h2"]
    assert all(np.array_equal(zero[h].reset, np.ones(zero[h].n, np.uint8)) for h in ("h1", "h2"))  # 1: zero
    assert all(not np.any(gm.graph.nodes[h].reset) for h in ("h1", "h2"))  # 0: subtract
    rc, out, err = _call(capsys, ["model", "convert", tmp_path / "g.npz", tmp_path / "x.nir", "--reset", "zero"])
    assert rc == 2 and err.startswith("rtsnn: error: --reset applies to .nir -> .npz") and out == ""
    rc, out, err = _call(capsys, ["model", "convert", tmp_path / "g.npz", tmp_path / "x.onnx"])
    assert rc == 2 and err == "rtsnn: error: model convert goes .npz -> .nir or .nir -> .npz; got 'g.npz' -> 'x.onnx'\n"


def test_run_names_the_config_of_an_unknown_plugin(tmp_path, capsys):
    """Found by the fuzz test above: a plugin lookup's error did not name the config file, then the key."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("source: {kind: y, options: {}}\nencoder: {kind: passthrough, options: {n_channels: 2}}\n"
                   "session: {monitor: false, out_dir: " + str(tmp_path / "s") + "}\n")
    rc, out, err = _call(capsys, ["run", cfg])
    assert rc == 2 and out == "" and err.startswith(f"rtsnn: config error: {cfg}: source.kind: no rtsnn.sources plugin named 'y'")
    assert len(err.strip().splitlines()) == 1


def test_an_npz_named_npy_and_an_empty_source_path_are_one_line(tmp_path, capsys):
    """Found by longer fuzz runs: events info on a zip named .npy raised BadZipFile, and a
    config whose replay source path was left empty ran into 'None: no such file' while config
    check called it ok."""
    npz = tmp_path / "e.npy"
    np.savez(npz.with_suffix(""), a=np.zeros(3))
    (tmp_path / "e.npz").rename(npz)
    argv = ["events", "info", str(npz)]
    _failed_cleanly(*_call(capsys, argv), [str(npz)], argv)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "source": {"kind": "xdf_file", "options": {"path": None, "n_channels": 2}},
        "encoder": {"kind": "passthrough", "options": {"n_channels": 2}}}))
    assert main(["config", "check", str(cfg)]) == 2
    out = capsys.readouterr()
    assert "source" in out.err and "path must name a recording file" in out.err and "Traceback" not in out.err
