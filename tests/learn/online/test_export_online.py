"""The online learners' saved models load as graphs and run as the network that produced them.

e-prop writes checkpoints of the adapted model (``checkpoint_path``; rtsnn.snn.save_model);
the actor-critic learns the backend's readout in place, so the model to save is the
backend's own. Both learn on today's single-layer Model: the file holds the graph of
``rtsnn.snn.graph.graph_from_model``, and load_graph_model + GraphNetwork must reproduce the
producing network (spikes identical, outputs to float32 rounding: the fused Network sums
its readout in another order), while load_model gives the Model back bit for bit."""

import numpy as np
import pytest

from rtsnn.backends.numba_cpu import NumbaCpuBackend
from rtsnn.learn.online.actor_critic import ActorCriticLearner
from rtsnn.learn.online.eprop import EpropLearner
from rtsnn.learn.online.reward import QueueRewardSource
from rtsnn.snn.graph import GraphModel
from rtsnn.snn.graph_network import GraphNetwork
from rtsnn.snn.model_file import load_graph_model, load_model, save_model
from rtsnn.snn.network import Network
from rtsnn.snn.params import Model, single_layer


def _setup(model_kind, seed=0, n_t=3000):
    layer = single_layer(model_kind, 40, tau_mem_s=20e-3, tau_out_s=20e-3, v_th=1.0, beta_adapt=0.5,
                         tau_adapt_s=200e-3, refractory_s=2e-3)
    model = Model.random(12, 40, 2, *layer, seed=seed, input_gain=1.5, spectral_radius=0.5, readout_scale=0.1)
    rng = np.random.default_rng(seed)
    rates = 0.03 + 0.03 * np.sin(np.arange(n_t)[:, None] / 100.0 + np.arange(12)[None] * 0.5)
    xs = (rng.random((n_t, 12)) < rates).astype(np.float32)
    t = np.arange(n_t)
    tg = np.stack([np.sin(t / 100.0), np.cos(t / 100.0 + 1.0)], 1).astype(np.float32)
    return model, xs, tg


def _drive(learner, backend, xs, targets):
    buf = np.zeros(backend.n_in, np.float32)
    for t in range(xs.shape[0]):
        buf[:] = xs[t]
        backend.step(buf)
        learner.observe(backend, None if targets is None else targets[t])
        if learner.wants_apply():
            learner.prepare()
            learner.apply(backend)


def _same_as_producer(path, producer: Model, xs):
    """The saved file, loaded as a graph and as a Model, runs as ``producer`` from rest."""
    gm = load_graph_model(path)
    assert isinstance(gm, GraphModel)
    assert {n: node.kind for n, node in gm.graph.nodes.items()}["hidden"] == ("ALIF" if producer.constants.adaptive
                                                                               else "LIF")
    y_ref, z_ref = Network(producer, propagation="dense").run(xs)
    assert z_ref.sum() > 50 and np.abs(y_ref).max() > 0.1
    y_g, z_g = GraphNetwork(gm).run(xs)
    np.testing.assert_array_equal(z_g, z_ref)
    np.testing.assert_allclose(y_g, y_ref, rtol=0, atol=1e-5 * np.abs(y_ref).max())
    m = load_model(path)
    assert isinstance(m, Model)
    y_m, z_m = Network(m, propagation="dense").run(xs)
    np.testing.assert_array_equal(z_m, z_ref)
    np.testing.assert_array_equal(y_m, y_ref)


@pytest.mark.parametrize("model_kind,conventions,every", [("alif", "native", 50),
                                                           ("lif", "nest_bsshslm_2020", 200)])
def test_eprop_checkpoint_loads_as_graph_and_runs_as_the_adapted_network(tmp_path, model_kind, conventions, every):
    model, xs, tg = _setup(model_kind)
    be = NumbaCpuBackend(model.copy())
    ck = tmp_path / "eprop.npz"
    lrn = EpropLearner(lr=5e-3, update_every_ticks=every, conventions=conventions, checkpoint_path=str(ck),
                       checkpoint_every_s=3600.0)
    lrn.attach(be, 1e-3)
    be.warm_up()
    _drive(lrn, be, xs[:2000], tg[:2000])  # 2000 ticks: a whole number of guard commits (every 1000 ticks)
    lrn.close()
    assert lrn.stats()["updates"] > 0 and lrn.stats()["checkpoints_written"] == 1
    w = be.model.weights
    assert not np.array_equal(w.w_in, model.weights.w_in)  # it learned something
    saved = load_model(ck)
    for k in ("w_in", "w_rec", "w_out", "b_out"):
        np.testing.assert_array_equal(getattr(saved.weights, k), getattr(w, k), err_msg=k)
    assert saved.constants == be.model.constants
    assert saved.provenance["eprop"]["updates"] == lrn.stats()["updates"]
    _same_as_producer(ck, be.model, xs[2000:])


def test_eprop_final_checkpoint_holds_the_running_weights(tmp_path):
    model, xs, tg = _setup("lif")
    be = NumbaCpuBackend(model.copy())
    ck = tmp_path / "eprop.npz"
    lrn = EpropLearner(lr=5e-3, update_every_ticks=50, checkpoint_path=str(ck), checkpoint_every_s=3600.0)
    lrn.attach(be, 1e-3)
    _drive(lrn, be, xs[:1500], tg[:1500])  # 30 updates; the guard committed after 20
    lrn.close()
    np.testing.assert_array_equal(load_model(ck).weights.w_in, be.model.weights.w_in)


def test_actor_critic_saved_model_loads_as_graph_and_runs_as_the_learned_network(tmp_path):
    model, xs, _ = _setup("alif", seed=1)
    be = NumbaCpuBackend(model.copy())
    q = QueueRewardSource()
    lrn = ActorCriticLearner(reward_source=q, eta_actor=5e-2, eta_critic=1e-3, sigma=0.3, seed=0)
    lrn.attach(be, 1e-3)
    buf = np.zeros(be.n_in, np.float32)
    for t in range(1500):
        buf[:] = xs[t]
        be.step(buf)
        y = be.readout()
        lrn.observe(be, None)
        q.push(-float(np.sum((y - 0.5) ** 2)) * 1e-3)
    lrn.pause_learning()  # no exploration noise from here: the output is the network's own
    w_out, b_out = be.readout_weights()
    assert not np.array_equal(w_out, model.weights.w_out)  # the readout learned in place, in be.model
    path = save_model(tmp_path / "ac.npz", be.model)
    saved = load_model(path)
    np.testing.assert_array_equal(saved.weights.w_out, w_out)
    np.testing.assert_array_equal(saved.weights.b_out, b_out)
    _same_as_producer(path, be.model, xs[1500:])


def test_a_learning_rate_outside_the_bounds_is_refused_and_an_explosion_rolls_back():
    """The hardening issue's probe: set_learning_rate 1e300 (sent by the control channel) is
    refused with the bounds; and when the bounds allow it, the guard catches the blow-up that
    the optimiser's clip to [w_min, w_max] hides from max_abs_weight, rolls back and the
    network keeps decoding with the last good weights."""
    model, xs, tg = _setup("lif")
    be = NumbaCpuBackend(model.copy())
    lrn = EpropLearner(lr=5e-3, update_every_ticks=50)
    lrn.attach(be, 1e-3)
    with pytest.raises(ValueError, match=r"learning rate 1e\+300 is outside \[lr_min, lr_max\] = \[1e-12, 1\]"):
        lrn.set_learning_rate(1e300)
    with pytest.raises(ValueError, match="outside"):
        EpropLearner(lr=5.0)

    be = NumbaCpuBackend(model.copy())
    lrn = EpropLearner(lr=5e-3, update_every_ticks=50, lr_max=1e300)
    lrn.attach(be, 1e-3)
    _drive(lrn, be, xs[:1000], tg[:1000])  # 20 updates: the guard committed once
    assert lrn.guard.rollbacks == 0
    good = {k: v.copy() for k, v in lrn.guard.good.items()}
    lrn.set_learning_rate(1e300)
    _drive(lrn, be, xs[1000:2000], tg[1000:2000])
    st = lrn.stats()
    assert lrn.guard.rollbacks == 1 and lrn.guard.paused and "grew" in st["last_guard_reason"]
    for k, v in lrn.core.state_arrays().items():
        np.testing.assert_array_equal(v, good[k], err_msg=k)
    ys = []
    buf = np.zeros(be.n_in, np.float32)
    for t in range(2000, 2500):  # decoding goes on with the restored weights
        buf[:] = xs[t]
        be.step(buf)
        ys.append(be.readout().copy())
    ys = np.array(ys)
    assert np.all(np.isfinite(ys)) and np.max(np.abs(ys)) < 50
