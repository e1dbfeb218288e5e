"""Decoded outputs as an LSL outlet (a session Sink).

``emit`` copies the values into a buffer the sink owns and pushes it with one ctypes call
(``lsl_push_sample_ftp``): no allocation, and no blocking (liblsl's default transport
queues the sample and sends it from its own thread).

``emit`` does not validate its input, to stay cheap per tick: the channel count is fixed
in ``open`` (from the labels), and ``emit`` expects a float array of exactly that length.
A wrong length raises numpy's broadcast error, except that a length-1 array or a scalar
would be broadcast to every channel.
"""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
import pylsl

from rtsnn.stream import lslraw

STAMPS = ("emit", "source")


def _rtsnn_version() -> str:
    try:
        from importlib.metadata import version

        return version("rtsnn")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"


class LslSink:
    """One float32 outlet; one sample per ``emit``.

    ``srate_hz`` is the nominal rate announced (0: irregular). ``stamp='emit'`` timestamps
    each sample with liblsl's clock at the push; ``stamp='source'`` with ``t_source`` (the
    LSL timestamp of the newest input sample; falls back to the push time when it is <= 0,
    e.g. before any input arrived). ``source_id`` defaults to ``rtsnn:<name>@<host>`` so a
    consumer's inlet can recover the stream when a session restarts.
    """

    def __init__(self, name: str = "rtsnn-decoded", type: str = "Control", source_id: str | None = None,
                 srate_hz: float = 0.0, stamp: str = "emit"):
        if stamp not in STAMPS:
            raise ValueError(f"stamp must be one of {STAMPS}, got {stamp!r}")
        if not srate_hz >= 0:
            raise ValueError(f"srate_hz must be >= 0 (0 = irregular), got {srate_hz!r}")
        if not name:
            raise ValueError("LslSink name must be a non-empty string")
        self.name, self.type = name, type
        self.source_id = source_id if source_id is not None else f"rtsnn:{name}@{socket.gethostname()}"
        self.srate_hz = float(srate_hz)
        self.stamp = stamp
        self._stamp_source = stamp == "source"
        self.channel_labels: list[str] = []
        self.outlet: pylsl.StreamOutlet | None = None
        self._pusher: lslraw.SamplePusher | None = None
        self.pushed = 0
        self.errors = 0

    def open(self, channel_labels: list[str], units: list[str]) -> None:
        if self.outlet is not None:
            raise RuntimeError("LslSink.open called twice")
        labels = [str(label) for label in channel_labels]
        if not labels:
            raise ValueError("LslSink.open needs at least one channel label, got none")
        if len(units) != len(labels):
            raise ValueError(f"LslSink.open: {len(labels)} channel labels but {len(units)} units")
        info = pylsl.StreamInfo(self.name, self.type, len(labels), self.srate_hz, "float32", self.source_id)
        desc = info.desc()
        channels = desc.append_child("channels")
        for label, unit in zip(labels, units):
            ch = channels.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", str(unit))
            ch.append_child_value("type", self.type)
        acq = desc.append_child("acquisition")
        acq.append_child_value("manufacturer", "rtsnn")
        acq.append_child_value("model", "decoder")
        meta = desc.append_child("rtsnn")
        meta.append_child_value("version", _rtsnn_version())
        meta.append_child_value("stamp", self.stamp)
        self.outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=10)
        self._pusher = lslraw.SamplePusher(self.outlet.obj, len(labels))
        self.channel_labels = labels

    def emit(self, values: np.ndarray, t_source: float) -> None:
        pusher = self._pusher
        np.copyto(pusher.sample, values, casting="unsafe")
        ts = t_source if (self._stamp_source and t_source > 0.0) else 0.0
        if pusher.push(ts) != 0:
            self.errors += 1
        else:
            self.pushed += 1

    def lsl_streams(self) -> list[dict[str, str]]:
        """The outlet this sink publishes (see :mod:`rtsnn.protocols`)."""
        return [{"name": self.name, "type": self.type, "direction": "out", "source_id": self.source_id}]

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "pushed": self.pushed, "errors": self.errors,
                "have_consumers": bool(self.outlet.have_consumers()) if self.outlet is not None else False}

    def close(self) -> None:
        self._pusher = None
        outlet, self.outlet = self.outlet, None
        if outlet is not None:
            del outlet
