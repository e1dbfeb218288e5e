"""Layered BPTT networks for the tests: ``net(n_in, layers, recurrent, n_out, **kw)`` gives
``(graph, options)`` -- ``kw`` holds keywords of
:func:`rtsnn.learn.offline.bptt_graph.layered_graph` (dt_s, model, tau_mem_s, ...) and the
fields of :class:`rtsnn.learn.offline.bptt_graph.BpttOptions` (surrogate, ...)."""

from __future__ import annotations

from rtsnn.learn.offline.bptt_graph import BpttOptions, compile_graph, layered_graph

OPTION_KEYS = ("surrogate", "surrogate_param", "detach_reset", "max_delay_steps")


def net(n_in, layers, recurrent, n_out=None, **kw):
    options = BpttOptions(**{k: kw.pop(k) for k in OPTION_KEYS if k in kw})
    return layered_graph(n_in, layers, recurrent, n_out, **kw), options


def plan(graph, options=None):
    """The engine's per-layer view (sizes, decays, thresholds, rho, beta, n_ref, ...)."""
    return compile_graph(graph, options)
