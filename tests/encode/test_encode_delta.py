"""DeltaEncoder: reconstruction within delta, multiple crossings, NaN handling, chunking."""

from __future__ import annotations

import numpy as np
import pytest
from encode_helpers import random_sizes, run_ticks

from rtsnn.encode import DeltaEncoder

F32 = np.float32


def _signal(rng, n, n_ch):
    t = np.arange(n)[:, None] / 1000.0
    return (np.sin(2 * np.pi * 3.0 * t + np.arange(n_ch)) * 2.0
            + np.cumsum(rng.standard_normal((n, n_ch)) * 0.05, axis=0)).astype(F32)


@pytest.mark.parametrize("delta", [0.05, 0.3, [0.1, 0.7, 0.02]])
def test_reconstruction_within_delta_at_every_sample(delta):
    rng = np.random.default_rng(0)
    x = _signal(rng, 3000, 3)
    enc = DeltaEncoder(3, delta)
    out = run_ticks(enc, x, 1)  # one sample per tick: check after every sample
    net = np.cumsum(out[:, 0::2] - out[:, 1::2], axis=0)
    d = np.broadcast_to(np.asarray(delta, float), (3,))
    x_hat = x[0].astype(np.float64) + net * d
    assert np.all(np.abs(x_hat - x) <= d * (1 + 1e-9))
    assert out[0].sum() == 0  # the first sample only sets the reference
    np.testing.assert_allclose(enc.reference, x_hat[-1])
    assert out.sum() > 50


def test_chunked_ticks_give_same_totals_and_reconstruction_at_tick_ends():
    rng = np.random.default_rng(1)
    x = _signal(rng, 2000, 2)
    per_sample = run_ticks(DeltaEncoder(2, 0.1), x, 1)
    for sizes in (7, 33, random_sizes(rng, 2000, 40)):
        out = run_ticks(DeltaEncoder(2, 0.1), x, sizes)
        np.testing.assert_array_equal(out.sum(0), per_sample.sum(0))
        ends = np.cumsum(sizes if not np.isscalar(sizes) else [sizes] * len(out))
        ends = np.minimum(ends, len(x)) - 1
        x_hat = x[0] + np.cumsum(out[:, 0::2] - out[:, 1::2], axis=0) * 0.1
        assert np.all(np.abs(x_hat - x[ends]) <= 0.1 + 1e-6)


def test_one_sample_can_cross_several_levels():
    enc = DeltaEncoder(1, delta=1.0)
    x = np.array([[0.0], [3.5], [3.5], [3.0], [-0.2], [-1.0]], F32)
    out = run_ticks(enc, x, 1)
    np.testing.assert_array_equal(out[:, 0], [0, 3, 0, 0, 0, 0])  # 3.5 > 0+1, 1+1, 2+1 -> ref 3
    np.testing.assert_array_equal(out[:, 1], [0, 0, 0, 0, 3, 0])  # -0.2 < 3-1, 2-1, 1-1 -> ref 0; -1 >= 0-1
    np.testing.assert_array_equal(enc.reference, [0.0])


def test_exactly_delta_away_is_not_a_crossing():
    enc = DeltaEncoder(1, delta=0.5)
    out = run_ticks(enc, np.array([[1.0], [1.5], [0.5], [2.0]], F32), 1)
    # +0.5 exactly: no; 0.5 is exactly ref - delta... from ref 1.0: 0.5 >= 0.5 no; 2.0 > 1.5: 1 UP (ref 1.5)
    np.testing.assert_array_equal(out, [[0, 0], [0, 0], [0, 0], [1, 0]])


def test_nan_and_inf_are_skipped_and_counted():
    enc = DeltaEncoder(2, delta=1.0)
    x = np.array([[np.nan, 0.0], [5.0, np.inf], [np.nan, 2.5], [7.5, -np.inf]], F32)
    out = run_ticks(enc, x, 4)
    # channel 0: reference set by 5.0 (its first finite sample), then 7.5 -> 2 UP; channel 1: 0 -> 2.5: 2 UP
    np.testing.assert_array_equal(out[0], [2, 0, 2, 0])
    np.testing.assert_array_equal(enc.reference, [7.0, 2.0])
    assert enc.stats()["skipped_nonfinite"] == 4
    enc.reset()
    assert np.isnan(enc.reference).all() and enc.stats()["skipped_nonfinite"] == 0


def test_huge_jump_is_clipped_and_counted_not_hung():
    enc = DeltaEncoder(1, delta=1e-6)
    out = run_ticks(enc, np.array([[0.0], [3e38]], F32), 2)
    assert out[0, 0] > 1e14 and enc.stats()["clipped_jumps"] == 1
