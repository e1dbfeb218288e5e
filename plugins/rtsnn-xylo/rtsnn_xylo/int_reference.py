"""Plain-Python reference of Xylo's integer dynamics (slow, literal; for tests).

One step (semantics of SynSense's ``xylosim.v2``; all states int16, every addition
saturating to [-32768, 32767])::

    c_i      = min(x_i, 15)                                   input events of channel i
    Isyn_js += c_i * (w_in[i,j,s] << ws_in)                   inputs of this step
    Isyn_js += min(z_k, 31) * (w_rec[k,j,s] << ws_rec)         hidden spikes of the previous step
    Iout_o  += min(z_k, 31) * (w_out[k,o] << ws_out)           (hidden -> output, one step late)
    Isyn_js -= decay(Isyn_js, dash_syn[j,s])
    dV       = sat(-decay(V_j, dash_mem[j]) + sum_s Isyn_js)   (then + bias, saturating)
    V_j      = sat(V_j + dV)
    z_j      = min(V_j // th_j, 31) if V_j >= th_j else 0;    V_j -= z_j * th_j
    (output neurons: the same with one synapse and at most 1 spike)

``decay(v, d) = v >> d`` (arithmetic shift) except that a positive value whose shift is 0
loses 1. ``-decay`` is taken in int16 (so ``-(-32768)`` wraps to ``-32768`` when d = 0, as in
the C++ simulator). Repeated saturating additions of one same-signed weight equal one
saturating addition of their sum, so ``c * w`` is added at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtsnn_xylo.spec import XyloConfig

SMIN, SMAX = -(2**15), 2**15 - 1


def sat(v: int) -> int:
    """Clamp to int16."""
    return SMIN if v < SMIN else (SMAX if v > SMAX else v)


def wrap16(v: int) -> int:
    """Two's-complement int16 wrap (C's conversion of an int to int16_t)."""
    return ((v + 2**15) % 2**16) - 2**15


def decay(v: int, dash: int) -> int:
    """The decrement of a bit-shift decay: ``v >> dash``, or +1 for a positive ``v`` whose shift is 0."""
    dv = v >> dash  # Python's >> on negative ints is an arithmetic (floor) shift, like C++ on int
    if dv == 0 and v > 0:
        dv = 1
    return dv


@dataclass
class IntState:
    """Integer state of a Xylo network (int64 arrays holding int16 values)."""

    v_mem: np.ndarray  # (n_hid,)
    i_syn: np.ndarray  # (n_hid, 2)
    z: np.ndarray  # (n_hid,) spike counts of the last step
    v_mem_out: np.ndarray  # (n_out,)
    i_syn_out: np.ndarray  # (n_out,)
    z_out: np.ndarray  # (n_out,)

    @classmethod
    def zeros(cls, n_hid: int, n_out: int) -> IntState:
        z = np.zeros
        return cls(z(n_hid, np.int64), z((n_hid, 2), np.int64), z(n_hid, np.int64),
                   z(n_out, np.int64), z(n_out, np.int64), z(n_out, np.int64))


def _evolve(v: int, isyns: list[int], dash_syns: list[int], dash_mem: int, th: int, bias: int,
            has_bias: bool, max_spikes: int) -> tuple[int, list[int], int]:
    new_isyn = [i - decay(i, d) for i, d in zip(isyns, dash_syns)]
    dv = wrap16(-decay(v, dash_mem))
    dv = sat(dv + sum(new_isyn))
    if has_bias:
        dv = sat(dv + bias)
    v = sat(v + dv)
    n = 0
    while v >= th and n < max_spikes:
        n += 1
        v -= th
    return v, new_isyn, n


def step_reference(cfg: XyloConfig, st: IntState, x: np.ndarray) -> None:
    """Advance ``st`` in place by one step with input event counts ``x`` (n_in,)."""
    n_in, n_hid, n_out = cfg.n_in, cfg.n_hid, cfg.n_out
    for i in range(n_in):
        c = min(int(x[i]), 15)
        if c > 0:
            for j in range(n_hid):
                for s in range(2):
                    w = int(cfg.w_in[i, j, s])
                    if w:
                        st.i_syn[j, s] = sat(int(st.i_syn[j, s]) + c * wrap16(w << cfg.weight_shift_in))
    for k in range(n_hid):
        c = min(int(st.z[k]), 31)
        if c > 0:
            for j in range(n_hid):
                for s in range(2):
                    w = int(cfg.w_rec[k, j, s])
                    if w:
                        st.i_syn[j, s] = sat(int(st.i_syn[j, s]) + c * wrap16(w << cfg.weight_shift_rec))
            for o in range(n_out):
                w = int(cfg.w_out[k, o])
                if w:
                    st.i_syn_out[o] = sat(int(st.i_syn_out[o]) + c * wrap16(w << cfg.weight_shift_out))
    for j in range(n_hid):
        v, isyn, n = _evolve(int(st.v_mem[j]), [int(a) for a in st.i_syn[j]], [int(d) for d in cfg.dash_syn[j]],
                             int(cfg.dash_mem[j]), int(cfg.threshold[j]), int(cfg.bias[j]), cfg.has_bias, 31)
        st.v_mem[j], st.i_syn[j, 0], st.i_syn[j, 1], st.z[j] = v, isyn[0], isyn[1], n
    for o in range(n_out):
        v, isyn, n = _evolve(int(st.v_mem_out[o]), [int(st.i_syn_out[o])], [int(cfg.dash_syn_out[o])],
                             int(cfg.dash_mem_out[o]), int(cfg.threshold_out[o]), int(cfg.bias_out[o]),
                             cfg.has_bias, 1)
        st.v_mem_out[o], st.i_syn_out[o], st.z_out[o] = v, isyn[0], n


def run_reference(cfg: XyloConfig, xs: np.ndarray) -> dict[str, np.ndarray]:
    """Run ``xs`` (T, n_in) from zero state; return recordings keyed like xylosim's
    (``v_mem``, ``i_syn``, ``i_syn2``, ``spikes``, ``v_mem_out``, ``i_syn_out``, ``spikes_out``),
    each (T, n)."""
    st = IntState.zeros(cfg.n_hid, cfg.n_out)
    T = xs.shape[0]
    rec = {k: np.zeros((T, cfg.n_hid), np.int64) for k in ("v_mem", "i_syn", "i_syn2", "spikes")}
    rec.update({k: np.zeros((T, cfg.n_out), np.int64) for k in ("v_mem_out", "i_syn_out", "spikes_out")})
    for t in range(T):
        step_reference(cfg, st, xs[t])
        rec["v_mem"][t], rec["i_syn"][t], rec["i_syn2"][t] = st.v_mem, st.i_syn[:, 0], st.i_syn[:, 1]
        rec["spikes"][t], rec["v_mem_out"][t] = st.z, st.v_mem_out
        rec["i_syn_out"][t], rec["spikes_out"][t] = st.i_syn_out, st.z_out
    return rec
