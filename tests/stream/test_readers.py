"""The real recordings in ../shared/data as replayable streams, read through the recording
layer (rtsnn.recording; ``rtsnn.stream.readers.load_recording`` is kept as its alias)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from rtsnn.recording import open_recording
from rtsnn.stream.readers import load_recording
from rtsnn.stream.replay import XdfFileSource, build_timeline, replay_digest

from test_xdf_support import data_file

CHEWIE = "neural/chewie_20131003_bin100ms.npz"
MC_MAZE = "neural/mc_maze_trial_748.csv"
# the stream layouts the configs and docs use for the two tables (docs/recordings.md)
CHEWIE_LAYOUT = {"bin_s": 0.1, "groups": {"rates": ["rates_hz"], "kinematics": ["pos", "vel", "acc"]},
                 "markers": {"trials": ["trial", "target"]}}
MC_MAZE_LAYOUT = {"groups": {"spikes": ["unit_*"], "kinematics": ["*"]}}
LAYOUT = {CHEWIE: CHEWIE_LAYOUT, MC_MAZE: MC_MAZE_LAYOUT}


def test_edf_signals_and_annotations():
    import mne

    path = data_file("eeg/eegmmi_S001R04.edf")
    rec = load_recording(path)
    eeg, mk = rec.streams
    assert (eeg.name, eeg.info.channel_count, eeg.info.nominal_srate_hz, eeg.n_samples) == \
        ("eegmmi_S001R04", 64, 160.0, 20000)
    assert eeg.info.channel_labels[:3] == ["Fc5", "Fc3", "Fc1"] and eeg.info.channel_units[0] == "microvolts"
    raw = mne.io.read_raw_edf(str(path), preload=True, verbose="error")
    np.testing.assert_allclose(eeg.time_series, (raw.get_data() * 1e6).T.astype(np.float32))
    np.testing.assert_allclose(eeg.time_stamps[:3], [0.0, 1 / 160, 2 / 160])
    assert mk.is_string and mk.info.nominal_srate_hz == 0.0
    assert mk.n_samples == len(raw.annotations) == 30
    assert set(mk.time_series[:, 0]) == {"T0", "T1", "T2"}
    np.testing.assert_allclose(mk.time_stamps, raw.annotations.onset)
    tl = build_timeline(rec)
    assert tl.duration_s == pytest.approx(19999 / 160)
    # a rate given for a file that states its own is a check
    assert open_recording(path, rate_hz=160.0).streams[0].n_samples == 20000
    with pytest.raises(ValueError, match=r"rate_hz 100 given \(100 Hz\) contradicts stream 'eegmmi_S001R04'"):
        open_recording(path, rate_hz=100.0)


def test_chewie_npz_streams_from_its_keys_with_the_bin_width_given():
    path = data_file(CHEWIE)
    with pytest.raises(ValueError, match="no sampling rate"):
        open_recording(path)  # the name says 100 ms; the layer does not read names
    z = np.load(path)
    plain = open_recording(path, bin_s=0.1)
    assert [s.name for s in plain.streams] == ["rates_hz", "pos", "vel", "acc", "target", "timestep", "trial"]
    np.testing.assert_array_equal(plain.streams[2].time_series, z["vel"])
    assert plain.streams[6].time_series.dtype == np.int32 and plain.streams[6].info.channel_format == "int32"
    rec = open_recording(path, **CHEWIE_LAYOUT)
    rates, kin, trials = rec.streams
    np.testing.assert_array_equal(rates.time_series, z["rates_hz"])
    assert rates.info.nominal_srate_hz == pytest.approx(10.0)
    np.testing.assert_array_equal(kin.time_series[:, 2:4], z["vel"])
    assert kin.info.channel_labels == ["pos_0", "pos_1", "vel_0", "vel_1", "acc_0", "acc_1"]
    assert trials.n_samples == len(np.unique(z["trial"])) == 159
    assert trials.time_series[0, 0] == f"trial 0 target {z['target'][0]}"
    np.testing.assert_allclose(rates.time_stamps[1] - rates.time_stamps[0], 0.1)
    np.testing.assert_allclose(trials.time_stamps, rates.time_stamps[np.r_[0, np.flatnonzero(np.diff(z["trial"])) + 1]])
    moving = open_recording(data_file("neural/chewie_20131003_bin50ms_moving.npz"), rate_hz=20.0)
    assert moving.streams[0].info.nominal_srate_hz == pytest.approx(20.0)


def test_mc_maze_csv_spikes_and_kinematics():
    path = data_file(MC_MAZE)
    with open(path) as f:
        rows = list(csv.reader(f))
    header, body = rows[0], np.array(rows[1:], float)
    unit_idx = [i for i, h in enumerate(header) if h.startswith("unit_")]
    (whole,) = open_recording(path).streams  # default: every column but the time column, one stream
    assert whole.info.channel_count == len(header) - 1 and whole.info.channel_labels == header[1:]
    rec = open_recording(path, **MC_MAZE_LAYOUT)
    spikes, kin = rec.streams
    assert spikes.info.channel_count == len(unit_idx) == 182
    assert spikes.info.nominal_srate_hz == 1000.0 and spikes.n_samples == len(body)
    assert spikes.time_series.sum() == body[:, unit_idx].sum() > 0
    assert kin.info.channel_labels[-2:] == ["hand_vel_x", "hand_vel_y"] and kin.info.channel_count == 8
    np.testing.assert_allclose(kin.time_series[:, -1], body[:, header.index("hand_vel_y")], rtol=1e-6)
    np.testing.assert_array_equal(spikes.time_stamps, body[:, 0])


@pytest.mark.parametrize("rel", ["eeg/eegmmi_S001R04.edf", CHEWIE, MC_MAZE, "xdf/minimal.xdf"])
def test_real_recordings_have_stable_digests_and_feed_the_file_source(rel):
    path = data_file(rel)
    layout = LAYOUT.get(rel, {})
    assert replay_digest(open_recording(path, **layout)) == replay_digest(open_recording(path, **layout))
    rec = open_recording(path, **layout)
    st = next(s for s in rec.streams if not s.is_string)
    src = XdfFileSource(str(path), st.name, n_channels=st.info.channel_count, dt_s=0.01, **layout)
    src.open()
    buf, tsb = np.zeros((1024, st.info.channel_count), np.float32), np.zeros(1024)
    total = 0
    while not src.finished:
        total += src.pull(buf, tsb)
    assert total == st.n_samples


def test_file_source_takes_the_rate_options_and_refuses_a_contradiction():
    path = data_file(CHEWIE)
    with pytest.raises(ValueError, match="no sampling rate"):
        XdfFileSource(str(path), "rates_hz", n_channels=174, dt_s=0.1).open()
    src = XdfFileSource(str(path), "rates_hz", n_channels=174, dt_s=0.1, rate_hz=10.0)
    src.open()
    assert src.nominal_srate_hz == 10.0
    xdf = data_file("xdf/minimal.xdf")
    with pytest.raises(ValueError, match=r"bin_s 0.5 given \(2 Hz\) contradicts stream 'SendDataC'"):
        XdfFileSource(str(xdf), "SendDataC", n_channels=3, bin_s=0.5).open()


def test_truncated_edf_loads_its_complete_records_and_reports_the_loss(tmp_path):
    src = data_file("eeg/eegmmi_S001R04.edf")
    data = src.read_bytes()
    (tmp_path / "cut.edf").write_bytes(data[:len(data) // 2])
    rec = open_recording(tmp_path / "cut.edf")
    n = rec.streams[0].n_samples
    assert 0 < n < 20000 and n % 160 == 0  # whole 1 s records only
    full = load_recording(src).streams[0].time_series
    np.testing.assert_array_equal(rec.streams[0].time_series, full[:n])
    (msg,) = [str(r) for r in rec.repairs if r.kind == "truncated"]
    assert f"{20000 - n} samples per channel lost" in msg
    assert load_recording(src).repairs == []


def _write_bdf(path, x_uv, sfreq, labels, record_s=1.0, n_records=None):
    """A minimal BDF (BioSemi 24-bit EDF variant) written from the format's definition:
    256-byte header, 256 bytes per signal, then records of 24-bit little-endian samples.
    ``n_records`` may announce more records than are written (a truncated file)."""
    n_ch, n = x_uv.shape[1], x_uv.shape[0]
    spr = int(sfreq * record_s)
    n_rec = n // spr
    pmin, pmax, dmin, dmax = -1000, 1000, -1000000, 1000000  # uV; 1 digital step = 1 nV (fits 8 chars)

    def field(v, width):
        return str(v).ljust(width)[:width].encode("ascii")

    head = b"\xffBIOSEMI" + field("test", 80) + field("rtsnn", 80) + field("02.12.26", 8) + field("12.00.00", 8)
    head += field(256 * (n_ch + 1), 8) + field("24BIT", 44) + field(n_records or n_rec, 8) + field(record_s, 8)
    head += field(n_ch, 4)
    for w, vals in ((16, labels), (80, [""] * n_ch), (8, ["uV"] * n_ch), (8, [pmin] * n_ch), (8, [pmax] * n_ch),
                    (8, [dmin] * n_ch), (8, [dmax] * n_ch), (80, [""] * n_ch), (8, [spr] * n_ch), (32, [""] * n_ch)):
        head += b"".join(field(v, w) for v in vals)
    digital = np.clip(np.rint(x_uv * 1000.0), dmin, dmax).astype(np.int32)  # uV -> nV steps
    body = bytearray()
    for r in range(n_rec):
        for c in range(n_ch):
            d = digital[r * spr:(r + 1) * spr, c].astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
            body += d.tobytes()
    path.write_bytes(head + bytes(body))


def test_bdf_signals_read_through_mne_in_microvolts(tmp_path):
    sfreq = 256.0
    t = np.arange(int(4 * sfreq)) / sfreq
    x = np.stack([50.0 * np.sin(2 * np.pi * 10 * t), -20.0 + 5.0 * np.cos(2 * np.pi * 3 * t)], axis=1)
    p = tmp_path / "rec.bdf"
    _write_bdf(p, x, sfreq, ["Cz", "Pz"])
    rec = load_recording(p)
    st = rec.streams[0]
    assert st.info.channel_labels == ["Cz", "Pz"] and st.info.channel_units == ["microvolts"] * 2
    assert st.info.nominal_srate_hz == sfreq and st.n_samples == len(t)
    np.testing.assert_allclose(np.asarray(st.time_series), x, atol=1e-3)  # 24-bit: 1 nV steps
    # announced 6 records but only 4 written: loaded, and the loss reported
    p2 = tmp_path / "cut.bdf"
    _write_bdf(p2, x, sfreq, ["Cz", "Pz"], n_records=6)
    rec2 = load_recording(p2)
    assert rec2.streams[0].n_samples == len(t)
    assert any(r.kind == "truncated" and "announces 6 s but only 4 s" in r.detail
               and "512 samples per channel lost" in r.detail for r in rec2.repairs), rec2.repairs
