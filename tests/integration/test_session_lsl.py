"""Sessions end to end over real LSL outlets and inlets on this machine.

The tests in the default run check behaviour (counts, ordering, what reaches whom); the
latency and deadline bounds are the ``slow`` tests at the end (``make test-timing``), each
running its session again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest

from rtsnn.config import parse_config
from rtsnn.runtime.session import Session

pytestmark = pytest.mark.lsl


def _cfg(name, n_ch, tmp_path, duration_s=2.0, **source_opts):
    return parse_config({
        "session": {"name": "t", "duration_s": duration_s, "out_dir": str(tmp_path), "warmup_ticks": 50},
        "source": {"kind": "lsl", "options": {"name": name, "n_channels": n_ch, "resolve_timeout_s": 3.0,
                                               **source_opts}},
        "encoder": {"kind": "passthrough", "options": {"n_channels": n_ch}},
        "model": {"random": {"n_rec": 32, "n_out": 2, "seed": 0}},
    })


class Publisher(threading.Thread):
    """Pushes one sample per ms to a real outlet until stopped; can drop and re-create it."""

    def __init__(self, name, n_ch, fill=1.0):
        super().__init__(daemon=True)
        self.name, self.n_ch, self.fill = name, n_ch, fill
        self.src_id = name + "-id"
        self.outlet = self._make()
        self.stop_ev = threading.Event()
        self.paused = threading.Event()
        self.pushed = 0

    def _make(self):
        return pylsl.StreamOutlet(pylsl.StreamInfo(self.name, "Spikes", self.n_ch, 1000, "float32", self.src_id))

    def run(self):
        rng = np.random.default_rng(0)
        # absolute 1 ms deadlines: a bare sleep(0.001) overshoots (to ~1.3 ms on a busy machine),
        # and the session tests count on about one sample per tick
        t_next = time.perf_counter()
        while not self.stop_ev.is_set():
            if self.paused.is_set():
                time.sleep(0.01)
                t_next = time.perf_counter()
                continue
            x = (rng.random(self.n_ch) < 0.05).astype(np.float32) * self.fill
            self.outlet.push_sample(x)
            self.pushed += 1
            t_next += 0.001
            wait_s = t_next - time.perf_counter()
            if wait_s > 0:
                time.sleep(wait_s)

    def drop_stream(self):
        self.paused.set()
        time.sleep(0.01)
        del self.outlet
        self.outlet = None

    def restore_stream(self):
        self.outlet = self._make()
        self.paused.clear()


def _published_session(tmp_path) -> dict:
    """2 s of a session on 8 channels from a real 1 kHz LSL outlet; returns its summary."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    pub = Publisher(name, 8)
    pub.start()
    try:
        return Session(_cfg(name, 8, tmp_path)).run()
    finally:
        pub.stop_ev.set()


def test_session_runs_and_writes_its_folder(tmp_path):
    summary = _published_session(tmp_path)
    assert summary["ticks"] == 2000
    assert summary["samples_in"] > 1500  # the publisher keeps 1 kHz on average (absolute deadlines)
    assert summary["e2e_latency_us"]["n"] == summary["samples_in"]
    assert summary["e2e_latency_us"]["p50"] > 0
    # the input age is e2e less the consuming tick's own time (always > 0): as many samples,
    # percentiles no larger, and the maximum strictly smaller (equal if the tick time were not taken off)
    age = summary["input_age_us"]
    assert age["n"] == summary["samples_in"]
    assert age["p50"] <= summary["e2e_latency_us"]["p50"] and age["max"] < summary["e2e_latency_us"]["max"]
    for stage in ("ingest", "encode", "step", "readout", "emit"):
        assert summary["stage_latency_us"][stage]["n"] == summary["ticks"]
    folder = Path(summary["folder"])
    assert (folder / "config.yaml").is_file()
    assert json.loads((folder / "summary.json").read_text())["ticks"] == summary["ticks"]
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert len(lines) >= 2 and "e2e_us" in json.loads(lines[-1])
    cols = json.loads((folder / "outputs.json").read_text())["columns"]
    rows = np.fromfile(folder / "outputs.f64", dtype="<f8").reshape(-1, len(cols))
    assert len(rows) == summary["ticks"] - summary["outputs_dropped"]
    assert np.all(np.diff(rows[:, 0]) >= 1)  # tick index increases


def test_channel_count_mismatch_refused_with_both_values(tmp_path):
    name = f"t-{uuid.uuid4().hex[:8]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Spikes", 4, 1000, "float32", name))
    with pytest.raises(ValueError) as e:
        Session(_cfg(name, 8, tmp_path)).run()
    assert "4" in str(e.value) and "8" in str(e.value)
    del outlet


def test_nan_samples_repaired_and_counted(tmp_path):
    name = f"t-{uuid.uuid4().hex[:8]}"
    pub = Publisher(name, 4, fill=np.nan)
    pub.start()
    try:
        summary = Session(_cfg(name, 4, tmp_path, duration_s=1.0)).run()
    finally:
        pub.stop_ev.set()
    assert summary["repaired_samples"] > 0
    assert summary["ticks"] == 1000  # the session kept ticking


def test_stream_loss_flags_gap_and_reconnects(tmp_path):
    name = f"t-{uuid.uuid4().hex[:8]}"
    pub = Publisher(name, 4)
    pub.start()
    result = {}

    def run():
        result["summary"] = Session(_cfg(name, 4, tmp_path, duration_s=4.5, loss_timeout_s=0.3)).run()

    th = threading.Thread(target=run)
    th.start()
    time.sleep(1.0)
    pub.drop_stream()
    time.sleep(1.5)
    pub.restore_stream()
    th.join(30)
    pub.stop_ev.set()
    s = result["summary"]
    assert s["gap_ticks"] > 0
    assert s["source"]["losses"] >= 1 and s["source"]["reconnects"] >= 1
    assert s["ticks"] == 4500


def _demo_json(tmp_path) -> dict:
    """``rtsnn demo --duration 9 --json`` in a subprocess; its summary."""
    proc = subprocess.run([sys.executable, "-m", "rtsnn.cli", "demo", "--duration", "9", "--json",
                           "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_demo_cli_json(tmp_path):
    out = _demo_json(tmp_path)
    for key in ("e2e_latency_us", "stage_latency_us", "deadline_miss_rate", "dropped_samples", "ticks", "r2"):
        assert key in out
    assert set(out["e2e_latency_us"]) >= {"p50", "p99", "p999", "max"}
    assert set(out["stage_latency_us"]) >= {"ingest", "encode", "step", "readout", "learn", "emit"}
    assert out["ticks"] == 9000
    assert 0.0 <= out["input_age_over_one_tick"] <= 1.0
    assert out["learner"]["calibrated"] is True
    # a decoder that tracks the intended velocity at all; the 60 s benchmark reports the real figure
    assert out["r2"] is not None and out["r2"] > 0.3


def test_demo_session_publishes_decoded_stream_a_real_inlet_receives(tmp_path):
    """The demo's decoded outlet carries the substituted name, labels and units, and its samples
    reach an independent LSL inlet while the session runs."""
    import yaml
    from importlib import resources

    data = yaml.safe_load(resources.files("rtsnn").joinpath("configs/demo.yaml").read_text())
    data["session"].update(duration_s=6.0, out_dir=str(tmp_path))
    data["learner"]["options"]["calibration_s"] = 2.0
    session = Session(parse_config(data, "<demo>"))
    decoded = f"{session.synthetic_prefix}-decoded"
    assert session.synthetic_prefix and "{" not in decoded
    result = {}
    th = threading.Thread(target=lambda: result.update(summary=session.run()))
    th.start()
    try:
        infos = pylsl.resolve_byprop("name", decoded, 1, 8.0)
        assert infos, f"no LSL stream named {decoded!r} appeared"
        inlet = pylsl.StreamInlet(infos[0])
        desc = inlet.info(timeout=5.0).desc()
        ch = desc.child("channels").child("channel")
        labels_units = []
        while not ch.empty():
            labels_units.append((ch.child_value("label"), ch.child_value("unit")))
            ch = ch.next_sibling()
        assert labels_units == [("vx", "a.u./s"), ("vy", "a.u./s")]
        got = 0
        while got <= 500 and th.is_alive():  # ~1 kHz: 0.5 s of outputs, or whatever came before the end
            chunk, stamps = inlet.pull_chunk(timeout=0.2)
            got += len(stamps)
            if chunk:
                assert np.all(np.isfinite(np.asarray(chunk)))
        assert got > 500
    finally:
        th.join(60)
    assert result["summary"]["sinks"][0]["name"] == decoded


def _reward_session(name, tmp_path, session, value_at):
    """A live actor-critic session config on the LSL spikes ``name`` with rewards from a real
    LSL reward stream; returns (config, start_sender, stop_event): the sender pushes
    ``value_at(k)`` every 20 ms until the event is set."""
    reward_name = name + "-reward"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(reward_name, "Reward", 1, 0, "float32", reward_name))
    data = {
        "session": {"warmup_ticks": 50, "out_dir": str(tmp_path), **session},
        "source": {"kind": "lsl", "options": {"name": name, "n_channels": 4, "resolve_timeout_s": 3.0}},
        "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
        "model": {"random": {"n_rec": 32, "n_out": 2, "seed": 0}},
        "learner": {"kind": "actor_critic", "options": {"sigma": 0.1}},
        "reward": {"kind": "lsl", "options": {"name": reward_name, "resolve_timeout_s": 3.0}},
    }
    stop = threading.Event()

    def send_rewards():
        k = 0
        while not stop.is_set():
            outlet.push_sample([value_at(k)])
            k += 1
            time.sleep(0.02)

    return data, lambda: threading.Thread(target=send_rewards, daemon=True).start(), stop


def test_reward_driven_session_observes_every_tick_and_counts_rewards(tmp_path):
    """actor_critic with rewards from a real LSL stream: no teacher, the learner still observes
    every tick; NaN rewards are dropped and counted, not learned from."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    pub = Publisher(name, 4)
    pub.start()
    data, start_sender, stop = _reward_session(name, tmp_path, {"name": "t", "duration_s": 2.0},
                                               lambda k: float("nan") if k % 5 == 4 else 1.0)
    start_sender()
    try:
        summary = Session(parse_config(data, "<test>")).run()
    finally:
        stop.set()
        pub.stop_ev.set()
    lr = summary["learner"]
    assert lr["ticks"] >= summary["ticks"]  # observed on every tick (warm-up included)
    assert summary["stage_latency_us"]["learn"]["n"] == summary["ticks"]
    # every valid reward (1.0 each) reached the learner once: its sum equals the source's count
    assert lr["reward_source"]["rewards"] > 20
    assert lr["reward_sum"] == pytest.approx(lr["reward_source"]["rewards"], rel=1e-6)
    rs = lr["reward_source"]
    assert rs["source"]["dropped_nonfinite"] + rs["bad"] > 3  # the NaN rewards, dropped and counted


def test_reward_config_refused_for_a_learner_without_rewards(tmp_path):
    from rtsnn.config import ConfigError

    data = {"source": {"kind": "lsl", "options": {"name": "x", "n_channels": 4}},
            "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
            "learner": {"kind": "ridge_readout"}, "reward": {"kind": "lsl", "options": {"name": "r"}}}
    with pytest.raises(ConfigError, match="does not take rewards"):
        Session(parse_config(data, "<test>"))


def test_session_monitor_streams_reach_a_dashboard_client(tmp_path):
    """A real session publishes its monitor streams; the dashboard's client finds it by name and
    receives raster rows (spikes of the real network), outputs and status with counters."""
    from rtsnn.viz.client import MonitorClient, discover

    name = f"t-{uuid.uuid4().hex[:8]}"
    pub = Publisher(name, 8, fill=3.0)
    pub.start()
    data = {
        "session": {"name": name, "duration_s": 4.0, "out_dir": str(tmp_path), "warmup_ticks": 50},
        "source": {"kind": "lsl", "options": {"name": name, "n_channels": 8, "resolve_timeout_s": 3.0}},
        "encoder": {"kind": "passthrough", "options": {"n_channels": 8}},
        "model": {"random": {"n_rec": 32, "n_out": 2, "seed": 0, "input_gain": 3.0}},
    }
    session = Session(parse_config(data, "<test>"))
    result = {}
    th = threading.Thread(target=lambda: result.update(summary=session.run()))
    th.start()
    try:
        client = MonitorClient(discover(session=name, timeout_s=8.0))

        def enough():
            return client.counts["raster_rows"] > 500 and client.counts["statuses"] >= 5

        while not enough() and th.is_alive():  # polled like the dashboard, until enough came
            client.poll()
            time.sleep(0.03)
        client.poll()
        assert enough(), client.counts
        assert client.raster_image().any()  # the network spiked and the raster shows it
        st = client.last_status
        assert st["session"] == name and st["counters"]["ticks"] > 0
        assert "step" in st["latency"]["series"]
        client.close()
    finally:
        th.join(60)
        pub.stop_ev.set()
    s = result["summary"]
    assert s["monitor"]["raster_rows"] > 0 and s["monitor"]["errors"] == 0
    assert s["sinks"] == []  # no sink configured: the monitor's tap is not reported as one


def test_event_camera_session_pools_lsl_events_into_spikes(tmp_path):
    """Events published over the rtsnn LSL event format feed a session through the lsl_events
    source and the event_pool encoder: every event reaches the encoder, and the network runs."""
    from rtsnn.events.publisher import EventPublisher, as_event_array

    name = f"ev-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(0)
    n = 60_000  # 20 k events/s for 3 s, on a 64x48 sensor
    t_us = np.sort(rng.integers(0, 3_000_000, n))
    events = as_event_array(t_us, rng.integers(0, 64, n), rng.integers(0, 48, n), rng.integers(0, 2, n))
    pub = EventPublisher(events, 64, 48, name=name, speed=1.0)
    pub.open()
    th_pub = threading.Thread(target=lambda: (pub.wait_for_consumer(10.0), pub.run()), daemon=True)
    th_pub.start()
    data = {
        "session": {"name": "ev", "duration_s": 2.0, "out_dir": str(tmp_path), "warmup_ticks": 50,
                    "max_samples_per_tick": 8192, "monitor": False},
        "source": {"kind": "lsl_events", "options": {"name": name, "width": 64, "height": 48,
                                                     "resolve_timeout_s": 5.0}},
        "encoder": {"kind": "event_pool", "options": {"width": 64, "height": 48, "grid_w": 8, "grid_h": 6}},
        "model": {"random": {"n_rec": 64, "n_out": 2, "seed": 0}},
    }
    session = Session(parse_config(data, "<test>"))
    summary = session.run()
    th_pub.join(10)
    enc = session.encoder.stats()
    assert summary["samples_in"] > 20_000  # ~20 k events/s over the 2 s measured
    assert summary["dropped_samples"] == 0
    # the encoder saw every event the ticks pulled (its counts include warm-up) and, with no
    # filter configured, pooled all of them
    assert enc["events_in"] >= summary["samples_in"] and enc["events_out"] == enc["events_in"]
    assert enc["dropped_bad"] == 0


def _eprop_demo(tmp_path) -> tuple[dict, dict, Path]:
    """The demo (5 s) with an e-prop learner (500-tick windows) checkpointing to adapted.npz;
    returns (summary, config data, checkpoint path)."""
    import yaml
    from importlib import resources

    data = yaml.safe_load(resources.files("rtsnn").joinpath("configs/demo.yaml").read_text())
    ckpt = tmp_path / "adapted.npz"
    data["session"].update(duration_s=5.0, out_dir=str(tmp_path), monitor=False)
    data["learner"] = {"kind": "eprop", "options": {"lr": 2e-3, "update_every_ticks": 500,
                                                    "checkpoint_path": str(ckpt)}}
    return Session(parse_config(data, "<demo+eprop>")).run(), data, ckpt


def test_demo_with_eprop_learner_learns_in_the_live_loop(tmp_path):
    """e-prop inside a real session: the synthetic user's velocity teaches it, its window
    updates run (deferred to the I/O thread and installed between ticks), nothing rolls back,
    and the adapted model is checkpointed at the end."""
    from rtsnn.snn import load_model

    summary, _, ckpt = _eprop_demo(tmp_path)
    lr = summary["learner"]
    assert lr["updates"] >= 1 and lr["ticks"] >= summary["ticks"]
    # every closed window was either applied as an update or merged into the next one
    assert lr["windows"] >= 8 and lr["windows_merged"] < lr["windows"]
    assert lr.get("rollbacks", 0) == 0 and summary["learn_applied"] + lr["updates"] > 0
    assert ckpt.is_file() and load_model(ckpt).provenance["eprop"]["updates"] == lr["updates"]


def test_live_session_records_and_takes_cli_control(tmp_path, capsys):
    """A real-time session (LSL spikes in, LSL rewards, actor-critic) with ``session.record``:
    ``rtsnn control`` pauses it, changes the rate and resumes it while it runs; a malformed
    datagram is counted; recording.xdf holds the inputs, every reward the learner got, the
    outputs and the control events, in order."""
    import socket

    import pyxdf

    from rtsnn.cli import main
    from rtsnn.runtime.control import find_session

    name = f"t-{uuid.uuid4().hex[:8]}"
    sess_name = f"ctl-{uuid.uuid4().hex[:6]}"
    pub = Publisher(name, 4)
    pub.start()
    data, start_sender, stop = _reward_session(name, tmp_path, {"name": sess_name, "duration_s": 3.0,
                                                                "record": True}, lambda k: 0.5)
    out: dict = {}
    runner = threading.Thread(target=lambda: out.update(summary=Session(parse_config(data, "<test>")).run()))
    start_sender()
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                folder = find_session(sess_name, tmp_path)
                break
            except ValueError:
                time.sleep(0.05)
        time.sleep(1.0)  # past the warm-up: its counters are reset when it ends
        args = ["--session", sess_name, "--out-dir", str(tmp_path)]
        assert main(["control", "pause", *args]) == 0
        time.sleep(0.2)
        assert main(["control", "rate", "0.002", *args]) == 0
        time.sleep(0.2)
        assert main(["control", "resume", *args]) == 0
        info = json.loads((folder / "control.json").read_text())
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b'{"cmd": "explode"}', "\0" + info["socket"][1:])
        assert main(["control", "rate", *args]) == 2  # no value: refused before sending
        assert main(["control", "pause", "--session", "nobody", "--out-dir", str(tmp_path)]) == 2
        runner.join(20)
    finally:
        stop.set()
        pub.stop_ev.set()
    err = capsys.readouterr().err
    assert "needs the new learning rate" in err and "no running session named 'nobody'" in err
    summary = out["summary"]
    ctl = summary["control"]
    assert ctl["applied"] == 3 and ctl["received"] == 4 and ctl["bad"] == 1, ctl
    assert "explode" in ctl["last_error"]
    assert summary["learner"]["learning"] is True
    assert not (folder / "control.json").exists()  # removed when the session closed

    rec = summary["recording"]
    assert rec["dropped_input_samples"] == 0 and rec["dropped_rewards"] == 0 and rec["errors"] == 0
    streams, _ = pyxdf.load_xdf(rec["path"], synchronize_clocks=False, dejitter_timestamps=False)
    by = {st["info"]["name"][0]: st for st in streams}
    events = [e[0] for e in by[f"{sess_name}-events"]["time_series"]]
    assert events == ["pause_learning", "set_learning_rate 0.002", "resume_learning"]
    rewards = np.asarray(by[f"{sess_name}-reward"]["time_series"], np.float64)
    assert rewards.sum() == pytest.approx(summary["learner"]["reward_sum"], rel=1e-6)
    n_in = len(by[f"{sess_name}-inputs"]["time_stamps"])
    assert n_in == summary["source"]["samples"] > 1000, (n_in, summary["source"])
    outs = by[f"{sess_name}-outputs"]
    assert len(outs["time_stamps"]) == summary["ticks"] and outs["time_series"].shape[1] == 4
    assert np.all(np.diff(outs["time_stamps"]) > 0)


FLAKY_SOURCE = '''
import time
import numpy as np
from pylsl import local_clock

INSTANCES = [0]


class FlakySource:
    """A sensor adapter that delivers a counter, then raises (even instances) or hangs (odd)."""

    def __init__(self, n_channels: int = 3, fail_after: int = 300):
        self.n_channels = n_channels
        self.fail_after = fail_after
        INSTANCES[0] += 1
        self.k = INSTANCES[0]
        self.pulls = 0

    def open(self):
        pass

    def pull(self, samples_out, timestamps_out):
        self.pulls += 1
        if self.pulls > self.fail_after:
            if self.k % 2 == 0:
                raise RuntimeError("flaky sensor unplugged")
            time.sleep(30.0)  # a driver call that never comes back
        samples_out[0, :] = self.k
        timestamps_out[0] = local_clock()
        return 1

    def stats(self):
        return {"pulls": self.pulls}

    def close(self):
        pass
'''


def _flaky_plugin_session(tmp_path, monkeypatch) -> dict:
    """3 s of a session on the FLAKY_SOURCE plugin (registered through a real entry point: a
    dist-info on sys.path) under ``kind: supervised``; returns its summary."""
    import importlib

    (tmp_path / "flaky_source.py").write_text(FLAKY_SOURCE)
    info = tmp_path / "rtsnn_flaky-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rtsnn-flaky\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[rtsnn.sources]\nflaky = flaky_source:FlakySource\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    data = {
        "session": {"name": "flaky", "duration_s": 3.0, "out_dir": str(tmp_path / "s"), "warmup_ticks": 50,
                    "monitor": False},
        "source": {"kind": "supervised", "options": {
            "kind": "flaky", "options": {"n_channels": 3, "fail_after": 300}, "hang_timeout_s": 0.2,
            "backoff_initial_s": 0.02, "backoff_max_s": 0.1, "healthy_after_s": 10.0}},
        "encoder": {"kind": "passthrough", "options": {"n_channels": 3}},
        "model": {"random": {"n_rec": 16, "n_out": 2}},
    }
    return Session(parse_config(data, "<test>")).run()


def test_session_survives_an_adapter_plugin_that_raises_and_hangs(tmp_path, monkeypatch):
    """A third-party source run under ``kind: supervised`` in a live session: each time it
    raises or hangs the session keeps ticking, flags gap ticks, and a fresh adapter is started
    after a backoff."""
    summary = _flaky_plugin_session(tmp_path, monkeypatch)
    src = summary["source"]
    assert summary["ticks"] == 3000  # the session never stopped for the adapter
    assert src["errors"] >= 1 and src["hangs"] >= 1 and src["restarts"] >= 3, src
    assert "flaky sensor unplugged" in src["last_error"] or src["hangs"] >= 2
    assert summary["gap_ticks"] > 100  # the failures and backoffs were flagged as gaps
    assert summary["samples_in"] > 1000  # fresh adapters kept delivering in between


# ---------------------------------------------------------------- timing bounds (make test-timing)
@pytest.mark.slow
def test_session_e2e_latency_bound(tmp_path):
    summary = _published_session(tmp_path)
    assert 0 < summary["e2e_latency_us"]["p50"] < 5000, summary["e2e_latency_us"]


@pytest.mark.slow
def test_demo_takes_most_samples_on_the_next_tick(tmp_path):
    """Ticked 500 us after the user's pushes: most samples are taken by the next tick."""
    out = _demo_json(tmp_path)
    assert out["input_age_over_one_tick"] < 0.5, out["input_age_over_one_tick"]


@pytest.mark.slow
def test_eprop_learner_cost_and_window_merging_bounds(tmp_path):
    """The learner's own per-tick cost fits the 800 us budget with room: ~50 us p50 on the dev
    VM (its p99, ~120 us when quiet, reached 484 us once in CI, so the median is what is
    bounded); the miss rate also counts the VM's late wake-ups (up to ~7 % of ticks under heavy
    hypervisor steal), so it is only bounded loosely; an I/O thread that solves in ~1 ms leaves
    most 500-tick windows unmerged."""
    summary, data, _ = _eprop_demo(tmp_path)
    lr = summary["learner"]
    assert summary["stage_latency_us"]["learn"]["p50"] < 0.25 * data["session"]["budget_us"]
    assert summary["deadline_miss_rate"] < 0.2
    assert lr["updates"] >= 8 and lr["windows_merged"] < lr["windows"] // 2, lr


@pytest.mark.slow
def test_supervised_adapter_never_slows_ingest(tmp_path, monkeypatch):
    """Pulls never waited for the raising or hanging adapter: ingest p99 under 1 ms."""
    summary = _flaky_plugin_session(tmp_path, monkeypatch)
    assert summary["stage_latency_us"]["ingest"]["p99"] < 1000, summary["stage_latency_us"]["ingest"]
