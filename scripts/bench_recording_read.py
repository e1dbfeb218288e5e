"""Reading an XDF recording: the recording layer vs pyxdf, and the peak memory of the layer's
read and of the pretraining read. Prints one strict JSON line.

A realistic file is written first with rtsnn's own XDF writer: ``--duration`` s of a
``--channels``-channel float32 stream ``eeg`` at ``--rate-hz`` (in chunks of ``--chunk``
samples, as a recorder flushes them), a 2-channel float32 ``target`` stream at 100 Hz and an
irregular marker stream (one marker per second). Then, on the same file, alternating so that
both see the same page cache:

- ``layer_s``: :func:`rtsnn.recording.open_recording` (every stream, every repair check);
- ``pyxdf_s``: ``pyxdf.load_xdf`` with clock synchronisation and dejittering off (its fastest
  setting; the layer does neither unless asked);

each the median of ``--repeats`` runs; ``speed_ratio`` = pyxdf_s / layer_s (> 1: the layer is
faster; the issue's floor is >= 1).

Memory, each figure from its own fresh Python process (so that one read's freed buffers and
compiled code do not hide or inflate the next), after a warm-up read of a 2 s file of the same
layout (imports, the encoder's numba compile):

- ``layer``: ``open_recording`` of the file; ``decoded_mb`` = time_series + time_stamps of every
  numeric stream it returns;
- ``pretrain``: :func:`rtsnn.learn.offline.pretrain_data.load_recording_ticks` with a regression
  data section (input ``eeg``, target ``target``, trials ``every_s: 1``, ``dt_s: 0.02``,
  passthrough encoder), the path ``rtsnn pretrain`` reads a recording through;
  ``decoded_mb`` = time_series + time_stamps of the input and target streams as the layer
  returns them;
- ``pyxdf``: ``pyxdf.load_xdf`` as above, over the same decoded size as ``layer``.

For each: ``peak_heap_mb`` is tracemalloc's peak over the call (numpy's buffers are traced;
pages of a memory-mapped file are not) and ``peak_rss_mb`` the growth of the peak resident
size (VmHWM, reset just before the call) over the resident size before it: heap, mapped file
pages and everything else the process touched (Linux only). ``heap_over_decoded`` and
``rss_over_decoded`` divide them by ``decoded_mb`` (the issue's ceiling is 1.5).

    python scripts/bench_recording_read.py --duration 60 --channels 96 --rate-hz 1000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_file(path: Path, duration_s: float, n_ch: int, rate_hz: float, chunk: int) -> dict:
    from rtsnn.recording.xdf_writer import StreamInfoData, XdfWriter

    n = int(round(duration_s * rate_hz))
    target_every = max(1, int(round(rate_hz / TARGET_RATE_HZ)))  # one target row per this many input rows
    rng = np.random.default_rng(0)
    w = XdfWriter(path)
    w.add_stream(1, StreamInfoData("eeg", type="EEG", channel_count=n_ch, nominal_srate_hz=rate_hz,
                                   channel_format="float32", channel_labels=[f"ch{i}" for i in range(n_ch)]))
    w.add_stream(2, StreamInfoData("markers", type="Markers", channel_count=1, nominal_srate_hz=0.0,
                                   channel_format="string"))
    w.add_stream(3, StreamInfoData("target", type="Kinematics", channel_count=2, nominal_srate_hz=TARGET_RATE_HZ,
                                   channel_format="float32", channel_labels=["vx", "vy"]))
    for i0 in range(0, n, chunk):
        k = min(chunk, n - i0)
        ts = 100.0 + (i0 + np.arange(k)) / rate_hz
        w.write_samples(1, ts, rng.normal(size=(k, n_ch)).astype(np.float32))
        rows = np.flatnonzero((i0 + np.arange(k)) % target_every == 0)
        if rows.size:
            w.write_samples(3, ts[rows], rng.normal(size=(rows.size, 2)).astype(np.float32))
        if (i0 // int(rate_hz)) != ((i0 + k) // int(rate_hz)):
            w.write_samples(2, ts[-1:], [["tick"]])
        w.flush()
    w.close()
    return {"samples": n, "bytes": path.stat().st_size}


def _read_layer(path: Path):
    from rtsnn.recording import open_recording

    return open_recording(path)


def _read_pyxdf(path: Path):
    import pyxdf

    return pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)


TARGET_RATE_HZ = 100.0

# One memory measurement in a fresh process: argv = kind (layer | pretrain | pyxdf), how
# (heap | rss), the file, the warm-up file. Prints "<peak MB> <decoded MB>".
PROBE = """
import sys, tracemalloc
from pathlib import Path
import numpy as np

kind, how, path, warm = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])

def decoded(streams):
    return sum(s.time_series.nbytes + s.time_stamps.nbytes for s in streams if not s.is_string)

if kind == "layer":
    from rtsnn.recording import open_recording
    def read(p):
        return open_recording(p)
    def size(p):
        return decoded(open_recording(p).streams)
elif kind == "pretrain":
    from rtsnn.learn.offline.pretrain import DataConfig
    from rtsnn.learn.offline.pretrain_data import EncoderSection, load_recording_ticks
    from rtsnn.recording import open_recording
    enc = EncoderSection(kind="passthrough")
    def read(p):
        d = DataConfig(kind="recording", path=str(p), dt_s=0.02, input={"stream": "eeg"},
                       target={"stream": "target"}, trials={"every_s": 1.0}).resolved()
        return load_recording_ticks(d, enc, p, log=None)
    def size(p):
        return decoded([s for s in open_recording(p).streams if s.name in ("eeg", "target")])
else:
    import pyxdf
    from rtsnn.recording import open_recording
    def read(p):
        return pyxdf.load_xdf(str(p), synchronize_clocks=False, dejitter_timestamps=False)
    def size(p):
        return decoded(open_recording(p).streams)

def status_kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

read(warm)  # imports, numba compile, first-use caches: not part of the read
if how == "heap":
    tracemalloc.start()
    out = read(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
else:
    before = status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM (the peak resident size) to the current size
    out = read(path)
    peak = (status_kb("VmHWM") - before) * 1000
del out
print(peak / 1e6, size(path) / 1e6)
"""


def probe(kind: str, how: str, path: Path, warm: Path) -> tuple[float, float]:
    """(peak MB, decoded MB) of one read, measured in a fresh process."""
    res = subprocess.run([sys.executable, "-c", PROBE, kind, how, str(path), str(warm)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise SystemExit(f"bench_recording_read: {kind}/{how} probe failed: {res.stderr.strip().splitlines()[-1:]}")
    peak, dec = res.stdout.strip().splitlines()[-1].split()
    return float(peak), float(dec)


def memory(kind: str, path: Path, warm: Path) -> dict:
    heap, dec = probe(kind, "heap", path, warm)
    rss, _ = probe(kind, "rss", path, warm)
    return {"decoded_mb": round(dec, 2), "peak_heap_mb": round(heap, 2), "heap_over_decoded": round(heap / dec, 3),
            "peak_rss_mb": round(rss, 2), "rss_over_decoded": round(rss / dec, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of recording (default 60)")
    ap.add_argument("--channels", type=int, default=96)
    ap.add_argument("--rate-hz", type=float, default=1000.0)
    ap.add_argument("--chunk", type=int, default=32, help="samples per Samples chunk (default 32)")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.xdf"
        warm = Path(tmp) / "warm.xdf"
        made = write_file(path, a.duration, a.channels, a.rate_hz, a.chunk)
        write_file(warm, 2.0, a.channels, a.rate_hz, a.chunk)
        # the two readers agree on what they read
        rec = _read_layer(path)
        streams, _ = _read_pyxdf(path)
        for name in ("eeg", "target"):
            mine = next(s for s in rec.streams if s.name == name)
            theirs = next(s for s in streams if s["info"]["name"][0] == name)
            np.testing.assert_array_equal(mine.time_series, theirs["time_series"])
            np.testing.assert_array_equal(mine.time_stamps, theirs["time_stamps"])
        del rec, streams
        layer_s, pyxdf_s = [], []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            _read_layer(path)
            layer_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _read_pyxdf(path)
            pyxdf_s.append(time.perf_counter() - t0)
        mem = {kind: memory(kind, path, warm) for kind in ("layer", "pretrain", "pyxdf")}
    out = {
        "file": {"duration_s": a.duration, "channels": a.channels, "rate_hz": a.rate_hz, "chunk": a.chunk,
                 "samples": made["samples"], "target_rate_hz": TARGET_RATE_HZ, "mb": round(made["bytes"] / 1e6, 2)},
        "repeats": a.repeats,
        "layer_s": round(statistics.median(layer_s), 4),
        "pyxdf_s": round(statistics.median(pyxdf_s), 4),
        "speed_ratio": round(statistics.median(pyxdf_s) / statistics.median(layer_s), 2),
        "memory": mem,
    }
    print(json.dumps(out, allow_nan=False))


if __name__ == "__main__":
    main()
