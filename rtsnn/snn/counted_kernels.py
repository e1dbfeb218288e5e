"""The convolution and pooling kernels of :mod:`rtsnn.snn.conv_kernels` with the propagation
count a :class:`~rtsnn.snn.graph_network.GraphNetwork` reports (``n_steps_dense`` /
``n_steps_event``): each call adds one to ``counters[CNT_DENSE]`` when the kernel gathered or to
``counters[CNT_EVENT]`` when it scattered from the nonzero inputs (the kernels return 0 / 1 for
exactly that, and ``CNT_DENSE = 0``, ``CNT_EVENT = 1``). The arithmetic is the wrapped kernel's;
the numpy twins are :func:`rtsnn.snn.conv_kernels.conv2d_step_np` / ``pool2d_step_np``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from numba import njit

from rtsnn.snn.conv_kernels import conv2d_step, pool2d_step
from rtsnn.snn.kernels import CNT_DENSE, CNT_EVENT

if (CNT_DENSE, CNT_EVENT) != (0, 1):  # pragma: no cover - the wrappers index counters by the return value
    raise ImportError("counted_kernels expects CNT_DENSE = 0 and CNT_EVENT = 1")


@njit(cache=True, nogil=True)
def conv2d_counted(x: np.ndarray, out: np.ndarray, w: np.ndarray, bias: np.ndarray, geom: np.ndarray,
                   tab: np.ndarray, counters: np.ndarray) -> None:
    """:func:`~rtsnn.snn.conv_kernels.conv2d_step`, counted in ``counters``."""
    counters[conv2d_step(x, out, w, bias, geom, tab)] += 1


@njit(cache=True, nogil=True)
def pool2d_counted(x: np.ndarray, out: np.ndarray, geom: np.ndarray, tab: np.ndarray, counters: np.ndarray) -> None:
    """:func:`~rtsnn.snn.conv_kernels.pool2d_step`, counted in ``counters``."""
    counters[pool2d_step(x, out, geom, tab)] += 1


_COUNTED: dict[Any, Callable[..., None]] = {conv2d_step: conv2d_counted, pool2d_step: pool2d_counted}


def counted(ops: list[tuple[Any, tuple]], counters: np.ndarray) -> list[tuple[Any, tuple]]:
    """``ops`` with every convolution / pooling op replaced by its counted twin (others as given)."""
    return [(_COUNTED[fn], (*args, counters)) if fn in _COUNTED else (fn, args) for fn, args in ops]
