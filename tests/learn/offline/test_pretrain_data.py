"""Pretraining data preparation: rows whose timestamps step back are put in time order (and
counted) before they are binned into ticks, so no row lands in another tick's bin."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtsnn.learn.offline.pretrain import parse_pretrain_config
from rtsnn.learn.offline.pretrain_data import load_recording_ticks


def _csv(path: Path, swap: bool) -> Path:
    """1 s of a 1 kHz count channel (channel c = 1 in rows of 10 ms tick k when k % 2 == c) and a
    target; with ``swap``, two rows of different ticks change places in the file."""
    t = np.arange(1000) / 1000.0
    k = np.arange(1000) // 10
    rows = [(f"{ti:.3f}", int(ki % 2 == 0), int(ki % 2 == 1), f"{ki / 100:.2f}") for ti, ki in zip(t, k)]
    if swap:
        rows[55], rows[72] = rows[72], rows[55]
    path.write_text("time_s,a,b,v\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _ticks(path: Path):
    cfg = parse_pretrain_config({
        "data": {"kind": "recording", "path": str(path), "dt_s": 0.01, "time_column": "time_s",
                 "groups": {"spikes": ["a", "b"], "target": ["v"]},
                 "input": {"stream": "spikes"}, "target": {"stream": "target"}, "trials": {"every_s": 0.1}},
        "encoder": {"kind": "passthrough", "options": {"n_channels": 2}},
        "model": {"n_rec": 8}, "output": {"model_path": "m.npz"}}, "<test>")
    return load_recording_ticks(cfg.data.resolved(), cfg.encoder, path)


def test_rows_out_of_time_order_are_binned_by_their_timestamps(tmp_path):
    ordered = _ticks(_csv(tmp_path / "ordered.csv", swap=False))
    swapped = _ticks(_csv(tmp_path / "swapped.csv", swap=True))
    # each 10 ms tick holds its own 10 rows: counts (10, 0) or (0, 10), however the file was ordered
    np.testing.assert_array_equal(swapped.x, ordered.x)
    assert set(map(tuple, ordered.x.astype(int))) == {(10, 0), (0, 10)}
    assert any(r["kind"] == "input_rows_sorted" for r in swapped.repairs)
    assert not any(r["kind"] == "input_rows_sorted" for r in ordered.repairs)


def test_synthetic_data_refuses_an_encoder_that_would_see_other_input_live():
    import pytest

    from rtsnn.learn.offline.pretrain_data import synthetic_ticks

    cfg = parse_pretrain_config({"data": {"kind": "synthetic", "synthetic": {"duration_s": 20}},
                                 "encoder": {"kind": "delta", "options": {"n_channels": 96, "threshold": 1.0}},
                                 "model": {"n_rec": 8}, "output": {"model_path": "m.npz"}}, "<test>")
    with pytest.raises(ValueError, match="encoder.kind: synthetic data is generated pre-binned"):
        synthetic_ticks(cfg.data.synthetic, 0.02, cfg.encoder, "<test>")


def test_the_continuous_stream_is_the_whole_recording_scored_on_held_out_ticks(tmp_path):
    """Live, the decoder runs through every tick, the training trials included, without a reset:
    the continuous held-out figure runs the whole recording once and scores only held-out ticks."""
    from rtsnn.learn.offline.pretrain_data import whole_stream

    data = _ticks(_csv(tmp_path / "r.csv", swap=False))  # 100 ticks, trials of 0.1 s = 10 ticks each
    assert data.x.shape[0] == 100 and sorted(set(data.trial.tolist())) == list(range(10))
    x, y, m, spans = whole_stream(data, np.array([3, 7]))
    np.testing.assert_array_equal(x[:, 0], data.x)  # every tick, in time order
    np.testing.assert_array_equal(y[:, 0], data.target)
    assert spans == [(3, 30, 40), (7, 70, 80)]
    assert m[:, 0].tolist() == [1.0 if 30 <= k < 40 or 70 <= k < 80 else 0.0 for k in range(100)]
