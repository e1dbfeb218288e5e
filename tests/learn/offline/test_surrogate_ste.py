"""The straight-through estimator (``surrogate='ste'``): ``dz/du := 1`` (optionally inside a
window ``|u - theta| <= p``), snnTorch's ``surrogate.straight_through_estimator()`` with the
default ``p = inf``; its gradients through whole networks equal snnTorch's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import import_or_skip
from rtsnn.learn.offline.bptt import train_classifier
from rtsnn.learn.offline.bptt_graph import BpttOptions

from _bptt_nets import plan
from _snntorch_ref import assert_engine_matches, snntorch_run, two_layer_case
from rtsnn.learn.offline.surrogate import (ESTIMATORS, SURROGATE_KINDS, SURROGATES, surrogate_grad_array,
                                           surrogate_grad_np, surrogate_id)


def test_ste_id_default_and_window():
    assert "ste" in SURROGATE_KINDS and "ste" in ESTIMATORS and "ste" not in SURROGATES
    kind, p = surrogate_id("ste")
    assert kind == SURROGATE_KINDS["ste"] and p == math.inf
    assert surrogate_id("ste", 0.5) == (kind, 0.5)
    x = np.array([-1e30, -3.0, -0.5, -0.4999, 0.0, 0.5, 0.50001, 7.0, 1e300])
    np.testing.assert_array_equal(surrogate_grad_np(x, kind, math.inf), np.ones_like(x))
    np.testing.assert_array_equal(surrogate_grad_np(x, kind, 0.5), [0, 0, 1, 1, 1, 1, 0, 0, 0])
    for p in (math.inf, 0.5, 2.0):
        out = np.empty_like(x)
        surrogate_grad_array(x, kind, p, out)  # numba == numpy
        np.testing.assert_array_equal(out, surrogate_grad_np(x, kind, p))


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, "wide"])
def test_ste_refuses_bad_window(bad):
    with pytest.raises(ValueError, match="'ste'"):
        surrogate_id("ste", bad)


def test_inf_only_for_ste():
    with pytest.raises(ValueError, match="finite number > 0"):
        surrogate_id("boxcar", math.inf)
    with pytest.raises(ValueError, match="surrogate must be one of .*ste"):
        surrogate_id("straight_through")
    with pytest.raises(ValueError, match="surrogate must be one of"):
        BpttOptions(surrogate="STE")


def test_ste_equals_snntorch_elementwise():
    torch = import_or_skip("torch")
    import_or_skip("snntorch")
    from snntorch import surrogate as sts

    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 3.0, 500)
    c = rng.standard_normal(500)
    xt = torch.tensor(x, requires_grad=True)
    z = sts.straight_through_estimator()(xt)
    (z.to(torch.float64) * torch.tensor(c)).sum().backward()
    kind, p = surrogate_id("ste")
    np.testing.assert_array_equal(z.detach().numpy(), (x > 0).astype(np.float64))
    # snnTorch's spikes are float32, so the incoming gradient is rounded to float32 there
    np.testing.assert_allclose(xt.grad.numpy(), c * surrogate_grad_np(x, kind, p), rtol=1e-7)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("recurrent", [(False, False), (True, False)])
def test_ste_network_gradients_equal_snntorch(reset, recurrent):
    """Two Leaky layers and a leaky readout, snnTorch's STE as the spike function; reset
    detached as snnTorch does."""
    torch = import_or_skip("torch")
    snn = import_or_skip("snntorch")
    from snntorch import surrogate as sts

    rng = np.random.default_rng(31 + 2 * recurrent[0] + (reset == "zero"))
    graph, opts, spec, params, x, dy = two_layer_case(rng, seed=1, recurrent=recurrent, surrogate="ste", reset=reset,
                                                      bias=True)
    tp, y, spikes = snntorch_run(torch, snn, spec, params, x, dy, recurrent,
                                 spike_grad=sts.straight_through_estimator(), reset=reset)
    assert_engine_matches(graph, opts, params, x, dy, recurrent, tp, y, spikes)


def test_train_classifier_with_ste_rate_ce_on_spiking_output_learns():
    """A separable toy task: class k drives input channel k; STE + rate CE on the spikes of the
    output layer (snnTorch's ce_rate_loss setting), reset to zero, detached as snnTorch does
    (with g = 1 everywhere an attached reset path feeds -alpha v back at every step)."""
    rng = np.random.default_rng(2)
    n, T = 60, 12
    y = rng.integers(0, 3, n)
    x = (rng.random((n, T, 3)) < 0.1).astype(np.float32)
    x[np.arange(n), :, y] = (rng.random((n, T)) < 0.6)
    clf = train_classifier(x, y, hidden=[10], n_classes=3, epochs=12, seed=0, lr=2e-2, loss="rate_ce",
                           output="spiking", surrogate="ste", reset="zero", detach_reset=True, batch_size=20)
    spec = plan(clf.graph, clf.options)
    assert spec.n_out is None and spec.layers == (10, 3) and spec.reset == "zero"
    assert clf.history[-1]["loss"] < clf.history[0]["loss"]
    assert clf.history[-1]["train_acc"] >= 0.8


def test_train_classifier_new_options_refuse_bad_input():
    x = np.zeros((4, 5, 2), np.float32)
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="output must be 'spiking' or 'readout'"):
        train_classifier(x, y, hidden=[3], n_classes=2, epochs=1, seed=0, output="linear")
    with pytest.raises(ValueError, match="reset must be 'subtract' or 'zero'"):
        train_classifier(x, y, hidden=[3], n_classes=2, epochs=1, seed=0, reset="none")
    with pytest.raises(ValueError, match=r"init_weights\['w0'\] must be a finite array of shape \(2, 3\)"):
        train_classifier(x, y, hidden=[3], n_classes=2, epochs=1, seed=0, init_weights={"w0": np.ones((3, 3))})
    with pytest.raises(ValueError, match="init_weights: unknown parameter 'w9'"):
        train_classifier(x, y, hidden=[3], n_classes=2, epochs=1, seed=0, init_weights={"w9": np.ones(1)})


def test_init_weights_are_used_as_given():
    rng = np.random.default_rng(0)
    x = (rng.random((8, 6, 2)) < 0.5).astype(np.float32)
    y = np.array([0, 1] * 4)
    w0, w1 = rng.normal(1.5, 0.8, (2, 4)), rng.normal(2.0, 0.1, (4, 2))
    clf = train_classifier(x, y, hidden=[4], n_classes=2, epochs=1, seed=0, lr=1e-12, loss="count_ce",
                           init_weights={"w0": w0, "w1": w1}, data_init=False)
    np.testing.assert_allclose(clf.params["w0"], w0, atol=1e-9)
    np.testing.assert_allclose(clf.params["w1"], w1, atol=1e-9)
