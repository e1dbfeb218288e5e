"""A model file's input contract (rtsnn/snn/contract.py): stored and read back, old files
without one, malformed ones refused naming the file and key, a session config that does not
match it refused by ``rtsnn run`` and reported by ``rtsnn config check`` with both values, and
``rtsnn pretrain`` writing the contract and a session config that runs."""

from __future__ import annotations

import os
import stat

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from rtsnn.cli import main
from rtsnn.config import ConfigError, parse_config
from rtsnn.runtime.session import Session, stage_mismatches
from rtsnn.snn import Model, ModelFileError, load_model, read_header, save_model, single_layer
from rtsnn.snn.contract import InputContract


def _contract(**over) -> InputContract:
    kw = dict(n_channels=4, dt_s=0.01, encoder_kind="threshold_crossing",
              encoder_options={"n_channels": 4, "threshold_sd": -3.5},
              channel_labels=("c0", "c1", "c2", "c3"), source={"kind": "lsl", "name": "amp", "type": "EEG"})
    kw.update(over)
    return InputContract(**kw)


def _model(contract: InputContract | None = None, n_in: int = 4, dt_s: float = 0.01) -> Model:
    m = Model.random(n_in, 12, 2, dt_s=dt_s, seed=3)
    m.input_contract = contract
    m.validate()
    return m


def _rewrite_header(path: Path, edit) -> None:
    """Rewrite the header of an existing model file with ``edit(header)`` applied."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["header.json"].tobytes())
    edit(header)
    arrays["header.json"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **arrays)


def _session_cfg(model_path: Path, *, dt_s: float = 0.01, n_channels: int = 4, encoder_options=None,
                 teacher_channels: int | None = None, out_dir: Path | None = None) -> dict:
    """A session config for the 4-channel threshold-crossing model (LSL in: building the stages
    never resolves a stream)."""
    cfg = {"session": {"name": "c", "dt_s": dt_s, "monitor": False, "out_dir": str(out_dir or model_path.parent)},
           "source": {"kind": "lsl", "options": {"name": "amp", "n_channels": n_channels}},
           "encoder": {"kind": "threshold_crossing",
                       "options": encoder_options if encoder_options is not None
                       else {"n_channels": n_channels, "threshold_sd": -3.5}},
           "model": {"path": str(model_path)}}
    if teacher_channels is not None:
        cfg["teacher"] = {"kind": "lsl", "options": {"name": "kin", "n_channels": teacher_channels}}
    return cfg


# ------------------------------------------------------------------ the file
def test_round_trip_keeps_the_contract(tmp_path, capsys):
    c = _contract()
    path = save_model(tmp_path / "m.npz", _model(c))
    header = read_header(path)
    assert header["input_contract"] == {
        "n_channels": 4, "channel_labels": ["c0", "c1", "c2", "c3"], "dt_s": 0.01,
        "encoder": {"kind": "threshold_crossing", "options": {"n_channels": 4, "threshold_sd": -3.5}},
        "source": {"kind": "lsl", "name": "amp", "type": "EEG"}}
    loaded = load_model(path)
    assert loaded.input_contract == c and loaded.copy().input_contract == c
    save_model(tmp_path / "again.npz", loaded)  # a loaded model saved again keeps it
    assert read_header(tmp_path / "again.npz")["input_contract"] == header["input_contract"]
    assert main(["model", "info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_contract"] == header["input_contract"]
    assert main(["model", "info", str(path)]) == 0
    assert ("input contract: 4 channels at 10 ms ticks, encoder threshold_crossing (n_channels=4, threshold_sd=-3.5); "
            "source kind lsl, name amp, type EEG") in capsys.readouterr().out.splitlines()


def test_a_file_without_a_contract_loads_as_before(tmp_path):
    path = save_model(tmp_path / "old.npz", _model(None))
    assert "input_contract" not in read_header(path) and read_header(path)["format_version"] == 2
    assert load_model(path).input_contract is None
    # a v1 file written before contracts existed (tests/fixtures/models, by the v1 writer) too
    v1 = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "lif_v1.npz"
    assert read_header(v1)["format_version"] == 1 and "input_contract" not in read_header(v1)
    assert load_model(v1).input_contract is None
    # no contract, no checks beyond the channel and tick agreement: other encoder options are fine
    cfg = parse_config(_session_cfg(path, encoder_options={"n_channels": 4, "threshold_sd": -6.0}), "s.yaml")
    assert stage_mismatches(cfg, "s.yaml", model=load_model(path)) == []


def test_contract_tick_must_be_the_models(tmp_path):
    with pytest.raises(ValueError, match=r"input_contract.dt_s \(0.02 s\) differs from the model's dt_s \(0.01 s\)"):
        _model(_contract(dt_s=0.02))
    path = save_model(tmp_path / "m.npz", _model(_contract()))
    _rewrite_header(path, lambda h: h["input_contract"].update(dt_s=0.001))
    with pytest.raises(ModelFileError, match=r"input_contract.dt_s: 0.001 s differs from the model's dt_s 0.01 s"):
        load_model(path)


@pytest.mark.parametrize("edit, key", [
    (lambda c: c.update(n_channels=0), "input_contract.n_channels: must be an integer >= 1, got 0"),
    (lambda c: c.update(n_channels="4"), "input_contract.n_channels: must be an integer"),
    (lambda c: c.pop("encoder"), "input_contract.encoder: missing"),
    (lambda c: c.update(encoder="passthrough"), "input_contract.encoder: must be an object"),
    (lambda c: c["encoder"].update(kind=""), "input_contract.encoder.kind: must be a non-empty string"),
    (lambda c: c["encoder"].update(options=[1]), "input_contract.encoder.options: must be an object"),
    (lambda c: c["encoder"]["options"].update(dt_s=0.01), "input_contract.encoder.options.dt_s: must not be given"),
    (lambda c: c.update(channel_labels=["a"]), "input_contract.channel_labels: must have n_channels = 4"),
    (lambda c: c.update(channel_labels="abcd"), "input_contract.channel_labels: must be a list of strings"),
    (lambda c: c.update(dt_s=-1), "input_contract.dt_s: must be a finite number > 0"),
    (lambda c: c["source"].update(rate=5), "input_contract.source.rate: unknown key"),
    (lambda c: c.update(tick=1), "input_contract.tick: unknown key"),
    (lambda c: c.clear() or c.update(x=1) or True, "input_contract.x: unknown key"),
])
def test_a_malformed_contract_is_one_line_naming_file_and_key(tmp_path, capsys, edit, key):
    path = save_model(tmp_path / "m.npz", _model(_contract()))
    _rewrite_header(path, lambda h: edit(h["input_contract"]))
    for read in (load_model, read_header):
        with pytest.raises(ModelFileError) as err:
            read(path)
        msg = str(err.value)
        assert key in msg and str(path) in msg and "\n" not in msg
    assert main(["model", "info", str(path)]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and key in err_lines[0] and "Traceback" not in err_lines[0]


def test_contract_object_not_a_mapping(tmp_path):
    path = save_model(tmp_path / "m.npz", _model(_contract()))
    _rewrite_header(path, lambda h: h.update(input_contract=[4]))
    with pytest.raises(ModelFileError, match=rf"model file {path}: input_contract: must be an object, got list"):
        load_model(path)


# ------------------------------------------------------------------ the session against it
def test_session_refuses_a_mismatch_with_both_values(tmp_path):
    path = save_model(tmp_path / "m.npz", _model(_contract()))
    cases = [
        (dict(n_channels=6), "s.yaml: source.options.n_channels: the model (m.npz) was trained on 4 input channels, "
                             "the config's source delivers 6"),
        (dict(encoder_options={"n_channels": 4, "threshold_sd": -4.0}),
         "s.yaml: encoder.options.threshold_sd: the model (m.npz) was trained with -3.5, the config gives -4.0"),
        (dict(dt_s=0.001), "s.yaml: session.dt_s: the model (m.npz) was trained with 0.01 s ticks, "
                           "the config gives 0.001 s"),
    ]
    for over, line in cases:
        with pytest.raises(ConfigError) as err:
            Session(parse_config(_session_cfg(path, **over), "s.yaml"), "s.yaml")
        assert line in str(err.value).splitlines(), str(err.value)


def test_session_compares_options_as_the_encoder_runs(tmp_path):
    # the contract spells out threshold_sd at its default; a config leaving it out runs the same
    path = save_model(tmp_path / "m.npz", _model(_contract(encoder_options={"n_channels": 4, "threshold_sd": -4.5})))
    model = load_model(path)
    same = parse_config(_session_cfg(path, encoder_options={"n_channels": 4}), "s.yaml")
    assert stage_mismatches(same, "s.yaml", model=model) == []
    other = parse_config(_session_cfg(path, encoder_options={"n_channels": 4, "refractory_s": 0.002}), "s.yaml")
    assert stage_mismatches(other, "s.yaml", model=model) == [
        "s.yaml: encoder.options.refractory_s: the model (m.npz) was trained with 0.001, the config gives 0.002"]
    kind = parse_config({**_session_cfg(path), "encoder": {"kind": "passthrough", "options": {"n_channels": 4}}},
                        "s.yaml")
    assert stage_mismatches(kind, "s.yaml", model=model) == [
        "s.yaml: encoder.kind: the model (m.npz) was trained with 'threshold_crossing', the config gives 'passthrough'"]


def test_session_accepts_a_matching_config(tmp_path):
    path = save_model(tmp_path / "m.npz", _model(_contract()))
    sess = Session(parse_config(_session_cfg(path, teacher_channels=2), "s.yaml"), "s.yaml")
    assert sess.model.input_contract == _contract() and sess.encoder.n_channels == 4
    with pytest.raises(ConfigError, match="teacher has 3 channels but the model has 2 outputs"):
        Session(parse_config(_session_cfg(path, teacher_channels=3), "s.yaml"), "s.yaml")


def test_config_check_reports_the_mismatch_with_file_and_key(tmp_path, capsys):
    path = save_model(tmp_path / "m.npz", _model(_contract()))
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_session_cfg(path)))
    assert main(["config", "check", str(good)]) == 0
    assert capsys.readouterr().out.strip() == f"{good}: ok (session config)"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_session_cfg(path, dt_s=0.002, encoder_options={"n_channels": 4,
                                                                                  "threshold_sd": -4.0})))
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert f"{bad}: session.dt_s: the model (m.npz) was trained with 0.01 s ticks, the config gives 0.002 s" in err
    assert (f"{bad}: encoder.options.threshold_sd: the model (m.npz) was trained with -3.5, the config gives -4.0"
            in err)
    # a malformed contract in the model file: config check says which file and key
    _rewrite_header(path, lambda h: h["input_contract"].update(n_channels=-1))
    assert main(["config", "check", str(good)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{good}: model.path: model file {path}: input_contract.n_channels: must be an integer >= 1, "
                   f"got -1"]


# ------------------------------------------------------------------ rtsnn pretrain writes it
def _pretrain_cfg(tmp_path: Path) -> Path:
    cfg = {"data": {"kind": "synthetic", "bin_s": 0.02,
                    "synthetic": {"duration_s": 20.0, "trial_s": 1.0, "seed": 1, "n_neurons": 96}},
           "model": {"n_rec": 16, "neuron": {"tau_mem_s": 0.05, "tau_out_s": 0.1}},
           "train": {"epochs": 1, "batch_size": 4},
           "output": {"model_path": "pre.npz"}}
    p = tmp_path / "pre.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.lsl
def test_pretrain_writes_contract_and_a_session_config_that_runs(tmp_path, capsys, monkeypatch):
    cfg = _pretrain_cfg(tmp_path)
    assert main(["pretrain", str(cfg), "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    scfg = tmp_path / "pre.session.yaml"
    assert res["session_config_path"] == str(scfg)
    c = load_model(tmp_path / "pre.npz").input_contract
    assert (c.n_channels, c.dt_s, c.encoder_kind, c.encoder_options) == (96, 0.02, "passthrough", {"n_channels": 96})
    assert c.channel_labels == tuple(f"unit{i}" for i in range(96))  # the simulated user's stream labels
    doc = yaml.safe_load(scfg.read_text())
    assert doc["synthetic_user"]["seed"] == 1 and doc["session"]["dt_s"] == 0.02
    assert doc["encoder"] == {"kind": "passthrough", "options": {"n_channels": 96}}
    assert doc["model"] == {"path": str(tmp_path / "pre.npz")} and "learner" not in doc
    assert [s["kind"] for s in doc["sinks"]] == ["lsl"]
    monkeypatch.chdir(tmp_path)  # relative paths of a session config are read from the current directory
    assert main(["config", "check", str(scfg)]) == 0
    capsys.readouterr()
    assert main(["run", str(scfg), "--duration", "3", "--json", "--quiet", "--out-dir", str(tmp_path / "s")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["ticks"] > 0 and summary["dt_s"] == 0.02 and summary["samples_in"] > 0
    assert summary["learn_applied"] == 0 and summary["r2"] is not None  # no learner; the teacher scores it


def test_pretrain_session_config_option(tmp_path, capsys):
    cfg = _pretrain_cfg(tmp_path)
    out = tmp_path / "elsewhere" / "live.yaml"
    assert main(["pretrain", str(cfg), "--quiet", "--session-config", str(out)]) == 2
    assert f"--session-config: folder {out.parent} does not exist" in capsys.readouterr().err
    out.parent.mkdir()
    assert main(["pretrain", str(cfg), "--quiet", "--session-config", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["session_config_path"] == str(out)
    assert yaml.safe_load(out.read_text())["model"]["path"] == str(tmp_path / "pre.npz")
    assert not (tmp_path / "pre.session.yaml").exists()


def test_a_recording_session_config_asks_for_the_stream_name(tmp_path, capsys, monkeypatch):
    """Data not from the simulated user: the stream name is a placeholder that config check and
    run report (and nothing else), until it is filled in."""
    from rtsnn.learn.offline.pretrain import parse_pretrain_config, session_config_for, write_session_config

    contract = InputContract(n_channels=5, dt_s=0.01, encoder_kind="passthrough", encoder_options={"n_channels": 5})
    path = save_model(tmp_path / "rec.npz", _model(contract, n_in=5))
    pcfg = parse_pretrain_config({"data": {"kind": "chewie", "path": "rec_bin10ms.npz"}})
    scfg = write_session_config(tmp_path / "rec.session.yaml", *session_config_for(pcfg, path, load_model(path)))
    text = scfg.read_text()
    assert text.startswith("# Session config for rec.npz") and "Fill in source.options.name" in text
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(scfg.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    monkeypatch.chdir(tmp_path)
    assert main(["config", "check", str(scfg)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"{scfg}: source.options.name: still the placeholder '<FILL IN")
    assert main(["run", str(scfg), "--duration", "1", "--quiet"]) == 2
    assert "source.options.name: still the placeholder" in capsys.readouterr().err
    doc = yaml.safe_load(text)
    doc["source"]["options"]["name"] = "my-spikes"
    scfg.write_text(yaml.safe_dump(doc))
    assert main(["config", "check", str(scfg)]) == 0


def test_an_online_learners_checkpoint_keeps_the_contract(tmp_path):
    """An e-prop checkpoint is the adapted model: new weights, the same input, so the same contract."""
    from rtsnn.backends.numba_cpu import NumbaCpuBackend
    from rtsnn.learn.online.eprop import EpropLearner

    contract = _contract(n_channels=8, dt_s=1e-3, encoder_kind="passthrough", encoder_options={"n_channels": 8},
                         channel_labels=())
    model = Model.random(8, 20, 2, *single_layer("lif", 20, tau_mem_s=20e-3, tau_out_s=20e-3), seed=1,
                         input_gain=1.5, readout_scale=0.1)
    model.input_contract = contract
    be = NumbaCpuBackend(model)
    lrn = EpropLearner(lr=1e-3, update_every_ticks=50, defer=False, checkpoint_path=str(tmp_path / "ad.npz"))
    lrn.attach(be, 1e-3)
    x, target = np.zeros(8, np.float32), np.ones(2, np.float32)
    for t in range(120):
        x[:] = (t % 7) == 0
        be.step(x)
        lrn.observe(be, target)
        if lrn.wants_apply():
            lrn.prepare()
            lrn.apply(be)
    lrn.close()
    saved = load_model(tmp_path / "ad.npz")
    assert saved.provenance["eprop"]["updates"] >= 1 and saved.input_contract == contract
