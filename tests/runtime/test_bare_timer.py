"""The machine's own deadline floor, measured in the session's process before its inputs open
(``rtsnn demo`` / ``rtsnn run --bare-timer-s``): the figures exist and agree with their counts,
the timer costs no input (nothing buffers during it), it is refused at ``pace: max``, and a
session's misses go to the counter of their cause. Nothing here asserts how late a wake-up may
be (that is the machine's business)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from rtsnn.config import ConfigError, parse_config
from rtsnn.runtime.loop import bare_timer, live_pacing, miss_cause
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


def _config(tmp_path, spike_recording, name, pace="realtime"):
    path, _ = spike_recording(3000, 4)
    return {
        "session": {"name": name, "duration_s": 0.5, "out_dir": str(tmp_path / "s"), "warmup_ticks": 20,
                    "monitor": False, "max_catchup_s": 0.0, "pace": pace},
        "source": {"kind": "xdf_file", "options": {"path": str(path), "n_channels": 4,
                                                   "pace": "realtime" if pace == "realtime" else "tick",
                                                   "stamp": "local"}},
        "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
        "model": {"random": {"n_rec": 8, "n_out": 2}},
    }


def _session(tmp_path, spike_recording, name, pace="realtime"):
    return Session(parse_config(_config(tmp_path, spike_recording, name, pace), "<test>"), "<test>")


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


# ------------------------------------------------------------------ the cause of a miss
def test_miss_cause_is_the_larger_share_of_the_overrun():
    assert miss_cause(900_000, 200_000) == "misses_late_wake"  # woke 0.9 ms late, 0.2 ms of work
    assert miss_cause(50_000, 1_500_000) == "misses_slow_tick"  # on time, 1.5 ms of work
    assert miss_cause(600_000, 600_000) == "misses_slow_tick"  # a tie: the work did not fit its slack


def test_timed_ticks_count_each_miss_under_its_cause(tmp_path, spike_recording):
    session = _session(tmp_path, spike_recording, "causes")
    timed = live_pacing(session, budget_ns=800_000).timed
    c = session.counters
    dt_ns = 1_000_000
    t_sched = 10 * dt_ns

    def tick(start_after_ns, work_ns):  # a tick with no input: only the deadline accounting runs
        t0 = t_sched + start_after_ns
        timed(0, 0.0, t0, t0 + work_ns, t_sched)
        return (c["deadline_misses"], c["misses_late_wake"], c["misses_slow_tick"])

    assert tick(100_000, 400_000) == (0, 0, 0)  # ends at 0.5 ms: no miss
    assert tick(900_000, 200_000) == (1, 1, 0)  # woke late: ends at 1.1 ms
    assert tick(50_000, 1_500_000) == (2, 1, 1)  # ran long: ends at 1.55 ms
    assert tick(0, dt_ns) == (2, 1, 1)  # ends exactly at the deadline: not a miss


# ------------------------------------------------------------------ pace max: refused
def test_pace_max_refuses_a_bare_timer_before_making_anything(tmp_path, spike_recording):
    session = _session(tmp_path, spike_recording, "maxbare", pace="max")
    with pytest.raises(ConfigError, match=r"<test>: bare_timer_s 0.5 .*session.pace is max"):
        session.run(bare_timer_s=0.5)
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())
    assert session.run()["pace"] == "max"  # without one it runs


def test_cli_refuses_a_bare_timer_at_pace_max_in_one_line(tmp_path, spike_recording, capsys):
    from rtsnn.cli import main

    cfg = tmp_path / "max.yaml"
    cfg.write_text(yaml.safe_dump(_config(tmp_path, spike_recording, "climax", pace="max")))
    assert main(["run", str(cfg), "--bare-timer-s", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(cfg) in err and "--bare-timer-s 1" in err and "pace is max" in err
    assert not (tmp_path / "s").exists()
    assert main(["run", str(cfg), "--bare-timer-s", "0", "--quiet", "--json"]) == 0


def test_the_demos_default_timer_meets_only_live_pace():
    """``rtsnn demo`` times 2 s by default: its configs (plain and --drift) are live, never max."""
    from rtsnn.cli import _demo_config_dict
    from rtsnn.learn.online.adaptation import drift_demo_config

    base = _demo_config_dict()
    for data in (base, drift_demo_config(base)):
        assert parse_config(data, "<demo>").session.pace == "realtime"


# ------------------------------------------------------------------ the timer costs no input
class BacklogSource:
    """A live source's start-up backlog, like an LSL inlet's: from ``open()`` on, a sample
    arrives every ``1 / rate_hz`` s and waits for ``pull``; one more than ``max_backlog_s``
    old when pulled is dropped and counted (``dropped_samples``)."""

    def __init__(self, n_channels: int, rate_hz: float = 1000.0, max_backlog_s: float = 0.3):
        from pylsl import local_clock

        self.n_channels, self.rate_hz, self.max_backlog_s = n_channels, rate_hz, max_backlog_s
        self._clock = local_clock
        self.t_open = self._t_next = None
        self.samples = self.dropped = 0

    def open(self) -> None:
        self.t_open = self._t_next = self._clock()

    def pull(self, samples_out: np.ndarray, timestamps_out: np.ndarray) -> int:
        now = self._clock()
        stale = int((now - self.max_backlog_s - self._t_next) * self.rate_hz)
        if stale > 0:
            self.dropped += stale
            self._t_next += stale / self.rate_hz
        n = min(int((now - self._t_next) * self.rate_hz), samples_out.shape[0])
        if n <= 0:
            return 0
        timestamps_out[:n] = self._t_next + np.arange(n) / self.rate_hz
        samples_out[:n] = 0.0
        self._t_next += n / self.rate_hz
        self.samples += n
        return n

    def stats(self) -> dict:
        return {"samples": self.samples, "dropped_samples": self.dropped}

    def close(self) -> None:
        pass


def test_the_bare_timer_runs_before_the_source_opens_and_costs_no_input(tmp_path, spike_recording):
    """A 1 s timer with the source already open would leave 1 s of input queued, 0.7 s of it
    beyond the source's 0.3 s backlog limit: ~700 samples dropped in warm-up."""
    session = _session(tmp_path, spike_recording, "nobacklog")
    source = session.source = BacklogSource(4)
    timer_end = []
    measure = session._bare_timer
    session._bare_timer = lambda s: (r := measure(s), timer_end.append(source._clock()))[0]
    summary = session.run(bare_timer_s=1.0)
    assert summary["bare_timer_ticks"] >= 1 and len(timer_end) == 1
    assert source.t_open > timer_end[0]  # the source opened after the timer ended
    assert summary["dropped_in_warmup"] < 100  # what the start itself left, not the timer's second
