"""Replay pacing: does ``rtsnn replay`` drift? Prints one JSON line.

A synthetic recording (a 1 kHz 8-channel stream, a 250 Hz 64-channel stream and an
irregular marker stream, ``--duration`` seconds) is replayed over LSL at speed 1 by
:class:`rtsnn.stream.replay.LslReplayer` (absolute deadlines), with a consumer inlet on the
1 kHz stream. Reported per run:

- ``lateness_us``: publish time minus the sample's deadline, every wake-up (p50/p99/max);
- ``drift_us``: median lateness over the last 10 % of the run minus that over the first 10 %
  (a pacer that drifts shows it here), and ``slope_us_per_h`` from a least-squares line;
- ``end_error_ms``: wall time of the run minus the recording's duration;
- ``consumer_delay_us``: the inlet's receive time (LSL clock) minus the sample's timestamp,
  p50 over the first and the last 10 % (what a consumer sees).

The peer, in the same script, paces the same schedule the naive way (``time.sleep`` of the
interval between consecutive samples) for ``--peer-duration`` seconds; its drift grows with
every sleep's overshoot. Use ``--duration 3600`` for the one-hour figure.

``read``: load time of a generated ``--read-mb`` MB XDF file (64-ch float32, 1 kHz) by our
reader and by pyxdf (median of 3 each, same file).

    python scripts/bench_replay.py --duration 60 --peer-duration 10 --read-mb 50
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np
import pylsl

from rtsnn.stream.replay import LslReplayer, build_timeline
from rtsnn.recording.xdf_reader import Recording, StreamData
from rtsnn.recording.xdf_writer import StreamInfoData


def synthetic_recording(duration_s: float, seed: int = 0) -> Recording:
    rng = np.random.default_rng(seed)
    streams = []
    t0 = 12345.0
    for sid, (name, srate, n_ch) in enumerate((("bench-1k", 1000.0, 8), ("bench-250", 250.0, 64))):
        n = int(duration_s * srate)
        info = StreamInfoData(name, "EEG", n_ch, srate, "float32", f"bench:{name}")
        ts = t0 + np.arange(n) / srate
        streams.append(StreamData(sid, info, ts, rng.normal(size=(n, n_ch)).astype(np.float32)))
    k = int(duration_s * 2)
    mk_t = np.sort(t0 + rng.uniform(0, duration_s, k))
    vals = np.empty((k, 1), object)
    vals[:, 0] = [f"m{i}" for i in range(k)]
    streams.append(StreamData(2, StreamInfoData("bench-markers", "Markers", 1, 0.0, "string"), mk_t, vals))
    return Recording("<synthetic>", streams)


def _drift(rel_s: np.ndarray, late_us: np.ndarray) -> dict[str, float]:
    n = len(late_us)
    k = max(1, n // 10)
    slope = np.polyfit(rel_s, late_us, 1)[0] * 3600.0 if n > 2 else float("nan")
    return {"drift_us": float(np.median(late_us[-k:]) - np.median(late_us[:k])),
            "slope_us_per_h": float(slope)}


def run_replayer(rec: Recording, prefix: str) -> dict:
    rp = LslReplayer(rec, speed=1.0, name_prefix=prefix)
    rp.open()
    found = pylsl.resolve_bypred(f"name='{prefix}bench-1k'", 1, 5.0)
    inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    inlet.open_stream(5.0)
    time.sleep(0.5)
    stop = threading.Event()
    recv: list[tuple[np.ndarray, np.ndarray]] = []
    buf = np.zeros((4096, 8), np.float32)

    def consume():
        while not stop.is_set():  # poll every ~1 ms (a timeout > 0 would wait to fill the buffer)
            _, ts = inlet.pull_chunk(timeout=0.0, max_samples=4096, dest_obj=buf)
            if ts:
                now = pylsl.local_clock()
                recv.append((np.asarray(ts), np.full(len(ts), now)))
            time.sleep(0.001)

    th = threading.Thread(target=consume, daemon=True)
    th.start()
    out = rp.run()
    time.sleep(0.2)
    stop.set()
    th.join(2)
    rel, late = rp.lateness()
    late_us = late / 1e3
    ts = np.concatenate([r[0] for r in recv]) if recv else np.zeros(0)
    rx = np.concatenate([r[1] for r in recv]) if recv else np.zeros(0)
    k = max(1, len(ts) // 10)
    delay = (rx - ts) * 1e6
    return {
        "samples": out["samples"],
        "lateness_us": {"p50": float(np.percentile(late_us, 50)), "p99": float(np.percentile(late_us, 99)),
                        "max": float(late_us.max()), "wakeups": int(len(late_us))},
        **_drift(rel, late_us),
        "end_error_ms": (out["wall_s"] - out["duration_s"]) * 1e3,
        "consumer_received": int(len(ts)),
        "consumer_delay_us": {"first_10pct_p50": float(np.median(delay[:k])) if len(ts) else None,
                              "last_10pct_p50": float(np.median(delay[-k:])) if len(ts) else None},
    }


def run_naive(rec: Recording, duration_s: float, prefix: str) -> dict:
    """The same schedule paced by relative sleeps (the common mistake)."""
    tl = build_timeline(rec)
    outlets = [pylsl.StreamOutlet(pylsl.StreamInfo(prefix + "naive-" + s.name, s.info.type, s.info.channel_count,
                                                   s.info.nominal_srate_hz, s.info.channel_format,
                                                   f"bench:naive:{s.name}"))
               for s in tl.streams]
    times = np.concatenate(tl.rel)
    which = np.concatenate([np.full(len(r), k) for k, r in enumerate(tl.rel)])
    index = np.concatenate([np.arange(len(r)) for r in tl.rel])
    order = np.argsort(times, kind="stable")
    times, which, index = times[order], which[order], index[order]
    keep = times <= duration_s
    times, which, index = times[keep], which[keep], index[keep]
    late = np.zeros(len(times))
    start = time.perf_counter()
    prev = 0.0
    for i in range(len(times)):
        gap = times[i] - prev
        if gap > 0:
            time.sleep(gap)
        prev = times[i]
        s = tl.streams[which[i]]
        row = s.time_series[index[i]]
        outlets[which[i]].push_sample([str(v) for v in row] if s.is_string else row)
        late[i] = (time.perf_counter() - start - times[i]) * 1e6
    return {"lateness_us": {"p50": float(np.percentile(late, 50)), "p99": float(np.percentile(late, 99)),
                           "max": float(late.max())},
            **_drift(times, late), "end_error_ms": float(late[-1] / 1e3), "duration_s": duration_s}


def bench_read(size_mb: float, tmp_dir: str) -> dict:
    """Load time of a generated file (64-ch float32 at 1 kHz in 100-sample chunks): ours vs pyxdf."""
    import os

    import pyxdf

    from rtsnn.recording.xdf_reader import load_xdf
    from rtsnn.recording.xdf_writer import XdfWriter

    path = os.path.join(tmp_dir, "bench_read.xdf")
    n_ch, chunk = 64, 100
    per_chunk = chunk * (9 + 4 * n_ch)
    n_chunks = max(1, int(size_mb * 1e6 / per_chunk))
    rng = np.random.default_rng(0)
    block = rng.normal(size=(chunk, n_ch)).astype(np.float32)
    with XdfWriter(path) as w:
        w.add_stream(1, StreamInfoData("big", "EEG", n_ch, 1000.0, "float32"))
        for i in range(n_chunks):
            w.write_samples(1, (i * chunk + np.arange(chunk)) / 1000.0, block)
            if i % 1000 == 0:
                w.flush()
    size = os.path.getsize(path)
    res = {}
    for name, fn in (("ours", lambda: load_xdf(path)),
                     ("pyxdf", lambda: pyxdf.load_xdf(path, synchronize_clocks=False, dejitter_timestamps=False))):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        res[name] = float(np.median(times))
    os.remove(path)
    return {"file_mb": size / 1e6, "samples": n_chunks * chunk, "load_s_median_of_3": res,
            "mb_per_s": {k: size / 1e6 / v for k, v in res.items()}, "speedup_vs_pyxdf": res["pyxdf"] / res["ours"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="recording length replayed (s)")
    ap.add_argument("--peer-duration", type=float, default=10.0, help="seconds of the naive peer")
    ap.add_argument("--read-mb", type=float, default=50.0, help="size of the file for the load benchmark (0: skip)")
    args = ap.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        read = bench_read(args.read_mb, tmp) if args.read_mb > 0 else None
    prefix = f"rtsnn-bench-{int(time.time())}-"
    rec = synthetic_recording(args.duration)
    ours = run_replayer(rec, prefix)
    peer = run_naive(synthetic_recording(args.peer_duration), args.peer_duration, prefix)
    print(json.dumps({"bench": "replay_pacing", "duration_s": args.duration, "absolute_deadlines": ours,
                      "naive_relative_sleep": peer, "read": read}))


if __name__ == "__main__":
    main()
