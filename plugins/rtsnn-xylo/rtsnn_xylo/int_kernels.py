"""Numba kernels of Xylo's integer dynamics (bit-exact with ``xylosim.v2``).

The equations are those of :mod:`rtsnn_xylo.int_reference` (its module docstring states
them); these kernels compute the same thing on preallocated int32 buffers with no
allocation per step. Effective weights ``w << weight_shift`` are precomputed once by
:func:`effective_weights` (exact: ``|w| << 7 <= 16384`` fits int16).

Propagation is event-driven by construction: only input channels / hidden neurons with a
non-zero count touch the synaptic states, in increasing index order (the order xylosim
uses; saturating additions make the order matter).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rtsnn_xylo.spec import XyloConfig

SMIN = -32768
SMAX = 32767
MAX_IN = 15
MAX_HID = 31


def effective_weights(cfg: XyloConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(w_in << ws_in, w_rec << ws_rec, w_out << ws_out)`` as int32 (n_out layout (n_hid, n_out))."""
    return ((cfg.w_in << cfg.weight_shift_in).astype(np.int32),
            (cfg.w_rec << cfg.weight_shift_rec).astype(np.int32),
            (cfg.w_out << cfg.weight_shift_out).astype(np.int32))


@njit(cache=True, nogil=True, inline="always")
def _sat(v: np.int64) -> np.int64:
    if v < SMIN:
        return SMIN
    if v > SMAX:
        return SMAX
    return v


@njit(cache=True, nogil=True, inline="always")
def _decay(v: np.int64, dash: np.int64) -> np.int64:
    dv = v >> dash
    if dv == 0 and v > 0:
        dv = 1
    return dv


@njit(cache=True, nogil=True, inline="always")
def _neg_decay16(v: np.int64, dash: np.int64) -> np.int64:
    """``-decay(v)`` converted to int16 (wraps only for v = -32768, dash = 0)."""
    d = -_decay(v, dash)
    if d > SMAX:
        d -= 65536
    return d


@njit(cache=True, nogil=True)
def xylo_step(x: np.ndarray, w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray,
              threshold: np.ndarray, bias: np.ndarray, dash_mem: np.ndarray, dash_syn: np.ndarray,
              threshold_out: np.ndarray, bias_out: np.ndarray, dash_mem_out: np.ndarray,
              dash_syn_out: np.ndarray, has_bias: bool,
              v_mem: np.ndarray, i_syn: np.ndarray, z: np.ndarray,
              v_mem_out: np.ndarray, i_syn_out: np.ndarray, z_out: np.ndarray) -> int:
    """One Xylo step in place; returns the number of hidden spikes emitted.

    ``x`` (n_in,) input counts (any int or float dtype, values >= 0, capped at 15 here);
    weights int32 effective (shift applied); ``v_mem`` (n_hid,), ``i_syn`` (n_hid, 2),
    ``z`` (n_hid,) last step's hidden spike counts (read, then overwritten), ``v_mem_out``,
    ``i_syn_out``, ``z_out`` (n_out,), all int32.
    """
    n_in = w_in.shape[0]
    n_hid = w_in.shape[1]
    n_out = w_out.shape[1]
    # inputs of this step
    for i in range(n_in):
        c = np.int64(x[i])
        if c > MAX_IN:
            c = MAX_IN
        if c > 0:
            for j in range(n_hid):
                w0 = np.int64(w_in[i, j, 0])
                w1 = np.int64(w_in[i, j, 1])
                if w0 != 0:
                    i_syn[j, 0] = _sat(np.int64(i_syn[j, 0]) + c * w0)
                if w1 != 0:
                    i_syn[j, 1] = _sat(np.int64(i_syn[j, 1]) + c * w1)
    # hidden spikes of the previous step -> hidden and output synapses
    for k in range(n_hid):
        c = np.int64(z[k])
        if c > MAX_HID:
            c = MAX_HID
        if c > 0:
            for j in range(n_hid):
                w0 = np.int64(w_rec[k, j, 0])
                w1 = np.int64(w_rec[k, j, 1])
                if w0 != 0:
                    i_syn[j, 0] = _sat(np.int64(i_syn[j, 0]) + c * w0)
                if w1 != 0:
                    i_syn[j, 1] = _sat(np.int64(i_syn[j, 1]) + c * w1)
            for o in range(n_out):
                w = np.int64(w_out[k, o])
                if w != 0:
                    i_syn_out[o] = _sat(np.int64(i_syn_out[o]) + c * w)
    # hidden neurons
    n_spk = 0
    for j in range(n_hid):
        a0 = np.int64(i_syn[j, 0])
        a1 = np.int64(i_syn[j, 1])
        a0 -= _decay(a0, np.int64(dash_syn[j, 0]))
        a1 -= _decay(a1, np.int64(dash_syn[j, 1]))
        i_syn[j, 0] = a0
        i_syn[j, 1] = a1
        v = np.int64(v_mem[j])
        dv = _sat(_neg_decay16(v, np.int64(dash_mem[j])) + a0 + a1)
        if has_bias:
            dv = _sat(dv + np.int64(bias[j]))
        v = _sat(v + dv)
        th = np.int64(threshold[j])
        n = np.int64(0)
        if v >= th:
            n = v // th
            if n > MAX_HID:
                n = MAX_HID
            v -= n * th
        v_mem[j] = v
        z[j] = n
        n_spk += n
    # output neurons (one synapse, at most one spike)
    for o in range(n_out):
        a = np.int64(i_syn_out[o])
        a -= _decay(a, np.int64(dash_syn_out[o]))
        i_syn_out[o] = a
        v = np.int64(v_mem_out[o])
        dv = _sat(_neg_decay16(v, np.int64(dash_mem_out[o])) + a)
        if has_bias:
            dv = _sat(dv + np.int64(bias_out[o]))
        v = _sat(v + dv)
        th = np.int64(threshold_out[o])
        n = np.int64(0)
        if v >= th:
            n = np.int64(1)
            v -= th
        v_mem_out[o] = v
        z_out[o] = n
    return n_spk


@njit(cache=True, nogil=True)
def xylo_run(xs: np.ndarray, w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray,
             threshold: np.ndarray, bias: np.ndarray, dash_mem: np.ndarray, dash_syn: np.ndarray,
             threshold_out: np.ndarray, bias_out: np.ndarray, dash_mem_out: np.ndarray,
             dash_syn_out: np.ndarray, has_bias: bool,
             v_mem: np.ndarray, i_syn: np.ndarray, z: np.ndarray,
             v_mem_out: np.ndarray, i_syn_out: np.ndarray, z_out: np.ndarray,
             rec_v: np.ndarray, rec_i: np.ndarray, rec_z: np.ndarray,
             rec_v_out: np.ndarray, rec_i_out: np.ndarray, rec_z_out: np.ndarray) -> None:
    """Run ``xs`` (T, n_in) from the given state, recording every step into ``rec_*``
    (``rec_i`` is (T, n_hid, 2); the others (T, n))."""
    for t in range(xs.shape[0]):
        xylo_step(xs[t], w_in, w_rec, w_out, threshold, bias, dash_mem, dash_syn, threshold_out,
                  bias_out, dash_mem_out, dash_syn_out, has_bias, v_mem, i_syn, z, v_mem_out,
                  i_syn_out, z_out)
        rec_v[t] = v_mem
        rec_i[t] = i_syn
        rec_z[t] = z
        rec_v_out[t] = v_mem_out
        rec_i_out[t] = i_syn_out
        rec_z_out[t] = z_out


class IntNetwork:
    """Thin stateful wrapper: owns the int32 buffers of a :class:`XyloConfig` and steps them.

    ``step(x)`` advances one dt; the state arrays (``v_mem``, ``i_syn``, ``z``, ``v_mem_out``,
    ``i_syn_out``, ``z_out``) are updated in place. The config is assumed to have passed
    :func:`rtsnn_xylo.drc.check` (the backend and tests ensure this).
    """

    def __init__(self, cfg: XyloConfig):
        i32 = np.int32
        self.cfg = cfg
        self.w_in, self.w_rec, self.w_out = effective_weights(cfg)
        self.threshold, self.threshold_out = cfg.threshold.astype(i32), cfg.threshold_out.astype(i32)
        self.bias, self.bias_out = cfg.bias.astype(i32), cfg.bias_out.astype(i32)
        self.dash_mem, self.dash_syn = cfg.dash_mem.astype(i32), np.ascontiguousarray(cfg.dash_syn, i32)
        self.dash_mem_out, self.dash_syn_out = cfg.dash_mem_out.astype(i32), cfg.dash_syn_out.astype(i32)
        self.has_bias = bool(cfg.has_bias)
        n_hid, n_out = cfg.n_hid, cfg.n_out
        self.v_mem, self.i_syn, self.z = np.zeros(n_hid, i32), np.zeros((n_hid, 2), i32), np.zeros(n_hid, i32)
        self.v_mem_out, self.i_syn_out, self.z_out = np.zeros(n_out, i32), np.zeros(n_out, i32), np.zeros(n_out, i32)
        self.n_spikes_last = 0

    def _args(self) -> tuple:
        return (self.w_in, self.w_rec, self.w_out, self.threshold, self.bias, self.dash_mem, self.dash_syn,
                self.threshold_out, self.bias_out, self.dash_mem_out, self.dash_syn_out, self.has_bias,
                self.v_mem, self.i_syn, self.z, self.v_mem_out, self.i_syn_out, self.z_out)

    def step(self, x: np.ndarray) -> None:
        self.n_spikes_last = xylo_step(x, *self._args())

    def run(self, xs: np.ndarray) -> dict[str, np.ndarray]:
        """Run (T, n_in) counts from the current state; recordings like :func:`int_reference.run_reference`."""
        T, n_hid, n_out = xs.shape[0], self.cfg.n_hid, self.cfg.n_out
        i32 = np.int32
        rv, ri, rz = np.zeros((T, n_hid), i32), np.zeros((T, n_hid, 2), i32), np.zeros((T, n_hid), i32)
        rvo, rio, rzo = np.zeros((T, n_out), i32), np.zeros((T, n_out), i32), np.zeros((T, n_out), i32)
        xylo_run(np.ascontiguousarray(xs, i32), *self._args(), rv, ri, rz, rvo, rio, rzo)
        return {"v_mem": rv, "i_syn": ri[:, :, 0], "i_syn2": ri[:, :, 1], "spikes": rz,
                "v_mem_out": rvo, "i_syn_out": rio, "spikes_out": rzo}

    def reset_state(self) -> None:
        for a in (self.v_mem, self.i_syn, self.z, self.v_mem_out, self.i_syn_out, self.z_out):
            a[...] = 0
