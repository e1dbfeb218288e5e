"""BPTT engine: a stack of spiking LIF/ALIF layers (feedforward of any depth, each optionally
recurrent) plus an optional leaky readout, forward and backward through time with the numba
kernels of :mod:`rtsnn.learn.offline.bptt_kernels`. The network is a model graph of the
layered pattern of :mod:`rtsnn.learn.offline.bptt_graph` (architecture and initial neuron
parameters; :func:`~rtsnn.learn.offline.bptt_graph.layered_graph` builds the usual one) and
the training options :class:`~rtsnn.learn.offline.bptt_graph.BpttOptions`; :class:`Engine`
compiles the graph once into a per-layer plan.

Layer ``l`` receives the spikes of layer ``l-1`` of the *same* step (the input ``x`` for
``l = 0``), as the runtime does between input and hidden layer. Parameters live in a dict of
float64 arrays (the optimiser's master copy)::

    w{l}      (n_{l-1}, n_l)   feedforward weights (row = presynaptic)
    r{l}      (n_l, n_l)       recurrent weights, zero diagonal (only for recurrent layers)
    alpha{l}  (n_l,)           membrane decay per step (trainable leak)
    vth{l}    (n_l,)           threshold (trainable)
    w_out     (n_L, n_out), b_out (n_out,), kappa (1,)   readout (when ``n_out`` is set)
    kappa2    (1,)             second readout stage (a second LI node: double exponential)
    delay_logits (n_in, n_0, D+1)  input synaptic delays (``options.max_delay_steps = D > 0``)

Neurons reset by subtraction (``reset='subtract'``, the default: ``v - v_th`` at the tick after
a spike) or to zero (``reset='zero'``: ``v[t] = alpha (1 - z[t-1]) v[t-1] + I[t]``, snnTorch's
``Leaky(reset_mechanism='zero')``); ``detach_reset`` cuts the reset's gradient path in both.

Readout: ``r[t] = kappa r[t-1] + z_L[t]``, ``y = r w_out + b_out``; with a second LI node
(``tau_out2_s``) a second stage ``q[t] = kappa2 q[t-1] + r[t]`` and ``y = q w_out + b_out``: the spikes are
filtered by ``(kappa^(t+1) - kappa2^(t+1)) / (kappa - kappa2)``, a difference of exponentials
(rise and decay both trainable through ``kappa`` and ``kappa2``).

Synaptic delays (input layer, softmax relaxation): each input synapse carries a distribution
``p_ij = softmax_d(delay_logits_ij)`` over delays ``d = 0..D`` steps and the current is
``I_j[t] = sum_i sum_d w_ij p_ijd x_i[t - d]``; the gradient reaches both ``w`` and the
logits (``dL/dlogit = p (dL/dp - sum_d p dL/dp)``). The most probable delay is what a hard
delay would use once training has made ``p`` peaked.

Memory: the full tape is 4 arrays of (T, B, n) per layer, O(T N). With
``checkpoint_steps = K`` only the states at every K-th step are kept during the forward pass
and each segment is recomputed during the backward pass (one extra forward; memory
O(T/K N + K N)). Both give identical gradients.

The network runs in ``dtype`` (float32 for training speed, float64 for gradient checks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rtsnn.learn.offline.bptt_kernels import (layer_backward, layer_forward, matmul_transposed, outer_accumulate,
                                              readout_backward, readout_forward, sparse_matmul)
from rtsnn.learn.offline.bptt_graph import BpttOptions, compile_graph, typical
from rtsnn.learn.offline.surrogate import surrogate_id
from rtsnn.snn.graph import Graph


def init_params(graph: Graph, seed: int, options: BpttOptions | None = None, *, input_scale: float = 1.0,
                spectral_radius: float = 0.9, readout_scale: float = 1.0) -> dict[str, np.ndarray]:
    """Initial parameters of the layered ``graph`` (:mod:`rtsnn.learn.offline.bptt_graph`): the
    per-neuron decays ``alpha{l}`` and thresholds ``vth{l}`` of each layer's node, the readout
    decays ``kappa`` (``kappa2``) of its LI stage(s), random weights.

    Feedforward weights have standard deviation ``input_scale * g / sqrt(fan_in)`` with
    ``g = 3 v_th (1 - alpha)`` (so a layer driven by ~fan_in/3 coincident inputs is near
    threshold; ``v_th``, ``alpha``: the layer's value, or its mean when it varies over the
    neurons); recurrent weights are Gaussian, zero diagonal, rescaled so the spectral radius
    of the spike-to-spike gain ``r / ((1 - alpha) v_th)`` equals ``spectral_radius`` (the
    convention of :meth:`rtsnn.snn.params.Model.random`); the readout is
    ``N(0, (readout_scale / sqrt(n_L))^2)``; input delay logits (``options.max_delay_steps``
    > 0) start at zero (every delay equally likely). The graph's own weights are not read.
    """
    plan = compile_graph(graph, options)
    rng = np.random.default_rng(seed)
    p: dict[str, np.ndarray] = {}
    n_prev = plan.n_in
    for l, (n, rec) in enumerate(zip(plan.layers, plan.recurrent)):
        a = typical(plan.alpha[l])
        v_th = typical(plan.v_th[l])
        g = 3.0 * v_th * (1.0 - a)
        p[f"w{l}"] = rng.standard_normal((n_prev, n)) * input_scale * g / math.sqrt(n_prev)
        if rec:
            p[f"r{l}"] = recurrent_init(n, spectral_radius * (1.0 - a) * v_th, rng)
        p[f"alpha{l}"] = plan.alpha[l].copy()
        p[f"vth{l}"] = plan.v_th[l].copy()
        n_prev = n
    if plan.n_out is not None:
        p["w_out"] = rng.standard_normal((n_prev, plan.n_out)) * readout_scale / math.sqrt(n_prev)
        p["b_out"] = np.zeros(plan.n_out)
        p["kappa"] = np.array([plan.kappa])
        if plan.kappa2 is not None:
            p["kappa2"] = np.array([plan.kappa2])
    if plan.max_delay_steps > 0:
        # uniform over the delays at first: the relaxation starts undecided
        p["delay_logits"] = np.zeros((plan.n_in, plan.layers[0], plan.max_delay_steps + 1))
    return p


def recurrent_init(n: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian (n, n) matrix with zero diagonal scaled to spectral radius ``radius``."""
    w = rng.standard_normal((n, n))
    np.fill_diagonal(w, 0.0)
    rad = float(np.max(np.abs(np.linalg.eigvals(w)))) if n > 1 else 0.0
    if rad == 0.0 or radius == 0.0:
        return np.zeros((n, n))
    return w * (radius / rad)


@dataclass
class _LayerState:
    v: np.ndarray
    a: np.ndarray
    z: np.ndarray
    refr: np.ndarray

    def copy(self) -> _LayerState:
        return _LayerState(self.v.copy(), self.a.copy(), self.z.copy(), self.refr.copy())


@dataclass
class Tape:
    """What the backward pass needs: outputs, per-segment start states or records."""

    y: np.ndarray  # (T, B, n_output) readout or last-layer spikes
    segments: list[tuple[int, int]]
    starts: list  # per segment: (list[_LayerState], r) or None when records are kept
    records: list  # per segment: record or None (checkpointing)
    spike_counts: list[np.ndarray] = field(default_factory=list)  # per layer (n_l,) summed over T, B
    x: np.ndarray | None = None
    iff0: np.ndarray | None = None  # input-layer current (T, B, n_0) when there are delays


def delay_probs(logits: np.ndarray) -> np.ndarray:
    """``softmax`` over the last axis (the delays), numerically stable."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def shifted(x: np.ndarray, d: int, t0: int, t1: int) -> np.ndarray:
    """``x[t - d]`` for ``t`` in ``[t0, t1)`` (zeros before the start), shape (t1 - t0, ...)."""
    out = np.zeros((t1 - t0,) + x.shape[1:], x.dtype)
    a = max(t0, d)
    if a < t1:
        out[a - t0:] = x[a - d:t1 - d]
    return out


class Engine:
    """Forward/backward of a layered model graph (:mod:`rtsnn.learn.offline.bptt_graph`) for
    given parameters, with the training ``options`` (:class:`BpttOptions`; default ones when
    None). The graph is compiled once into a per-layer plan; a graph BPTT cannot train is
    refused there (:class:`rtsnn.snn.nodes.GraphError` naming the node and field).

    ``calib`` holds the per-layer surrogate scales ``s_l`` (default 1)."""

    def __init__(self, graph: Graph, options: BpttOptions | None = None, dtype=np.float32,
                 checkpoint_steps: int | None = None):
        if checkpoint_steps is not None and (not isinstance(checkpoint_steps, int) or checkpoint_steps < 1):
            raise ValueError(f"checkpoint_steps must be None or an int >= 1, got {checkpoint_steps!r}")
        self.graph = graph
        self.options = BpttOptions() if options is None else options
        self.plan = compile_graph(graph, self.options)
        plan = self.plan
        self.dtype = np.dtype(dtype)
        self.checkpoint_steps = checkpoint_steps
        self.kind, self.sg_param = surrogate_id(plan.surrogate, plan.surrogate_param)
        self.calib = [1.0] * len(plan.layers)

    # ---------------------------------------------------------------- forward
    def _cast(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.ascontiguousarray(v, dtype=self.dtype) for k, v in params.items()}

    def _zero_states(self, B: int):
        dt = self.dtype
        states = [_LayerState(np.zeros((B, n), dt), np.zeros((B, n), dt), np.zeros((B, n), dt),
                              np.zeros((B, n), np.int64)) for n in self.plan.layers]
        # readout traces: stage r (and q for a double-exponential readout)
        r = np.zeros((2 if self.plan.tau_out2_s is not None else 1, B, self.plan.layers[-1]), dt)
        return states, r

    def _delayed_current(self, cp, x: np.ndarray) -> np.ndarray:
        """``I[t] = sum_d x[t - d] @ (w0 * p_d)`` over the whole input (T, B, n_in)."""
        T, B, _ = x.shape
        p = delay_probs(np.asarray(cp["delay_logits"], np.float64))
        w0 = np.asarray(cp["w0"], np.float64)
        out = np.zeros((T, B, self.plan.layers[0]), self.dtype)
        tmp = np.empty_like(out)
        for d in range(p.shape[-1]):
            sparse_matmul(shifted(x, d, 0, T), np.ascontiguousarray(w0 * p[..., d], dtype=self.dtype), tmp)
            out += tmp
        return out

    def _segment(self, cp, x_seg, states, r, keep: bool, counts=None, iff0=None):
        plan = self.plan
        Ts, B, _ = x_seg.shape
        h = x_seg
        recs = []
        empty = np.zeros((1, 1), self.dtype)
        for l, n in enumerate(plan.layers):
            st = states[l]
            z0 = st.z.copy()
            v0 = st.v.copy()
            w = cp[f"w{l}"]
            if l == 0 and iff0 is not None:
                iff = np.ascontiguousarray(iff0)  # synaptic delays: computed over the whole input
            else:
                iff = np.empty((Ts, B, n), self.dtype)
                sparse_matmul(h, w, iff)
            vs = np.empty((Ts, B, n), self.dtype)
            as_ = np.empty_like(vs)
            zs = np.empty_like(vs)
            ms = np.empty_like(vs)
            rec = plan.recurrent[l]
            args = (iff, cp[f"r{l}"] if rec else empty, rec, cp[f"alpha{l}"], cp[f"vth{l}"],
                    plan.rho, plan.beta, plan.n_ref, plan.model == "alif",
                    st.v, st.a, st.z, st.refr, vs, as_, zs, ms)
            if plan.reset == "zero":
                layer_forward(*args, True)
            else:
                layer_forward(*args)
            if counts is not None:
                counts[l] += zs.sum(axis=(0, 1), dtype=np.float64)
            recs.append((h, vs, as_, zs, ms, z0, v0) if keep else None)
            h = zs
        ro = None
        if plan.n_out is not None:
            r0 = r.copy()
            rs = np.empty_like(h)
            readout_forward(h, float(cp["kappa"][0]), r[0], rs)
            top = rs
            qs = None
            if plan.tau_out2_s is not None:  # second stage of the double exponential
                qs = np.empty_like(h)
                readout_forward(rs, float(cp["kappa2"][0]), r[1], qs)
                top = qs
            y = np.empty((Ts, B, plan.n_out), self.dtype)
            sparse_matmul(top, cp["w_out"], y)
            y += cp["b_out"]
            ro = (rs, r0, qs) if keep else None
        else:
            y = h
        return y, (recs, ro) if keep else None

    def forward(self, params: dict[str, np.ndarray], x: np.ndarray) -> Tape:
        """Run the network on ``x`` (T, B, n_in); returns a :class:`Tape` (``tape.y`` the output)."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != self.plan.n_in:
            raise ValueError(f"x must be (T, B, n_in={self.plan.n_in}), got shape {x.shape}")
        T, B, _ = x.shape
        cp = self._cast(params)
        K = self.checkpoint_steps or T
        segs = [(t0, min(t0 + K, T)) for t0 in range(0, T, K)]
        states, r = self._zero_states(B)
        counts = [np.zeros(n) for n in self.plan.layers]
        ys, starts, records = [], [], []
        keep = self.checkpoint_steps is None
        iff0 = self._delayed_current(cp, x) if self.plan.max_delay_steps > 0 else None
        for t0, t1 in segs:
            starts.append(None if keep else ([s.copy() for s in states], r.copy()))
            y, rec = self._segment(cp, x[t0:t1], states, r, keep, counts,
                                   iff0=None if iff0 is None else iff0[t0:t1])
            ys.append(y)
            records.append(rec)
        y = ys[0] if len(ys) == 1 else np.concatenate(ys, axis=0)
        return Tape(y=y, segments=segs, starts=starts, records=records, spike_counts=counts, x=x, iff0=iff0)

    # ---------------------------------------------------------------- backward
    def backward(self, params: dict[str, np.ndarray], tape: Tape, dy: np.ndarray,
                 dz_reg: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Gradients (float64 dict, keys as ``params``) of a loss whose derivative with respect
        to ``tape.y`` is ``dy`` (T, B, n_output). ``dz_reg[l]`` (n_l,) is added to dL/dz of
        layer l at every step and sample (regularisers)."""
        plan = self.plan
        cp = self._cast(params)
        T, B, _ = tape.y.shape
        if dy.shape != tape.y.shape:
            raise ValueError(f"dy must have the shape of the output {tape.y.shape}, got {dy.shape}")
        grads = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
        L = len(plan.layers)
        ev = [np.zeros((B, n)) for n in plan.layers]
        ea = [np.zeros((B, n)) for n in plan.layers]
        er = np.zeros((B, plan.layers[-1]))
        eq = np.zeros((B, plan.layers[-1]))
        empty = np.zeros((1, 1), self.dtype)
        dk = dk2 = 0.0
        delays = plan.max_delay_steps > 0
        if delays:
            p_delay = delay_probs(np.asarray(params["delay_logits"], np.float64))
            w0_64 = np.asarray(params["w0"], np.float64)
            g_p = np.zeros_like(p_delay)  # dL/dp
        for si in range(len(tape.segments) - 1, -1, -1):
            t0, t1 = tape.segments[si]
            Ts = t1 - t0
            rec_all = tape.records[si]
            if rec_all is None:  # checkpointed: recompute the segment from its start state
                states0, r0 = tape.starts[si]
                _, rec_all = self._segment(cp, tape.x[t0:t1], [s.copy() for s in states0], r0.copy(), True,
                                           iff0=None if tape.iff0 is None else tape.iff0[t0:t1])
            recs, ro = rec_all
            dys = np.ascontiguousarray(dy[t0:t1], dtype=self.dtype)
            if plan.n_out is not None:
                rs, r0, qs = ro
                top = rs if qs is None else qs
                outer_accumulate(top, dys, grads["w_out"])
                grads["b_out"] += dys.sum(axis=(0, 1), dtype=np.float64)
                d_top = np.empty((Ts, B, plan.layers[-1]), self.dtype)
                matmul_transposed(dys, cp["w_out"], d_top)
                if qs is not None:  # through the second stage first: its input adjoint is dL/dr
                    d_rs = np.zeros((Ts, B, plan.layers[-1]), np.float64)
                    dk2 += readout_backward(d_top, qs, r0[1], float(cp["kappa2"][0]), eq, d_rs)
                else:
                    d_rs = d_top
                ext = np.zeros((Ts, B, plan.layers[-1]), np.float64)
                dk += readout_backward(d_rs, rs, r0[0], float(cp["kappa"][0]), er, ext)
            else:
                ext = dys.astype(np.float64)
            for l in range(L - 1, -1, -1):
                h, vs, as_, zs, ms, z0, v0 = recs[l]
                if dz_reg is not None and dz_reg[l] is not None:
                    ext = ext + dz_reg[l]
                rec = plan.recurrent[l]
                d_cur = np.empty((Ts, B, plan.layers[l]), np.float64)
                layer_backward(np.ascontiguousarray(ext, dtype=np.float64), vs, as_, zs, ms, z0, v0,
                               cp[f"r{l}"] if rec else empty, rec,
                               cp[f"alpha{l}"], cp[f"vth{l}"], plan.rho, plan.beta, plan.model == "alif",
                               self.kind, self.sg_param, float(self.calib[l]), plan.detach_reset,
                               ev[l], ea[l], d_cur, grads[f"alpha{l}"], grads[f"vth{l}"], plan.reset == "zero")
                if l == 0 and delays:
                    for d in range(p_delay.shape[-1]):
                        o = np.zeros_like(w0_64)
                        outer_accumulate(shifted(tape.x, d, t0, t1), d_cur, o)  # sum_t x[t-d] dL/dI[t]
                        grads["w0"] += o * p_delay[..., d]
                        g_p[..., d] += o * w0_64
                else:
                    outer_accumulate(h, d_cur, grads[f"w{l}"])
                if rec:
                    zprev = np.concatenate([z0[None], zs[:-1]], axis=0)
                    g = np.zeros_like(grads[f"r{l}"])
                    outer_accumulate(zprev, d_cur, g)
                    np.fill_diagonal(g, 0.0)
                    grads[f"r{l}"] += g
                if l > 0:
                    ext = np.empty((Ts, B, plan.layers[l - 1]), np.float64)
                    matmul_transposed(d_cur, params[f"w{l}"].astype(np.float64), ext)
        if plan.n_out is not None:
            grads["kappa"][0] = dk
            if plan.tau_out2_s is not None:
                grads["kappa2"][0] = dk2
        if delays:  # softmax Jacobian: dL/dlogit = p (dL/dp - sum_d p dL/dp)
            grads["delay_logits"] += p_delay * (g_p - np.sum(p_delay * g_p, axis=-1, keepdims=True))
        return grads

    # ---------------------------------------------------------------- calibration
    def surrogate_mean(self, params: dict[str, np.ndarray], x: np.ndarray) -> list[float]:
        """``E_t[|g(u_l - theta_l)|]`` per layer on input ``x`` (for :meth:`calibrate`)."""
        from rtsnn.learn.offline.surrogate import surrogate_grad_np
        saved, self.checkpoint_steps = self.checkpoint_steps, None
        try:
            tape = self.forward(params, x)
        finally:
            self.checkpoint_steps = saved
        out = []
        for l, rec in enumerate(tape.records[0][0]):
            _, vs, as_, _, ms, _, _ = rec
            thr = params[f"vth{l}"] + self.plan.beta * as_
            out.append(float(np.mean(surrogate_grad_np(vs - thr, self.kind, self.sg_param) * ms)))
        return out

    def calibrate(self, params: dict[str, np.ndarray], x: np.ndarray, gamma: float = 1.0,
                  lo: float = 1e-2, hi: float = 1e2) -> list[float]:
        """Per-layer surrogate scale ``s_l = gamma / (||W_{l+1}||_2 E[|g_l|])`` (REFERENCES
        section 1; ``W_{L+1}`` is ``w_out`` or 1 for a spiking output layer), clipped to
        [lo, hi]; the last layer keeps 1 when it is the (spiking) output. Returns the scales."""
        gm = self.surrogate_mean(params, x)
        L = len(self.plan.layers)
        scales = []
        for l in range(L):
            if l + 1 < L:
                wn = float(np.linalg.norm(params[f"w{l + 1}"], 2))
            elif self.plan.n_out is not None:
                wn = float(np.linalg.norm(params["w_out"], 2))
            else:
                scales.append(1.0)
                continue
            s = gamma / max(wn * gm[l], 1e-12)
            scales.append(float(min(max(s, lo), hi)))
        self.calib = scales
        return scales
