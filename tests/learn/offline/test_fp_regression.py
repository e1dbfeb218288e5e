"""FP for regression (issue 18, item 3): the paper's membrane-potential loss on a linear output.

The batch kernel against its numpy twin, the exact gradient against central finite differences
in float64 (weights, bias, thresholds, time constants), bad targets, a small training run, and
export -> simulate reproducing the FP forward within the tick discretisation."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rtsnn.learn.offline import fp_reference as R
from rtsnn.learn.offline import fp_regression as F


def _net(seed, sizes, recurrent=False):
    rng = np.random.default_rng(seed)
    ws, rs, th, ts, tm = [], [], [], [], []
    L = len(sizes) - 1
    for l in range(L):
        n = sizes[l + 1]
        last = l == L - 1
        scale = 2.5 / max(1, sizes[l]) ** 0.5
        ws.append(rng.normal(0.0, 1.0, size=(sizes[l], n)) if last else rng.normal(scale * 1.5, scale, (sizes[l], n)))
        if recurrent and not last and n > 1:
            r = rng.normal(0.0, 0.5, (n, n))
            np.fill_diagonal(r, 0.0)
            rs.append(r)
        else:
            rs.append(None)
        th.append(rng.uniform(0.7, 1.3, n))
        ts.append(rng.uniform(0.3, 1.2, n))
        tm.append(rng.uniform(0.5, 1.5, n))
    return F.FPRegressionNet(ws, th, ts, tm, rng.normal(0, 1, sizes[-1]), rs)


def _batch(seed, n_in, n_out, B=2, T=5):
    rng = np.random.default_rng(seed + 101)
    x = rng.poisson(0.8, size=(T, B, n_in - 1)).astype(float)  # the last input is the bias channel
    y = rng.normal(size=(T, B, n_out))
    mask = np.ones((T, B))
    mask[T - 1, 0] = 0.0  # a shorter first sequence
    return F.events_from_bins(x, y, mask, offset=0.25)


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([[4, 2], [4, 3, 2], [4, 3, 2, 1]]), st.booleans())
def test_regression_batch_matches_numpy_twin(seed, sizes, recurrent):
    net = _net(seed, sizes, recurrent)
    batch = _batch(seed, sizes[0], sizes[-1])
    ev = F.FPRegressionEvaluator(net, 4)
    loss, grad, v, _ = ev.run(batch)
    layers = F.reference_layers(net)
    tot_loss, tot_grad = 0.0, np.zeros_like(grad)
    for b in range(batch.n):
        a, z = batch.ptr[b], batch.ptr[b + 1]
        nr = batch.n_read[b]
        vr, lr_, gr = R.regression_loss_grad_ref(batch.t[a:z], batch.src[a:z], batch.amp[a:z], layers,
                                                 batch.t_read[:nr], batch.y[b, :nr], batch.mask[b, :nr], 4)
        np.testing.assert_allclose(v[b, :nr], vr, rtol=1e-10, atol=1e-12)
        assert not np.any(v[b, nr:])
        tot_loss += lr_
        tot_grad += gr
    assert loss == pytest.approx(tot_loss, rel=1e-11)
    np.testing.assert_allclose(grad, tot_grad, rtol=1e-8, atol=1e-10 * max(1.0, np.abs(tot_grad).max()))


@pytest.mark.parametrize("seed,sizes,recurrent", [(1, [4, 2], False), (2, [4, 5, 2], False),
                                                  (5, [4, 4, 1], True), (9, [4, 3, 3, 2], False)])
def test_regression_gradient_matches_finite_differences(seed, sizes, recurrent):
    """Every weight, bias, threshold, synaptic and membrane rate (float64 central differences),
    hidden neurons firing several times."""
    net = _net(seed, sizes, recurrent)
    batch = _batch(seed, sizes[0], sizes[-1], B=2, T=6)
    ev = F.FPRegressionEvaluator(net, 6)
    p0 = net.kernel_vector()
    _, grad, _, counts = ev.run(batch)
    if len(sizes) > 2:
        assert counts[:sizes[1]].max() >= 2 * batch.n  # several spikes per hidden neuron
    lay = net.layout()
    fixed = set(range(lay["off_th"] + lay["nrn_off"][-2], lay["off_al"]))  # the linear output has no theta
    bad = []
    for q in range(p0.size):
        eps = 1e-6 * max(1.0, abs(p0[q]))
        pp, pm = p0.copy(), p0.copy()
        pp[q] += eps
        pm[q] -= eps
        lp = ev.run(batch, False, pp)
        lm = ev.run(batch, False, pm)
        if not np.array_equal(lp[3], lm[3]):
            continue  # a spike appears or vanishes inside [-eps, eps]: the loss jumps there
        fd = (lp[0] - lm[0]) / (2 * eps)
        if q in fixed:
            assert grad[q] == 0.0 and fd == 0.0
        elif abs(fd - grad[q]) > 1e-5 * max(1.0, abs(fd)):
            bad.append((q, fd, grad[q]))
    assert not bad


def test_time_constant_gradient_of_the_trainer_is_the_rate_gradient_chained():
    net = _net(3, [4, 3, 2])
    batch = _batch(3, 4, 2)
    ev = F.FPRegressionEvaluator(net, 6)
    _, g, _, _ = ev.run(batch)
    lay = net.layout()
    z0 = net.trainable_vector()
    for q in (lay["off_al"], lay["off_al"] + 4, lay["off_be"] + 1, lay["off_be"] + 3):  # hidden and output taus
        eps = 1e-6
        zp, zm = z0.copy(), z0.copy()
        zp[q] += eps
        zm[q] -= eps
        a, b = net.copy(), net.copy()
        a.set_trainable_vector(zp)
        b.set_trainable_vector(zm)
        fd = (F.FPRegressionEvaluator(a, 6).run(batch, False)[0] - F.FPRegressionEvaluator(b, 6).run(batch, False)[0])
        assert fd / (2 * eps) == pytest.approx(g[q] * (-1.0 / z0[q] ** 2), rel=1e-5, abs=1e-8)


def test_events_from_bins_layout():
    x = np.zeros((3, 1, 2))
    x[0, 0, 1] = 2.0
    x[2, 0, 0] = 1.0
    b = F.events_from_bins(x, np.zeros((3, 1, 1)), offset=0.5)
    np.testing.assert_array_equal(b.t, [0.5, 0.5, 1.5, 2.5, 2.5])
    np.testing.assert_array_equal(b.src, [1, 2, 2, 0, 2])
    np.testing.assert_array_equal(b.amp, [2.0, 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(b.t_read, [1.0, 2.0, 3.0])
    assert b.n_in == 3 and b.n_read.tolist() == [3]


@pytest.mark.parametrize("y,match", [
    (np.full((4, 2, 1), np.nan), "target contains 8 NaN/inf value\\(s\\) \\(first: bin 0, sequence 0"),
    (np.zeros((3, 2, 1)), "target has 3 bins, the inputs have 4"),
    (np.zeros((4, 3, 1)), "target has 3 sequences, the inputs have 2")])
def test_bad_regression_targets_are_refused(y, match):
    x = np.ones((4, 2, 3))
    with pytest.raises(ValueError, match=match):
        F.events_from_bins(x, y)


def test_one_nan_in_the_target_is_named():
    y = np.zeros((4, 2, 2))
    y[2, 1, 1] = np.inf
    with pytest.raises(ValueError, match="1 NaN/inf value\\(s\\) \\(first: bin 2, sequence 1, output 1\\)"):
        F.events_from_bins(np.ones((4, 2, 3)), y)


@pytest.mark.parametrize("x,match", [(-np.ones((4, 2, 3)), "finite counts >= 0"),
                                     (np.full((4, 2, 3), np.nan), "finite counts >= 0"),
                                     (np.ones((4, 3)), "must be \\(bins, sequences, channels\\)")])
def test_bad_inputs_are_refused(x, match):
    with pytest.raises(ValueError, match=match):
        F.events_from_bins(x, np.zeros((4, 2, 1)))


def test_mismatched_network_and_events_are_refused():
    batch = _batch(0, 4, 2)
    with pytest.raises(ValueError, match="the network expects 5"):
        F.FPRegressionEvaluator(_net(0, [5, 2]), 4).run(batch)
    with pytest.raises(ValueError, match="the target has 2 outputs, the network has 3"):
        F.FPRegressionEvaluator(_net(0, [4, 3]), 4).run(batch)


def test_training_reduces_the_loss_on_a_small_decoding_task():
    """Counts from 6 cosine-tuned channels, velocity as target: from a zero readout, FP's
    exact gradients (all weights, thresholds, time constants) lower the loss and decode."""
    rng = np.random.default_rng(0)
    T, B, n = 12, 24, 6
    ang = np.cumsum(rng.normal(0, 0.4, size=(T, B)), axis=0)
    vel = np.stack([np.cos(ang), np.sin(ang)], axis=2)
    pref = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rate = 1.0 + 0.9 * (vel[..., :1] * np.cos(pref) + vel[..., 1:] * np.sin(pref))
    x = rng.poisson(rate * 2.0).astype(float)
    batch = F.events_from_bins(x, vel)
    m = F.train_regression_fp(batch, hidden=[12], epochs=10, seed=0, lr=1e-2, batch_size=6, max_hidden_spikes=32,
                              readout_lstsq=False)
    losses = [h["loss"] for h in m.history]
    assert losses[-1] < 0.8 * losses[0]
    r2, per = F.r2_masked(m.predict(batch), batch.y, batch.mask)
    assert r2 > 0.25 and len(per) == 2
    assert not np.array_equal(m.net.theta[0], np.ones(12))  # thresholds were trained
    # spikes per hidden neuron and sequence (12 bins, 12 neurons): several
    assert m.history[-1]["hidden_spikes_per_bin"] * T / 12 > 2


def test_export_then_simulate_gives_the_fp_forward(tmp_path):
    """fp_regression_to_graph at a fine tick: the graph's output at the readout ticks equals
    V_o(t_m) of the FP forward within the tick discretisation (inputs on the grid)."""
    from rtsnn.snn.graph_network import GraphNetwork
    from rtsnn.snn.model_file import load_graph_model, save_model

    net = _net(4, [4, 6, 2])
    rng = np.random.default_rng(4)
    x = rng.poisson(0.8, size=(8, 3, 3)).astype(float)
    batch = F.events_from_bins(x, np.zeros((8, 3, 2)), offset=0.0)
    m = F.TrainedFPRegression(net, 10_000, np.array([0.5, -1.0]), np.array([2.0, 3.0]), [], {})
    v_fp = m.predict(batch)
    unit_s, dt_s = 0.1, 0.1 / 200  # D = 1/200 time unit
    exported = F.fp_regression_to_graph(m, dt_s, unit_s=unit_s, output_labels=["vx", "vy"])
    gm = load_graph_model(save_model(tmp_path / "fpr.npz", exported))
    assert [gm.graph.nodes[k].kind for k in ("layer0", "out_syn", "out_mem", "readout")] == \
        ["CubaLIF", "LI", "LI", "Affine"]
    assert gm.provenance["export"]["from"] == "fp_regression"
    g = GraphNetwork(gm)
    y = g.readout()
    n_ticks = int(round(8 * unit_s / dt_s))
    errs, scale = [], float(np.abs(v_fp).max())
    buf = np.zeros(gm.n_in, np.float32)
    for b in range(batch.n):
        raster = F.events_raster(batch, b, dt_s, unit_s, n_ticks)
        g.reset_state()
        out = []
        for t in range(n_ticks):
            buf[...] = raster[t]
            g.step(buf)
            out.append(y.copy())
        out = np.array(out)
        ticks = np.rint(batch.t_read * unit_s / dt_s).astype(int) - 1  # readout time (t+1) D
        errs.append(np.abs(out[ticks] - v_fp[b]))
    errs = np.array(errs)
    # a hidden spike is seen up to one tick late: a shift of D = 0.005 units in its kernel
    assert np.median(errs) < 0.01 * scale
    assert errs.max() < 0.08 * scale
