"""Kernels of the convolutional node kinds (Conv2d, SumPool2d, AvgPool2d): placeholder until
they are written; the graph compiler asks this module for them."""

from __future__ import annotations

from rtsnn.snn.graph_network import register_compiler
from rtsnn.snn.nodes import GraphError


def _missing(node, inp, out, propagation):
    raise GraphError(f"node {node.name!r}: kind {node.kind} has no kernel yet")


for _kind in ("Conv2d", "SumPool2d", "AvgPool2d"):
    register_compiler(_kind, _missing)
