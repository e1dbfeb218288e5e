"""The SNN model: settings/weights/state dataclasses, numba kernels, the Network wrapper and
model files. See :mod:`rtsnn.snn.kernels` for the equations."""

from rtsnn.snn.model_file import (FORMAT, FORMAT_VERSION, ModelFileError, load_model, read_header,
                                  save_model)
from rtsnn.snn.network import Network
from rtsnn.snn.params import Model, NetworkState, NeuronSettings, Weights

__all__ = ["FORMAT", "FORMAT_VERSION", "Model", "ModelFileError", "Network", "NetworkState",
           "NeuronSettings", "Weights", "load_model", "read_header", "save_model"]
