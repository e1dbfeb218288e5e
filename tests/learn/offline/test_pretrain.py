"""`rtsnn pretrain`: config schema, data checks, a short run on the real Chewie data, and the
saved model running in a session (`rtsnn run`) at the model's dt_s."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from rtsnn.datasets.neural import BinnedSession, load_chewie, synthetic_session
from rtsnn.learn.offline.pretrain import parse_pretrain_config, wiener_filter, history_features

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "neural"
CHEWIE = DATA / "chewie_20131003_bin100ms.npz"
needs_data = pytest.mark.skipif(not CHEWIE.is_file() and not os.environ.get("CI"),
                                reason="../shared/data/neural is absent (a user's clone); CI has it")


def test_schema_refuses_bad_values_naming_the_key():
    base = {"data": {"kind": "synthetic"}}
    with pytest.raises(ValueError, match=r"model\.neuron\.tau_mem_s: Input should be greater than 0"):
        parse_pretrain_config({**base, "model": {"neuron": {"tau_mem_s": -0.02}}})
    with pytest.raises(ValueError, match=r"train\.lrate: unknown key"):
        parse_pretrain_config({**base, "train": {"lrate": 0.1}})
    with pytest.raises(ValueError, match=r"model\.neuron\.tau_out_s \(0\.01\) must exceed the bin width"):
        parse_pretrain_config({"data": {"kind": "synthetic", "bin_s": 0.02}, "model": {"neuron": {"tau_out_s": 0.01}}})
    with pytest.raises(ValueError, match="data.path is required"):
        parse_pretrain_config({"data": {"kind": "chewie"}})
    with pytest.raises(ValueError, match=r"train\.surrogate"):
        parse_pretrain_config({**base, "train": {"surrogate": "relu"}})



def test_neuron_section_is_the_session_neuron_config_with_pretrain_defaults():
    """model.neuron is rtsnn.config.NeuronConfig; keys a config leaves out take the pretrain
    defaults (PRETRAIN_NEURON: lif, tau_mem_s 0.3, tau_adapt_s 1.0, beta_adapt 0, v_th 1,
    refractory_s 0, tau_out_s 0.3), not the session's; the graph built from it carries them."""
    from rtsnn.config import NeuronConfig
    from rtsnn.learn.offline.bptt_graph import compile_graph
    from rtsnn.learn.offline.pretrain import PRETRAIN_NEURON, build_graph

    base = {"data": {"kind": "synthetic"}}
    want = dict(model="lif", tau_mem_s=0.3, tau_adapt_s=1.0, beta_adapt=0.0, v_th=1.0, refractory_s=0.0, tau_out_s=0.3)
    assert PRETRAIN_NEURON.model_dump() == want
    cfg = parse_pretrain_config(base)
    assert isinstance(cfg.model.neuron, NeuronConfig) and cfg.model.neuron == PRETRAIN_NEURON
    part = parse_pretrain_config({**base, "model": {"neuron": {"model": "alif", "tau_mem_s": 0.2}}}).model.neuron
    assert part.model_dump() == {**want, "model": "alif", "tau_mem_s": 0.2}
    graph, opts = build_graph(parse_pretrain_config(
        {**base, "model": {"n_rec": 7, "recurrent": False, "neuron": {"model": "alif", "beta_adapt": 0.2}},
         "train": {"surrogate": "atan"}}), 5, 2, 0.02)
    plan = compile_graph(graph, opts)
    assert plan.layers == (7,) and plan.recurrent == (False,) and plan.n_out == 2 and plan.model == "alif"
    assert plan.beta == 0.2 and plan.tau_adapt_s == 1.0 and opts.surrogate == "atan"
    np.testing.assert_array_equal(graph.nodes["layer0"].tau_mem_s, np.full(7, 0.3))

def test_session_data_errors_name_the_array(tmp_path):
    c = np.ones((10, 3))
    with pytest.raises(ValueError, match="vel contains 1 NaN/inf values"):
        v = np.zeros((10, 2))
        v[4, 1] = np.nan
        BinnedSession(c, v, np.zeros(10, int), 0.1)
    with pytest.raises(ValueError, match=r"vel must have one row per bin of counts \(10\)"):
        BinnedSession(c, np.zeros((9, 2)), np.zeros(10, int), 0.1)
    with pytest.raises(ValueError, match="counts must be 2-D"):
        BinnedSession(np.ones(10), np.zeros((10, 2)), np.zeros(10, int), 0.1)
    bad = tmp_path / "chewie_bad_bin100ms.npz"
    r = np.ones((10, 3), np.float32)
    r[2, 2] = np.inf
    np.savez(bad, rates_hz=r, vel=np.zeros((10, 2)), trial=np.zeros(10))
    with pytest.raises(ValueError, match="counts contains 1 NaN/inf"):
        load_chewie(bad, bin_s=0.1)
    np.savez(tmp_path / "x.npz", rates_hz=r)
    with pytest.raises(ValueError, match="missing array"):
        load_chewie(tmp_path / "x.npz", bin_s=0.1)


def test_wiener_filter_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.poisson(2.0, (12, 40, 5)).astype(float)
    w = rng.normal(size=(5 * 3 + 1, 2))
    v = history_features(x, 3) @ w
    m = np.ones((12, 40))
    res = wiener_filter(x[:, :30], v[:, :30], m[:, :30], x[:, 30:], v[:, 30:], m[:, 30:], H=3)
    assert res["r2"] > 0.999


def test_synthetic_session_bins():
    s = synthetic_session(duration_s=4.0, bin_s=0.02, trial_s=1.0, seed=1)
    assert s.counts.shape == (200, 96) and s.vel.shape == (200, 2)
    assert np.unique(s.trial).size == 4
    assert s.counts.sum() > 0


def _write_cfg(tmp_path, epochs=3):
    cfg = {
        "data": {"kind": "chewie", "path": str(CHEWIE), "bin_s": 0.1, "test_fraction": 0.2, "split_seed": 0},
        "model": {"n_rec": 48, "recurrent": True,
                  "neuron": {"model": "lif", "tau_mem_s": 0.3, "tau_out_s": 0.3}},
        "train": {"epochs": epochs, "lr": 3e-3, "batch_size": 16, "seed": 0},
        "baseline": {"history_bins": 5},
        "output": {"model_path": "model.npz", "checkpoint_path": "ck.npz"},
    }
    import yaml

    p = tmp_path / "pretrain.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@needs_data
def test_pretrain_cli_on_chewie(tmp_path, capsys):
    from rtsnn.cli import main
    from rtsnn.snn.model_file import load_model

    cfg = _write_cfg(tmp_path)
    assert main(["pretrain", str(cfg), "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["test_trials"] == 32 and res["train_trials"] == 127
    assert -1.0 < res["snn_r2"] <= 1.0 and 0.5 < res["wiener_r2"] <= 1.0
    model = load_model(tmp_path / "model.npz")
    assert model.dt_s == pytest.approx(0.1)
    assert model.n_in == 174 and model.n_out == 2 and model.output_labels == ["vel_0", "vel_1"]
    assert (tmp_path / "ck.npz").is_file()


@needs_data
@pytest.mark.lsl
def test_pretrained_model_runs_in_a_session(tmp_path):
    """`rtsnn run` with model.path = the pretrained file, session.dt_s = 0.1 s, fed real Chewie
    spike counts over a real LSL outlet at 10 Hz."""
    import pylsl

    from rtsnn.cli import main
    from rtsnn.config import parse_config
    from rtsnn.runtime.session import Session

    cfg = _write_cfg(tmp_path, epochs=1)
    assert main(["pretrain", str(cfg), "--quiet"]) == 0
    sess = load_chewie(CHEWIE, bin_s=0.1)
    name = f"chewie-{uuid.uuid4().hex[:8]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Spikes", 174, 10, "float32", name + "-id"))
    stop = threading.Event()

    def publish():
        i = 0
        while not stop.is_set():
            outlet.push_sample(sess.counts[i % len(sess.counts)].astype(np.float32))
            i += 1
            time.sleep(0.1)

    th = threading.Thread(target=publish, daemon=True)
    th.start()
    try:
        scfg = parse_config({
            "session": {"name": "pre", "dt_s": 0.1, "duration_s": 2.0, "budget_us": 50000,
                        "out_dir": str(tmp_path), "warmup_ticks": 2, "realtime": "none"},
            "source": {"kind": "lsl", "options": {"name": name, "n_channels": 174, "resolve_timeout_s": 5.0}},
            "encoder": {"kind": "passthrough", "options": {"n_channels": 174}},
            "model": {"path": str(tmp_path / "model.npz")},
        })
        summary = Session(scfg).run()
    finally:
        stop.set()
        th.join(2)
    assert summary["dt_s"] == pytest.approx(0.1)
    assert 15 <= summary["ticks"] <= 21
    assert summary["samples_in"] > 5


# sweeps (`--sweep`, a `sweep:` section, Ray Tune): tests/learn/offline/test_sweep.py
