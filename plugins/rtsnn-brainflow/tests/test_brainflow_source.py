"""BrainFlow adapter on BrainFlow's synthetic board (id -1): no hardware needed."""

from __future__ import annotations

import os
import time

import numpy as np
import pylsl
import pytest

from rtsnn.testing import import_or_skip



import_or_skip("brainflow")

from rtsnn_brainflow.source import BrainFlowSource  # noqa: E402


def test_synthetic_board_streams_on_the_lsl_clock():
    # the synthetic board back-fills about a second of samples at start; keep them here
    # (the default max_backlog_s=1 would drop those older than 1 s, counted as dropped_samples)
    src = BrainFlowSource(-1, max_backlog_s=None)
    assert src.n_channels == 16 and src.srate_hz == 250.0
    t_open = pylsl.local_clock()
    src.open()
    try:
        buf, ts = np.zeros((1024, 16), np.float32), np.zeros(1024)
        got, stamps = [], []
        end = time.monotonic() + 1.5  # the synthetic board delivers its first ~second in a burst
        while time.monotonic() < end:
            n = src.pull(buf, ts)
            got.append(buf[:n].copy())
            stamps.append(ts[:n].copy())
            time.sleep(0.01)
        x, t = np.concatenate(got), np.concatenate(stamps)
    finally:
        src.close()
    assert 200 <= len(x) <= 600, len(x)  # 250 Hz for 1.5 s, give or take the start-up burst
    assert np.all(np.isfinite(x)) and x.std(axis=0).min() > 0  # 16 live, varying channels
    assert np.all(np.diff(t) >= 0)
    assert t_open - 2.0 < t[0] and t[-1] <= pylsl.local_clock() + 0.01  # wall clock mapped onto LSL's
    rate = (len(t) - 1) / (t[-1] - t[0])
    assert 150 < rate < 400, rate
    s = src.stats()
    assert s["samples"] == len(x) and s["streaming"] is False


def test_row_selection_by_index():
    src = BrainFlowSource(-1, channels=[1, 2])
    assert src.n_channels == 2 and src.rows == [1, 2]


@pytest.mark.parametrize("kwargs, msg", [
    ({"board_id": 123456}, "not a BrainFlow board id"),
    ({"board_id": "cyton"}, "integer BrainFlow board id"),
    ({"channels": "brainwaves"}, "channels must be one of"),
    ({"channels": [999]}, "row indices must be integers"),
    ({"serial_prot": "/dev/ttyUSB0"}, "unknown BrainFlow connection option"),
    ({"nan_policy": "ignore"}, "nan_policy"),
])
def test_bad_options(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        BrainFlowSource(**kwargs)


def test_missing_real_board_is_a_clear_connection_error():
    src = BrainFlowSource(0, serial_port="/dev/rtsnn-no-such-port")  # OpenBCI Cyton
    with pytest.raises(ConnectionError, match="board 0 .*serial_port='/dev/rtsnn-no-such-port'.*could not be opened"):
        src.open()
    assert src.board is None


def test_registered_under_rtsnn_sources():
    from rtsnn import plugins
    from rtsnn.config import ConfigError

    eps = plugins.available("rtsnn.sources")
    if "brainflow" not in eps:
        assert not os.environ.get("CI"), "CI installs rtsnn-brainflow: its entry point must be registered"
        pytest.skip("rtsnn-brainflow is not pip-installed (pip install -e plugins/rtsnn-brainflow)")
    src = plugins.build("rtsnn.sources", "brainflow", {"board_id": -1, "channels": "eeg"}, "source")
    assert isinstance(src, BrainFlowSource)
    with pytest.raises(ConfigError, match="source.options: unknown BrainFlow connection option"):
        plugins.build("rtsnn.sources", "brainflow", {"board_id": -1, "serial_prot": "x"}, "source")


def test_supervised_board_restarts_after_a_failure():
    """Under supervision a board whose pull fails is reopened and samples keep coming."""
    from rtsnn.stream.supervise import SupervisedSource

    made = []

    class Flaky(BrainFlowSource):
        def pull(self, samples_out, timestamps_out):
            if not made.index(self) and self.pulls > 20:
                raise RuntimeError("USB dongle unplugged")
            return super().pull(samples_out, timestamps_out)

    def factory():
        made.append(Flaky(-1))
        return made[-1]

    sup = SupervisedSource(factory=factory, backoff_initial_s=0.05, poll_interval_s=0.005)
    sup.open()
    try:
        buf, ts = np.zeros((1024, 16), np.float32), np.zeros(1024)
        total = 0
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            total += sup.pull(buf, ts)
            time.sleep(0.005)
        s = sup.stats()
    finally:
        sup.close()
    assert s["errors"] == 1 and s["restarts"] == 1 and "USB dongle unplugged" in s["last_error"]
    assert made[1].stats()["samples"] > 20 and total > 60
