"""Run a sensor adapter so that its failures cannot stop the session.

:class:`SupervisedSource` wraps any :class:`rtsnn.protocols.Source` (entry point
``supervised``). The adapter's ``open`` and ``pull`` run in a worker thread owned by the
wrapper; the compute thread's ``pull`` only copies rows out of a bounded preallocated ring, so
it never blocks, whatever the adapter does.

* An adapter that **raises** (in ``open`` or ``pull``) is closed and counted in ``errors``.
* An adapter that **hangs** (one ``open``/``pull`` call running longer than
  ``hang_timeout_s``) is abandoned — a Python thread cannot be killed, so its worker is left
  to finish on its own and anything it produces later is discarded — and counted in
  ``hangs``.
* Either way a *new* adapter instance is built (from the plugin name and options, or a
  factory) and started after an exponential backoff: ``backoff_initial_s * 2**k`` capped at
  ``backoff_max_s``, ``k`` the failures since the adapter last ran healthy for
  ``healthy_after_s``. Restarts are counted in ``restarts``.
* While no adapter is delivering (starting, failed, waiting to restart, or stuck in one call
  for more than ``stall_s``, default 50 ms) ``in_gap`` is True;
  the session counts those ticks as ``gap_ticks``. The wrapped adapter's own ``in_gap`` is
  passed through too.

Cost: the worker polls a non-blocking adapter every ``poll_interval_s`` (default 1 ms), which
adds up to that much latency; LSL inlets already recover on their own and need no wrapper.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import numpy as np

from rtsnn.stream.ring import Ring

log = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff: ``initial_s, 2*initial_s, 4*initial_s, ...`` capped at ``max_s``."""

    def __init__(self, initial_s: float = 0.1, max_s: float = 5.0, factor: float = 2.0):
        if not initial_s > 0:
            raise ValueError(f"backoff initial_s must be > 0, got {initial_s!r}")
        if not max_s >= initial_s:
            raise ValueError(f"backoff max_s must be >= initial_s ({initial_s}), got {max_s!r}")
        if not factor >= 1:
            raise ValueError(f"backoff factor must be >= 1, got {factor!r}")
        self.initial_s, self.max_s, self.factor = float(initial_s), float(max_s), float(factor)
        self.failures = 0

    def next(self) -> float:
        """The delay before the next attempt (and count one more failure)."""
        d = min(self.max_s, self.initial_s * self.factor ** min(self.failures, 60))
        self.failures += 1
        return d

    def reset(self) -> None:
        self.failures = 0


def _sample_ring(capacity: int, n_channels: int) -> Ring:
    """Worker (producer) to compute thread (consumer): samples with their timestamps. Full ring:
    the newest samples are dropped and counted (the consumer is behind by a whole ring; keeping
    old samples keeps the timestamps contiguous)."""
    return Ring(capacity, n_channels, np.float32, stamps=True, drop="newest", name="buffer_samples")


class SupervisedSource:
    """A Source that runs another Source under supervision (see the module docstring).

    Give either ``kind`` + ``options`` (an ``rtsnn.sources`` plugin, rebuilt on every
    restart; this is what a config uses) or ``factory`` (a callable returning a fresh adapter).
    """

    def __init__(self, kind: str | None = None, options: dict[str, Any] | None = None, *,
                 factory: Callable[[], Any] | None = None, hang_timeout_s: float = 2.0,
                 backoff_initial_s: float = 0.1, backoff_max_s: float = 10.0, healthy_after_s: float = 5.0,
                 poll_interval_s: float = 0.001, buffer_samples: int = 8192, max_chunk: int = 1024,
                 stall_s: float = 0.05):
        if (kind is None) == (factory is None):
            raise ValueError("SupervisedSource needs exactly one of kind (a source plugin name) or factory")
        if kind == "supervised":
            raise ValueError("SupervisedSource cannot supervise another 'supervised' source")
        if not hang_timeout_s > 0:
            raise ValueError(f"hang_timeout_s must be > 0, got {hang_timeout_s!r}")
        if not healthy_after_s > 0:
            raise ValueError(f"healthy_after_s must be > 0, got {healthy_after_s!r}")
        if not poll_interval_s >= 0:
            raise ValueError(f"poll_interval_s must be >= 0, got {poll_interval_s!r}")
        for name, v in (("buffer_samples", buffer_samples), ("max_chunk", max_chunk)):
            if int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if factory is None:
            from rtsnn import plugins

            opts = dict(options or {})

            def factory() -> Any:
                return plugins.build("rtsnn.sources", kind, opts, "source.options")
        self.kind = kind or getattr(factory, "__name__", "factory")
        self._factory = factory
        self.hang_timeout_s = float(hang_timeout_s)
        self.backoff = Backoff(backoff_initial_s, backoff_max_s)
        self.healthy_after_s = float(healthy_after_s)
        self.poll_interval_s = float(poll_interval_s)
        if not stall_s > 0:
            raise ValueError(f"stall_s must be > 0, got {stall_s!r}")
        self.stall_s = min(float(stall_s), self.hang_timeout_s)
        self.max_chunk = int(max_chunk)
        # the first instance is built here: its options are validated now and it tells n_channels
        self._first = factory()
        self.n_channels = int(self._first.n_channels)
        self._ring = _sample_ring(int(buffer_samples), self.n_channels)
        self._lock = threading.Lock()  # guards the counters and the current-worker handle
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._generation = 0
        self._current: Any = None
        self._healthy = False
        self._call_started: float | None = None  # monotonic start of the adapter call in progress
        self.restarts = 0
        self.errors = 0
        self.hangs = 0
        self.samples = 0
        self.discarded_late = 0  # samples an abandoned worker produced after it was given up
        self.last_error: str | None = None
        self._last_inner_stats: dict[str, Any] = {}

    # ------------------------------------------------------------------ Source API (compute thread)
    def open(self) -> None:
        if self._supervisor is not None:
            raise RuntimeError("SupervisedSource.open called twice")
        self._supervisor = threading.Thread(target=self._supervise, name=f"rtsnn-supervise-{self.kind}",
                                            daemon=True)
        self._supervisor.start()

    def pull(self, samples_out: np.ndarray, timestamps_out: np.ndarray) -> int:
        n = self._ring.pop_into(samples_out, timestamps_out)
        self.samples += n
        return n

    @property
    def in_gap(self) -> bool:
        if not self._healthy:
            return True
        started = self._call_started
        if started is not None and time.monotonic() - started > self.stall_s:
            return True  # stuck in a call: no data now, whether or not it turns into a hang
        return bool(getattr(self._current, "in_gap", False))

    @property
    def healthy(self) -> bool:
        return self._healthy

    def stats(self) -> dict[str, Any]:
        cur = self._current
        inner = self._last_inner_stats
        if cur is not None and self._healthy:
            try:
                inner = cur.stats()
                self._last_inner_stats = inner
            except Exception as err:  # noqa: BLE001 - stats of a failing adapter must not fail ours
                inner = {"error": f"{type(err).__name__}: {err}"}
        return {"kind": "supervised", "adapter": self.kind, "healthy": self._healthy, "restarts": self.restarts,
                "errors": self.errors, "hangs": self.hangs, "samples": self.samples,
                "dropped_samples": self._ring.dropped, "discarded_late": self.discarded_late,
                "last_error": self.last_error, "adapter_stats": inner}

    def close(self) -> None:
        self._stop.set()
        th = self._supervisor
        if th is not None:
            th.join(self.hang_timeout_s + 2.0)

    # ------------------------------------------------------------------ supervisor thread
    def _fail(self, what: str, err: BaseException | None) -> None:
        with self._lock:
            if what == "hang":
                self.hangs += 1
                self.last_error = f"hang: an adapter call ran longer than {self.hang_timeout_s} s"
            else:
                self.errors += 1
                self.last_error = f"{type(err).__name__}: {err}"
        log.warning("source adapter %s failed (%s); restarting with backoff", self.kind, self.last_error)

    def _supervise(self) -> None:
        first = True
        while not self._stop.is_set():
            if first:
                adapter, first = self._first, False
            else:
                try:
                    adapter = self._factory()
                except Exception as err:  # noqa: BLE001 - a failing constructor is one more failure
                    self._fail("error", err)
                    self._stop.wait(self.backoff.next())
                    continue
                with self._lock:
                    self.restarts += 1
            outcome = self._run_one(adapter)
            self._healthy = False
            if outcome == "stopped":
                break
            self._stop.wait(self.backoff.next())

    def _run_one(self, adapter: Any) -> str:
        """Run one adapter instance until it fails, hangs, or we stop. Returns the outcome."""
        self._generation += 1
        gen = self._generation
        done = threading.Event()
        result: dict[str, Any] = {}
        self._current = adapter
        self._call_started = time.monotonic()

        def worker() -> None:
            buf = np.zeros((self.max_chunk, self.n_channels), np.float32)
            ts = np.zeros(self.max_chunk, np.float64)
            try:
                adapter.open()
                self._call_started = None
                started = time.monotonic()
                while not self._stop.is_set() and gen == self._generation:
                    self._call_started = time.monotonic()
                    n = adapter.pull(buf, ts)
                    self._call_started = None
                    if gen != self._generation:  # given up on while we were stuck: discard
                        self.discarded_late += max(int(n), 0)
                        break
                    if n > 0:
                        self._healthy = True
                        self._ring.push_block(buf, ts, int(n))
                    elif not self._healthy:
                        self._healthy = True  # opened and answering; silence is the adapter's business
                    if self.backoff.failures and time.monotonic() - started > self.healthy_after_s:
                        self.backoff.reset()
                    if n <= 0 and self.poll_interval_s:
                        time.sleep(self.poll_interval_s)
            except BaseException as err:  # noqa: BLE001 - reported to the supervisor
                result["error"] = err
            finally:
                done.set()

        th = threading.Thread(target=worker, name=f"rtsnn-adapter-{self.kind}-{gen}", daemon=True)
        th.start()
        while True:
            if done.wait(0.02):
                break
            if self._stop.is_set():
                done.wait(self.hang_timeout_s)
                self._close_quietly(adapter, wait=done.is_set())
                return "stopped"
            started = self._call_started
            if started is not None and time.monotonic() - started > self.hang_timeout_s:
                self._generation += 1  # the stuck worker discards whatever it returns later
                self._healthy = False
                self._fail("hang", None)
                self._close_quietly(adapter, wait=False)
                return "hang"
        if self._stop.is_set() and "error" not in result:
            self._close_quietly(adapter, wait=True)
            return "stopped"
        self._healthy = False
        self._fail("error", result.get("error"))
        self._close_quietly(adapter, wait=True)
        return "error"

    def _close_quietly(self, adapter: Any, wait: bool) -> None:
        """Close an adapter; for a hung one in a throwaway thread (close may hang as well)."""
        def close() -> None:
            try:
                adapter.close()
            except Exception:  # noqa: BLE001 - it already failed; closing is best effort
                pass
        if wait:
            close()
        else:
            threading.Thread(target=close, name=f"rtsnn-adapter-close-{self.kind}", daemon=True).start()
