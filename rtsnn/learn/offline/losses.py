"""Losses on a network's output ``out`` (T, B, C) and regularisers on its spikes.

Every loss returns ``(value, d_out)`` with ``d_out = dL/d out`` of the same shape; values are
means over the batch. ``out`` is either the spikes of a spiking output layer or the leaky
readout ``y[t]`` (see :mod:`rtsnn.learn.offline.bptt_engine`).

* ``count_ce``: spike-count softmax cross-entropy, logits ``c_k = sum_t out_k[t]``;
  ``dL/d out_k[t] = (p_k - y_k) / B`` at every step (the gradient spread over time).
* ``mean_ce``: the same on the time-mean ``c_k = (1/T) sum_t out_k[t]`` (for a readout).
* ``rate_ce``: per-step cross-entropy ``(1/T) sum_t CE(softmax(out[t]), label)``.
* ``first_spike``: first-to-spike in discrete time: logits ``c_k = sum_t d^t out_k[t]`` with
  ``d = exp(-1/tau_steps)`` (earlier spikes count more; with few spikes the earliest wins).
* ``mse``: ``(1/2) mean_{t,b,c} (out - target)^2`` on the low-pass-filtered readout.
* ``alignment``: Gaussian-kernel alignment to target spike trains:
  ``(1/2B) sum_{b,c} ||G (out - target)||^2`` with ``G`` the (T, T) Gaussian smoothing
  matrix of width ``sigma_steps`` (a van Rossum-type distance with a Gaussian kernel).
* ``jitter``: second moment of the filtered train around a target time:
  ``f[t] = d f[t-1] + out[t]``, ``L = (1/B) sum_{b,c} sum_t f[t] (t - t*)^2 / (sum_t f[t] + eps)``.

Regularisers (returned as a value and a per-neuron constant ``dL/dz`` added at every step):

* spike count: ``c * total spikes / (B T n)`` (mean spike probability of the layer);
* homeostatic target rate: ``(c/2) sum_j (f_j - f*)^2`` with ``f_j`` the neuron's rate in Hz.
"""

from __future__ import annotations

import numpy as np

LOSSES = ("count_ce", "mean_ce", "rate_ce", "first_spike", "mse", "alignment", "jitter")
CLASSIFICATION_LOSSES = ("count_ce", "mean_ce", "rate_ce", "first_spike")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _ce(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy over the leading rows and dL/dlogits."""
    p = _softmax(logits)
    n = logits.shape[0]
    idx = np.arange(n)
    loss = float(-np.mean(np.log(np.maximum(p[idx, labels], 1e-300))))
    d = p.copy()
    d[idx, labels] -= 1.0
    return loss, d / n


def _check_labels(out: np.ndarray, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (out.shape[1],):
        raise ValueError(f"labels must have shape (B,) = ({out.shape[1]},), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= out.shape[2]):
        raise ValueError(f"labels must lie in [0, {out.shape[2]}), got range [{labels.min()}, {labels.max()}]")
    return labels.astype(np.int64)


def time_weights(T: int, tau_steps: float) -> np.ndarray:
    return np.exp(-np.arange(T) / float(tau_steps))


def classification_logits(out: np.ndarray, loss: str, tau_steps: float = 10.0) -> np.ndarray:
    """The (B, C) logits a classification loss uses."""
    T = out.shape[0]
    if loss == "count_ce":
        return out.sum(axis=0, dtype=np.float64)
    if loss in ("mean_ce", "rate_ce"):
        return out.mean(axis=0, dtype=np.float64)
    if loss == "first_spike":
        return np.tensordot(time_weights(T, tau_steps), out.astype(np.float64), axes=(0, 0))
    raise ValueError(f"{loss!r} is not a classification loss; expected one of {', '.join(CLASSIFICATION_LOSSES)}")


def count_ce(out: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    labels = _check_labels(out, labels)
    loss, d = _ce(out.sum(axis=0, dtype=np.float64), labels)
    return loss, np.broadcast_to(d, out.shape).copy()


def mean_ce(out: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    labels = _check_labels(out, labels)
    T = out.shape[0]
    loss, d = _ce(out.mean(axis=0, dtype=np.float64), labels)
    return loss, np.broadcast_to(d / T, out.shape).copy()


def rate_ce(out: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    labels = _check_labels(out, labels)
    T, B, C = out.shape
    loss, d = _ce(out.reshape(T * B, C).astype(np.float64), np.tile(labels, T))
    return loss, d.reshape(T, B, C)


def first_spike(out: np.ndarray, labels: np.ndarray, tau_steps: float = 10.0) -> tuple[float, np.ndarray]:
    labels = _check_labels(out, labels)
    w = time_weights(out.shape[0], tau_steps)
    loss, d = _ce(np.tensordot(w, out.astype(np.float64), axes=(0, 0)), labels)
    return loss, w[:, None, None] * d[None]


def mse(out: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    target = np.asarray(target, dtype=np.float64)
    if target.shape != out.shape:
        raise ValueError(f"target must have the output's shape {out.shape}, got {target.shape}")
    diff = out.astype(np.float64) - target
    return float(0.5 * np.mean(diff**2)), diff / diff.size


def gaussian_matrix(T: int, sigma_steps: float) -> np.ndarray:
    t = np.arange(T, dtype=np.float64)
    g = np.exp(-0.5 * ((t[:, None] - t[None, :]) / sigma_steps) ** 2)
    return g / (np.sqrt(2 * np.pi) * sigma_steps)


def alignment(out: np.ndarray, target: np.ndarray, sigma_steps: float = 3.0) -> tuple[float, np.ndarray]:
    target = np.asarray(target, dtype=np.float64)
    if target.shape != out.shape:
        raise ValueError(f"target spike trains must have the output's shape {out.shape}, got {target.shape}")
    T, B, _ = out.shape
    G = gaussian_matrix(T, sigma_steps)
    f = np.tensordot(G, out.astype(np.float64) - target, axes=(1, 0))
    loss = 0.5 * float(np.sum(f**2)) / B
    return loss, np.tensordot(G.T, f, axes=(1, 0)) / B


def jitter(out: np.ndarray, target_step: np.ndarray | float, tau_steps: float = 5.0,
           eps: float = 1e-3) -> tuple[float, np.ndarray]:
    T, B, C = out.shape
    ts = np.broadcast_to(np.asarray(target_step, dtype=np.float64), (B, C))
    dec = np.exp(-1.0 / tau_steps)
    f = np.empty((T, B, C))
    acc = np.zeros((B, C))
    for t in range(T):
        acc = dec * acc + out[t]
        f[t] = acc
    w = (np.arange(T, dtype=np.float64)[:, None, None] - ts[None]) ** 2
    num = np.sum(f * w, axis=0)
    den = np.sum(f, axis=0) + eps
    loss = float(np.sum(num / den)) / B
    df = (w / den[None] - (num / den**2)[None]) / B
    dz = np.empty_like(df)
    acc = np.zeros((B, C))
    for t in range(T - 1, -1, -1):  # adjoint of the causal filter
        acc = df[t] + dec * acc
        dz[t] = acc
    return loss, dz


def spike_count_reg(counts: np.ndarray, B: int, T: int, c: float) -> tuple[float, np.ndarray]:
    """``c * sum(counts) / (B T n)`` and its constant dL/dz per neuron (n,)."""
    n = counts.shape[0]
    return float(c * counts.sum() / (B * T * n)), np.full(n, c / (B * T * n))


def homeostatic_reg(counts: np.ndarray, B: int, T: int, dt_s: float, target_hz: float,
                    c: float) -> tuple[float, np.ndarray]:
    """``(c/2) sum_j (f_j - f*)^2``, ``f_j = counts_j / (B T dt_s)``, and dL/dz per neuron."""
    rate = counts / (B * T * dt_s)
    diff = rate - target_hz
    return float(0.5 * c * np.sum(diff**2)), c * diff / (B * T * dt_s)


def compute_loss(name: str, out: np.ndarray, target: np.ndarray, **kw) -> tuple[float, np.ndarray]:
    """Dispatch by name (``LOSSES``); ``target`` is labels (B,) for classification losses,
    (T, B, C) arrays for ``mse``/``alignment``, target steps for ``jitter``."""
    fns = {"count_ce": count_ce, "mean_ce": mean_ce, "rate_ce": rate_ce, "first_spike": first_spike,
           "mse": mse, "alignment": alignment, "jitter": jitter}
    if name not in fns:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {name!r}")
    return fns[name](out, target, **kw)
