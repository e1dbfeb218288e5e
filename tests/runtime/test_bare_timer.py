"""The machine's own deadline floor, measured in the session's process before it starts
(``rtsnn demo`` / ``rtsnn run --bare-timer-s``): the figures exist and agree with their counts.
Nothing here asserts how late a wake-up may be (that is the machine's business)."""

from __future__ import annotations

import json

import pytest

from rtsnn.config import parse_config
from rtsnn.runtime.loop import bare_timer
from rtsnn.runtime.session import Session
from rtsnn.runtime.summary import bare_timer_figures


def test_bare_timer_counts_agree():
    r = bare_timer(0.001, 0.05, spin_s=2e-4, phase_ns=500_000, max_lag_ticks=50)
    assert set(r) == {"s", "ticks", "misses", "skipped", "miss_rate", "lateness_p99_us", "realtime"}
    assert r["s"] == 0.05 and 1 <= r["ticks"] <= 50 and 0 <= r["misses"] <= r["ticks"]
    assert r["ticks"] + r["skipped"] >= 50  # every slot of the 50 was run or skipped
    assert r["miss_rate"] == r["misses"] / r["ticks"] and r["lateness_p99_us"] >= 0
    with pytest.raises(ValueError, match="duration_s"):
        bare_timer(0.001, 0.0, spin_s=2e-4)


def test_figures_give_the_ratio_only_when_the_bare_timer_missed():
    none = bare_timer_figures(None, 3, 1000)
    assert none["bare_timer_s"] == 0.0 and none["deadline_miss_ratio"] is None and none["bare_timer_ticks"] is None
    bare = {"s": 2.0, "ticks": 2000, "misses": 0, "skipped": 0, "lateness_p99_us": 12.0}
    zero = bare_timer_figures(bare, 3, 1000)
    assert zero["bare_timer_miss_rate"] == 0.0 and zero["deadline_miss_ratio"] is None  # read the counts
    some = bare_timer_figures({**bare, "misses": 4}, 3, 1000)
    assert some["bare_timer_miss_rate"] == 0.002 and some["deadline_miss_ratio"] == pytest.approx(1.5)
    assert set(none) == set(zero) == set(some)


def _session(tmp_path, spike_recording, name):
    path, _ = spike_recording(3000, 4)
    return Session(parse_config({
        "session": {"name": name, "duration_s": 0.5, "out_dir": str(tmp_path / "s"), "warmup_ticks": 20,
                    "monitor": False, "max_catchup_s": 0.0},
        "source": {"kind": "xdf_file", "options": {"path": str(path), "n_channels": 4,
                                                   "pace": "realtime", "stamp": "local"}},
        "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
        "model": {"random": {"n_rec": 8, "n_out": 2}},
    }, "<test>"))


def test_summary_reports_the_bare_timer_beside_the_sessions_misses(tmp_path, spike_recording):
    summary = _session(tmp_path, spike_recording, "bare").run(bare_timer_s=0.2)
    json.dumps(summary, allow_nan=False)
    assert summary["bare_timer_s"] == 0.2 and summary["bare_timer_ticks"] >= 1
    assert 0 <= summary["bare_timer_misses"] <= summary["bare_timer_ticks"]
    bare_rate = summary["bare_timer_misses"] / summary["bare_timer_ticks"]
    assert summary["bare_timer_miss_rate"] == bare_rate
    if bare_rate == 0:
        assert summary["deadline_miss_ratio"] is None
    else:
        assert summary["deadline_miss_ratio"] == pytest.approx(summary["deadline_miss_rate"] / bare_rate)
    causes = summary["deadline_miss_causes"]
    assert causes["late_wake"] + causes["slow_tick"] == summary["deadline_misses"]


def test_without_a_bare_timer_the_keys_are_there_and_empty(tmp_path, spike_recording):
    summary = _session(tmp_path, spike_recording, "nobare").run()
    assert summary["bare_timer_s"] == 0.0
    assert summary["bare_timer_ticks"] is None and summary["deadline_miss_ratio"] is None
    with pytest.raises(ValueError, match="bare_timer_s"):
        _session(tmp_path, spike_recording, "badbare").run(bare_timer_s=-1.0)


def test_cli_flag_takes_zero_and_refuses_negative():
    from rtsnn.cli import build_parser

    p = build_parser()
    assert p.parse_args(["demo"]).bare_timer_s == 2.0
    assert p.parse_args(["demo", "--bare-timer-s", "0"]).bare_timer_s == 0.0
    assert p.parse_args(["run", "x.yaml"]).bare_timer_s == 0.0
    with pytest.raises(SystemExit) as e:
        p.parse_args(["demo", "--bare-timer-s", "-1"])
    assert e.value.code == 2
