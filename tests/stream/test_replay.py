"""Replay: timelines (t0, resets, synced vs raw), LSL publishing with metadata and
cross-stream offsets, digests, the CLI's JSON line, and the deterministic file Source."""

from __future__ import annotations

import json
import threading
import time
import uuid

import numpy as np
import pylsl
import pytest

from rtsnn.protocols import Source
from rtsnn.stream.readers import load_recording
from rtsnn.stream.replay import LslReplayer, XdfFileSource, build_timeline, replay_digest, stream_times
from rtsnn.recording.xdf_reader import load_xdf
from rtsnn.recording.xdf_writer import StreamInfoData, XdfWriter

from test_xdf_support import data_file, write_demo


def _reset_file(path):
    """'A' (100 Hz) restarts its clock after 200 samples; 'B' markers on a clock without offset."""
    w = XdfWriter(path)
    w.add_stream(1, StreamInfoData("A", "EEG", 1, 100.0, "float32"))
    w.add_stream(2, StreamInfoData("B", "Markers", 1, 0.0, "string"))
    ts1 = 500.0 + np.arange(200) / 100.0
    ts2 = 3.0 + np.arange(200) / 100.0
    w.write_samples(1, ts1, np.arange(200)[:, None])
    w.write_clock_offset(1, 500.0, 10.0)
    w.write_clock_offset(1, 501.0, 10.0)
    w.write_samples(2, [510.5], [["m1"]])
    w.write_samples(1, ts2, np.arange(200, 400)[:, None])
    w.write_clock_offset(1, 3.0, 509.5)
    w.write_clock_offset(1, 4.0, 509.5)
    w.write_samples(2, [513.0], [["m2"]])
    w.write_clock_offset(2, 510.0, 0.0)
    w.close()


def test_common_t0_keeps_cross_stream_offsets(tmp_path):
    write_demo(tmp_path / "d.xdf", eeg_t0=1000.0, marker_t0=1000.123)
    rec = load_xdf(tmp_path / "d.xdf")
    tl = build_timeline(rec, None, "raw")
    assert tl.t0 == 1000.0
    np.testing.assert_allclose(tl.rel[1], 0.123 + np.array([0.0, 0.5, 1.7, 3.2]), atol=1e-9)
    np.testing.assert_allclose(tl.rel[0][:3], [0.0, 0.01, 0.02], atol=1e-9)


def test_clock_reset_raw_splices_synced_places_by_offsets(tmp_path):
    _reset_file(tmp_path / "r.xdf")
    rec = load_xdf(tmp_path / "r.xdf")
    tl = build_timeline(rec, None, "raw")
    a = tl.rel[0]
    assert np.all(np.diff(a) > 0)  # monotone after the splice
    np.testing.assert_allclose(a[200] - a[199], 0.01, atol=1e-9)  # spliced one sample after the end
    assert rec.repair_counts()["clock_reset"] == 1
    assert "spliced" in " ".join(str(r) for r in rec.repairs)

    rec = load_xdf(tmp_path / "r.xdf")
    tl = build_timeline(rec, None, "synced")
    a, b = tl.rel
    assert tl.t0 == pytest.approx(510.0)
    np.testing.assert_allclose(a[:200], np.arange(200) / 100.0, atol=1e-9)
    np.testing.assert_allclose(a[200], 2.5, atol=1e-9)  # 3.0 + 509.5 - 510: the restart gap survives
    np.testing.assert_allclose(b, [0.5, 3.0], atol=1e-9)
    assert "placed by its clock offsets" in " ".join(str(r) for r in rec.repairs)


def test_synced_dejitters_regular_but_never_irregular_streams(tmp_path):
    rng = np.random.default_rng(3)
    w = XdfWriter(tmp_path / "j.xdf")
    w.add_stream(1, StreamInfoData("reg", nominal_srate_hz=100.0))
    w.add_stream(2, StreamInfoData("irr", nominal_srate_hz=0.0))
    base = 20.0 + np.arange(300) / 100.0
    jit = base + rng.uniform(0, 0.004, 300)  # stamped at push time: sawtooth-like jitter
    w.write_samples(1, jit, np.zeros((300, 1)))
    irr = np.sort(20.0 + rng.uniform(0, 3, 30))
    w.write_samples(2, irr, np.zeros((30, 1)))
    w.close()
    rec = load_xdf(tmp_path / "j.xdf")
    reg_s = stream_times(rec.streams[0], "synced", rec)
    assert np.std(np.diff(reg_s)) < 1e-9 < np.std(np.diff(jit))
    np.testing.assert_allclose(np.diff(reg_s), 0.01, atol=1e-6)
    np.testing.assert_array_equal(stream_times(rec.streams[1], "synced", rec), irr)
    np.testing.assert_array_equal(stream_times(rec.streams[0], "raw", rec), jit)


def test_gaps_are_kept_and_small_backward_steps_repaired(tmp_path):
    w = XdfWriter(tmp_path / "g.xdf")
    w.add_stream(1, StreamInfoData("x", nominal_srate_hz=10.0))
    ts = np.array([0.0, 0.1, 0.2, 5.2, 5.3, 5.25, 5.4])
    w.write_samples(1, ts, np.zeros((7, 1)))
    w.close()
    rec = load_xdf(tmp_path / "g.xdf")
    t = stream_times(rec.streams[0], "raw", rec)
    np.testing.assert_array_equal(t, [0.0, 0.1, 0.2, 5.2, 5.3, 5.3, 5.4])
    assert rec.repair_counts()["ts_backwards"] == 1


def test_digest_is_deterministic_and_sensitive(tmp_path):
    write_demo(tmp_path / "d.xdf")
    d1 = replay_digest(load_xdf(tmp_path / "d.xdf"))
    assert d1 == replay_digest(load_xdf(tmp_path / "d.xdf"))
    assert d1 != replay_digest(load_xdf(tmp_path / "d.xdf"), timestamps="synced")
    write_demo(tmp_path / "e.xdf", marker_t0=1000.124)
    assert d1 != replay_digest(load_xdf(tmp_path / "e.xdf"))


def _inlet(name, timeout_s=5.0):
    found = pylsl.resolve_bypred(f"name='{name}'", 1, timeout_s)
    assert found, f"replayed stream {name} not found"
    inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    inlet.open_stream(timeout_s)
    return inlet


@pytest.mark.lsl
def test_lsl_replay_publishes_values_metadata_and_offsets(tmp_path):
    ts, x, mk_ts, mk = write_demo(tmp_path / "d.xdf", n_eeg=200, srate=100.0)  # 2 s
    rec = load_recording(tmp_path / "d.xdf")
    prefix = f"rtsnn-test-{uuid.uuid4().hex[:8]}-"
    rp = LslReplayer(rec, speed=1.0, name_prefix=prefix)
    rp.open()
    inlets = {n: _inlet(prefix + n) for n in ("eeg", "mk")}
    info = inlets["eeg"].info(5.0)
    ch = info.desc().child("channels").child("channel")
    labels, units = [], []
    while not ch.empty():
        labels.append(ch.child_value("label"))
        units.append(ch.child_value("unit"))
        ch = ch.next_sibling("channel")
    assert labels == ["C3", "Cz", "C4"] and units == ["microvolts"] * 3
    assert info.nominal_srate() == 100.0 and info.source_id() == "src-eeg"
    assert info.desc().child("rtsnn_replay").child_value("timestamps") == "raw"
    time.sleep(0.3)  # consumers are attached before publishing starts
    out = {}
    th = threading.Thread(target=lambda: out.update(rp.run()))
    th.start()
    got = {"eeg": ([], []), "mk": ([], [])}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (len(got["eeg"][1]) < len(ts) or len(got["mk"][1]) < len(mk)):
        for n, inlet in inlets.items():
            vals, stamps = inlet.pull_chunk(0.02)
            got[n][0].extend(vals)
            got[n][1].extend(stamps)
    th.join(10)
    np.testing.assert_array_equal(np.array(got["eeg"][0], np.float32), x)
    assert got["mk"][0] == mk
    eeg_t = np.array(got["eeg"][1])
    mk_t = np.array(got["mk"][1])
    np.testing.assert_allclose(np.diff(eeg_t), 0.01, atol=1e-6)  # each stream's own timing
    np.testing.assert_allclose(mk_t - eeg_t[0], mk_ts - ts[0], atol=1e-6)  # cross-stream offsets
    assert out["samples"] == {prefix + "eeg": len(ts), prefix + "mk": len(mk)}
    assert out["digest"] == replay_digest(rec, name_prefix=prefix)
    # paced by the recording's clock: the last marker is 3.323 s after t0
    assert out["duration_s"] == pytest.approx(3.323)
    assert out["wall_s"] >= 3.3  # paced, never ahead of it (how closely: scripts/bench_replay.py)


@pytest.mark.lsl
def test_replay_at_max_speed_loops_and_empty_streams(tmp_path, monkeypatch):
    w = XdfWriter(tmp_path / "e.xdf")
    w.add_stream(1, StreamInfoData("x", channel_count=2, nominal_srate_hz=1000.0))
    w.add_stream(2, StreamInfoData("nothing", channel_count=1))
    w.write_samples(1, np.arange(5000) / 1000.0, np.ones((5000, 2)))
    w.close(footers=False)
    rec = load_recording(tmp_path / "e.xdf")
    prefix = f"rtsnn-test-{uuid.uuid4().hex[:8]}-"
    rp = LslReplayer(rec, speed=float("inf"), loop=True, max_loops=3, name_prefix=prefix)
    sleeps = []
    real_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", lambda s: (sleeps.append(s), real_sleep(s)))
    out = rp.run()
    monkeypatch.undo()
    assert sleeps == []  # max speed never waits for a deadline (15 s of recording)
    assert out["samples"] == {prefix + "x": 15000, prefix + "nothing": 0}
    assert out["loops"] == 3
    assert out["repairs"] == {"no_footer": 2, "empty_stream": 1}
    assert out["digest"] == replay_digest(rec, loops=3, name_prefix=prefix)


def test_cli_replay_json_line(tmp_path, capsys):
    from rtsnn.cli import main

    write_demo(tmp_path / "d.xdf", footers=False)
    prefix = f"rtsnn-test-{uuid.uuid4().hex[:8]}-"
    rc = main(["replay", str(tmp_path / "d.xdf"), "--speed", "max", "--json", "--prefix", prefix,
               "--streams", "mk", "eeg"])
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(line)
    assert summary["streams"] == [prefix + "mk", prefix + "eeg"]
    assert summary["samples"] == {prefix + "eeg": 500, prefix + "mk": 4}
    assert summary["repairs"] == {"no_footer": 2}
    assert summary["duration_s"] == pytest.approx(4.99)
    assert summary["digest"] == replay_digest(load_recording(tmp_path / "d.xdf"), ["mk", "eeg"], name_prefix=prefix)


def test_cli_replay_loops(tmp_path, capsys):
    from rtsnn.cli import main

    write_demo(tmp_path / "d.xdf")
    prefix = f"rtsnn-test-{uuid.uuid4().hex[:8]}-"
    assert main(["replay", str(tmp_path / "d.xdf"), "--speed", "max", "--loop", "--max-loops", "3", "--json",
                 "--prefix", prefix, "--streams", "eeg"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["samples"] == {prefix + "eeg": 3 * 500}  # three passes over the recording
    once = json.loads(_replay_json(main, tmp_path / "d.xdf", prefix, capsys))
    assert summary["digest"] != once["digest"]  # the loop offsets are part of what was published


def _replay_json(main, path, prefix, capsys) -> str:
    assert main(["replay", str(path), "--speed", "max", "--json", "--prefix", prefix, "--streams", "eeg"]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


@pytest.mark.lsl
def test_wall_s_is_never_negative(tmp_path, capsys):
    """A short file at max speed is published in well under the 5 ms head start paced replays
    take (it reported -0.005 s), and a paced replay stopped before its first sample is due
    took no time: wall_s is >= 0 in both, also in the CLI's strict JSON line."""
    from rtsnn.cli import main

    w = XdfWriter(tmp_path / "short.xdf")
    w.add_stream(1, StreamInfoData("s", channel_count=1, nominal_srate_hz=100.0))
    w.write_samples(1, [0.0, 0.01, 0.02], np.ones((3, 1)))
    w.close()
    rec = load_recording(tmp_path / "short.xdf")
    prefix = f"rtsnn-test-{uuid.uuid4().hex[:8]}-"
    for _ in range(3):
        out = LslReplayer(rec, speed=float("inf"), name_prefix=prefix).run()
        assert out["samples"] == {prefix + "s": 3}
        assert out["wall_s"] >= 0.0
    stop = threading.Event()
    stop.set()
    paced = LslReplayer(rec, speed=1.0, name_prefix=prefix)
    assert paced.run(stop)["wall_s"] == 0.0  # stopped before recording time 0
    assert main(["replay", str(tmp_path / "short.xdf"), "--speed", "max", "--json", "--prefix", prefix]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1],
                         parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert summary["wall_s"] >= 0.0


@pytest.mark.lsl
def test_cli_replay_prints_normalised_paths(tmp_path, capsys, monkeypatch):
    from rtsnn.cli import main

    (tmp_path / "sub").mkdir()
    write_demo(tmp_path / "d.xdf")
    monkeypatch.chdir(tmp_path / "sub")
    prefix = f"rtsnn-test-{uuid.uuid4().hex[:8]}-"
    assert main(["replay", "./.././d.xdf", "--speed", "max", "--json", "--prefix", prefix, "--streams", "eeg"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out.strip().splitlines()[-1])["file"] == "../d.xdf"  # relative stays relative
    assert main(["replay", "../sub/../d.xdf", "--speed", "max", "--prefix", prefix, "--streams", "eeg"]) == 0
    assert "of ../d.xdf," in capsys.readouterr().err


def test_cli_replay_bad_input_exits_2(tmp_path, capsys):
    from rtsnn.cli import main

    (tmp_path / "junk.xdf").write_bytes(b"XDF:" + bytes(range(7, 100)))
    assert main(["replay", str(tmp_path / "junk.xdf"), "--json"]) == 2
    assert "no readable XDF chunk" in capsys.readouterr().err
    write_demo(tmp_path / "d.xdf")
    assert main(["replay", str(tmp_path / "d.xdf"), "--streams", "nope"]) == 2
    assert "no stream named 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["replay", str(tmp_path / "d.xdf"), "--speed", "-1"])


# ---------------------------------------------------------------------------- file source
def test_file_source_ticks_release_each_dt_window(tmp_path):
    write_demo(tmp_path / "d.xdf", n_eeg=100, srate=100.0)
    src = XdfFileSource(str(tmp_path / "d.xdf"), "eeg", n_channels=3, dt_s=0.025)
    assert isinstance(src, Source)
    src.open()
    buf, tsb = np.zeros((64, 3), np.float32), np.zeros(64)
    counts = []
    seen = []
    while not src.finished:
        n = src.pull(buf, tsb)
        counts.append(n)
        seen.append(buf[:n].copy())
    # 100 Hz in 25 ms ticks: samples at 0, 10, 20 ms in tick 1; 30, 40 in tick 2; ...
    assert counts[:4] == [3, 2, 3, 2] and sum(counts) == 100
    np.testing.assert_array_equal(np.concatenate(seen), np.arange(300, dtype=np.float32).reshape(100, 3))
    assert src.stats()["samples"] == 100 and src.stats()["finished"]
    assert src.pull(buf, tsb) == 0


def test_file_source_is_deterministic_through_a_network():
    from rtsnn.snn import Model, Network

    path = data_file("neural/mc_maze_trial_748.csv")

    def run():
        layout = {"groups": {"spikes": ["unit_*"], "kinematics": ["*"]}}  # docs/recordings.md
        src = XdfFileSource(str(path), "spikes", n_channels=182, dt_s=1e-3, **layout)
        teacher = XdfFileSource(str(path), "kinematics", n_channels=8, dt_s=1e-3, **layout)
        src.open()
        teacher.open()
        model = Model.random(182, 64, 2, dt_s=1e-3, seed=5, input_gain=3.0, readout_scale=1.0)
        net = Network(model)
        buf, tsb = np.zeros((1024, 182), np.float32), np.zeros(1024)
        tbuf, ttsb = np.zeros((1024, 8), np.float32), np.zeros(1024)
        ys, stamps, targets = [], [], []
        while not src.finished:
            n = src.pull(buf, tsb)
            m = teacher.pull(tbuf, ttsb)
            assert n == m  # same file, same dt: source and teacher stay aligned tick by tick
            net.step(buf[:n].sum(axis=0) if n else np.zeros(182, np.float32))
            ys.append(net.readout().copy())
            stamps.append(tsb[:n].copy())
            targets.append(tbuf[:m].copy())
        return np.array(ys), np.concatenate(stamps), np.concatenate(targets)

    y1, t1, g1 = run()
    y2, t2, g2 = run()
    assert len(y1) == 3236 and np.any(y1 != 0)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(g1, g2)


def test_file_source_loop_and_capacity(tmp_path):
    write_demo(tmp_path / "d.xdf", n_eeg=50, srate=100.0)
    src = XdfFileSource(str(tmp_path / "d.xdf"), "eeg", n_channels=3, dt_s=1.0, loop=True, max_samples=20)
    src.open()
    buf, tsb = np.zeros((64, 3), np.float32), np.zeros(64)
    n = [src.pull(buf, tsb) for _ in range(6)]
    # 1 s ticks hold 100 samples' worth; at most 20 per pull, the rest is delivered later
    assert n == [20, 20, 10, 20, 20, 10]
    assert src.stats()["deferred_ticks"] >= 4 and src.stats()["loops"] == 2 and not src.finished


def test_file_source_bad_configuration(tmp_path):
    write_demo(tmp_path / "d.xdf")
    with pytest.raises(ValueError, match="has 3 channels, config expects 4"):
        XdfFileSource(str(tmp_path / "d.xdf"), "eeg", n_channels=4).open()
    with pytest.raises(ValueError, match="string stream"):
        XdfFileSource(str(tmp_path / "d.xdf"), "mk", n_channels=1).open()
    with pytest.raises(ValueError, match="no stream named 'emg'"):
        XdfFileSource(str(tmp_path / "d.xdf"), "emg", n_channels=1).open()
    with pytest.raises(ValueError, match="pace"):
        XdfFileSource(str(tmp_path / "d.xdf"), "eeg", n_channels=3, pace="fast")
    with pytest.raises(ValueError, match="no such file"):
        XdfFileSource(str(tmp_path / "none.xdf"), "eeg", n_channels=3).open()


def test_file_source_holds_nonfinite_values(tmp_path):
    w = XdfWriter(tmp_path / "n.xdf")
    w.add_stream(1, StreamInfoData("x", channel_count=2, nominal_srate_hz=1000.0))
    w.write_samples(1, np.arange(4) / 1000.0, np.array([[1, 2], [np.nan, 3], [4, np.inf], [5, 6]], np.float32))
    w.close()
    src = XdfFileSource(str(tmp_path / "n.xdf"), n_channels=2, dt_s=1.0)
    src.open()
    buf, tsb = np.zeros((8, 2), np.float32), np.zeros(8)
    assert src.pull(buf, tsb) == 4
    np.testing.assert_array_equal(buf[:4], [[1, 2], [1, 3], [4, 3], [5, 6]])
    assert src.stats()["repaired_values"] == 2


def test_file_source_options_fit_the_plugin_contract(tmp_path):
    from rtsnn import plugins
    from rtsnn.config import ConfigError

    plugins.check_options(XdfFileSource, {"path": "x.xdf", "stream": "eeg", "n_channels": 3, "dt_s": 0.001},
                          "source")
    with pytest.raises(ConfigError, match="missing required option.*n_channels"):
        plugins.check_options(XdfFileSource, {"path": "x.xdf"}, "source")


@pytest.mark.lsl
def test_replay_drives_the_session_inlet_path(tmp_path):
    """What LslSource (the session's live input) receives from a replay equals the file."""
    from rtsnn.stream.lsl_source import LslSource

    ts, x, _, _ = write_demo(tmp_path / "d.xdf", n_eeg=150, srate=100.0)
    rec = load_recording(tmp_path / "d.xdf")
    prefix = f"rtsnn-test-{uuid.uuid4().hex[:8]}-"
    rp = LslReplayer(rec, ["eeg"], speed=2.0, name_prefix=prefix)
    rp.open()
    src = LslSource(name=prefix + "eeg", n_channels=3, resolve_timeout_s=5.0, loss_timeout_s=None,
                    max_backlog_s=None)
    src.open()
    assert src.channel_labels == ["C3", "Cz", "C4"] and src.nominal_srate_hz == 100.0
    time.sleep(0.3)
    th = threading.Thread(target=rp.run)
    th.start()
    buf, tsb = np.zeros((1024, 3), np.float32), np.zeros(1024)
    xs, tss = [], []
    deadline = time.monotonic() + 10
    while sum(len(a) for a in xs) < len(ts) and time.monotonic() < deadline:
        n = src.pull(buf, tsb)
        xs.append(buf[:n].copy())
        tss.append(tsb[:n].copy())
        time.sleep(0.002)
    th.join(10)
    src.close()
    np.testing.assert_array_equal(np.concatenate(xs), x)
    # speed 2: half the interval (LslSource adds liblsl's clock offset, refreshed once a second: ~us steps)
    np.testing.assert_allclose(np.diff(np.concatenate(tss)), 0.005, atol=1e-4)
    assert src.stats()["ts_backwards"] == 0 and src.stats()["dropped_samples"] == 0


def test_file_source_realtime_pace_follows_the_wall_clock(tmp_path):
    write_demo(tmp_path / "d.xdf", n_eeg=100, srate=100.0)  # 0.99 s of samples
    src = XdfFileSource(str(tmp_path / "d.xdf"), "eeg", n_channels=3, pace="realtime", speed=10.0, stamp="local")
    src.open()
    buf, tsb = np.zeros((256, 3), np.float32), np.zeros(256)
    first = src.pull(buf, tsb)
    assert 1 <= first < 50  # the sample at t0 is due at once; at 10x, half the file takes 50 ms
    t_first = tsb[0]
    time.sleep(0.15)
    second = src.pull(buf, tsb)
    assert first + second == 100 and src.finished
    # stamp='local': the recording's times (t0 = 1000 s) rebased to the LSL clock at open
    assert abs(t_first - pylsl.local_clock()) < 5.0
