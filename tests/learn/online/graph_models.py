"""Multi-layer model graphs for the learner and session tests (not a test module).

``deep_graph()``: input (n_in) -> w0 -> l0 CubaLIF (n0) -> w1 -> l1 (n1, LIF or ALIF, recurrent
through r1) -> trace LI -> w_out Affine -> output (n_out). Switches build the variants a
learner refuses."""

from __future__ import annotations

import numpy as np

from rtsnn.snn.graph import Graph, GraphModel
from rtsnn.snn.nodes import ALIF, LI, LIF, Affine, CubaLIF, Input, Linear, Output


def deep_graph(n_in: int = 96, n0: int = 128, n1: int = 128, n_out: int = 2, *, dt_s: float = 0.01,
               seed: int = 0, last: str = "LIF", recurrent: bool = True, trace: bool = True,
               tau_mem_s: float | np.ndarray = 0.05, readout_scale: float = 0.0) -> GraphModel:
    rng = np.random.default_rng(seed)
    w_rec = rng.normal(0.0, 0.3 / np.sqrt(n1), (n1, n1))
    np.fill_diagonal(w_rec, 0.0)
    common = {"tau_mem_s": tau_mem_s, "n": n1}
    layer = {"LIF": lambda: LIF(**common), "CubaLIF": lambda: CubaLIF(tau_syn_s=0.02, **common),
             "ALIF": lambda: ALIF(tau_adapt_s=0.2, beta_adapt=0.3, **common)}[last]()
    nodes = {"input": Input(shape=(n_in,)),
             "w0": Linear(weight=rng.normal(0.0, 1.0, (n_in, n0)) / np.sqrt(n_in)),
             "l0": CubaLIF(tau_mem_s=0.05, tau_syn_s=0.02, n=n0),
             "w1": Linear(weight=rng.normal(0.0, 2.0, (n0, n1)) / np.sqrt(n0)),
             "l1": layer,
             "w_out": Affine(weight=rng.normal(0.0, readout_scale, (n1, n_out)), bias=np.zeros(n_out)),
             "output": Output(shape=(n_out,))}
    edges = [("input", "w0"), ("w0", "l0"), ("l0", "w1"), ("w1", "l1")]
    if recurrent:
        nodes["r1"] = Linear(weight=w_rec)
        edges += [("l1", "r1"), ("r1", "l1")]
    if trace:
        nodes["trace"] = LI(tau_s=0.1, n=n1)
        edges += [("l1", "trace"), ("trace", "w_out")]
    else:
        edges += [("l1", "w_out")]
    edges += [("w_out", "output")]
    return GraphModel(Graph(nodes, edges, dt_s=dt_s), output_labels=["vx", "vy"][:n_out] if n_out <= 2 else None,
                      output_units=["cm/s"] * n_out if n_out <= 2 else None)
