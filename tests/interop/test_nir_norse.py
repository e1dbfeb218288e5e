"""Cross-check against Norse both ways, 1000 ticks each (docs/nir.md, "Norse").

Norse -> NIR -> rtsnn: ``SequentialState`` networks of ``nn.Linear`` with ``LIFBoxCell`` (NIR
``LIF``), ``LIFCell`` (``CubaLIF``), ``IAFCell`` (``IF``) and ``LIBoxCell`` (``LI``), exported
with Norse's own ``to_nir`` and imported with ``convention='norse'`` (which undoes the
exporter's ``tau = dt / tau_inv`` and ``LIFCell``'s unscaled synaptic input); every layer's
spikes equal Norse's forward pass, membranes within 1e-5 of max(|v|, v_th).

rtsnn -> NIR -> Norse: graphs written by ``to_nir(convention='norse')`` loaded with Norse's
``from_nir(dt=...)``. Norse's importer has no ``LI`` and its ``LIF`` ignores ``r``, so the
graphs here use neither (docs/nir.md).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import import_or_skip

nir = import_or_skip("nir", reason="needs `pip install nir`")
torch = import_or_skip("torch", reason="needs torch (CPU)")
norse = import_or_skip("norse.torch", reason="needs norse")

from rtsnn.interop.nir import from_nir, to_nir  # noqa: E402
from rtsnn.snn import nodes as N  # noqa: E402
from rtsnn.snn.graph import Graph, GraphModel  # noqa: E402
from rtsnn.snn.graph_network import GraphNetwork  # noqa: E402

T = 1000
N_IN = 6
DT_S = 1e-3


def _norse_net(seed, first):
    torch.manual_seed(seed)
    fc1, fc2, fc3 = torch.nn.Linear(N_IN, 20), torch.nn.Linear(20, 12), torch.nn.Linear(12, 3)
    with torch.no_grad():  # moderate rates
        fc1.weight.mul_(30.0 if first == "lifbox" else 3.0)
        fc1.bias.mul_(5.0 if first == "lifbox" else 0.5)
        fc2.weight.mul_(12.0)
        fc2.bias.add_(0.3)
    cell = norse.LIFBoxCell() if first == "lifbox" else norse.IAFCell()
    return norse.SequentialState(fc1, cell, fc2, norse.LIFCell(), fc3, norse.LIBoxCell())


def _norse_run(m, xs):
    """Norse's own step-by-step forward: spikes and membranes of the two spiking layers, the LI value."""
    states = [None] * len(m)
    out = {"1.z": [], "1.v": [], "3.z": [], "3.v": [], "5.y": []}
    with torch.no_grad():
        for x in xs:
            h = torch.from_numpy(x[None])
            for i, layer in enumerate(m):
                if isinstance(layer, torch.nn.Linear):
                    h = layer(h)
                else:
                    h, states[i] = layer(h, states[i])
                    if i in (1, 3):
                        out[f"{i}.z"].append(h[0].numpy().copy())
                        out[f"{i}.v"].append(states[i].v[0].numpy().copy())
                    else:
                        out[f"{i}.y"].append(h[0].numpy().copy())
    return {k: np.array(v) for k, v in out.items()}


def _rtsnn_run(gm, xs, keys):
    net = GraphNetwork(gm)
    st = net.state_arrays()
    out = {k: [] for k in keys}
    buf = np.zeros(gm.n_in, np.float32)
    for x in xs:
        buf[:] = x
        net.step(buf)
        for k in keys:
            out[k].append(st[k].copy())
    return {k: np.array(v) for k, v in out.items()}


def _close(a, ref, floor):
    err = np.max(np.abs(a - ref) / np.maximum(np.abs(ref), floor))
    assert err <= 1e-5, err


@pytest.mark.parametrize("first", ["lifbox", "iaf"])
def test_norse_network_exported_by_norse_runs_identically_in_rtsnn(first):
    m = _norse_net(4, first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = norse.to_nir(m, torch.zeros(1, N_IN), dt=DT_S)
    kinds = {k: type(v).__name__ for k, v in g.nodes.items()}
    assert kinds["1"] == ("LIF" if first == "lifbox" else "IF") and kinds["3"] == "CubaLIF" and kinds["5"] == "LI"
    if first == "lifbox":  # Norse's exporter writes dt / tau_inv (= dt * tau), not tau
        assert float(np.asarray(g.nodes["1"].tau)) == pytest.approx(DT_S * 1e-2, rel=1e-6)
    with pytest.raises(ValueError, match="pass convention="):
        from_nir(g, dt_s=DT_S)
    gm, _ = from_nir(g, convention="norse", dt_s=DT_S)
    assert [gm.graph.nodes[k].reset_at for k in ("1", "3")] == ["now", "now"]
    xs = np.random.default_rng(5).uniform(0.0, 1.0, (T, N_IN)).astype(np.float32)
    ref = _norse_run(m, xs)
    got = _rtsnn_run(gm, xs, list(ref))
    for k in ("1.z", "3.z"):
        assert 0.02 < ref[k].mean() < 0.6, (k, ref[k].mean())
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    for k in ("1.v", "3.v"):
        _close(got[k], ref[k], 1.0)  # v_th = 1
    _close(got["5.y"], ref["5.y"], max(1e-3, float(np.abs(ref["5.y"]).max())))


def _rtsnn_graph(kind, seed, recurrent=False):
    rng = np.random.default_rng(seed)
    common = dict(reset="zero", reset_at="now", spike_if=">")  # what Norse's importer builds
    k = 0.1
    if kind == "LIF":
        hid = N.LIF(tau_mem_s=DT_S / k, gain=k, n=20, **common)  # r = 1: Norse's LIF ignores r
        w_scale = 15.0
    elif kind == "CubaLIF":
        hid = N.CubaLIF(tau_mem_s=DT_S / k, tau_syn_s=DT_S / 0.2, gain=0.1, n=20, **common)
        w_scale = 3.0
    else:
        hid = N.IF(v_th=2.0, gain=1.0, n=20, **common)
        w_scale = 0.8
    nodes = {"input": N.Input(shape=(N_IN,)),
             "w1": N.Affine(weight=rng.normal(0, w_scale, (N_IN, 20)), bias=rng.normal(0, 0.1, 20)),
             "hid": hid, "w2": N.Affine(weight=rng.normal(0, 8.0, (20, 4)), bias=np.zeros(4)),
             "out": N.LIF(tau_mem_s=DT_S / 0.15, gain=0.15, v_th=0.8, n=4, **common),
             "output": N.Output(shape=(4,))}
    edges = [("input", "w1"), ("w1", "hid"), ("hid", "w2"), ("w2", "out"), ("out", "output")]
    if recurrent:
        nodes["w_rec"] = N.Affine(weight=rng.normal(0, 3.0, (20, 20)), bias=np.zeros(20))
        edges += [("hid", "w_rec"), ("w_rec", "hid")]
    return GraphModel(Graph(nodes, edges, dt_s=DT_S, integration="euler"))


@pytest.mark.parametrize("kind", ["LIF", "CubaLIF", "IF"])
def test_rtsnn_graph_loaded_by_norse_from_nir_spikes_identically(kind):
    gm = _rtsnn_graph(kind, seed=11)
    g = to_nir(gm, convention="norse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = norse.from_nir(g, dt=DT_S)
    xs = np.random.default_rng(12).uniform(0.0, 1.0, (T, N_IN)).astype(np.float32)
    zs, state = [], None
    with torch.no_grad():
        for x in xs:
            o, state = net(torch.from_numpy(x[None]), state)
            zs.append(o[0].numpy().copy())
    got = _rtsnn_run(gm, xs, ["hid.z", "out.z"])
    assert 0.02 < got["hid.z"].mean() < 0.7 and 0.02 < got["out.z"].mean() < 0.7
    np.testing.assert_array_equal(np.array(zs), got["out.z"])


def test_norse_from_nir_cannot_run_a_recurrent_graph():
    """Norse's importer (nirtorch.load's GraphExecutor) does not execute a cycle: for a graph
    with a recurrent projection its output is the hidden layer's, not the Output node's."""
    gm = _rtsnn_graph("LIF", seed=11, recurrent=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = norse.from_nir(to_nir(gm, convention="norse"), dt=DT_S)
        with torch.no_grad():
            o, _ = net(torch.zeros(1, N_IN), None)
    assert gm.n_out == 4 and tuple(o.shape) == (1, 20)
