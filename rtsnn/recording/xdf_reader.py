"""A robust XDF reader (our own): loads what is readable, says what was lost.

The chunk layout is described in :mod:`rtsnn.recording.xdf_writer`. Real files come damaged
in a few typical ways; each is handled and reported as a *repair* (kind, stream, detail):

- ``truncated``: the file ends inside a chunk (a crash, a copy cut short). Complete samples
  inside a cut Samples chunk are recovered; the rest is reported in bytes and samples.
- ``corrupt_chunk``: a chunk whose length, tag or content is inconsistent. The reader skips
  to the next Boundary chunk (a 16-byte UUID written every few seconds) and goes on; the
  bytes skipped are reported.
- ``no_footer``: a stream without a StreamFooter (the recorder did not end cleanly).
- ``footer_count``: the footer announces more samples than were read.
- ``orphan_samples`` / ``orphan_offsets``: chunks for a stream id without a (readable) header.
- ``bad_header``: a StreamHeader whose XML or fields are unusable (its stream is skipped).
- ``missing_timestamp``: samples without their own timestamp get ``last + 1/srate`` (the XDF
  rule); a stream whose first sample has none starts at 0 and is reported.
- ``empty_stream``: a header with no samples.

Garbage (no magic, or no readable chunk at all) raises :class:`XdfError` with the reason.
``load_xdf(path)`` returns a :class:`Recording`; warnings are logged, and
``Recording.repairs`` holds them all for reports.
"""

from __future__ import annotations

import gzip
import logging
import math
import mmap
import os
import struct
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtsnn.errors import RtsnnValueError
from rtsnn.recording.xdf_writer import (BOUNDARY_UUID, FORMATS, MAGIC, TAG_BOUNDARY, TAG_CLOCK_OFFSET,
                                     TAG_FILE_HEADER, TAG_NAMES, TAG_SAMPLES, TAG_STREAM_FOOTER,
                                     TAG_STREAM_HEADER, StreamInfoData)

log = logging.getLogger(__name__)


class XdfError(RtsnnValueError):
    """The file is not XDF, or nothing in it is readable."""


class _Corrupt(Exception):
    """Internal: a chunk's content is inconsistent."""


@dataclass
class Repair:
    kind: str
    stream: str  # stream name, or '' for the file
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}{' [' + self.stream + ']' if self.stream else ''}: {self.detail}"


@dataclass
class StreamData:
    """One stream: ``time_stamps`` float64 (n,), ``time_series`` (n, channel_count) in the
    stream's dtype (object array of str for string streams); ``clock_times``/``clock_values``
    are the ClockOffset measurements (sender clock, s; offset to add, s)."""

    stream_id: int
    info: StreamInfoData
    time_stamps: np.ndarray
    time_series: np.ndarray
    clock_times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    clock_values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    footer: dict[str, Any] | None = None
    header_xml: str = ""

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def n_samples(self) -> int:
        return int(self.time_stamps.shape[0])

    @property
    def is_string(self) -> bool:
        return self.info.channel_format == "string"


@dataclass
class Recording:
    """Streams of one file (XDF, or converted from EDF / npz / CSV) plus every repair made."""

    path: str
    streams: list[StreamData]
    file_header: dict[str, str] = field(default_factory=dict)
    repairs: list[Repair] = field(default_factory=list)

    def repair(self, kind: str, stream: str, detail: str, warn: bool = True) -> None:
        r = Repair(kind, stream, detail)
        self.repairs.append(r)
        if warn:
            log.warning("%s: %s", self.path, r)

    def repair_counts(self) -> dict[str, int]:
        return dict(Counter(r.kind for r in self.repairs))

    def select(self, names: list[str] | None) -> list[StreamData]:
        """Streams whose name (or str(stream_id)) is in ``names``; all when None. Unknown names raise."""
        if not names:
            return list(self.streams)
        out = []
        for want in names:
            hits = [s for s in self.streams if s.name == want or str(s.stream_id) == want]
            if not hits:
                have = ", ".join(repr(s.name) for s in self.streams) or "(none)"
                raise ValueError(f"{self.path}: no stream named {want!r}; streams in the file: {have}")
            out += [s for s in hits if s not in out]
        return out


# ---------------------------------------------------------------------------- header parsing
def _text(el: ET.Element | None, tag: str, default: str = "") -> str:
    if el is None:
        return default
    child = el.find(tag)
    return default if child is None or child.text is None else child.text.strip()


def parse_stream_header(xml: bytes | str) -> StreamInfoData:
    """StreamInfoData from a StreamHeader's XML; ValueError naming the field when unusable."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise ValueError(f"stream header XML does not parse ({err})") from None
    name = _text(root, "name")
    fmt = _text(root, "channel_format")
    if fmt not in FORMATS:
        raise ValueError(f"stream {name!r}: channel_format {fmt!r} is not one of {tuple(FORMATS)}")
    try:
        n_ch = int(_text(root, "channel_count"))
    except ValueError:
        raise ValueError(f"stream {name!r}: channel_count {_text(root, 'channel_count')!r} is not an integer") from None
    try:
        srate = float(_text(root, "nominal_srate", "0") or 0)
    except ValueError:
        raise ValueError(f"stream {name!r}: nominal_srate {_text(root, 'nominal_srate')!r} is not a number") from None
    if not (math.isfinite(srate) and srate >= 0):
        srate = 0.0
    labels, units, types = [], [], []
    desc = root.find("desc")
    chans = desc.find("channels") if desc is not None else None
    if chans is not None:
        for ch in chans.findall("channel"):
            labels.append(_text(ch, "label"))
            units.append(_text(ch, "unit"))
            types.append(_text(ch, "type"))
    if len(labels) != n_ch:
        labels, units, types = [], [], []
    skip = {"name", "type", "channel_count", "channel_format", "source_id", "nominal_srate", "desc"}
    extra = {c.tag: (c.text or "").strip() for c in root if c.tag not in skip and len(c) == 0}
    return StreamInfoData(name=name, type=_text(root, "type"), channel_count=n_ch, nominal_srate_hz=srate,
                          channel_format=fmt, source_id=_text(root, "source_id"), channel_labels=labels,
                          channel_units=units if any(units) else [], channel_types=types if any(types) else [],
                          desc_xml=ET.tostring(desc, encoding="unicode") if desc is not None else "",
                          extra=extra)


def _parse_footer(xml: bytes) -> dict[str, Any]:
    root = ET.fromstring(xml)
    out: dict[str, Any] = {}
    for key in ("first_timestamp", "last_timestamp"):
        try:
            out[key] = float(_text(root, key))
        except ValueError:
            pass
    try:
        out["sample_count"] = int(_text(root, "sample_count"))
    except ValueError:
        pass
    return out


# ---------------------------------------------------------------------------- chunk parsing
def _varlen(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """(value, new_pos); _Corrupt on a bad width byte, EOFError when it runs past ``end``."""
    if pos >= end:
        raise EOFError
    k = buf[pos]
    if k == 1:
        fmt = "<B"
    elif k == 4:
        fmt = "<I"
    elif k == 8:
        fmt = "<Q"
    else:
        raise _Corrupt(f"variable-length integer with width byte {k} (expected 1, 4 or 8)")
    if pos + 1 + k > end:
        raise EOFError
    return struct.unpack_from(fmt, buf, pos + 1)[0], pos + 1 + k


class _StreamAcc:
    """Per-stream accumulation while reading."""

    def __init__(self, sid: int, info: StreamInfoData, header_xml: str):
        self.sid, self.info, self.header_xml = sid, info, header_xml
        self.ts_parts: list[np.ndarray] = []
        self.val_parts: list[np.ndarray] = []
        self.last_ts = math.nan
        self.clock: list[tuple[float, float]] = []
        self.footer: dict[str, Any] | None = None
        self.n = 0
        self.missing_first_ts = False
        self.filled_ts = 0
        # record dtype of a Samples chunk, by timestamp width: one per stream, not one per chunk
        # (every view into the file keeps its dtype alive until the arrays are gathered)
        self.rec_dtypes: dict[int, np.dtype] = {}

    def fill_missing(self, ts: np.ndarray, has: np.ndarray) -> np.ndarray:
        """Timestamps of samples written without one: previous + 1/srate (the XDF rule)."""
        step = 1.0 / self.info.nominal_srate_hz if self.info.nominal_srate_hz > 0 else 0.0
        out = ts.copy()
        last = self.last_ts
        if not has.all():
            self.filled_ts += int((~has).sum())
            for i in range(len(out)):
                if has[i]:
                    last = out[i]
                else:
                    if not math.isfinite(last):
                        self.missing_first_ts = True
                        last = -step
                    last = last + step
                    out[i] = last
        if len(out):
            self.last_ts = float(out[-1])
        return out


def _parse_samples(buf: memoryview, pos: int, end: int, acc: _StreamAcc, truncated: bool) -> tuple[int, int]:
    """Parse one Samples chunk body (after the stream id) into ``acc``.

    Returns (samples parsed, samples announced). A chunk not truncated must be consumed exactly
    (else _Corrupt, nothing added); a truncated one keeps its complete samples.
    """
    n, pos = _varlen(buf, pos, end)
    info = acc.info
    c = info.channel_count
    dt = info.dtype
    if dt is not None:
        isz = dt.itemsize * c
        body = end - pos
        for tsb, stride in ((8, 9 + isz), (0, 1 + isz)):
            fits = body // stride if truncated else (n if body == n * stride else -1)
            if fits < 0:
                continue
            fits = min(fits, n)
            if fits == 0:
                if not truncated and n == 0:
                    return 0, 0
                continue
            rec_dt = acc.rec_dtypes.get(tsb)
            if rec_dt is None:
                rec_dt = acc.rec_dtypes[tsb] = np.dtype([("tsb", "u1"), ("ts", "<f8"), ("v", dt, (c,))]) \
                    if tsb == 8 else np.dtype([("tsb", "u1"), ("v", dt, (c,))])
            rec = np.frombuffer(buf, dtype=rec_dt, count=fits, offset=pos)
            if not np.all(rec["tsb"] == tsb):
                continue
            # views into the file's buffer, no copy: the stream's arrays are made once, at the end
            if tsb == 8:
                ts = rec["ts"]
                acc.last_ts = float(ts[-1])
            else:
                ts = acc.fill_missing(np.zeros(fits), np.zeros(fits, bool))
            acc.ts_parts.append(ts)
            acc.val_parts.append(rec["v"].reshape(fits, c))
            acc.n += fits
            return fits, n
        # mixed timestamped / untimestamped samples: one by one
    ts_list: list[float] = []
    has_list: list[bool] = []
    vals: list[Any] = []
    p = pos
    try:
        for _ in range(n):
            if p >= end:
                raise EOFError
            tsb = buf[p]
            p += 1
            if tsb == 8:
                if p + 8 > end:
                    raise EOFError
                t = struct.unpack_from("<d", buf, p)[0]
                p += 8
                has = True
            elif tsb == 0:
                t, has = 0.0, False
            else:
                raise _Corrupt(f"sample timestamp width byte {tsb} (expected 0 or 8)")
            if dt is not None:
                k = dt.itemsize * c
                if p + k > end:
                    raise EOFError
                row = np.frombuffer(buf, dtype=dt, count=c, offset=p)
                p += k
            else:
                row = []
                for _ch in range(c):
                    ln, p = _varlen(buf, p, end)
                    if p + ln > end:
                        raise EOFError
                    row.append(bytes(buf[p:p + ln]).decode("utf-8", errors="replace"))
                    p += ln
            ts_list.append(t)
            has_list.append(has)
            vals.append(row)
    except EOFError:
        if not truncated:
            raise _Corrupt(f"Samples chunk announces {n} samples but its content ends after {len(vals)}") from None
    if not truncated and p != end:
        raise _Corrupt(f"Samples chunk has {end - p} bytes after its {n} announced samples")
    k = len(vals)
    if k:
        ts = acc.fill_missing(np.asarray(ts_list, np.float64), np.asarray(has_list, bool))
        acc.ts_parts.append(ts)
        if dt is not None:
            acc.val_parts.append(np.asarray(vals, dtype=dt.newbyteorder("=")).reshape(k, c))
        else:
            arr = np.empty((k, c), dtype=object)
            for i, row in enumerate(vals):
                arr[i, :] = row
            acc.val_parts.append(arr)
        acc.n += k
    return k, n


class _PageRelease:
    """Gives the touched pages of a memory-mapped file back to the page cache every
    ``every_bytes`` of progress (``madvise(MADV_DONTNEED)`` on the whole mapping: it stays
    valid, and a later read of a dropped page faults it back in from the page cache, same bytes).

    Why: the stream arrays are views into the mapping until they are gathered at the end, and
    every page a read touches counts in the process's resident size; without this the peak
    resident size of a read is the decoded arrays plus the whole file, with it the decoded arrays
    plus a few ``every_bytes`` (60 s of 96 float32 channels at 1 kHz: +4 MB over the 23.6 MB
    decoded at 1 MB, +14 MB at 4 MB, +24 MB without; the drops and refaults cost ~5 ms of
    that 40 ms read). A no-op for bytes in memory (a decompressed file)."""

    def __init__(self, data: bytes | mmap.mmap, every_bytes: int = 1 << 20):
        self._mm = data if isinstance(data, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED") else None
        self._every = every_bytes
        self._since = 0

    def advance(self, n_bytes: int) -> None:
        if self._mm is None:
            return
        self._since += n_bytes
        if self._since >= self._every:
            self._mm.madvise(mmap.MADV_DONTNEED)
            self._since = 0


def _gather(parts: list[np.ndarray], dtype: np.dtype | type, release: _PageRelease) -> np.ndarray:
    """``parts`` (views into the file, or small arrays) stacked along axis 0 into one new array of
    ``dtype``, part by part, so that ``release`` can drop the file's pages behind the copy (what
    ``np.concatenate(parts).astype(dtype)`` gives, without holding every page at once)."""
    out = np.empty((sum(len(q) for q in parts),) + parts[0].shape[1:], dtype=dtype)
    i = 0
    for q in parts:
        out[i:i + len(q)] = q
        i += len(q)
        # the file span the copy touched: rows are strided through the chunk's records
        release.advance(max(abs(q.strides[0]) * len(q), mmap.PAGESIZE))
    return out


def _find_boundary(data: bytes, start: int) -> int:
    """Offset just after the next boundary UUID at or after ``start`` (-1 when none)."""
    i = data.find(BOUNDARY_UUID, start)
    return -1 if i < 0 else i + len(BOUNDARY_UUID)


def read_bytes(path: str | Path) -> bytes | mmap.mmap:
    """The file's bytes: memory-mapped when uncompressed (its pages stay the page cache's, so
    a read costs the heap only the decoded arrays), decompressed into memory otherwise."""
    p = Path(path)
    if p.suffix == ".xdfz" or p.name.endswith(".xdf.gz"):
        with gzip.open(p, "rb") as f:
            try:
                return f.read()
            except (EOFError, OSError) as err:  # truncated gzip: what decompressed so far is lost too
                raise XdfError(f"{p}: compressed XDF is damaged ({err}); decompress what you can with "
                               f"'zcat {p} > x.xdf' and load that") from None
    with open(p, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def load_xdf(path: str | Path, *, data: bytes | mmap.mmap | None = None) -> Recording:
    """Read every readable chunk; see the module docstring for the repairs reported."""
    path = str(path)
    mine = data is None
    if mine:
        data = read_bytes(path)
    rec = Recording(path=path, streams=[])
    if len(data) < 4 or data[:4] != MAGIC:
        raise XdfError(f"{path}: not an XDF file: it starts with {data[:4]!r}, expected {MAGIC!r}"
                       + (" (the file is empty)" if not data else ""))
    buf = memoryview(data)
    size = len(data)
    streams: dict[int, _StreamAcc] = {}
    bad_ids: dict[int, str] = {}
    orphan_samples: Counter = Counter()
    orphan_offsets: Counter = Counter()
    chunks_ok = 0
    skipped_bytes = 0
    pos = 4
    # only a mapping made here: a caller's copy-on-write map would lose its writes to MADV_DONTNEED
    release = _PageRelease(data if mine else b"")
    while pos < size:
        start = pos
        try:
            length, p = _varlen(buf, pos, size)
            if length < 2:
                raise _Corrupt(f"chunk length {length} (minimum is 2)")
            end = p + length
            if p + 2 > size:
                raise EOFError
            tag = struct.unpack_from("<H", buf, p)[0]
            body = p + 2
            if tag not in TAG_NAMES:
                raise _Corrupt(f"unknown chunk tag {tag}")
            if end > size:
                # a length pointing past the end: damage if a boundary follows, else a cut file
                if _find_boundary(data, body) > 0:
                    raise _Corrupt(f"{TAG_NAMES[tag]} chunk length {length} runs past the end of the file")
                lost_detail = ""
                if tag == TAG_SAMPLES and body + 4 <= size:
                    sid = struct.unpack_from("<I", buf, body)[0]
                    acc = streams.get(sid)
                    if acc is not None:
                        try:
                            got, announced = _parse_samples(buf, body + 4, size, acc, truncated=True)
                        except (EOFError, _Corrupt):
                            got, announced = 0, -1
                        what = f"{announced}" if announced >= 0 else "an unknown number of"
                        lost_detail = (f"; the cut Samples chunk of stream {acc.info.name!r} announced {what} "
                                       f"samples, {got} recovered")
                        if announced > got:
                            rec.repair("lost_samples", acc.info.name, f"{announced - got} samples lost in the "
                                                                      f"truncated last chunk", warn=False)
                rec.repair("truncated", "", f"file ends at byte {size} inside a {TAG_NAMES[tag]} chunk that "
                                            f"started at byte {start} and needs {end - size} more bytes"
                                            f"{lost_detail}")
                pos = size
                break
            content = buf[body:end]
            if tag == TAG_FILE_HEADER:
                try:
                    root = ET.fromstring(bytes(content))
                    rec.file_header = {c.tag: (c.text or "").strip() for c in root}
                except ET.ParseError as err:
                    rec.repair("bad_file_header", "", f"FileHeader XML does not parse ({err})")
            elif tag == TAG_BOUNDARY:
                if bytes(content) != BOUNDARY_UUID:
                    raise _Corrupt("Boundary chunk without the boundary UUID")
            else:
                if len(content) < 4:
                    raise _Corrupt(f"{TAG_NAMES[tag]} chunk too short for a stream id")
                sid = struct.unpack_from("<I", buf, body)[0]
                if tag == TAG_STREAM_HEADER:
                    xml = bytes(buf[body + 4:end])
                    if sid in streams:
                        rec.repair("duplicate_header", streams[sid].info.name,
                                   f"a second StreamHeader for stream id {sid} at byte {start} was ignored")
                    else:
                        try:
                            info = parse_stream_header(xml)
                        except ValueError as err:
                            bad_ids[sid] = str(err)
                            rec.repair("bad_header", f"id {sid}", f"{err}; this stream is skipped")
                        else:
                            streams[sid] = _StreamAcc(sid, info, xml.decode("utf-8", errors="replace"))
                elif tag == TAG_SAMPLES:
                    acc = streams.get(sid)
                    if acc is None:
                        _varlen(buf, body + 4, end)  # a garbage chunk usually fails here
                        orphan_samples[sid] += 1
                    else:
                        _parse_samples(buf, body + 4, end, acc, truncated=False)
                elif tag == TAG_CLOCK_OFFSET:
                    if len(content) != 20:
                        raise _Corrupt(f"ClockOffset chunk has {len(content)} bytes, expected 20")
                    t, v = struct.unpack_from("<dd", buf, body + 4)
                    acc = streams.get(sid)
                    if acc is None:
                        orphan_offsets[sid] += 1
                    elif math.isfinite(t) and math.isfinite(v):
                        acc.clock.append((t, v))
                    else:
                        rec.repair("bad_clock_offset", acc.info.name, f"non-finite clock offset ({t}, {v}) dropped")
                elif tag == TAG_STREAM_FOOTER:
                    acc = streams.get(sid)
                    if acc is not None:
                        try:
                            acc.footer = _parse_footer(bytes(buf[body + 4:end]))
                        except ET.ParseError as err:
                            rec.repair("bad_footer", acc.info.name, f"StreamFooter XML does not parse ({err})")
            chunks_ok += 1
            release.advance(end - pos)
            pos = end
        except EOFError:
            rec.repair("truncated", "", f"file ends at byte {size} inside a chunk header that started at "
                                        f"byte {start}")
            pos = size
            break
        except (_Corrupt, struct.error, ValueError) as err:
            nxt = _find_boundary(data, start + 1)
            if chunks_ok == 0 and nxt < 0:
                raise XdfError(f"{path}: no readable XDF chunk: at byte {start}: {err}") from None
            lost_to = size if nxt < 0 else nxt
            skipped_bytes += lost_to - start
            where = "the end of the file" if nxt < 0 else f"the next boundary at byte {nxt}"
            rec.repair("corrupt_chunk", "", f"byte {start}: {err}; skipped {lost_to - start} bytes to {where}")
            pos = lost_to
    if not streams and chunks_ok <= 1 and not bad_ids:
        if rec.repairs:
            raise XdfError(f"{path}: no stream header readable; " + "; ".join(str(r) for r in rec.repairs))
    for sid, k in orphan_samples.items():
        why = bad_ids.get(sid, "no StreamHeader for it")
        rec.repair("orphan_samples", f"id {sid}", f"{k} Samples chunks dropped ({why})")
    for sid, k in orphan_offsets.items():
        rec.repair("orphan_offsets", f"id {sid}", f"{k} ClockOffset chunks dropped (no readable header)")

    for sid, acc in streams.items():
        info = acc.info
        c = info.channel_count
        if acc.ts_parts:
            ts = _gather(acc.ts_parts, np.float64, release)
            vals = _gather(acc.val_parts, info.dtype.newbyteorder("=") if info.dtype is not None else object,
                           release)
            acc.ts_parts.clear()
            acc.val_parts.clear()
        else:
            ts = np.zeros(0, np.float64)
            vals = np.zeros((0, c), dtype=info.dtype.newbyteorder("=") if info.dtype is not None else object)
        if acc.missing_first_ts:
            rec.repair("missing_timestamp", info.name, "the first samples carry no timestamp; the stream starts at 0")
        if acc.footer is None:
            rec.repair("no_footer", info.name, "no StreamFooter (the recording did not end cleanly); "
                                                f"{len(ts)} samples read", warn=False)
        elif "sample_count" in acc.footer and acc.footer["sample_count"] > len(ts):
            rec.repair("footer_count", info.name, f"the footer announces {acc.footer['sample_count']} samples, "
                                                  f"{len(ts)} were readable "
                                                  f"({acc.footer['sample_count'] - len(ts)} lost)")
        if len(ts) == 0:
            rec.repair("empty_stream", info.name, "the stream has no samples")
        clock = np.asarray(acc.clock, np.float64).reshape(-1, 2)
        rec.streams.append(StreamData(sid, info, ts, vals, clock[:, 0].copy(), clock[:, 1].copy(), acc.footer,
                                      acc.header_xml))
    if not rec.streams and not bad_ids:
        if skipped_bytes or any(r.kind == "truncated" for r in rec.repairs):
            raise XdfError(f"{path}: no stream readable; " + "; ".join(str(r) for r in rec.repairs))
    no_footer = [s.name for s in rec.streams if s.footer is None]
    if no_footer:
        log.warning("%s: %d streams without footer (recording did not end cleanly): %s", path, len(no_footer),
                    ", ".join(no_footer))
    return rec
