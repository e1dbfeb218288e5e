"""Quantisation-aware training (QAT) on Xylo's integer dynamics.

Forward pass: the *exact* chip dynamics -- :func:`rtsnn_xylo.int_kernels.xylo_run`, bit-identical
to ``xylosim.v2`` -- on the quantised network: int8 weights (``clip(rint(latent), -128, 127)``)
shifted by the mapping's fixed ``weight_shift_*``, int16 saturating states, bit-shift decays, up
to 31 spikes per hidden neuron per step, input counts capped at 15. Every Xylo limit holds by
construction (sizes and ranges are checked with :func:`rtsnn_xylo.drc.require_fit` on the config
that :func:`to_config` returns).

Backward pass: the adjoint of the *relaxed forward* below, evaluated on the recorded integer
trajectory. Per hidden neuron ``j`` (synapse 0; ``W = w_int * 2^ws`` in state units; ``c[t]``
input counts min(count, 15); ``z`` spike counts)::

    a[t] = ds * (a[t-1] + W_in^T c[t] + W_rec^T z[t-1])      ds = 1 - 2^-dash_syn
    p[t] = dm * v[t-1] + a[t]                                 dm = 1 - 2^-dash_mem
    z[t] = S(p[t] / th)                                       spike count
    v[t] = p[t] - th * z[t]                                   reset by subtraction
    o[t] = do * (o[t-1] + W_out^T z[t-1])                     output synapse (the 'isyn' readout)

Straight-through estimators (exactly these):

* weight rounding ``rint`` -> identity; int8 clip -> none (the latent is clamped to
  [-128.49, 127.49] after every update, so it never leaves the int8 range);
* the bit-shift decay ``x - (x >> dash)`` (floor, and "at least 1 towards 0") -> ``x * (1 - 2^-dash)``;
* int16 saturation -> identity while the state is strictly inside the rails, **zero**
  gradient through a state that sits on a rail (clipped STE) -- ``a``, ``p`` and ``o``;
* spike count ``min(floor(p/th), 31)`` for ``p >= th`` and 0 below -> ``S(u)`` with
  ``S'(u) = 1 / (1 + k (1 - u))^2`` for ``u < 1`` (fast-sigmoid tail of the first step,
  steepness ``k``), ``1`` for ``1 <= u < 32`` (the staircase's mean slope), ``0`` for
  ``u >= 32`` (the 31-spike cap); ``S(u) = 1/(k (1 + k(1-u)))`` below 1 and ``1/k + u - 1``
  above, continuous, so :func:`relaxed_forward` is a genuine differentiable function whose
  finite differences the backward kernel matches (tested);
* the input cap at 15 events -> no gradient needed (inputs are data).

Loss heads (host side, float): ``y[t] = o[t] / out_scale + b_out``; classification uses
``softmax(mean_t y[t])`` cross-entropy (the float model's ``mean_ce``), regression a masked
MSE on ``y`` against targets scaled by ``target_sd``. ``b_out`` is trained too (it never
reaches the chip). Thresholds, decays and weight shifts stay fixed (those of the mapping).

Parameter noise (item 5, :mod:`rtsnn_xylo.mismatch`): ``threshold_jitter`` > 0 draws each
sample's per-neuron thresholds ``rint(th * (1 + U(-j, j)))`` (>= 1) in the forward pass.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from rtsnn_xylo.drc import require_fit
from rtsnn_xylo.int_kernels import SMAX, SMIN, xylo_run
from rtsnn_xylo.spec import XyloConfig
from rtsnn_xylo.ticks import spread_counts, tick_rows

LATENT_LO, LATENT_HI = -128.49, 127.49


# ------------------------------------------------------------------ kernels
@njit(cache=True, nogil=True)
def batch_forward(xs: np.ndarray, w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray,
                  thresholds: np.ndarray, bias: np.ndarray, dash_mem: np.ndarray, dash_syn: np.ndarray,
                  threshold_out: np.ndarray, bias_out: np.ndarray, dash_mem_out: np.ndarray,
                  dash_syn_out: np.ndarray, rec_v: np.ndarray, rec_i: np.ndarray, rec_z: np.ndarray,
                  rec_i_out: np.ndarray) -> None:
    """Run every sample ``xs[b]`` (T, n_in) from the zero state with the exact chip dynamics
    (``thresholds[b]`` per sample: mismatch draws), recording post-reset ``v_mem``, ``i_syn``
    (T, n_hid, 2), spike counts and the output synaptic current."""
    B, T = xs.shape[0], xs.shape[1]
    n_hid = w_in.shape[1]
    n_out = w_out.shape[1]
    rvo = np.zeros((T, n_out), np.int32)
    rzo = np.zeros((T, n_out), np.int32)
    for b in range(B):
        v_mem = np.zeros(n_hid, np.int32)
        i_syn = np.zeros((n_hid, 2), np.int32)
        z = np.zeros(n_hid, np.int32)
        v_out = np.zeros(n_out, np.int32)
        i_out = np.zeros(n_out, np.int32)
        z_out = np.zeros(n_out, np.int32)
        xylo_run(xs[b], w_in, w_rec, w_out, thresholds[b], bias, dash_mem, dash_syn, threshold_out, bias_out,
                 dash_mem_out, dash_syn_out, False, v_mem, i_syn, z, v_out, i_out, z_out,
                 rec_v[b], rec_i[b], rec_z[b], rvo, rec_i_out[b], rzo)


@njit(cache=True, nogil=True)
def spike_surrogate(p: float, th: float, k: float) -> float:
    """``dz/dp = S'(p/th) / th`` (see the module docstring)."""
    u = p / th
    if u < 1.0:
        d = 1.0 + k * (1.0 - u)
        return 1.0 / (d * d * th)
    if u < 32.0:
        return 1.0 / th
    return 0.0


@njit(cache=True, nogil=True)
def sample_backward(c: np.ndarray, a: np.ndarray, p: np.ndarray, z: np.ndarray, ok_a: np.ndarray,
                    ok_p: np.ndarray, ok_o: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray, th: np.ndarray,
                    ds: np.ndarray, dm: np.ndarray, do: np.ndarray, g_o: np.ndarray, k: float,
                    g_in: np.ndarray, g_rec: np.ndarray, g_out: np.ndarray) -> None:
    """Adjoint of the relaxed forward for one sample, accumulated into ``g_in`` (n_in, n_hid),
    ``g_rec`` (n_hid, n_hid), ``g_out`` (n_hid, n_out) (state units). ``c`` (T, n_in), ``a``,
    ``p`` (pre-reset membrane), ``z`` (T, n_hid), float64; ``ok_*`` 1.0 where the state is off
    the int16 rails (0.0 blocks the gradient); ``g_o`` (T, n_out) = dL/do[t]."""
    T, n_in = c.shape
    n_hid = a.shape[1]
    n_out = g_o.shape[1]
    A_next = np.zeros(n_hid)  # ds * dL/da[t+1]
    O_next = np.zeros(n_out)  # do * dL/do[t+1]
    V_next = np.zeros(n_hid)  # dL/dv[t]  (= dm * dL/dp[t+1])
    dz = np.zeros(n_hid)
    for t in range(T - 1, -1, -1):
        # dL/dz[t]: through a[t+1] (recurrent) and o[t+1] (readout)
        for kk in range(n_hid):
            s = 0.0
            for j in range(n_hid):
                s += w_rec[kk, j] * A_next[j]
            for o in range(n_out):
                s += w_out[kk, o] * O_next[o]
            dz[kk] = s
        # output synapse at t: O[t] = g_o[t] + O_next ; pass through decay for step t
        for o in range(n_out):
            O = (g_o[t, o] + O_next[o]) * ok_o[t, o]
            O_next[o] = do[o] * O
        for j in range(n_hid):
            sg = spike_surrogate(p[t, j], th[j], k)
            P = (dz[j] * sg + V_next[j] * (1.0 - th[j] * sg)) * ok_p[t, j]
            A = (P + A_next[j]) * ok_a[t, j]
            A_next[j] = ds[j] * A
            V_next[j] = dm[j] * P
        # weight gradients of step t (inputs to a[t] scaled by ds, to o[t] by do)
        for i in range(n_in):
            ci = c[t, i]
            if ci != 0.0:
                for j in range(n_hid):
                    g_in[i, j] += ci * A_next[j]
        if t > 0:
            for kk in range(n_hid):
                zk = z[t - 1, kk]
                if zk != 0.0:
                    for j in range(n_hid):
                        g_rec[kk, j] += zk * A_next[j]
                    for o in range(n_out):
                        g_out[kk, o] += zk * O_next[o]


# ------------------------------------------------------------------ reference (plain numpy)
def relaxed_S(u: np.ndarray, k: float) -> np.ndarray:
    """The continuous spike-count relaxation ``S`` of the module docstring."""
    u = np.asarray(u, np.float64)
    lo = 1.0 / (k * (1.0 + k * (1.0 - np.minimum(u, 1.0))))
    return np.where(u < 1.0, lo, 1.0 / k + np.minimum(u, 32.0) - 1.0)


def relaxed_forward(c: np.ndarray, w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray, th: np.ndarray,
                    ds: np.ndarray, dm: np.ndarray, do: np.ndarray, k: float) -> dict[str, np.ndarray]:
    """Float relaxation of the chip dynamics (module docstring), one sample ``c`` (T, n_in); weights
    in state units. Returns ``a``, ``p``, ``z``, ``o`` (T, n)."""
    T = c.shape[0]
    n_hid, n_out = w_in.shape[1], w_out.shape[1]
    a, v, z, o = np.zeros(n_hid), np.zeros(n_hid), np.zeros(n_hid), np.zeros(n_out)
    rec = {key: np.zeros((T, n)) for key, n in (("a", n_hid), ("p", n_hid), ("z", n_hid), ("o", n_out))}
    for t in range(T):
        o = do * (o + z @ w_out)
        a = ds * (a + c[t] @ w_in + z @ w_rec)
        p = dm * v + a
        z = relaxed_S(p / th, k)
        v = p - th * z
        rec["a"][t], rec["p"][t], rec["z"][t], rec["o"][t] = a, p, z, o
    return rec


# ------------------------------------------------------------------ trainer
@dataclass
class QatResult:
    """``config``: the fine-tuned chip config (DRC-checked); ``history``: one dict per epoch."""

    config: XyloConfig
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0  # the epoch whose weights ``config`` holds (the last unless keep_best)


def _check_base(cfg: XyloConfig) -> None:
    if cfg.has_bias:
        raise ValueError("QAT supports configs without bias (has_bias=False), as map_model produces")
    if np.any(cfg.w_in[:, :, 1]) or np.any(cfg.w_rec[:, :, 1]):
        raise ValueError("QAT trains synapse 0 only; the config has weights on synapse 1")


def to_config(base: XyloConfig, w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray,
              b_out: np.ndarray) -> XyloConfig:
    """``base`` with new int8 weights ``rint(latent)`` (synapse 0) and host bias; DRC-checked."""
    q = lambda w: np.clip(np.rint(w), -128, 127).astype(np.int64)  # noqa: E731
    z3 = np.zeros_like(base.w_in)
    z3[:, :, 0] = q(w_in)
    r3 = np.zeros_like(base.w_rec)
    r3[:, :, 0] = q(w_rec)
    np.fill_diagonal(r3[:, :, 0], 0)
    cfg = XyloConfig(w_in=z3, w_rec=r3, w_out=q(w_out), threshold=base.threshold, threshold_out=base.threshold_out,
                     dash_mem=base.dash_mem, dash_syn=base.dash_syn, dash_mem_out=base.dash_mem_out,
                     dash_syn_out=base.dash_syn_out, weight_shift_in=base.weight_shift_in,
                     weight_shift_rec=base.weight_shift_rec, weight_shift_out=base.weight_shift_out,
                     has_bias=False, dt_s=base.dt_s, out_scale=base.out_scale, b_out=np.asarray(b_out, np.float64),
                     steps_per_tick=base.steps_per_tick, notes={**base.notes, "qat": True})
    require_fit(cfg)
    return cfg


def check_counts(xs: Any, n_in: int, name: str = "x", steps_per_tick: int = 1) -> np.ndarray:
    """Tick counts (n, T, n_in) -> chip-step counts (n, T * steps_per_tick, n_in) int32 in
    0..15 (a tick's count capped at ``15 * steps_per_tick``, then spread over its steps by
    :func:`rtsnn_xylo.ticks.spread_counts`); ValueError for NaN/negative/non-integral/wrong shape."""
    arr = np.asarray(xs)
    if arr.ndim != 3 or arr.shape[2] != n_in or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must be (n_samples, T, n_in={n_in}) input counts, got shape {arr.shape}")
    f = arr.astype(np.float64)
    if not np.all(np.isfinite(f)) or np.any(f < 0) or np.any(f != np.rint(f)):
        raise ValueError(f"{name} must hold finite non-negative integer event counts")
    c = np.minimum(f, 15 * steps_per_tick).astype(np.int32)
    return np.ascontiguousarray(spread_counts(c, steps_per_tick), np.int32)


class ChipTrainer:
    """Holds latent weights (int8 units) on top of a mapped base config; runs batches on the exact
    chip dynamics and returns gradients of the relaxed model (see the module docstring)."""

    def __init__(self, base: XyloConfig, surrogate_k: float = 5.0):
        require_fit(base)
        _check_base(base)
        self.base = base
        self.k = float(surrogate_k)
        self.params = {"w_in": base.w_in[:, :, 0].astype(np.float64), "w_rec": base.w_rec[:, :, 0].astype(np.float64),
                       "w_out": base.w_out.astype(np.float64), "b_out": base.b_out.astype(np.float64).copy()}
        b = base
        self.ds = 1.0 - 2.0 ** -b.dash_syn[:, 0].astype(np.float64)
        self.dm = 1.0 - 2.0 ** -b.dash_mem.astype(np.float64)
        self.do = 1.0 - 2.0 ** -b.dash_syn_out.astype(np.float64)
        self.inv_scale = 1.0 / b.out_scale

    def ints(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Effective int32 weights (n_in, n_hid, 2), (n_hid, n_hid, 2), (n_hid, n_out) of the current latents."""
        b, p = self.base, self.params
        q = lambda w: np.clip(np.rint(w), -128, 127).astype(np.int32)  # noqa: E731
        wi = np.zeros((b.n_in, b.n_hid, 2), np.int32)
        wi[:, :, 0] = q(p["w_in"]) << b.weight_shift_in
        wr = np.zeros((b.n_hid, b.n_hid, 2), np.int32)
        wr[:, :, 0] = q(p["w_rec"]) << b.weight_shift_rec
        np.fill_diagonal(wr[:, :, 0], 0)
        return wi, wr, q(p["w_out"]) << b.weight_shift_out

    def run(self, xs: np.ndarray, thresholds: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Exact chip run of counts ``xs`` (B, T, n_in) int32; ``thresholds`` (B, n_hid) or None."""
        b = self.base
        B, T, _ = xs.shape
        th = (np.broadcast_to(b.threshold.astype(np.int32), (B, b.n_hid)) if thresholds is None
              else thresholds).astype(np.int32)
        wi, wr, wo = self.ints()
        rv = np.zeros((B, T, b.n_hid), np.int32)
        ri = np.zeros((B, T, b.n_hid, 2), np.int32)
        rz = np.zeros((B, T, b.n_hid), np.int32)
        ro = np.zeros((B, T, b.n_out), np.int32)
        i32 = lambda a: np.ascontiguousarray(a, np.int32)  # noqa: E731
        batch_forward(i32(xs), wi, wr, wo, np.ascontiguousarray(th), i32(b.bias), i32(b.dash_mem), i32(b.dash_syn),
                      i32(b.threshold_out), i32(b.bias_out), i32(b.dash_mem_out), i32(b.dash_syn_out), rv, ri, rz, ro)
        return {"v_mem": rv, "i_syn": ri[..., 0], "spikes": rz, "i_syn_out": ro, "thresholds": th}

    def outputs(self, rec: dict[str, np.ndarray]) -> np.ndarray:
        """Host decoding ``y = i_syn_out / out_scale + b_out`` (B, T, n_out)."""
        return rec["i_syn_out"] * self.inv_scale + self.params["b_out"]

    def grads(self, xs: np.ndarray, rec: dict[str, np.ndarray], dy: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients (latent int8 units) for dL/dy = ``dy`` (B, T, n_out) on the recorded run ``rec``."""
        b = self.base
        _, wr, wo = self.ints()
        wr_f = wr[:, :, 0].astype(np.float64)
        wo_f = wo.astype(np.float64)
        g_in = np.zeros((b.n_in, b.n_hid))
        g_rec = np.zeros((b.n_hid, b.n_hid))
        g_out = np.zeros((b.n_hid, b.n_out))
        for s in range(xs.shape[0]):
            th = rec["thresholds"][s].astype(np.float64)
            z = rec["spikes"][s].astype(np.float64)
            a = rec["i_syn"][s].astype(np.float64)
            p = rec["v_mem"][s] + z * th
            o = rec["i_syn_out"][s]
            ok_a = ((a > SMIN) & (a < SMAX)).astype(np.float64)
            ok_p = ((p > SMIN) & (p < SMAX)).astype(np.float64)
            ok_o = ((o > SMIN) & (o < SMAX)).astype(np.float64)
            sample_backward(xs[s].astype(np.float64), a, p, z, ok_a, ok_p, ok_o, wr_f, wo_f, th, self.ds, self.dm,
                            self.do, dy[s] * self.inv_scale, self.k, g_in, g_rec, g_out)
        np.fill_diagonal(g_rec, 0.0)
        return {"w_in": g_in * 2.0**b.weight_shift_in, "w_rec": g_rec * 2.0**b.weight_shift_rec,
                "w_out": g_out * 2.0**b.weight_shift_out, "b_out": dy.sum(axis=(0, 1))}

    def config(self) -> XyloConfig:
        p = self.params
        return to_config(self.base, p["w_in"], p["w_rec"], p["w_out"], p["b_out"])


def ce_head(y: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``softmax(mean_t y)`` cross-entropy: (loss, dL/dy (B, T, C), logits (B, C))."""
    T = y.shape[1]
    logits = y.mean(axis=1)
    z = logits - logits.max(axis=1, keepdims=True)
    pr = np.exp(z)
    pr /= pr.sum(axis=1, keepdims=True)
    B = y.shape[0]
    loss = float(-np.mean(np.log(pr[np.arange(B), labels] + 1e-300)))
    d = pr.copy()
    d[np.arange(B), labels] -= 1.0
    d /= B
    return loss, np.broadcast_to(d[:, None, :] / T, y.shape).copy(), logits


def mse_head(y: np.ndarray, target: np.ndarray, mask: np.ndarray, target_sd: np.ndarray) -> tuple[float, np.ndarray]:
    """Masked MSE of ``(y - target) / target_sd``: (loss, dL/dy)."""
    diff = (y - target) / target_sd * mask[..., None]
    n = max(float(mask.sum()) * y.shape[2], 1.0)
    return float(0.5 * np.sum(diff**2) / n), diff / target_sd / n


def chip_predict_logits(cfg: XyloConfig, xs: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class logits ``mean_t y[t]`` (over ticks) of the chip (exact integer dynamics) for tick
    counts (n, T, n_in)."""
    return chip_outputs(cfg, xs, batch_size).mean(axis=1)


def chip_outputs(cfg: XyloConfig, xs: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Decoded chip outputs (n, T, n_out), one per tick (after its last chip step), for tick
    counts (n, T, n_in)."""
    tr = ChipTrainer(cfg)
    xs = check_counts(xs, cfg.n_in, steps_per_tick=cfg.steps_per_tick)
    rows = tick_rows(xs.shape[1], cfg.steps_per_tick)
    return np.concatenate([tr.outputs(tr.run(xs[i:i + batch_size]))[:, rows]
                           for i in range(0, xs.shape[0], batch_size)])


def jitter_thresholds(th: np.ndarray, jitter: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws of per-neuron thresholds ``max(rint(th * (1 + U(-jitter, jitter))), 1)`` (n, n_hid) int32."""
    th = np.asarray(th, np.float64)
    return np.maximum(np.rint(th[None] * (1.0 + rng.uniform(-jitter, jitter, (n, th.shape[0])))), 1).astype(np.int32)


def qat_finetune(base: XyloConfig, xs: np.ndarray, target: np.ndarray, *, epochs: int, task: str = "classify",
                 lr: float = 0.3, batch_size: int = 32, seed: int = 0, mask: np.ndarray | None = None,
                 target_sd: np.ndarray | None = None, surrogate_k: float = 5.0, threshold_jitter: float = 0.0,
                 lr_b_out: float = 1e-2, evaluate=None, keep_best: str | None = None) -> QatResult:
    """Fine-tune the int8 weights of ``base`` on the chip dynamics (module docstring).

    ``xs`` (n, T, n_in) event counts per tick (``base.steps_per_tick`` chip steps each, the
    loss on each tick's last step); ``task='classify'``: ``target`` (n,) labels (CE on
    ``mean_t y``); ``'regress'``: ``target`` (n, T, n_out) with ``mask`` (n, T) and ``target_sd``.
    ``lr`` is Adam's step in int8 units. ``threshold_jitter`` > 0 trains with per-sample,
    per-neuron threshold noise ``U(-j, j)`` (relative). ``evaluate(config) -> dict`` adds metrics
    to each epoch's history entry; with ``keep_best = key`` the result is the config of the epoch
    whose ``evaluate(...)[key]`` was highest (early stopping: evaluate on held-out data, never on
    the test set), and ``result.best_epoch`` says which."""
    from rtsnn.learn.offline.optim import Adam

    if task not in ("classify", "regress"):
        raise ValueError(f"task must be 'classify' or 'regress', got {task!r}")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if not (0.0 <= threshold_jitter < 1.0):
        raise ValueError(f"threshold_jitter must lie in [0, 1), got {threshold_jitter!r}")
    n_ticks = np.asarray(xs).shape[1] if np.ndim(xs) == 3 else 0
    xs = check_counts(xs, base.n_in, steps_per_tick=base.steps_per_tick)  # (n, T*K, n_in) chip steps
    rows = tick_rows(xs.shape[1], base.steps_per_tick)
    n = xs.shape[0]
    target = np.asarray(target)
    if task == "classify":
        if target.shape != (n,) or not np.issubdtype(target.dtype, np.integer) or target.min() < 0 \
                or target.max() >= base.n_out:
            raise ValueError(f"target must be (n_samples={n},) int labels in [0, {base.n_out}), got "
                             f"shape {target.shape} dtype {target.dtype}")
    else:
        if target.shape != (n, n_ticks, base.n_out):
            raise ValueError(f"target must be (n, T, n_out) = {(n, n_ticks, base.n_out)}, got {target.shape}")
        mask = np.ones((n, n_ticks)) if mask is None else np.asarray(mask, np.float64)
        if mask.shape != (n, n_ticks):
            raise ValueError(f"mask must be (n, T) = {(n, n_ticks)}, got {mask.shape}")
        target_sd = np.ones(base.n_out) if target_sd is None else np.asarray(target_sd, np.float64)
    tr = ChipTrainer(base, surrogate_k)
    opt_w = Adam(lr=lr)
    opt_b = Adam(lr=lr_b_out)
    if keep_best is not None and evaluate is None:
        raise ValueError("keep_best needs evaluate (a function config -> dict of metrics)")
    th0 = base.threshold.astype(np.float64)
    history = []
    best_score, best_cfg, best_epoch = -math.inf, None, 0
    for ep in range(epochs):
        rng = np.random.default_rng([seed, ep])
        order = rng.permutation(n)
        t0 = time.perf_counter()
        tot = 0.0
        for i in range(0, n, batch_size):
            idx = np.sort(order[i:i + batch_size])
            xb = xs[idx]
            th = None
            if threshold_jitter > 0:
                th = jitter_thresholds(th0, threshold_jitter, len(idx), rng)
            rec = tr.run(xb, th)
            y = tr.outputs(rec)
            # the losses see each tick's output (its last chip step); the other steps get no
            # direct gradient
            if task == "classify":
                loss, dy_t, _ = ce_head(y[:, rows], target[idx])
            else:
                loss, dy_t = mse_head(y[:, rows], target[idx], mask[idx], target_sd)
            if not math.isfinite(loss):
                raise RuntimeError(f"QAT loss became {loss!r} at epoch {ep + 1}")
            dy = np.zeros_like(y)
            dy[:, rows] = dy_t
            g = tr.grads(xb, rec, dy)
            opt_w.step(tr.params, g, ("w_in", "w_rec", "w_out"))
            opt_b.step(tr.params, g, ("b_out",))
            for key in ("w_in", "w_rec", "w_out"):
                np.clip(tr.params[key], LATENT_LO, LATENT_HI, out=tr.params[key])
            tot += loss * len(idx)
        entry = {"epoch": ep + 1, "loss": tot / n, "epoch_s": time.perf_counter() - t0}
        if evaluate is not None:
            cfg_ep = tr.config()
            entry.update(evaluate(cfg_ep))
            if keep_best is not None:
                if keep_best not in entry:
                    raise ValueError(f"keep_best={keep_best!r} is not among evaluate()'s keys")
                score = float(entry[keep_best])
                if score > best_score:
                    best_score, best_cfg, best_epoch = score, cfg_ep, ep + 1
        history.append(entry)
    if best_cfg is not None:
        return QatResult(config=best_cfg, history=history, best_epoch=best_epoch)
    return QatResult(config=tr.config(), history=history, best_epoch=epochs)
