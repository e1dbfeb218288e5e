"""Reading an XDF recording through the recording layer vs pyxdf, and the layer's peak memory.
Prints one strict JSON line.

A realistic file is written first with rtsnn's own XDF writer: ``--duration`` s of a
``--channels``-channel float32 stream at ``--rate-hz`` (in chunks of ``--chunk`` samples, as
a recorder flushes them) plus an irregular marker stream (one marker per second). Then, on
the same file, alternating so that both see the same page cache:

- ``layer_s``: :func:`rtsnn.recording.open_recording` (every stream, every repair check);
- ``pyxdf_s``: ``pyxdf.load_xdf`` with clock synchronisation and dejittering off (its fastest
  setting; the layer does neither unless asked);

each the median of ``--repeats`` runs; ``speed_ratio`` = pyxdf_s / layer_s (> 1: the layer is
faster; the issue's floor is >= 1). Memory: ``peak_heap_mb`` is tracemalloc's peak while the
layer reads (numpy's buffers are traced), ``decoded_mb`` the bytes of the arrays it returns
(time_series + time_stamps of every stream), ``peak_over_decoded`` their ratio (floor <= 1.5).
An uncompressed file is memory-mapped, not copied into the heap: its pages are the page
cache's, counted in ``peak_rss_delta_mb`` (the growth of the peak resident size over the read,
mapped file pages included, in a fresh process; Linux only) beside the heap figure.

    python scripts/bench_recording_read.py --duration 60 --channels 96 --rate-hz 1000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def write_file(path: Path, duration_s: float, n_ch: int, rate_hz: float, chunk: int) -> dict:
    from rtsnn.recording.xdf_writer import StreamInfoData, XdfWriter

    n = int(round(duration_s * rate_hz))
    rng = np.random.default_rng(0)
    w = XdfWriter(path)
    w.add_stream(1, StreamInfoData("eeg", type="EEG", channel_count=n_ch, nominal_srate_hz=rate_hz,
                                   channel_format="float32", channel_labels=[f"ch{i}" for i in range(n_ch)]))
    w.add_stream(2, StreamInfoData("markers", type="Markers", channel_count=1, nominal_srate_hz=0.0,
                                   channel_format="string"))
    for i0 in range(0, n, chunk):
        k = min(chunk, n - i0)
        ts = 100.0 + (i0 + np.arange(k)) / rate_hz
        w.write_samples(1, ts, rng.normal(size=(k, n_ch)).astype(np.float32))
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


RSS_PROBE = """
import sys
from rtsnn.recording import open_recording

def status_kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

before = status_kb("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM (the peak resident size) to the current size
rec = open_recording(sys.argv[1])
print((status_kb("VmHWM") - before) / 1000.0)
"""


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
        made = write_file(path, a.duration, a.channels, a.rate_hz, a.chunk)
        # the two readers agree on what they read
        rec = _read_layer(path)
        streams, _ = _read_pyxdf(path)
        eeg = next(s for s in streams if s["info"]["name"][0] == "eeg")
        np.testing.assert_array_equal(rec.streams[0].time_series, eeg["time_series"])
        np.testing.assert_array_equal(rec.streams[0].time_stamps, eeg["time_stamps"])
        decoded = sum(s.time_series.nbytes + s.time_stamps.nbytes for s in rec.streams if not s.is_string)
        del rec, streams, eeg
        layer_s, pyxdf_s = [], []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            _read_layer(path)
            layer_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _read_pyxdf(path)
            pyxdf_s.append(time.perf_counter() - t0)
        tracemalloc.start()
        rec = _read_layer(path)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del rec
        tracemalloc.start()
        streams = _read_pyxdf(path)
        _, peak_pyxdf = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del streams
        rss = subprocess.run([sys.executable, "-c", RSS_PROBE, str(path)], capture_output=True, text=True,
                             check=True).stdout.strip().splitlines()[-1]
    out = {
        "file": {"duration_s": a.duration, "channels": a.channels, "rate_hz": a.rate_hz, "chunk": a.chunk,
                 "samples": made["samples"], "mb": round(made["bytes"] / 1e6, 2)},
        "repeats": a.repeats,
        "layer_s": round(statistics.median(layer_s), 4),
        "pyxdf_s": round(statistics.median(pyxdf_s), 4),
        "speed_ratio": round(statistics.median(pyxdf_s) / statistics.median(layer_s), 2),
        "decoded_mb": round(decoded / 1e6, 2),
        "peak_heap_mb": round(peak / 1e6, 2),
        "peak_over_decoded": round(peak / decoded, 3),
        "pyxdf_peak_heap_mb": round(peak_pyxdf / 1e6, 2),
        "peak_rss_delta_mb": round(float(rss), 2),
    }
    print(json.dumps(out, allow_nan=False))


if __name__ == "__main__":
    main()
