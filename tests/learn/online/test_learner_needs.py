"""Learners state what they need from the model's topology (rtsnn.learn.online.needs): the
ridge readout and the actor-critic an LI -> Affine -> Output readout, e-prop (and the learners
built on it) a recurrent LIF/ALIF layer feeding that readout. On a deeper graph e-prop trains
the last recurrent layer with the earlier layers frozen, exactly as it trains today's single
layer fed the previous layer's spikes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from rtsnn.backends.numba_cpu import NumbaCpuBackend
from rtsnn.learn.online.actor_critic import ActorCriticLearner
from rtsnn.learn.online.adaptation import RidgeThenEpropLearner
from rtsnn.learn.online.eprop import EpropLearner
from rtsnn.learn.online.needs import find_last_layer, last_layer_problem, readout_problem
from rtsnn.learn.online.reward import QueueRewardSource
from rtsnn.learn.online.reward_eprop import RewardEpropLearner
from rtsnn.learn.online.ridge_readout import RidgeReadoutLearner
from rtsnn.snn.graph import graph_from_model
from rtsnn.snn.model_file import load_graph_model
from rtsnn.snn.params import Model, single_layer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graph_models import deep_graph  # noqa: E402

LEARNERS = {"ridge_readout": RidgeReadoutLearner, "actor_critic": ActorCriticLearner, "eprop": EpropLearner,
            "reward_eprop": RewardEpropLearner, "ridge_then_eprop": RidgeThenEpropLearner}
READOUT_ONLY = ("ridge_readout", "actor_critic")


def test_last_layer_of_a_deep_graph_shares_its_arrays_and_keeps_the_names():
    gm = deep_graph(n_in=12, n0=10, n1=8)
    layer, why = find_last_layer(gm)
    assert layer is not None, why
    assert (layer.source, layer.w_in, layer.hidden, layer.w_rec, layer.trace, layer.w_out) == \
        ("l0", "w1", "l1", "r1", "trace", "w_out")
    assert layer.frozen == ["l0"] and not layer.from_input
    nodes = gm.graph.nodes
    w = layer.model.weights
    assert w.w_in is nodes["w1"].weight and w.w_rec is nodes["r1"].weight
    assert w.w_out is nodes["w_out"].weight and w.b_out is nodes["w_out"].bias
    assert all(node.name == name for name, node in nodes.items())  # the graph's nodes keep their names
    s = layer.model.constants
    assert (s.model, s.dt_s, s.tau_mem_s, s.tau_out_s) == ("lif", 0.01, 0.05, 0.1)
    assert layer.model.hidden is not nodes["l1"]  # the layer's Model holds copies of the nodes


def test_single_layer_graph_is_its_own_last_layer():
    m = Model.random(6, 9, 2, *single_layer("alif", 9), seed=0)
    layer, _ = find_last_layer(graph_from_model(m))
    assert layer is not None and layer.from_input and layer.frozen == []
    assert layer.model.weights.w_in is m.weights.w_in


VARIANTS = {  # graph -> the clause of the refusal, for the learners that need the recurrent layer
    "deep LIF": (dict(), None),
    "deep ALIF": (dict(last="ALIF"), None),
    "no recurrence": (dict(recurrent=False), "its last layer 'l1' has no recurrent Linear projection onto itself"),
    "CubaLIF last": (dict(last="CubaLIF"), "the readout trace 'trace' is fed by l1 CubaLIF, not by one LIF/ALIF"),
    "per-neuron tau": (dict(tau_mem_s=np.linspace(0.02, 0.08, 8)),
                       "and its last layer is not today's neuron: node 'l1': tau_mem_s differs across neurons"),
    "no trace": (dict(trace=False), "its output is not an LI -> Affine readout"),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("kind", list(LEARNERS))
def test_each_learner_states_what_it_needs(kind, variant):
    kw, clause = VARIANTS[variant]
    gm = deep_graph(n_in=12, n0=10, n1=8, **kw)
    problem = LEARNERS[kind].model_problem(gm)
    if kind in READOUT_ONLY:  # only the readout is trained: any layers before the trace will do
        if variant == "no trace":
            assert problem == ("needs an LI -> Affine -> Output readout (a leaky trace read out linearly); model "
                               "graph has 2 spiking layers (l0 CubaLIF, l1 LIF), output path l1 LIF -> w_out Affine "
                               "-> output Output")
        else:
            assert problem is None
        return
    if clause is None:
        assert problem is None
        return
    assert problem is not None and "\n" not in problem
    assert problem.startswith("needs a recurrent LIF/ALIF layer (uniform parameters, subtractive reset) fed by the "
                              "input or a spiking layer and feeding an LI -> Affine readout; earlier layers stay "
                              "frozen; model graph has 2 spiking layers (l0 CubaLIF, l1 ")
    assert clause in problem


def test_todays_model_needs_nothing_more():
    m = Model.random(6, 9, 2, seed=0)
    assert all(cls.model_problem(m) is None for cls in LEARNERS.values())
    assert readout_problem(m) is None and last_layer_problem(m) is None


def _drive(backend, learner, xs, targets, record=None, record_node="l0"):
    x = np.zeros(backend.n_in, np.float32)
    ys = np.zeros((len(xs), backend.n_out))
    for t in range(len(xs)):
        x[:] = xs[t]
        backend.step(x)
        if record is not None:
            record[t] = backend.state()[f"{record_node}.z"]
        ys[t] = backend.readout()
        learner.observe(backend, targets[t])
        if learner.wants_apply():
            learner.prepare()
            learner.apply(backend)
    return ys


@pytest.mark.parametrize("last", ["LIF", "ALIF"])
def test_eprop_trains_the_last_layer_as_the_single_layer_fed_the_previous_spikes(last, tmp_path):
    """The graph's last layer learns exactly what today's single layer learns when its input is
    the frozen first layer's spikes; the first layer's weights do not move."""
    gm = deep_graph(n_in=16, n0=24, n1=20, last=last, readout_scale=0.2, seed=2)
    w0, w1 = gm.graph.nodes["w0"].weight.copy(), gm.graph.nodes["w1"].weight.copy()
    layer, _ = find_last_layer(gm)
    lm = layer.model
    single = Model(lm.hidden, lm.trace, lm.weights.copy(), lm.dt_s)  # the same layer, its own arrays
    opts = dict(lr=5e-3, optimizer="adam", update_every_ticks=50, defer=False,
                checkpoint_path=str(tmp_path / "deep.npz"))
    n_t = 1100  # 22 windows: the guard keeps the weights of the 20th as its last good copy
    rng = np.random.default_rng(0)
    xs = rng.poisson(0.3, (n_t, 16)).astype(np.float32)
    tt = np.arange(n_t) * 0.01
    targets = np.stack([np.sin(2 * np.pi * tt), np.cos(2 * np.pi * 0.5 * tt)], axis=1).astype(np.float32)

    be_g = NumbaCpuBackend(gm, propagation="dense")
    assert be_g.is_graph and be_g.n_rec == 20
    lrn_g = EpropLearner(**opts)
    lrn_g.attach(be_g, 0.01)
    be_g.warm_up()
    z0 = np.zeros((n_t, 24), np.float32)
    ys_g = _drive(be_g, lrn_g, xs, targets, record=z0)
    assert 0.01 < z0.mean() < 0.6  # the frozen layer spikes (its spikes are the layer's input)

    be_s = NumbaCpuBackend(single, propagation="dense")
    lrn_s = EpropLearner(**{**opts, "checkpoint_path": None})
    lrn_s.attach(be_s, 0.01)
    be_s.warm_up()
    ys_s = _drive(be_s, lrn_s, z0, targets)

    np.testing.assert_allclose(ys_g, ys_s, rtol=1e-5, atol=1e-6)
    assert lrn_g.stats()["updates"] == n_t // 50 == lrn_s.stats()["updates"]
    nodes = gm.graph.nodes
    for graph_arr, single_arr in ((nodes["w1"].weight, single.weights.w_in), (nodes["r1"].weight, single.weights.w_rec),
                                  (nodes["w_out"].weight, single.weights.w_out)):
        np.testing.assert_allclose(graph_arr, single_arr, rtol=1e-5, atol=1e-7)
    assert not np.array_equal(nodes["w1"].weight, w1)  # it learned
    np.testing.assert_array_equal(nodes["w0"].weight, w0)  # frozen

    # the checkpoint is the whole graph with the adapted last layer
    lrn_g.close()
    saved = load_graph_model(tmp_path / "deep.npz")
    assert [r["name"] for r in saved.graph.summary()] == [r["name"] for r in gm.graph.summary()]
    np.testing.assert_array_equal(saved.graph.nodes["w0"].weight, w0)
    # (of the guard's last good weights: native conventions install them as they are)
    np.testing.assert_array_equal(saved.graph.nodes["w1"].weight, lrn_g.guard.good["w_in"])
    np.testing.assert_array_equal(saved.graph.nodes["r1"].weight, lrn_g.guard.good["w_rec"])
    np.testing.assert_array_equal(saved.graph.nodes["w_out"].weight, lrn_g.guard.good["w_out"])
    assert not np.array_equal(saved.graph.nodes["w1"].weight, w1)
    assert saved.provenance["eprop"]["layer"] == "l1" and saved.provenance["eprop"]["frozen"] == ["l0"]


def test_eprop_attach_refuses_a_graph_it_cannot_train():
    be = NumbaCpuBackend(deep_graph(n_in=12, n0=10, n1=8, recurrent=False))
    with pytest.raises(ValueError, match=r"^eprop: needs a recurrent LIF/ALIF layer .* has no recurrent Linear"):
        EpropLearner().attach(be, 0.01)


def test_actor_critic_learns_the_readout_of_a_deep_graph():
    gm = deep_graph(n_in=12, n0=10, n1=8, dt_s=1e-3)
    gm.graph.nodes["trace"].gain[:4] = 2.0  # per-neuron gain: the rates scale per neuron
    be = NumbaCpuBackend(gm)
    rewards = QueueRewardSource()
    lrn = ActorCriticLearner(reward_source=rewards, eta_actor=0.5, sigma=0.2, seed=1)
    lrn.attach(be, 1e-3)
    np.testing.assert_allclose(lrn._rate_scale, np.where(np.arange(8) < 4, 1 / (2 * 0.1), 1 / 0.1))
    w_before = be.readout_weights()[0].copy()
    rng = np.random.default_rng(0)
    x = np.zeros(12, np.float32)
    for t in range(300):
        x[:] = rng.poisson(0.3, 12)
        be.step(x)
        rewards.push(1.0 if t % 7 == 0 else 0.0)
        lrn.observe(be, None)
    st = lrn.stats()
    assert st["rewards"] > 0 and np.isfinite(st["value"])
    assert not np.array_equal(be.readout_weights()[0], w_before)
    assert np.all(np.isfinite(be.readout()))


@pytest.mark.parametrize("change, clause", [
    (lambda g: setattr(g.nodes["l1"], "reset_at", "now"), "node 'l1': reset_at is 'now', not 'next'"),
    (lambda g: g.nodes["l1"].reset.__setitem__(0, 1), "node 'l1': reset to zero, not subtractive"),
    (lambda g: g.nodes["trace"].gain.__setitem__(slice(None), 2.0), "node 'trace': gain is not 1"),
    (lambda g: g.nodes["l1"].v_leak.__setitem__(slice(None), 0.1), "node 'l1': v_leak is not 0"),
    (lambda g: g.nodes["r1"].weight.__setitem__((2, 2), 0.5),
     "node 'r1': weight has self-connections (a non-zero diagonal)"),
    (lambda g: setattr(g, "integration", "euler"), "the graph integrates with 'euler', not 'exact'"),
])
def test_the_refusal_names_what_makes_the_layer_untrainable(change, clause):
    gm = deep_graph(n_in=12, n0=10, n1=8)
    change(gm.graph)
    problem = EpropLearner.model_problem(gm)
    assert problem is not None and problem.endswith(f"and its last layer is not today's neuron: {clause}"), problem
