"""`rtsnn record --streams PATTERN`: a shell pattern stands for every stream whose name matches
(the demo's stream names carry its process id, so a user records them as 'rtsnn-demo-*')."""

from __future__ import annotations

import json
import threading
import time
import uuid

import numpy as np
import pylsl
import pytest

from rtsnn.stream.recorder import expand_stream_patterns


def _outlet(name: str) -> pylsl.StreamOutlet:
    return pylsl.StreamOutlet(pylsl.StreamInfo(name, "Test", 1, 100.0, "float32", name + "-sid"))


@pytest.mark.lsl
def test_a_pattern_expands_to_every_matching_stream_and_records_them(tmp_path, capsys):
    from rtsnn.cli import main
    from rtsnn.recording.xdf_reader import load_xdf

    tag = uuid.uuid4().hex[:8]
    names = [f"rtsnn-test-pat-{tag}-a", f"rtsnn-test-pat-{tag}-b"]
    other = _outlet(f"rtsnn-test-other-{tag}")
    outlets = [_outlet(n) for n in names]
    stop = threading.Event()

    def feed():
        while not stop.is_set():
            for o in outlets + [other]:
                o.push_sample([1.0])
            time.sleep(0.01)

    th = threading.Thread(target=feed)
    th.start()
    try:
        assert sorted(expand_stream_patterns([f"rtsnn-test-pat-{tag}-*"], 2.0)) == names
        # exact names pass through untouched, duplicates are dropped
        assert expand_stream_patterns([names[0], f"rtsnn-test-pat-{tag}-?"], 2.0) == names
        rc = main(["record", "--streams", f"rtsnn-test-pat-{tag}-*", "--out", str(tmp_path / "p.xdf"),
                   "--duration", "1.0", "--json"])
    finally:
        stop.set()
        th.join()
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted(summary["samples"]) == names and all(v > 0 for v in summary["samples"].values())
    rec = load_xdf(tmp_path / "p.xdf")
    assert sorted(s.info.name for s in rec.streams) == names
    assert all(len(s.time_series) > 0 and np.all(s.time_series == 1.0) for s in rec.streams)


def test_a_pattern_that_matches_nothing_is_a_clear_error(tmp_path, capsys):
    from rtsnn.cli import main

    pattern = f"rtsnn-test-none-{uuid.uuid4().hex[:8]}-*"
    rc = main(["record", "--streams", pattern, "--out", str(tmp_path / "x.xdf"), "--duration", "1",
               "--resolve-timeout", "0.3"])
    err = capsys.readouterr().err
    assert rc == 2 and f"no LSL stream matches {pattern!r}" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.xdf").exists()
