"""ThresholdCrossingEncoder: spike recovery in noise, noise estimation, refractoriness, chunking."""

from __future__ import annotations

import numpy as np
import pytest
from encode_helpers import random_sizes, run_ticks

from rtsnn.encode import ThresholdCrossingEncoder

SRATE = 30000.0
TICK = 30  # samples per 1 ms tick at 30 kHz


def _spike_shape():
    """A 1 ms biphasic extracellular waveform (trough -1 at sample 8, samples at 30 kHz)."""
    t = np.arange(30)
    return -np.exp(-0.5 * ((t - 8) / 2.0) ** 2) + 0.35 * np.exp(-0.5 * ((t - 16) / 4.0) ** 2)


def _recording(rng, n_ch, duration_s, sd, amplitude_sd, rate_hz, polarity=-1.0):
    """Gaussian noise (SD ``sd[c]``) plus spikes of ``amplitude_sd`` noise SDs at known times
    (>= 5 ms apart); returns the trace and, per channel, the crossing sample of each spike."""
    n = int(duration_s * SRATE)
    x = rng.standard_normal((n, n_ch)) * sd
    shape = _spike_shape()
    times = []
    for c in range(n_ch):
        gaps = rng.integers(int(0.005 * SRATE), int(2 * SRATE / rate_hz), size=int(duration_s * rate_hz * 2))
        starts = np.cumsum(gaps)
        starts = starts[starts < n - 40]
        for s0 in starts:
            x[s0:s0 + 30, c] += polarity * amplitude_sd * sd[c] * -shape
        # noise-free crossing of the waveform at -4.5 SD: where the scaled shape first passes 4.5
        cross = int(np.flatnonzero(amplitude_sd * -shape >= 4.5)[0]) if polarity > 0 else \
            int(np.flatnonzero(amplitude_sd * shape <= -4.5)[0])
        times.append(starts + cross)
    return x.astype(np.float32), times


def _match(counts, true_ticks, tol=1):
    """Greedy match of detections (per-tick counts) to true spike ticks within +-tol ticks.
    Returns (hits, false_positives)."""
    det = np.repeat(np.arange(len(counts)), counts.astype(int)).tolist()
    hits = 0
    for t in true_ticks:
        for j, d in enumerate(det):
            if abs(d - t) <= tol:
                hits += 1
                del det[j]
                break
    return hits, len(det)


def test_recovers_embedded_spikes_with_estimated_noise():
    rng = np.random.default_rng(7)
    sd = np.array([10.0, 25.0, 5.0, 40.0])  # uV; thresholds must scale with each channel's noise
    x, times = _recording(rng, 4, 2.0, sd, amplitude_sd=9.0, rate_hz=20.0)
    enc = ThresholdCrossingEncoder(4, threshold_sd=-4.5, refractory_s=1e-3, srate_hz=SRATE, noise_window_s=0.5)
    out = run_ticks(enc, x, TICK)
    assert enc.noise_ready
    # robust estimate despite the spikes in the window
    np.testing.assert_allclose(enc.noise_sd, sd, rtol=0.05)
    np.testing.assert_allclose(enc.thresholds, -4.5 * enc.noise_sd)
    ready_tick = next(i for i in range(len(out)) if i * TICK >= 0.5 * SRATE) + 1
    assert out[:ready_tick].sum() == 0, "no spikes may be emitted before the noise estimate is frozen"
    for c in range(4):
        true_ticks = times[c][times[c] // TICK > ready_tick] // TICK
        assert len(true_ticks) > 15
        hits, false_pos = _match(out[:, c], true_ticks)
        assert hits == len(true_ticks), f"channel {c}: found {hits} of {len(true_ticks)}"
        assert false_pos <= 2, f"channel {c}: {false_pos} false positives"
    st = enc.stats()
    assert st["spikes"] == int(out.sum()) and st["samples"] == len(x)
    assert st["noise_ready"] and st["disabled_channels"] == []


def test_positive_threshold_finds_positive_spikes_only():
    rng = np.random.default_rng(3)
    sd = np.array([1.0, 1.0])
    x_pos, times = _recording(rng, 2, 1.0, sd, amplitude_sd=9.0, rate_hz=20.0, polarity=+1.0)
    pos = run_ticks(ThresholdCrossingEncoder(2, threshold_sd=4.5, noise_sd=1.0, srate_hz=SRATE), x_pos, TICK)
    neg = run_ticks(ThresholdCrossingEncoder(2, threshold_sd=-4.5, noise_sd=1.0, srate_hz=SRATE), x_pos, TICK)
    for c in range(2):
        hits, fp = _match(pos[:, c], times[c] // TICK)
        assert hits == len(times[c]) and fp <= 2
    # only the positive waveform's smaller negative phase (3 SD) can reach -4.5 SD, with noise
    assert neg.sum() < 0.3 * pos.sum()
    # mirror symmetry: +T on x is exactly -T on -x
    mirrored = run_ticks(ThresholdCrossingEncoder(2, threshold_sd=-4.5, noise_sd=1.0, srate_hz=SRATE), -x_pos, TICK)
    np.testing.assert_array_equal(mirrored, pos)


def test_explicit_noise_sd_detects_from_first_tick():
    x = np.zeros((6, 2), np.float32)
    x[2, 0] = -5.0
    x[4, 1] = -50.0
    enc = ThresholdCrossingEncoder(2, threshold_sd=-4.0, noise_sd=[1.0, 20.0], srate_hz=1000.0, refractory_s=0)
    out = run_ticks(enc, x, 6)
    np.testing.assert_array_equal(out[0], [1, 0])  # -5 < -4 but -50 > -80
    assert enc.noise_ready
    np.testing.assert_array_equal(enc.thresholds, [-4.0, -80.0])


def test_crossing_needs_previous_sample_on_other_side_across_ticks():
    enc = ThresholdCrossingEncoder(1, threshold_sd=-1.0, noise_sd=1.0, srate_hz=1000.0, refractory_s=0)
    buf = np.zeros((4, 1), np.float32)
    out = np.zeros(1, np.float32)
    buf[0] = -3.0  # the first sample ever has no predecessor: no crossing
    enc.encode(buf, 1, out)
    assert out[0] == 0
    buf[0] = 0.0
    enc.encode(buf, 1, out)
    assert out[0] == 0
    buf[0] = -2.0  # crossing whose previous sample came in the previous tick
    enc.encode(buf, 1, out)
    assert out[0] == 1
    buf[:3, 0] = [-2.5, -4.0, -1.0]  # staying below the threshold is not a new crossing
    enc.encode(buf, 3, out)
    assert out[0] == 0
    enc.encode(buf, 0, out)  # empty tick
    assert out[0] == 0
    buf[:2, 0] = [np.nan, -0.5]  # NaN is skipped (previous kept), then back above
    enc.encode(buf, 2, out)
    buf[:2, 0] = [np.inf, -1.5]  # inf skipped, -1.5 crosses from the held -0.5
    enc.encode(buf, 2, out)
    assert out[0] == 1
    assert enc.stats()["nonfinite"] == 2


def test_refractory_respected_across_tick_boundaries():
    # crossings every 2 samples; refractory 5 samples -> counted at 1, 7, 13, ... (>= 5 apart, odd)
    sig = np.tile(np.array([0.0, -2.0], np.float32), 60)[:, None]
    expected = np.zeros(len(sig))
    expected[1::6] = 1
    rng = np.random.default_rng(0)
    per_sample = run_ticks(ThresholdCrossingEncoder(1, -1.0, refractory_s=0.005, srate_hz=1000.0, noise_sd=1.0),
                           sig, 1)
    np.testing.assert_array_equal(per_sample[:, 0], expected)
    for sizes in ([2] * 60, [3] * 40, [7] * 17 + [1], random_sizes(rng, len(sig), 9)):
        enc = ThresholdCrossingEncoder(1, -1.0, refractory_s=0.005, srate_hz=1000.0, noise_sd=1.0)
        out = run_ticks(enc, sig, sizes)
        # counts per tick are the per-sample train summed over the tick's rows
        edges = np.concatenate([[0], np.cumsum(sizes)])
        np.testing.assert_array_equal(out[:, 0], [expected[a:b].sum() for a, b in zip(edges[:-1], edges[1:])])
        assert enc.stats()["suppressed_refractory"] == 60 - expected.sum()


def test_zero_refractory_counts_every_crossing():
    sig = np.tile(np.array([0.0, -2.0], np.float32), 10)[:, None]
    out = run_ticks(ThresholdCrossingEncoder(1, -1.0, refractory_s=0.0, srate_hz=1000.0, noise_sd=1.0), sig, 3)
    assert out.sum() == 10


def test_chunking_invariance_with_estimated_noise_after_ready():
    """With a frozen estimate the crossings do not depend on the tick split."""
    rng = np.random.default_rng(11)
    x, _ = _recording(rng, 3, 0.3, np.ones(3), amplitude_sd=8.0, rate_hz=50.0)
    a = ThresholdCrossingEncoder(3, noise_window_s=0.05, srate_hz=SRATE)
    b = ThresholdCrossingEncoder(3, noise_window_s=0.05, srate_hz=SRATE)
    warm = int(0.06 * SRATE)
    run_ticks(a, x[:warm], TICK)
    run_ticks(b, x[:warm], TICK)
    assert a.noise_ready and b.noise_ready
    np.testing.assert_array_equal(a.noise_sd, b.noise_sd)
    out_a = run_ticks(a, x[warm:], TICK)
    out_b = run_ticks(b, x[warm:], random_sizes(rng, len(x) - warm, 100))
    np.testing.assert_array_equal(out_a.sum(0), out_b.sum(0))
    assert out_a.sum() > 10


def test_noise_estimation_spread_over_ticks():
    """A 1 s window at 30 kHz on 8 channels: collected in 1000 ticks, the medians then take a few
    ticks (bounded work per tick), and detection starts on the tick after the last."""
    rng = np.random.default_rng(5)
    enc = ThresholdCrossingEncoder(8, srate_hz=SRATE, noise_window_s=1.0)
    buf = rng.standard_normal((TICK, 8)).astype(np.float32)
    out = np.zeros(8, np.float32)
    for _ in range(1000):
        enc.encode(buf, TICK, out)
    assert not enc.noise_ready
    extra = 0
    while not enc.noise_ready:
        enc.encode(buf, TICK, out)
        extra += 1
        sd = enc.noise_sd
        assert np.isfinite(sd).sum() <= min(8, extra * enc._channels_per_tick)
    assert 1 < extra <= 8
    # the buffer repeats the same 30 rows, so the estimate is the median of those rows
    np.testing.assert_allclose(enc.noise_sd, np.median(np.abs(buf.astype(np.float64)), axis=0) / 0.6745)


def test_dead_and_broken_channels_are_disabled_and_listed():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3000, 3)).astype(np.float32)
    x[:, 1] = 0.0  # flat (disconnected) channel: SD estimate 0
    x[::3, 2] = np.nan  # a third of the samples NaN ...
    x[:600, 2] = np.nan  # ... but not with more than half the window missing
    enc = ThresholdCrossingEncoder(3, srate_hz=30000.0, noise_window_s=0.03)
    run_ticks(enc, x[:1000], TICK)
    assert enc.noise_ready
    st = enc.stats()
    assert st["disabled_channels"] == [1, 2]
    assert st["noise_window_nonfinite"] > 0
    assert np.isnan(enc.thresholds[1:]).all() and np.isfinite(enc.thresholds[0])
    spikes = np.full((5, 3), -100.0, np.float32)  # huge deflections: disabled channels stay silent
    spikes[::2] = 0.0
    out = run_ticks(enc, spikes, 5)
    assert out[0, 0] == 1 and out[0, 1] == 0 and out[0, 2] == 0  # (2nd crossing is refractory)


def test_reset_replays_identically_and_keep_noise():
    rng = np.random.default_rng(4)
    x, _ = _recording(rng, 2, 0.1, np.ones(2), amplitude_sd=8.0, rate_hz=100.0)
    enc = ThresholdCrossingEncoder(2, noise_window_s=0.02, srate_hz=SRATE)
    first = run_ticks(enc, x, TICK)
    sd = enc.noise_sd
    enc.reset()
    assert not enc.noise_ready and enc.stats()["spikes"] == 0
    np.testing.assert_array_equal(run_ticks(enc, x, TICK), first)
    enc.reset(keep_noise=True)
    assert enc.noise_ready
    np.testing.assert_array_equal(enc.noise_sd, sd)
    again = run_ticks(enc, x, TICK)
    assert again[:10].sum() >= first[:10].sum()  # detecting from the first tick now
