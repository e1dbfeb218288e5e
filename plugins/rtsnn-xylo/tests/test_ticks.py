"""Several chip steps per session tick: spreading, mapping, backend and training agree."""

from __future__ import annotations

import numpy as np
import pytest

from rtsnn.snn import Model, single_layer
from rtsnn_xylo.backend import XyloBackend
from rtsnn_xylo.int_kernels import IntNetwork
from rtsnn_xylo.qat import chip_outputs, qat_finetune
from rtsnn_xylo.quantize import map_model, tau_to_dash
from rtsnn_xylo.sim import xylosim_available
from rtsnn_xylo.ticks import spread_counts, tick_rows


def _spread_reference(x, k):
    """Plain loops: tick count c -> floor(c/k) on every step, plus one on the first c mod k."""
    T, n = x.shape
    out = np.zeros((T * k, n), np.int64)
    for t in range(T):
        for i in range(n):
            c = int(x[t, i])
            for j in range(k):
                out[t * k + j, i] = c // k + (1 if j < c % k else 0)
    return out


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_spread_counts_matches_loops_and_keeps_every_event(k):
    x = np.random.default_rng(k).integers(0, 40, (25, 5))
    got = spread_counts(x, k)
    np.testing.assert_array_equal(got, _spread_reference(x, k))
    np.testing.assert_array_equal(got.reshape(25, k, 5).sum(axis=1), x)
    assert got.max() <= -(-x.max() // k)  # ceil: the events are spread evenly
    # batched input spreads along the time axis only
    np.testing.assert_array_equal(spread_counts(np.stack([x, x]), k)[1], got)


@pytest.mark.parametrize("bad", [0, -1, 65, 2.0, True, "2"])
def test_bad_steps_per_tick_named_with_range(bad):
    with pytest.raises(ValueError, match=r"steps_per_tick must be an int in 1\.\.64"):
        spread_counts(np.zeros((3, 2), int), bad)
    with pytest.raises(ValueError, match="steps_per_tick"):
        map_model(_model(), steps_per_tick=bad)


def test_tick_rows_refuses_a_partial_tick():
    assert tick_rows(12, 3) == slice(2, None, 3)
    with pytest.raises(ValueError, match="not a whole number of ticks"):
        tick_rows(10, 3)


def _model(seed=1, dt_s=4e-3):
    layer = single_layer("lif", 40, tau_mem_s=32e-3, tau_out_s=32e-3, refractory_s=0.0, beta_adapt=0.0)
    return Model.random(16, 40, 2, *layer, dt_s=dt_s, seed=seed, input_gain=2.0, readout_scale=1.0, rec_density=0.3)


def test_mapping_puts_the_decays_on_the_chip_step():
    m = _model()
    c1, _ = map_model(m)
    c4, _ = map_model(m, steps_per_tick=4)
    assert c4.steps_per_tick == 4 and c4.dt_s == pytest.approx(1e-3)
    assert c1.dash_mem[0] == tau_to_dash(32e-3, 4e-3) == 3
    assert c4.dash_mem[0] == tau_to_dash(32e-3, 1e-3) == 5
    assert c4.notes["tau_mem_s_chip"] == pytest.approx(32e-3)


@pytest.mark.parametrize("simulator", ["reference"] + (["xylosim"] if xylosim_available() else []))
def test_backend_steps_the_chip_k_times_per_tick(simulator):
    """The backend's tick = K chip steps on the spread counts; its readout is the chip's after
    the tick's last step (checked against the integer network run on the spread input)."""
    m = _model(seed=2)
    xs = np.random.default_rng(0).poisson(0.6, (300, 16)).astype(np.float32)
    xs[7, 2] = 50.0  # 15 K = 45 is the most a tick can carry: clipped, counted
    be = XyloBackend(m, simulator=simulator, steps_per_tick=3)
    out = np.zeros((len(xs), 2), np.float32)
    for t in range(len(xs)):
        be.step(xs[t])
        out[t] = be.readout()
    cfg = be.config
    rec = IntNetwork(cfg).run(spread_counts(np.minimum(xs, 45).astype(np.int32), 3))
    want = rec["i_syn_out"][tick_rows(900, 3)] / cfg.out_scale + cfg.b_out
    np.testing.assert_allclose(out, want.astype(np.float32), rtol=1e-6)
    assert np.abs(out).max() > 0
    st = be.stats()
    assert st["ticks"] == 300 and st["steps"] == 900 and st["inputs_clipped"] == 1
    # the same chip outputs through the training/evaluation path
    np.testing.assert_allclose(chip_outputs(cfg, np.minimum(xs, 45)[None])[0], want, rtol=1e-12)


def test_substeps_cut_the_output_lag():
    """An input burst in tick 5: with one step per tick the readout first moves in tick 6
    (hidden -> output spikes arrive one step late), with 2 or 4 steps already in tick 5."""
    m = _model(seed=3)
    m.weights.w_in[...] = np.abs(m.weights.w_in) * 3.0  # the burst makes hidden neurons fire at once
    xs = np.zeros((12, 16), np.float32)
    xs[5] = 15.0
    first = {}
    for k in (1, 2, 4):
        be = XyloBackend(m, simulator="reference", steps_per_tick=k)
        moved = []
        for t in range(len(xs)):
            be.step(xs[t])
            moved.append(bool(np.any(be.readout() != be.config.b_out.astype(np.float32))))
        first[k] = moved.index(True)
    assert first == {1: 6, 2: 5, 4: 5}, first


def test_qat_trains_on_ticks_of_several_steps():
    m = _model(seed=4)
    cfg, _ = map_model(m, steps_per_tick=2)
    rng = np.random.default_rng(2)
    xs = rng.poisson(0.8, (24, 30, 16))
    y0 = chip_outputs(cfg, xs)
    target = y0 + rng.standard_normal(y0.shape) * 0.1 + 0.5  # reachable: a shifted copy of its own output
    res = qat_finetune(cfg, xs, target, epochs=4, task="regress", lr=0.3, batch_size=8, seed=0)
    assert res.config.steps_per_tick == 2
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    with pytest.raises(ValueError, match=r"target must be \(n, T, n_out\)"):
        qat_finetune(cfg, xs, np.repeat(target, 2, axis=1), epochs=1, task="regress")
