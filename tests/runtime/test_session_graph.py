"""Sessions run any model graph the backend accepts: a two-layer graph (96 -> 128 CubaLIF ->
128 recurrent LIF -> LI -> Affine -> 2) saved as a model file decodes a reaching recording at
max pace with the ridge readout fitting its LI -> Affine readout, and e-prop trains its last
layer (the checkpoint is the whole graph); a learner that cannot train the graph is refused at
session build with one line naming the learner, what it needs and what the graph has (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from rtsnn.cli import main
from rtsnn.config import ConfigError, parse_config
from rtsnn.runtime.session import Session
from rtsnn.snn import save_model
from rtsnn.snn.model_file import load_graph_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learn" / "online"))
from graph_models import deep_graph  # noqa: E402

DT_S = 0.01
N_NEURONS = 96


def _reach_config(root: Path, model_path: Path, *, n_bins: int, learner: dict | None) -> dict:
    """A max-pace session replaying a reaching-like recording (96 cosine-tuned units, the
    velocity as the teacher) through a Poisson-rate encoder into the model file."""
    t = np.arange(n_bins) * DT_S
    vel = np.stack([np.sin(2 * np.pi * 0.3 * t) + 0.5 * np.sin(2 * np.pi * 0.11 * t),
                    np.cos(2 * np.pi * 0.23 * t)], axis=1).astype(np.float32)
    pd = np.random.default_rng(0).uniform(0, 2 * np.pi, N_NEURONS)
    rates = np.clip(20 + 15 * (vel[:, :1] * np.cos(pd) + vel[:, 1:] * np.sin(pd)), 0, None).astype(np.float32)
    path = root / "reach.npz"
    np.savez(path, rates_hz=rates, vel=vel)
    src = {"path": str(path), "stream": "rates_hz", "bin_s": DT_S, "n_channels": N_NEURONS}
    cfg = {"session": {"name": "graph", "dt_s": DT_S, "pace": "max", "out_dir": str(root / "sessions"),
                       "monitor": False},
           "source": {"kind": "xdf_file", "options": src},
           "teacher": {"kind": "xdf_file", "options": {**src, "stream": "vel", "n_channels": 2}},
           "encoder": {"kind": "poisson_rate", "options": {"n_channels": N_NEURONS, "rate_max_hz": 100.0,
                                                           "low": 0.0, "high": 100.0, "seed": 3}},
           "model": {"path": str(model_path)}}
    if learner is not None:
        cfg["learner"] = learner
    return cfg


def test_rtsnn_run_decodes_with_a_two_layer_graph_and_records_its_nodes(tmp_path):
    gm = deep_graph()
    model_path = save_model(tmp_path / "deep.npz", gm)
    cfg = _reach_config(tmp_path, model_path, n_bins=2000,
                        learner={"kind": "ridge_readout", "options": {"calibration_s": 10.0, "ridge": 1e-2}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = subprocess.run([sys.executable, "-m", "rtsnn.cli", "run", str(tmp_path / "c.yaml"), "--json", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["ticks"] == 2000 and summary["learner"]["calibrated"] and summary["learn_applied"] == 1
    assert summary["r2"] > 0.6, summary["r2"]  # the refitted LI -> Affine readout of the second layer decodes
    rows = [{"name": r["name"], "kind": r["kind"], "shape": r["shape"]} for r in gm.graph.summary()]
    assert summary["model_graph"] == rows
    assert [r["kind"] for r in rows[:6]] == ["Input", "Linear", "CubaLIF", "Linear", "LIF", "LI"]
    folder = Path(summary["folder"])
    assert json.loads((folder / "summary.json").read_text())["model_graph"] == rows
    cols = json.loads((folder / "outputs.json").read_text())["columns"]
    out = np.fromfile(folder / "outputs.f64", "<f8").reshape(-1, len(cols))
    assert out.shape == (2000, 7) and np.all(np.isfinite(out))
    assert np.std(out[1000:, 3]) > 0.1  # decoded vx moves after calibration


def test_eprop_session_trains_the_last_layer_and_checkpoints_the_graph(tmp_path):
    gm = deep_graph(readout_scale=0.05)
    model_path = save_model(tmp_path / "deep.npz", gm)
    ck = tmp_path / "adapted.npz"
    cfg = _reach_config(tmp_path, model_path, n_bins=600,
                        learner={"kind": "eprop", "options": {"lr": 1e-3, "update_every_ticks": 100,
                                                              "checkpoint_path": str(ck)}})
    session = Session(parse_config(cfg))
    assert session.backend.is_graph and session.backend.n_rec == 128
    summary = session.run()
    # windows of 100 ticks are deferred to prepare / apply (inline at max pace), each one checked
    assert summary["ticks"] == 600 and summary["learner"]["updates"] == 6, summary["learner"]
    assert summary["learner"]["rollbacks"] == 0 and summary["learner"]["checkpoints_written"] == 1
    saved = load_graph_model(ck)
    np.testing.assert_array_equal(saved.graph.nodes["w0"].weight, gm.graph.nodes["w0"].weight)  # frozen
    assert not np.array_equal(saved.graph.nodes["w1"].weight, gm.graph.nodes["w1"].weight)  # trained
    assert saved.provenance["eprop"]["layer"] == "l1" and saved.output_labels == ["vx", "vy"]
    assert summary["model_graph"][2] == {"name": "l0", "kind": "CubaLIF", "shape": [128]}


REFUSALS = {  # learner kind -> (graph variant, what the line says the graph lacks)
    "eprop": (dict(recurrent=False), "and its last layer 'l1' has no recurrent Linear projection onto itself"),
    "reward_eprop": (dict(last="CubaLIF"), "and the readout trace 'trace' is fed by l1 CubaLIF, not by one LIF/ALIF "
                                          "layer"),
    "ridge_then_eprop": (dict(recurrent=False), "has no recurrent Linear projection onto itself"),
    "actor_critic": (dict(trace=False), "output path l1 LIF -> w_out Affine -> output Output"),
    "ridge_readout": (dict(trace=False), "output path l1 LIF -> w_out Affine -> output Output"),
}


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_a_learner_that_cannot_train_the_graph_is_refused_in_one_line(kind, tmp_path, capsys):
    variant, lacks = REFUSALS[kind]
    model_path = save_model(tmp_path / "m.npz", deep_graph(n_in=N_NEURONS, n0=16, n1=12, **variant))
    cfg = _reach_config(tmp_path, model_path, n_bins=50, learner={"kind": kind})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    needs = ("needs an LI -> Affine -> Output readout" if kind in ("actor_critic", "ridge_readout")
             else "needs a recurrent LIF/ALIF layer")
    assert lines[0].startswith(f"rtsnn: config error: {tmp_path / 'c.yaml'}: learner.kind: learner {kind}: {needs}")
    assert "; model graph has 2 spiking layers (l0 CubaLIF, l1 " in lines[0] and lacks in lines[0]
    assert not (tmp_path / "sessions").exists()  # refused before the session folder is made
    # rtsnn config check says the same, without running anything
    assert main(["config", "check", str(tmp_path / "c.yaml")]) == 2
    out = capsys.readouterr()
    assert f"{tmp_path / 'c.yaml'}: learner.kind: learner {kind}: {needs}" in out.err + out.out


def test_learners_that_fit_the_graph_build(tmp_path):
    model_path = save_model(tmp_path / "m.npz", deep_graph(n_in=N_NEURONS, n0=16, n1=12, last="ALIF"))
    for kind in REFUSALS:
        cfg = _reach_config(tmp_path, model_path, n_bins=50, learner={"kind": kind})
        session = Session(parse_config(cfg))
        assert session.backend.is_graph and session.backend.n_rec == 12
    # and the refusal is a ConfigError naming the config, for the Python API too
    bad = save_model(tmp_path / "bad.npz", deep_graph(n_in=N_NEURONS, n0=16, n1=12, trace=False))
    with pytest.raises(ConfigError, match=r"^cfg\.yaml: learner\.kind: learner ridge_readout: needs an LI"):
        Session(parse_config(_reach_config(tmp_path, bad, n_bins=50, learner={"kind": "ridge_readout"})),
                "cfg.yaml")


def test_ridge_then_eprop_calibrates_then_adapts_the_last_layer(tmp_path):
    gm = deep_graph(n_in=N_NEURONS, n0=32, n1=24)
    model_path = save_model(tmp_path / "m.npz", gm)
    cfg = _reach_config(tmp_path, model_path, n_bins=400,
                        learner={"kind": "ridge_then_eprop", "options": {"calibration_s": 1.0, "ridge": 1e-2,
                                                                         "lr": 1e-3, "update_every_ticks": 50}})
    session = Session(parse_config(cfg))
    summary = session.run()
    st = summary["learner"]
    assert st["phase"] == "eprop" and st["ridge"]["calibrated"] and st["eprop"]["updates"] == 6, st
    assert st["eprop"]["rollbacks"] == 0
    nodes = session.backend.model.graph.nodes
    assert not np.array_equal(nodes["w1"].weight, gm.graph.nodes["w1"].weight)  # the last layer adapted
    np.testing.assert_array_equal(nodes["w0"].weight, gm.graph.nodes["w0"].weight)  # the first stayed
