"""Model files (rtsnn/snn/model_file.py): format v2 stores the graph; every v1 file still loads
(tests/fixtures/models/, written by the v1 writer) and computes what it computed; a newer
format is refused; every corrupt, forged or inconsistent file is one ModelFileError naming the
file and the node / field / key, refused before any large allocation."""

from __future__ import annotations

import io
import json
import os
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rtsnn.snn import (ALIF, IF, LI, LIF, Affine, AvgPool2d, Conv2d, CubaLIF, Delay, Flatten, FORMAT_VERSION, Graph,
                       GraphModel, GraphNetwork, Input, Linear, Model, ModelFileError, Network, Output,
                       SumPool2d, layer_constants, load_graph_model, load_model, read_header, save_model, simulate,
                       single_layer)
from rtsnn.snn import model_file as MF
from rtsnn.snn.contract import InputContract
from rtsnn.snn.graph_reference import reference_run

F32 = np.float32
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


# ------------------------------------------------------------------ helpers
@pytest.fixture
def model():
    layer = single_layer("alif", 10, beta_adapt=0.1, refractory_s=2e-3, tau_out_s=0.05)
    m = Model.random(6, 10, 2, *layer, seed=3, readout_scale=1.0)
    m.weights.b_out[:] = [0.25, -1.5]
    m.output_labels = ["vx", "vy"]
    m.output_units = ["m/s", "m/s"]
    return m


def every_kind_graph() -> GraphModel:
    """Every non-convolutional kind, per-neuron parameters everywhere, mixed resets."""
    rng = np.random.default_rng(8)

    def w(a, b, s=0.7):
        return (rng.standard_normal((a, b)) * s).astype(F32)

    nodes = {
        "in": Input(shape=(6,)),
        "w1": Linear(weight=w(6, 8)),
        "lif": LIF(tau_mem_s=rng.uniform(5e-3, 30e-3, 8), v_th=rng.uniform(0.8, 1.2, 8), gain=rng.uniform(0.5, 2, 8),
                   v_leak=rng.uniform(-0.1, 0.1, 8), v_reset=-0.1, reset=["zero", "subtract"] * 4, reset_at="now",
                   refractory_s=rng.choice([0.0, 1e-3, 2e-3], 8)),
        "d": Delay(steps=rng.integers(0, 5, 8)),
        "w2": Affine(weight=w(8, 5, 1.5), bias=rng.standard_normal(5)),
        "cuba": CubaLIF(tau_mem_s=10e-3, tau_syn_s=rng.uniform(2e-3, 8e-3, 5)),
        "w3": Linear(weight=w(5, 4, 2.0)),
        "alif": ALIF(n=4, tau_adapt_s=rng.uniform(0.05, 0.3, 4), beta_adapt=rng.uniform(0, 0.5, 4)),
        "w4": Linear(weight=w(4, 3, 2.0)),
        "if": IF(n=3, v_th=[0.2, 0.3, 0.5], spike_if=">", reset_at="next_clamp", reset="zero"),
        "rec": Linear(weight=w(3, 5, 0.3)),
        "li": LI(tau_s=rng.uniform(10e-3, 50e-3, 3), gain=2.0, v_leak=0.05),
        "flat": Flatten(input_shape=(3,)),
        "w_out": Affine(weight=w(3, 2), bias=np.array([0.5, -0.5])),
        "out": Output(shape=(2,)),
    }
    edges = [("in", "w1"), ("w1", "lif"), ("lif", "d"), ("d", "w2"), ("w2", "cuba"), ("cuba", "w3"), ("w3", "alif"),
             ("alif", "w4"), ("w4", "if"), ("if", "rec"), ("rec", "cuba"), ("if", "li"), ("li", "flat"),
             ("flat", "w_out"), ("w_out", "out")]
    return GraphModel(Graph(nodes, edges, dt_s=1e-3, integration="euler"), provenance={"method": "hand-built"},
                      output_labels=["u", "v"], output_units=["V", "V"])


def conv_graph() -> GraphModel:
    rng = np.random.default_rng(9)
    nodes = {
        "in": Input(shape=(2, 8, 8)),
        "conv": Conv2d(weight=rng.standard_normal((4, 1, 3, 3)).astype(F32), bias=np.zeros(4), input_shape=(2, 8, 8),
                       padding=1, stride=1, dilation=1, groups=2),
        "spk": LIF(n=4 * 8 * 8),
        "sum": SumPool2d(kernel_size=2, input_shape=(4, 8, 8)),
        "avg": AvgPool2d(kernel_size=(2, 2), stride=(2, 2), padding=0, input_shape=(4, 4, 4)),
        "flat": Flatten(input_shape=(4, 2, 2)),
        "fc": Affine(weight=rng.standard_normal((16, 3)).astype(F32), bias=np.zeros(3)),
        "out": Output(shape=(3,)),
    }
    edges = [("in", "conv"), ("conv", "spk"), ("spk", "sum"), ("sum", "avg"), ("avg", "flat"), ("flat", "fc"),
             ("fc", "out")]
    return GraphModel(Graph(nodes, edges, dt_s=1e-3))


def _same_node(a, b) -> None:
    assert type(a) is type(b) and a.name == b.name
    assert a.meta() == b.meta()
    arr_a, arr_b = a.arrays(), b.arrays()
    assert sorted(arr_a) == sorted(arr_b)
    for k in arr_a:
        assert arr_a[k].dtype == arr_b[k].dtype, k
        np.testing.assert_array_equal(arr_a[k], arr_b[k], err_msg=f"{a.name}.{k}")


def _same_graph_model(a: GraphModel, b: GraphModel) -> None:
    assert list(a.graph.nodes) == list(b.graph.nodes) and a.graph.edges == b.graph.edges
    assert (a.graph.dt_s, a.graph.integration) == (b.graph.dt_s, b.graph.integration)
    assert a.graph.order() == b.graph.order()
    for name in a.graph.nodes:
        _same_node(a.graph.nodes[name], b.graph.nodes[name])
    assert a.output_labels == b.output_labels and a.output_units == b.output_units
    assert a.input_contract == b.input_contract


def _entries(path):
    """{entry name without .npy: array} and the header dict."""
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


def _edit(path, edit_header=None, edit_arrays=None):
    arrays, header = _entries(path)
    if edit_header:
        edit_header(header)
    if edit_arrays:
        edit_arrays(arrays)
    _write(path, arrays, header)


def _v1_copy(tmp_path, name="alif_contract_v1") -> Path:
    dst = tmp_path / f"{name}.npz"
    shutil.copyfile(FIXTURES / f"{name}.npz", dst)
    return dst


def _load_error(path, fn=load_model) -> str:
    with pytest.raises(ModelFileError) as err:
        fn(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    return msg


# ------------------------------------------------------------------ format v2
def test_round_trip_single_layer(tmp_path, model):
    path = save_model(tmp_path / "m.npz", model)
    loaded = load_model(path)
    assert isinstance(loaded, Model) and loaded.constants == model.constants
    for k in ("w_in", "w_rec", "w_out", "b_out"):
        np.testing.assert_array_equal(getattr(loaded.weights, k), getattr(model.weights, k))
        assert getattr(loaded.weights, k).dtype == F32
    assert loaded.output_labels == ["vx", "vy"] and loaded.output_units == ["m/s", "m/s"]
    assert loaded.provenance["method"] == "random_reservoir" and loaded.provenance["seed"] == 3
    xs = np.random.default_rng(0).poisson(0.3, (50, 6)).astype(F32)
    np.testing.assert_array_equal(Network(model).run(xs)[0], Network(loaded).run(xs)[0])
    save_model(tmp_path / "m2.npz", loaded)  # re-saving keeps the creation time
    assert read_header(tmp_path / "m2.npz")["provenance"]["created_utc"] == loaded.provenance["created_utc"]
    gm = load_graph_model(path)
    assert isinstance(gm, GraphModel) and gm.graph.nodes["hidden"].kind == "ALIF"


def test_header_contents(tmp_path, model):
    save_model(tmp_path / "m.npz", model)
    h = read_header(tmp_path / "m.npz")
    assert h["format"] == "rtsnn-model" and h["format_version"] == FORMAT_VERSION == 2
    assert h["dt_s"] == 1e-3 and (h["n_in"], h["n_out"]) == (6, 2)
    g = h["graph"]
    assert g["integration"] == "exact"
    assert g["edges"] == [["input", "w_in"], ["w_in", "hidden"], ["hidden", "w_rec"], ["w_rec", "hidden"],
                          ["hidden", "trace"], ["trace", "w_out"], ["w_out", "output"]]
    assert g["order"] == ["input", "w_in", "hidden", "trace", "w_out", "output", "w_rec"]
    assert {k: g["nodes"]["hidden"][k] for k in ("kind", "reset_at", "n")} == {"kind": "ALIF", "reset_at": "next",
                                                                               "n": 10}
    assert g["nodes"]["input"] == {"kind": "Input", "shape": [6]}
    assert h["shapes"]["w_in/weight"] == [6, 10] and h["shapes"]["w_out/bias"] == [2]
    assert h["shapes"]["hidden/tau_adapt_s"] == [10] and h["shapes"]["trace/tau_s"] == [10]
    for key in ("created_utc", "saved_utc", "rtsnn_version", "method"):
        assert key in h["provenance"]
    with zipfile.ZipFile(tmp_path / "m.npz") as z:  # plain npz: arrays + header, nothing pickled
        names = sorted(z.namelist())
    assert names == sorted([f"{k}.npy" for k in h["shapes"]] + ["header.json.npy"])
    arrays, _ = _entries(tmp_path / "m.npz")
    assert arrays["w_rec/weight"].dtype == F32 and arrays["hidden/v_th"].dtype == np.float64
    assert arrays["hidden/reset"].dtype == np.uint8


def test_round_trip_every_node_kind(tmp_path):
    gm = every_kind_graph()
    path = save_model(tmp_path / "g.npz", gm)
    loaded = load_model(path)
    assert isinstance(loaded, GraphModel)  # not the single-layer pattern
    _same_graph_model(gm, loaded)
    assert loaded.provenance["method"] == "hand-built"
    xs = np.random.default_rng(1).poisson(0.4, (120, 6)).astype(F32)
    np.testing.assert_array_equal(simulate(gm, xs), simulate(loaded, xs))
    np.testing.assert_allclose(simulate(loaded, xs), reference_run(gm, xs)[0], rtol=1e-5, atol=1e-5)
    assert GraphNetwork(loaded).run(xs)[1].any()  # the last spiking node ('if') spikes
    # saved again, byte-identical arrays and the same graph
    again = load_graph_model(save_model(tmp_path / "g2.npz", loaded))
    _same_graph_model(gm, again)


def test_round_trip_conv_kinds(tmp_path):
    gm = conv_graph()
    loaded = load_graph_model(save_model(tmp_path / "c.npz", gm))
    _same_graph_model(gm, loaded)
    conv = loaded.graph.nodes["conv"]
    assert (conv.stride, conv.padding, conv.dilation, conv.groups) == ((1, 1), (1, 1), (1, 1), 2)
    assert loaded.graph.nodes["avg"].output_shape() == (4, 2, 2)


def test_node_names_with_a_slash_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    nodes = {"in": Input(shape=(3,)), "layer/0/proj": Linear(weight=rng.standard_normal((3, 4))),
             "layer/0/lif": LIF(n=4), "out": Output(shape=(4,))}
    gm = GraphModel(Graph(nodes, [("in", "layer/0/proj"), ("layer/0/proj", "layer/0/lif"), ("layer/0/lif", "out")]))
    _same_graph_model(gm, load_graph_model(save_model(tmp_path / "s.npz", gm)))


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
    with pytest.raises(ValueError, match="expected a Model or GraphModel, got dict"):
        MF.build_header({"w": 1})  # type: ignore[arg-type]


def test_a_saved_model_gets_the_users_file_mode(tmp_path, model):
    """Written through a temporary file created 0o666 less the umask, as any file: a model
    readable by the user's group, not the 0o600 a tempfile.mkstemp file would keep."""
    old = os.umask(0o027)
    try:
        path = save_model(tmp_path / "m.npz", model)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_missing_file(tmp_path):
    for fn in (load_model, read_header, load_graph_model):
        with pytest.raises(ModelFileError, match="not found"):
            fn(tmp_path / "nope.npz")
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_model(tmp_path)


def test_not_a_zip(tmp_path):
    p = tmp_path / "m.npz"
    p.write_bytes(b"this is not a model" * 10)
    assert "not an .npz" in _load_error(p)


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
        info = z.getinfo("w_rec/weight.npy")
    # flip a byte in the middle of w_rec's data (past its local header and .npy header)
    offset = info.header_offset + 30 + len(info.filename) + 128 + 40
    data[offset] ^= 0x5A
    p.write_bytes(bytes(data))
    assert "'w_rec/weight' cannot be read (corrupt or truncated?)" in _load_error(p)


def test_missing_header(tmp_path, model):
    p = tmp_path / "m.npz"
    save_model(p, model)
    arrays, _ = _entries(p)
    _write(p, arrays)
    for fn in (load_model, read_header):
        assert "no 'header.json' entry" in _load_error(p, fn)


def test_header_not_json(tmp_path, model):
    p = tmp_path / "m.npz"
    save_model(p, model)
    arrays, _ = _entries(p)
    _write(p, arrays, raw_header=b"{format: rtsnn-model")
    assert "header is not valid UTF-8 JSON" in _load_error(p)
    _write(p, arrays, raw_header=b"\xff\xfe")
    assert "header is not valid UTF-8 JSON" in _load_error(p, read_header)
    _write(p, arrays, raw_header=b"[1, 2]")
    assert "header must be a JSON object" in _load_error(p)
    arrays["header.json"] = np.array([1.5, 2.5])
    _write(p, arrays)
    assert "'header.json' must be a 1-D uint8 array, got float64" in _load_error(p)


def _drop_shape(key):
    def edit(h):
        del h["shapes"][key]
    return edit


@pytest.mark.parametrize("edit, fragment", [
    (lambda h: h.update(format="nir"), "format tag is 'nir', expected 'rtsnn-model'"),
    (lambda h: h.pop("format"), "format tag is None"),
    (lambda h: h.update(format_version="2"), "format_version must be an integer"),
    (lambda h: h.update(format_version=0), "format_version must be an integer >= 1"),
    (lambda h: h.pop("graph"), "lacks required key(s) graph"),
    (lambda h: h.pop("shapes"), "lacks required key(s) shapes"),
    (lambda h: h.update(graph=[1]), "header 'graph' must be an object with 'nodes' (object) and 'edges' (list)"),
    (lambda h: h["graph"].update(edges={"a": "b"}), "header 'graph' must be an object"),
    (lambda h: h.update(shapes=[["w_in/weight", [6, 10]]]), "header 'shapes' must be an object, got list"),
    (lambda h: h["shapes"].update({"w_in/weight": "6x10"}), "header 'shapes'.w_in/weight must be a list of ints"),
    (lambda h: h["shapes"].update({"w_in/weight": [6.0, 10.0]}), "header 'shapes'.w_in/weight must be a list of ints"),
    (lambda h: h["shapes"].update({"w_out/weight": [2, 10]}),
     "array 'w_out/weight' has shape [10, 2] but the header says [2, 10]"),
    (lambda h: h["shapes"].update({"ghost/weight": [2]}), "lacks array 'ghost/weight'"),
    (_drop_shape("hidden/tau_mem_s"), "node 'hidden': tau_mem_s: array hidden/tau_mem_s is not in the file"),
    (_drop_shape("w_in/weight"), "node 'w_in': weight: array w_in/weight is not in the file"),
    (lambda h: h.update(output_labels=["only-one"]), "model: output_labels must be 2 strings"),
    (lambda h: h.update(dt_s="1ms"), "graph: dt_s must be a number of seconds"),
    (lambda h: h["graph"].update(integration="rk4"), "graph: integration must be one of exact, euler"),
    (lambda h: h["graph"].update(order=["input", "w_in", "hidden", "w_rec", "trace", "w_out", "output"]),
     "graph: order: the file's evaluation order"),
    (lambda h: h["graph"]["nodes"]["hidden"].update(kind="Spiky"), "node 'hidden': kind: unknown node kind 'Spiky'"),
    (lambda h: h["graph"]["nodes"]["hidden"].update(colour="red"), "node 'hidden': unknown field(s) colour"),
    (lambda h: h["graph"]["nodes"]["hidden"].update(reset_at="later"), "node 'hidden': reset_at: must be one of"),
    (lambda h: h["graph"]["nodes"].pop("w_rec"), "array 'w_rec/weight' belongs to no node of the graph"),
    (lambda h: h["graph"].update(edges=[["input", "w_in"], ["w_in", "hidden"]]),
     "node 'w_rec': not reachable from the input 'input'"),
    (lambda h: h["graph"]["edges"].append(["hidden"]), "graph: edges must be [source, target] pairs"),
    (lambda h: h.update(provenance="me"), "header 'provenance' must be an object"),
])
def test_bad_header_fields(tmp_path, model, edit, fragment):
    p = tmp_path / "m.npz"
    save_model(p, model)
    _edit(p, edit)
    assert fragment in _load_error(p)


def test_bad_graphs_in_a_file_name_node_and_field(tmp_path):
    """The bad inputs of the issue, each in a file: an algebraic loop, a shape mismatch between
    nodes, a per-neuron array of the wrong length, a negative time constant."""
    gm = every_kind_graph()
    p = tmp_path / "g.npz"

    def fresh():
        save_model(p, gm)

    fresh()  # a loop with no state on it (if -> rec -> cuba is fine: if and cuba are neurons)
    _edit(p, lambda h: h["graph"]["edges"].append(["flat", "flat"]))
    assert "edge flat -> flat: closes the cycle flat -> flat with no state on it" in _load_error(p)

    fresh()  # w2's weight swapped for one with 6 outputs: w2 gives 6 values, cuba takes 5

    def wider(arrays):
        arrays["w2/weight"] = np.zeros((8, 6), F32)
        arrays["w2/bias"] = np.zeros(6, F32)
    _edit(p, lambda h: h["shapes"].update({"w2/weight": [8, 6], "w2/bias": [6]}), wider)
    assert "edge w2 -> cuba: node 'w2' gives 6 values (shape [6]), node 'cuba' takes 5" in _load_error(p)

    fresh()  # one value short

    def short(arrays):
        arrays["alif/tau_adapt_s"] = arrays["alif/tau_adapt_s"][:3]
    _edit(p, lambda h: h["shapes"].update({"alif/tau_adapt_s": [3]}), short)
    assert "node 'alif': tau_adapt_s: must have one value per neuron (4), got shape [3]" in _load_error(p)

    fresh()

    def negative(arrays):
        arrays["li/tau_s"][1] = -0.02
    _edit(p, edit_arrays=negative)
    assert "node 'li': tau_s: must be > 0, got " in _load_error(p)

    fresh()  # euler integration and a time constant below the tick

    def too_fast(arrays):
        arrays["lif/tau_mem_s"][2] = 2e-4
    _edit(p, edit_arrays=too_fast)
    assert "node 'lif': tau_mem_s: must be >= dt_s (0.001 s) under 'euler' integration" in _load_error(p)

    fresh()

    def nan_weight(arrays):
        arrays["w3/weight"][1, 2] = np.nan
    _edit(p, edit_arrays=nan_weight)
    assert "node 'w3': weight: must be finite, got 1 NaN/inf value(s)" in _load_error(p)

    fresh()

    def text_steps(arrays):
        arrays["d/steps"] = np.array(["1"] * 8)
    _edit(p, edit_arrays=text_steps)
    assert "array 'd/steps' must be numeric, got <U1" in _load_error(p)

    fresh()

    def object_array(arrays):
        arrays["w1/weight"] = np.array([{"x": 1}, None], dtype=object)
    arrays, header = _entries(p)
    object_array(arrays)
    header["shapes"]["w1/weight"] = [2]
    with open(p, "wb") as f:  # np.savez pickles it; the loader must not unpickle it
        np.savez(f, **arrays, **{"header.json": np.frombuffer(json.dumps(header).encode(), np.uint8)})
    assert "array 'w1/weight' must be numeric, got object" in _load_error(p)


def test_an_autapse_makes_a_general_graph(tmp_path, model):
    """v2 stores any graph: a self-connection in w_rec is no longer today's single layer (whose
    Network refuses it), so the file loads as a GraphModel and runs as one."""
    p = save_model(tmp_path / "m.npz", model)
    _edit(p, edit_arrays=lambda a: a["w_rec/weight"].__setitem__((3, 3), 0.5))
    loaded = load_model(p)
    assert isinstance(loaded, GraphModel) and loaded.graph.nodes["w_rec"].weight[3, 3] == 0.5
    xs = np.random.default_rng(0).poisson(0.3, (20, 6)).astype(F32)
    assert simulate(loaded, xs).shape == (20, 2)


def test_newer_format_version_says_upgrade(tmp_path, model):
    for p in (save_model(tmp_path / "m.npz", model), _v1_copy(tmp_path)):
        _edit(p, lambda h: h.update(format_version=FORMAT_VERSION + 1))
        for fn in (load_model, read_header, load_graph_model):
            msg = _load_error(p, fn)
            assert f"format_version {FORMAT_VERSION + 1}" in msg and f"up to format_version {FORMAT_VERSION}" in msg
            assert "upgrade rtsnn" in msg


# ------------------------------------------------------------------ arrays that claim more than the file holds
def _npy_claiming(shape, descr="<f4", data=b"\0" * 64) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue() + data


def _forge(src: Path, dst: Path, entry: str, npy: bytes, header_edit=None) -> None:
    """Copy the zip ``src`` to ``dst`` with ``entry`` replaced by the raw bytes ``npy``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "header.json.npy" and header_edit is not None:
                header = json.loads(np.load(io.BytesIO(data)).tobytes())
                header_edit(header)
                out = io.BytesIO()
                np.save(out, np.frombuffer(json.dumps(header).encode(), np.uint8))
                data = out.getvalue()
            zout.writestr(info.filename, npy if info.filename == entry else data)


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("shape", [(40000, 40000), (8000, 8000)])
def test_v1_array_claiming_a_huge_shape_is_refused_before_allocating(tmp_path, shape):
    """A 2.9 KB file whose w_rec entry claims 40000 x 40000 floats (6.4 GB, over the 4 GiB cap) or
    8000 x 8000 (256 MB, under it): refused from the .npy header, with a few KB of memory."""
    forged = tmp_path / "forged.npz"
    _forge(FIXTURES / "alif_contract_v1.npz", forged, "w_rec.npy", _npy_claiming(shape),
           lambda h: h["shapes"].update(w_rec=list(shape)))
    assert forged.stat().st_size < 8000
    errors = []

    def load():
        with pytest.raises(ModelFileError) as err:
            load_model(forged)
        errors.append(str(err.value))

    assert _peak_bytes(load) < 2 << 20
    assert f"array 'w_rec' claims shape {list(shape)}" in errors[0] and "holds 64 bytes" in errors[0]


def test_v2_node_array_and_header_claiming_huge_shapes(tmp_path, model):
    p = save_model(tmp_path / "m.npz", model)
    forged = tmp_path / "forged.npz"
    _forge(p, forged, "hidden/v_th.npy", _npy_claiming((3_000_000_000,), "<f8"),
           lambda h: h["shapes"].update({"hidden/v_th": [3_000_000_000]}))
    errors = []

    def load(path=forged):
        with pytest.raises(ModelFileError) as err:
            load_model(path)
        errors.append(str(err.value))

    assert _peak_bytes(load) < 2 << 20
    assert "array 'hidden/v_th' claims shape [3000000000]" in errors[-1]
    # the header entry itself claiming a gigabyte
    _forge(p, forged, "header.json.npy", _npy_claiming((1 << 30,), "|u1"))
    assert _peak_bytes(load) < 2 << 20
    assert "'header.json' claims 1073741824 bytes, more than the limit" in errors[-1]
    # a shape the header does not list at all is never read
    _forge(p, forged, "hidden/v_th.npy", _npy_claiming((10,), "<f8", b"\0" * 8))
    assert _peak_bytes(load) < 2 << 20
    assert "array 'hidden/v_th' claims shape [10] (80 bytes of float64) but its entry holds 8 bytes" in errors[-1]


def test_total_size_limit(tmp_path, model, monkeypatch):
    p = save_model(tmp_path / "m.npz", model)
    monkeypatch.setattr(MF, "MAX_MODEL_BYTES", 1000)
    msg = _load_error(p)
    assert "its arrays would take" in msg and "RTSNN_MAX_MODEL_BYTES" in msg


# ------------------------------------------------------------------ format v1 (fixtures written by the v1 writer)
def test_v1_fixtures_load_and_compute_what_they_computed():
    expected = np.load(FIXTURES / "expected_v1.npz")
    for name, model_kind, n_in, n_rec, n_out in (("lif_v1", "lif", 4, 8, 2), ("alif_contract_v1", "alif", 5, 10, 3)):
        path = FIXTURES / f"{name}.npz"
        assert read_header(path)["format_version"] == 1
        m = load_model(path)
        assert isinstance(m, Model) and m.constants.model == model_kind
        assert (m.n_in, m.n_rec, m.n_out) == (n_in, n_rec, n_out)
        xs, ys = expected[f"xs_{name}"], expected[f"ys_{name}"]
        y, z = Network(m).run(xs)
        np.testing.assert_array_equal(y, ys)
        assert z.sum() > 20
        # the same file as a graph: the single-layer pattern, with the same spikes and outputs
        gm = load_graph_model(path)
        assert [r["kind"] for r in gm.graph.summary()] == ["Input", "Linear", model_kind.upper(), "LI", "Affine",
                                                           "Output", "Linear"]
        y_g, z_g = GraphNetwork(gm).run(xs)
        np.testing.assert_array_equal(z_g, z)
        np.testing.assert_allclose(y_g, ys, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(simulate(gm, xs), ys)  # build_network runs the fused Network
    alif = load_model(FIXTURES / "alif_contract_v1.npz")
    assert alif.constants == layer_constants(*single_layer("alif", 10, tau_mem_s=20e-3, tau_adapt_s=100e-3,
                                                           beta_adapt=0.2, tau_out_s=40e-3), 2e-3)
    lif = load_model(FIXTURES / "lif_v1.npz")
    assert lif.constants == layer_constants(*single_layer("lif", 8, tau_mem_s=10e-3, refractory_s=2e-3,
                                                         tau_out_s=30e-3), 1e-3)
    assert alif.output_labels == ["x", "y", "grip"] and alif.output_units == ["m/s", "m/s", "a.u."]
    assert alif.input_contract == InputContract(n_channels=5, dt_s=2e-3, encoder_kind="passthrough",
                                                encoder_options={"n_channels": 5},
                                                channel_labels=("c0", "c1", "c2", "c3", "c4"),
                                                source={"kind": "lsl", "name": "amp", "type": "spikes"})
    assert alif.provenance["method"] == "bptt" and load_model(FIXTURES / "lif_v1.npz").input_contract is None


def test_v1_file_saved_again_is_v2_and_the_same_model(tmp_path):
    expected = np.load(FIXTURES / "expected_v1.npz")
    m = load_model(FIXTURES / "alif_contract_v1.npz")
    p = save_model(tmp_path / "v2.npz", m)
    h = read_header(p)
    assert h["format_version"] == 2 and h["provenance"]["created_utc"] == "2026-12-01T00:00:00+00:00"
    again = load_model(p)
    assert isinstance(again, Model) and again.constants == m.constants and again.input_contract == m.input_contract
    xs = expected["xs_alif_contract_v1"]
    np.testing.assert_array_equal(Network(again).run(xs)[0], expected["ys_alif_contract_v1"])


def _set_settings(**kw):
    return lambda h: h["settings"].update(**kw)


@pytest.mark.parametrize("edit, fragment", [
    (_set_settings(tau_mem_s=-1.0), "header 'settings'.tau_mem_s: must be > 0, got -1.0"),
    (_set_settings(tau_out_s=1e-4), "header 'settings'.tau_out_s: must be larger than dt_s (0.002 s; are the units "
                                    "seconds?), got 0.0001"),
    (_set_settings(tau_adapt_s=2e-3), "header 'settings'.tau_adapt_s: must be larger than dt_s"),
    (_set_settings(dt_s=0.0), "header 'settings'.dt_s: must be > 0, got 0.0"),
    (_set_settings(v_th="1.0"), "header 'settings'.v_th: must be a finite number, got '1.0'"),
    (_set_settings(beta_adapt=float("nan")), "header 'settings'.beta_adapt: must be a finite number, got nan"),
    (_set_settings(refractory_s=-1e-3), "header 'settings'.refractory_s: must be >= 0, got -0.001"),
    (_set_settings(refractory_s=True), "header 'settings'.refractory_s: must be a finite number, got True"),
    (_set_settings(tau_syn_s=5e-3), "header 'settings': unknown key(s) tau_syn_s; expected some of model, dt_s"),
    (_set_settings(model="izhikevich"), "header 'settings'.model: must be one of lif, alif, got 'izhikevich'"),
    (lambda h: h.pop("settings"), "lacks required key(s) settings"),
    (lambda h: h.update(settings=[1, 2]), "header 'settings' must be an object"),
    (lambda h: h.update(shapes=["w_in", "w_rec"]), "header 'shapes' must be an object, got list"),
    (lambda h: h["shapes"].update(w_in={"rows": 5}), "header 'shapes'.w_in must be a list of ints"),
    (lambda h: h["shapes"].update(w_out=[3, 10]), "array 'w_out' has shape [10, 3] but the header says [3, 10]"),
    (lambda h: h["shapes"].pop("b_out"), "header 'shapes' lacks 'b_out'"),
    (lambda h: h.update(output_labels=["only-one"]), "output_labels must have n_out = 3"),
    (lambda h: h["input_contract"].update(n_channels=0), "input_contract.n_channels: must be an integer >= 1"),
    (lambda h: h.update(format_version="1"), "format_version must be an integer"),
])
def test_v1_file_with_a_corrupt_header_names_the_field(tmp_path, edit, fragment):
    p = _v1_copy(tmp_path)
    _edit(p, edit)
    for fn in (load_model, load_graph_model):
        assert fragment in _load_error(p, fn)


def test_v1_file_whose_top_level_settings_disagree_is_refused(tmp_path):
    """The v1 writer put dt_s and neuron_model at the top of the header too: a file where they
    disagree with 'settings' is refused, not read with one of them."""
    p = _v1_copy(tmp_path, "lif_v1")
    dt = read_header(p)["settings"]["dt_s"]
    _edit(p, lambda h: h.update(dt_s=dt * 2))
    assert f"header 'dt_s' ({dt * 2!r}) disagrees with 'settings'.dt_s ({dt!r})" in _load_error(p)
    p = _v1_copy(tmp_path, "lif_v1")
    _edit(p, lambda h: h.update(neuron_model="alif"))
    assert "header 'neuron_model' ('alif') disagrees with 'settings'.model ('lif')" in _load_error(p)


@pytest.mark.parametrize("edit, fragment", [
    (lambda a: a["w_in"].__setitem__((1, 2), np.nan), "array 'w_in' has 1 non-finite"),
    (lambda a: a["w_rec"].__setitem__((3, 3), 0.5), "zero diagonal"),
    (lambda a: a.pop("w_rec"), "lacks array 'w_rec'"),
    (lambda a: a.update(b_out=np.array(["a", "b", "c"])), "array 'b_out' must be numeric, got <U1"),
    (lambda a: a.update(b_out=np.array([1, 2, 3], np.int32)), "array 'b_out' must be floating point, got int32"),
])
def test_v1_file_with_bad_arrays(tmp_path, edit, fragment):
    p = _v1_copy(tmp_path)
    _edit(p, edit_arrays=edit)
    assert fragment in _load_error(p)


def test_v1_header_not_json(tmp_path):
    p = _v1_copy(tmp_path, "lif_v1")
    arrays, _ = _entries(p)
    _write(p, arrays, raw_header=b'{"format": "rtsnn-model", "format_version": 1,')
    assert "header is not valid UTF-8 JSON" in _load_error(p)


def test_a_member_flagged_encrypted_or_with_an_unknown_compression_is_a_model_file_error(tmp_path):
    """A flipped flag bit in the zip directory makes zipfile raise RuntimeError (encrypted) or
    NotImplementedError (compression method): both are a damaged file, one line naming it."""
    import struct

    src = tmp_path / "m.npz"
    save_model(src, Model.random(3, 4, 2, seed=0))
    raw = bytearray(src.read_bytes())
    cd = raw.find(b"PK\x01\x02")  # the first central-directory entry
    for name, patch in (("enc.npz", lambda b: struct.pack_into("<H", b, cd + 8, struct.unpack_from("<H", b, cd + 8)[0] | 1)),
                        ("meth.npz", lambda b: struct.pack_into("<H", b, cd + 10, 99))):
        bad = bytearray(raw)
        patch(bad)
        path = tmp_path / name
        path.write_bytes(bytes(bad))
        with pytest.raises(ModelFileError, match=name):
            load_model(path)
