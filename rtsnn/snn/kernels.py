"""Numba kernels of one SNN step (float32, write into preallocated buffers, no allocation).

Equations (discrete time, one step of ``dt_s``; ``alpha, rho, kappa`` the per-step decays of
:class:`rtsnn.snn.params.LayerConstants`)::

    I[t] = w_in^T x[t] + w_rec^T z[t-1]                 input current (x: input spike counts)
    v[t] = alpha v[t-1] + I[t] - v_th z[t-1]            membrane, reset by subtraction
    a[t] = rho a[t-1] + z[t-1]                          adaptation (ALIF; stays 0 for LIF)
    A[t] = v_th + beta_adapt a[t]                       threshold (v_th for LIF)
    z[t] = 1 if v[t] >= A[t] and not refractory else 0
    r[t] = kappa r[t-1] + z[t]                          readout trace, per hidden neuron
    y[t] = w_out^T r[t] + b_out                         output

After a spike a neuron is refractory for ``n_ref`` steps (``z = 0`` while its membrane keeps
integrating). The readout is written through the trace ``r`` so ``w_out`` can be replaced at
any moment: with ``b_out = 0`` it equals the usual leaky readout
``y[t] = kappa y[t-1] + w_out^T z[t]``.

Propagation (computing ``I``) has two forms that give bit-identical results: *dense* adds
row j of the weight matrix scaled by ``src[j]`` for every presynaptic j in increasing order;
*event-driven* does the same but skips ``src[j] == 0``. Skipping only drops additions of
``w * 0 = +-0``, which leave a float sum unchanged, and the order of the remaining additions
is the same, so every bit agrees. (Weights are finite by validation, so ``w * 0`` is never NaN.)
No ``fastmath``: it would let LLVM reorder or contract (FMA) the sums differently per path.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rtsnn.snn.neuron_kernels import spiking_element

MODE_DENSE = 0
MODE_EVENT = 1
MODE_AUTO = 2
MODES = {"dense": MODE_DENSE, "event": MODE_EVENT, "auto": MODE_AUTO}

# counters[] slots (int64 array owned by the caller)
CNT_DENSE = 0  # steps that propagated densely
CNT_EVENT = 1  # steps that propagated event-driven
CNT_ACTIVE = 2  # number of spikes in z after the last step (drives 'auto')
N_COUNTERS = 3


@njit(cache=True, nogil=True)
def propagate_dense(src: np.ndarray, w: np.ndarray, cur: np.ndarray) -> None:
    """``cur += w^T src`` adding row j scaled by ``src[j]`` for every j in increasing order."""
    n_post = cur.shape[0]
    for j in range(src.shape[0]):
        s = src[j]
        for i in range(n_post):
            cur[i] += w[j, i] * s


@njit(cache=True, nogil=True, inline="always")
def _add_row(w: np.ndarray, cur: np.ndarray, j: int, s: np.float32) -> None:
    for i in range(cur.shape[0]):
        cur[i] += w[j, i] * s


@njit(cache=True, nogil=True, inline="always")
def _add_4_rows(w: np.ndarray, cur: np.ndarray, j0: int, s0: np.float32, j1: int, s1: np.float32,
                j2: int, s2: np.float32, j3: int, s3: np.float32) -> None:
    # the four additions happen in row order for every element: the same arithmetic as four
    # _add_row passes, with one load/store of cur instead of four
    for i in range(cur.shape[0]):
        c = cur[i]
        c += w[j0, i] * s0
        c += w[j1, i] * s1
        c += w[j2, i] * s2
        c += w[j3, i] * s3
        cur[i] = c


@njit(cache=True, nogil=True)
def propagate_event(src: np.ndarray, w: np.ndarray, cur: np.ndarray) -> None:
    """``cur += w^T src`` adding only rows with ``src[j] != 0``, j increasing (bit-identical
    to :func:`propagate_dense`). Active rows are applied four at a time (per element still in
    row order), which saves three of every four passes over ``cur``."""
    j0 = 0
    j1 = 0
    j2 = 0
    k = 0
    for j in range(src.shape[0]):
        if src[j] != 0:
            if k == 0:
                j0 = j
                k = 1
            elif k == 1:
                j1 = j
                k = 2
            elif k == 2:
                j2 = j
                k = 3
            else:
                _add_4_rows(w, cur, j0, src[j0], j1, src[j1], j2, src[j2], j, src[j])
                k = 0
    if k >= 1:
        _add_row(w, cur, j0, src[j0])
    if k >= 2:
        _add_row(w, cur, j1, src[j1])
    if k >= 3:
        _add_row(w, cur, j2, src[j2])


@njit(cache=True, nogil=True)
def neuron_update(cur: np.ndarray, v: np.ndarray, a: np.ndarray, z: np.ndarray, refr: np.ndarray,
                  r: np.ndarray, alpha: np.float32, rho: np.float32, kappa: np.float32,
                  v_th: np.float32, beta: np.float32, n_ref: int, adaptive: bool) -> int:
    """LIF/ALIF update from the step's input current ``cur``; returns the number of spikes.

    Reads ``z`` as ``z[t-1]`` and overwrites it with ``z[t]`` (per neuron, so no copy is
    needed); updates ``v, a, refr`` and the readout trace ``r`` in place. ``a`` is left
    untouched for LIF (``adaptive=False``).
    """
    # Branch-free bodies (selects instead of ifs) so LLVM can vectorise the loop; the
    # model test sits outside the loop so each loop is straight-line code. The neuron is the
    # graph's and the trainers' spiking_element with gain 1 and leak -0.0: x * 1 and x + (-0.0)
    # are x exactly (signed zeros included), so LLVM folds them and the arithmetic is
    # alpha v + I - v_th z[t-1], as before (measured: lif1024 tick within 3 %, alif256 equal).
    if adaptive:
        return _update_alif(cur, v, a, z, refr, r, alpha, rho, kappa, v_th, beta, np.int32(n_ref))
    return _update_lif(cur, v, z, refr, r, alpha, kappa, v_th, np.int32(n_ref))


@njit(cache=True, nogil=True)
def _update_lif(cur, v, z, refr, r, alpha, kappa, v_th, n_ref):
    one = np.float32(1.0)
    zero = np.float32(0.0)
    mzero = np.float32(-0.0)  # the leak: adding -0.0 changes no float, not even a signed zero
    n_spikes = 0
    for i in range(v.shape[0]):
        vi, _, _, spike, ref = spiking_element(cur[i], v[i], zero, zero, z[i], refr[i], alpha, zero, zero, zero,
                                               v_th, one, mzero, zero, False, n_ref, False, False, False, False, False)
        v[i] = vi
        zi = one if spike else zero
        refr[i] = ref
        z[i] = zi
        r[i] = kappa * r[i] + zi
        n_spikes += np.int64(spike)
    return n_spikes


@njit(cache=True, nogil=True)
def _update_alif(cur, v, a, z, refr, r, alpha, rho, kappa, v_th, beta, n_ref):
    one = np.float32(1.0)
    zero = np.float32(0.0)
    mzero = np.float32(-0.0)  # the leak: adding -0.0 changes no float, not even a signed zero
    n_spikes = 0
    for i in range(v.shape[0]):
        vi, _, ai, spike, ref = spiking_element(cur[i], v[i], zero, a[i], z[i], refr[i], alpha, zero, rho, beta,
                                                v_th, one, mzero, zero, False, n_ref, False, True, False, False, False)
        v[i] = vi
        a[i] = ai
        zi = one if spike else zero
        refr[i] = ref
        z[i] = zi
        r[i] = kappa * r[i] + zi
        n_spikes += np.int64(spike)
    return n_spikes


# Reassociation is allowed here only: it lets LLVM vectorise the dot products. The readout is
# the same code in every propagation mode, so the dense/event bit-identity is unaffected.
@njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})
def readout_update(r: np.ndarray, w_out: np.ndarray, b_out: np.ndarray, y: np.ndarray) -> None:
    """``y = w_out^T r + b_out`` into ``y``.

    ``w_out`` is (n_rec, n_out) row-major, so a column is strided. For one or two outputs (the
    usual decoded velocity) one pass over the rows keeps the sums in registers and reads
    ``w_out`` contiguously (about 2x faster at n_rec = 1024); other sizes go column by column.
    """
    n_rec = r.shape[0]
    n_out = y.shape[0]
    if n_out == 2:
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        for j in range(n_rec):
            rj = r[j]
            a0 += w_out[j, 0] * rj
            a1 += w_out[j, 1] * rj
        y[0] = a0 + b_out[0]
        y[1] = a1 + b_out[1]
        return
    for k in range(n_out):
        acc = np.float32(0.0)
        for j in range(n_rec):
            acc += w_out[j, k] * r[j]
        y[k] = acc + b_out[k]


@njit(cache=True, nogil=True)
def network_step(x: np.ndarray, w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray,
                 b_out: np.ndarray, v: np.ndarray, a: np.ndarray, z: np.ndarray, refr: np.ndarray,
                 r: np.ndarray, y: np.ndarray, cur: np.ndarray, counters: np.ndarray,
                 alpha: float, rho: float, kappa: float, v_th: float, beta: float, n_ref: int,
                 adaptive: bool, mode: int, auto_threshold: float) -> int:
    """One fused step: propagation (dense / event / auto) + neuron update + trace + readout.

    The float parameters are passed as Python floats (cheaper to dispatch than numpy
    scalars) and rounded to float32 here, so the arithmetic is float32 throughout.

    ``mode``: 0 dense, 1 event-driven, 2 auto (event-driven when the fraction of neurons that
    spiked in the previous step, ``counters[2] / n_rec``, is below ``auto_threshold``).
    ``counters`` (int64, >= 3): [dense steps, event steps, spikes in the last step].
    ``cur`` is scratch (n_rec,). Returns the number of spikes of this step.
    """
    n_rec = v.shape[0]
    if x.shape[0] != w_in.shape[0]:
        raise ValueError("network_step: spikes_in length differs from w_in.shape[0] (n_in)")
    use_event = mode == 1
    if mode == 2:
        use_event = counters[2] < auto_threshold * n_rec
    for i in range(n_rec):
        cur[i] = 0.0
    if use_event:
        propagate_event(x, w_in, cur)
        propagate_event(z, w_rec, cur)
        counters[1] += 1
    else:
        propagate_dense(x, w_in, cur)
        propagate_dense(z, w_rec, cur)
        counters[0] += 1
    n_spikes = neuron_update(cur, v, a, z, refr, r, np.float32(alpha), np.float32(rho), np.float32(kappa),
                             np.float32(v_th), np.float32(beta), n_ref, adaptive)
    counters[2] = n_spikes
    readout_update(r, w_out, b_out, y)
    return n_spikes


# slots of the float64 parameter vector of network_step_packed
P_ALPHA, P_RHO, P_KAPPA, P_VTH, P_BETA, P_NREF, P_ADAPTIVE, P_MODE, P_AUTO = range(9)
N_PARAMS = 9
# rows of the float32 state block of network_step_packed
S_V, S_A, S_Z, S_R, S_CUR = range(5)
N_STATE_ROWS = 5


@njit(cache=True, nogil=True)
def network_step_packed(x: np.ndarray, w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray,
                        b_out: np.ndarray, fstate: np.ndarray, refr: np.ndarray, y: np.ndarray,
                        counters: np.ndarray, params: np.ndarray) -> int:
    """:func:`network_step` with the float32 state vectors as the rows of one block
    ``fstate`` (rows ``S_V, S_A, S_Z, S_R, S_CUR``) and the scalars in one float64 vector
    ``params`` (slots ``P_*``). Same arithmetic, bit for bit; it exists because each argument
    costs the numba dispatcher ~80 ns per call from Python (10 arguments instead of 22)."""
    return network_step(x, w_in, w_rec, w_out, b_out, fstate[S_V], fstate[S_A], fstate[S_Z], refr,
                        fstate[S_R], y, fstate[S_CUR], counters, params[P_ALPHA], params[P_RHO],
                        params[P_KAPPA], params[P_VTH], params[P_BETA], int(params[P_NREF]),
                        params[P_ADAPTIVE] != 0.0, int(params[P_MODE]), params[P_AUTO])


@njit(cache=True, nogil=True)
def network_run(xs: np.ndarray, w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray,
                b_out: np.ndarray, v: np.ndarray, a: np.ndarray, z: np.ndarray, refr: np.ndarray,
                r: np.ndarray, y: np.ndarray, cur: np.ndarray, counters: np.ndarray,
                alpha: float, rho: float, kappa: float, v_th: float, beta: float, n_ref: int,
                adaptive: bool, mode: int, auto_threshold: float, ys: np.ndarray, zs: np.ndarray) -> None:
    """:func:`network_step` for every row of ``xs`` (T, n_in); writes ``ys`` (T, n_out) and
    ``zs`` (T, n_rec)."""
    for t in range(xs.shape[0]):
        network_step(xs[t], w_in, w_rec, w_out, b_out, v, a, z, refr, r, y, cur, counters,
                     alpha, rho, kappa, v_th, beta, n_ref, adaptive, mode, auto_threshold)
        ys[t, :] = y
        zs[t, :] = z


def compiled_entry(dispatcher, args: tuple):
    """The native entry point of numba ``dispatcher`` compiled for exactly the types (dtype,
    ndim, layout) of ``args``, or the dispatcher itself when that cannot be had.

    Calling the entry skips the dispatcher's per-call type resolution (most of a small
    kernel's call cost) but does **not** check its arguments: a caller may only use it with
    the very buffers it was bound for (identity-checked), never with other arrays.
    """
    import numba

    try:
        return dispatcher.compile(tuple(numba.typeof(a) for a in args))
    except Exception:  # noqa: BLE001 - any failure: the checked, slower path
        return dispatcher
