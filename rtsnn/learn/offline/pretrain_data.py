"""Pretraining data: a recording (through :mod:`rtsnn.recording`) or the simulated user, turned
into what the network sees tick by tick.

``load_ticks`` reads the input stream, runs the session's encoder plugin over it one tick of
``dt_s`` at a time (the rows whose timestamps fall in ``[t0 + k dt_s, t0 + (k+1) dt_s)`` go to
tick ``k``, exactly as a live source delivers them), and lays out on the same tick grid either
a regression target (mean of the target stream's samples in each tick; a tick without one
takes the value interpolated at its start) or class labels (tick ``k`` of the window
``[t_m + start_s, t_m + stop_s)`` after each class marker ``m``). Trials come from a numeric
stream (e.g. Chewie's ``trial``), from a marker stream (each marker starts one), from fixed
blocks of ``every_s``, or, for classification, are the marker windows. ``split`` holds out a
seeded share of the trials (stratified by class for classification).

Everything a user can get wrong in the data section is one ValueError line naming the file and
the stream, column or key.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------ config sections
class InputSpec(_Strict):
    stream: str = Field(description="the stream (an npz key / CSV group / XDF or EDF stream) fed to the encoder")
    channels: list[str] | None = Field(None, min_length=1, description="channel labels to keep (default: all)")
    scale: float = Field(1.0, gt=0, description="multiplies the samples before the encoder, e.g. bin_s to turn "
                                                "a rate stream (Hz) into counts per bin as a live count source sends")


class TargetSpec(_Strict):
    stream: str
    channels: list[str] | None = Field(None, min_length=1)
    nan: Literal["refuse", "interpolate"] = Field(
        "refuse", description="NaN/inf target samples: refuse the file, or interpolate linearly in time (counted)")


class ClassesSpec(_Strict):
    stream: str = Field(description="the marker stream whose labels name the classes")
    map: dict[str, str] = Field(min_length=2, description="marker label -> class name (two labels may share a class)")
    ignore: list[str] = Field(default_factory=list, description="marker labels that are no class (e.g. rest T0)")
    window_s: tuple[float, float] = Field(description="[start, stop] s after each class marker: the trial")

    @model_validator(mode="after")
    def _check(self) -> "ClassesSpec":
        if not self.window_s[1] > self.window_s[0]:
            raise ValueError(f"window_s: needs start < stop, got {list(self.window_s)}")
        if len(set(self.map.values())) < 2:
            raise ValueError("map: needs at least 2 distinct classes")
        both = sorted(set(self.map) & set(self.ignore))
        if both:
            raise ValueError(f"label {both[0]!r} is both in map and in ignore")
        return self


class TrialsSpec(_Strict):
    stream: str | None = Field(None, description="a numeric stream of trial ids, or a marker stream (one trial per marker)")
    every_s: float | None = Field(None, gt=0, description="or: consecutive blocks of this length are the trials")

    @model_validator(mode="after")
    def _one(self) -> "TrialsSpec":
        if (self.stream is None) == (self.every_s is None):
            raise ValueError("give exactly one of stream, every_s")
        return self


class EncoderSection(_Strict):
    """As a session config's ``encoder:`` section. ``n_channels`` (and ``srate_hz`` for encoders
    that take it) default to the input stream's; ``dt_s`` is the tick."""
    kind: str = "passthrough"
    options: dict[str, Any] = Field(default_factory=dict)


# ------------------------------------------------------------------ the data the trainer gets
@dataclass
class TickData:
    """The network's input on its tick grid and what it should output.

    ``x`` (n_ticks, n_in) encoder output; ``trial`` (n_ticks,) trial id, -1 outside every trial;
    regression: ``target`` (n_ticks, d); classification: ``labels`` (n_ticks,) class index (-1
    outside windows), ``class_names``, and for CSP ``windows`` (n_trials, n_channels, n_times)
    raw input samples with ``window_trial`` / ``window_label`` per window."""

    name: str
    dt_s: float
    x: np.ndarray
    trial: np.ndarray
    n_channels: int
    channel_labels: tuple[str, ...]
    encoder: dict[str, Any]
    source: dict[str, Any] | None
    target: np.ndarray | None = None
    target_labels: list[str] | None = None
    target_units: list[str] | None = None
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    windows: np.ndarray | None = None
    window_trial: np.ndarray | None = None
    window_label: np.ndarray | None = None
    input_rate_hz: float | None = None
    repairs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def task(self) -> str:
        return "classification" if self.labels is not None else "regression"

    @property
    def trial_ids(self) -> np.ndarray:
        """Trial ids in time order (first tick)."""
        t = self.trial[self.trial >= 0]
        _, first = np.unique(t, return_index=True)
        return t[np.sort(first)]


def _progress(log, text: str) -> None:
    if log is not None:
        print(text, file=log, flush=True)


# ------------------------------------------------------------------ encoder, tick by tick
def build_encoder(section: EncoderSection, n_channels: int, dt_s: float, srate_hz: float | None,
                  origin: str = "<config>") -> tuple[Any, dict[str, Any]]:
    """The encoder plugin as the session builds it (``rtsnn.plugins.build``), with
    ``n_channels`` / ``srate_hz`` filled in from the input stream where the plugin takes them
    and the config leaves them out; returns it and the options it was built with (minus
    ``dt_s``, which is the tick)."""
    import inspect

    from rtsnn import plugins

    opts = dict(section.options)
    params = inspect.signature(plugins.load("rtsnn.encoders", section.kind).__init__).parameters
    if "n_channels" in params and "n_channels" not in opts:
        opts["n_channels"] = n_channels
    if "srate_hz" in params and "srate_hz" not in opts and srate_hz:
        opts["srate_hz"] = float(srate_hz)
    if "dt_s" in opts and not math.isclose(float(opts["dt_s"]), dt_s, rel_tol=1e-9):
        raise ValueError(f"{origin}: encoder.options.dt_s: {opts['dt_s']} differs from the tick {dt_s:g} s "
                         f"(leave it out: the tick is filled in)")
    opts.pop("dt_s", None)
    build_opts = {**opts, "dt_s": dt_s} if "dt_s" in params else opts
    enc = plugins.build("rtsnn.encoders", section.kind, build_opts, "encoder", origin)
    if enc.n_channels != n_channels:
        raise ValueError(f"{origin}: encoder.options.n_channels: {enc.n_channels}, but the input stream has "
                         f"{n_channels} channels")
    return enc, opts


def encode_ticks(encoder: Any, samples: np.ndarray, tick_of_row: np.ndarray, n_ticks: int, *,
                 log=None, what: str = "") -> np.ndarray:
    """Run ``encoder`` over ``samples`` (n, C) tick by tick: tick ``k`` gets the rows with
    ``tick_of_row == k`` (sorted ascending), as ``encoder.encode(rows, n, out)``. Returns
    (n_ticks, n_out) float32. A progress line every 10 % when there are many ticks."""
    bounds = np.searchsorted(tick_of_row, np.arange(n_ticks + 1), side="left")
    cap = max(1, int(np.max(np.diff(bounds))) if n_ticks else 1)
    buf = np.zeros((cap, samples.shape[1]), np.float32)
    out = np.zeros((n_ticks, encoder.n_out), np.float32)
    row = np.zeros(encoder.n_out, np.float32)
    step = max(1, n_ticks // 10)
    t0 = time.perf_counter()
    loud = log is not None and n_ticks >= 20000
    for k in range(n_ticks):
        a, b = bounds[k], bounds[k + 1]
        buf[: b - a] = samples[a:b]
        encoder.encode(buf, int(b - a), row)
        out[k] = row
        if loud and (k + 1) % step == 0:
            _progress(log, f"encoding {what}: {k + 1}/{n_ticks} ticks ({time.perf_counter() - t0:.1f} s)")
    return out


# ------------------------------------------------------------------ recordings
def _stream(rec, name: str, file: str):
    for s in rec.streams:
        if s.name == name:
            return s
    raise ValueError(f"{file}: no stream {name!r} (streams: {', '.join(s.name for s in rec.streams) or 'none'})")


def _channels(st, wanted: list[str] | None, file: str, key: str) -> tuple[np.ndarray, list[str]]:
    labels = list(st.info.channel_labels) or [f"ch{i}" for i in range(st.info.channel_count)]
    if wanted is None:
        return np.arange(len(labels)), labels
    idx = []
    for w in wanted:
        if w not in labels:
            shown = ", ".join(labels[:12]) + (f", ... ({len(labels)} in all)" if len(labels) > 12 else "")
            raise ValueError(f"{file}: {key}: stream {st.name!r} has no channel {w!r} (channels: {shown})")
        idx.append(labels.index(w))
    return np.asarray(idx), list(wanted)


def _numeric(st, file: str, key: str) -> None:
    if st.is_string:
        raise ValueError(f"{file}: {key}: stream {st.name!r} is a marker (text) stream, not numbers")
    if st.n_samples == 0:
        raise ValueError(f"{file}: {key}: stream {st.name!r} has no samples")


def _repair_nan(values: np.ndarray, ts: np.ndarray, policy: str, file: str, name: str) -> tuple[np.ndarray, int]:
    bad = ~np.isfinite(values)
    n_bad = int(bad.sum())
    if not n_bad:
        return values, 0
    row = int(np.argwhere(bad)[0][0])
    if policy == "refuse":
        raise ValueError(f"{file}: target stream {name!r}: {n_bad} NaN/inf values (first at t = {ts[row]:.3f} s); "
                         f"set data.target.nan: interpolate to repair them")
    out = values.copy()
    for c in range(values.shape[1]):
        ok = ~bad[:, c]
        if not ok.any():
            raise ValueError(f"{file}: target stream {name!r}: channel {c} has no finite value to interpolate from")
        if bad[:, c].any():
            out[bad[:, c], c] = np.interp(ts[bad[:, c]], ts[ok], values[ok, c])
    return out, n_bad


def _per_tick_mean(values: np.ndarray, ts: np.ndarray, t0: float, dt_s: float, n_ticks: int) -> np.ndarray:
    """Mean of the samples in each tick; a tick with none: the value interpolated at its start."""
    k = np.floor((ts - t0) / dt_s + 1e-6).astype(np.int64)
    ok = (k >= 0) & (k < n_ticks)
    cnt = np.bincount(k[ok], minlength=n_ticks).astype(np.float64)
    out = np.zeros((n_ticks, values.shape[1]))
    for c in range(values.shape[1]):
        out[:, c] = np.bincount(k[ok], weights=values[ok, c], minlength=n_ticks)
    have = cnt > 0
    out[have] /= cnt[have, None]
    if (~have).any():
        starts = t0 + np.flatnonzero(~have) * dt_s
        for c in range(values.shape[1]):
            out[~have, c] = np.interp(starts, ts, values[:, c])
    return out


def _value_at_ticks(values: np.ndarray, ts: np.ndarray, t0: float, dt_s: float, n_ticks: int) -> np.ndarray:
    """The last sample at or before each tick's start (the first sample before the stream begins);
    samples are taken in time order (a stable sort of ``ts``)."""
    order = np.argsort(ts, kind="stable")
    values, ts = values[order], ts[order]
    starts = t0 + np.arange(n_ticks) * dt_s + 1e-9
    i = np.clip(np.searchsorted(ts, starts, side="right") - 1, 0, len(ts) - 1)
    return values[i]


def _input_samples(values: np.ndarray, idx: np.ndarray, scale: float) -> np.ndarray:
    """The input stream's columns ``idx`` times ``scale``, as the encoder gets them, with as few
    full copies as the values allow (the caller only reads the result, never writes it).

    The encoder sees every row through a float32 tick buffer, so a float32 or float64 stream at
    ``scale`` 1 is handed on as it is (no copy when every channel is kept in order; one column
    selection otherwise): float32 -> float64 -> float32 is exact, so the encoder gets the same
    bits as from a float64 copy. Otherwise: one float64 copy, scaled in place (the same
    float64 products as ``float64(values) * scale``)."""
    every = idx.size == values.shape[1] and bool(np.array_equal(idx, np.arange(values.shape[1])))
    if scale == 1.0 and values.dtype in (np.float32, np.float64):
        return values if every else values[:, idx]
    out = np.empty((values.shape[0], idx.size), np.float64)
    if every:
        out[...] = values
    else:
        for c, j in enumerate(idx):  # column by column: no full-size intermediate in the stream's dtype
            out[:, c] = values[:, j]
    if scale != 1.0:
        out *= scale
    return out


def _nonfinite(values: np.ndarray, block_rows: int = 1 << 13) -> tuple[int, int]:
    """(number of NaN/inf values, row of the first one; -1 if none), checked in blocks of rows so
    that the boolean mask never is the size of the whole stream."""
    n_bad, first = 0, -1
    for a in range(0, values.shape[0], block_rows):
        bad = ~np.isfinite(values[a:a + block_rows])
        k = int(bad.sum())
        if k and first < 0:
            first = a + int(np.argwhere(bad)[0][0])
        n_bad += k
    return n_bad, first


def load_recording_ticks(d: Any, encoder: EncoderSection, path: Path, *, origin: str = "<config>",
                         log=sys.stderr) -> TickData:
    """Read ``path`` as the data section ``d`` (a pretrain ``DataConfig``) says and lay it out
    on the tick grid (see the module docstring)."""
    from rtsnn.recording import open_recording

    file = str(path)
    if not path.is_file():
        raise ValueError(f"{file}: no such data file")
    t_read = time.perf_counter()
    size_mb = path.stat().st_size / 1e6
    if size_mb > 20:
        _progress(log, f"reading {file} ({size_mb:.0f} MB) ...")
    rec = open_recording(path, rate_hz=d.rate_hz, bin_s=d.bin_s, fmt=d.format, time_column=d.time_column,
                         groups=d.groups, markers=d.markers)
    if size_mb > 20:
        _progress(log, f"read {file}: {len(rec.streams)} streams in {time.perf_counter() - t_read:.1f} s")
    repairs = [{"kind": r.kind, "stream": r.stream, "detail": r.detail} for r in rec.repairs]

    st = _stream(rec, d.input.stream, file)
    _numeric(st, file, "data.input.stream")
    idx, labels = _channels(st, d.input.channels, file, "data.input.channels")
    samples = _input_samples(st.time_series, idx, d.input.scale)
    ts = np.asarray(st.time_stamps, np.float64)
    order = np.argsort(ts, kind="stable")
    if np.any(order != np.arange(len(ts))):
        # rows kept in file order with a timestamp that steps back (a counted repair of the
        # reader, or jitter) would land in the wrong ticks: put them in time order, counted
        n_moved = int(np.sum(order != np.arange(len(ts))))
        samples, ts = samples[order], ts[order]
        repairs.append({"kind": "input_rows_sorted", "stream": st.name,
                        "detail": f"{n_moved} rows out of time order were put in time order"})
    n_bad, first_bad = _nonfinite(samples)
    if n_bad:
        raise ValueError(f"{file}: input stream {st.name!r}: {n_bad} NaN/inf values (first at t = "
                         f"{ts[first_bad]:.3f} s)")
    rate = float(st.info.nominal_srate_hz)
    dt_s = d.dt_s if d.dt_s is not None else (1.0 / rate if rate > 0 else None)
    if dt_s is None:
        raise ValueError(f"{file}: input stream {st.name!r} is irregular (no nominal rate): give data.dt_s, the tick")
    t0 = float(ts[0])
    tick_of_row = np.floor((ts - t0) / dt_s + 1e-6).astype(np.int64)
    n_ticks = int(tick_of_row[-1]) + 1
    enc, enc_opts = build_encoder(encoder, len(labels), dt_s, rate or None, origin)
    x = encode_ticks(enc, samples, tick_of_row, n_ticks, log=log, what=f"{file} stream {st.name!r}")
    out = TickData(name=path.stem, dt_s=float(dt_s), x=x, trial=np.full(n_ticks, -1, np.int64),
                   n_channels=len(labels), channel_labels=tuple(labels),
                   encoder={"kind": encoder.kind, "options": enc_opts},
                   source={"kind": "lsl", "name": st.name, "type": st.info.type or None},
                   input_rate_hz=rate or None, repairs=repairs)

    if d.target is not None:
        tst = _stream(rec, d.target.stream, file)
        _numeric(tst, file, "data.target.stream")
        tidx, tlabels = _channels(tst, d.target.channels, file, "data.target.channels")
        tv = np.asarray(tst.time_series[:, tidx], np.float64)
        tts = np.asarray(tst.time_stamps, np.float64)
        tv, n_fixed = _repair_nan(tv, tts, d.target.nan, file, tst.name)
        if n_fixed:
            out.repairs.append({"kind": "target_nan_interpolated", "stream": tst.name,
                                "detail": f"{n_fixed} NaN/inf values interpolated linearly in time"})
        out.target = _per_tick_mean(tv, tts, t0, dt_s, n_ticks)
        out.target_labels = tlabels
        units = list(tst.info.channel_units)
        out.target_units = [units[i] or "a.u." for i in tidx] if units else None
        if d.trials is None:
            raise ValueError(f"{origin}: data.trials: a regression needs trials (stream: a trial-id or marker "
                             f"stream, or every_s: block length) to split into train and test")
        if d.trials.every_s is not None:
            per = max(1, int(round(d.trials.every_s / dt_s)))
            out.trial = np.arange(n_ticks, dtype=np.int64) // per
        else:
            trs = _stream(rec, d.trials.stream, file)
            if trs.n_samples == 0:
                raise ValueError(f"{file}: data.trials.stream: stream {trs.name!r} has no samples")
            if trs.is_string:
                ids = np.arange(trs.n_samples, dtype=np.int64)
                tt = np.asarray(trs.time_stamps, np.float64)
                tr = _value_at_ticks(ids, tt, t0, dt_s, n_ticks)
                tr[t0 + np.arange(n_ticks) * dt_s + 1e-9 < tt[0]] = -1  # before the first marker: no trial
            else:
                vals = np.asarray(trs.time_series[:, 0], np.float64)
                if not np.all(np.isfinite(vals)):
                    raise ValueError(f"{file}: data.trials.stream: stream {trs.name!r} has NaN/inf trial ids")
                tr = _value_at_ticks(vals, np.asarray(trs.time_stamps, np.float64), t0, dt_s, n_ticks)
            # a trial is a run of ticks with one id (an id that comes back later is a new trial)
            tr = np.asarray(tr, np.float64)
            change = np.r_[True, tr[1:] != tr[:-1]]
            runs = np.cumsum(change) - 1
            out.trial = np.where(tr >= 0, runs, -1).astype(np.int64)
        return out

    if d.classes is None:
        raise ValueError(f"{origin}: data: give target (regression) or classes (classification)")
    c = d.classes
    mst = _stream(rec, c.stream, file)
    if not mst.is_string:
        raise ValueError(f"{file}: data.classes.stream: stream {mst.name!r} is numeric, not a marker stream")
    names = list(dict.fromkeys(c.map.values()))
    out.class_names = names
    labels_t = np.full(n_ticks, -1, np.int64)
    start_s, stop_s = c.window_s
    n_win = int(round((stop_s - start_s) * rate)) if rate > 0 else 0
    wins, wtrial, wlabel = [], [], []
    n_late = 0
    t_end = t0 + n_ticks * dt_s
    for m, (tm, lab) in enumerate(zip(np.asarray(mst.time_stamps, np.float64), mst.time_series[:, 0])):
        lab = str(lab)
        if lab in c.ignore:
            continue
        if lab not in c.map:
            raise ValueError(f"{file}: marker stream {mst.name!r}: label {lab!r} (at t = {tm:.3f} s) is in neither "
                             f"data.classes.map ({', '.join(c.map)}) nor data.classes.ignore")
        a = int(math.floor((tm + start_s - t0) / dt_s + 1e-6))
        b = int(math.floor((tm + stop_s - t0) / dt_s + 1e-6))
        i0 = int(np.searchsorted(ts, tm + start_s - 1e-9))
        if a < 0 or b > n_ticks or tm + stop_s > t_end + 1e-9 or (n_win and i0 + n_win > len(ts)):
            n_late += 1
            continue
        out.trial[a:b] = m
        labels_t[a:b] = names.index(c.map[lab])
        if n_win:
            wins.append(np.asarray(samples[i0:i0 + n_win].T, np.float64))
            wtrial.append(m)
            wlabel.append(names.index(c.map[lab]))
    if n_late:
        out.repairs.append({"kind": "windows_outside_recording", "stream": mst.name,
                            "detail": f"{n_late} class windows reach outside the input stream and were left out"})
    out.labels = labels_t
    if wins:
        out.windows = np.stack(wins)
        out.window_trial = np.asarray(wtrial, np.int64)
        out.window_label = np.asarray(wlabel, np.int64)
    return out


def synthetic_ticks(s: Any, bin_s: float, encoder: EncoderSection, origin: str = "<config>") -> TickData:
    """The simulated user binned at ``bin_s`` (one row of counts per tick), through the encoder.

    Live, the same user streams 1 ms rows; only ``passthrough`` (a per-tick sum) sees the same
    input from one pre-binned row as from the 1 ms rows it sums, so other encoders are refused
    here (pretrain them on a recording of the user, ``data.kind: recording``)."""
    from rtsnn.datasets.neural import synthetic_session

    if encoder.kind != "passthrough":
        raise ValueError(f"{origin}: encoder.kind: synthetic data is generated pre-binned at {bin_s:g} s, which only "
                         f"'passthrough' sees as it sees the user's live 1 ms rows; got {encoder.kind!r} (record "
                         f"the user and pretrain with data.kind: recording)")

    ses = synthetic_session(duration_s=s.duration_s, bin_s=bin_s, trial_s=s.trial_s, seed=s.seed,
                            n_neurons=s.n_neurons, baseline_hz=s.baseline_hz, depth_hz=s.depth_hz)
    n = ses.counts.shape[1]
    enc, opts = build_encoder(encoder, n, bin_s, None, origin)
    x = encode_ticks(enc, ses.counts, np.arange(ses.counts.shape[0]), ses.counts.shape[0])
    return TickData(name=ses.name, dt_s=float(bin_s), x=x, trial=ses.trial.astype(np.int64), n_channels=n,
                    channel_labels=tuple(f"unit{i}" for i in range(n)),
                    encoder={"kind": encoder.kind, "options": opts},
                    source={"kind": "lsl", "name": None, "type": "Spikes"},
                    target=ses.vel, target_labels=["vx", "vy"][: ses.vel.shape[1]],
                    target_units=["a.u./s"] * ses.vel.shape[1])


# ------------------------------------------------------------------ split
def split(data: TickData, test_fraction: float, seed: int, file: str) -> tuple[np.ndarray, np.ndarray]:
    """(train trial ids, test trial ids), each sorted: a seeded permutation of the trials with
    ``round(test_fraction * n)`` held out (per class for classification); at least 2 trials
    to train on and 1 to test."""
    ids = data.trial_ids
    rng = np.random.default_rng(seed)
    if data.task == "classification":
        cls = np.array([data.labels[np.flatnonzero(data.trial == t)[0]] for t in ids])
        test = []
        for k in range(len(data.class_names)):
            mine = ids[cls == k]
            if mine.size < 2:
                raise ValueError(f"{file}: class {data.class_names[k]!r} has {mine.size} trial(s); the split needs at "
                                 f"least 2 per class (1 to train, 1 to test): a longer recording")
            n_test = min(max(1, int(round(test_fraction * mine.size))), mine.size - 1)
            test += list(rng.permutation(mine)[:n_test])
        te = np.sort(np.asarray(test, np.int64))
        return np.sort(np.setdiff1d(ids, te)), te
    if ids.size < 3:
        raise ValueError(f"{file}: only {ids.size} trial(s) in the recording; the split needs at least 3 (2 to train, "
                         f"1 to test): a longer recording or shorter trials (data.trials)")
    perm = rng.permutation(ids)
    n_test = min(max(1, int(round(test_fraction * ids.size))), ids.size - 2)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


# ------------------------------------------------------------------ sequences
def groups_of(trials: np.ndarray, per: int) -> list[list[int]]:
    """Every run of ``per`` consecutive trials (sorted = time order), one starting at each
    trial: as many training sequences as trials, each crossing ``per - 1`` trial boundaries
    without a reset (``per = 1``: one trial each)."""
    t = list(np.asarray(trials).tolist())
    per = max(1, min(per, len(t)))
    return [t[i:i + per] for i in range(len(t) - per + 1)]


def sequences(data: TickData, groups: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sequence per group: the ticks of its trials in time order, no reset in between.
    Returns ``x`` (T, B, n_in) float32, ``target`` ((T, B, d) float64 for regression, (T, B)
    int64 class indices for classification, -1 as padding) and ``mask`` (T, B): 1 on real ticks."""
    rows = [np.flatnonzero(np.isin(data.trial, g)) for g in groups]
    T, B = max(len(r) for r in rows), len(rows)
    x = np.zeros((T, B, data.x.shape[1]), np.float32)
    m = np.zeros((T, B))
    if data.task == "regression":
        y = np.zeros((T, B, data.target.shape[1]))
    else:
        y = np.full((T, B), -1, np.int64)
    for b, r in enumerate(rows):
        x[: len(r), b] = data.x[r]
        m[: len(r), b] = 1.0
        y[: len(r), b] = data.target[r] if data.task == "regression" else data.labels[r]
    return x, y, m


def whole_stream(data: TickData, trials: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                               list[tuple[int, int, int]]]:
    """The whole recording as one sequence, as a live session sees it (every tick in time order,
    the training trials and the ticks outside any trial included, no reset), scored only on
    ``trials``: ``x`` (T, 1, n_in), ``target`` (T, 1, d) or class indices (T, 1; -1 outside a
    class window), ``mask`` (T, 1) 1 on the ticks of ``trials`` (and inside their class
    windows), and the (trial id, first, stop) tick span of each of ``trials``."""
    T = data.x.shape[0]
    keep = np.isin(data.trial, trials)
    if data.task == "regression":
        y = data.target[:, None, :].astype(np.float64)
    else:
        y = data.labels[:, None].astype(np.int64)
        keep &= data.labels >= 0
    spans = []
    for t in trials:
        ticks = np.flatnonzero(data.trial == t)
        spans.append((int(t), int(ticks[0]), int(ticks[-1]) + 1))
    return data.x[:, None, :].astype(np.float32), y, keep.astype(np.float64).reshape(T, 1), spans
