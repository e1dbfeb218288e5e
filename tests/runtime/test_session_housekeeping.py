"""The session's housekeeping, probed as a careless user or an attacker would: a session name
that tries to leave ``out_dir``, other users reading the session folder (neural data), a start
that fails halfway, an ``out_dir`` that cannot be made, a stage that fails while running, a
loop slower than its tick, stage events for the recording, a NIR graph as the model.

Decisions (docs/session_folder.md): a bad ``session.name`` is refused (never repaired); a
start that fails before the first tick removes the folder it made; a run that fails later
keeps its folder with a ``FAILED`` file holding the reason."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pyxdf
import pytest
import yaml

from rtsnn.cli import main
from rtsnn.config import ConfigError, parse_config
from rtsnn.runtime.session import FAILED_FILE, Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learn" / "online"))
from graph_models import deep_graph  # noqa: E402


def _config(out_dir: Path, path: Path, **session) -> dict:
    """A max-pace replay of a 4-channel spike recording through a small random reservoir."""
    return {"session": {"name": "hk", "pace": "max", "out_dir": str(out_dir), "monitor": False, **session},
            "source": {"kind": "xdf_file", "options": {"path": str(path), "n_channels": 4}},
            "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
            "model": {"random": {"n_rec": 8, "n_out": 2}}}


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------- session.name

BAD_NAMES = [("../../x", "path separator"), ("a/b", "path separator"), ("..", "'..'"), ("", "empty"),
             ("/tmp/abs", "path separator"), ("a\x00b", "control character"), ("n" * 101, "101 characters"),
             ("a\\b", "path separator"), ("x..y", "'..'"), (".hidden", "starts with '.'"),
             ("line\nbreak", "control character")]


@pytest.mark.parametrize("name,why", BAD_NAMES)
def test_a_session_name_that_is_not_one_plain_folder_name_is_refused_at_build(tmp_path, spike_recording,
                                                                              name, why):
    path, _ = spike_recording(50, 4)
    out = tmp_path / "deep" / "out"
    with pytest.raises(ConfigError) as err:  # the config schema refuses it
        Session(parse_config(_config(out, path, name=name), "lab.yaml"), "lab.yaml")
    msg = str(err.value)
    assert msg.startswith("lab.yaml: session.name: ") and why in msg and "\n" not in msg, msg
    # and so does the session, for a config assembled in code without validation
    data = parse_config(_config(out, path, name="ok"), "lab.yaml")
    forged = data.model_copy(update={"session": data.session.model_copy(update={"name": name})})
    with pytest.raises(ConfigError) as err:
        Session(forged, "lab.yaml")
    msg = str(err.value)
    assert msg.startswith("lab.yaml: session.name: ") and why in msg and "\n" not in msg, msg
    assert _entries(tmp_path) == ["in.xdf"]  # refused before anything was made, inside out_dir or not


def test_a_traversing_session_name_through_the_cli_is_one_line_and_exit_2(tmp_path, spike_recording, capsys):
    path, _ = spike_recording(50, 4)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_config(tmp_path / "out", path, name="../../escaped")))
    assert main(["run", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "session.name" in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() and not list(tmp_path.parent.glob("escaped-*"))


def test_a_plain_name_with_dots_and_spaces_still_runs_inside_out_dir(tmp_path, spike_recording):
    path, _ = spike_recording(50, 4)
    s = Session(parse_config(_config(tmp_path / "out", path, name="rig 2.v1"), "<test>"))
    summary = s.run()
    assert Path(summary["folder"]).parent == tmp_path / "out"
    assert Path(summary["folder"]).name.startswith("rig 2.v1-")


# ---------------------------------------------------------------------------- permissions

def test_the_session_folder_is_0700_and_every_file_0600_whatever_the_umask(tmp_path, spike_recording):
    path, _ = spike_recording(300, 4)
    s = Session(parse_config(_config(tmp_path / "out", path, record=True), "<test>"))
    seen_at_start: dict[str, int] = {}

    def on_start(info):  # while running: the recording and control.json exist
        for p in Path(info["folder"]).iterdir():
            seen_at_start[p.name] = stat.S_IMODE(p.stat().st_mode)

    old = os.umask(0)  # the most permissive umask: files made with default modes would be 0666
    try:
        summary = s.run(on_start=on_start)
    finally:
        os.umask(old)
    folder = Path(summary["folder"])
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    for name in ("config.yaml", "outputs.json", "outputs.f64", "metrics.jsonl", "summary.json",
                 "latency_hist.npz", "recording.xdf"):
        assert modes.get(name) == 0o600, (name, oct(modes.get(name, 0)), modes)
    assert all(m == 0o600 for m in modes.values()), {k: oct(v) for k, v in modes.items()}
    assert "recording.xdf" in seen_at_start and "config.yaml" in seen_at_start
    assert all(m == 0o600 for m in seen_at_start.values()), {k: oct(v) for k, v in seen_at_start.items()}


# ---------------------------------------------------------------------------- failed starts

def test_a_model_that_does_not_fit_fails_before_any_folder_is_made(tmp_path, spike_recording):
    from rtsnn.snn import Model, save_model

    path, _ = spike_recording(50, 4)
    model = save_model(tmp_path / "m3.npz", Model.random(3, 8, 2, dt_s=1e-3, seed=0))
    cfg = _config(tmp_path / "out", path)
    cfg["model"] = {"path": str(model)}
    with pytest.raises(ConfigError, match="model has 3 inputs but the encoder produces 4"):
        Session(parse_config(cfg, "<test>"))
    assert not (tmp_path / "out").exists()


@pytest.mark.lsl
def test_a_source_that_cannot_resolve_leaves_no_session_folder(tmp_path):
    from rtsnn.stream.lsl_source import StreamNotFoundError

    cfg = {"session": {"name": "nores", "out_dir": str(tmp_path / "out"), "monitor": False, "duration_s": 1.0},
           "source": {"kind": "lsl", "options": {"name": "rtsnn-test-no-such-stream-9f3a", "n_channels": 4,
                                                 "resolve_timeout_s": 0.3}},
           "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
           "model": {"random": {"n_rec": 8, "n_out": 2}}}
    s = Session(parse_config(cfg, "<test>"))
    with pytest.raises(StreamNotFoundError):
        s.run()
    assert _entries(tmp_path / "out") == [] and s.folder is None


def test_an_exception_while_opening_removes_the_half_made_folder_and_its_recording(tmp_path, spike_recording):
    path, _ = spike_recording(50, 4)
    s = Session(parse_config(_config(tmp_path / "out", path, record=True), "<test>"))

    def broken_warm_up():
        raise RuntimeError("kernel failed to compile")

    s.backend.warm_up = broken_warm_up  # after the recording was opened in the folder
    with pytest.raises(RuntimeError, match="kernel failed to compile"):
        s.run()
    assert _entries(tmp_path / "out") == []


class _ExplodingEncoder:
    """Wraps the session's encoder: the ``at``-th encode raises (a stage bug mid-run)."""

    def __init__(self, inner, at: int):
        self.inner, self.at, self.calls = inner, at, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, samples, n, spikes_out):
        self.calls += 1
        if self.calls == self.at:
            raise RuntimeError("encoder exploded")
        self.inner.encode(samples, n, spikes_out)


def test_a_run_that_fails_after_it_started_keeps_its_folder_marked_failed(tmp_path, spike_recording):
    path, _ = spike_recording(500, 4)
    s = Session(parse_config(_config(tmp_path / "out", path), "<test>"))
    s.encoder = _ExplodingEncoder(s.encoder, at=100)
    with pytest.raises(RuntimeError, match="encoder exploded"):
        s.run()
    folder = s.folder
    assert folder is not None and folder.parent == tmp_path / "out"
    text = (folder / FAILED_FILE).read_text()
    assert "encoder exploded" in text and text.count("\n") == 1, text
    assert s.failed is not None and "encoder exploded" in s.failed
    assert stat.S_IMODE((folder / FAILED_FILE).stat().st_mode) == 0o600
    assert (folder / "outputs.f64").exists()  # what it decoded before failing is kept


# ---------------------------------------------------------------------------- out_dir

@pytest.mark.parametrize("layout", ["file_is_out_dir", "file_above_out_dir"])
def test_an_out_dir_that_cannot_be_made_is_one_line_exit_2(tmp_path, spike_recording, capsys, layout):
    path, _ = spike_recording(50, 4)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file in the way")
    out = blocker if layout == "file_is_out_dir" else blocker / "sessions"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_config(out, path)))
    assert main(["run", str(cfg), "--quiet"]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "session.out_dir" in err and str(blocker) in err and "is a file" in err, err
    assert cap.out == ""
    assert blocker.read_text() == "a file in the way"


# ---------------------------------------------------------------------------- wall time, budget

class _SlowEncoder:
    """Wraps the session's encoder: every encode takes ``sleep_s`` more (a model too heavy
    for its tick)."""

    def __init__(self, inner, sleep_s: float):
        self.inner, self.sleep_s = inner, sleep_s

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, samples, n, spikes_out):
        import time

        time.sleep(self.sleep_s)
        self.inner.encode(samples, n, spikes_out)


def test_duration_is_wall_time_for_a_loop_slower_than_its_tick_and_warm_up_warns(tmp_path, spike_recording,
                                                                                 caplog):
    path, _ = spike_recording(3000, 4)
    cfg = _config(tmp_path / "out", path, pace="realtime", duration_s=0.5, warmup_ticks=20, max_lag_ticks=3,
                  max_catchup_s=0.0)
    cfg["source"]["options"].update(pace="realtime", stamp="local")
    s = Session(parse_config(cfg, "<test>"))
    s.encoder = _SlowEncoder(s.encoder, 0.003)  # >= 3 ms of work per 1 ms tick
    caplog.set_level(logging.WARNING, logger="rtsnn.session")
    summary = s.run()
    # 500 tick slots of wall time: the slow loop ran at most a third of them, the rest skipped
    # (the old rule ran 500 ticks whatever they cost, 1.5 s and more)
    assert summary["ticks"] + summary["skipped_ticks"] >= 500, summary
    assert summary["ticks"] + summary["skipped_ticks"] <= 500 + 3 + 5 * (3 + 1), summary
    assert summary["ticks"] < 250 and summary["skipped_ticks"] > 250, summary
    assert summary["deadline_misses"] >= summary["ticks"] - 5, summary
    assert summary["stopped_by"] is None and summary["failed"] is None
    # the warm-up measured >= 3 ms per tick against an 800 us budget and a 1 ms tick
    w = summary["warmup_tick_us"]
    assert w["median"] >= 3000 and w["budget_us"] == 800 and w["dt_us"] == 1000 and w["n"] >= 20, w
    assert len(summary["warnings"]) == 1
    line = summary["warnings"][0]
    assert "session.budget_us 800 us" in line and "longer than the tick itself" in line and "\n" not in line
    assert any(r.getMessage() == line for r in caplog.records)
    assert json.loads((Path(summary["folder"]) / "summary.json").read_text())["warnings"] == [line]


def test_a_tick_within_budget_gives_no_warning(tmp_path, spike_recording):
    path, _ = spike_recording(3000, 4)
    cfg = _config(tmp_path / "out", path, pace="realtime", duration_s=0.3, warmup_ticks=50, max_catchup_s=0.0,
                  budget_us=1000.0)
    cfg["source"]["options"].update(pace="realtime", stamp="local")
    summary = Session(parse_config(cfg, "<test>")).run()
    w = summary["warmup_tick_us"]
    assert w is not None and 0 < w["median"] < 1000 and w["n"] >= 50, w
    assert summary["warnings"] == []


# ---------------------------------------------------------------------------- stage events

class _EventfulSource:
    """Wraps the session's source and notes two events (as an LSL source refusing an impostor
    stream does), handed over once through ``take_events``; counts calls by thread."""

    def __init__(self, inner):
        self.inner = inner
        self.pending = [("refused a stream with another identity: source_id 'evil'", 12.5),
                        ("second event", 13.0)]
        self.threads: set[str] = set()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def take_events(self):
        import threading

        self.threads.add(threading.current_thread().name)
        out, self.pending = self.pending, []
        return out


def test_stage_events_are_taken_on_the_io_thread_into_the_recording(tmp_path, spike_recording):
    path, _ = spike_recording(400, 4)
    s = Session(parse_config(_config(tmp_path / "out", path, record=True), "<test>"))
    s.source = src = _EventfulSource(s.source)
    summary = s.run()
    assert src.threads == {"rtsnn-io"}, src.threads  # never the compute thread
    assert summary["stage_events"] == 2
    streams, _ = pyxdf.load_xdf(summary["recording"]["path"], synchronize_clocks=False, dejitter_timestamps=False)
    ev = {st["info"]["name"][0]: st for st in streams}["hk-events"]
    assert [e[0] for e in ev["time_series"]] == ["refused a stream with another identity: source_id 'evil'",
                                                 "second event"]
    np.testing.assert_allclose(ev["time_stamps"], [12.5, 13.0])


# ---------------------------------------------------------------------------- a NIR graph

def test_a_two_layer_nir_graph_runs_as_the_session_model(tmp_path, spike_recording):
    from rtsnn.interop.nir import load_nir, save_nir
    from rtsnn.snn.graph import GraphModel
    from rtsnn.snn.graph_network import build_network

    from rtsnn.api import load_outputs

    gm = deep_graph(n_in=4, n0=8, n1=6, n_out=2, dt_s=1e-3, recurrent=True, trace=True, readout_scale=0.5)
    nir_path = tmp_path / "two_layer.nir"
    save_nir(gm, nir_path, convention="nir", dt_s=1e-3)
    model, _ = load_nir(nir_path)
    assert isinstance(model, GraphModel)  # two layers: not the single-layer Model
    path, xs = spike_recording(400, 4, spike_prob=0.3)
    cfg = _config(tmp_path / "out", path)
    cfg["model"] = {"path": str(nir_path)}
    summary = Session(parse_config(cfg, "<test>")).run()
    assert summary["ticks"] == 400 and summary["failed"] is None
    kinds = [n["kind"] for n in summary["model_graph"]]
    assert kinds.count("CubaLIF") == 1 and kinds.count("LIF") == 1 and "LI" in kinds, kinds
    # the session's outputs are the graph's, tick by tick (one input sample per 1 ms tick)
    net = build_network(model)
    want = np.zeros((len(xs), 2), np.float32)
    for k in range(len(xs)):
        net.step(xs[k].astype(np.float32))
        want[k] = net.readout()
    out = load_outputs(summary["folder"])
    got = np.stack([out[c] for c in out if c.startswith("y_")], axis=1)
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
