"""BPTT engine: a stack of spiking LIF/ALIF layers (feedforward of any depth, each optionally
recurrent) plus an optional leaky readout, forward and backward through time with the numba
kernels of :mod:`rtsnn.learn.offline.bptt_kernels`.

Layer ``l`` receives the spikes of layer ``l-1`` of the *same* step (the input ``x`` for
``l = 0``), as the runtime does between input and hidden layer. Parameters live in a dict of
float64 arrays (the optimiser's master copy)::

    w{l}      (n_{l-1}, n_l)   feedforward weights (row = presynaptic)
    r{l}      (n_l, n_l)       recurrent weights, zero diagonal (only for recurrent layers)
    alpha{l}  (n_l,)           membrane decay per step (trainable leak)
    vth{l}    (n_l,)           threshold (trainable)
    w_out     (n_L, n_out), b_out (n_out,), kappa (1,)   readout (when ``n_out`` is set)
    kappa2    (1,)             second readout stage (``tau_out2_s`` set: double exponential)
    delay_logits (n_in, n_0, D+1)  input synaptic delays (``max_delay_steps = D > 0``)

Neurons reset by subtraction (``reset='subtract'``, the default: ``v - v_th`` at the tick after
a spike) or to zero (``reset='zero'``: ``v[t] = alpha (1 - z[t-1]) v[t-1] + I[t]``, snnTorch's
``Leaky(reset_mechanism='zero')``); ``detach_reset`` cuts the reset's gradient path in both.

Readout: ``r[t] = kappa r[t-1] + z_L[t]``, ``y = r w_out + b_out``; with ``tau_out2_s`` a
second stage ``q[t] = kappa2 q[t-1] + r[t]`` and ``y = q w_out + b_out``: the spikes are
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
from dataclasses import asdict, dataclass, field

import numpy as np

from rtsnn.learn.offline.bptt_kernels import (layer_backward, layer_forward, matmul_transposed, outer_accumulate,
                                              readout_backward, readout_forward, sparse_matmul)
from rtsnn.learn.offline.surrogate import surrogate_id


@dataclass(frozen=True)
class NetSpec:
    """Architecture and fixed dynamics (units in the names)."""

    n_in: int
    layers: tuple[int, ...]
    recurrent: tuple[bool, ...]
    n_out: int | None = None  # leaky readout size; None: the output is the last layer's spikes
    model: str = "lif"
    dt_s: float = 1e-3
    tau_mem_s: float = 20e-3
    tau_adapt_s: float = 200e-3
    beta_adapt: float = 0.0
    v_th: float = 1.0
    refractory_s: float = 0.0
    tau_out_s: float = 20e-3
    surrogate: str = "fast_sigmoid"
    surrogate_param: float | None = None
    detach_reset: bool = False
    tau_out2_s: float | None = None  # second readout stage: a double-exponential readout filter
    max_delay_steps: int = 0  # > 0: trainable input synaptic delays 0..max_delay_steps steps
    reset: str = "subtract"  # 'subtract': v - v_th z[t-1]; 'zero': v = 0 after a spike (next tick)

    def __post_init__(self) -> None:
        if self.tau_out2_s is not None and not (isinstance(self.tau_out2_s, (int, float))
                                                and math.isfinite(self.tau_out2_s) and self.tau_out2_s > 0):
            raise ValueError(f"tau_out2_s must be None or a finite number > 0, got {self.tau_out2_s!r}")
        if self.tau_out2_s is not None and self.n_out is None:
            raise ValueError("tau_out2_s (a double-exponential readout) needs a readout: set n_out")
        if not (isinstance(self.max_delay_steps, int) and 0 <= self.max_delay_steps <= 256):
            raise ValueError(f"max_delay_steps must be an int in [0, 256], got {self.max_delay_steps!r}")
        if not (isinstance(self.n_in, int) and self.n_in >= 1):
            raise ValueError(f"n_in must be an int >= 1, got {self.n_in!r}")
        if len(self.layers) < 1 or any(not isinstance(n, int) or n < 1 for n in self.layers):
            raise ValueError(f"layers must be a non-empty list of ints >= 1, got {self.layers!r}")
        if len(self.recurrent) != len(self.layers):
            raise ValueError(f"recurrent must have one flag per layer ({len(self.layers)}), got {self.recurrent!r}")
        if self.reset not in ("subtract", "zero"):
            raise ValueError(f"reset must be 'subtract' or 'zero', got {self.reset!r}")
        if self.model not in ("lif", "alif"):
            raise ValueError(f"model must be 'lif' or 'alif', got {self.model!r}")
        for name in ("dt_s", "tau_mem_s", "tau_adapt_s", "tau_out_s", "v_th"):
            val = getattr(self, name)
            if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {val!r}")
        for name in ("beta_adapt", "refractory_s"):
            val = getattr(self, name)
            if not (math.isfinite(val) and val >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {val!r}")
        surrogate_id(self.surrogate, self.surrogate_param)

    @property
    def alpha(self) -> float:
        return math.exp(-self.dt_s / self.tau_mem_s)

    @property
    def rho(self) -> float:
        return math.exp(-self.dt_s / self.tau_adapt_s)

    @property
    def kappa(self) -> float:
        return math.exp(-self.dt_s / self.tau_out_s)

    @property
    def kappa2(self) -> float | None:
        return None if self.tau_out2_s is None else math.exp(-self.dt_s / self.tau_out2_s)

    @property
    def n_ref(self) -> int:
        return int(round(self.refractory_s / self.dt_s))

    @property
    def beta(self) -> float:
        return float(self.beta_adapt) if self.model == "alif" else 0.0

    @property
    def n_output(self) -> int:
        return self.n_out if self.n_out is not None else self.layers[-1]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers)
        d["recurrent"] = list(self.recurrent)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetSpec:
        d = dict(d)
        d["layers"] = tuple(d["layers"])
        d["recurrent"] = tuple(bool(r) for r in d["recurrent"])
        return cls(**d)


def init_params(spec: NetSpec, seed: int, *, input_scale: float = 1.0, spectral_radius: float = 0.9,
                readout_scale: float = 1.0) -> dict[str, np.ndarray]:
    """Random parameters: ``w{l} ~ N(0, (input_scale * v_th (1 - alpha) * 4 / sqrt(fan_in))^2)``...

    Precisely: feedforward weights have standard deviation ``input_scale * g / sqrt(fan_in)``
    with ``g = 3 v_th (1 - alpha)`` (so a layer driven by ~fan_in/3 coincident inputs is near
    threshold); recurrent weights are Gaussian, zero diagonal, rescaled so the spectral radius
    of the spike-to-spike gain ``r / ((1 - alpha) v_th)`` equals ``spectral_radius`` (the
    convention of :meth:`rtsnn.snn.params.Model.random`); the readout is
    ``N(0, (readout_scale / sqrt(n_L))^2)``.
    """
    rng = np.random.default_rng(seed)
    p: dict[str, np.ndarray] = {}
    n_prev = spec.n_in
    a = spec.alpha
    for l, (n, rec) in enumerate(zip(spec.layers, spec.recurrent)):
        g = 3.0 * spec.v_th * (1.0 - a)
        p[f"w{l}"] = rng.standard_normal((n_prev, n)) * input_scale * g / math.sqrt(n_prev)
        if rec:
            p[f"r{l}"] = recurrent_init(n, spectral_radius * (1.0 - a) * spec.v_th, rng)
        p[f"alpha{l}"] = np.full(n, a)
        p[f"vth{l}"] = np.full(n, float(spec.v_th))
        n_prev = n
    if spec.n_out is not None:
        p["w_out"] = rng.standard_normal((n_prev, spec.n_out)) * readout_scale / math.sqrt(n_prev)
        p["b_out"] = np.zeros(spec.n_out)
        p["kappa"] = np.array([spec.kappa])
        if spec.kappa2 is not None:
            p["kappa2"] = np.array([spec.kappa2])
    if spec.max_delay_steps > 0:
        # uniform over the delays at first: the relaxation starts undecided
        p["delay_logits"] = np.zeros((spec.n_in, spec.layers[0], spec.max_delay_steps + 1))
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
    """Forward/backward of a :class:`NetSpec` network for given parameters.

    ``calib`` holds the per-layer surrogate scales ``s_l`` (default 1)."""

    def __init__(self, spec: NetSpec, dtype=np.float32, checkpoint_steps: int | None = None):
        if checkpoint_steps is not None and (not isinstance(checkpoint_steps, int) or checkpoint_steps < 1):
            raise ValueError(f"checkpoint_steps must be None or an int >= 1, got {checkpoint_steps!r}")
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.checkpoint_steps = checkpoint_steps
        self.kind, self.sg_param = surrogate_id(spec.surrogate, spec.surrogate_param)
        self.calib = [1.0] * len(spec.layers)

    # ---------------------------------------------------------------- forward
    def _cast(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.ascontiguousarray(v, dtype=self.dtype) for k, v in params.items()}

    def _zero_states(self, B: int):
        dt = self.dtype
        states = [_LayerState(np.zeros((B, n), dt), np.zeros((B, n), dt), np.zeros((B, n), dt),
                              np.zeros((B, n), np.int64)) for n in self.spec.layers]
        # readout traces: stage r (and q for a double-exponential readout)
        r = np.zeros((2 if self.spec.tau_out2_s is not None else 1, B, self.spec.layers[-1]), dt)
        return states, r

    def _delayed_current(self, cp, x: np.ndarray) -> np.ndarray:
        """``I[t] = sum_d x[t - d] @ (w0 * p_d)`` over the whole input (T, B, n_in)."""
        T, B, _ = x.shape
        p = delay_probs(np.asarray(cp["delay_logits"], np.float64))
        w0 = np.asarray(cp["w0"], np.float64)
        out = np.zeros((T, B, self.spec.layers[0]), self.dtype)
        tmp = np.empty_like(out)
        for d in range(p.shape[-1]):
            sparse_matmul(shifted(x, d, 0, T), np.ascontiguousarray(w0 * p[..., d], dtype=self.dtype), tmp)
            out += tmp
        return out

    def _segment(self, cp, x_seg, states, r, keep: bool, counts=None, iff0=None):
        spec = self.spec
        Ts, B, _ = x_seg.shape
        h = x_seg
        recs = []
        empty = np.zeros((1, 1), self.dtype)
        for l, n in enumerate(spec.layers):
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
            rec = spec.recurrent[l]
            args = (iff, cp[f"r{l}"] if rec else empty, rec, cp[f"alpha{l}"], cp[f"vth{l}"],
                    spec.rho, spec.beta, spec.n_ref, spec.model == "alif",
                    st.v, st.a, st.z, st.refr, vs, as_, zs, ms)
            if spec.reset == "zero":
                layer_forward(*args, True)
            else:
                layer_forward(*args)
            if counts is not None:
                counts[l] += zs.sum(axis=(0, 1), dtype=np.float64)
            recs.append((h, vs, as_, zs, ms, z0, v0) if keep else None)
            h = zs
        ro = None
        if spec.n_out is not None:
            r0 = r.copy()
            rs = np.empty_like(h)
            readout_forward(h, float(cp["kappa"][0]), r[0], rs)
            top = rs
            qs = None
            if spec.tau_out2_s is not None:  # second stage of the double exponential
                qs = np.empty_like(h)
                readout_forward(rs, float(cp["kappa2"][0]), r[1], qs)
                top = qs
            y = np.empty((Ts, B, spec.n_out), self.dtype)
            sparse_matmul(top, cp["w_out"], y)
            y += cp["b_out"]
            ro = (rs, r0, qs) if keep else None
        else:
            y = h
        return y, (recs, ro) if keep else None

    def forward(self, params: dict[str, np.ndarray], x: np.ndarray) -> Tape:
        """Run the network on ``x`` (T, B, n_in); returns a :class:`Tape` (``tape.y`` the output)."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != self.spec.n_in:
            raise ValueError(f"x must be (T, B, n_in={self.spec.n_in}), got shape {x.shape}")
        T, B, _ = x.shape
        cp = self._cast(params)
        K = self.checkpoint_steps or T
        segs = [(t0, min(t0 + K, T)) for t0 in range(0, T, K)]
        states, r = self._zero_states(B)
        counts = [np.zeros(n) for n in self.spec.layers]
        ys, starts, records = [], [], []
        keep = self.checkpoint_steps is None
        iff0 = self._delayed_current(cp, x) if self.spec.max_delay_steps > 0 else None
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
        spec = self.spec
        cp = self._cast(params)
        T, B, _ = tape.y.shape
        if dy.shape != tape.y.shape:
            raise ValueError(f"dy must have the shape of the output {tape.y.shape}, got {dy.shape}")
        grads = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
        L = len(spec.layers)
        ev = [np.zeros((B, n)) for n in spec.layers]
        ea = [np.zeros((B, n)) for n in spec.layers]
        er = np.zeros((B, spec.layers[-1]))
        eq = np.zeros((B, spec.layers[-1]))
        empty = np.zeros((1, 1), self.dtype)
        dk = dk2 = 0.0
        delays = spec.max_delay_steps > 0
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
            if spec.n_out is not None:
                rs, r0, qs = ro
                top = rs if qs is None else qs
                outer_accumulate(top, dys, grads["w_out"])
                grads["b_out"] += dys.sum(axis=(0, 1), dtype=np.float64)
                d_top = np.empty((Ts, B, spec.layers[-1]), self.dtype)
                matmul_transposed(dys, cp["w_out"], d_top)
                if qs is not None:  # through the second stage first: its input adjoint is dL/dr
                    d_rs = np.zeros((Ts, B, spec.layers[-1]), np.float64)
                    dk2 += readout_backward(d_top, qs, r0[1], float(cp["kappa2"][0]), eq, d_rs)
                else:
                    d_rs = d_top
                ext = np.zeros((Ts, B, spec.layers[-1]), np.float64)
                dk += readout_backward(d_rs, rs, r0[0], float(cp["kappa"][0]), er, ext)
            else:
                ext = dys.astype(np.float64)
            for l in range(L - 1, -1, -1):
                h, vs, as_, zs, ms, z0, v0 = recs[l]
                if dz_reg is not None and dz_reg[l] is not None:
                    ext = ext + dz_reg[l]
                rec = spec.recurrent[l]
                d_cur = np.empty((Ts, B, spec.layers[l]), np.float64)
                layer_backward(np.ascontiguousarray(ext, dtype=np.float64), vs, as_, zs, ms, z0, v0,
                               cp[f"r{l}"] if rec else empty, rec,
                               cp[f"alpha{l}"], cp[f"vth{l}"], spec.rho, spec.beta, spec.model == "alif",
                               self.kind, self.sg_param, float(self.calib[l]), spec.detach_reset,
                               ev[l], ea[l], d_cur, grads[f"alpha{l}"], grads[f"vth{l}"], spec.reset == "zero")
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
                    ext = np.empty((Ts, B, spec.layers[l - 1]), np.float64)
                    matmul_transposed(d_cur, params[f"w{l}"].astype(np.float64), ext)
        if spec.n_out is not None:
            grads["kappa"][0] = dk
            if spec.tau_out2_s is not None:
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
            thr = params[f"vth{l}"] + self.spec.beta * as_
            out.append(float(np.mean(surrogate_grad_np(vs - thr, self.kind, self.sg_param) * ms)))
        return out

    def calibrate(self, params: dict[str, np.ndarray], x: np.ndarray, gamma: float = 1.0,
                  lo: float = 1e-2, hi: float = 1e2) -> list[float]:
        """Per-layer surrogate scale ``s_l = gamma / (||W_{l+1}||_2 E[|g_l|])`` (REFERENCES
        section 1; ``W_{L+1}`` is ``w_out`` or 1 for a spiking output layer), clipped to
        [lo, hi]; the last layer keeps 1 when it is the (spiking) output. Returns the scales."""
        gm = self.surrogate_mean(params, x)
        L = len(self.spec.layers)
        scales = []
        for l in range(L):
            if l + 1 < L:
                wn = float(np.linalg.norm(params[f"w{l + 1}"], 2))
            elif self.spec.n_out is not None:
                wn = float(np.linalg.norm(params["w_out"], 2))
            else:
                scales.append(1.0)
                continue
            s = gamma / max(wn * gm[l], 1e-12)
            scales.append(float(min(max(s, lo), hi)))
        self.calib = scales
        return scales
