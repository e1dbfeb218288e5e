"""SpikeBinEncoder and PassthroughEncoder: counting, repairs counted, overwrite semantics."""

from __future__ import annotations

import numpy as np
from encode_helpers import random_sizes, run_ticks

from rtsnn.encode import PassthroughEncoder, SpikeBinEncoder

F32 = np.float32


def test_spike_bin_counts_events_per_unit():
    enc = SpikeBinEncoder(n_channels_out=4)
    events = np.array([[2], [0], [2], [3], [2]], F32)
    out = run_ticks(enc, events, 5)
    np.testing.assert_array_equal(out[0], [1, 0, 3, 1])
    assert enc.stats() == {"events": 5, "dropped_nonfinite": 0, "dropped_noninteger": 0,
                           "dropped_out_of_range": 0, "dropped": 0}


def test_spike_bin_drops_and_counts_bad_ids_without_raising():
    enc = SpikeBinEncoder(n_channels_out=3, channel_column=1, n_channels=2)
    events = np.array([
        [9.0, 1], [9.0, 1.0], [0.0, -1], [0.0, 3], [0.0, 1e9], [0.0, 2.5],
        [0.0, np.nan], [0.0, np.inf], [0.0, -np.inf], [np.nan, 2],  # NaN in another column is fine
    ], F32)
    out = run_ticks(enc, events, len(events))
    np.testing.assert_array_equal(out[0], [0, 2, 1])
    st = enc.stats()
    assert st == {"events": 3, "dropped_nonfinite": 3, "dropped_noninteger": 1, "dropped_out_of_range": 3,
                  "dropped": 7}
    enc.reset()
    assert enc.stats()["dropped"] == 0


def test_spike_bin_empty_tick_writes_zeros():
    enc = SpikeBinEncoder(n_channels_out=2)
    buf = np.zeros((4, 1), F32)
    out = np.full(2, 5.0, F32)
    enc.encode(buf, 0, out)
    np.testing.assert_array_equal(out, [0, 0])


def test_spike_bin_totals_independent_of_tick_split():
    rng = np.random.default_rng(0)
    ids = rng.integers(-1, 12, 500).astype(F32)[:, None]
    ids[rng.random(500) < 0.05] = np.nan
    totals = [run_ticks(SpikeBinEncoder(10), ids, sizes).sum(0)
              for sizes in (1, 7, 500, random_sizes(rng, 500, 30))]
    expected = np.bincount(ids[np.isfinite(ids) & (ids >= 0) & (ids < 10)].astype(int), minlength=10)
    for t in totals:
        np.testing.assert_array_equal(t, expected)


def test_passthrough_sums_rows_of_the_tick():
    enc = PassthroughEncoder(3)
    x = np.array([[0, 1, 2], [1, 0, 0], [3, 1, 0]], F32)
    out = run_ticks(enc, x, [2, 0, 1])
    np.testing.assert_array_equal(out, [[1, 1, 2], [0, 0, 0], [3, 1, 0]])
    assert enc.stats() == {"samples": 3, "clipped_negative": 0, "clipped_nonfinite": 0}


def test_passthrough_clips_negative_and_nonfinite_and_counts():
    enc = PassthroughEncoder(2)
    x = np.array([[-1, 2], [np.nan, 1], [np.inf, -np.inf], [0.5, 1]], F32)
    out = run_ticks(enc, x, 4)
    np.testing.assert_array_equal(out[0], [0.5, 4])
    assert enc.stats() == {"samples": 4, "clipped_negative": 1, "clipped_nonfinite": 3}


def test_passthrough_totals_independent_of_tick_split():
    rng = np.random.default_rng(1)
    x = rng.poisson(0.3, (777, 5)).astype(F32)
    for sizes in (1, 3, 100, random_sizes(rng, 777, 8)):
        np.testing.assert_array_equal(run_ticks(PassthroughEncoder(5), x, sizes).sum(0), x.sum(0))
