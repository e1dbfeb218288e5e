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


def draw_layer_weights(params, spec, rng, *, w_mean, w_std=0.6, r_std=0.3, per_layer=None):
    """Into ``params``, layer by layer: feed-forward weights ``w<l>`` ~ N(w_mean, w_std), recurrent
    ones ``r<l>`` ~ N(0, r_std) without self-connections (recurrent layers of ``spec`` only), then
    ``per_layer(l, n)`` for more draws of that layer (the draws stay in this order)."""
    n_prev = spec.n_in
    for l, n in enumerate(spec.layers):
        params[f"w{l}"] = rng.normal(w_mean, w_std, (n_prev, n))
        if spec.recurrent[l]:
            r = rng.normal(0.0, r_std, (n, n))
            np.fill_diagonal(r, 0.0)
            params[f"r{l}"] = r
        if per_layer is not None:
            per_layer(l, n)
        n_prev = n
    return params


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
