"""Kernels of the convolutional node kinds (``Conv2d``, ``SumPool2d``, ``AvgPool2d``): numba,
float32, no allocation per tick, each with a plain-numpy twin (``*_np``) the tests compare bit
for bit. The graph compiler (:mod:`rtsnn.snn.graph_network`) asks this module for them through
:func:`~rtsnn.snn.graph_network.register_compiler`; every node compiles to **one** op that
writes the node's whole output (it initialises the output itself, so no separate fill op).

Maps are (channels, height, width) stored flat in C order. With ``(sy, sx)`` the stride,
``(py, px)`` the zero padding and ``(dy, dx)`` the dilation, output ``(co, oy, ox)`` reads input
rows ``iy = oy sy - py + ky dy`` and columns ``ix = ox sx - px + kx dx`` (taps outside the map
read zero)::

    Conv2d     y[co, oy, ox] = b[co] + sum_{ci in group(co), ky, kx} W[co, ci - g0, ky, kx] x[ci, iy, ix]
    SumPool2d  y[c, oy, ox]  = sum_{ky < kh, kx < kw} x[c, iy, ix]                       (dilation 1)
    AvgPool2d  y[c, oy, ox]  = SumPool2d / (kh kw)            (padding counted: torch's default)

Two forms with **bit-identical** results (no ``fastmath``, so LLVM neither reorders the sums
nor contracts them into FMAs):

* *dense* (gather): per output element, start from the bias (``+0`` for pools), then add the
  taps in increasing ``(ci, ky, kx)``;
* *event-driven* (scatter): write the bias (or ``+0``) to every output, then visit the nonzero
  inputs in increasing flat index ``(ci, iy, ix)`` and add each one's products to the outputs
  it reaches. For one output element and one input channel, ``iy`` grows with ``ky`` and ``ix``
  with ``kx``, so its additions come in exactly the dense order; the dense form's extra terms
  are products with zero (``+-0``, weights being finite), which leave a float sum unchanged
  because the accumulator is never ``-0``: it starts from ``bias + 0`` (which turns a ``-0``
  bias into ``+0``) and ``a + b`` is ``-0`` only when both are.

The scatter finds the outputs an input reaches in a table built once per node
(:func:`reach_table`: per input row the ``(oy, ky)`` pairs, per column the ``(ox, kx)`` pairs),
so a tick does no integer division per event.

Propagation (``mode``): ``dense``, ``event`` or ``auto``. ``auto`` decides each tick from the
input itself (this module is not told whether the source spikes): it counts the nonzero inputs
and scatters when they are at most :data:`AUTO_EVENT_DENSITY` of the input, else gathers.
Scatter work grows with the number of nonzero inputs and gather work with the map size, and
the two forms give the same bits, so the choice only changes the time a tick takes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from rtsnn.snn.graph_network import register_compiler
from rtsnn.snn.nodes import AvgPool2d, Conv2d, GraphError, Node, SumPool2d

MODE_DENSE, MODE_EVENT, MODE_AUTO = 0, 1, 2
MODES = {"dense": MODE_DENSE, "event": MODE_EVENT, "auto": MODE_AUTO}
# 'auto' scatters when at most this fraction of the inputs is nonzero (a scattered tap costs
# a few more integer operations than a gathered one, so the break-even is below 1/2)
AUTO_EVENT_DENSITY = 0.25

# slots of the int64 geometry vector every kernel takes (one array instead of 16 arguments:
# each argument costs the call from Python time)
(G_CIN, G_H, G_W, G_COUT, G_OH, G_OW, G_KH, G_KW, G_SY, G_SX, G_PY, G_PX, G_DY, G_DX, G_GROUPS, G_MODE,
 G_AVG, G_TCOL) = range(18)
N_GEOM = 18


def geometry(node: Node, propagation: str = "dense") -> np.ndarray:
    """The int64 geometry vector (slots ``G_*``) of a Conv2d / SumPool2d / AvgPool2d node."""
    if propagation not in MODES:
        raise GraphError(f"node {node.name!r}: propagation must be one of {', '.join(MODES)}, got {propagation!r}")
    if not isinstance(node, (Conv2d, SumPool2d)):
        raise GraphError(f"node {node.name!r}: kind {node.kind} is not a convolution or pooling node")
    g = np.zeros(N_GEOM, np.int64)
    c_in, h, w = node.input_shape  # type: ignore[attr-defined]
    c_out, oh, ow = node.output_shape()
    g[G_CIN], g[G_H], g[G_W], g[G_COUT], g[G_OH], g[G_OW] = c_in, h, w, c_out, oh, ow
    if isinstance(node, Conv2d):
        g[G_KH], g[G_KW] = node.weight.shape[2:]
        g[G_DY], g[G_DX] = node.dilation
        g[G_GROUPS] = node.groups
    else:
        g[G_KH], g[G_KW] = node.kernel_size
        g[G_DY], g[G_DX] = 1, 1
        g[G_GROUPS] = c_in
        g[G_AVG] = 1 if isinstance(node, AvgPool2d) else 0
    g[G_SY], g[G_SX] = node.stride  # type: ignore[attr-defined]
    g[G_PY], g[G_PX] = node.padding  # type: ignore[attr-defined]
    g[G_MODE] = MODES[propagation]
    g[G_TCOL] = h + 1 + 2 * _reach_count(h, oh, int(g[G_KH]), int(g[G_SY]), int(g[G_PY]), int(g[G_DY]))
    return g


def _reach(size: int, out_size: int, k: int, stride: int, pad: int, dil: int) -> list[list[int]]:
    """Per input index ``i``: the flat pairs ``(o, t)`` with ``i = o stride - pad + t dil``, ``0 <= o <
    out_size``, ``0 <= t < k`` (the outputs input ``i`` reaches through tap ``t``)."""
    pairs: list[list[int]] = [[] for _ in range(size)]
    for o in range(out_size):
        for t in range(k):
            i = o * stride - pad + t * dil
            if 0 <= i < size:
                pairs[i] += [o, t]
    return pairs


def _reach_count(size: int, out_size: int, k: int, stride: int, pad: int, dil: int) -> int:
    return sum(len(p) // 2 for p in _reach(size, out_size, k, stride, pad, dil))


def reach_table(geom: np.ndarray) -> np.ndarray:
    """The int64 table the event-driven kernels scatter with (no division per event): for rows,
    ``tab[iy] .. tab[iy + 1]`` delimit the flat ``(oy, ky)`` pairs input row ``iy`` reaches;
    from ``geom[G_TCOL]`` on, the same for columns (``(ox, kx)`` pairs)."""
    g = [int(v) for v in geom]
    rows = _reach(g[G_H], g[G_OH], g[G_KH], g[G_SY], g[G_PY], g[G_DY])
    cols = _reach(g[G_W], g[G_OW], g[G_KW], g[G_SX], g[G_PX], g[G_DX])
    tab: list[int] = []
    for pairs in (rows, cols):
        base = len(tab) + len(pairs) + 1
        starts = [base]
        for p in pairs:
            starts.append(starts[-1] + len(p))
        tab += starts
        for p in pairs:
            tab += p
    out = np.asarray(tab, np.int64)
    if len(rows) + 1 + sum(len(p) for p in rows) != g[G_TCOL]:
        raise AssertionError("reach_table: column offset disagrees with geometry()")  # pragma: no cover
    return out


# ---------------------------------------------------------------------------- numba kernels
@njit(cache=True, nogil=True)
def _use_event(x: np.ndarray, mode: int) -> bool:
    if mode != MODE_AUTO:
        return mode == MODE_EVENT
    nnz = 0
    for j in range(x.shape[0]):
        nnz += np.int64(x[j] != 0)
    return nnz <= AUTO_EVENT_DENSITY * x.shape[0]


@njit(cache=True, nogil=True)
def conv2d_step(x: np.ndarray, out: np.ndarray, w: np.ndarray, bias: np.ndarray, geom: np.ndarray,
                tab: np.ndarray) -> int:
    """Write ``Conv2d(x)`` (weight ``w`` (c_out, c_in/groups, kh, kw), ``bias`` (c_out,)) into
    ``out``, dense or event-driven per ``geom[G_MODE]``; ``tab`` is :func:`reach_table`'s
    table of the output rows / columns each input row / column reaches. Returns 1 when this
    tick scattered from the nonzero inputs, 0 when it gathered."""
    c_in, h, wd = geom[G_CIN], geom[G_H], geom[G_W]
    c_out, oh, ow = geom[G_COUT], geom[G_OH], geom[G_OW]
    kh, kw, sy, sx = geom[G_KH], geom[G_KW], geom[G_SY], geom[G_SX]
    py, px, dy, dx, groups = geom[G_PY], geom[G_PX], geom[G_DY], geom[G_DX], geom[G_GROUPS]
    cig = c_in // groups
    cog = c_out // groups
    ohw = oh * ow
    zero = np.float32(0.0)
    if not _use_event(x, geom[G_MODE]):
        for co in range(c_out):
            ci0 = (co // cog) * cig
            b = bias[co] + zero
            for oy in range(oh):
                for ox in range(ow):
                    acc = b
                    for cl in range(cig):
                        xc = (ci0 + cl) * h
                        for ky in range(kh):
                            iy = oy * sy - py + ky * dy
                            if iy < 0 or iy >= h:
                                continue
                            row = (xc + iy) * wd
                            for kx in range(kw):
                                ix = ox * sx - px + kx * dx
                                if ix < 0 or ix >= wd:
                                    continue
                                acc += w[co, cl, ky, kx] * x[row + ix]
                    out[co * ohw + oy * ow + ox] = acc
        return 0
    for co in range(c_out):
        b = bias[co] + zero
        for k in range(co * ohw, (co + 1) * ohw):
            out[k] = b
    tc = geom[G_TCOL]
    for ci in range(c_in):
        grp = ci // cig
        cl = ci - grp * cig
        co0 = grp * cog
        for iy in range(h):
            r0, r1 = tab[iy], tab[iy + 1]
            if r0 == r1:
                continue  # this input row reaches no output
            xrow = (ci * h + iy) * wd
            for ix in range(wd):
                s = x[xrow + ix]
                if s == 0:
                    continue
                c0, c1 = tab[tc + ix], tab[tc + ix + 1]
                for rp in range(r0, r1, 2):
                    oy, ky = tab[rp], tab[rp + 1]
                    for cp in range(c0, c1, 2):
                        ox, kx = tab[cp], tab[cp + 1]
                        base = oy * ow + ox
                        for co in range(co0, co0 + cog):
                            out[co * ohw + base] += w[co, cl, ky, kx] * s
    return 1


@njit(cache=True, nogil=True)
def pool2d_step(x: np.ndarray, out: np.ndarray, geom: np.ndarray, tab: np.ndarray) -> int:
    """Write ``SumPool2d(x)`` (``geom[G_AVG] == 0``) or ``AvgPool2d(x)`` into ``out``, dense or
    event-driven per ``geom[G_MODE]`` (``tab``: :func:`reach_table`); returns 1 when it
    scattered, 0 when it gathered."""
    c, h, wd = geom[G_CIN], geom[G_H], geom[G_W]
    oh, ow = geom[G_OH], geom[G_OW]
    kh, kw, sy, sx, py, px = geom[G_KH], geom[G_KW], geom[G_SY], geom[G_SX], geom[G_PY], geom[G_PX]
    avg = geom[G_AVG] != 0
    div = np.float32(kh * kw)
    ohw = oh * ow
    zero = np.float32(0.0)
    if not _use_event(x, geom[G_MODE]):
        for ch in range(c):
            for oy in range(oh):
                for ox in range(ow):
                    acc = zero
                    for ky in range(kh):
                        iy = oy * sy - py + ky
                        if iy < 0 or iy >= h:
                            continue
                        row = (ch * h + iy) * wd
                        for kx in range(kw):
                            ix = ox * sx - px + kx
                            if ix < 0 or ix >= wd:
                                continue
                            acc += x[row + ix]
                    out[ch * ohw + oy * ow + ox] = acc / div if avg else acc
        return 0
    for k in range(out.shape[0]):
        out[k] = zero
    tc = geom[G_TCOL]
    for ch in range(c):
        for iy in range(h):
            r0, r1 = tab[iy], tab[iy + 1]
            if r0 == r1:
                continue
            xrow = (ch * h + iy) * wd
            for ix in range(wd):
                s = x[xrow + ix]
                if s == 0:
                    continue
                c0, c1 = tab[tc + ix], tab[tc + ix + 1]
                for rp in range(r0, r1, 2):
                    orow = ch * ohw + tab[rp] * ow
                    for cp in range(c0, c1, 2):
                        out[orow + tab[cp]] += s
    if avg:
        for k in range(out.shape[0]):
            out[k] = out[k] / div
    return 1


# ---------------------------------------------------------------------------- numpy twins
def _padded(x: np.ndarray, c: int, h: int, w: int, py: int, px: int) -> np.ndarray:
    xp = np.zeros((c, h + 2 * py, w + 2 * px), np.float32)
    xp[:, py:py + h, px:px + w] = x.reshape(c, h, w)
    return xp


def _taps(xp: np.ndarray, ky: int, kx: int, geom: np.ndarray) -> np.ndarray:
    """The (c, oh, ow) input values tap ``(ky, kx)`` reads for every output position."""
    oh, ow, sy, sx, dy, dx = (int(geom[k]) for k in (G_OH, G_OW, G_SY, G_SX, G_DY, G_DX))
    y0, x0 = ky * dy, kx * dx
    return xp[:, y0:y0 + (oh - 1) * sy + 1:sy, x0:x0 + (ow - 1) * sx + 1:sx]


def conv2d_step_np(x: np.ndarray, out: np.ndarray, w: np.ndarray, bias: np.ndarray, geom: np.ndarray,
                   tab: Any = None) -> int:
    """Numpy twin of :func:`conv2d_step` (same float32 operations in the same order per output
    element; padded taps add ``w * 0``, which changes nothing). Always gathers; returns 0."""
    f = np.float32
    c_in, h, wd, c_out, oh, ow = (int(geom[k]) for k in (G_CIN, G_H, G_W, G_COUT, G_OH, G_OW))
    kh, kw, groups = int(geom[G_KH]), int(geom[G_KW]), int(geom[G_GROUPS])
    cig, cog = c_in // groups, c_out // groups
    xp = _padded(x, c_in, h, wd, int(geom[G_PY]), int(geom[G_PX]))
    acc = np.empty((c_out, oh, ow), f)
    acc[...] = (bias.astype(f) + f(0.0))[:, None, None]
    for g in range(groups):
        cos = slice(g * cog, (g + 1) * cog)
        for cl in range(cig):
            for ky in range(kh):
                for kx in range(kw):
                    tap = _taps(xp[g * cig + cl:g * cig + cl + 1], ky, kx, geom)  # (1, oh, ow)
                    acc[cos] = acc[cos] + w[cos, cl, ky, kx][:, None, None] * tap
    out[...] = acc.ravel()
    return 0


def pool2d_step_np(x: np.ndarray, out: np.ndarray, geom: np.ndarray, tab: Any = None) -> int:
    """Numpy twin of :func:`pool2d_step` (same additions in the same order). Returns 0."""
    f = np.float32
    c, h, wd, oh, ow = (int(geom[k]) for k in (G_CIN, G_H, G_W, G_OH, G_OW))
    kh, kw = int(geom[G_KH]), int(geom[G_KW])
    xp = _padded(x, c, h, wd, int(geom[G_PY]), int(geom[G_PX]))
    acc = np.zeros((c, oh, ow), f)
    for ky in range(kh):
        for kx in range(kw):
            acc = acc + _taps(xp, ky, kx, geom)
    if geom[G_AVG]:
        acc = acc / f(kh * kw)
    out[...] = acc.ravel()
    return 0


# ---------------------------------------------------------------------------- graph compiler
def _check_buffers(node: Node, inp: np.ndarray, out: np.ndarray) -> None:
    # the compiled entry the graph binds does not check its arguments, so check them once here
    for what, arr, n in (("input", inp, node.input_size()), ("output", out, node.output_size())):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.shape != (n,) \
                or not arr.flags.c_contiguous:
            raise GraphError(f"node {node.name!r}: {what} buffer must be float32 C-contiguous of shape ({n},), "
                             f"got {getattr(arr, 'dtype', type(arr).__name__)} {getattr(arr, 'shape', None)}")


def compile_conv2d(node: Node, inp: np.ndarray, out: np.ndarray, propagation: str) -> list[tuple[Any, tuple]]:
    """One op writing ``Conv2d`` node ``node``'s output into ``out`` from ``inp``."""
    _check_buffers(node, inp, out)
    geom = geometry(node, propagation)
    return [(conv2d_step, (inp, out, node.weight, node.bias, geom, reach_table(geom)))]  # type: ignore[attr-defined]


def compile_pool2d(node: Node, inp: np.ndarray, out: np.ndarray, propagation: str) -> list[tuple[Any, tuple]]:
    """One op writing a ``SumPool2d`` / ``AvgPool2d`` node's output into ``out`` from ``inp``."""
    _check_buffers(node, inp, out)
    geom = geometry(node, propagation)
    return [(pool2d_step, (inp, out, geom, reach_table(geom)))]


register_compiler("Conv2d", compile_conv2d)
register_compiler("SumPool2d", compile_pool2d)
register_compiler("AvgPool2d", compile_pool2d)
