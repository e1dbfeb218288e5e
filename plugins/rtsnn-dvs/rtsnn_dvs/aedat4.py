"""iniVation AEDAT 4.0 files: through dv-processing, or our own sequential packet reader.

File layout (iniVation's public AEDAT4 description; all little-endian)::

    "#!AER-DAT4.0\\r\\n"                      14-byte version line
    int32 n, IOHeader flatbuffer (n bytes)    compression (int32 enum: 0 none, 1/2 LZ4, 3/4 ZSTD),
                                              dataTablePosition (int64, -1 if absent), infoNode
                                              (XML string: one <node name="ID"> per stream with
                                              typeIdentifier, e.g. EVTS, and info/sizeX, sizeY)
    packets: int32 stream_id, int32 size, size bytes of the compressed payload
    [data table at dataTablePosition]

A payload decompresses to a size-prefixed flatbuffer (uint32 size, uint32 root offset, 4-byte
identifier "EVTS" for event packets) whose root table's first field is a vector of 16-byte
structs ``{int64 t (us); int16 x; int16 y; uint8 on; 3 pad}``.

``read_aedat4`` uses dv-processing (iniVation's library) when it is installed and the file is
intact. dv-processing refuses a file whose trailing data table is missing or damaged (any
truncated recording): then the sequential reader here returns every event before the damage,
with an :class:`~rtsnn_dvs.files.EventFileWarning` stating the bytes and packets lost.
"""

from __future__ import annotations

import struct
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from rtsnn.events.format import EVENT_DTYPE

from .files import EventFileError, EventFileWarning, EventRecording

MAGIC = b"#!AER-DAT4.0\r\n"
STRUCT_DTYPE = np.dtype({"names": ["t", "x", "y", "on"], "formats": ["<i8", "<i2", "<i2", "u1"],
                         "offsets": [0, 8, 10, 12], "itemsize": 16})
BACKENDS = ("auto", "dv", "native")


def _u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def _u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def _field(buf: bytes, table: int, index: int) -> int:
    """Absolute position of field ``index`` of the flatbuffer table at ``table``; 0 if absent."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vt_size = _u16(buf, vtable)
    if 4 + 2 * index >= vt_size:
        return 0
    off = _u16(buf, vtable + 4 + 2 * index)
    return table + off if off else 0


def parse_io_header(buf: bytes) -> tuple[int, int, str]:
    """(compression, data_table_position, info_xml) from an IOHeader flatbuffer."""
    root = _u32(buf, 0)
    comp_pos = _field(buf, root, 0)
    dtp_pos = _field(buf, root, 1)
    info_pos = _field(buf, root, 2)
    compression = struct.unpack_from("<i", buf, comp_pos)[0] if comp_pos else 0
    data_table = struct.unpack_from("<q", buf, dtp_pos)[0] if dtp_pos else -1
    info = ""
    if info_pos:
        s = info_pos + _u32(buf, info_pos)
        n = _u32(buf, s)
        info = buf[s + 4:s + 4 + n].decode("utf-8", "replace")
    return compression, data_table, info


def event_streams(info_xml: str) -> dict[int, tuple[int | None, int | None]]:
    """{stream_id: (sizeX, sizeY)} for every EVTS stream in the info node."""
    out: dict[int, tuple[int | None, int | None]] = {}
    root = ET.fromstring(info_xml)
    for node in root.iter("node"):
        attrs = {a.get("key"): a.text for a in node.findall("attr")}
        if attrs.get("typeIdentifier") != "EVTS" or not (node.get("name") or "").isdigit():
            continue
        info = node.find("node[@name='info']")
        ia = {a.get("key"): a.text for a in info.findall("attr")} if info is not None else {}
        sx, sy = ia.get("sizeX"), ia.get("sizeY")
        out[int(node.get("name"))] = (int(sx) if sx else None, int(sy) if sy else None)
    return out


def _decompress(payload: bytes, compression: int) -> bytes:
    if compression == 0:
        return payload
    if compression in (1, 2):
        import lz4.frame

        return lz4.frame.decompress(payload)
    if compression in (3, 4):
        try:
            import zstandard
        except ImportError:
            raise EventFileError("AEDAT4 file is ZSTD-compressed: pip install zstandard") from None
        return zstandard.ZstdDecompressor().decompress(payload, max_output_size=1 << 30)
    raise EventFileError(f"AEDAT4 compression type {compression} is unknown (expected 0-4)")


def decode_event_packet(buf: bytes) -> np.ndarray:
    """Events of one decompressed, size-prefixed EVTS flatbuffer."""
    if len(buf) < 12 or buf[8:12] != b"EVTS":
        raise ValueError("not an EVTS packet")
    body = buf[4:]
    root = _u32(body, 0)
    vec_field = _field(body, root, 0)
    if not vec_field:
        return np.zeros(0, EVENT_DTYPE)
    vec = vec_field + _u32(body, vec_field)
    n = _u32(body, vec)
    if vec + 4 + 16 * n > len(body):
        raise ValueError(f"event vector of {n} events runs past the packet end")
    raw = np.frombuffer(body, STRUCT_DTYPE, count=n, offset=vec + 4)
    out = np.empty(n, EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = raw["t"], raw["x"], raw["y"], raw["on"] != 0
    return out


def read_aedat4_native(path: str) -> EventRecording:
    """Sequential packet reader (see the module docstring); partial load with a warning."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise EventFileError(f"{path}: no such event file") from None
    if not data.startswith(MAGIC):
        raise EventFileError(f"{path}: does not start with {MAGIC!r}: not an AEDAT 4.0 file")
    if len(data) < 18:
        raise EventFileError(f"{path}: AEDAT4 file ends inside its header ({len(data)} bytes)")
    n_hdr = struct.unpack_from("<i", data, 14)[0]
    if n_hdr <= 0 or 18 + n_hdr > len(data):
        raise EventFileError(f"{path}: AEDAT4 IOHeader of {n_hdr} bytes does not fit the {len(data)}-byte file "
                             f"(truncated inside the header)")
    try:
        compression, data_table, info = parse_io_header(data[18:18 + n_hdr])
        streams = event_streams(info)
    except (struct.error, ET.ParseError, UnicodeDecodeError) as err:
        raise EventFileError(f"{path}: AEDAT4 IOHeader is corrupt ({err})") from None
    if not streams:
        raise EventFileError(f"{path}: AEDAT4 file has no event (EVTS) stream")
    sid = min(streams)
    end = data_table if 18 + n_hdr < data_table <= len(data) else len(data)
    pos = 18 + n_hdr
    parts = []
    rep = {"events": 0, "packets": 0, "bad_packets": 0, "bytes_not_read": 0, "partial_packet": 0}
    lost = []
    while pos < end:
        if pos + 8 > end:
            rep["bytes_not_read"] += end - pos
            rep["partial_packet"] = 1
            lost.append(f"{end - pos} bytes of a partial packet header at the end")
            break
        stream, size = struct.unpack_from("<ii", data, pos)
        if size < 0 or pos + 8 + size > end:
            rep["bytes_not_read"] += end - pos
            rep["partial_packet"] = 1
            lost.append(f"a packet of stream {stream} declared {size} bytes but only {end - pos - 8} remain "
                        f"(file truncated at byte {len(data)})")
            break
        payload = data[pos + 8:pos + 8 + size]
        pos += 8 + size
        if stream != sid:
            continue
        rep["packets"] += 1
        try:
            parts.append(decode_event_packet(_decompress(payload, compression)))
        except EventFileError:
            raise
        except Exception as err:  # noqa: BLE001 - a damaged packet: skip it, count it, go on
            rep["bad_packets"] += 1
            if rep["bad_packets"] == 1:
                lost.append(f"undecodable packet(s) skipped (first at byte {pos - size - 8}: {err})")
    events = np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)
    rep["events"] = len(events)
    if data_table > 0 and data_table > len(data):
        lost.append(f"the data table (at byte {data_table}) is missing: file truncated to {len(data)} bytes")
    if rep["bad_packets"] > 1:
        lost.append(f"{rep['bad_packets']} packets skipped in all")
    if lost:
        warnings.warn(f"{path}: partial AEDAT4 load, {len(events)} events kept; lost: " + "; ".join(lost),
                      EventFileWarning, stacklevel=2)
    w, h = streams[sid]
    return EventRecording(events, w, h, "aedat4", path, {"stream_id": str(sid)}, rep)


def read_aedat4_dv(path: str) -> EventRecording:
    """All events of the file's event stream through dv-processing (raises on damage)."""
    import dv_processing as dv

    try:
        rec = dv.io.MonoCameraRecording(path)
    except RuntimeError as err:
        raise EventFileError(f"{path}: dv-processing cannot open it: {str(err).splitlines()[-1]}") from None
    if not rec.isEventStreamAvailable():
        raise EventFileError(f"{path}: AEDAT4 file has no event stream")
    parts = []
    while True:
        batch = rec.getNextEventBatch()
        if batch is None:
            break
        a = batch.numpy()
        out = np.empty(len(a), EVENT_DTYPE)
        out["t"], out["x"], out["y"], out["p"] = a["timestamp"], a["x"], a["y"], a["polarity"] != 0
        parts.append(out)
    events = np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)
    w, h = rec.getEventResolution()
    return EventRecording(events, int(w), int(h), "aedat4", path, {"reader": "dv-processing"},
                          {"events": len(events)})


def read_aedat4(path: str, backend: str = "auto") -> EventRecording:
    """``backend``: 'dv' (dv-processing only), 'native' (the reader above), 'auto' (dv-processing
    when installed and the file is intact, else native with a partial-load warning)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    path = str(path)
    if backend == "native":
        return read_aedat4_native(path)
    try:
        import dv_processing  # noqa: F401
    except ImportError:
        if backend == "dv":
            raise EventFileError("dv-processing is not installed: pip install dv-processing") from None
        return read_aedat4_native(path)
    try:
        return read_aedat4_dv(path)
    except EventFileError as err:
        if backend == "dv" or not Path(path).is_file():
            raise
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EventFileWarning)
            rec = read_aedat4_native(path)
        for w in caught:  # re-issue the native reader's own loss report at the caller
            warnings.warn(w.message, w.category, stacklevel=2)
        if not caught:
            warnings.warn(f"{path}: partial AEDAT4 load: dv-processing refused the file ({err}); all "
                          f"{len(rec.events)} events of complete packets were read sequentially, the trailing "
                          f"index (data table) is damaged", EventFileWarning, stacklevel=2)
        rec.repairs["dv_processing_refused"] = 1
        return rec
