"""Cross-check against snnTorch both ways, 1000 ticks each (docs/nir.md, "snnTorch").

snnTorch -> NIR -> rtsnn: networks of ``nn.Linear`` and ``Leaky`` / ``Synaptic`` / ``RLeaky`` /
``RSynaptic`` (all-to-all linear recurrence), reset by subtraction and to zero, exported with
snnTorch's own ``export_to_nir``, imported with ``convention='snntorch'`` and run by
``GraphNetwork``: every layer's spikes equal snnTorch's forward pass tick by tick, membranes
within 1e-5 of max(|v|, v_th).

rtsnn -> NIR -> snnTorch: graphs written by ``to_nir(convention='snntorch')`` loaded with
snnTorch's ``import_from_nir`` (feed-forward); a recurrent graph with snnTorch's own node
converter run by nirtorch, because ``import_from_nir``'s RNN sub-graph rewrite routes the
layer's input through ``W_rec`` (snntorch/import_nir.py, ``_create_rnn_subgraph``:
``(f"{sg_key}.input", w_nk)``); the last test shows that departure.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import import_or_skip

nir = import_or_skip("nir", reason="needs `pip install nir`")
torch = import_or_skip("torch", reason="needs torch (CPU)")
snn = import_or_skip("snntorch", reason="needs snntorch")
nirtorch = import_or_skip("nirtorch", reason="snnTorch's NIR export/import needs `pip install nirtorch`")

from rtsnn.interop.nir import from_nir, to_nir  # noqa: E402
from rtsnn.snn import nodes as N  # noqa: E402
from rtsnn.snn.graph import Graph, GraphModel  # noqa: E402
from rtsnn.snn.graph_network import GraphNetwork  # noqa: E402

T = 1000
N_IN, N_HID, N_OUT = 6, 24, 5
DT_S = 1e-3


def _per_neuron(value, n):
    # snnTorch's export needs per-neuron tensors: a scalar beta gives a NIR LIF of shape [] that
    # nir's infer_types refuses (docs/nir.md)
    return torch.full((n,), float(value))


def _snntorch_net(kind, mech, seed):
    torch.manual_seed(seed)
    p = lambda v, n=N_HID: _per_neuron(v, n)  # noqa: E731
    kw = dict(threshold=p(1.0), init_hidden=True, reset_mechanism=mech)
    if kind == "Leaky":
        hid = snn.Leaky(beta=p(0.9), **kw)
    elif kind == "Synaptic":
        hid = snn.Synaptic(alpha=p(0.75), beta=p(0.9), **kw)
    elif kind == "RLeaky":
        hid = snn.RLeaky(beta=p(0.9), linear_features=N_HID, all_to_all=True, **kw)
    else:
        hid = snn.RSynaptic(alpha=p(0.75), beta=p(0.9), linear_features=N_HID, all_to_all=True, **kw)
    out = snn.Leaky(beta=p(0.85, N_OUT), threshold=p(0.8, N_OUT), init_hidden=True, output=True,
                    reset_mechanism=mech)
    fc1, fc2 = torch.nn.Linear(N_IN, N_HID), torch.nn.Linear(N_HID, N_OUT)
    scale = {"Leaky": 0.9, "Synaptic": 0.35, "RLeaky": 0.9, "RSynaptic": 0.35}[kind]
    with torch.no_grad():  # moderate rates: about 5-40 % of ticks spike
        fc1.weight.mul_(scale * 2.0)
        fc1.bias.mul_(scale)
        fc2.weight.mul_(1.5)
        if kind.startswith("R"):
            hid.recurrent.weight.mul_(0.4)
    return torch.nn.Sequential(fc1, hid, fc2, out), hid, out


def _torch_run(net, layers, xs, state_names):
    """snnTorch's own forward, one tick at a time: spikes and membranes of each layer."""
    for m in net.modules():
        if hasattr(m, "reset_mem"):
            m.reset_mem()
        if hasattr(m, "spk"):
            m.spk = torch.zeros(0)
    zs = {k: [] for k in state_names}
    vs = {k: [] for k in state_names}
    with torch.no_grad():
        for x in xs:
            net(torch.from_numpy(x[None]))
            for k, layer in zip(state_names, layers):
                vs[k].append(layer.mem[0].numpy().copy())
                zs[k].append((layer.mem[0] > layer.threshold).numpy().astype(np.float32)
                             if not hasattr(layer, "spk") or layer.spk.numel() == 0 else layer.spk[0].numpy().copy())
    return {k: np.array(v) for k, v in zs.items()}, {k: np.array(v) for k, v in vs.items()}


def _rtsnn_run(gm, xs, names):
    net = GraphNetwork(gm)
    st = net.state_arrays()
    zs = {k: [] for k in names}
    vs = {k: [] for k in names}
    buf = np.zeros(gm.n_in, np.float32)
    for x in xs:
        buf[:] = x
        net.step(buf)
        for k in names:
            zs[k].append(st[f"{k}.z"].copy())
            vs[k].append(st[f"{k}.v"].copy())
    return {k: np.array(v) for k, v in zs.items()}, {k: np.array(v) for k, v in vs.items()}


def _close(v_rt, v_lib, v_th):
    """Membranes agree within 1e-5 relative (of max(|v|, v_th): near 0 a relative error means nothing)."""
    scale = np.maximum(np.abs(v_lib), v_th)
    err = np.max(np.abs(v_rt - v_lib) / scale)
    assert err <= 1e-5, err


@pytest.mark.parametrize("mech", ["subtract", "zero"])
@pytest.mark.parametrize("kind", ["Leaky", "Synaptic", "RLeaky", "RSynaptic"])
def test_snntorch_network_exported_by_snntorch_runs_identically_in_rtsnn(kind, mech):
    from snntorch.export_nir import export_to_nir

    net, hid, out = _snntorch_net(kind, mech, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = export_to_nir(net, torch.zeros(1, N_IN), ignore_dims=[0])
    lif_names = [k for k, v in g.nodes.items() if isinstance(v, (nir.LIF, nir.CubaLIF))]
    assert len(lif_names) == 2
    with pytest.raises(ValueError, match="pass dt_s"):
        from_nir(g, convention="snntorch")
    gm, _ = from_nir(g, convention="snntorch", dt_s=DT_S, reset="subtract" if mech == "subtract" else None)
    spiking = [k for k in gm.graph.order() if gm.graph.nodes[k].spiking]
    # snnTorch resets at the next tick; Synaptic/RLeaky/RSynaptic's reset to zero clamps that tick
    # (with subtraction 'next_clamp' is the same as 'next')
    assert gm.graph.nodes[spiking[0]].reset_at == ("next" if kind == "Leaky" else "next_clamp")
    assert gm.graph.nodes[spiking[1]].reset_at == "next" and gm.graph.nodes[spiking[1]].spike_if == ">"
    xs = np.random.default_rng(7).uniform(0.0, 1.0, (T, N_IN)).astype(np.float32)
    z_lib, v_lib = _torch_run(net, [hid, out], xs, spiking)
    z_rt, v_rt = _rtsnn_run(gm, xs, spiking)
    for k, th in zip(spiking, (1.0, 0.8)):
        rate = z_lib[k].mean()
        assert 0.02 < rate < 0.6, (k, rate)
        np.testing.assert_array_equal(z_rt[k], z_lib[k], err_msg=k)
        _close(v_rt[k], v_lib[k], th)


def _rtsnn_graph(cuba, recurrent, seed):
    rng = np.random.default_rng(seed)
    common = dict(reset="zero", reset_at="now", spike_if=">")  # what snnTorch's importer builds
    if cuba:
        hid = N.CubaLIF(tau_mem_s=DT_S / 0.1, tau_syn_s=DT_S / 0.25, n=N_HID, **common)
    else:
        hid = N.LIF(tau_mem_s=DT_S / 0.1, n=N_HID, **common)
    nodes = {"input": N.Input(shape=(N_IN,)),
             "w1": N.Affine(weight=rng.normal(0, 0.8 if cuba else 1.5, (N_IN, N_HID)), bias=rng.normal(0, 0.1, N_HID)),
             "hid": hid, "w2": N.Linear(weight=rng.normal(0, 1.0, (N_HID, N_OUT))),
             "out": N.LIF(tau_mem_s=DT_S / 0.15, v_th=0.8, n=N_OUT, **common), "output": N.Output(shape=(N_OUT,))}
    edges = [("input", "w1"), ("w1", "hid"), ("hid", "w2"), ("w2", "out"), ("out", "output")]
    if recurrent:
        nodes["w_rec"] = N.Linear(weight=rng.normal(0, 0.3, (N_HID, N_HID)))
        edges += [("hid", "w_rec"), ("w_rec", "hid")]
    return GraphModel(Graph(nodes, edges, dt_s=DT_S, integration="euler"))


def _torch_module_run(net, xs, stateful):
    zs, state = [], None
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, "reset_mem"):
                m.reset_mem()
        for x in xs:
            o = net(torch.from_numpy(x[None]), state) if stateful else net(torch.from_numpy(x[None]))
            if isinstance(o, tuple):
                o, state = o
            zs.append(o[0].numpy().copy())
    return np.array(zs)


@pytest.mark.parametrize("cuba", [False, True])
def test_rtsnn_graph_loaded_by_snntorch_import_from_nir_spikes_identically(cuba):
    from snntorch.import_nir import import_from_nir

    gm = _rtsnn_graph(cuba, recurrent=False, seed=5)
    g = to_nir(gm, convention="snntorch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = import_from_nir(g)
    hid = [m for m in net.modules() if isinstance(m, (snn.Leaky, snn.Synaptic))][0]
    assert float(hid.beta.flatten()[0]) == np.float32(1 - 0.1)  # the decay comes back bit for bit
    xs = np.random.default_rng(8).uniform(0.0, 1.0, (T, N_IN)).astype(np.float32)
    z_lib = _torch_module_run(net, xs, stateful=False)
    z_rt, _ = _rtsnn_run(gm, xs, ["hid", "out"])
    assert 0.02 < z_rt["hid"].mean() < 0.7 and 0.02 < z_rt["out"].mean() < 0.7
    np.testing.assert_array_equal(z_lib, z_rt["out"])


@pytest.mark.parametrize("cuba", [False, True])
def test_recurrent_rtsnn_graph_runs_identically_with_snntorchs_node_converter(cuba):
    from snntorch import import_nir as sn_imp

    gm = _rtsnn_graph(cuba, recurrent=True, seed=6)
    g = to_nir(gm, convention="snntorch")
    conv = lambda n: sn_imp._nir_to_snntorch_module(n, init_hidden=True)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = nirtorch.nir_to_torch(g, {nir.Linear: conv, nir.Affine: conv, nir.LIF: conv, nir.CubaLIF: conv})
    xs = np.random.default_rng(9).uniform(0.0, 1.0, (T, N_IN)).astype(np.float32)
    z_lib = _torch_module_run(net, xs, stateful=True)
    z_rt, _ = _rtsnn_run(gm, xs, ["hid", "out"])
    assert 0.02 < z_rt["hid"].mean() < 0.7 and 0.02 < z_rt["out"].mean() < 0.7
    np.testing.assert_array_equal(z_lib, z_rt["out"])


def test_snntorch_import_from_nir_reroutes_a_recurrent_layers_input_through_w_rec():
    """The departure the previous test works around, shown on snnTorch's own rewrite."""
    from snntorch.import_nir import _replace_rnn_subgraph_with_nirgraph

    g = to_nir(_rtsnn_graph(False, recurrent=True, seed=6), convention="snntorch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rewritten = _replace_rnn_subgraph_with_nirgraph(g)
    sub = [v for v in rewritten.nodes.values() if isinstance(v, nir.NIRGraph)][0]
    inp = [k for k, v in sub.nodes.items() if isinstance(v, nir.Input)][0]
    targets = [b for a, b in sub.edges if a == inp]
    assert [type(sub.nodes[t]).__name__ for t in targets] == ["Linear"]  # input -> w_rec, not -> the LIF
