"""``rtsnn control`` waits for the running session's answer: applied (exit 0), refused with the
learner's reason (exit 1), not sent because no such session runs (exit 2, the live ones
listed) or its process is gone (exit 2), no answer within ``--timeout`` (exit 3).

The sessions are real: a recording replayed in real time (``xdf_file``, looped) into a small
network, with an e-prop learner (takes pause, resume and rate) and a ridge readout (takes
none of them), each on its own thread of this process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from rtsnn.cli import main
from rtsnn.config import parse_config
from rtsnn.runtime import control
from rtsnn.runtime.session import Session
from rtsnn.recording.xdf_writer import write_xdf_stream

pytestmark = pytest.mark.skipif(not control.supported(), reason="abstract Unix sockets are Linux-only")

DT_S = 0.01


def _recordings(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    n = 1000  # 10 s at 100 Hz, looped
    inputs = write_xdf_stream(folder / "inputs.xdf", rng.poisson(0.3, (n, 4)).astype(np.float32), 1 / DT_S,
                              name="inputs")
    target = write_xdf_stream(folder / "target.xdf", rng.standard_normal((n, 2)).astype(np.float32), 1 / DT_S,
                              name="target")
    return inputs, target


def _config(name: str, out_dir: Path, recordings: tuple[Path, Path], learner: dict | None) -> dict:
    src = {"dt_s": DT_S, "pace": "realtime", "stamp": "local", "loop": True}
    cfg = {"session": {"name": name, "dt_s": DT_S, "duration_s": 120.0, "warmup_ticks": 0, "out_dir": str(out_dir),
                       "monitor": False},
           "source": {"kind": "xdf_file", "options": {**src, "path": str(recordings[0]), "n_channels": 4}},
           "teacher": {"kind": "xdf_file", "options": {**src, "path": str(recordings[1]), "n_channels": 2}},
           "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
           "model": {"random": {"n_rec": 16, "n_out": 2, "seed": 0}}}
    if learner is not None:
        cfg["learner"] = learner
    return cfg


class _Running:
    """A session on its own thread; ``stop()`` ends it and returns its summary."""

    def __init__(self, cfg: dict):
        self.session = Session(parse_config(cfg, "<test>"))
        self.out: dict = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.out["summary"] = self.session.run()
        except BaseException as err:  # reported by stop()
            self.out["error"] = err

    def wait_ready(self, name: str, out_dir: Path, timeout_s: float = 60.0) -> Path:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return control.find_session(name, out_dir)
            except ValueError:
                if "error" in self.out or time.monotonic() > deadline:
                    raise AssertionError(f"session {name} never opened its control socket: {self.out}") from None
                time.sleep(0.05)

    def stop(self) -> dict:
        self.session.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()
        if "error" in self.out:
            raise self.out["error"]
        return self.out["summary"]


def test_control_prints_applied_or_the_refusal_of_a_real_session(tmp_path, capsys):
    recs = _recordings(tmp_path)
    tag = uuid.uuid4().hex[:6]
    eprop_name, ridge_name = f"ctl-eprop-{tag}", f"ctl-ridge-{tag}"
    out_dir = tmp_path / "sessions"
    eprop = _Running(_config(eprop_name, out_dir, recs, {"kind": "eprop", "options": {"lr": 1e-3}}))
    ridge = _Running(_config(ridge_name, out_dir, recs, {"kind": "ridge_readout", "options": {"calibration_s": 60.0}}))
    try:
        eprop_folder = eprop.wait_ready(eprop_name, out_dir)
        ridge.wait_ready(ridge_name, out_dir)
        capsys.readouterr()

        def ctl(*argv: str, session: str = eprop_name) -> tuple[int, str, str]:
            rc = main(["control", *argv, "--session", session, "--out-dir", str(out_dir), "--timeout", "10"])
            cap = capsys.readouterr()
            return rc, cap.out, cap.err

        rc, out, err = ctl("pause")
        assert rc == 0 and out.startswith("applied: pause_learning") and eprop_name in out and err == "", (out, err)
        rc, out, err = ctl("rate", "0.002")
        assert rc == 0 and "applied: set_learning_rate 0.002" in out, (out, err)

        # the ridge readout takes none of the control commands: refused, with the reason
        rc, out, err = ctl("pause", session=ridge_name)
        assert rc == 1 and out == ""
        assert "refused: pause_learning" in err and "the learner (ridge_readout) does not take pause_learning" in err

        # a name no session has: the message names it and lists the live ones
        rc, out, err = ctl("resume", session="nobody")
        assert rc == 2 and err.count("\n") == 1
        assert "no running session named 'nobody'" in err and f"{eprop_name}, {ridge_name}" in err, err
        # bad values never leave this process
        rc, out, err = ctl("rate", "-1")
        assert rc == 2 and "finite number value > 0" in err
        rc, out, err = ctl("rate")
        assert rc == 2 and "needs the new learning rate" in err
    finally:
        eprop_summary = eprop.stop()
        ridge_summary = ridge.stop()
    learner = eprop_summary["learner"]
    assert learner["paused"] is True and learner["lr"] == pytest.approx(0.002)  # the session did apply them
    assert eprop_summary["control"]["replies"] == 2 and eprop_summary["control"]["replies_failed"] == 0
    assert ridge_summary["control"]["replies"] == 1
    assert "does not take pause_learning" in ridge_summary["control"]["last_refusal"]
    assert not (eprop_folder / control.CONTROL_FILE).exists()
    # once it ended, the session is reported as not running (no control.json left)
    rc = main(["control", "pause", "--session", eprop_name, "--out-dir", str(out_dir)])
    assert rc == 2 and "no running session named" in capsys.readouterr().err


def test_a_session_with_no_learner_refuses(tmp_path, capsys):
    name = f"ctl-none-{uuid.uuid4().hex[:6]}"
    run = _Running(_config(name, tmp_path / "sessions", _recordings(tmp_path), None))
    try:
        run.wait_ready(name, tmp_path / "sessions")
        capsys.readouterr()
        rc = main(["control", "resume", "--session", name, "--out-dir", str(tmp_path / "sessions"), "--timeout", "10"])
    finally:
        run.stop()
    err = capsys.readouterr().err
    assert rc == 1 and "refused: resume_learning" in err and "the session has no learner" in err


def _fake_session(out_dir: Path, name: str, pid: int) -> tuple[Path, str]:
    """A session folder whose control.json points at ``\\0rtsnn-control/<name>/<pid>``."""
    folder = out_dir / f"{name}-20250101T000000Z"
    folder.mkdir(parents=True)
    address = f"\0rtsnn-control/{name}/{pid}"
    (folder / control.CONTROL_FILE).write_text(json.dumps({"socket": "@" + address[1:], "pid": pid, "session": name}))
    return folder, address


def test_a_session_whose_process_died_is_reported_not_running(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    name = f"ghost-{uuid.uuid4().hex[:6]}"
    folder, _ = _fake_session(tmp_path, name, dead.pid)  # nothing bound at its address any more
    rc = main(["control", "pause", "--session", name, "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert f"session {name!r} is not running" in err and f"pid {dead.pid}" in err and "stale" in err, err
    # and it is not listed as live when another name is asked for
    rc = main(["control", "pause", "--session", "nobody", "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "no session is running there" in err and name not in err


def test_no_answer_within_the_timeout(tmp_path, capsys):
    name = f"mute-{uuid.uuid4().hex[:6]}"
    _, address = _fake_session(tmp_path, name, os.getpid())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as mute:  # bound, never answers
        mute.bind(address)
        rc = main(["control", "pause", "--session", name, "--out-dir", str(tmp_path), "--timeout", "0.3"])
        assert json.loads(mute.recv(65536))["cmd"] == "pause_learning"  # the message did arrive
    err = capsys.readouterr().err
    assert rc == 3 and f"no answer from session {name!r}" in err and "within 0.3 s" in err


def test_a_late_answer_to_another_request_is_not_taken_for_this_one(tmp_path, capsys):
    name = f"late-{uuid.uuid4().hex[:6]}"
    _, address = _fake_session(tmp_path, name, os.getpid())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as fake:
        fake.bind(address)
        fake.settimeout(10)

        def answer_twice() -> None:
            data, sender = fake.recvfrom(65536)
            rid = json.loads(data)["id"]
            fake.sendto(json.dumps({"ok": True, "cmd": "pause_learning", "id": "an-earlier-request"}).encode(), sender)
            fake.sendto(b"not json", sender)
            fake.sendto(json.dumps({"ok": False, "cmd": "pause_learning", "reason": "this one's answer",
                                    "id": rid}).encode(), sender)

        t = threading.Thread(target=answer_twice)
        t.start()
        rc = main(["control", "pause", "--session", name, "--out-dir", str(tmp_path), "--timeout", "10"])
        t.join(10)
    err = capsys.readouterr().err
    assert rc == 1 and "this one's answer" in err


def test_bad_timeout_is_refused_before_sending(tmp_path, capsys):
    rc = main(["control", "pause", "--session", "x", "--out-dir", str(tmp_path), "--timeout", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "--timeout must be a finite number of seconds > 0" in err
