"""How events look inside rtsnn: in memory, on an LSL stream, and in a session's sample buffer.

Three layouts, one meaning (an event = one pixel's brightness change at one instant):

1. **In memory** (decoders, publisher): a numpy structured array of :data:`EVENT_DTYPE`,
   fields ``t`` (int64, microseconds on the camera's clock), ``x``, ``y`` (int16, pixel
   column and row, 0-based from the top-left), ``p`` (uint8 polarity: 1 = ON, brightness
   up; 0 = OFF). Itemsize 16 bytes, the same layout as expelliarmus's arrays.

2. **On the wire** (the LSL stream ``rtsnn events publish`` creates): an irregular-rate
   (``nominal_srate`` 0) stream of type ``"Events"``, channel format ``int32``, 4 channels
   ``x, y, p, t_us`` per sample, **one event per sample**, sent in chunks. ``t_us`` is the
   camera timestamp in microseconds modulo 2**31 (it wraps every 35.8 min; receivers
   unwrap by difference). Every sample carries its own LSL timestamp: the event's time on
   the publisher's LSL clock (``t0_lsl + (t - t_first) / speed``), so LSL tools
   (LabRecorder, pyxdf) see true per-event times. The stream's ``<desc>`` holds
   ``<channels>`` (labels x, y, p, t_us; units pixel, pixel, bool, microseconds) and
   ``<events>`` with ``width``, ``height``, ``format_version`` and ``source`` (the
   recording's file name or the camera). Events within a chunk are in time order.

3. **In a session** (what an event :class:`~rtsnn.protocols.Source` delivers to the
   encoder): float32 rows of 4 columns ``x, y, p, t_mod`` where ``t_mod`` is the camera
   time in microseconds modulo 2**24 (16.78 s), exactly representable in float32; the
   encoder unwraps it by difference (see :mod:`rtsnn.events.pooling`). The row's session
   timestamp is the event's LSL time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FORMAT_VERSION = 1

EVENT_DTYPE = np.dtype({"names": ["t", "x", "y", "p"], "formats": ["<i8", "<i2", "<i2", "u1"],
                        "offsets": [0, 8, 10, 12], "itemsize": 16})

# ---------------------------------------------------------------- LSL wire format
LSL_TYPE = "Events"
LSL_CHANNEL_FORMAT = "int32"
WIRE_CHANNELS = ("x", "y", "p", "t_us")
WIRE_UNITS = ("pixel", "pixel", "bool", "microseconds")
N_WIRE = len(WIRE_CHANNELS)
WIRE_T_MOD = 1 << 31  # t_us on the wire is the camera time modulo this

# ---------------------------------------------------------------- session sample layout
SAMPLE_COLUMNS = ("x", "y", "p", "t_mod")
N_COLUMNS = len(SAMPLE_COLUMNS)
COL_X, COL_Y, COL_P, COL_T = 0, 1, 2, 3
T_MOD = 1 << 24  # t_mod in session rows is the camera time (us) modulo this (float32-exact)


def empty_events(n: int = 0) -> np.ndarray:
    return np.zeros(n, EVENT_DTYPE)


def as_events(t_us: Any, x: Any, y: Any, p: Any) -> np.ndarray:
    """Pack four equal-length columns into an :data:`EVENT_DTYPE` array (checked)."""
    cols = [np.asarray(c) for c in (t_us, x, y, p)]
    n = cols[0].shape[0] if cols[0].ndim == 1 else -1
    for name, c in zip(("t_us", "x", "y", "p"), cols):
        if c.ndim != 1 or c.shape[0] != n:
            raise ValueError(f"as_events: column {name} must be 1-D with {n} entries; got shape {c.shape}")
    out = np.empty(n, EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = cols
    return out


def check_events(events: Any, what: str = "events") -> np.ndarray:
    """Accept a structured array with fields t, x, y, p (any integer dtypes) and return it as
    :data:`EVENT_DTYPE`; refuse anything else with a message naming the missing fields."""
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise ValueError(f"{what} must be a structured numpy array with fields t, x, y, p; "
                         f"got {type(events).__name__}")
    names = set(events.dtype.names)
    if "p" not in names and "polarity" in names:
        names.add("p")
    if "t" not in names and "timestamp" in names:
        names.add("t")
    missing = [f for f in ("t", "x", "y", "p") if f not in names]
    if missing:
        raise ValueError(f"{what} lacks field(s) {', '.join(missing)}; has {', '.join(events.dtype.names)}")
    if events.ndim != 1:
        raise ValueError(f"{what} must be 1-D; got shape {events.shape}")
    if events.dtype == EVENT_DTYPE:
        return events
    t = events["t"] if "t" in events.dtype.names else events["timestamp"]
    p = events["p"] if "p" in events.dtype.names else events["polarity"]
    return as_events(t, events["x"], events["y"], (np.asarray(p) > 0).astype(np.uint8))


def lsl_stream_info(name: str, width: int, height: int, source: str, source_id: str = ""):
    """The :class:`pylsl.StreamInfo` of an rtsnn event stream (format described above)."""
    import pylsl

    info = pylsl.StreamInfo(name, LSL_TYPE, N_WIRE, pylsl.IRREGULAR_RATE, LSL_CHANNEL_FORMAT,
                            source_id or f"rtsnn-events-{name}")
    chans = info.desc().append_child("channels")
    for label, unit in zip(WIRE_CHANNELS, WIRE_UNITS):
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
    ev = info.desc().append_child("events")
    ev.append_child_value("width", str(int(width)))
    ev.append_child_value("height", str(int(height)))
    ev.append_child_value("format_version", str(FORMAT_VERSION))
    ev.append_child_value("source", str(source))
    return info


def geometry_of(info) -> tuple[int, int] | None:
    """(width, height) from a stream's ``<desc><events>``; None when absent or malformed."""
    ev = info.desc().child("events")
    if ev.empty():
        return None
    try:
        w, h = int(ev.child_value("width")), int(ev.child_value("height"))
    except ValueError:
        return None
    return (w, h) if w > 0 and h > 0 else None
