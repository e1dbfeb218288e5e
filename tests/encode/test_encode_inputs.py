"""Bad input to every encoder: clear errors for wrong buffers and options, the protocol, and
construction through the plugin registry from config options."""

from __future__ import annotations

import numpy as np
import pytest

from rtsnn import plugins
from rtsnn.config import ConfigError
from rtsnn.encode import (DeltaEncoder, EncoderInputError, PassthroughEncoder, PoissonRateEncoder, SpikeBinEncoder,
                          ThresholdCrossingEncoder)
from rtsnn.protocols import Encoder

F32 = np.float32

ENCODERS = {
    "threshold": lambda: ThresholdCrossingEncoder(3, noise_window_s=0.001),
    "threshold_fixed": lambda: ThresholdCrossingEncoder(3, noise_sd=[1.0, 2.0, 3.0]),
    "spike_bin": lambda: SpikeBinEncoder(5, channel_column=2, n_channels=3),
    "passthrough": lambda: PassthroughEncoder(3),
    "poisson": lambda: PoissonRateEncoder(3),
    "poisson_signed": lambda: PoissonRateEncoder(3, low=-1, high=1, signed=True),
    "delta": lambda: DeltaEncoder(3, delta=0.1),
}


@pytest.fixture(params=sorted(ENCODERS))
def enc(request):
    return ENCODERS[request.param]()


def test_implements_protocol_and_overwrites_on_empty_tick(enc):
    assert isinstance(enc, Encoder)
    assert enc.n_channels == 3
    out = np.full(enc.n_out, 9.0, F32)
    enc.encode(np.zeros((4, 3), F32), 0, out)
    np.testing.assert_array_equal(out, 0.0)
    enc.reset()
    stats = enc.stats()
    assert isinstance(stats, dict) and all(isinstance(k, str) for k in stats)


@pytest.mark.parametrize("samples, n, out_shape, match", [
    (np.zeros((4, 3), np.float64), 1, None, "float32"),
    (np.zeros((4, 2), F32), 1, None, "has 2 channels but the encoder expects 3"),
    (np.zeros(12, F32), 1, None, "float32 array"),
    ([[0.0, 0.0, 0.0]], 1, None, "got list"),
    (np.zeros((4, 3), F32), 5, None, r"n=5 is outside 0\.\.4"),
    (np.zeros((4, 3), F32), -1, None, r"n=-1 is outside"),
    (np.zeros((4, 3), F32), 1.0, None, "n must be an integer"),
    (np.zeros((4, 3), F32), 1, "short", "spikes_out must be a float32 array of shape"),
    (np.zeros((4, 3), F32), 1, "f64", "spikes_out must be a float32 array of shape"),
])
def test_bad_buffers_raise_clear_errors(enc, samples, n, out_shape, match):
    out = np.zeros(enc.n_out, F32)
    if out_shape == "short":
        out = np.zeros(enc.n_out + 1, F32)
    elif out_shape == "f64":
        out = np.zeros(enc.n_out, np.float64)
    with pytest.raises(EncoderInputError, match=match):
        enc.encode(samples, n, out)
    assert issubclass(EncoderInputError, ValueError)


def test_nonfinite_samples_never_crash(enc):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(F32)
    x[rng.random(x.shape) < 0.3] = np.nan
    x[rng.random(x.shape) < 0.1] = np.inf
    x[rng.random(x.shape) < 0.1] = -np.inf
    out = np.zeros(enc.n_out, F32)
    for _ in range(40):
        enc.encode(x, 64, out)
        assert np.all(np.isfinite(out)) and np.all(out >= 0)
    assert any(v > 0 for k, v in enc.stats().items() if "nonfinite" in k), enc.stats()


@pytest.mark.parametrize("cls, kwargs, match", [
    (ThresholdCrossingEncoder, dict(n_channels=0), "n_channels must be an integer >= 1"),
    (ThresholdCrossingEncoder, dict(n_channels=2.5), "n_channels must be an integer"),
    (ThresholdCrossingEncoder, dict(n_channels=True), "n_channels must be an integer"),
    (ThresholdCrossingEncoder, dict(n_channels=2, threshold_sd=0), "threshold_sd must be non-zero"),
    (ThresholdCrossingEncoder, dict(n_channels=2, threshold_sd=float("nan")), "threshold_sd must be a finite"),
    (ThresholdCrossingEncoder, dict(n_channels=2, refractory_s=-1e-3), "refractory_s must be >= 0"),
    (ThresholdCrossingEncoder, dict(n_channels=2, srate_hz=0), "srate_hz must be > 0"),
    (ThresholdCrossingEncoder, dict(n_channels=2, noise_window_s=1e-5), "at least 10 samples"),
    (ThresholdCrossingEncoder, dict(n_channels=2, noise_sd=[1.0, 2.0, 3.0]), r"one per channel.*shape \(3,\)"),
    (ThresholdCrossingEncoder, dict(n_channels=2, noise_sd=[1.0, 0.0]), "noise_sd must be > 0"),
    (ThresholdCrossingEncoder, dict(n_channels=2, noise_sd="loud"), "noise_sd must be a number"),
    (ThresholdCrossingEncoder, dict(n_channels=20000, noise_window_s=100.0), "MiB buffer"),
    (SpikeBinEncoder, dict(n_channels_out=0), "n_channels_out must be an integer >= 1"),
    (SpikeBinEncoder, dict(n_channels_out=4, channel_column=1), r"channel_column must be < n_channels \(1\)"),
    (SpikeBinEncoder, dict(n_channels_out=4, channel_column=-1), "channel_column must be an integer >= 0"),
    (PassthroughEncoder, dict(n_channels=-2), "n_channels must be an integer >= 1"),
    (PassthroughEncoder, dict(n_channels=2, dt_s=0), "dt_s must be > 0"),
    (PoissonRateEncoder, dict(n_channels=2, low=0.0), "give both low and high"),
    (PoissonRateEncoder, dict(n_channels=2, low=[0, 1], high=[1, 1]), r"high must be > low.*channel\(s\) \[1\]"),
    (PoissonRateEncoder, dict(n_channels=2, rate_max_hz=-5), "rate_max_hz must be > 0"),
    (PoissonRateEncoder, dict(n_channels=2, rate_max_hz=2000, mode="bernoulli"), "at most one spike per tick"),
    (PoissonRateEncoder, dict(n_channels=2, rate_max_hz=2e5), "spikes per tick"),
    (PoissonRateEncoder, dict(n_channels=2, mode="gauss"), "mode must be one of poisson, bernoulli"),
    (PoissonRateEncoder, dict(n_channels=2, seed=-1), "seed must be an integer >= 0"),
    (PoissonRateEncoder, dict(n_channels=2, signed="yes"), "signed must be true or false"),
    (DeltaEncoder, dict(n_channels=2, delta=0.0), "delta must be > 0"),
    (DeltaEncoder, dict(n_channels=2, delta=[0.1, float("inf")]), "delta must be finite"),
    (DeltaEncoder, dict(n_channels=2, delta=[0.1, 0.2, 0.3]), "one per channel"),
])
def test_bad_options_raise_clear_value_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("name, options, n_out", [
    ("threshold_crossing", {"n_channels": 96, "threshold_sd": -4.0, "srate_hz": 30000.0}, 96),
    ("spike_bin", {"n_channels_out": 64}, 64),
    ("passthrough", {"n_channels": 96}, 96),
    ("poisson_rate", {"n_channels": 8, "signed": True, "low": -1.0, "high": 1.0}, 16),
    ("delta", {"n_channels": 4, "delta": [0.1, 0.1, 0.2, 0.2]}, 8),
])
def test_built_from_config_through_the_registry(name, options, n_out):
    enc = plugins.build("rtsnn.encoders", name, options, "encoder", "test.yaml")
    assert enc.n_out == n_out


def test_registry_reports_bad_option_with_the_config_key():
    with pytest.raises(ConfigError, match=r"test.yaml: encoder.options: delta must be > 0"):
        plugins.build("rtsnn.encoders", "delta", {"n_channels": 2, "delta": -1}, "encoder", "test.yaml")
    with pytest.raises(ConfigError, match="unknown option"):
        plugins.build("rtsnn.encoders", "passthrough", {"n_channels": 2, "gain": 3}, "encoder", "test.yaml")
