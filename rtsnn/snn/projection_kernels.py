"""The graph's projection kernels (numba, float32, no allocation), each with a plain-numpy twin
(``*_np``) the tests compare bit for bit: :func:`project` adds one fully connected projection
into an accumulator in one call (what was a fill, a propagation and a bias call), and
:func:`assign_sum` starts an accumulator from a plain edge. The row kernels they use, dense and
event-driven with bit-identical results, are :mod:`rtsnn.snn.kernels`' ``propagate_*``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rtsnn.snn.kernels import CNT_DENSE, CNT_EVENT, propagate_dense, propagate_event


@njit(cache=True, nogil=True)
def assign_sum(src: np.ndarray, acc: np.ndarray) -> None:
    """``acc = 0 + src``: ``neuron_kernels.fill`` with zero then ``add_into`` in one call (the ``+0``
    keeps the bits of that pair: a ``-0`` input gives ``+0``)."""
    zero = np.float32(0.0)
    for i in range(acc.shape[0]):
        acc[i] = zero + src[i]


def assign_sum_np(src, acc) -> None:
    acc[...] = (np.float32(0.0) + src).astype(np.float32)


# slots of the int64 control vector of project
C_EVENT, C_FILL, C_BIAS = range(3)
N_CONTROL = 3


@njit(cache=True, nogil=True)
def project(src: np.ndarray, w: np.ndarray, acc: np.ndarray, bias: np.ndarray, ctl: np.ndarray,
            counters: np.ndarray) -> None:
    """One projection into an accumulator in one call: ``acc = 0`` when ``ctl[C_FILL]``, then
    ``acc += W^T src`` (``w`` (n_src, n_acc), row by row in increasing order; event-driven,
    skipping ``src[j] == 0``, when ``ctl[C_EVENT]``, else dense: bit-identical either way, see
    :mod:`rtsnn.snn.kernels`), then ``acc += bias`` when ``ctl[C_BIAS]``. Adds one to
    ``counters[CNT_EVENT]`` or ``counters[CNT_DENSE]`` (the graph's propagation counters)."""
    if ctl[C_FILL] != 0:
        zero = np.float32(0.0)
        for i in range(acc.shape[0]):
            acc[i] = zero
    if ctl[C_EVENT] != 0:
        propagate_event(src, w, acc)
        counters[CNT_EVENT] += 1
    else:
        propagate_dense(src, w, acc)
        counters[CNT_DENSE] += 1
    if ctl[C_BIAS] != 0:
        for i in range(acc.shape[0]):
            acc[i] += bias[i]


def project_np(src, w, acc, bias, ctl, counters) -> None:
    """Numpy twin of :func:`project` (always row by row over every source entry; the products
    with zero that the event-driven form skips leave a float sum unchanged)."""
    f = np.float32
    if ctl[C_FILL]:
        acc[...] = 0
    for j in range(src.shape[0]):
        acc[...] = (acc + w[j] * src[j]).astype(f)
    counters[CNT_EVENT if ctl[C_EVENT] else CNT_DENSE] += 1
    if ctl[C_BIAS]:
        acc[...] = (acc + bias).astype(f)
