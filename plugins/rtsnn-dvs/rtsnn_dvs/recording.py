"""Event-camera files as recordings of rtsnn's recording layer (entry-point group
``rtsnn.recording_formats``: ``evt2``, ``evt3``, ``dat``, ``aedat4``, ``npy``).

A file becomes one irregular stream named ``events``, type ``Events``, format int16, three
channels ``x, y, p`` (pixel, pixel, 1 ON / 0 OFF), one sample per event, its timestamp the
event's camera time in seconds (``t_us * 1e-6``, float64: exact to well under 1 us for
recordings of days). The stream header's ``extra`` holds ``width`` and ``height`` (pixels,
when the file gives them; for ``.npy`` the largest x / y + 1), ``event_format`` and
``decoder`` (the library that decoded it). :func:`events_of` turns the stream back into an
:data:`rtsnn.events.format.EVENT_DTYPE` array. Decoder repairs (non-zero counters) and
partial-load warnings become the recording's repairs.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from rtsnn.events.format import EVENT_DTYPE
from rtsnn.recording.xdf_reader import Recording, StreamData
from rtsnn.recording.xdf_writer import StreamInfoData

from .files import EventFileWarning, EventRecording, read_events

# the decoder read_events runs per format (decoder="auto"), as scripts/bench_event_decoders.py reports it
LAYER_DECODERS = {"evt2": "expelliarmus", "evt3": "own", "dat": "expelliarmus", "aedat4": "dv_processing"}
STREAM_NAME = "events"
_COUNTS = ("events", "packets")  # counters that are not repairs


def to_recording(er: EventRecording, caught: list[str]) -> Recording:
    """A :class:`Recording` of one ``events`` stream (see the module docstring)."""
    ev = er.events
    n = len(ev)
    series = np.empty((n, 3), np.int16)
    series[:, 0], series[:, 1], series[:, 2] = ev["x"], ev["y"], ev["p"]
    extra = {"event_format": er.format, "decoder": er.header.get("decoder", er.header.get("reader", "own"))}
    if er.width is not None and er.height is not None:
        extra.update(width=str(int(er.width)), height=str(int(er.height)))
    info = StreamInfoData(name=STREAM_NAME, type="Events", channel_count=3, nominal_srate_hz=0.0,
                          channel_format="int16", source_id=f"file:{Path(er.path).name}:{STREAM_NAME}",
                          channel_labels=["x", "y", "p"], channel_units=["pixel", "pixel", "bool"], extra=extra)
    rec = Recording(path=er.path, streams=[StreamData(0, info, ev["t"] * 1e-6, series)])
    for msg in caught:
        rec.repair("partial_load", STREAM_NAME, msg, warn=False)
    for kind, count in er.repairs.items():
        if count and kind not in _COUNTS:
            rec.repair(kind, STREAM_NAME, f"{count}", warn=False)
    return rec


def events_of(stream: StreamData) -> np.ndarray:
    """The :data:`EVENT_DTYPE` array of an ``Events`` stream made by :func:`to_recording`."""
    out = np.empty(stream.n_samples, EVENT_DTYPE)
    out["t"] = np.rint(stream.time_stamps * 1e6)
    out["x"], out["y"], out["p"] = stream.time_series[:, 0], stream.time_series[:, 1], stream.time_series[:, 2]
    return out


class _EventFormat:
    """One event-file format of :func:`rtsnn_dvs.files.read_events` as a RecordingFormat."""

    name = ""
    suffixes: tuple[str, ...] = ()

    def sniff(self, head: bytes) -> bool:
        return False

    def read(self, path: str) -> Recording:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", EventFileWarning)
            er = read_events(path, self.name)
        caught = [str(w.message) for w in seen if issubclass(w.category, EventFileWarning)]
        for w in seen:  # other warnings go on to the caller
            if not issubclass(w.category, EventFileWarning):
                warnings.warn(w.message, w.category, stacklevel=2)
        return to_recording(er, caught)


def _raw_header_says(head: bytes, pattern: bytes) -> bool:
    return head.startswith(b"%") and re.search(pattern, head, re.MULTILINE | re.IGNORECASE) is not None


class Evt2Format(_EventFormat):
    """Prophesee RAW, EVT 2.0 (``% evt 2.0`` or ``% format EVT2`` in the header)."""

    name = "evt2"
    suffixes = (".raw",)

    def sniff(self, head: bytes) -> bool:
        return _raw_header_says(head, rb"^% (evt 2|format evt2)")


class Evt3Format(_EventFormat):
    """Prophesee RAW, EVT 3.0 (``% evt 3.0`` or ``% format EVT3`` in the header)."""

    name = "evt3"
    suffixes = (".raw",)

    def sniff(self, head: bytes) -> bool:
        return _raw_header_says(head, rb"^% (evt 3|format evt3)")


class DatFormat(_EventFormat):
    """Prophesee DAT (a ``%`` header such as ``% Data file containing Event2D events``, then the
    event type and size bytes); told from a RAW file by the suffix or by a header with no
    ``evt`` / ``format`` line."""

    name = "dat"
    suffixes = (".dat",)

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"% ") and not _raw_header_says(head, rb"^% (evt|format) ")


class Aedat4Format(_EventFormat):
    """iniVation AEDAT 4.0 (``#!AER-DAT4.0``)."""

    name = "aedat4"
    suffixes = (".aedat4",)

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"#!AER-DAT4.0")


class NpyEventsFormat(_EventFormat):
    """A ``.npy`` structured array with fields t, x, y, p."""

    name = "npy"
    suffixes = (".npy",)

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"\x93NUMPY") and all(f"'{k}'".encode() in head[:512] for k in "txyp")
