"""EDF / EDF+ / BDF through MNE as a :class:`~rtsnn.recording.xdf_reader.Recording`.

One regular stream named after the file's stem with every signal channel (EEG-like
channels in microvolts: MNE's volts x 1e6; other units as MNE gives them), timestamps
``first_time + k / sfreq`` s, labels without EDF's trailing dots; the annotations become a
string marker stream ``<stem>-markers`` (one sample at each onset holding the description).
A file shorter than its header announces is read as far as it goes and the loss reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtsnn.extras import require
from rtsnn.recording.xdf_reader import Recording, StreamData
from rtsnn.recording.xdf_writer import StreamInfoData


def _markers(sid: int, name: str, onsets: list[float], texts: list[str], source_id: str) -> StreamData:
    vals = np.empty((len(texts), 1), dtype=object)
    vals[:, 0] = texts
    info = StreamInfoData(name=name, type="Markers", channel_count=1, nominal_srate_hz=0.0, channel_format="string",
                          source_id=source_id, channel_labels=["marker"])
    return StreamData(sid, info, np.asarray(onsets, np.float64), vals)


def _declared_duration_s(p: Path) -> float | None:
    """Records x record duration from the EDF/BDF header (bytes 236-252), None when unreadable."""
    try:
        with open(p, "rb") as f:
            head = f.read(256)
        n_records = int(head[236:244].decode("ascii").strip())
        record_s = float(head[244:252].decode("ascii").strip())
    except (ValueError, UnicodeDecodeError, OSError):
        return None
    return n_records * record_s if n_records > 0 and record_s > 0 else None


def read_edf(path: str | Path, fmt: str = "edf") -> Recording:
    """EDF/EDF+ (``fmt='edf'``) or BDF (``'bdf'``): signals as one regular stream, annotations as markers."""
    p = Path(path)
    mne = require("mne", f"{p}: reading EDF/BDF")
    reader = mne.io.read_raw_bdf if fmt == "bdf" else mne.io.read_raw_edf
    try:
        raw = reader(str(p), preload=True, verbose="error")
    except Exception as err:  # noqa: BLE001 - MNE raises many types for damaged files
        raise ValueError(f"{p}: not a readable {fmt.upper()} file ({type(err).__name__}: {err})") from None
    rec = Recording(path=str(p), streams=[])
    data = raw.get_data()  # (n_channels, n_samples), SI units
    sfreq = float(raw.info["sfreq"])
    labels, units = [], []
    scale = np.ones(len(raw.ch_names))
    for i, ch in enumerate(raw.info["chs"]):
        labels.append(ch["ch_name"].rstrip(".") or ch["ch_name"])
        if ch["unit"] == 107:  # FIFF_UNIT_V
            scale[i] = 1e6
            units.append("microvolts")
        else:
            units.append("")
    x = (data * scale[:, None]).T.astype(np.float32)
    del data
    bad = ~np.isfinite(x)
    if bad.any():
        rec.repair("nonfinite_values", p.stem, f"{int(bad.sum())} non-finite values kept as they are (the "
                                               f"session's sources repair them)")
    declared_s = _declared_duration_s(p)
    if declared_s is not None and x.shape[0] < round(declared_s * sfreq) - 1:
        lost = round(declared_s * sfreq) - x.shape[0]
        rec.repair("truncated", p.stem, f"the header announces {declared_s:g} s but only {x.shape[0] / sfreq:g} s "
                                        f"are in the file: {lost} samples per channel lost")
    ts = raw.first_time + np.arange(x.shape[0]) / sfreq
    info = StreamInfoData(name=p.stem, type="EEG", channel_count=x.shape[1], nominal_srate_hz=sfreq,
                          channel_format="float32", source_id=f"file:{p.name}", channel_labels=labels,
                          channel_units=units, channel_types=["EEG"] * len(labels))
    rec.streams.append(StreamData(0, info, np.asarray(ts, np.float64), x))
    ann = raw.annotations
    onsets = [float(o) + raw.first_time for o in ann.onset]
    texts = [str(d) for d in ann.description]
    rec.streams.append(_markers(1, f"{p.stem}-markers", onsets, texts, f"file:{p.name}:annotations"))
    if not texts:
        rec.repair("empty_stream", f"{p.stem}-markers", "the file has no annotations", warn=False)
    return rec
