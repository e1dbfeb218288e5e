"""Numba decoders of Prophesee EVT 2.0, EVT 3.0 and DAT event words (streaming, stateful).

Each decoder reads words from ``start`` on, writes decoded events into the caller's column
buffers ``t_out`` (int64, us), ``x_out``, ``y_out`` (int16), ``p_out`` (uint8) and stops when
the words run out or the buffers have fewer than ``MAX_EVENTS_PER_WORD`` free slots; it
returns ``(n_events, next_word)``. Decoder state (time base, current row, vector base ...)
lives in the int64 array ``state`` and counters in ``counters`` (both owned by the caller),
so a file or a live byte stream can be decoded in pieces with identical results.

Formats (Prophesee's public format documentation; little-endian words, 4 MSBs = type):

EVT 3.0 (16-bit words, stateful; 24-bit time base in us)::

    0x0 EVT_ADDR_Y   y = w & 0x7FF                        (row of the following events)
    0x2 EVT_ADDR_X   one event: x = w & 0x7FF, p = (w >> 11) & 1, at (y, time base)
    0x3 VECT_BASE_X  base_x = w & 0x7FF, p = (w >> 11) & 1 (for the vectors that follow)
    0x4 VECT_12      events at base_x + i for each set bit i of w & 0xFFF; base_x += 12
    0x5 VECT_8       events at base_x + i for each set bit i of w & 0xFF;  base_x += 8
    0x6 TIME_LOW     time[11:0]  = w & 0xFFF
    0x8 TIME_HIGH    time[23:12] = w & 0xFFF
    0x7, 0xA, 0xE, 0xF  continued / external trigger / others (skipped, triggers counted)
    other types are reserved: counted as unknown words and skipped

    t = loops * 2**24 + time_high * 2**12 + time_low, where ``loops`` counts wraps of the 24-bit
    time base (a TIME_HIGH that drops by more than half its range).

    ``convention=1`` ("expelliarmus") reproduces expelliarmus's decoder instead: every
    TIME_LOW smaller than the previous one adds 2**12 us to all later times and every smaller
    TIME_HIGH adds 2**24. The ground-truth array shipped with its EVT3 sample was produced
    this way; the Prophesee specification (``convention=0``) does not carry TIME_LOW into
    TIME_HIGH (a new TIME_HIGH word is sent instead).

EVT 2.0 (32-bit words)::

    0x0 CD_OFF / 0x1 CD_ON  t[5:0] = (w >> 22) & 0x3F, x = (w >> 11) & 0x7FF, y = w & 0x7FF,
                            p = type
    0x8 TIME_HIGH           t[33:6] = w & 0xFFFFFFF
    0xA, 0xE, 0xF           trigger / others / continued (skipped, triggers counted)

DAT (after the ``%`` header and 2 bytes event type + size): 8-byte records of two uint32:
``ts`` (us, wraps at 2**32) and ``data`` with x = data & 0x3FFF, y = (data >> 14) & 0x3FFF,
p = data >> 28.

Events before the first time word (EVT) or before the first row (EVT3 EVT_ADDR_Y) have no
defined time / row: they are dropped and counted (a stream cut mid-way starts like that).
Time steps backwards are kept (the camera's order) and counted.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAX_EVENTS_PER_WORD = 12

# state slots
S_Y = 0  # current row (EVT3), -1 unknown
S_BASE_X = 1
S_POL = 2
S_T_HIGH = 3  # -1 until the first time-high word
S_T_LOW = 4
S_LOOPS = 5  # wraps of the time-high field
S_LOW_OVFS = 6  # expelliarmus convention only
S_LAST_T = 7  # last time delivered (for the backwards count), -1 before any
S_DAT_LAST_RAW = 8  # DAT: last raw uint32 timestamp, -1 before any
N_STATE = 9

# counter slots
C_EVENTS = 0
C_UNKNOWN_WORDS = 1
C_DROPPED_NO_TIME = 2
C_DROPPED_NO_ROW = 3
C_TS_BACKWARDS = 4
C_TRIGGERS = 5
C_TIME_LOOPS = 6
N_COUNTERS = 7
COUNTER_NAMES = ("events", "unknown_words", "dropped_no_time", "dropped_no_row", "ts_backwards",
                 "triggers", "time_loops")


def new_state() -> np.ndarray:
    s = np.zeros(N_STATE, np.int64)
    s[S_Y] = -1
    s[S_T_HIGH] = -1
    s[S_LAST_T] = -1
    s[S_DAT_LAST_RAW] = -1
    return s


def new_counters() -> np.ndarray:
    return np.zeros(N_COUNTERS, np.int64)


@njit(cache=True, nogil=True, inline="always")
def _emit(t, x, y, p, n, t_out, x_out, y_out, p_out, state, counters):
    if t < state[S_LAST_T]:
        counters[C_TS_BACKWARDS] += 1
    state[S_LAST_T] = t
    t_out[n] = t
    x_out[n] = x
    y_out[n] = y
    p_out[n] = p
    return n + 1


@njit(cache=True, nogil=True)
def decode_evt3(words, start, state, counters, convention, t_out, x_out, y_out, p_out):
    """EVT 3.0 words (uint16) -> events; see the module docstring. Returns (n, next_word).

    Hot-loop layout: state and counters live in locals and are written back once; a vector
    word writes all its 12 (or 8) candidate slots and advances ``n`` by each bit (no branch
    per bit; the slack of ``MAX_EVENTS_PER_WORD`` slots makes the extra writes safe); the
    backwards-time count is checked once per emitted word, since all events of a word share ``t``.
    """
    cap = t_out.shape[0] - MAX_EVENTS_PER_WORD
    n = 0
    i = start
    n_words = words.shape[0]
    y = state[S_Y]
    base_x = state[S_BASE_X]
    pol = state[S_POL]
    high = state[S_T_HIGH]
    low = state[S_T_LOW]
    loops = state[S_LOOPS]
    low_ovfs = state[S_LOW_OVFS]
    last_t = state[S_LAST_T]
    n_unknown = 0
    n_no_time = 0
    n_no_row = 0
    n_back = 0
    n_trig = 0
    n_loops = 0
    t = (loops << 24) + ((high + low_ovfs) << 12) + low
    ok = high >= 0 and y >= 0  # events can be emitted
    while i < n_words and n <= cap:
        w = np.int64(words[i])
        i += 1
        kind = w >> 12
        if kind == 0x2:  # single event
            if ok:
                if t < last_t:
                    n_back += 1
                last_t = t
                t_out[n] = t
                x_out[n] = w & 0x7FF
                y_out[n] = y
                p_out[n] = (w >> 11) & 1
                n += 1
            elif high < 0:
                n_no_time += 1
            else:
                n_no_row += 1
        elif kind == 0x0:
            y = w & 0x7FF
            ok = high >= 0
        elif kind == 0x4 or kind == 0x5:  # vectors
            if kind == 0x4:
                mask = w & 0xFFF
                width = 12
            else:
                mask = w & 0xFF
                width = 8
            if ok:
                if mask != 0:
                    if t < last_t:
                        n_back += 1
                    last_t = t
                for b in range(width):
                    t_out[n] = t
                    x_out[n] = base_x + b
                    y_out[n] = y
                    p_out[n] = pol
                    n += (mask >> b) & 1
            else:
                k = 0
                m = mask
                while m:
                    k += m & 1
                    m >>= 1
                if high < 0:
                    n_no_time += k
                else:
                    n_no_row += k
            base_x += width
        elif kind == 0x3:
            base_x = w & 0x7FF
            pol = (w >> 11) & 1
        elif kind == 0x6:
            v = w & 0xFFF
            if convention == 1 and v < low:
                low_ovfs += 1
            low = v
            t = (loops << 24) + ((high + low_ovfs) << 12) + low
        elif kind == 0x8:
            v = w & 0xFFF
            if high >= 0 and v < high and (convention == 1 or high - v > 2048):
                loops += 1
                n_loops += 1
            high = v
            t = (loops << 24) + ((high + low_ovfs) << 12) + low
            ok = y >= 0
        elif kind == 0xA:
            n_trig += 1
        elif kind == 0x7 or kind == 0xE or kind == 0xF:
            pass
        else:
            n_unknown += 1
    state[S_Y] = y
    state[S_BASE_X] = base_x
    state[S_POL] = pol
    state[S_T_HIGH] = high
    state[S_T_LOW] = low
    state[S_LOOPS] = loops
    state[S_LOW_OVFS] = low_ovfs
    state[S_LAST_T] = last_t
    counters[C_EVENTS] += n
    counters[C_UNKNOWN_WORDS] += n_unknown
    counters[C_DROPPED_NO_TIME] += n_no_time
    counters[C_DROPPED_NO_ROW] += n_no_row
    counters[C_TS_BACKWARDS] += n_back
    counters[C_TRIGGERS] += n_trig
    counters[C_TIME_LOOPS] += n_loops
    return n, i


@njit(cache=True, nogil=True)
def decode_evt2(words, start, state, counters, t_out, x_out, y_out, p_out):
    """EVT 2.0 words (uint32) -> events; see the module docstring. Returns (n, next_word)."""
    cap = t_out.shape[0] - MAX_EVENTS_PER_WORD
    n = 0
    i = start
    n_words = words.shape[0]
    high = state[S_T_HIGH]
    loops = state[S_LOOPS]
    while i < n_words and n <= cap:
        w = np.int64(words[i])
        i += 1
        kind = w >> 28
        if kind == 0x0 or kind == 0x1:
            if high < 0:
                counters[C_DROPPED_NO_TIME] += 1
            else:
                t = (loops << 34) + (high << 6) + ((w >> 22) & 0x3F)
                n = _emit(t, (w >> 11) & 0x7FF, w & 0x7FF, kind, n, t_out, x_out, y_out, p_out, state, counters)
        elif kind == 0x8:
            v = w & 0xFFFFFFF
            if high >= 0 and v < high and high - v > (1 << 27):
                loops += 1
                counters[C_TIME_LOOPS] += 1
            high = v
        elif kind == 0xA:
            counters[C_TRIGGERS] += 1
        elif kind == 0xE or kind == 0xF:
            pass
        else:
            counters[C_UNKNOWN_WORDS] += 1
    state[S_T_HIGH] = high
    state[S_LOOPS] = loops
    counters[C_EVENTS] += n
    return n, i


@njit(cache=True, nogil=True)
def decode_dat(words, start, state, counters, t_out, x_out, y_out, p_out):
    """DAT records as uint32 pairs (``words[2k]`` ts, ``words[2k+1]`` data) -> events.
    ``start`` and the returned next index count uint32 words (always even)."""
    cap = t_out.shape[0] - MAX_EVENTS_PER_WORD
    n = 0
    i = start
    n_words = words.shape[0] - 1
    last = state[S_DAT_LAST_RAW]
    loops = state[S_LOOPS]
    while i < n_words and n <= cap:
        ts = np.int64(words[i])
        data = np.int64(words[i + 1])
        i += 2
        if last >= 0 and ts < last and last - ts > (1 << 31):
            loops += 1
            counters[C_TIME_LOOPS] += 1
        last = ts
        n = _emit((loops << 32) + ts, data & 0x3FFF, (data >> 14) & 0x3FFF, (data >> 28) & 0xF, n,
                  t_out, x_out, y_out, p_out, state, counters)
    state[S_DAT_LAST_RAW] = last
    state[S_LOOPS] = loops
    counters[C_EVENTS] += n
    return n, i
