"""PoissonRateEncoder: empirical rates within statistical bounds, holding, signed outputs,
online normalisation, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
from encode_helpers import run_ticks

from rtsnn.encode import PoissonRateEncoder

F32 = np.float32


def _constant_run(enc, value, n_ticks):
    x = np.full((n_ticks, enc.n_channels), value, F32)
    return run_ticks(enc, x, 1)


@pytest.mark.parametrize("rate_max_hz, frac, mode", [(200.0, 0.5, "poisson"), (200.0, 0.25, "bernoulli"),
                                                     (5000.0, 0.8, "poisson"), (200.0, 1.0, "poisson")])
def test_empirical_rate_matches_target(rate_max_hz, frac, mode):
    n_ch, n_ticks, dt_s = 10, 20000, 1e-3
    enc = PoissonRateEncoder(n_ch, rate_max_hz=rate_max_hz, low=0.0, high=1.0, dt_s=dt_s, mode=mode, seed=3)
    out = _constant_run(enc, frac, n_ticks)
    lam = rate_max_hz * frac * dt_s
    n = out.size
    mean = out.mean()
    var_expected = lam if mode == "poisson" else lam * (1 - lam)
    # 5 standard errors of the mean: fails by chance with probability ~6e-7
    assert abs(mean - lam) < 5 * np.sqrt(var_expected / n), (mean, lam)
    if mode == "poisson":  # Poisson: variance == mean (dispersion index within ~5 SE of 1)
        assert abs(out.var() / lam - 1) < 5 * np.sqrt(2 / n) + 0.01
        # counts above 1 occur at the Poisson frequency P(k >= 2) = 1 - e^-lam (1 + lam)
        p2 = 1 - np.exp(-lam) * (1 + lam)
        assert abs((out >= 2).mean() - p2) < 5 * np.sqrt(p2 * (1 - p2) / n)
    else:
        assert set(np.unique(out)) <= {0.0, 1.0}
    np.testing.assert_allclose(out.mean(0) / dt_s, rate_max_hz * frac, rtol=0.1 if lam < 1 else 0.02)


def test_rate_is_clipped_to_the_range():
    enc = PoissonRateEncoder(2, rate_max_hz=300.0, low=[0.0, -1.0], high=[1.0, 1.0], seed=1)
    below = _constant_run(enc, -5.0, 3000)
    assert below.sum() == 0
    enc.reset()
    above = _constant_run(enc, 7.0, 20000)
    np.testing.assert_allclose(above.mean(0), 0.3, atol=5 * np.sqrt(0.3 / 20000))


def test_holds_last_value_when_ticks_have_no_sample():
    """160 Hz EEG on 1 kHz ticks: a sample every ~6 ticks, the rate continues in between."""
    enc = PoissonRateEncoder(1, rate_max_hz=500.0, low=0.0, high=1.0, seed=2)
    n_ticks = 30000
    sizes = [1 if k % 6 == 0 else 0 for k in range(n_ticks)]
    x = np.full((sum(sizes), 1), 0.6, F32)
    out = run_ticks(enc, x, sizes)
    empty = np.array(sizes) == 0
    lam = 0.3
    for sel in (empty, ~empty):
        assert abs(out[sel].mean() - lam) < 5 * np.sqrt(lam / sel.sum())


def test_silent_before_first_sample_and_nan_is_held_and_counted():
    enc = PoissonRateEncoder(2, rate_max_hz=1000.0, low=0.0, high=1.0, seed=0)
    buf = np.zeros((2, 2), F32)
    out = np.zeros(2, F32)
    for _ in range(200):
        enc.encode(buf, 0, out)
        assert out.sum() == 0
    buf[0] = [1.0, 1.0]
    enc.encode(buf, 1, out)
    total = np.zeros(2)
    buf[0] = [np.nan, 0.0]  # channel 0 holds 1.0, channel 1 drops to 0
    for _ in range(2000):
        enc.encode(buf, 1, out)
        total += out
    assert total[1] == 0
    assert abs(total[0] / 2000 - 1.0) < 5 * np.sqrt(1.0 / 2000)
    assert enc.stats()["skipped_nonfinite"] == 2000


def test_signed_splits_positive_and_negative_parts():
    enc = PoissonRateEncoder(2, rate_max_hz=400.0, low=-1.0, high=1.0, signed=True, seed=5)
    assert enc.n_out == 4
    x = np.tile(np.array([[0.5, -1.0]], F32), (20000, 1))
    out = run_ticks(enc, x, 1)
    # channel 0 positive half-range -> 2c gets 0.5 * 400 Hz, 2c+1 silent; channel 1 the other way
    assert out[:, 1].sum() == 0 and out[:, 2].sum() == 0
    assert abs(out[:, 0].mean() - 0.2) < 5 * np.sqrt(0.2 / 20000)
    assert abs(out[:, 3].mean() - 0.4) < 5 * np.sqrt(0.4 / 20000)


def test_online_normalisation_tracks_mean_and_sd():
    rng = np.random.default_rng(9)
    enc = PoissonRateEncoder(1, rate_max_hz=100.0, srate_hz=1000.0, normalise_tau_s=5.0, normalise_n_sd=2.0,
                             seed=1)
    x = (rng.standard_normal((20000, 1)) * 4.0 + 10.0).astype(F32)
    run_ticks(enc, x, 1)
    low, high = enc.input_range
    np.testing.assert_allclose([low[0], high[0]], [10 - 8, 10 + 8], atol=0.6)
    # then a held value at the running mean fires at half the maximum rate
    out = _constant_run(enc, 10.0, 20000)
    assert abs(out.mean() - 0.05) < 5 * np.sqrt(0.05 / 20000) + 0.003


def test_online_normalisation_follows_a_baseline_shift():
    rng = np.random.default_rng(10)
    enc = PoissonRateEncoder(1, srate_hz=100.0, normalise_tau_s=2.0, seed=0)
    x = rng.standard_normal((3000, 1)).astype(F32)
    x[1500:] += 50.0  # electrode drift
    run_ticks(enc, x, 10)
    low, high = enc.input_range
    assert 45 < 0.5 * (low[0] + high[0]) < 55


def test_constant_input_with_online_range_is_silent():
    enc = PoissonRateEncoder(3, seed=0)
    out = _constant_run(enc, 2.5, 500)
    assert out.sum() == 0  # zero variance: empty range


def test_reproducible_from_seed_and_reset():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 3)).astype(F32)
    a = run_ticks(PoissonRateEncoder(3, rate_max_hz=300.0, seed=42), x, 2)
    enc = PoissonRateEncoder(3, rate_max_hz=300.0, seed=42)
    b = run_ticks(enc, x, 2)
    np.testing.assert_array_equal(a, b)
    enc.reset()
    np.testing.assert_array_equal(run_ticks(enc, x, 2), a)
    c = run_ticks(PoissonRateEncoder(3, rate_max_hz=300.0, seed=43), x, 2)
    assert not np.array_equal(a, c)
    assert a.sum() > 0
