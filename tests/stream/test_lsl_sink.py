"""LslSink through a real inlet: metadata, values, timestamps."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pylsl
import pytest

from rtsnn.protocols import Sink
from rtsnn.stream.lsl_sink import LslSink

pytestmark = pytest.mark.lsl


def _inlet(name):
    found = pylsl.resolve_bypred(f"name='{name}'", 1, 2.0)
    assert found, f"sink stream {name} not found"
    inlet = pylsl.StreamInlet(found[0])
    inlet.open_stream(2.0)
    return inlet


def _pull(inlet, n, timeout_s=2.0):
    xs, ts = [], []
    deadline = time.monotonic() + timeout_s
    while len(ts) < n and time.monotonic() < deadline:
        x, t = inlet.pull_chunk(0.05)
        xs += x
        ts += t
    return np.array(xs, np.float32), np.array(ts)


def test_metadata_values_and_emit_timestamps():
    name = f"rtsnn-test-sink-{uuid.uuid4().hex[:10]}"
    sink = LslSink(name=name, type="Control", srate_hz=0.0)
    assert isinstance(sink, Sink)
    sink.open(["vx", "vy"], ["a.u./s", "a.u./s"])
    try:
        inlet = _inlet(name)
        info = inlet.info(2.0)
        assert info.channel_count() == 2 and info.channel_format() == pylsl.cf_float32
        assert info.type() == "Control" and info.source_id().startswith(f"rtsnn:{name}")
        ch = info.desc().child("channels").child("channel")
        got = []
        while not ch.empty():
            got.append((ch.child_value("label"), ch.child_value("unit"), ch.child_value("type")))
            ch = ch.next_sibling("channel")
        assert got == [("vx", "a.u./s", "Control"), ("vy", "a.u./s", "Control")]
        assert info.desc().child("rtsnn").child_value("version") != ""
        values = np.zeros(2, np.float32)
        t_before = pylsl.local_clock()
        for i in range(10):
            values[:] = (i, -i)
            sink.emit(values, 123.0)  # stamp='emit': t_source is ignored
        x, t = _pull(inlet, 10)
        np.testing.assert_array_equal(x, np.stack([np.arange(10), -np.arange(10)], 1))
        assert np.all(t >= t_before) and np.all(t <= pylsl.local_clock())
        assert sink.stats()["pushed"] == 10
    finally:
        sink.close()


def test_source_stamp_carries_t_source():
    name = f"rtsnn-test-sink-{uuid.uuid4().hex[:10]}"
    sink = LslSink(name=name, stamp="source", srate_hz=1000.0)
    sink.open(["y"], ["V"])
    try:
        inlet = _inlet(name)
        now = pylsl.local_clock()
        sink.emit(np.array([1.5], np.float32), now - 0.010)
        sink.emit(np.array([2.5], np.float32), 0.0)  # no source sample yet: stamped now
        x, t = _pull(inlet, 2)
        np.testing.assert_array_equal(x[:, 0], [1.5, 2.5])
        assert abs(t[0] - (now - 0.010)) < 1e-6
        assert t[1] >= now
    finally:
        sink.close()


def test_bad_configuration_and_open_arguments():
    with pytest.raises(ValueError, match="stamp.*'wall'"):
        LslSink(stamp="wall")
    with pytest.raises(ValueError, match="srate_hz"):
        LslSink(srate_hz=-1)
    sink = LslSink(name=f"rtsnn-test-sink-{uuid.uuid4().hex[:10]}")
    with pytest.raises(ValueError, match="2 channel labels but 1 units"):
        sink.open(["a", "b"], ["V"])
    with pytest.raises(ValueError, match="at least one channel"):
        sink.open([], [])
