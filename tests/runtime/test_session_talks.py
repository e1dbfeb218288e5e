"""`rtsnn run` / `rtsnn demo` talk: start lines (folder, every LSL stream), a status line every
5 s, --quiet, and SIGTERM ending a run as cleanly as Ctrl-C. Real processes, real LSL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import psutil
import pylsl
import pytest
import yaml

from rtsnn.cli import format_status_line
from rtsnn.config import parse_config

RTSNN = [sys.executable, "-m", "rtsnn.cli"]
STATUS_RE = re.compile(
    r"^\[\s*[\d.]+ s\] ticks (\d+)  misses (\d+) \([\d.]+ %\)  e2e p99 ([\d.]+) ms \((?:last 5 s|so far)\)  "
    r"R\^2 (-?[\d.]+ \(so far\)|- \(not calibrated yet\))  source: (\d+) samples, (\d+) repaired, (\d+) dropped, "
    r"(connected|gap|lost)$")


def _demo_dict() -> dict:
    return yaml.safe_load(resources.files("rtsnn").joinpath("configs/demo.yaml").read_text())


def _status_lines(stderr: str) -> list[re.Match]:
    return [m for m in map(STATUS_RE.match, stderr.splitlines()) if m]


@pytest.mark.lsl
def test_demo_json_names_folder_and_streams_on_stderr_and_prints_status(tmp_path):
    proc = subprocess.Popen([*RTSNN, "demo", "--duration", "9", "--out-dir", str(tmp_path / "x" / ".." / "out"),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-2000:]
    summary = json.loads(stdout)  # stdout is the one JSON line, nothing else
    assert stdout.count("\n") == 1
    folder = Path(summary["folder"])
    assert folder.parent == (tmp_path / "out") or folder.parent.resolve() == (tmp_path / "out").resolve()
    lines = stderr.splitlines()
    # the folder is printed normalised (no "x/..")
    assert f"session folder: {os.path.normpath(folder)}" in lines
    assert "/x/../" not in stderr
    prefix = f"rtsnn-demo-{proc.pid}"  # the synthetic user's streams carry the session's pid
    assert f"LSL in: {prefix}-spikes [source]; {prefix}-velocity [teacher]" in lines
    assert f"LSL out: {prefix}-decoded [sinks.0]; demo-monitor, demo-raster, demo-outputs [monitor]" in lines
    assert f"synthetic user (child process) publishes: {prefix}-spikes, {prefix}-velocity" in lines
    status = _status_lines(stderr)
    assert status, stderr[-3000:]
    ticks, misses, p99_ms, _r2, samples, repaired, dropped, health = status[0].groups()
    assert 0 < int(ticks) <= summary["ticks"] and int(misses) <= summary["deadline_misses"]
    assert float(p99_ms) > 0 and int(samples) > 0 and int(repaired) == 0 and int(dropped) == 0
    assert health == "connected"


@pytest.mark.lsl
def test_quiet_silences_start_and_status_lines(tmp_path):
    proc = subprocess.run([*RTSNN, "demo", "--duration", "7", "--out-dir", str(tmp_path), "--quiet"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "session folder:" not in proc.stderr and "LSL in" not in proc.stderr
    assert not _status_lines(proc.stderr) and "] ticks " not in proc.stderr
    # the summary still prints, on stdout
    assert "session folder:" in proc.stdout and "end-to-end latency us" in proc.stdout
    assert "stopped by" not in proc.stdout  # it ran to its duration


@pytest.mark.lsl
def test_sigterm_stops_like_ctrl_c(tmp_path):
    proc = subprocess.Popen([*RTSNN, "demo", "--duration", "60", "--out-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120  # guards against a hang; not a timing assert
        children: list[psutil.Process] = []
        while time.monotonic() < deadline and proc.poll() is None:
            started = list(tmp_path.glob("demo-*/config.yaml"))
            children = [c for c in psutil.Process(proc.pid).children()
                        if "rtsnn.stream.synthetic" in " ".join(c.cmdline())]
            if started and children:
                break
            time.sleep(0.2)
        assert children, "the synthetic user never started"
        time.sleep(1.0)  # let it tick for a while
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]
    folder = next(tmp_path.glob("demo-*"))
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["stopped_by"] == "SIGTERM"
    assert "stopped by SIGTERM" in stdout and f"ticks {summary['ticks']} " in stdout
    assert "Traceback" not in stderr
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, "synthetic user left running"


def test_session_lists_streams_by_role_before_open():
    from rtsnn.runtime.session import Session

    session = Session(parse_config(_demo_dict(), "<demo>"), "<demo>")
    streams = session.lsl_streams()
    by_role: dict[str, list[str]] = {}
    for st in streams:
        assert st["direction"] in ("in", "out")
        by_role.setdefault(st["role"], []).append(st["name"])
    p = session.synthetic_prefix
    assert by_role == {"synthetic_user": [f"{p}-spikes", f"{p}-velocity"], "source": [f"{p}-spikes"],
                       "teacher": [f"{p}-velocity"], "sinks.0": [f"{p}-decoded"],
                       "monitor": ["demo-monitor", "demo-raster", "demo-outputs"]}


@pytest.mark.lsl
def test_lsl_source_reports_the_stream_it_resolved():
    from rtsnn.stream.lsl_source import LslSource

    name = f"talks-test-{os.getpid()}"
    info = pylsl.StreamInfo(name, "EEG", 3, 100.0, "float32", f"{name}-sid")
    outlet = pylsl.StreamOutlet(info)
    src = LslSource(type="EEG", source_id=f"{name}-sid", n_channels=3, resolve_timeout_s=10.0)
    assert src.lsl_streams()[0]["name"] == ""  # asked for by type and source_id only
    try:
        src.open()
        st = src.lsl_streams()
        assert len(st) == 1
        assert st[0]["name"] == name and st[0]["type"] == "EEG" and st[0]["source_id"] == f"{name}-sid"
        assert st[0]["direction"] == "in" and st[0]["host"]
    finally:
        src.close()
        del outlet


def test_status_line_states():
    base = {"elapsed_s": 12.5, "ticks": 10000, "deadline_misses": 25, "e2e_p99_us": 1160.0, "r2": 0.8123,
            "e2e_p99_over_s": 5.0,
            "source": {"samples": 10010, "repaired": 2, "dropped": 0, "connected": True, "in_gap": False}}
    line = format_status_line(base)
    assert STATUS_RE.match(line)
    assert "misses 25 (0.25 %)" in line and "e2e p99 1.16 ms (last 5 s)" in line and "R^2 0.812 (so far)" in line
    assert line.endswith("source: 10010 samples, 2 repaired, 0 dropped, connected")
    gap = format_status_line({**base, "r2": None, "source": {**base["source"], "connected": False, "in_gap": True}})
    assert "R^2 - (not calibrated yet)" in gap and gap.endswith(", gap")
    assert "warming up" in format_status_line({**base, "ticks": 0})
    first = format_status_line({**base, "e2e_p99_over_s": None})  # no earlier snapshot: since timing began
    assert "e2e p99 1.16 ms (so far)" in first and STATUS_RE.match(first)
    # a file source has no connection state, but may have finished
    done = format_status_line({**base, "source": {"samples": 5, "repaired": 0, "dropped": 0, "finished": True}})
    assert done.endswith("source: 5 samples, 0 repaired, 0 dropped, finished")


def _max_pace_session(tmp_path, spike_recording):
    from rtsnn.config import parse_config
    from rtsnn.runtime.session import Session

    path, _ = spike_recording(300, 4)
    cfg = {"session": {"name": "stopped-by", "pace": "max", "out_dir": str(tmp_path / "s"), "monitor": False},
           "source": {"kind": "xdf_file", "options": {"path": str(path), "n_channels": 4}},
           "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
           "model": {"random": {"n_rec": 8}}}
    return Session(parse_config(cfg))


def test_stopped_by_names_only_a_stop_that_ended_the_run(tmp_path, spike_recording):
    """A stop() after the run reached its end (e.g. a late SIGTERM, or the notebook's stop())
    must not be reported as what ended it; one before the first tick is."""
    s = _max_pace_session(tmp_path, spike_recording)
    summary = s.run()
    assert summary["ticks"] == 300 and summary["stopped_by"] is None
    s.stop("SIGTERM")
    assert s.stopped_by is None and s.status()["stopped_by"] is None
    early = _max_pace_session(tmp_path, spike_recording)
    early.stop("SIGTERM")
    assert early.run()["stopped_by"] == "SIGTERM"


def test_start_up_backlog_drops_are_reported_apart_from_live_drops(tmp_path, spike_recording):
    """What the source dropped before timing started (stale start-up backlog: about 1 s of the
    demo's input on a new machine's first run, while numba compiles) is dropped_in_warmup;
    dropped_samples counts only what it dropped after."""
    s = _max_pace_session(tmp_path, spike_recording)
    inner = s.source

    class Dropping:
        n_channels = inner.n_channels
        pulls = 0

        def __getattr__(self, name):
            return getattr(inner, name)

        def pull(self, samples, timestamps):
            self.pulls += 1
            return inner.pull(samples, timestamps)

        def stats(self):
            return {**inner.stats(), "dropped_samples": 7 + 2 * self.pulls}

    s.source = Dropping()
    summary = s.run()
    assert summary["dropped_in_warmup"] == 7  # a max-pace run times from its first tick
    assert summary["dropped_samples"] == 2 * s.source.pulls > 0
    assert s.status()["source"]["dropped"] == summary["dropped_samples"]  # the status lines count alike
