import json
import os
import zipfile

import numpy as np
import pytest

from rtsnn.snn import (FORMAT_VERSION, Model, ModelFileError, Network, NeuronSettings, load_model,
                       read_header, save_model)

F32 = np.float32


@pytest.fixture
def model():
    s = NeuronSettings(model="alif", beta_adapt=0.1, refractory_s=2e-3, tau_out_s=0.05)
    m = Model.random(6, 10, 2, s, seed=3, readout_scale=1.0)
    m.weights.b_out[:] = [0.25, -1.5]
    m.output_labels = ["vx", "vy"]
    m.output_units = ["m/s", "m/s"]
    return m


def _arrays_and_header(path):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays.pop("header.json").tobytes().decode())
    return arrays, header


def _write(path, arrays, header=None, raw_header=None):
    data = dict(arrays)
    if raw_header is not None:
        data["header.json"] = np.frombuffer(raw_header, np.uint8)
    elif header is not None:
        data["header.json"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **data)


def test_round_trip(tmp_path, model):
    path = save_model(tmp_path / "m.npz", model)
    loaded = load_model(path)
    assert loaded.settings == model.settings
    for k in ("w_in", "w_rec", "w_out", "b_out"):
        np.testing.assert_array_equal(getattr(loaded.weights, k), getattr(model.weights, k))
        assert getattr(loaded.weights, k).dtype == F32
    assert loaded.output_labels == ["vx", "vy"] and loaded.output_units == ["m/s", "m/s"]
    assert loaded.provenance["method"] == "random_reservoir" and loaded.provenance["seed"] == 3
    xs = np.random.default_rng(0).poisson(0.3, (50, 6)).astype(F32)
    np.testing.assert_array_equal(Network(model).run(xs)[0], Network(loaded).run(xs)[0])
    # re-saving keeps the creation time
    save_model(tmp_path / "m2.npz", loaded)
    assert read_header(tmp_path / "m2.npz")["provenance"]["created_utc"] == loaded.provenance["created_utc"]


def test_header_contents(tmp_path, model):
    save_model(tmp_path / "m.npz", model)
    h = read_header(tmp_path / "m.npz")
    assert h["format"] == "rtsnn-model" and h["format_version"] == FORMAT_VERSION == 1
    assert h["neuron_model"] == "alif" and h["dt_s"] == 1e-3
    assert h["settings"] == model.settings.to_dict()
    assert h["shapes"] == {"w_in": [6, 10], "w_rec": [10, 10], "w_out": [10, 2], "b_out": [2]}
    assert (h["n_in"], h["n_rec"], h["n_out"]) == (6, 10, 2)
    for key in ("created_utc", "saved_utc", "rtsnn_version", "method"):
        assert key in h["provenance"]
    with zipfile.ZipFile(tmp_path / "m.npz") as z:  # plain npz: arrays + header, nothing pickled
        assert sorted(z.namelist()) == ["b_out.npy", "header.json.npy", "w_in.npy", "w_out.npy", "w_rec.npy"]


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path, model):
    path = tmp_path / "m.npz"
    save_model(path, model)
    model.weights.b_out[:] = 9.0
    save_model(path, model)
    assert load_model(path).weights.b_out.tolist() == [9.0, 9.0]
    assert os.listdir(tmp_path) == ["m.npz"]
    model.provenance["bad"] = object()  # not JSON: refused before anything is written
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_model(path, model)
    assert os.listdir(tmp_path) == ["m.npz"]
    assert load_model(path).weights.b_out.tolist() == [9.0, 9.0]


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nope.npz")
    with pytest.raises(ModelFileError, match="not found"):
        read_header(tmp_path / "nope.npz")
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_model(tmp_path)


def test_not_a_zip(tmp_path):
    p = tmp_path / "m.npz"
    p.write_bytes(b"this is not a model" * 10)
    with pytest.raises(ModelFileError, match="not an .npz"):
        load_model(p)


def test_truncated_file(tmp_path, model):
    p = tmp_path / "m.npz"
    save_model(p, model)
    data = p.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 100):
        p.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="corrupt|truncated"):
            load_model(p)


def test_flipped_bytes_detected(tmp_path, model):
    p = tmp_path / "m.npz"
    save_model(p, model)
    data = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as z:
        info = z.getinfo("w_rec.npy")
    # flip a byte in the middle of w_rec's data (past its local header and .npy header)
    offset = info.header_offset + 30 + len(info.filename) + 128 + 40
    data[offset] ^= 0x5A
    p.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="w_rec.*corrupt"):
        load_model(p)


def test_missing_header(tmp_path, model):
    p = tmp_path / "m.npz"
    save_model(p, model)
    arrays, _ = _arrays_and_header(p)
    _write(p, arrays)
    with pytest.raises(ModelFileError, match="no 'header.json' entry"):
        load_model(p)
    with pytest.raises(ModelFileError, match="no 'header.json' entry"):
        read_header(p)


def test_missing_array(tmp_path, model):
    p = tmp_path / "m.npz"
    save_model(p, model)
    arrays, header = _arrays_and_header(p)
    del arrays["w_rec"]
    _write(p, arrays, header)
    with pytest.raises(ModelFileError, match="lacks array.*w_rec"):
        load_model(p)


def test_header_not_json(tmp_path, model):
    p = tmp_path / "m.npz"
    save_model(p, model)
    arrays, _ = _arrays_and_header(p)
    _write(p, arrays, raw_header=b"{format: rtsnn-model")
    with pytest.raises(ModelFileError, match="header is not valid UTF-8 JSON"):
        load_model(p)
    _write(p, arrays, raw_header=b"\xff\xfe")
    with pytest.raises(ModelFileError, match="header is not valid UTF-8 JSON"):
        read_header(p)
    _write(p, arrays, raw_header=b"[1, 2]")
    with pytest.raises(ModelFileError, match="header must be a JSON object"):
        load_model(p)


@pytest.mark.parametrize("edit, fragment", [
    (lambda h: h.update(format="nir"), "format tag is 'nir', expected 'rtsnn-model'"),
    (lambda h: h.pop("format"), "format tag is None"),
    (lambda h: h.update(format_version="1"), "format_version must be an integer"),
    (lambda h: h.update(format_version=0), "format_version must be an integer >= 1"),
    (lambda h: h.pop("settings"), "lacks required key(s) settings"),
    (lambda h: h["settings"].update(tau_mem_s=-1.0), "tau_mem_s must be a finite number > 0"),
    (lambda h: h["settings"].update(tau_syn_s=5e-3), "unknown neuron setting"),
    (lambda h: h.update(output_labels=["only-one"]), "output_labels must have n_out = 2"),
    (lambda h: h["shapes"].update(w_out=[2, 10]), "array 'w_out' has shape [10, 2] but the header says [2, 10]"),
    (lambda h: h["shapes"].pop("b_out"), "header 'shapes' lacks 'b_out'"),
])
def test_bad_header_fields(tmp_path, model, edit, fragment):
    p = tmp_path / "m.npz"
    save_model(p, model)
    arrays, header = _arrays_and_header(p)
    edit(header)
    _write(p, arrays, header)
    with pytest.raises(ModelFileError) as err:
        load_model(p)
    assert fragment in str(err.value)
    assert str(p) in str(err.value)


def test_newer_format_version_says_upgrade(tmp_path, model):
    p = tmp_path / "m.npz"
    save_model(p, model)
    arrays, header = _arrays_and_header(p)
    header["format_version"] = FORMAT_VERSION + 1
    _write(p, arrays, header)
    for fn in (load_model, read_header):
        with pytest.raises(ModelFileError) as err:
            fn(p)
        msg = str(err.value)
        assert f"format_version {FORMAT_VERSION + 1}" in msg and f"up to format_version {FORMAT_VERSION}" in msg
        assert "upgrade rtsnn" in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights(tmp_path, model, bad):
    p = tmp_path / "m.npz"
    save_model(p, model)
    arrays, header = _arrays_and_header(p)
    arrays["w_in"][1, 2] = bad
    _write(p, arrays, header)
    with pytest.raises(ModelFileError, match="'w_in' has 1 non-finite"):
        load_model(p)


def test_wrong_array_types(tmp_path, model):
    p = tmp_path / "m.npz"
    save_model(p, model)
    arrays, header = _arrays_and_header(p)
    arrays["b_out"] = np.array(["a", "b"])
    _write(p, arrays, header)
    with pytest.raises(ModelFileError, match="'b_out' must be floating point"):
        load_model(p)
    arrays["b_out"] = np.array([{"x": 1}, None], dtype=object)  # would need pickle to load
    with open(p, "wb") as f:
        np.savez(f, **arrays, **{"header.json": np.frombuffer(json.dumps(header).encode(), np.uint8)})
    with pytest.raises(ModelFileError, match="b_out.*cannot be read"):
        load_model(p)


def test_autapse_in_file_rejected(tmp_path, model):
    p = tmp_path / "m.npz"
    save_model(p, model)
    arrays, header = _arrays_and_header(p)
    arrays["w_rec"][3, 3] = 0.5
    _write(p, arrays, header)
    with pytest.raises(ModelFileError, match="zero diagonal"):
        load_model(p)
