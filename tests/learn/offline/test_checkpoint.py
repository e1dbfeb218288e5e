"""Atomic checkpoints, resume, Ctrl-C saving and divergence handling of the BPTT loop."""

from __future__ import annotations

import numpy as np
import pytest

from rtsnn.learn.offline.bptt import FitConfig, TrainingDiverged, fit
from rtsnn.learn.offline.bptt_engine import Engine, init_params
from rtsnn.learn.offline.bptt_graph import BpttOptions, compile_graph, layered_graph
from rtsnn.learn.offline.checkpoint import CheckpointError, checkpoint_graph, load_checkpoint, save_checkpoint

GRAPH = layered_graph(6, (12, 3), (True, False), None)
RNG = np.random.default_rng(0)
X = ((RNG.random((20, 40, 6)) < 0.3) * 1.0).astype(np.float32)  # (T, N, n_in)
Y = RNG.integers(0, 3, 40)


def _setup():
    eng = Engine(GRAPH)
    p = init_params(GRAPH, 0, input_scale=6.0)
    return eng, p


def _get_batch(idx):
    idx = np.sort(idx)
    return X[:, idx], Y[idx]


def test_atomic_save_and_load(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"a": np.arange(3.0)}, {"epoch": 1})
    save_checkpoint(path, {"a": np.arange(4.0)}, {"epoch": 2})
    arrays, meta = load_checkpoint(path)
    np.testing.assert_array_equal(arrays["a"], np.arange(4.0))
    assert meta["epoch"] == 2
    assert [q.name for q in tmp_path.iterdir()] == ["c.npz"]  # no temp files left behind
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "bad.npz")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.npz")


def test_resume_equals_uninterrupted(tmp_path):
    eng, p_full = _setup()
    fit(eng, p_full, 40, _get_batch, "count_ce", FitConfig(epochs=4, batch_size=8, lr=1e-2))
    eng2, p = _setup()
    ck = tmp_path / "ck.npz"
    fit(eng2, p, 40, _get_batch, "count_ce", FitConfig(epochs=2, batch_size=8, lr=1e-2, checkpoint_path=str(ck)))
    assert load_checkpoint(ck)[1]["epoch"] == 2
    eng3, p2 = _setup()  # fresh params: everything must come from the checkpoint
    _, hist = fit(eng3, p2, 40, _get_batch, "count_ce",
                  FitConfig(epochs=4, batch_size=8, lr=1e-2, checkpoint_path=str(ck), resume=True))
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    for k in p_full:
        np.testing.assert_array_equal(p2[k], p_full[k], err_msg=k)


def test_ctrl_c_saves_progress_first(tmp_path):
    eng, p = _setup()
    ck = tmp_path / "ck.npz"
    calls = {"n": 0}

    def batches(idx):
        calls["n"] += 1
        if calls["n"] == 13:  # epoch 3, batch 3 (5 batches per epoch)
            raise KeyboardInterrupt
        return _get_batch(idx)

    with pytest.raises(KeyboardInterrupt):
        fit(eng, p, 40, batches, "count_ce", FitConfig(epochs=5, batch_size=8, lr=1e-2, checkpoint_path=str(ck)))
    arrays, meta = load_checkpoint(ck)
    assert meta["epoch"] == 2 and len(meta["history"]) == 2
    np.testing.assert_array_equal(arrays["param/w0"], p["w0"])  # the mid-epoch progress was saved
    _, hist = fit(eng, p, 40, _get_batch, "count_ce",
                  FitConfig(epochs=5, batch_size=8, lr=1e-2, checkpoint_path=str(ck), resume=True))
    assert len(hist) == 5


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path):
    eng, p = _setup()
    ck = tmp_path / "ck.npz"
    state = {"epoch_batches": 0}

    def exploding(out, target):
        from rtsnn.learn.offline.losses import count_ce

        state["epoch_batches"] += 1
        val, d = count_ce(out, target)
        return (float("nan") if state["epoch_batches"] > 12 else val), d

    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 3.*last good checkpoint kept"):
        fit(eng, p, 40, _get_batch, exploding, FitConfig(epochs=5, batch_size=8, lr=1e-2, checkpoint_path=str(ck)))
    arrays, meta = load_checkpoint(ck)
    assert meta["epoch"] == 2
    assert all(np.all(np.isfinite(v)) for v in arrays.values())
    # the in-memory params were put back to the start of the diverging epoch = the checkpoint
    np.testing.assert_array_equal(arrays["param/w0"], p["w0"])


def test_exploding_loss_detected():
    eng, p = _setup()
    state = {"n": 0}

    def growing(out, target):
        from rtsnn.learn.offline.losses import count_ce

        state["n"] += 1
        val, d = count_ce(out, target)
        return val * (1.0 if state["n"] <= 5 else 1e6), d

    with pytest.raises(TrainingDiverged, match="diverged at epoch 2"):
        fit(eng, p, 40, _get_batch, growing, FitConfig(epochs=3, batch_size=8, lr=1e-2))


def test_resume_refuses_other_network(tmp_path):
    eng, p = _setup()
    ck = tmp_path / "ck.npz"
    fit(eng, p, 40, _get_batch, "count_ce", FitConfig(epochs=1, batch_size=8, checkpoint_path=str(ck)))
    other = layered_graph(6, (7, 3), (True, False), None)
    with pytest.raises(CheckpointError, match=r"ck\.npz: the checkpoint was trained with another network or options, "
                                              r"node 'layer0': n: 12 vs 7 \(checkpoint vs this run\)"):
        fit(Engine(other), init_params(other, 0), 40, _get_batch, "count_ce",
            FitConfig(epochs=2, batch_size=8, checkpoint_path=str(ck), resume=True))


@pytest.mark.parametrize("graph_kw, options, want", [
    ({"tau_mem_s": 80e-3}, BpttOptions(), r"node 'layer0': tau_mem_s\[0\]: 0\.02 vs 0\.08"),
    ({"dt_s": 2e-3}, BpttOptions(), r"graph: dt_s: 0\.001 vs 0\.002"),
    ({"reset": "zero"}, BpttOptions(), r"node 'layer0': reset\[0\]: 0 vs 1"),
    ({}, BpttOptions(surrogate="atan"), r"bptt_options: surrogate: 'fast_sigmoid' vs 'atan'"),
    ({}, BpttOptions(detach_reset=True), r"bptt_options: detach_reset: False vs True"),
])
def test_resume_refuses_the_same_shapes_with_other_dynamics_or_options(tmp_path, graph_kw, options, want):
    """Parameter names and shapes agree, yet the checkpoint was trained with other neuron
    constants, tick or training options: resuming would mix two networks, so it is refused
    naming the first field that differs; the params are left as they were."""
    eng, p = _setup()
    ck = tmp_path / "ck.npz"
    fit(eng, p, 40, _get_batch, "count_ce", FitConfig(epochs=1, batch_size=8, checkpoint_path=str(ck)))
    other = layered_graph(6, (12, 3), (True, False), None, **graph_kw)
    p2 = init_params(other, 0, options)
    before = {k: v.copy() for k, v in p2.items()}
    with pytest.raises(CheckpointError, match=r"ck\.npz: the checkpoint was trained with another network or "
                                              r"options, " + want + r" \(checkpoint vs this run\)") as err:
        fit(Engine(other, options), p2, 40, _get_batch, "count_ce",
            FitConfig(epochs=2, batch_size=8, checkpoint_path=str(ck), resume=True), log=None)
    assert "\n" not in str(err.value)
    for k in p2:
        np.testing.assert_array_equal(p2[k], before[k], err_msg=k)
    # the same network with other (not read) weight values in its graph resumes
    same = layered_graph(6, (12, 3), (True, False), None)
    same.nodes["w0"].weight[...] = 0.25
    _, hist = fit(Engine(same), init_params(same, 0), 40, _get_batch, "count_ce",
                  FitConfig(epochs=2, batch_size=8, checkpoint_path=str(ck), resume=True), log=None)
    assert [h["epoch"] for h in hist] == [1, 2]


def _write_v2(path, drop=(), graph_drop=(), **meta_over):
    """A version 2 checkpoint of GRAPH with the entries ``drop`` of its header's meta left out,
    ``meta_over`` replacing others, and the entries ``graph_drop`` of the graph's parts (keys of
    meta['graph'] or arrays 'graph/<node>/<field>') left out."""
    import json

    from rtsnn.learn.offline.bptt_graph import graph_to_parts

    g_meta, g_arrays = graph_to_parts(GRAPH)
    meta = {"epoch": 1, "history": [], "adam_steps": 0, "calib": [], "bptt_options": BpttOptions().to_dict(),
            "graph": {k: v for k, v in g_meta.items() if k not in graph_drop}, **meta_over}
    for k in drop:
        meta.pop(k)
    arrays = {"graph/" + k: v for k, v in g_arrays.items() if "graph/" + k not in graph_drop}
    arrays["__header__"] = np.frombuffer(json.dumps({"format": "rtsnn-bptt-checkpoint", "version": 2,
                                                     "meta": meta}).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize("kw, want", [
    ({"bptt_options": [1, 2]}, r"bptt_options must be an object, got list"),
    ({"bptt_options": "atan"}, r"bptt_options must be an object, got str"),
    ({"bptt_options": {**BpttOptions().to_dict(), "surogate": "atan"}},
     r"bptt_options: unknown key\(s\) surogate; known: surrogate, surrogate_param, detach_reset, max_delay_steps"),
    ({"drop": ("bptt_options",)}, r"bptt_options: missing"),
    ({"graph_drop": ("dt_s",)}, r"graph: dt_s: missing"),
    ({"graph_drop": ("integration",)}, r"graph: integration: missing"),
    ({"graph_drop": ("graph/layer0/tau_mem_s",)}, r"node 'layer0': tau_mem_s: missing"),
])
def test_a_bad_version_2_header_is_one_checkpoint_error(tmp_path, kw, want):
    ck = tmp_path / "ck.npz"
    _write_v2(ck, **kw)
    pattern = r"ck\.npz: the checkpoint's network is unreadable: " + want
    with pytest.raises(CheckpointError, match=pattern) as err:
        checkpoint_graph(ck)
    assert "\n" not in str(err.value)
    eng, p = _setup()  # resuming from it: the same one-line error
    with pytest.raises(CheckpointError, match=pattern):
        fit(eng, p, 40, _get_batch, "count_ce", FitConfig(epochs=2, batch_size=8, checkpoint_path=str(ck),
                                                          resume=True), log=None)


def test_a_header_that_is_not_an_object_is_a_checkpoint_error(tmp_path):
    import json

    for header in ([1, 2], {"format": "rtsnn-bptt-checkpoint", "version": 2, "meta": [1]}):
        np.savez(tmp_path / "h.npz", __header__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
        with pytest.raises(CheckpointError, match=r"h\.npz: corrupt checkpoint header \(not an object"):
            load_checkpoint(tmp_path / "h.npz")


def test_checkpoint_holds_the_trained_graph_and_options(tmp_path):
    """fit writes the engine's graph (per-neuron values included) and options into the
    checkpoint; checkpoint_graph gives them back."""
    g = layered_graph(6, (12, 3), (True, False), None, model="alif", beta_adapt=0.2, refractory_s=2e-3,
                      v_th=[np.linspace(0.8, 1.2, 12), 1.0], tau_mem_s=[15e-3, np.linspace(10e-3, 30e-3, 3)])
    opts = BpttOptions(surrogate="triangular", surrogate_param=0.7, detach_reset=True)
    eng = Engine(g, opts)
    p = init_params(g, 0, opts, input_scale=6.0)
    ck = tmp_path / "ck.npz"
    fit(eng, p, 40, _get_batch, "count_ce", FitConfig(epochs=1, batch_size=8, checkpoint_path=str(ck)))
    g2, opts2 = checkpoint_graph(ck)
    assert opts2 == opts
    assert g2.summary() == g.summary()
    for name, node in g.nodes.items():
        assert node.meta() == g2.nodes[name].meta()
        for k, arr in node.arrays().items():
            np.testing.assert_array_equal(g2.nodes[name].arrays()[k], arr, err_msg=f"{name}/{k}")
    # the restored graph trains exactly as the original: same initial parameters
    p2 = init_params(g2, 0, opts2, input_scale=6.0)
    for k, v in init_params(g, 0, opts, input_scale=6.0).items():
        np.testing.assert_array_equal(p2[k], v, err_msg=k)


def _write_v1_checkpoint(path, spec: dict, params: dict) -> None:
    """A checkpoint exactly as version 1 wrote it (before the graph): params, Adam state,
    and the architecture as a flat dict in meta['spec']."""
    import json

    header = json.dumps({"format": "rtsnn-bptt-checkpoint", "version": 1,
                         "meta": {"epoch": 1, "history": [{"epoch": 1, "loss": 1.0, "epoch_s": 0.1}],
                                  "adam_steps": 5, "calib": [1.0, 1.0], "spec": spec, "loss": "mean_ce"}})
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays.update({f"adam_m/{k}": np.zeros_like(v) for k, v in params.items()})
    arrays.update({f"adam_v/{k}": np.zeros_like(v) for k, v in params.items()})
    arrays["__header__"] = np.frombuffer(header.encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def test_version_1_checkpoint_still_loads(tmp_path):
    spec = {"n_in": 6, "layers": [12, 3], "recurrent": [True, False], "n_out": 2, "model": "alif", "dt_s": 0.002,
            "tau_mem_s": 0.015, "tau_adapt_s": 0.1, "beta_adapt": 0.3, "v_th": 0.9, "refractory_s": 0.004,
            "tau_out_s": 0.03, "surrogate": "atan", "surrogate_param": 2.0, "detach_reset": True,
            "tau_out2_s": 0.01, "max_delay_steps": 2, "reset": "zero"}
    g_want = layered_graph(6, (12, 3), (True, False), 2, dt_s=0.002, model="alif", tau_mem_s=0.015,
                           tau_adapt_s=0.1, beta_adapt=0.3, v_th=0.9, refractory_s=0.004, reset="zero",
                           tau_out_s=0.03, tau_out2_s=0.01)
    o_want = BpttOptions(surrogate="atan", surrogate_param=2.0, detach_reset=True, max_delay_steps=2)
    params = init_params(g_want, 3, o_want)
    ck = tmp_path / "v1.npz"
    _write_v1_checkpoint(ck, spec, params)
    arrays, meta = load_checkpoint(ck)
    assert meta["epoch"] == 1 and "graph" not in meta
    g, opts = checkpoint_graph(ck)
    assert opts == o_want
    plan, want = compile_graph(g, opts), compile_graph(g_want, o_want)
    for f in ("n_in", "layers", "recurrent", "n_out", "model", "dt_s", "rho", "beta", "n_ref", "reset", "kappa",
              "kappa2"):
        assert getattr(plan, f) == getattr(want, f), f
    for l in range(2):
        np.testing.assert_array_equal(plan.alpha[l], want.alpha[l])
        np.testing.assert_array_equal(plan.v_th[l], want.v_th[l])
    # and training resumes from it (the parameters come from the file)
    p = init_params(g, 0, opts)
    fit(Engine(g, opts), p, 40, lambda idx: (X[:, np.sort(idx)], Y[np.sort(idx)] % 2), "mean_ce",
        FitConfig(epochs=2, batch_size=8, checkpoint_path=str(ck), resume=True), log=None)
    assert load_checkpoint(ck)[1]["epoch"] == 2 and checkpoint_graph(ck)[1] == o_want
    # an older dict without 'reset' (checkpoints before that option): reset by subtraction
    spec_old = {k: v for k, v in spec.items() if k != "reset"}
    _write_v1_checkpoint(ck, spec_old, params)
    assert compile_graph(*checkpoint_graph(ck)).reset == "subtract"


def test_checkpoint_without_a_network_is_refused(tmp_path):
    ck = tmp_path / "c.npz"
    save_checkpoint(ck, {"a": np.arange(3.0)}, {"epoch": 1})
    with pytest.raises(CheckpointError, match="holds no network"):
        checkpoint_graph(ck)


def test_version_1_dict_of_the_wrong_types_is_a_checkpoint_error_naming_the_key(tmp_path):
    ck = tmp_path / "v1.npz"
    spec = {"n_in": 6, "layers": [12, 3], "recurrent": [True, False], "n_out": None}
    _write_v1_checkpoint(ck, spec, {})
    assert compile_graph(*checkpoint_graph(ck)).recurrent == (True, False)
    for key, value in (("n_in", 6.5), ("recurrent", ["true", "false"]), ("layers", ["12", 3])):
        _write_v1_checkpoint(ck, {**spec, key: value}, {})
        with pytest.raises(CheckpointError, match=rf"v1\.npz: the checkpoint's network is unreadable: spec\.{key}: "
                                                  rf"must be "):
            checkpoint_graph(ck)
