"""A stand-in for rtsnn.runtime.session.Session that feeds a SessionMonitor exactly the way the
session is asked to: the compute thread calls the tap's ``emit`` once per tick (as one more
sink), the asyncio I/O thread runs ``monitor.run(self)``.

Known content, so the dashboard's view can be checked against it:
* spikes: neuron ``i < n_rec // 2`` fires at tick ``k`` when ``(k + i) % 5 == 0``; the upper
  half never fires;
* outputs: ``y = [sin(2 pi f t), cos(2 pi f t)]``, ``target = 0.5 * y`` (t = k * dt_s);
* source.stats(): samples = ticks, ``in_gap`` True, ``losses`` 3; learner.stats():
  ``loss = 1 / (1 + t)`` (a falling learning curve).
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from rtsnn.runtime.metrics import LatencyStats
from rtsnn.runtime.monitor import SessionMonitor

STAGES = ("ingest", "encode", "step", "readout", "learn", "emit", "compute", "tick", "e2e", "lateness", "input_age")
FREQ_HZ = 0.5


class _Backend:
    def __init__(self, n_rec: int):
        self.z = np.zeros(n_rec, np.float32)

    def spikes(self) -> np.ndarray:
        return self.z


class _Source:
    def __init__(self):
        self.samples = 0

    def stats(self) -> dict:
        return {"samples": self.samples, "repaired_values": 7, "dropped_samples": 0, "losses": 3,
                "reconnects": 2, "connected": True, "in_gap": True}


class _Learner:
    def __init__(self):
        self.t_s = 0.0

    def stats(self) -> dict:
        return {"loss": 1.0 / (1.0 + self.t_s), "calibrated": self.t_s > 1.0}


class FakeSession:
    def __init__(self, name: str, n_rec: int = 64, n_out: int = 2, dt_s: float = 0.001, **monitor_kw):
        self.name, self.n_rec, self.n_out, self.dt_s = name, n_rec, n_out, dt_s
        self.stats = LatencyStats(list(STAGES))
        self.counters = dict(ticks=0, deadline_misses=0, skipped_ticks=0, gap_ticks=0)
        self.source = _Source()
        self.learner = _Learner()
        self.backend = _Backend(n_rec)
        self.target = np.zeros(n_out, np.float32)
        self.y = np.zeros(n_out, np.float32)
        self.monitor = SessionMonitor(name, n_rec, n_out, dt_s, output_labels=[f"out{i}" for i in range(n_out)],
                                      **monitor_kw)
        self.monitor.attach(self.backend, self.target)
        self.sinks = [self.monitor.sink]
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "FakeSession":
        self.monitor.open()
        for sink in self.sinks:
            sink.open([f"out{i}" for i in range(self.n_out)], [""] * self.n_out)
        self._threads = [threading.Thread(target=self._compute, daemon=True),
                         threading.Thread(target=self._io, daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        for t in self._threads:
            t.join(5)
        self.monitor.close()

    def _compute(self) -> None:
        half = self.n_rec // 2
        idx = np.arange(self.n_rec)
        t0 = time.perf_counter()
        k = 0
        while not self.stop_event.is_set():
            target_t = t0 + k * self.dt_s
            delay = target_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.05:  # fell behind (loaded machine): skip slots, like the session
                behind = int(-delay / self.dt_s)
                k += behind
                self.counters["skipped_ticks"] += behind
            self.backend.z[:] = ((idx < half) & ((k + idx) % 5 == 0)).astype(np.float32)
            t = k * self.dt_s
            self.y[0] = np.sin(2 * np.pi * FREQ_HZ * t)
            if self.n_out > 1:
                self.y[1] = np.cos(2 * np.pi * FREQ_HZ * t)
            self.target[:] = 0.5 * self.y
            for sink in self.sinks:
                sink.emit(self.y, 0.0)
            for i, st in enumerate(STAGES):
                self.stats.record(st, 1000.0 * (i + 1))  # stage i: 1 us * (i + 1)
            self.counters["ticks"] += 1
            if k % 100 == 0:
                self.counters["deadline_misses"] += 1
            self.source.samples += 1
            self.learner.t_s = t
            k += 1

    def _io(self) -> None:
        async def main() -> None:
            task = asyncio.create_task(self.monitor.run(self))
            while not self.stop_event.is_set():
                await asyncio.sleep(0.05)
            task.cancel()

        asyncio.run(main())


def poll_for(client, seconds: float, interval_s: float = 0.03) -> None:
    """Poll a MonitorClient every ``interval_s`` for ``seconds`` (as the dashboard's frames do)."""
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        client.poll()
        time.sleep(interval_s)
