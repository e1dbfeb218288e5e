"""Stages that report a failure or events, through a whole session with the real services:
an MQTT sink whose login a real mosquitto (password file) refuses ends the run early with
``stopped_by = "failed: ..."``, ``Session.failed`` set, a ``FAILED`` file and ``rtsnn run``
exiting 1, unless the sink was marked optional; an LSL source that refuses an impostor stream
(same name, another identity) has the event written into the session's recording and counted."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid

import numpy as np
import pylsl
import pyxdf
import pytest
import yaml

import rtsnn
from rtsnn.cli import main
from rtsnn.runtime.session import FAILED_FILE


def _wait(cond, timeout_s: float) -> bool:
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def _mqtt_config(tmp_path, spike_recording, port: int, *, duration_s: float, optional: bool = False) -> dict:
    """A recording paced in real time (12 s of it) -> a small reservoir -> an MQTT sink."""
    path, _ = spike_recording(12000, 4)
    return {"session": {"name": "mqfail", "duration_s": duration_s, "out_dir": str(tmp_path / "out"),
                        "warmup_ticks": 20, "monitor": False},
            "source": {"kind": "xdf_file", "options": {"path": str(path), "n_channels": 4,
                                                       "pace": "realtime", "stamp": "local"}},
            "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
            "model": {"random": {"n_rec": 8, "n_out": 2}},
            "sinks": [{"kind": "mqtt", "options": {"port": port, "session": "mqfail", "optional": optional,
                                                   "backoff_initial_s": 0.05, "backoff_max_s": 0.05}}]}


@pytest.fixture
def refusing_broker(tmp_path, monkeypatch, broker_factory):
    """A mosquitto that knows only user ``u`` / ``right``; the session's credentials (from the
    environment, as in production) carry the wrong password."""
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "u", "right"], check=True, capture_output=True)
    b = broker_factory(password_file=str(pwfile))
    monkeypatch.setenv("RTSNN_MQTT_USERNAME", "u")
    monkeypatch.setenv("RTSNN_MQTT_PASSWORD", "wrong")
    return b


@pytest.mark.needs_mosquitto
def test_a_sink_whose_login_is_refused_ends_the_session_failed(tmp_path, spike_recording, refusing_broker):
    s = rtsnn.Session(_mqtt_config(tmp_path, spike_recording, refusing_broker.port, duration_s=10.0))
    summary = s.run()
    # ended by the refusal (a 50 ms backoff: well within the first seconds), not by its 10 s
    assert summary["ticks"] + summary["skipped_ticks"] < 9000, summary["ticks"]
    assert summary["stopped_by"].startswith("failed: sinks.0: "), summary["stopped_by"]
    assert "refused the login" in summary["stopped_by"]
    assert summary["failed"] == s.failed == summary["stopped_by"][len("failed: "):]
    assert summary["sinks"][0]["failed"] is not None and summary["sinks"][0]["connects"] == 0
    folder = s.folder
    assert (folder / FAILED_FILE).read_text().strip() == s.failed
    assert json.loads((folder / "summary.json").read_text())["failed"] == s.failed
    assert "wrong" not in (folder / FAILED_FILE).read_text()  # the password never reaches a file


@pytest.mark.needs_mosquitto
def test_rtsnn_run_exits_1_with_the_summary_when_a_sink_fails(tmp_path, spike_recording, refusing_broker, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_mqtt_config(tmp_path, spike_recording, refusing_broker.port, duration_s=10.0)))
    assert main(["run", str(cfg), "--json", "--quiet"]) == 1
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert summary["failed"].startswith("sinks.0: ") and summary["stopped_by"] == "failed: " + summary["failed"]
    assert "refused the login" in cap.err and "Traceback" not in cap.err


@pytest.mark.needs_mosquitto
def test_an_optional_sink_refused_does_not_fail_the_session(tmp_path, spike_recording, refusing_broker):
    s = rtsnn.Session(_mqtt_config(tmp_path, spike_recording, refusing_broker.port, duration_s=1.5,
                                   optional=True))
    summary = s.run()
    assert summary["sinks"][0]["failed"] is not None  # the broker did refuse it during the run
    assert summary["failed"] is None and s.failed is None and summary["stopped_by"] is None
    assert summary["ticks"] + summary["skipped_ticks"] >= 1500
    assert not (s.folder / FAILED_FILE).exists()


class _Pusher(threading.Thread):
    """Pushes one 2-channel sample every ~2 ms into whatever outlet ``self.outlet`` holds."""

    def __init__(self, outlet):
        super().__init__(daemon=True)
        self.outlet = outlet
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            o = self.outlet
            if o is not None:
                o.push_sample([1.0, 0.0])
            time.sleep(0.002)


@pytest.mark.lsl
def test_an_impostor_stream_refused_by_the_lsl_source_is_recorded_as_an_event(tmp_path):
    name = f"rtsnn-test-imp-{uuid.uuid4().hex[:10]}"
    real = _Pusher(pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 2, 500.0, "float32", name + "-sid")))
    real.start()
    impostor = None
    try:
        s = rtsnn.Session({
            "session": {"name": "imp", "out_dir": str(tmp_path / "out"), "record": True, "monitor": False,
                        "warmup_ticks": 20, "max_catchup_s": 0.5},
            "source": {"kind": "lsl", "options": {"name": name, "n_channels": 2, "loss_timeout_s": 0.3,
                                                  "resolve_timeout_s": 5.0}},
            "encoder": {"kind": "passthrough", "options": {"n_channels": 2}},
            "model": {"random": {"n_rec": 8, "n_out": 2}}}).start()
        src = s.runtime.source
        assert _wait(lambda: s.status()["ticks"] > 50, 20), s.status()
        real.outlet = None  # the pinned stream goes away ...
        assert _wait(lambda: not src.stats()["connected"], 10), src.stats()
        # ... and a stream with its name but another identity (another device, another host) appears
        impostor = _Pusher(pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 2, 500.0, "float32",
                                                               name + "-impostor")))
        impostor.start()
        assert _wait(lambda: src.stats()["impostors_refused"] >= 1, 10), src.stats()
        assert _wait(lambda: s.runtime.stage_events >= 1, 5)  # taken by the I/O thread
        summary = s.stop()
    finally:
        for p in (real, impostor):
            if p is not None:
                p.stop_ev.set()
                p.join()
    assert summary["source"]["impostors_refused"] == 1 and summary["stage_events"] == 1
    assert summary["failed"] is None and summary["stopped_by"] == "stop()"
    streams, _ = pyxdf.load_xdf(summary["recording"]["path"], synchronize_clocks=False, dejitter_timestamps=False)
    by = {st["info"]["name"][0]: st for st in streams}
    events = [e[0] for e in by["imp-events"]["time_series"]]
    assert len(events) == 1 and "another identity" in events[0] and name + "-impostor" in events[0], events
    assert np.isfinite(by["imp-events"]["time_stamps"]).all()
