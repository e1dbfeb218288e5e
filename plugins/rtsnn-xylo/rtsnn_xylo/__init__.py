"""rtsnn plugin: SynSense Xylo (XyloAudio 2) backend, bit-accurate integer simulation,
quantisation, design-rule check and fit report.

Public API: :func:`map_model` (float rtsnn Model -> :class:`XyloConfig`), :func:`map_graph`
(a model graph, e.g. CubaLIF layers, -> :class:`XyloConfig`, or refused naming node and limit),
:func:`check`/:func:`require_fit` (DRC), :class:`IntNetwork` (numba integer dynamics),
:class:`XyloBackend` (the ``xylo`` backend), :func:`fit_report`.
"""

from rtsnn_xylo.drc import DrcError, DrcReport, Violation, check, require_fit
from rtsnn_xylo.graph_map import map_graph
from rtsnn_xylo.int_kernels import IntNetwork
from rtsnn_xylo.spec import XYLO2, XyloConfig, XyloLimits

__all__ = ["DrcError", "DrcReport", "Violation", "check", "require_fit", "map_graph", "IntNetwork", "XYLO2",
           "XyloConfig", "XyloLimits"]
