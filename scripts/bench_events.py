"""Decode + encode throughput of event-camera data on one core, on the real files in ../shared/data/events.

For each file: ``decode`` = the numba decoder over the file body already in memory into
preallocated column buffers (EVT3), or ``read_events`` on the AEDAT4 file, the call the
``dvs_file`` source makes (dv-processing when installed and the file is intact; our own packet
reader, LZ4 + flatbuffers, reported as ``native_decode_ev_per_s``, is the fallback for damaged files); ``encode`` = the ``event_pool`` encoder fed 1 ms ticks of session rows
(background-activity 5 ms and refractory 1 ms filters on, polarity channels); ``combined`` =
events / (decode time + encode time), the rate one core sustains end to end. Peers in the same
run: expelliarmus (EVT3) and dv-processing (AEDAT4) decode rates. Prints one JSON line of medians.

Clocks: every timed call is measured with both the process's CPU time (``time.process_time``, all
threads: the work the core(s) did, unaffected by waiting for the scheduler on a shared machine)
and wall time.
The ``*_ev_per_s`` rates and ``meets_floor`` use CPU time ("sustains on one core"); the
``*_wall`` twins and ``meets_floor_wall`` use wall time and equal them on an idle machine. The
load average before and after the run is printed with the results, because cache sharing with
other jobs still slows the CPU-time figures on a loaded machine.

    .venv/bin/python scripts/bench_events.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from rtsnn.events import kernels as EK
from rtsnn.events.pooling import EventPoolEncoder
from rtsnn_dvs import kernels as K
from rtsnn_dvs.aedat4 import read_aedat4
from rtsnn_dvs.files import read_events, split_header

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "events"


def median_time(fn, repeats: int) -> tuple[float, float]:
    """(median process CPU seconds, median wall seconds) of ``fn()`` after one warm-up call."""
    fn()  # warm (compile / cache)
    cpu, wall = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(cpu), statistics.median(wall)


def _rates(n: int, dec: tuple[float, float], enc: tuple[float, float]) -> dict:
    return {"decode_ev_per_s": n / dec[0], "encode_ev_per_s": n / enc[0], "combined_ev_per_s": n / (dec[0] + enc[0]),
            "decode_ev_per_s_wall": n / dec[1], "encode_ev_per_s_wall": n / enc[1],
            "combined_ev_per_s_wall": n / (dec[1] + enc[1])}


def _encode_ticks(ev, width, height, grid, repeats):
    rows = np.zeros((len(ev), 4), np.float32)
    ts = np.zeros(len(ev))
    EK.events_to_rows(ev["t"].copy(), ev["x"].copy(), ev["y"].copy(), ev["p"].copy(), 0, len(ev), 0,
                      int(ev["t"][0]), 0.0, 1.0, rows, ts)
    t_rel = ev["t"] - ev["t"][0]
    bounds = np.searchsorted(t_rel, np.arange(0, int(t_rel[-1]) + 2000, 1000))
    ticks = [np.ascontiguousarray(rows[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    enc = EventPoolEncoder(width, height, grid[0], grid[1], refractory_us=1000, ba_window_us=5000)
    out = np.zeros(enc.n_out, np.float32)

    def run():
        enc.reset()
        for blk in ticks:
            enc.encode(blk, blk.shape[0], out)

    return median_time(run, repeats), enc.stats(), len(ticks)


def bench_evt3(repeats: int) -> dict:
    path = DATA / "prophesee_evt3_sample.raw"
    data = path.read_bytes()
    _, body = split_header(data)
    words = np.frombuffer(data[body:body + (len(data) - body) // 2 * 2], "<u2")
    cap = 1 << 19
    bufs = (np.zeros(cap, np.int64), np.zeros(cap, np.int16), np.zeros(cap, np.int16), np.zeros(cap, np.uint8))
    n_ev = [0]

    def decode():
        state, counters = K.new_state(), K.new_counters()
        start, total = 0, 0
        while start < len(words):
            n, start = K.decode_evt3(words, start, state, counters, 0, *bufs)
            total += n
        n_ev[0] = total

    t_dec = median_time(decode, repeats)
    ev = np.zeros(n_ev[0], [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    ev["t"], ev["x"], ev["y"], ev["p"] = (b[:n_ev[0]] for b in bufs)
    t_enc, stats, n_ticks = _encode_ticks(ev, 1280, 720, (32, 18), repeats)
    out = {"file": path.name, "events": int(n_ev[0]), **_rates(n_ev[0], t_dec, t_enc),
           "ticks_1ms": n_ticks, "encoder_kept_fraction": stats["events_out"] / max(stats["events_in"], 1)}
    try:
        from expelliarmus import Wizard

        def peer():
            w = Wizard(encoding="evt3")
            w.set_file(str(path))
            w.read()

        t_peer = median_time(peer, repeats)
        out["expelliarmus_decode_ev_per_s"] = n_ev[0] / t_peer[0]
        out["decode_vs_expelliarmus"] = t_peer[0] / t_dec[0]
    except ImportError:
        out["expelliarmus_decode_ev_per_s"] = None
    return out


def bench_aedat4(repeats: int) -> dict:
    path = DATA / "dvxplorer_sample.aedat4"
    box = {}

    def decode():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            box["rec"] = read_events(path)

    t_dec = median_time(decode, repeats)
    ev = box["rec"].events
    native = read_aedat4(str(path), "native").events
    if not np.array_equal(native, ev):
        raise RuntimeError("the native AEDAT4 reader and read_events disagree on the sample file")
    t_native = median_time(lambda: read_aedat4(str(path), "native"), repeats)
    t_enc, stats, n_ticks = _encode_ticks(ev, 320, 240, (16, 12), repeats)
    out = {"file": path.name, "events": len(ev), **_rates(len(ev), t_dec, t_enc),
           "ticks_1ms": n_ticks, "encoder_kept_fraction": stats["events_out"] / max(stats["events_in"], 1),
           "decode_reader": box["rec"].header.get("reader", "native"),
           "decode_includes": "file read + LZ4 + flatbuffer parse",
           "native_decode_ev_per_s": len(ev) / t_native[0],
           "native_combined_ev_per_s": len(ev) / (t_native[0] + t_enc[0])}
    try:
        t_peer = median_time(lambda: read_aedat4(str(path), "dv"), repeats)
        out["dv_processing_decode_ev_per_s"] = len(ev) / t_peer[0]
    except Exception:  # noqa: BLE001 - peer absent
        out["dv_processing_decode_ev_per_s"] = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    results = {"evt3": bench_evt3(args.repeats), "aedat4": bench_aedat4(args.repeats)}
    floor = 10e6
    print(json.dumps({"bench": "events", "repeats": args.repeats, "floor_ev_per_s": floor, "clock": "process_cpu",
                      "meets_floor": all(r["combined_ev_per_s"] >= floor for r in results.values()),
                      "meets_floor_wall": all(r["combined_ev_per_s_wall"] >= floor for r in results.values()),
                      "load_avg_1min": [load_before, os.getloadavg()[0]], "cpus": os.cpu_count(), **results}))


if __name__ == "__main__":
    main()
