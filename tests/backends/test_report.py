"""``rtsnn backend report MODEL --backend xylo|numba_cpu``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import import_or_skip

from rtsnn.cli import main
from rtsnn.snn import Model, single_layer
from rtsnn.snn.model_file import save_model
from rtsnn.snn.params import Weights

import_or_skip("rtsnn_xylo", reason="the xylo report needs the plugin: pip install -e plugins/rtsnn-xylo")


def _save(tmp_path, model, name="m.npz"):
    p = tmp_path / name
    save_model(p, model)
    return str(p)


def test_xylo_report_fits_and_estimates_cycles(tmp_path, capsys):
    m = Model.random(16, 200, 2, seed=0, rec_density=0.1, readout_scale=1.0)
    assert main(["backend", "report", _save(tmp_path, m), "--backend", "xylo", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["fits"] and rep["neurons"]["hidden"] == 200
    sy = rep["synapses"]
    n_float = sum(int(np.count_nonzero(a)) for a in (m.weights.w_in, m.weights.w_rec, m.weights.w_out))
    # synapses whose weight rounds to 0 in int8 are gone on the chip, and counted
    assert sy["recurrent"] <= int(np.count_nonzero(m.weights.w_rec))
    assert sy["input"] + sy["recurrent"] + sy["output"] + sy["rounded_to_zero"] == n_float
    c = rep["cycles_per_tick"]
    # worst case by hand: 16*(200*3.5+1) + 200*(fan*7+3) + 200*(1+16) + 200*22 + 24
    fan = rep["fan_out"]["mean"]
    assert c["worst_case"] == pytest.approx(16 * 701 + 200 * (fan * 7 + 3) + 200 * 17 + 200 * 22 + 24)
    assert 0 < c["typical"] < c["worst_case"] and c["budget"] == pytest.approx(50e3)
    assert rep["real_time"]["worst_case"] == (c["worst_case"] * 1.2 <= 50e3)
    assert main(["backend", "report", _save(tmp_path, m), "--backend", "xylo"]) == 0
    text = capsys.readouterr().out
    assert "cycles/tick" in text and "real time" in text and "memory" in text


def test_steps_per_tick_multiply_the_cycles_of_a_tick(tmp_path, capsys):
    m = Model.random(16, 200, 2, seed=0, rec_density=0.1, readout_scale=1.0)
    path = _save(tmp_path, m)
    reps = []
    for k in ("1", "4"):
        assert main(["backend", "report", path, "--steps-per-tick", k, "--json"]) == 0
        reps.append(json.loads(capsys.readouterr().out))
    c1, c4 = reps[0]["cycles_per_tick"], reps[1]["cycles_per_tick"]
    assert c4["steps_per_tick"] == 4 and c4["worst_case"] == pytest.approx(4 * c1["worst_case"])
    assert c4["budget"] == c1["budget"]  # the tick's budget; its steps share it
    assert main(["backend", "report", path, "--steps-per-tick", "4"]) == 0
    assert "4 chip steps each" in capsys.readouterr().out
    assert main(["backend", "report", path, "--steps-per-tick", "0"]) != 0
    assert "steps_per_tick must be an int in 1..64, got 0" in capsys.readouterr().err


def test_slow_clock_does_not_fit_real_time(tmp_path, capsys):
    m = Model.random(16, 400, 2, seed=0, rec_density=0.1)
    assert main(["backend", "report", _save(tmp_path, m), "--clock-mhz", "1", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["real_time"]["worst_case"] is False and rep["real_time"]["min_clock_hz_worst_case"] > 1e6


def test_model_that_does_not_fit_lists_every_violation_and_exits_1(tmp_path, capsys):
    w = Weights(np.full((20, 50), 0.1), np.zeros((50, 50)), np.full((50, 9), 0.1), np.zeros(9))
    m = Model(*single_layer("alif", 50, beta_adapt=0.1), w, 1e-3)
    assert main(["backend", "report", _save(tmp_path, m), "--backend", "xylo"]) == 1
    out = capsys.readouterr().out
    assert "DOES NOT FIT: 3 violation(s)" in out
    assert "n_in (input channels)" in out and "n_out (output neurons)" in out and "neuron model" in out
    assert main(["backend", "report", _save(tmp_path, m), "--lenient", "--json"]) == 1
    assert len(json.loads(capsys.readouterr().out)["violations"]) == 2


def test_numba_cpu_report_and_bad_input(tmp_path, capsys):
    m = Model.random(8, 30, 2, seed=0)
    assert main(["backend", "report", _save(tmp_path, m), "--backend", "numba_cpu", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["memory_bytes"]["weights"] == 4 * (8 * 30 + 30 * 30 + 30 * 2 + 2)
    assert main(["backend", "report", str(tmp_path / "missing.npz")]) == 2
    assert main(["backend", "report", _save(tmp_path, m), "--clock-mhz", "0"]) == 2


def test_cpu_report_of_a_multi_layer_graph_and_an_unknown_backend(tmp_path, capsys):
    from rtsnn.snn.graph import Graph, GraphModel
    from rtsnn.snn.nodes import LI, Affine, CubaLIF, Input, Linear, Output

    rng = np.random.default_rng(0)
    nodes = {"in": Input(shape=(6,)), "w0": Linear(weight=rng.normal(size=(6, 5))),
             "l0": CubaLIF(n=5), "w1": Linear(weight=rng.normal(size=(5, 4))), "l1": CubaLIF(n=4),
             "tr": LI(n=4), "ro": Affine(weight=rng.normal(size=(4, 2)), bias=np.zeros(2)), "out": Output(shape=(2,))}
    edges = [("in", "w0"), ("w0", "l0"), ("l0", "w1"), ("w1", "l1"), ("l1", "tr"), ("tr", "ro"), ("ro", "out")]
    path = _save(tmp_path, GraphModel(Graph(nodes, edges)), "g.npz")
    assert main(["backend", "report", path, "--backend", "numba_cpu", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["neurons"] == {"inputs": 6, "hidden": 9, "outputs": 2}
    assert rep["synapses"]["total"] == 6 * 5 + 5 * 4 + 4 * 2 and rep["dense_macs_per_tick"] == 58
    assert [r["kind"] for r in rep["graph"]][:3] == ["Input", "Linear", "CubaLIF"]
    assert main(["backend", "report", path, "--backend", "loihi"]) == 2
    err = capsys.readouterr().err
    assert "no report for backend 'loihi'; installed: numba_cpu, xylo" in err
