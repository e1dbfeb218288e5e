"""scripts/yinyang_session.py: an FP classifier exported to a model file runs in a session
(``pace: max``, the test set replayed from an npz recording) and the first-spike classes read
from the session's outputs are those of the same graph run from a fresh state per sample."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from rtsnn.datasets import load_yinyang
from rtsnn.learn.offline import fp
from rtsnn.learn.offline.export import fp_input_raster, fp_n_ticks, fp_to_graph, graph_first_spikes

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"
spec = importlib.util.spec_from_file_location("_yinyang_session", SCRIPTS / "yinyang_session.py")
ys = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ys)

SETTINGS = fp.FPSettings(alpha=1.0, beta=1.0, theta=1.0, t_max=8.0, max_hidden_spikes=1, tau0=0.05, tau1=1.0,
                         gamma=0.05)


@pytest.fixture(scope="module")
def small_model():
    """4(+bias)-32-3 trained 4 epochs on 1000 samples (< 1 s): 75 % on the 40 test samples."""
    tr = load_yinyang("train")
    x = fp.encode_latency(tr.x[:1000])
    return fp.train_classifier_fp(x, tr.y[:1000], hidden=[32], n_classes=3, epochs=4, seed=1, settings=SETTINGS,
                                  lr=5e-3, batch_size=16, hidden_kick=0.01, grad_clip=0.05)


def test_stream_layout_windows_gaps_and_one_hot_labels():
    t = np.array([[0.15, 2.0, np.inf], [1.0, 0.5, 0.9]])
    spikes, onehot, w = ys.build_stream(t, np.array([2, 0]), 3, dt_s=1e-3, unit_s=5e-3, t_max=8.0, gap_ticks=50)
    assert w == 40 and spikes.shape == (2 * 90, 3) and onehot.shape == (2 * 90, 3)
    assert spikes.dtype == np.float32 and onehot.dtype == np.float32
    # spike at t units lands in tick round(t * 5): sample 0 at 1 and 10, sample 1 at 90 + (5, 2, 4)
    np.testing.assert_array_equal(np.argwhere(spikes), [[1, 0], [10, 1], [92, 1], [94, 2], [95, 0]])
    assert onehot[:40, 2].all() and not onehot[40:90].any() and onehot[90:130, 0].all() and onehot.sum() == 80
    with pytest.raises(ValueError, match="gap_ticks must be >= 0"):
        ys.build_stream(t, np.array([2, 0]), 3, dt_s=1e-3, unit_s=5e-3, t_max=8.0, gap_ticks=-1)
    with pytest.raises(ValueError, match=r"labels \(n,\)"):
        ys.build_stream(t, np.array([2]), 3, dt_s=1e-3, unit_s=5e-3, t_max=8.0, gap_ticks=5)


def test_gap_covers_the_refractory_period():
    assert ys.gap_ticks_for(400, 1e-4, 5e-3, 16.0) == 800
    assert ys.gap_ticks_for(400, 1e-4, 5e-3, 1.0) == 402  # never shorter than W + 2
    with pytest.raises(ValueError, match="gap_units"):
        ys.gap_ticks_for(400, 1e-4, 5e-3, float("nan"))


def test_classes_from_outputs_first_column_ties_silence_and_gap_spikes():
    w, g, n = 4, 3, 3
    y = np.zeros((n * (w + g), 2))
    tgt = np.zeros_like(y)
    y[2, 1] = 1  # sample 0: output 1 at tick 2
    y[3, 0] = 1
    y[7 + 1, :] = 1  # sample 1: a tie at tick 1 -> lower index
    y[7 + 5, 0] = 1  # a spike in sample 1's gap
    tgt[0:4, 1] = 1
    tgt[7:11, 0] = 1
    tgt[14:18, 1] = 1  # sample 2: silent
    out = {"tick": np.arange(y.shape[0]) + 10.0, "y_a": y[:, 0], "y_b": y[:, 1], "target_a": tgt[:, 0],
           "target_b": tgt[:, 1]}
    got = ys.classes_from_outputs(out, ["a", "b"], n, w, g)
    np.testing.assert_array_equal(got["pred"], [1, 0, -1])
    np.testing.assert_array_equal(got["first_tick"], [2, 1, -1])
    np.testing.assert_array_equal(got["label"], [1, 0, 1])
    assert got["ties"] == 1 and got["gap_spikes"] == 1
    with pytest.raises(ValueError, match="need"):
        ys.classes_from_outputs({k: v[:10] for k, v in out.items()}, ["a", "b"], n, w, g)
    bad = dict(out, tick=np.zeros(y.shape[0]))
    with pytest.raises(ValueError, match="one row per consecutive tick"):
        ys.classes_from_outputs(bad, ["a", "b"], n, w, g)


def test_session_classes_equal_the_fresh_graph_and_track_fp(small_model, tmp_path):
    te = load_yinyang("test")
    n = 40
    x, y = fp.encode_latency(te.x[:n]), te.y[:n]
    dt_s, unit_s = 2e-4, 5e-3
    res = ys.session_accuracy(small_model, x, y, dt_s=dt_s, unit_s=unit_s, gap_units=16.0, work_dir=tmp_path,
                              chunk=25)  # two sessions, 25 + 15 samples
    w = fp_n_ticks(8.0, dt_s, unit_s)
    assert res["window_ticks"] == w == 200 and res["gap_ticks"] == 400 and res["samples"] == n
    assert res["ticks"] == n * 600 and res["labels_from_targets_ok"] and res["sessions"] == 2
    # the session is the graph, sample for sample: same first output tick, same class
    assert res["first_tick_equal_fresh_graph"] == 1.0
    if res["session_ties"] == 0:
        assert res["agree_with_fresh_graph"] == 1.0 and res["session_acc"] == res["fresh_graph_acc"]
    assert res["gap_output_spikes"] == 0
    assert res["fp_continuous_acc"] >= 0.7  # the small network learned something
    assert abs(res["session_acc"] - res["fp_continuous_acc"]) <= 0.1
    # the model file in the folder carries the input contract the config matched
    from rtsnn.snn.model_file import load_graph_model
    gm = load_graph_model(tmp_path / "fp_yinyang.npz")
    c = gm.input_contract
    assert c.n_channels == 5 and c.dt_s == dt_s and c.encoder_kind == "passthrough"
    # and the session's outputs read back through the public API agree with the offline graph
    from rtsnn.api import load_outputs
    got = [ys.classes_from_outputs(load_outputs(f), ys.CLASSES, k, w, res["gap_ticks"])
           for f, k in zip(res["session_folders"], (25, 15))]
    got = {k: np.concatenate([g[k] for g in got]) for k in ("pred", "first_tick")}
    first, pred = graph_first_spikes(fp_to_graph(small_model, dt_s, unit_s=unit_s),
                                     fp_input_raster(x, dt_s, unit_s, w))
    fresh_first = np.where((first >= 0).any(axis=1), np.where(first >= 0, first, w).min(axis=1), -1)
    np.testing.assert_array_equal(got["first_tick"], fresh_first)
    no_tie = np.array([np.sum(first[s] == got["first_tick"][s]) <= 1 for s in range(n)])
    np.testing.assert_array_equal(got["pred"][no_tie], pred[no_tie])


def test_gap_in_time_constants_follows_the_slowest_decay():
    slow = fp.FPSettings(alpha=1.0, beta=0.25)
    assert ys.gap_units_for(slow, 12.0) == 48.0 and ys.gap_units_for(SETTINGS, 12.0) == 12.0
    with pytest.raises(ValueError, match="--gap-taus"):
        ys.gap_units_for(slow, -1.0)
    trained = fp.NeuronParams([np.ones(3)], [np.array([1.0, 2.0, 0.5])], [np.array([4.0, 6.5, 1.0])])
    assert ys.gap_units_for(slow, 12.0, trained) == 12.0 * 6.5  # the longest trained time constant


def test_save_and_load_keep_trained_neurons(tmp_path, capsys):
    """--save writes the trained per-neuron thresholds and time constants and --load reads them
    back (a model loaded without them would be exported with the shared settings)."""
    path = tmp_path / "w.npz"
    assert ys.main(["--config", "beyond_trainable", "--epochs", "1", "--save", str(path), "--n-test", "2",
                    "--dt-s", "1e-3", "--gap-taus", "1", "--no-fresh-check"]) == 0
    capsys.readouterr()
    loaded, meta = ys._load_weights(str(path))
    assert meta["config"] == "beyond_trainable" and loaded.neurons is not None
    sizes = [w.shape[1] for w in loaded.net.w]
    assert [a.shape[0] for a in loaded.neurons.theta] == sizes
    # trained: one epoch moved the thresholds away from the settings' shared value
    assert any(not np.all(a == loaded.settings.theta) for a in loaded.neurons.theta)



def test_cli_bad_inputs_are_one_line(tmp_path, capsys):
    bad = tmp_path / "w.npz"
    np.savez(bad, something=np.zeros(3))
    for argv, what in ((["--load", str(bad)], "--load"), (["--dt-s", "0"], "--dt-s"),
                       (["--config", "nope"], "--config"), (["--epochs", "0"], "--epochs")):
        assert ys.main(argv) == 2
        cap = capsys.readouterr()
        lines = cap.err.strip().splitlines()
        assert cap.out == "" and len(lines) == 1 and lines[0].startswith("yinyang_session.py: error:"), cap.err
        assert what in lines[0]


def test_saved_weights_load_back_with_their_settings(small_model, tmp_path):
    meta = {"settings": fp.settings_dict(small_model.settings), "encoding": None}
    path = tmp_path / "w.npz"
    np.savez(path, n_layers=2, meta_json=json.dumps(meta), w0=small_model.net.w[0], w1=small_model.net.w[1])
    m, got = ys._load_weights(str(path))
    assert m.settings == small_model.settings and got == meta
    np.testing.assert_array_equal(m.net.w[1], small_model.net.w[1])
