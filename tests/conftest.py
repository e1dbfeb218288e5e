"""Fixtures shared across the test folders.

* ``broker``: a private mosquitto on a free loopback port (stopped after the test);
  ``broker_factory``: the same with options (password file, TLS), any number per test.
* ``@pytest.mark.needs_mosquitto``: for a test that runs mosquitto itself (or its tools).
  Both skip when mosquitto is not installed, except under CI (``CI`` set), where a missing
  broker must fail loudly instead of silently skipping the MQTT tests.
* ``import_or_skip(module, reason)`` / ``skip_or_fail(reason)``: for a package of the dev extra
  (or a system tool that .ci/run installs); skip outside CI, fail under CI, where everything is
  installed and a skip would hide a broken install. They live in :mod:`rtsnn.testing` (the
  plugins' tests use them too); test modules here take them ``from conftest import ...``.
* ``reach_session(root, ...)``: runs a max-pace session replaying a reaching-like npz recording
  (cosine-tuned rates, 2-D velocity as the teacher) and returns its folder.
* ``spike_recording``: writes a spike raster as a one-stream XDF file, the input of the
  sessions that replay a recording (``kind: xdf_file``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from rtsnn.testing import import_or_skip, skip_or_fail  # noqa: F401 - tests import them from here

MOSQUITTO_MISSING = "mosquitto not installed (apt-get install -y mosquitto)"


def mosquitto_missing() -> bool:
    """True when tests needing mosquitto should skip: not installed and not under CI."""
    from rtsnn.stream.mqtt_common import find_mosquitto

    return find_mosquitto() is None and not os.environ.get("CI")


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_mosquitto: runs a mosquitto broker (skipped outside CI "
                                       "when mosquitto is not installed)")


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_mosquitto") is not None and mosquitto_missing():
        pytest.skip(MOSQUITTO_MISSING)


@pytest.fixture
def broker_factory(tmp_path):
    """``make(**options)`` starts a ``PrivateBroker`` (options: ``password_file``, ``tls_cert``,
    ``tls_key``, ...) in this test's tmp_path; every broker made is stopped at teardown."""
    if mosquitto_missing():
        pytest.skip(MOSQUITTO_MISSING)
    from rtsnn.stream.mqtt_common import PrivateBroker

    made = []

    def make(**options):
        workdir = tmp_path / f"broker{len(made)}"
        workdir.mkdir()
        b = PrivateBroker(str(workdir), **options).start()
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def broker(broker_factory):
    """A running anonymous mosquitto on a free loopback port (``.port``; ``.stop()`` and
    ``.start()`` take it down and bring it back on the same port)."""
    return broker_factory()


@pytest.fixture
def spike_recording(tmp_path):
    """``write(n_samples, n_channels, *, spike_prob=0.05, poisson_mean=None, seed=0, name="spk",
    filename="in.xdf", srate_hz=1000.0) -> (path, xs)``.

    ``xs`` (float32, (n_samples, n_channels)) holds Bernoulli spikes of probability
    ``spike_prob`` per sample, or Poisson counts of mean ``poisson_mean`` when that is given;
    it is written as one regularly sampled stream (type ``Spikes``, sample k stamped
    ``k / srate_hz``) to ``tmp_path / filename``.
    """
    from rtsnn.recording.xdf_writer import write_xdf_stream

    def write(n_samples: int, n_channels: int, *, spike_prob: float = 0.05, poisson_mean: float | None = None,
              seed: int = 0, name: str = "spk", filename: str = "in.xdf",
              srate_hz: float = 1000.0) -> tuple[Path, np.ndarray]:
        rng = np.random.default_rng(seed)
        if poisson_mean is not None:
            xs = rng.poisson(poisson_mean, (n_samples, n_channels)).astype(np.float32)
        else:
            xs = (rng.random((n_samples, n_channels)) < spike_prob).astype(np.float32)
        path = write_xdf_stream(tmp_path / filename, xs, srate_hz, name=name, type="Spikes")
        return Path(path), xs

    return write


def reach_session(root: Path, *, name: str, n_bins: int, n_neurons: int, dt_s: float, n_rec: int,
                  neuron: dict | None = None, learner: dict | None = None) -> Path:
    """A max-pace session (deterministic, no LSL) replaying a reaching-like recording in the npz
    layout (``rates_hz`` of ``n_neurons`` cosine-tuned units, ``vel`` as the teacher, ``bin_s``
    = ``dt_s``) through a Poisson-rate encoder and a random model with outputs vx, vy (cm/s);
    returns the session folder."""
    from rtsnn.config import parse_config
    from rtsnn.runtime.session import Session

    t = np.arange(n_bins) * dt_s
    vel = np.stack([np.sin(2 * np.pi * 0.3 * t) + 0.5 * np.sin(2 * np.pi * 0.11 * t),
                    np.cos(2 * np.pi * 0.23 * t)], axis=1).astype(np.float32)
    pd = np.random.default_rng(0).uniform(0, 2 * np.pi, n_neurons)
    rates = np.clip(20 + 15 * (vel[:, :1] * np.cos(pd) + vel[:, 1:] * np.sin(pd)), 0, None).astype(np.float32)
    path = root / "reach.npz"
    np.savez(path, rates_hz=rates, pos=np.cumsum(vel, axis=0) * dt_s, vel=vel)
    src = {"path": str(path), "stream": "rates_hz", "bin_s": dt_s, "n_channels": n_neurons}
    cfg = {
        "session": {"name": name, "dt_s": dt_s, "pace": "max", "out_dir": str(root), "monitor": False},
        "source": {"kind": "xdf_file", "options": src},
        "teacher": {"kind": "xdf_file", "options": {**src, "stream": "vel", "n_channels": 2}},
        "encoder": {"kind": "poisson_rate", "options": {"n_channels": n_neurons, "rate_max_hz": 100.0,
                                                        "low": 0.0, "high": 100.0, "seed": 3}},
        "model": {"random": {"n_rec": n_rec, "seed": 1, "output_labels": ["vx", "vy"],
                             "output_units": ["cm/s", "cm/s"], "neuron": neuron or {"model": "lif"}}},
    }
    if learner is not None:
        cfg["learner"] = learner
    summary = Session(parse_config(cfg)).run()
    assert summary["ticks"] == n_bins
    return Path(summary["folder"])


class LslPusher:
    """A thread pushing ``sample`` every ~2 ms into whatever LSL outlet ``self.outlet`` holds
    (set it to None to make the stream vanish, to another outlet to replace it). A context
    manager: started on entry, stopped and joined on exit; ``start()`` / ``stop()`` otherwise."""

    def __init__(self, outlet, sample=(1.0, 2.0)):
        import threading

        self.outlet = outlet
        self.sample = list(sample)
        self.stop_ev = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import time

        while not self.stop_ev.is_set():
            o = self.outlet
            if o is not None:
                o.push_sample(self.sample)
            time.sleep(0.002)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

