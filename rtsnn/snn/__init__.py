"""The SNN model: the model graph (node kinds, :class:`Graph`, :class:`GraphModel`), its
compiled runner (:class:`GraphNetwork`, :func:`build_network`), the single-layer :class:`Model`
(LIF/ALIF + LI nodes and weights) with its fused :class:`Network`, numba kernels and model files.
See :mod:`rtsnn.snn.graph` for the tick's semantics and :mod:`rtsnn.snn.neuron_kernels` /
:mod:`rtsnn.snn.kernels` for the equations."""

from rtsnn.snn.graph import Graph, GraphModel, graph_from_model, model_from_graph
from rtsnn.snn.graph_network import GraphNetwork, build_network, simulate
from rtsnn.snn.model_file import (FORMAT, FORMAT_VERSION, ModelFileError, load_graph_model, load_model,
                                  read_header, save_model)
from rtsnn.snn.network import Network
from rtsnn.snn.nodes import (ALIF, IF, KINDS, LI, LIF, Affine, AvgPool2d, Conv2d, CubaLIF, Delay, Flatten,
                             GraphError, Input, Linear, Node, Output, SumPool2d)
from rtsnn.snn.params import (LayerConstants, Model, NetworkState, Weights, layer_constants, layer_from_config,
                              single_layer)

__all__ = ["ALIF", "FORMAT", "FORMAT_VERSION", "IF", "KINDS", "LI", "LIF", "Affine", "AvgPool2d", "Conv2d",
           "CubaLIF", "Delay", "Flatten", "Graph", "GraphError", "GraphModel", "GraphNetwork", "Input", "Linear",
           "LayerConstants", "Model", "ModelFileError", "Network", "NetworkState", "Node", "Output", "SumPool2d",
           "Weights", "build_network", "graph_from_model", "layer_constants", "layer_from_config", "load_graph_model",
           "load_model", "model_from_graph", "read_header", "save_model", "simulate", "single_layer"]
