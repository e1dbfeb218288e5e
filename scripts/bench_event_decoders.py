"""Event-file decoders side by side: rtsnn-dvs's own against expelliarmus and dv-processing.

Each decoder reads a whole file from its path into a structured array of events (the file
read, header parse and decode all timed), on one core. Formats and files:

- EVT 3.0: ``../shared/data/events/prophesee_evt3_sample.raw`` (219,596 events);
- EVT 2.0 and DAT: the same events (spec-decoded) written by ``rtsnn_dvs.reference``'s
  writers into a temporary folder (no EVT2 / DAT sample ships with the shared data), the
  recording tiled ``--tile`` times with its times shifted, so a run decodes several million
  events;
- AEDAT4: ``../shared/data/events/dvxplorer_sample.aedat4`` (111,954 events).

Decoders: ``own`` (``rtsnn_dvs.files.read_events(..., decoder="own")``, the numba decoders; for
EVT3 also ``own_expelliarmus_convention``), ``expelliarmus`` (``Wizard(encoding).read()``; EVT2,
EVT3, DAT), ``layer_read_events`` (EVT2, DAT: ``read_events`` as the layer calls it, i.e.
expelliarmus plus the checks that send damaged files to our decoder), ``own_native`` (the
sequential AEDAT4 packet reader) and ``dv_processing`` (AEDAT4). Every decoder's events are
compared with the reference decode of the same file before timing (``agrees``), and
``layer_uses`` names the decoder the recording layer (``rtsnn recording info``) runs for
each format. Rates are events per second of process CPU time (median of ``--repeats``
after one warm-up); the ``_wall`` twins use wall time. Prints one strict JSON line.

    .venv/bin/python scripts/bench_event_decoders.py [--repeats 7] [--tile 20]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from bench_events import median_time  # scripts/ is on sys.path when a script runs

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "events"


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and all(np.array_equal(a[f], b[f]) for f in ("t", "x", "y", "p"))


def _expelliarmus(encoding: str, path: Path):
    try:
        from expelliarmus import Wizard
    except ImportError:
        return None

    def read():
        w = Wizard(encoding=encoding)
        w.set_file(str(path))
        return w.read()
    return read


def _bench(path: Path, decoders: dict, reference: np.ndarray, repeats: int) -> dict:
    out = {"file": path.name, "bytes": path.stat().st_size, "events": len(reference), "decoders": {}}
    for name, fn in decoders.items():
        if fn is None:
            out["decoders"][name] = None
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            agrees = _same(fn(), reference)
        cpu, wall = median_time(fn, repeats)
        out["decoders"][name] = {"ev_per_s": len(reference) / cpu, "ev_per_s_wall": len(reference) / wall,
                                 "agrees": agrees}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--tile", type=int, default=20, help="copies of the EVT3 sample's events in the EVT2 / DAT files")
    args = ap.parse_args()

    from rtsnn_dvs.aedat4 import read_aedat4
    from rtsnn_dvs.files import read_events
    from rtsnn_dvs.recording import LAYER_DECODERS
    from rtsnn_dvs.reference import write_dat, write_evt2

    load_before = os.getloadavg()[0]
    evt3 = DATA / "prophesee_evt3_sample.raw"
    aedat4 = DATA / "dvxplorer_sample.aedat4"
    results: dict = {}
    spec = read_events(evt3, convention="spec").events
    truth = read_events(evt3, convention="expelliarmus").events
    results["evt3"] = _bench(evt3, {
        "own": lambda: read_events(evt3, decoder="own").events,
        "own_expelliarmus_convention": lambda: read_events(evt3, convention="expelliarmus", decoder="own").events,
        "expelliarmus": _expelliarmus("evt3", evt3)}, spec, args.repeats)
    # expelliarmus's EVT3 times follow its own convention (see docs/events.md): checked against that
    exp = results["evt3"]["decoders"]["expelliarmus"]
    if exp is not None:
        exp["agrees"] = False
        exp["agrees_with_expelliarmus_convention"] = _same(_expelliarmus("evt3", evt3)(), truth)
        exp["note"] = "times in expelliarmus's TIME_LOW-carry convention, not the EVT 3.0 spec's"

    span = int(spec["t"][-1] - spec["t"][0]) + 1000
    tiled = np.concatenate([spec] * args.tile)
    tiled["t"] += np.repeat(np.arange(args.tile, dtype=np.int64) * span, len(spec))
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, writer, name in (("evt2", write_evt2, "tiled_evt2.raw"), ("dat", write_dat, "tiled.dat")):
            path = Path(tmp) / name
            path.write_bytes(writer(tiled))
            ref = tiled.copy()
            if fmt == "dat":
                ref["t"] &= 0xFFFFFFFF
            results[fmt] = _bench(path, {"own": lambda p=path: read_events(p, decoder="own").events,
                                         "expelliarmus": _expelliarmus(fmt, path),
                                         "layer_read_events": lambda p=path: read_events(p).events},
                                  ref, args.repeats)

    native = read_aedat4(str(aedat4), "native").events

    def dv():
        try:
            import dv_processing  # noqa: F401
        except ImportError:
            return None
        return lambda: read_aedat4(str(aedat4), "dv").events
    results["aedat4"] = _bench(aedat4, {"own_native": lambda: read_aedat4(str(aedat4), "native").events,
                                        "dv_processing": dv()}, native, args.repeats)
    for fmt, r in results.items():
        r["layer_uses"] = LAYER_DECODERS[fmt]
        rates = {k: v["ev_per_s"] for k, v in r["decoders"].items() if v is not None}
        r["fastest"] = max(rates, key=rates.get)
    print(json.dumps({"bench": "event_decoders", "repeats": args.repeats, "tile": args.tile, "clock": "process_cpu",
                      "load_avg_1min": [load_before, os.getloadavg()[0]], "cpus": os.cpu_count(), **results},
                     allow_nan=False))


if __name__ == "__main__":
    main()
