"""Recordings in other formats as :class:`~rtsnn.stream.xdf_reader.Recording` streams.

``load_recording(path)`` picks the reader by the file's suffix, so ``rtsnn replay`` and
``XdfFileSource`` take any of them:

- ``.xdf`` / ``.xdfz`` / ``.xdf.gz``: :func:`rtsnn.stream.xdf_reader.load_xdf`.
- ``.edf`` / ``.bdf`` (through MNE): one regular stream ``<file stem>`` of every signal
  channel in microvolts for EEG-like channels (MNE's volts x 1e6; other units as MNE gives
  them), timestamps ``k / sfreq`` s from the recording's start, labels without EDF's
  trailing dots; annotations become a string marker stream ``<stem>-markers`` (irregular,
  one sample at each onset holding the description).
- ``.npz`` (Chewie reaching, keys ``rates_hz``, ``pos``, ``vel``, ``acc``, ``target``,
  ``trial``): ``chewie-rates`` (neurons x rate, Hz), ``chewie-kinematics`` (pos, vel, acc,
  x and y), and a string marker stream ``chewie-trials`` ("trial <i> target <k>" at each
  trial start). Bins are taken as back to back at the bin width in the file name
  (``bin<k>ms``) or ``bin_s``; a file of movement periods only is thus time-compressed.
- ``.csv`` (MC_Maze trial: a ``timestamp`` column in s, 1 ms rows, ``unit_*`` 0/1 spike
  columns, kinematic columns): ``mc_maze-spikes`` (a regular 1 kHz stream of spike counts)
  and ``mc_maze-kinematics`` (every other column), on the file's own timestamps.

Each bad input raises ``ValueError`` naming the file and the key / column at fault.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from rtsnn.extras import require
from rtsnn.stream.xdf_reader import Recording, StreamData, load_xdf
from rtsnn.stream.xdf_writer import StreamInfoData

SUFFIXES = (".xdf", ".xdfz", ".gz", ".edf", ".bdf", ".npz", ".csv")


def _stream(sid: int, info: StreamInfoData, ts: np.ndarray, values: np.ndarray) -> StreamData:
    return StreamData(sid, info, np.asarray(ts, np.float64), values)


def _markers(sid: int, name: str, onsets: list[float], texts: list[str], source_id: str) -> StreamData:
    vals = np.empty((len(texts), 1), dtype=object)
    for i, t in enumerate(texts):
        vals[i, 0] = t
    info = StreamInfoData(name=name, type="Markers", channel_count=1, nominal_srate_hz=0.0, channel_format="string",
                          source_id=source_id, channel_labels=["marker"])
    return _stream(sid, info, np.asarray(onsets, np.float64), vals)


def _edf_declared_duration_s(p: Path) -> float | None:
    """Records x record duration from the EDF/BDF header (bytes 236-252), None when unreadable."""
    try:
        with open(p, "rb") as f:
            head = f.read(256)
        n_records = int(head[236:244].decode("ascii").strip())
        record_s = float(head[244:252].decode("ascii").strip())
    except (ValueError, UnicodeDecodeError, OSError):
        return None
    return n_records * record_s if n_records > 0 and record_s > 0 else None


def read_edf(path: str | Path) -> Recording:
    """EDF/EDF+/BDF through MNE: signals as one regular stream, annotations as markers."""
    mne = require("mne", f"{path}: reading EDF/BDF")
    p = Path(path)
    reader = mne.io.read_raw_bdf if p.suffix.lower() == ".bdf" else mne.io.read_raw_edf
    try:
        raw = reader(str(p), preload=True, verbose="error")
    except Exception as err:  # noqa: BLE001 - MNE raises many types for damaged files
        raise ValueError(f"{p}: not a readable {p.suffix.upper()[1:]} file ({type(err).__name__}: {err})") from None
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
    bad = ~np.isfinite(x)
    if bad.any():
        rec.repair("nonfinite_values", p.stem, f"{int(bad.sum())} non-finite values kept as they are (the "
                                               f"session's sources repair them)")
    declared_s = _edf_declared_duration_s(p)
    if declared_s is not None and x.shape[0] < round(declared_s * sfreq) - 1:
        lost = round(declared_s * sfreq) - x.shape[0]
        rec.repair("truncated", p.stem, f"the header announces {declared_s:g} s but only {x.shape[0] / sfreq:g} s "
                                        f"are in the file: {lost} samples per channel lost")
    ts = raw.first_time + np.arange(x.shape[0]) / sfreq
    info = StreamInfoData(name=p.stem, type="EEG", channel_count=x.shape[1], nominal_srate_hz=sfreq,
                          channel_format="float32", source_id=f"file:{p.name}", channel_labels=labels,
                          channel_units=units, channel_types=["EEG"] * len(labels))
    rec.streams.append(_stream(0, info, ts, x))
    ann = raw.annotations
    onsets = [float(o) + raw.first_time for o in ann.onset]
    texts = [str(d) for d in ann.description]
    rec.streams.append(_markers(1, f"{p.stem}-markers", onsets, texts, f"file:{p.name}:annotations"))
    if not texts:
        rec.repair("empty_stream", f"{p.stem}-markers", "the file has no annotations", warn=False)
    return rec


def read_chewie_npz(path: str | Path, bin_s: float | None = None) -> Recording:
    p = Path(path)
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"{p}: not a readable npz file ({type(err).__name__}: {err})") from None
    with z:
        need = ("rates_hz", "pos", "vel")
        missing = [k for k in need if k not in z.files]
        if missing:
            raise ValueError(f"{p}: npz lacks key(s) {missing}; a Chewie file has {list(need)} (+ acc, target, "
                             f"trial); found {z.files}")
        rates = np.asarray(z["rates_hz"], np.float32)
        if rates.ndim != 2:
            raise ValueError(f"{p}: rates_hz must be 2-D (bins, neurons), got shape {rates.shape}")
        n = rates.shape[0]
        kin_parts, kin_labels, kin_units = [], [], []
        for key, unit in (("pos", ""), ("vel", ""), ("acc", "")):  # units not stated by the source
            if key not in z.files:
                continue
            a = np.asarray(z[key], np.float32)
            if a.shape != (n, 2):
                raise ValueError(f"{p}: {key} must have shape ({n}, 2) like rates_hz's bins, got {a.shape}")
            kin_parts.append(a)
            kin_labels += [f"{key}_x", f"{key}_y"]
            kin_units += [unit, unit]
        trial = np.asarray(z["trial"]) if "trial" in z.files else None
        target = np.asarray(z["target"]) if "target" in z.files else None
    if bin_s is None:
        m = re.search(r"bin(\d+)ms", p.name)
        if not m:
            raise ValueError(f"{p}: bin width unknown: the name has no 'bin<k>ms'; pass bin_s")
        bin_s = int(m.group(1)) / 1000.0
    ts = np.arange(n) * bin_s
    rec = Recording(path=str(p), streams=[])
    sid = f"file:{p.name}"
    rates_info = StreamInfoData(name="chewie-rates", type="SpikeRates", channel_count=rates.shape[1],
                                nominal_srate_hz=1.0 / bin_s, channel_format="float32", source_id=sid + ":rates",
                                channel_labels=[f"n{i}" for i in range(rates.shape[1])],
                                channel_units=["Hz"] * rates.shape[1])
    rec.streams.append(_stream(0, rates_info, ts, rates))
    kin = np.concatenate(kin_parts, axis=1)
    kin_info = StreamInfoData(name="chewie-kinematics", type="Kinematics", channel_count=kin.shape[1],
                              nominal_srate_hz=1.0 / bin_s, channel_format="float32", source_id=sid + ":kinematics",
                              channel_labels=kin_labels, channel_units=kin_units)
    rec.streams.append(_stream(1, kin_info, ts, kin))
    if trial is not None and trial.shape == (n,):
        starts = np.flatnonzero(np.r_[True, trial[1:] != trial[:-1]])
        texts = [f"trial {int(trial[i])}" + (f" target {int(target[i])}" if target is not None and target.shape == (n,)
                                              else "") for i in starts]
        rec.streams.append(_markers(2, "chewie-trials", ts[starts].tolist(), texts, sid + ":trials"))
    return rec


def read_mc_maze_csv(path: str | Path) -> Recording:
    p = Path(path)
    with open(p, newline="") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise ValueError(f"{p}: empty CSV (no header row)")
    if "timestamp" not in header:
        raise ValueError(f"{p}: no 'timestamp' column; an MC_Maze CSV has timestamp, kinematics and unit_* columns")
    unit_cols = [i for i, h in enumerate(header) if h.startswith("unit_")]
    if not unit_cols:
        raise ValueError(f"{p}: no 'unit_*' spike columns")
    try:
        table = np.loadtxt(p, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise ValueError(f"{p}: a row is not numeric or has the wrong column count ({err})") from None
    if table.shape[1] != len(header):
        raise ValueError(f"{p}: rows have {table.shape[1]} columns, the header {len(header)}")
    if table.shape[0] == 0:
        raise ValueError(f"{p}: no data rows")
    ts = table[:, header.index("timestamp")]
    rec = Recording(path=str(p), streams=[])
    if not np.all(np.diff(ts) > 0):
        rec.repair("ts_backwards", "mc_maze", f"{int(np.sum(np.diff(ts) <= 0))} rows not later than the previous "
                                              f"row (replay keeps their order)")
    dts = np.diff(ts)
    srate = float(round(1.0 / np.median(dts))) if len(dts) else 0.0
    spikes = table[:, unit_cols].astype(np.float32)
    sid = f"file:{p.name}"
    labels = [header[i] for i in unit_cols]
    info = StreamInfoData(name="mc_maze-spikes", type="Spikes", channel_count=len(unit_cols), nominal_srate_hz=srate,
                          channel_format="float32", source_id=sid + ":spikes", channel_labels=labels,
                          channel_units=["count"] * len(labels))
    rec.streams.append(_stream(0, info, ts, spikes))
    kin_cols = [i for i, h in enumerate(header) if not h.startswith("unit_") and h != "timestamp"]
    if kin_cols:
        kin_labels = [header[i] for i in kin_cols]
        kin_units = [""] * len(kin_labels)  # the CSV does not state units
        kinfo = StreamInfoData(name="mc_maze-kinematics", type="Kinematics", channel_count=len(kin_cols),
                               nominal_srate_hz=srate, channel_format="float32", source_id=sid + ":kinematics",
                               channel_labels=kin_labels, channel_units=kin_units)
        rec.streams.append(_stream(1, kinfo, ts, table[:, kin_cols].astype(np.float32)))
    return rec


def load_recording(path: str | Path) -> Recording:
    """Any supported recording by suffix (see the module docstring)."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix in (".xdf", ".xdfz") or p.name.lower().endswith(".xdf.gz"):
        return load_xdf(p)
    if suffix in (".edf", ".bdf"):
        return read_edf(p)
    if suffix == ".npz":
        return read_chewie_npz(p)
    if suffix == ".csv":
        return read_mc_maze_csv(p)
    raise ValueError(f"{p}: unknown recording format {suffix!r}; supported: .xdf, .xdfz, .xdf.gz, .edf, .bdf, "
                     f".npz (Chewie), .csv (MC_Maze)")
