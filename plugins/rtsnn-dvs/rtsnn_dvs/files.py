"""Event files -> :data:`rtsnn.events.format.EVENT_DTYPE` arrays, with clear errors and counted repairs.

``read_events(path)`` picks the decoder from the file: Prophesee RAW (EVT 2.0 / EVT 3.0, told
apart by the ``% evt`` / ``% format`` header line), Prophesee DAT, iniVation AEDAT4 (through
dv-processing) or a ``.npy`` structured array with fields t, x, y, p.

Which decoder runs (``decoder="auto"``), from scripts/bench_event_decoders.py: EVT2 and DAT
through expelliarmus (13-15x faster than our numba decoders on the same file); EVT3 through
our decoder under the spec's time convention (expelliarmus decodes EVT3 only under its own
convention, and then it is used); files expelliarmus cannot decode (reserved word types, a
stream cut before its first time word, a wrapped time counter) go to our decoder, which
counts each repair. Our decoders also serve :class:`StreamDecoder` (bytes fed in pieces).

Damage handling (each case has a test):

* a file shorter than its header, with no header, or whose header names an unknown format:
  :class:`EventFileError` naming the file and what was expected;
* a body that is not whole words (a truncated copy): the partial trailing word is dropped,
  with an :class:`EventFileWarning` giving the byte count;
* words of reserved types (bit rot, a wrong format): skipped and counted; above
  ``max_unknown_fraction`` of all words the file is refused as not being that format;
* events before the first time word / row word (a stream cut mid-way): dropped, counted, warned;
* AEDAT4 packets that fail to decompress or parse (a truncated file): the events before the
  damage are returned with a warning saying how many bytes were not read.

Every reader returns an :class:`EventRecording` whose ``repairs`` dict holds the counters.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtsnn.events.format import EVENT_DTYPE, check_events

from . import kernels as K

CONVENTIONS = {"spec": 0, "expelliarmus": 1}
FORMATS = ("evt2", "evt3", "dat", "aedat4", "npy")
# Prophesee sensor generations by HAL plugin name, for RAW headers without a geometry line
_PLUGIN_GEOMETRY = (("gen41", (1280, 720)), ("imx636", (1280, 720)), ("gen31", (640, 480)),
                    ("gen3", (640, 480)), ("imx8", (640, 480)), ("genx320", (320, 320)))


class EventFileError(ValueError):
    """The file is not a readable event file of the expected format."""


class EventFileWarning(UserWarning):
    """The file was damaged; what was lost is in the message and in ``repairs``."""


@dataclass
class EventRecording:
    events: np.ndarray
    width: int | None
    height: int | None
    format: str
    path: str
    header: dict[str, str] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return float(self.events["t"][-1] - self.events["t"][0]) * 1e-6 if len(self.events) > 1 else 0.0


# ---------------------------------------------------------------- headers
def split_header(data: bytes | memoryview, path: str = "<bytes>") -> tuple[list[str], int]:
    """Prophesee ``%`` header lines and the byte offset of the body. The header is the run of
    lines starting with ``%`` (ending early after a ``% end`` line)."""
    lines: list[str] = []
    pos = 0
    n = len(data)
    while pos < n and data[pos] == 0x25:  # '%'
        nl = bytes(data[pos:pos + 4096]).find(b"\n")
        if nl < 0:
            raise EventFileError(f"{path}: header line at byte {pos} has no end (file truncated inside its header?)")
        line = bytes(data[pos + 1:pos + nl]).decode("latin-1").strip()
        pos += nl + 1
        lines.append(line)
        if line == "end":
            break
    return lines, pos


def _header_dict(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(" ")
        if key:
            out[key.lower()] = value.strip()
    return out


def _geometry(header: dict[str, str]) -> tuple[int | None, int | None]:
    fmt = header.get("format", "")
    w = re.search(r"width=(\d+)", fmt)
    h = re.search(r"height=(\d+)", fmt)
    if w and h:
        return int(w.group(1)), int(h.group(1))
    geo = re.fullmatch(r"(\d+)x(\d+)", header.get("geometry", ""))
    if geo:
        return int(geo.group(1)), int(geo.group(2))
    if header.get("width", "").isdigit() and header.get("height", "").isdigit():
        return int(header["width"]), int(header["height"])
    plugin = header.get("plugin_name", "").lower()
    for key, wh in _PLUGIN_GEOMETRY:
        if key in plugin:
            return wh
    return None, None


def raw_format_of(header: dict[str, str], path: str) -> str:
    evt = header.get("evt", "")
    fmt = header.get("format", "").upper()
    if evt.startswith("3") or fmt.startswith("EVT3"):
        return "evt3"
    if evt.startswith("2.0") or evt == "2" or fmt.startswith("EVT2;") or fmt == "EVT2":
        return "evt2"
    if evt or fmt:
        raise EventFileError(f"{path}: RAW header names encoding evt={evt!r} format={fmt!r}; "
                             f"supported: EVT 2.0 and EVT 3.0")
    raise EventFileError(f"{path}: RAW header has no '% evt' or '% format' line; cannot tell EVT2 from EVT3 "
                         f"(pass format='evt2' or 'evt3')")


# ---------------------------------------------------------------- streaming decoder
class StreamDecoder:
    """Decodes a Prophesee body (EVT2 / EVT3 / DAT) fed in arbitrary byte pieces.

    ``feed(data)`` returns the events completed by the bytes so far (an :data:`EVENT_DTYPE`
    array); a partial trailing word is kept for the next call. ``pending_bytes`` is what a
    truncated stream would lose; ``counters`` the repair counters (names in
    :data:`rtsnn_dvs.kernels.COUNTER_NAMES`).
    """

    WORD = {"evt2": 4, "evt3": 2, "dat": 8}

    def __init__(self, fmt: str, convention: str = "spec", block_events: int = 1 << 16):
        if fmt not in self.WORD:
            raise ValueError(f"StreamDecoder format must be one of {tuple(self.WORD)}; got {fmt!r}")
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {tuple(CONVENTIONS)}; got {convention!r}")
        self.fmt = fmt
        self.convention = convention
        self.state = K.new_state()
        self.counters = K.new_counters()
        self._rest = b""
        self._t = np.zeros(block_events + K.MAX_EVENTS_PER_WORD, np.int64)
        self._x = np.zeros_like(self._t, np.int16)
        self._y = np.zeros_like(self._t, np.int16)
        self._p = np.zeros_like(self._t, np.uint8)
        self.words_read = 0

    @property
    def pending_bytes(self) -> int:
        return len(self._rest)

    def decode_words(self, words: np.ndarray) -> np.ndarray:
        """Decode whole words (uint16 for EVT3, uint32 for EVT2 and DAT pairs)."""
        parts = []
        start = 0
        conv = CONVENTIONS[self.convention]
        while start < words.shape[0]:
            if self.fmt == "evt3":
                n, start = K.decode_evt3(words, start, self.state, self.counters, conv, self._t, self._x, self._y,
                                         self._p)
            elif self.fmt == "evt2":
                n, start = K.decode_evt2(words, start, self.state, self.counters, self._t, self._x, self._y, self._p)
            else:
                n, start = K.decode_dat(words, start, self.state, self.counters, self._t, self._x, self._y, self._p)
            out = np.empty(n, EVENT_DTYPE)
            out["t"], out["x"], out["y"], out["p"] = self._t[:n], self._x[:n], self._y[:n], self._p[:n]
            parts.append(out)
        self.words_read += words.shape[0]
        return parts[0] if len(parts) == 1 else (np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE))

    def feed(self, data: bytes | memoryview) -> np.ndarray:
        size = self.WORD[self.fmt]
        if self._rest:
            data = self._rest + bytes(data)
        whole = len(data) // size * size
        self._rest = bytes(data[whole:])
        dt = "<u2" if self.fmt == "evt3" else "<u4"
        words = np.frombuffer(data, dt, count=whole // np.dtype(dt).itemsize)
        return self.decode_words(words)

    def repairs(self) -> dict[str, int]:
        return {name: int(v) for name, v in zip(K.COUNTER_NAMES, self.counters)}


# ---------------------------------------------------------------- readers
def _warn(msg: str) -> None:
    warnings.warn(msg, EventFileWarning, stacklevel=3)


def _finish_prophesee(path: str, dec: StreamDecoder, n_words: int, trailing: int,
                      max_unknown_fraction: float) -> dict[str, int]:
    rep = dec.repairs()
    rep["trailing_bytes_dropped"] = trailing
    name = dec.fmt.upper()
    if n_words and rep["unknown_words"] > max_unknown_fraction * n_words:
        raise EventFileError(f"{path}: {rep['unknown_words']} of {n_words} words "
                             f"({100.0 * rep['unknown_words'] / n_words:.1f}%) have reserved {name} types: "
                             f"not an {name} stream, or corrupt")
    lost = []
    if trailing:
        lost.append(f"{trailing} trailing byte(s) of a partial word (file truncated?)")
    if rep["unknown_words"]:
        lost.append(f"{rep['unknown_words']} word(s) of reserved types skipped (corrupt data?)")
    if rep["dropped_no_time"]:
        lost.append(f"{rep['dropped_no_time']} event(s) before the first time word dropped")
    if rep["dropped_no_row"]:
        lost.append(f"{rep['dropped_no_row']} event(s) before the first row word dropped")
    if lost:
        _warn(f"{path}: partial {name} load, {rep['events']} events kept; lost: " + "; ".join(lost))
    return rep


DECODERS = ("auto", "own", "expelliarmus")


def _decoder_for(fmt: str, convention: str) -> str:
    """The decoder ``decoder="auto"`` runs: expelliarmus where it was measured faster and decodes
    the same events (EVT2, DAT, and EVT3 under its own time convention), ours for EVT3 under the
    spec's convention, which expelliarmus does not offer (scripts/bench_event_decoders.py)."""
    return "own" if fmt == "evt3" and convention == "spec" else "expelliarmus"


def _expelliarmus_events(path: str, fmt: str, n_words: int, body: bytes | memoryview) -> tuple[np.ndarray, dict[str, int]] | None:
    """Events of a whole file through expelliarmus, or None where our decoder must run instead:
    expelliarmus stops at reserved word types, gives events before the first time word time 0,
    and does not unwrap the time counter; those files are decoded by ours, which counts each."""
    try:
        from expelliarmus import Wizard
    except ImportError:
        raise EventFileError(f"{path}: {fmt.upper()} files are decoded with expelliarmus, which is not installed: "
                             f"pip install expelliarmus") from None
    if fmt == "evt2":
        head = np.frombuffer(body, "<u4", count=min(n_words, 1)) >> 28
        if n_words and head[0] != 0x8:  # not a stream that starts with a time word: cut mid-way?
            return None
    wiz = Wizard(encoding=fmt)
    wiz.set_file(path)
    arr = wiz.read()
    if arr is None or (fmt == "evt3" and len(arr) == 0 and n_words):
        return None
    ev = arr.view(EVENT_DTYPE) if arr.dtype == EVENT_DTYPE else _as_events(arr)
    steps = np.diff(ev["t"])
    wrap = {"evt2": 1 << 33, "dat": 1 << 31, "evt3": 1 << 23}[fmt]
    if steps.size and steps.min() < -wrap:
        return None
    rep = {name: 0 for name in K.COUNTER_NAMES}
    rep["events"] = len(ev)
    rep["ts_backwards"] = int(np.count_nonzero(steps < 0))
    return ev, rep


def _as_events(arr: np.ndarray) -> np.ndarray:
    out = np.empty(len(arr), EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = arr["t"], arr["x"], arr["y"], arr["p"]
    return out


def read_prophesee(path: str | os.PathLike, fmt: str | None = None, *, convention: str = "spec",
                   max_unknown_fraction: float = 0.01, decoder: str = "auto") -> EventRecording:
    """Read a Prophesee RAW (EVT2 / EVT3) or DAT file; ``fmt`` None: from the header/extension.

    ``decoder``: "own" (the numba decoders of :mod:`rtsnn_dvs.kernels`), "expelliarmus" (that
    library, with ours for files it cannot decode: see :func:`_expelliarmus_events`) or "auto"
    (:func:`_decoder_for`). The header, the repairs and the warnings are the same either way;
    ``header["decoder"]`` names the one that ran."""
    path = str(path)
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}; got {decoder!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {tuple(CONVENTIONS)}; got {convention!r}")
    data = _read_bytes(path)
    lines, body = split_header(data, path)
    header = _header_dict(lines)
    if fmt is None:
        fmt = "dat" if path.lower().endswith(".dat") else raw_format_of(header, path)
    if fmt not in ("evt2", "evt3", "dat"):
        raise EventFileError(f"{path}: read_prophesee handles evt2, evt3, dat; got format {fmt!r}")
    if not lines and fmt != "dat":
        raise EventFileError(f"{path}: no '%' header lines: not a Prophesee RAW file")
    if fmt == "dat":
        if len(data) < body + 2:
            raise EventFileError(f"{path}: DAT file ends inside its header ({len(data)} bytes)")
        ev_type, ev_size = data[body], data[body + 1]
        if ev_size != 8:
            raise EventFileError(f"{path}: DAT event size is {ev_size} bytes (type 0x{ev_type:02x}); only 8-byte "
                                 f"CD events are supported")
        body += 2
    size = StreamDecoder.WORD[fmt]
    n_words = (len(data) - body) // size
    if decoder == "auto":
        decoder = _decoder_for(fmt, convention)
    if decoder == "expelliarmus" and fmt == "evt3" and convention != "expelliarmus":
        raise ValueError(f"{path}: expelliarmus decodes EVT3 only in its own time convention; pass "
                         f"convention='expelliarmus' or decoder='own'")
    got = None
    if decoder == "expelliarmus":
        got = _expelliarmus_events(path, fmt, n_words, memoryview(data)[body:body + n_words * size])
    if got is not None:
        events, rep = got
        trailing = len(data) - body - n_words * size
        rep["trailing_bytes_dropped"] = trailing
        if trailing:
            _warn(f"{path}: partial {fmt.upper()} load, {len(events)} events kept; lost: {trailing} trailing "
                  f"byte(s) of a partial word (file truncated?)")
    else:
        decoder = "own"
        dec = StreamDecoder(fmt, convention, block_events=1 << 20)
        events = dec.feed(memoryview(data)[body:])
        rep = _finish_prophesee(path, dec, n_words, dec.pending_bytes, max_unknown_fraction)
    w, h = _geometry(header)
    return EventRecording(events, w, h, fmt, path, {**header, "decoder": decoder}, rep)


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise EventFileError(f"{path}: no such event file") from None
    except IsADirectoryError:
        raise EventFileError(f"{path}: is a directory, expected an event file") from None


def read_npy(path: str | os.PathLike) -> EventRecording:
    path = str(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise EventFileError(f"{path}: not a readable .npy event array ({err})") from None
    try:
        ev = check_events(arr, f"{path}: array")
    except ValueError as err:
        raise EventFileError(str(err)) from None
    w = int(ev["x"].max()) + 1 if len(ev) else None
    h = int(ev["y"].max()) + 1 if len(ev) else None
    return EventRecording(ev, w, h, "npy", path, {}, {"events": len(ev)})


def read_events(path: str | os.PathLike, fmt: str | None = None, *, convention: str = "spec",
                decoder: str = "auto") -> EventRecording:
    """Read any supported event file (see the module docstring); ``decoder`` as in
    :func:`read_prophesee` (RAW and DAT files only)."""
    path = str(path)
    if fmt is None:
        ext = Path(path).suffix.lower()
        fmt = {".aedat4": "aedat4", ".npy": "npy", ".dat": "dat"}.get(ext)
        if fmt is None and ext != ".raw":
            raise EventFileError(f"{path}: unknown event file extension {ext!r}; expected .raw (EVT2/EVT3), "
                                 f".dat, .aedat4 or .npy (or pass fmt=)")
    if fmt is not None and fmt not in FORMATS:
        raise EventFileError(f"{path}: unknown event format {fmt!r}; expected one of {FORMATS}")
    if fmt == "aedat4":
        from .aedat4 import read_aedat4

        return read_aedat4(path)
    if fmt == "npy":
        return read_npy(path)
    return read_prophesee(path, fmt, convention=convention, decoder=decoder)


def describe(rec: EventRecording) -> dict[str, Any]:
    """A JSON-ready summary (``rtsnn events info``)."""
    ev = rec.events
    n = len(ev)
    return {
        "path": rec.path, "format": rec.format, "events": n, "width": rec.width, "height": rec.height,
        "duration_s": rec.duration_s,
        "rate_ev_per_s": n / rec.duration_s if rec.duration_s > 0 else None,
        "t_first_us": int(ev["t"][0]) if n else None, "t_last_us": int(ev["t"][-1]) if n else None,
        "on_fraction": float(np.mean(ev["p"] > 0)) if n else None,
        "repairs": rec.repairs,
    }
