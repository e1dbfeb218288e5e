"""The LSL event stream: publisher -> lsl_events source round trip, geometry checks, CLI."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid

import numpy as np
import pytest

from rtsnn.events import kernels as K
from rtsnn.events.format import EVENT_DTYPE
from rtsnn.events.lsl_source import LslEventSource
from rtsnn.events.publisher import EventPublisher, load_events
from rtsnn.stream.lsl_source import StreamMismatchError

pytestmark = pytest.mark.lsl


def _events(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = (1 << 31) - 150_000 + np.sort(rng.integers(0, 300_000, n))  # crosses the wire's 2**31 wrap
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 320, n), rng.integers(0, 240, n), rng.integers(0, 2, n)
    return ev


def _drain(src, want, timeout_s=10.0):
    rows = np.zeros((4096, 4), np.float32)
    ts = np.zeros(4096)
    got_rows, got_ts = [], []
    deadline = time.monotonic() + timeout_s
    total = 0
    while total < want and time.monotonic() < deadline:
        n = src.pull(rows, ts)
        if n:
            got_rows.append(rows[:n].copy())
            got_ts.append(ts[:n].copy())
            total += n
        else:
            time.sleep(0.001)
    return (np.concatenate(got_rows) if got_rows else np.zeros((0, 4), np.float32),
            np.concatenate(got_ts) if got_ts else np.zeros(0))


@pytest.mark.parametrize("speed", [math.inf, 2.0])
def test_round_trip_exact_rows_and_timing(speed):
    ev = _events()
    name = f"ev-{uuid.uuid4().hex[:8]}"
    pub = EventPublisher(ev, 320, 240, name=name, source="test", speed=speed, chunk_us=1000)
    pub.open()
    src = LslEventSource(name=name, width=320, height=240, max_backlog_s=None)
    src.open()
    try:
        assert pub.wait_for_consumer(5.0)
        summary = {}
        th = threading.Thread(target=lambda: summary.update(pub.run()))
        th.start()
        rows, ts = _drain(src, len(ev))
        th.join(10)
    finally:
        src.close()
        pub.close()
    assert summary["events_sent"] == len(ev) and len(rows) == len(ev)
    expect = np.stack([ev["x"], ev["y"], ev["p"], ev["t"] % K.T_MOD], axis=1).astype(np.float32)
    np.testing.assert_array_equal(rows, expect)
    assert src.geometry == (320, 240) and src.stats()["events"] == len(ev)
    if math.isfinite(speed):  # per-event LSL times keep the recording's spacing / speed
        rel = ts - ts[0]
        np.testing.assert_allclose(rel, (ev["t"] - ev["t"][0]) * 1e-6 / speed, atol=1e-6)


def test_geometry_mismatch_is_refused():
    name = f"ev-{uuid.uuid4().hex[:8]}"
    pub = EventPublisher(_events(100), 320, 240, name=name)
    pub.open()
    src = LslEventSource(name=name, width=640, height=480)
    try:
        with pytest.raises(StreamMismatchError, match="320x240 pixels, config expects 640x480"):
            src.open()
    finally:
        src.close()
        pub.close()


def test_publisher_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no events"):
        EventPublisher(np.zeros(0, EVENT_DTYPE), 10, 10)
    with pytest.raises(ValueError, match="speed"):
        EventPublisher(_events(10), 10, 10, speed=0)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="structured numpy array"):
        load_events(bad)
    with pytest.raises(ValueError, match="not a readable"):
        (tmp_path / "junk.npy").write_bytes(b"junk")
        load_events(tmp_path / "junk.npy")


def test_cli_publish_npy_json(tmp_path, capsys):
    from rtsnn.cli import main

    path = tmp_path / "ev.npy"
    np.save(path, _events(3000))
    rc = main(["events", "publish", str(path), "--speed", "max", "--json", "--name", f"ev-{uuid.uuid4().hex[:6]}"])
    assert rc == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["events_sent"] == 3000 and line["loops"] == 1
    assert main(["events", "publish", str(path), "--speed", "fast"]) == 2
    assert "--speed must be" in capsys.readouterr().err


def test_cli_publish_json_is_strict_and_paths_normalised(tmp_path, capsys, monkeypatch):
    """--speed max printed `"speed": Infinity` (not JSON); it is the word "max" now, as in
    `rtsnn replay`, and the file is printed as given but normalised (relative stays relative)."""
    from rtsnn.cli import main

    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "ev.npy", _events(500))
    monkeypatch.chdir(tmp_path / "sub")
    assert main(["events", "publish", "./../sub/../ev.npy", "--speed", "max", "--json",
                 "--name", f"ev-{uuid.uuid4().hex[:6]}"]) == 0
    text = capsys.readouterr().out.strip().splitlines()[-1]
    line = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c} in {text}"))
    assert line["speed"] == "max"
    assert line["file"] == "../ev.npy"
    assert line["wall_s"] >= 0 and line["events_sent"] == 500
    assert main(["events", "publish", str(tmp_path / "ev.npy"), "--speed", "4", "--json",
                 "--name", f"ev-{uuid.uuid4().hex[:6]}"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["speed"] == 4.0


def test_cli_publish_and_info_of_a_camera_file_through_the_recording_layer(capsys):
    """A Prophesee EVT3 file reaches the publisher through the recording layer (rtsnn-dvs's
    entry point, no import of the plugin in rtsnn.events): every event is sent, and
    ``rtsnn events info`` gives the file's format, geometry and count."""
    from pathlib import Path

    from rtsnn.cli import main
    from tests.conftest import skip_or_fail

    evt3 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "events" / "prophesee_evt3_sample.raw"
    if not evt3.is_file():
        skip_or_fail("../shared/data/events is absent (a user's clone); CI has it")
    loaded = load_events(evt3)
    assert (loaded.format, loaded.width, loaded.height, len(loaded.events)) == ("evt3", 1280, 720, 219596)
    assert np.all(np.diff(loaded.events["t"]) >= 0)
    rc = main(["events", "publish", str(evt3), "--speed", "max", "--json", "--name", f"ev-{uuid.uuid4().hex[:6]}"])
    assert rc == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["events_sent"] == 219596 and (line["width"], line["height"]) == (1280, 720)
    assert main(["events", "info", str(evt3)]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (info["format"], info["events"], info["width"], info["t_first_us"]) == ("evt3", 219596, 1280, 11718656)
