"""An incremental XDF 1.0 writer (our own; pyxdf and LabRecorder read what it writes).

File layout (all integers little-endian)::

    b"XDF:"                                    magic
    chunk*                                     until the end of the file

    chunk   = varlen(len) u16(tag) content     len counts the tag's 2 bytes plus the content
    varlen  = u8(k) uint_k(value)              k in {1, 4, 8}: the value's width in bytes

    tag 1 FileHeader    XML <info><version>1.0</version>...</info>
    tag 2 StreamHeader  u32(stream_id) XML <info> (name, type, channel_count, nominal_srate,
                        channel_format, source_id, ..., <desc> with channel labels and units)
    tag 3 Samples       u32(stream_id) varlen(n) sample*n
                        sample = u8(8) f64(timestamp) values | u8(0) values (then t = last + 1/srate)
                        values = c numbers in the channel format, or per channel varlen(len) bytes (string)
    tag 4 ClockOffset   u32(stream_id) f64(collection_time) f64(offset_value)
    tag 5 Boundary      the 16-byte boundary UUID (lets a reader resynchronise after damage)
    tag 6 StreamFooter  u32(stream_id) XML <info> first_timestamp, last_timestamp, sample_count,
                        clock_offsets

Crash safety: chunks are encoded into an in-memory buffer and handed to the OS in one
``os.write`` per ``flush()`` (plus ``fsync`` when asked), so a process killed at any point
leaves a file whose chunks are complete up to the last flush (a kill inside the write call
itself can leave one partial chunk at the end, which our reader recovers from and counts).
"""

from __future__ import annotations

import datetime as _dt
import os
import struct
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

MAGIC = b"XDF:"
TAG_FILE_HEADER = 1
TAG_STREAM_HEADER = 2
TAG_SAMPLES = 3
TAG_CLOCK_OFFSET = 4
TAG_BOUNDARY = 5
TAG_STREAM_FOOTER = 6
TAG_NAMES = {1: "FileHeader", 2: "StreamHeader", 3: "Samples", 4: "ClockOffset", 5: "Boundary",
             6: "StreamFooter"}
BOUNDARY_UUID = bytes([0x43, 0xA5, 0x46, 0xDC, 0xCB, 0xF5, 0x41, 0x0F,
                       0xB3, 0x0E, 0xD5, 0x46, 0x73, 0x83, 0xCB, 0xE4])

# XDF channel_format -> numpy little-endian dtype (None: string)
FORMATS: dict[str, str | None] = {"float32": "<f4", "double64": "<f8", "int8": "i1", "int16": "<i2",
                                  "int32": "<i4", "int64": "<i8", "string": None}


def encode_varlen(value: int) -> bytes:
    """XDF variable-length unsigned integer: one width byte (1, 4 or 8), then the value."""
    if value < 0:
        raise ValueError(f"varlen value must be >= 0, got {value}")
    if value < 256:
        return struct.pack("<BB", 1, value)
    if value < 2 ** 32:
        return struct.pack("<BI", 4, value)
    return struct.pack("<BQ", 8, value)


def encode_chunk(tag: int, content: bytes) -> bytes:
    return encode_varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _xml_bytes(root: ET.Element) -> bytes:
    return b'<?xml version="1.0"?>' + ET.tostring(root, encoding="utf-8")


def _sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


@dataclass
class StreamInfoData:
    """What a stream header says. ``desc_xml`` is the serialised ``<desc>`` element (with
    ``<channels><channel><label/><unit/><type/>``...); built from labels/units when empty."""

    name: str
    type: str = ""
    channel_count: int = 1
    nominal_srate_hz: float = 0.0
    channel_format: str = "float32"
    source_id: str = ""
    channel_labels: list[str] = field(default_factory=list)
    channel_units: list[str] = field(default_factory=list)
    channel_types: list[str] = field(default_factory=list)
    desc_xml: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # further <info> children (hostname, uid, ...)

    def __post_init__(self) -> None:
        if self.channel_format not in FORMATS:
            raise ValueError(f"stream {self.name!r}: channel_format must be one of {tuple(FORMATS)}, "
                             f"got {self.channel_format!r}")
        if int(self.channel_count) != self.channel_count or self.channel_count < 1:
            raise ValueError(f"stream {self.name!r}: channel_count must be a positive integer, "
                             f"got {self.channel_count!r}")
        self.channel_count = int(self.channel_count)
        if not self.nominal_srate_hz >= 0:
            raise ValueError(f"stream {self.name!r}: nominal_srate_hz must be >= 0 (0 = irregular), "
                             f"got {self.nominal_srate_hz!r}")
        for what, seq in (("channel_labels", self.channel_labels), ("channel_units", self.channel_units),
                          ("channel_types", self.channel_types)):
            if seq and len(seq) != self.channel_count:
                raise ValueError(f"stream {self.name!r}: {len(seq)} {what} for {self.channel_count} channels")

    @property
    def dtype(self) -> np.dtype | None:
        f = FORMATS[self.channel_format]
        return None if f is None else np.dtype(f)

    def desc_element(self) -> ET.Element:
        if self.desc_xml:
            return ET.fromstring(self.desc_xml)
        desc = ET.Element("desc")
        if self.channel_labels or self.channel_units or self.channel_types:
            chans = _sub(desc, "channels")
            for i in range(self.channel_count):
                ch = _sub(chans, "channel")
                _sub(ch, "label", self.channel_labels[i] if self.channel_labels else f"ch{i}")
                if self.channel_units:
                    _sub(ch, "unit", self.channel_units[i])
                if self.channel_types:
                    _sub(ch, "type", self.channel_types[i])
        return desc

    def header_xml(self) -> bytes:
        info = ET.Element("info")
        _sub(info, "name", self.name)
        _sub(info, "type", self.type)
        _sub(info, "channel_count", self.channel_count)
        _sub(info, "channel_format", self.channel_format)
        _sub(info, "source_id", self.source_id)
        _sub(info, "nominal_srate", repr(float(self.nominal_srate_hz)))
        for k, v in self.extra.items():
            if k not in ("name", "type", "channel_count", "channel_format", "source_id", "nominal_srate", "desc"):
                _sub(info, k, v)
        info.append(self.desc_element())
        return _xml_bytes(info)


class XdfWriter:
    """Writes an XDF file chunk by chunk; nothing reaches the disk until ``flush``.

    Thread safety: one lock around the buffer, so streams may be written from several
    threads; ``flush`` writes the buffer with a single ``os.write``. ``fsync=True`` makes
    every flush durable against power loss (slower); without it a killed process still
    leaves everything flushed so far (the OS has it).
    """

    def __init__(self, path: str | Path, *, fsync: bool = False, file_info: dict[str, str] | None = None):
        self.path = Path(path)
        self.fsync = bool(fsync)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._streams: dict[int, StreamInfoData] = {}
        self._stats: dict[int, dict[str, Any]] = {}
        self.bytes_written = 0
        self.closed = False
        header = ET.Element("info")
        _sub(header, "version", "1.0")
        _sub(header, "datetime", _dt.datetime.now(_dt.timezone.utc).isoformat())
        _sub(header, "writer", "rtsnn xdf_writer")
        for k, v in (file_info or {}).items():
            _sub(header, k, v)
        self._buf += MAGIC + encode_chunk(TAG_FILE_HEADER, _xml_bytes(header))
        self.flush()

    # ------------------------------------------------------------------ chunks
    def add_stream(self, stream_id: int, info: StreamInfoData, header_xml: bytes | None = None) -> None:
        """Write a StreamHeader. ``header_xml`` overrides the XML built from ``info`` (e.g. an
        LSL inlet's full ``info.as_xml()``); ``info`` still defines how samples are encoded."""
        if not 0 <= stream_id < 2 ** 32:
            raise ValueError(f"stream_id must fit in uint32, got {stream_id}")
        with self._lock:
            if stream_id in self._streams:
                raise ValueError(f"stream_id {stream_id} already added (stream {self._streams[stream_id].name!r})")
            self._streams[stream_id] = info
            self._stats[stream_id] = {"first": None, "last": None, "count": 0, "offsets": []}
            xml = header_xml if header_xml is not None else info.header_xml()
            self._buf += encode_chunk(TAG_STREAM_HEADER, struct.pack("<I", stream_id) + xml)

    def _info(self, stream_id: int) -> StreamInfoData:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise ValueError(f"stream_id {stream_id} has no header yet; call add_stream first") from None

    def write_samples(self, stream_id: int, timestamps: Sequence[float] | np.ndarray,
                      values: np.ndarray | Sequence[Sequence[str]]) -> None:
        """Append one Samples chunk: ``timestamps`` (n,) float s, ``values`` (n, channel_count)."""
        info = self._info(stream_id)
        ts = np.ascontiguousarray(timestamps, dtype="<f8").reshape(-1)
        n = ts.shape[0]
        if n == 0:
            return
        c = info.channel_count
        if info.dtype is not None:
            arr = np.asarray(values)
            if arr.ndim == 1 and c == 1:
                arr = arr.reshape(-1, 1)
            if arr.shape != (n, c):
                raise ValueError(f"stream {info.name!r}: values have shape {arr.shape}, expected ({n}, {c})")
            rec = np.empty(n, dtype=np.dtype([("tsb", "u1"), ("ts", "<f8"), ("v", info.dtype, (c,))]))
            rec["tsb"] = 8
            rec["ts"] = ts
            rec["v"] = arr  # casts to the stream's format
            body = rec.tobytes()
        else:
            rows = list(values)
            if len(rows) != n:
                raise ValueError(f"stream {info.name!r}: {len(rows)} string samples for {n} timestamps")
            parts = []
            for t, row in zip(ts, rows):
                row = [row] if isinstance(row, str) else list(row)
                if len(row) != c:
                    raise ValueError(f"stream {info.name!r}: a string sample has {len(row)} values, expected {c}")
                parts.append(struct.pack("<Bd", 8, float(t)))
                for s in row:
                    b = str(s).encode("utf-8")
                    parts.append(encode_varlen(len(b)))
                    parts.append(b)
            body = b"".join(parts)
        content = struct.pack("<I", stream_id) + encode_varlen(n) + body
        with self._lock:
            self._buf += encode_chunk(TAG_SAMPLES, content)
            st = self._stats[stream_id]
            if st["first"] is None:
                st["first"] = float(ts[0])
            st["last"] = float(ts[-1])
            st["count"] += n

    def write_clock_offset(self, stream_id: int, collection_time_s: float, offset_s: float) -> None:
        """``collection_time_s`` on the stream's (sender's) clock; ``offset_s`` to add to its
        timestamps to get the recorder's clock (LabRecorder's convention)."""
        self._info(stream_id)
        with self._lock:
            self._buf += encode_chunk(TAG_CLOCK_OFFSET, struct.pack("<Idd", stream_id, collection_time_s, offset_s))
            self._stats[stream_id]["offsets"].append((float(collection_time_s), float(offset_s)))

    def write_boundary(self) -> None:
        with self._lock:
            self._buf += encode_chunk(TAG_BOUNDARY, BOUNDARY_UUID)

    def write_footer(self, stream_id: int) -> None:
        self._info(stream_id)
        with self._lock:
            st = self._stats[stream_id]
            root = ET.Element("info")
            _sub(root, "first_timestamp", repr(st["first"] if st["first"] is not None else 0.0))
            _sub(root, "last_timestamp", repr(st["last"] if st["last"] is not None else 0.0))
            _sub(root, "sample_count", st["count"])
            offs = _sub(root, "clock_offsets")
            for t, v in st["offsets"]:
                o = _sub(offs, "offset")
                _sub(o, "time", repr(t))
                _sub(o, "value", repr(v))
            self._buf += encode_chunk(TAG_STREAM_FOOTER, struct.pack("<I", stream_id) + _xml_bytes(root))

    def flush(self) -> int:
        """Hand every buffered chunk to the OS in one write; returns the bytes written."""
        with self._lock:
            if not self._buf:
                return 0
            data = bytes(self._buf)
            self._buf.clear()
            view = memoryview(data)
            while view:
                k = os.write(self._fd, view)
                view = view[k:]
            if self.fsync:
                os.fsync(self._fd)
            self.bytes_written += len(data)
            return len(data)

    def close(self, footers: bool = True) -> None:
        """Write a boundary and every stream's footer (unless ``footers`` is False), flush, close."""
        if self.closed:
            return
        if footers:
            self.write_boundary()
            for sid in list(self._streams):
                self.write_footer(sid)
        self.flush()
        os.close(self._fd)
        self.closed = True

    def stream_counts(self) -> dict[int, int]:
        return {sid: st["count"] for sid, st in self._stats.items()}

    def __enter__(self) -> "XdfWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_xdf_stream(path: str | Path, data: np.ndarray, srate_hz: float, *, name: str, type: str = "",
                     source_id: str | None = None, t0_s: float = 0.0, channel_format: str = "float32",
                     channel_labels: Sequence[str] | None = None) -> Path:
    """Write an XDF file holding one regularly sampled stream and return its path.

    ``data`` is (n, channels) (a 1-D array is one channel); sample ``k`` is stamped
    ``t0_s + k * (1 / srate_hz)``. ``source_id`` defaults to ``name``. For several streams,
    irregular timestamps or clock offsets use :class:`XdfWriter` directly.
    """
    if not (srate_hz > 0 and np.isfinite(srate_hz)):
        raise ValueError(f"stream {name!r}: srate_hz must be a finite number > 0, got {srate_hz!r}")
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"stream {name!r}: data must be (samples, channels), got shape {arr.shape}")
    info = StreamInfoData(name, type, arr.shape[1], float(srate_hz), channel_format,
                          name if source_id is None else source_id,
                          channel_labels=list(channel_labels) if channel_labels is not None else [])
    with XdfWriter(path) as w:
        w.add_stream(1, info)
        w.write_samples(1, t0_s + np.arange(arr.shape[0]) * (1.0 / srate_hz), arr)
    return w.path
