"""Conv2d / SumPool2d / AvgPool2d kernels (rtsnn.snn.conv_kernels): against torch's conv2d and
avg_pool2d, numba against the numpy twins and dense against event-driven bit for bit, and a
whole spiking CNN run by GraphNetwork in every propagation mode and against snnTorch."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import import_or_skip
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsnn.snn import conv_kernels as C
from rtsnn.snn.graph import Graph, GraphModel
from rtsnn.snn.graph_network import GraphNetwork
from rtsnn.snn.nodes import (IF, LI, LIF, AvgPool2d, Conv2d, Flatten, GraphError, Input, Linear, Output,
                             SumPool2d)

MODES = ("dense", "event", "auto")


def _bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.int32)


def _sparse_input(rng: np.random.Generator, n: int, density: float, signed: bool = True) -> np.ndarray:
    vals = rng.standard_normal(n).astype(np.float32) if signed else np.ones(n, np.float32)
    return np.where(rng.random(n) < density, vals, np.float32(0.0)).astype(np.float32)


def _run_conv(node: Conv2d, x: np.ndarray, mode: str) -> tuple[np.ndarray, int]:
    out = np.full(node.output_size(), np.nan, np.float32)  # every element must be written
    geom = C.geometry(node, mode)
    used = C.conv2d_step(x, out, node.weight, node.bias, geom, C.reach_table(geom))
    return out, used


def _run_pool(node: SumPool2d, x: np.ndarray, mode: str) -> tuple[np.ndarray, int]:
    out = np.full(node.output_size(), np.nan, np.float32)
    geom = C.geometry(node, mode)
    used = C.pool2d_step(x, out, geom, C.reach_table(geom))
    return out, used


CONV_CASES = [
    # c_in, h, w, c_out, kernel, stride, padding, dilation, groups
    (2, 34, 34, 16, (5, 5), (2, 2), (0, 0), (1, 1), 1),
    (16, 15, 15, 16, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (4, 9, 11, 6, (3, 3), (1, 2), (1, 2), (2, 1), 2),
    (3, 7, 8, 3, (2, 3), (2, 1), (1, 0), (1, 1), 3),
    (1, 5, 5, 2, (5, 5), (3, 3), (2, 2), (1, 1), 1),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch_in_every_mode(case):
    torch = import_or_skip("torch")
    c_in, h, w, c_out, k, s, p, d, g = case
    rng = np.random.default_rng(sum(case[:4]))
    node = Conv2d(name="c", weight=rng.standard_normal((c_out, c_in // g, *k)).astype(np.float32),
                  bias=rng.standard_normal(c_out).astype(np.float32), input_shape=(c_in, h, w),
                  stride=s, padding=p, dilation=d, groups=g)
    for density in (0.03, 0.6):
        x = _sparse_input(rng, c_in * h * w, density)
        ref = torch.nn.functional.conv2d(torch.from_numpy(x.reshape(1, c_in, h, w)), torch.from_numpy(node.weight),
                                         torch.from_numpy(node.bias), stride=s, padding=p, dilation=d,
                                         groups=g).numpy().ravel()
        twin = np.zeros(node.output_size(), np.float32)
        C.conv2d_step_np(x, twin, node.weight, node.bias, C.geometry(node))
        np.testing.assert_allclose(twin, ref, rtol=1e-5, atol=1e-5)
        for mode in MODES:
            out, _ = _run_conv(node, x, mode)
            np.testing.assert_array_equal(_bits(out), _bits(twin), err_msg=f"{mode} differs from the twin")


@pytest.mark.parametrize("cls", [SumPool2d, AvgPool2d])
@pytest.mark.parametrize("k,s,p", [((2, 2), None, (0, 0)), ((3, 3), (2, 2), (1, 1)), ((2, 3), (1, 2), (1, 0))])
def test_pools_match_torch_in_every_mode(cls, k, s, p):
    torch = import_or_skip("torch")
    rng = np.random.default_rng(7)
    shape = (3, 10, 9)
    node = cls(name="p", kernel_size=k, stride=s, padding=p, input_shape=shape)
    for density in (0.05, 0.7):
        x = _sparse_input(rng, int(np.prod(shape)), density)
        ref = torch.nn.functional.avg_pool2d(torch.from_numpy(x.reshape(1, *shape)), k, s if s else k, p)
        ref = ref.numpy().ravel() * (np.float32(k[0] * k[1]) if cls is SumPool2d else np.float32(1.0))
        twin = np.zeros(node.output_size(), np.float32)
        C.pool2d_step_np(x, twin, C.geometry(node))
        np.testing.assert_allclose(twin, ref, rtol=1e-5, atol=1e-5)
        for mode in MODES:
            out, _ = _run_pool(node, x, mode)
            np.testing.assert_array_equal(_bits(out), _bits(twin), err_msg=f"{mode} differs from the twin")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), c_in=st.integers(1, 4), c_out_per_group=st.integers(1, 3),
       groups=st.sampled_from([1, 1, 2]), h=st.integers(3, 12), w=st.integers(3, 12), kh=st.integers(1, 4),
       kw=st.integers(1, 4), sy=st.integers(1, 3), sx=st.integers(1, 3), py=st.integers(0, 2),
       px=st.integers(0, 2), dy=st.integers(1, 2), dx=st.integers(1, 2), density=st.sampled_from([0.0, 0.05, 0.3, 1.0]))
def test_conv2d_numba_twin_dense_event_bit_identical(seed, c_in, c_out_per_group, groups, h, w, kh, kw, sy, sx,
                                                     py, px, dy, dx, density):
    if dy * (kh - 1) + 1 > h + 2 * py or dx * (kw - 1) + 1 > w + 2 * px:
        return  # the kernel does not fit: the node refuses it (tested below)
    rng = np.random.default_rng(seed)
    c_in_total = c_in * groups
    weight = rng.standard_normal((c_out_per_group * groups, c_in, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(c_out_per_group * groups).astype(np.float32)
    bias[0] = -0.0  # a -0 bias must not make the gather (which adds w*0) and the scatter differ
    node = Conv2d(name="c", weight=weight, bias=bias, input_shape=(c_in_total, h, w), stride=(sy, sx),
                  padding=(py, px), dilation=(dy, dx), groups=groups)
    x = _sparse_input(rng, c_in_total * h * w, density)
    x[x == 0] = np.where(rng.random(int((x == 0).sum())) < 0.5, np.float32(-0.0), np.float32(0.0))
    twin = np.zeros(node.output_size(), np.float32)
    C.conv2d_step_np(x, twin, weight, bias, C.geometry(node))
    for mode in MODES:
        out, _ = _run_conv(node, x, mode)
        np.testing.assert_array_equal(_bits(out), _bits(twin), err_msg=mode)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), c=st.integers(1, 3), h=st.integers(2, 11), w=st.integers(2, 11),
       kh=st.integers(1, 3), kw=st.integers(1, 3), sy=st.integers(1, 3), sx=st.integers(1, 3),
       py=st.integers(0, 1), px=st.integers(0, 1), avg=st.booleans(), density=st.sampled_from([0.0, 0.1, 1.0]))
def test_pool_numba_twin_dense_event_bit_identical(seed, c, h, w, kh, kw, sy, sx, py, px, avg, density):
    if kh > h + 2 * py or kw > w + 2 * px:
        return
    rng = np.random.default_rng(seed)
    node = (AvgPool2d if avg else SumPool2d)(name="p", kernel_size=(kh, kw), stride=(sy, sx), padding=(py, px),
                                             input_shape=(c, h, w))
    x = _sparse_input(rng, c * h * w, density)
    twin = np.zeros(node.output_size(), np.float32)
    C.pool2d_step_np(x, twin, C.geometry(node))
    for mode in MODES:
        out, _ = _run_pool(node, x, mode)
        np.testing.assert_array_equal(_bits(out), _bits(twin), err_msg=mode)


def test_auto_scatters_only_from_sparse_input():
    rng = np.random.default_rng(3)
    node = Conv2d(name="c", weight=rng.standard_normal((4, 2, 3, 3)).astype(np.float32), bias=np.zeros(4, np.float32),
                  input_shape=(2, 10, 10))
    pool = SumPool2d(name="p", kernel_size=2, input_shape=(2, 10, 10))
    sparse, dense = np.zeros(200, np.float32), np.ones(200, np.float32)
    sparse[[5, 77, 150]] = 1.0
    assert _run_conv(node, sparse, "auto")[1] == 1 and _run_conv(node, dense, "auto")[1] == 0
    assert _run_pool(pool, sparse, "auto")[1] == 1 and _run_pool(pool, dense, "auto")[1] == 0
    assert _run_conv(node, dense, "event")[1] == 1 and _run_conv(node, sparse, "dense")[1] == 0
    # an all-zero input scatters nothing: the output is the bias (+0 for a pool)
    node.bias[...] = [1.5, -2.0, 0.0, -0.0]
    out, used = _run_conv(node, np.zeros(200, np.float32), "event")
    assert used == 1
    np.testing.assert_array_equal(_bits(out.reshape(4, -1)[:, 0]), _bits(np.float32([1.5, -2.0, 0.0, 0.0])))


def test_bad_inputs_name_the_node():
    node = Conv2d(name="conv1", weight=np.ones((2, 1, 3, 3), np.float32), bias=np.zeros(2, np.float32),
                  input_shape=(1, 5, 5))
    with pytest.raises(GraphError, match="node 'conv1': propagation"):
        C.geometry(node, "sparse")
    with pytest.raises(GraphError, match="node 'conv1': input buffer must be float32"):
        C.compile_conv2d(node, np.zeros(24, np.float32), np.zeros(18, np.float32), "dense")
    with pytest.raises(GraphError, match="node 'conv1': output buffer must be float32"):
        C.compile_conv2d(node, np.zeros(25, np.float32), np.zeros(18, np.float64), "dense")
    with pytest.raises(GraphError, match="node 'f': kind Flatten is not a convolution"):
        C.geometry(Flatten(name="f", input_shape=(4,)))
    with pytest.raises(GraphError, match="node 'c': weight: kernel"):
        Conv2d(name="c", weight=np.ones((1, 1, 6, 6), np.float32), bias=np.zeros(1, np.float32), input_shape=(1, 5, 5))
    with pytest.raises(GraphError, match="node 'p': kernel_size"):
        AvgPool2d(name="p", kernel_size=4, input_shape=(1, 3, 3))


# ---------------------------------------------------------------------------- a whole spiking CNN
DT_S = 1e-3
TAU_S = (10e-3, 15e-3, 20e-3, 25e-3)
V_TH = 0.999  # not a multiple of 2^-8 (the exact sums below are): v == v_th never happens, and
# snnTorch spikes on v > v_th where rtsnn spikes on v >= v_th


def _q(rng: np.random.Generator, shape, scale: float) -> np.ndarray:
    # weights on a 2^-6 grid: with 0/1 spikes and 2x2 average pools every sum is exact in float32
    # whatever the order, so torch's convolution and ours agree bit for bit
    return (np.round(rng.standard_normal(shape) * scale * 64) / 64).astype(np.float32)


def cnn_model(seed: int = 0) -> GraphModel:
    """Input (2, 34, 34) -> conv 8 5x5 /2 -> IF -> conv 8 3x3 pad 1 -> LIF -> avg pool 2 -> conv 4 3x3
    pad 1 -> LIF -> sum pool 2 -> flatten -> 36 x 32 -> LIF -> 32 x 10 -> LI -> output."""
    rng = np.random.default_rng(seed)
    nodes = {
        "input": Input(shape=(2, 34, 34)),
        "conv1": Conv2d(weight=_q(rng, (8, 2, 5, 5), 0.6), bias=_q(rng, 8, 0.05), input_shape=(2, 34, 34), stride=2),
        "if1": IF(n=8 * 15 * 15, v_th=V_TH),
        "conv2": Conv2d(weight=_q(rng, (8, 8, 3, 3), 0.5), bias=_q(rng, 8, 0.05), input_shape=(8, 15, 15), padding=1),
        "lif2": LIF(n=8 * 15 * 15, tau_mem_s=TAU_S[0], v_th=V_TH),
        "pool1": AvgPool2d(kernel_size=2, input_shape=(8, 15, 15)),
        "conv3": Conv2d(weight=_q(rng, (4, 8, 3, 3), 0.8), bias=_q(rng, 4, 0.05), input_shape=(8, 7, 7), padding=1),
        "lif3": LIF(n=4 * 7 * 7, tau_mem_s=TAU_S[1], v_th=V_TH),
        "pool2": SumPool2d(kernel_size=2, input_shape=(4, 7, 7)),
        "flat": Flatten(input_shape=(4, 3, 3)),
        "fc1": Linear(weight=_q(rng, (36, 32), 0.6)),
        "lif4": LIF(n=32, tau_mem_s=TAU_S[2], v_th=V_TH),
        "fc2": Linear(weight=_q(rng, (32, 10), 0.5)),
        "li": LI(n=10, tau_s=TAU_S[3]),
        "output": Output(shape=(10,)),
    }
    chain = list(nodes)
    return GraphModel(Graph(nodes, list(zip(chain[:-1], chain[1:])), dt_s=DT_S))


def _events(n_ticks: int, density: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n_ticks, 2 * 34 * 34)) < density).astype(np.float32)


def _run_graph(model: GraphModel, xs: np.ndarray, propagation: str) -> dict[str, np.ndarray]:
    net = GraphNetwork(model, propagation=propagation)
    names = ("if1", "lif2", "lif3", "lif4")
    rec = {n: np.zeros((xs.shape[0], net._buf[n].shape[0]), np.float32) for n in names}
    rec["y"] = np.zeros((xs.shape[0], 10), np.float32)
    buf = np.zeros(xs.shape[1], np.float32)
    for t in range(xs.shape[0]):
        buf[...] = xs[t]
        net.step(buf)
        for n in names:
            rec[n][t] = net._buf[n]
        rec["y"][t] = net.readout()
    return rec


def test_cnn_graph_identical_in_every_propagation_mode():
    model = cnn_model()
    xs = _events(120, 0.04)
    runs = {mode: _run_graph(model, xs, mode) for mode in MODES}
    for key, ref in runs["dense"].items():
        for mode in ("event", "auto"):
            np.testing.assert_array_equal(_bits(runs[mode][key]), _bits(ref), err_msg=f"{key} {mode}")
    for key in ("if1", "lif2", "lif3", "lif4"):
        assert runs["dense"][key].any(), f"{key} never spiked: the test would prove nothing"


def test_cnn_graph_matches_snntorch_spike_for_spike():
    torch = import_or_skip("torch")
    snn = import_or_skip("snntorch")
    torch.set_num_threads(1)
    model = cnn_model()
    g = model.graph.nodes
    xs = _events(200, 0.04, seed=2)
    ours = _run_graph(model, xs, "auto")

    def conv(node):
        m = torch.nn.Conv2d(node.weight.shape[1], node.weight.shape[0], node.weight.shape[2:], stride=node.stride,
                            padding=node.padding)
        m.weight.data = torch.from_numpy(node.weight.copy())
        m.bias.data = torch.from_numpy(node.bias.copy())
        return m

    def leaky(tau_s):  # snnTorch's Leaky is rtsnn's LIF with reset by subtraction at the next tick
        beta = 1.0 if tau_s is None else float(np.float32(np.exp(-DT_S / tau_s)))
        return snn.Leaky(beta=beta, threshold=V_TH, reset_mechanism="subtract")

    fc1 = torch.nn.Linear(36, 32, bias=False)
    fc1.weight.data = torch.from_numpy(g["fc1"].weight.T.copy())
    fc2 = torch.nn.Linear(32, 10, bias=False)
    fc2.weight.data = torch.from_numpy(g["fc2"].weight.T.copy())
    c1, c2, c3 = conv(g["conv1"]), conv(g["conv2"]), conv(g["conv3"])
    n1, n2, n3, n4 = leaky(None), leaky(TAU_S[0]), leaky(TAU_S[1]), leaky(TAU_S[2])
    readout = snn.Leaky(beta=float(np.float32(np.exp(-DT_S / TAU_S[3]))), threshold=1e30, reset_mechanism="none")
    mems = [n.init_leaky() for n in (n1, n2, n3, n4, readout)]
    theirs = {k: np.zeros_like(v) for k, v in ours.items()}
    with torch.no_grad():
        for t in range(xs.shape[0]):
            x = torch.from_numpy(xs[t].reshape(1, 2, 34, 34))
            s1, mems[0] = n1(c1(x), mems[0])
            s2, mems[1] = n2(c2(s1), mems[1])
            s3, mems[2] = n3(c3(torch.nn.functional.avg_pool2d(s2, 2)), mems[2])
            pooled = torch.nn.functional.avg_pool2d(s3, 2) * 4.0  # a sum pool (exact on 0/1 spikes)
            s4, mems[3] = n4(fc1(pooled.flatten(1)), mems[3])
            _, mems[4] = readout(fc2(s4), mems[4])
            for key, s in (("if1", s1), ("lif2", s2), ("lif3", s3), ("lif4", s4), ("y", mems[4])):
                theirs[key][t] = s.numpy().ravel()
    for key in ("if1", "lif2", "lif3", "lif4"):
        assert ours[key].any(), f"{key} never spiked"
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    np.testing.assert_array_equal(ours["y"], theirs["y"])


def test_cnn_model_file_round_trip_runs_identically(tmp_path):
    from rtsnn.snn.model_file import load_graph_model, save_model

    model = cnn_model(seed=4)
    path = save_model(tmp_path / "cnn.rtsnn", model)
    loaded = load_graph_model(path)
    xs = _events(40, 0.05, seed=5)
    a, b = _run_graph(model, xs, "event"), _run_graph(loaded, xs, "dense")
    for key in a:
        np.testing.assert_array_equal(_bits(a[key]), _bits(b[key]), err_msg=key)
