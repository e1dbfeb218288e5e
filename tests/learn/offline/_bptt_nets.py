"""Layered BPTT networks for the tests: ``net(n_in, layers, recurrent, n_out, **kw)`` gives
``(graph, options)`` -- ``kw`` holds keywords of
:func:`rtsnn.learn.offline.bptt_graph.layered_graph` (dt_s, model, tau_mem_s, ...) and the
fields of :class:`rtsnn.learn.offline.bptt_graph.BpttOptions` (surrogate, ...)."""

from __future__ import annotations

import numpy as np

from rtsnn.learn.offline.bptt_graph import BpttOptions, compile_graph, layered_graph

OPTION_KEYS = ("surrogate", "surrogate_param", "detach_reset", "max_delay_steps")


def net(n_in, layers, recurrent, n_out=None, **kw):
    options = BpttOptions(**{k: kw.pop(k) for k in OPTION_KEYS if k in kw})
    return layered_graph(n_in, layers, recurrent, n_out, **kw), options


def plan(graph, options=None):
    """The engine's per-layer view (sizes, decays, thresholds, rho, beta, n_ref, ...)."""
    return compile_graph(graph, options)


def latency_task(n, seed, *, steps, early, late):
    """``(x, y)``: class = which of 3 input pairs fires early (latency code), ``n`` samples of
    ``steps`` ticks and 6 inputs; the class's pair fires once at a tick drawn from ``early``
    ``[lo, hi)``, the others once from ``late``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = np.zeros((n, steps, 6), np.float32)
    for i in range(n):
        for ch in range(6):
            t = rng.integers(*early) if ch // 2 == y[i] else rng.integers(*late)
            x[i, t, ch] = 1.0
    return x, y
