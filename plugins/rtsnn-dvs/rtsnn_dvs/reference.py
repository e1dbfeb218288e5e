"""Plain numpy / Python restatements of the decoders in :mod:`rtsnn_dvs.kernels`, and writers.

The decoders here process a whole word array at once (EVT2 and DAT vectorised with numpy
masks and cumulative maxima, EVT3 as a readable per-word loop) and return
``(events, counters)`` with the same counter names as the kernels; the tests check that the
kernels, fed the same words in arbitrary pieces, agree exactly.

The writers produce valid EVT2 / EVT3 / DAT byte streams from an event array (for tests and
for users who want to store events compactly). They are deliberately simple (EVT3: one
EVT_ADDR_X word per event, no vectors) so that they are an independent check of the decoders.
"""

from __future__ import annotations

import numpy as np

from rtsnn.events.format import EVENT_DTYPE

from .kernels import COUNTER_NAMES


def _counters(**kw: int) -> dict[str, int]:
    out = {name: 0 for name in COUNTER_NAMES}
    out.update({k: int(v) for k, v in kw.items()})
    return out


def _pack(t, x, y, p) -> np.ndarray:
    out = np.zeros(len(t), EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = t, x, y, p
    return out


def _backwards(t: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(t) < 0)) if len(t) > 1 else 0


def decode_evt2_reference(words: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    w = np.asarray(words, np.uint32).astype(np.int64)
    kind = w >> 28
    is_high = kind == 0x8
    high_val = np.where(is_high, w & 0xFFFFFFF, -1)
    # time high in force at each word: the last time-high word at or before it
    idx = np.where(is_high, np.arange(len(w)), -1)
    last_idx = np.maximum.accumulate(idx) if len(w) else idx
    seen = last_idx >= 0
    cur_high = np.where(seen, high_val[np.maximum(last_idx, 0)], -1)
    # wraps: a time-high word more than half the range below the previous time-high word
    highs = high_val[is_high]
    wrap = np.zeros(len(highs), np.int64)
    if len(highs) > 1:
        wrap[1:] = ((highs[1:] < highs[:-1]) & (highs[:-1] - highs[1:] > (1 << 27))).astype(np.int64)
    loops_at_high = np.cumsum(wrap)
    loops_per_word = np.zeros(len(w), np.int64)
    if len(highs):
        high_rank = np.cumsum(is_high) - 1
        loops_per_word = np.where(seen, loops_at_high[np.maximum(high_rank, 0)], 0)
    is_cd = (kind == 0x0) | (kind == 0x1)
    keep = is_cd & seen
    t = (loops_per_word << 34) + (cur_high << 6) + ((w >> 22) & 0x3F)
    ev = _pack(t[keep], (w[keep] >> 11) & 0x7FF, w[keep] & 0x7FF, kind[keep])
    known = is_cd | is_high | (kind == 0xA) | (kind == 0xE) | (kind == 0xF)
    return ev, _counters(events=len(ev), unknown_words=np.count_nonzero(~known),
                         dropped_no_time=np.count_nonzero(is_cd & ~seen), ts_backwards=_backwards(ev["t"]),
                         triggers=np.count_nonzero(kind == 0xA), time_loops=int(wrap.sum()))


def decode_dat_reference(words: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    w = np.asarray(words, np.uint32)
    w = w[: len(w) // 2 * 2].reshape(-1, 2).astype(np.int64)
    ts, data = w[:, 0], w[:, 1]
    wrap = np.zeros(len(ts), np.int64)
    if len(ts) > 1:
        wrap[1:] = ((ts[1:] < ts[:-1]) & (ts[:-1] - ts[1:] > (1 << 31))).astype(np.int64)
    t = (np.cumsum(wrap) << 32) + ts
    ev = _pack(t, data & 0x3FFF, (data >> 14) & 0x3FFF, (data >> 28) & 0xF)
    return ev, _counters(events=len(ev), ts_backwards=_backwards(t), time_loops=int(wrap.sum()))


def decode_evt3_reference(words: np.ndarray, convention: str = "spec") -> tuple[np.ndarray, dict[str, int]]:
    """Per-word EVT 3.0 decoding following the format table in :mod:`rtsnn_dvs.kernels`."""
    carry_low = convention == "expelliarmus"
    c = _counters()
    rows: list[tuple[int, int, int, int]] = []
    y = None
    base_x, pol = 0, 0
    high, low, loops, low_ovfs = None, 0, 0, 0

    def now() -> int:
        return loops * (1 << 24) + (high + low_ovfs) * (1 << 12) + low

    def add(x: int, p: int) -> None:
        if high is None:
            c["dropped_no_time"] += 1
        elif y is None:
            c["dropped_no_row"] += 1
        else:
            rows.append((now(), x, y, p))

    for w in np.asarray(words, np.uint16).tolist():
        kind, v = w >> 12, w & 0xFFF
        if kind == 0x0:
            y = w & 0x7FF
        elif kind == 0x2:
            add(w & 0x7FF, (w >> 11) & 1)
        elif kind == 0x3:
            base_x, pol = w & 0x7FF, (w >> 11) & 1
        elif kind in (0x4, 0x5):
            width = 12 if kind == 0x4 else 8
            for bit in range(width):
                if (v >> bit) & 1:
                    add(base_x + bit, pol)
            base_x += width
        elif kind == 0x6:
            if carry_low and v < low:
                low_ovfs += 1
            low = v
        elif kind == 0x8:
            if high is not None and v < high and (carry_low or high - v > 2048):
                loops += 1
                c["time_loops"] += 1
            high = v
        elif kind == 0xA:
            c["triggers"] += 1
        elif kind not in (0x7, 0xE, 0xF):
            c["unknown_words"] += 1
    arr = np.array(rows, np.int64).reshape(-1, 4)
    ev = _pack(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])
    c["events"] = len(ev)
    c["ts_backwards"] = _backwards(ev["t"])
    return ev, c


# ---------------------------------------------------------------- writers
def _header(lines: list[str]) -> bytes:
    return "".join(f"% {line}\n" for line in lines).encode()


def write_evt2(events: np.ndarray, width: int = 1280, height: int = 720) -> bytes:
    """EVT 2.0 bytes (header + words); a TIME_HIGH word precedes each change of t >> 6."""
    words: list[int] = []
    cur = None
    for t, x, y, p in zip(events["t"].tolist(), events["x"].tolist(), events["y"].tolist(), events["p"].tolist()):
        hi = (t >> 6) & 0xFFFFFFF
        if hi != cur:
            words.append((0x8 << 28) | hi)
            cur = hi
        words.append(((1 if p else 0) << 28) | ((t & 0x3F) << 22) | ((x & 0x7FF) << 11) | (y & 0x7FF))
    hdr = _header(["evt 2.0", f"format EVT2;height={height};width={width}", f"geometry {width}x{height}", "end"])
    return hdr + np.array(words, "<u4").tobytes()


def write_evt3(events: np.ndarray, width: int = 1280, height: int = 720) -> bytes:
    """EVT 3.0 bytes, spec convention: TIME_HIGH / TIME_LOW / EVT_ADDR_Y words whenever those
    fields change, then one EVT_ADDR_X word per event (no vectors)."""
    words: list[int] = []
    cur_hi = cur_lo = cur_y = None
    for t, x, y, p in zip(events["t"].tolist(), events["x"].tolist(), events["y"].tolist(), events["p"].tolist()):
        hi, lo = (t >> 12) & 0xFFF, t & 0xFFF
        if hi != cur_hi:
            words.append((0x8 << 12) | hi)
            cur_hi = hi
            cur_lo = None
        if lo != cur_lo:
            words.append((0x6 << 12) | lo)
            cur_lo = lo
        if y != cur_y:
            words.append(y & 0x7FF)
            cur_y = y
        words.append((0x2 << 12) | ((1 if p else 0) << 11) | (x & 0x7FF))
    hdr = _header(["evt 3.0", f"format EVT3;height={height};width={width}", f"geometry {width}x{height}", "end"])
    return hdr + np.array(words, "<u2").tobytes()


def write_dat(events: np.ndarray, width: int = 1280, height: int = 720) -> bytes:
    """DAT bytes: header, event type 0x0C (CD) and size 8, then (ts, data) uint32 pairs."""
    hdr = _header(["Data file containing Event2D events.", "Version 2", f"Height {height}", f"Width {width}"])
    rec = np.zeros((len(events), 2), "<u4")
    rec[:, 0] = (events["t"] & 0xFFFFFFFF).astype(np.uint32)
    rec[:, 1] = ((events["x"].astype(np.uint32) & 0x3FFF) | ((events["y"].astype(np.uint32) & 0x3FFF) << 14)
                 | ((events["p"].astype(np.uint32) & 0xF) << 28))
    return hdr + bytes([0x0C, 8]) + rec.tobytes()
