"""Exact-gradient training of spiking networks by Forward Propagation (FP).

Lee, Haghighatshoar, Karbasi: an event-based continuous-time simulator with exact spike
times and gradients of spike times by a forward-in-time, lower-triangular implicit-function
solve (equations, sparsity and cost in :mod:`rtsnn.learn.offline.fp_kernels`).

Inputs are spike times, one per input channel (``inf`` = no spike); :func:`encode_latency`
maps features in [0, 1] to times ``t_early + (t_late - t_early) v`` and appends a bias spike
on one fixed extra channel. Classification reads the first output spike (earliest wins) with
the loss ``L = -log softmax(-t/tau0)_label + gamma (exp(t_label / tau1) - 1)``; a silent
output neuron counts as firing at ``t_max``.

Silent outputs cannot learn from spike-time gradients (no spike, no derivative), so training
adds ``-silent_kick`` to the gradient of every weight into an output neuron that stayed
silent on a sample where it is the label (and ``-hidden_kick`` to the weights into hidden
neurons silent over a whole minibatch): those weights grow until the neuron fires.

Heuristics (none is in the FP paper; each is named by :func:`heuristics_in_use` and off when
given its "off" value): ``silent_kick`` (default 0.05, off: 0), ``hidden_kick`` (default 0,
off: 0), ``grad_clip`` (default None = off), ``lr_final`` (cosine learning-rate decay, default
None = constant rate). ``pure=True`` refuses any of them, so a run on the paper's settings is
exactly Adam on the exact FP gradient of the loss. Epoch selection on a held-out validation
set (``select_on_val``) changes no gradient and is not one of them.

Per-neuron parameters (issue 18 item 4; not a heuristic: more parameters, same exact
gradient). With ``train_thresholds`` / ``train_time_constants`` every neuron i (hidden and
output) has its own threshold ``theta_i`` and time constants ``tau_syn_i = 1/alpha_i``,
``tau_mem_i = 1/beta_i`` (:class:`NeuronParams`, starting at the settings' values), trained
with the weights by Adam on the exact gradient of the same loss through the spike times::

    dL/dtheta_i = sum_o dL/dt_o  dt_o/dtheta_i,     dL/dtau_i = -(1/tau_i^2) dL/drate_i

(rows ``df/dtheta_i``, ``df/dalpha_i``, ``df/dbeta_i`` by forward substitution:
:mod:`rtsnn.learn.offline.fp_kernels`, section "per-neuron parameters"). An update that takes
a threshold below ``theta_min`` or a time constant below ``tau_min`` (or to NaN) is set to that
floor and counted (``history[..]["clamped_theta"]``, ``["clamped_tau"]``, cumulative).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from rtsnn.learn.offline import fp_kernels as K


@dataclass(frozen=True)
class FPSettings:
    """Neuron and loss settings (times in the network's time unit, rates in 1/unit).

    alpha: synaptic decay rate (1/tau_syn); beta: membrane decay rate (1/tau_mem);
    theta: threshold; t_max: end of the simulated window (silent outputs count as t_max);
    max_hidden_spikes: spikes per hidden neuron and sample at most; tau0, tau1, gamma: loss.
    """

    alpha: float = 1.0
    beta: float = 1.0
    theta: float = 1.0
    t_max: float = 4.0
    max_hidden_spikes: int = 16
    tau0: float = 0.2
    tau1: float = 1.0
    gamma: float = 0.005

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "theta", "t_max", "tau0", "tau1"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"FPSettings.{name} must be a finite number > 0, got {v!r}")
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError(f"FPSettings.gamma must be finite and >= 0, got {self.gamma!r}")
        if int(self.max_hidden_spikes) < 1:
            raise ValueError(
                f"FPSettings.max_hidden_spikes must be >= 1, got {self.max_hidden_spikes!r}")


@dataclass
class FPNetwork:
    """Layers of weights: ``w[l]`` (n_pre, n_post) and ``r[l]`` (n_post, n_post) or None."""

    w: list[np.ndarray]
    r: list[np.ndarray | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.r:
            self.r = [None] * len(self.w)
        if len(self.r) != len(self.w) or not self.w:
            raise ValueError("FPNetwork needs at least one layer and one r entry per w")
        n_pre = None
        for l, (w, r) in enumerate(zip(self.w, self.r)):
            w = np.asarray(w, dtype=np.float64)
            if w.ndim != 2:
                raise ValueError(f"FPNetwork.w[{l}] must be 2-D (n_pre, n_post), got {w.shape}")
            if n_pre is not None and w.shape[0] != n_pre:
                raise ValueError(
                    f"FPNetwork.w[{l}] has {w.shape[0]} rows, layer {l - 1} has {n_pre} neurons")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"FPNetwork.w[{l}] contains NaN or inf")
            self.w[l] = np.ascontiguousarray(w)
            if r is not None:
                r = np.asarray(r, dtype=np.float64)
                if r.shape != (w.shape[1], w.shape[1]):
                    raise ValueError(
                        f"FPNetwork.r[{l}] must be ({w.shape[1]}, {w.shape[1]}), got {r.shape}")
                if not np.all(np.isfinite(r)):
                    raise ValueError(f"FPNetwork.r[{l}] contains NaN or inf")
                if np.any(np.diag(r) != 0):
                    raise ValueError(f"FPNetwork.r[{l}] must have a zero diagonal (no autapses)")
                self.r[l] = np.ascontiguousarray(r)
            n_pre = w.shape[1]

    @property
    def n_in(self) -> int:
        return self.w[0].shape[0]

    @property
    def sizes(self) -> list[int]:
        return [w.shape[1] for w in self.w]

    def layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(n_post, off_w, off_r, n_params) of the flat parameter vector."""
        n_post = np.array(self.sizes, dtype=np.int64)
        off_w = np.zeros(len(self.w), dtype=np.int64)
        off_r = np.full(len(self.w), -1, dtype=np.int64)
        p = 0
        for l, (w, r) in enumerate(zip(self.w, self.r)):
            off_w[l] = p
            p += w.size
            if r is not None:
                off_r[l] = p
                p += r.size
        return n_post, off_w, off_r, p

    def flat(self) -> np.ndarray:
        parts = []
        for w, r in zip(self.w, self.r):
            parts.append(w.ravel())
            if r is not None:
                parts.append(r.ravel())
        return np.concatenate(parts).astype(np.float64)

    def set_flat(self, theta: np.ndarray) -> None:
        p = 0
        for l, (w, r) in enumerate(zip(self.w, self.r)):
            self.w[l] = theta[p:p + w.size].reshape(w.shape).copy()
            p += w.size
            if r is not None:
                rr = theta[p:p + r.size].reshape(r.shape).copy()
                np.fill_diagonal(rr, 0.0)
                self.r[l] = rr
                p += r.size

    def copy(self) -> "FPNetwork":
        return FPNetwork([w.copy() for w in self.w],
                         [None if r is None else r.copy() for r in self.r])


@dataclass
class NeuronParams:
    """Per-neuron threshold and time constants (time units), one array per layer.

    The kernels take rates: ``alpha_i = 1 / tau_syn_i`` (synaptic), ``beta_i = 1 / tau_mem_i``
    (membrane); :meth:`vector` is ``[theta | tau_syn | tau_mem]`` over all neurons, layer by
    layer (hidden first, output last)."""

    theta: list[np.ndarray]
    tau_syn: list[np.ndarray]
    tau_mem: list[np.ndarray]

    def __post_init__(self) -> None:
        if not (len(self.theta) == len(self.tau_syn) == len(self.tau_mem) >= 1):
            raise ValueError("NeuronParams needs one theta, tau_syn and tau_mem array per layer")
        for name in ("theta", "tau_syn", "tau_mem"):
            vals = getattr(self, name)
            for l, v in enumerate(vals):
                a = np.array(v, dtype=np.float64, ndmin=1)
                if a.ndim != 1 or not np.all(np.isfinite(a)) or np.any(a <= 0):
                    raise ValueError(f"NeuronParams.{name}[{l}] must be a 1-D array of finite "
                                     f"numbers > 0")
                vals[l] = a

    @classmethod
    def shared(cls, sizes: list[int], settings: "FPSettings") -> "NeuronParams":
        """Every neuron at the settings' theta, 1/alpha, 1/beta."""
        return cls([np.full(n, float(settings.theta)) for n in sizes],
                   [np.full(n, 1.0 / settings.alpha) for n in sizes],
                   [np.full(n, 1.0 / settings.beta) for n in sizes])

    @property
    def sizes(self) -> list[int]:
        return [t.size for t in self.theta]

    def check_sizes(self, sizes: list[int]) -> None:
        if self.sizes != list(sizes) or [t.size for t in self.tau_syn] != list(sizes) or \
                [t.size for t in self.tau_mem] != list(sizes):
            raise ValueError(f"NeuronParams layer sizes {self.sizes} do not match the network's "
                             f"{list(sizes)}")

    def vector(self) -> np.ndarray:
        return np.concatenate([np.concatenate(v) for v in (self.theta, self.tau_syn,
                                                            self.tau_mem)])

    def set_vector(self, z: np.ndarray) -> None:
        n = sum(self.sizes)
        for q, name in enumerate(("theta", "tau_syn", "tau_mem")):
            part, a = z[q * n:(q + 1) * n], 0
            vals = getattr(self, name)
            for l, m in enumerate(self.sizes):
                vals[l] = part[a:a + m].copy()
                a += m

    def kernel_vector(self) -> np.ndarray:
        """``[theta | alpha | beta]`` (rates), the kernels' per-neuron block."""
        z = self.vector()
        n = sum(self.sizes)
        z[n:] = 1.0 / z[n:]
        return z

    def copy(self) -> "NeuronParams":
        return NeuronParams([t.copy() for t in self.theta], [t.copy() for t in self.tau_syn],
                            [t.copy() for t in self.tau_mem])

    def summary(self) -> dict:
        """Per layer: min / mean / max of theta, tau_syn, tau_mem (JSON-ready)."""
        out = {}
        for name in ("theta", "tau_syn", "tau_mem"):
            out[name] = [[float(v.min()), float(v.mean()), float(v.max())]
                         for v in getattr(self, name)]
        return out


def _check_times(name: str, x: np.ndarray, n_in: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_inputs), got shape {x.shape}")
    if n_in is not None and x.shape[1] != n_in:
        raise ValueError(f"{name} has {x.shape[1]} input channels, the network expects {n_in}")
    if np.any(np.isnan(x)):
        raise ValueError(f"{name} contains NaN (use inf for 'no spike')")
    if np.any(x < 0):
        raise ValueError(f"{name} contains negative spike times")
    return np.ascontiguousarray(x)


def encode_latency(x: np.ndarray, *, t_early: float = 0.15, t_late: float = 2.0,
                   t_bias: float | None = 0.9, name: str = "x") -> np.ndarray:
    """Features in [0, 1] -> spike times ``t_early + (t_late - t_early) x``; a bias spike at
    ``t_bias`` on one extra, fixed last channel (omitted if ``t_bias`` is None)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    if not (0 <= t_early < t_late):
        raise ValueError(f"need 0 <= t_early < t_late, got t_early={t_early}, t_late={t_late}")
    t = t_early + (t_late - t_early) * x
    if t_bias is not None:
        if not (math.isfinite(t_bias) and t_bias >= 0):
            raise ValueError(f"t_bias must be finite and >= 0, got {t_bias!r}")
        t = np.concatenate([t, np.full((t.shape[0], 1), float(t_bias))], axis=1)
    return t


class _Buffers:
    """Preallocated per-call buffers; grown (and the call retried) on overflow."""

    def __init__(self, net: FPNetwork, spikes: int = 4096, nnz: int = 1 << 16,
                 extra_params: int = 0):
        n_post, self.off_w, self.off_r, self.n_params = net.layout()
        self.n_params += int(extra_params)  # per-neuron theta / alpha / beta after the weights
        self.n_post = n_post
        m = int(n_post.max())
        self.work = np.zeros((4, m))
        self.iwork = np.zeros(m, dtype=np.int64)
        self.acc = np.zeros(self.n_params)
        self.mark = np.zeros(self.n_params, dtype=np.int64)
        self.touched = np.zeros(self.n_params, dtype=np.int64)
        self._alloc_spikes(spikes)
        self._alloc_rows(nnz)

    def _alloc_spikes(self, n: int) -> None:
        self.spk_t = np.zeros(n)
        self.spk_nrn = np.zeros(n, dtype=np.int64)
        self.spk_vdot = np.zeros(n)
        self.row_ptr = np.zeros(n + 1, dtype=np.int64)

    def _alloc_rows(self, n: int) -> None:
        self.row_idx = np.zeros(n, dtype=np.int64)
        self.row_val = np.zeros(n)

    def grow(self, status: int) -> None:
        self.mark[:] = 0
        if status == K.STATUS_SPIKE_OVERFLOW:
            if self.spk_t.shape[0] > 1 << 26:
                raise RuntimeError("FP simulation produced more than 2^26 spikes in one sample")
            self._alloc_spikes(self.spk_t.shape[0] * 4)
        elif status == K.STATUS_ROW_OVERFLOW:
            if self.row_idx.shape[0] > 1 << 28:
                raise RuntimeError("FP gradient rows exceed 2^28 entries in one sample")
            self._alloc_rows(self.row_idx.shape[0] * 4)
        else:  # pragma: no cover - defensive
            raise RuntimeError(f"unknown FP kernel status {status}")


def _sorted_inputs(in_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(in_times, kind="stable")
    t = in_times[order]
    keep = np.isfinite(t)
    return np.ascontiguousarray(t[keep]), np.ascontiguousarray(order[keep].astype(np.int64))


def simulate(net: FPNetwork, settings: FPSettings, in_times: np.ndarray,
             max_out_spikes: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Exact spike times of one sample: a list per layer of (times, neurons), time-sorted.

    ``in_times`` (n_in,) one spike time per input channel (inf = none). Output neurons fire
    at most ``max_out_spikes`` times (default: ``settings.max_hidden_spikes``)."""
    x = _check_times("in_times", np.asarray(in_times, dtype=np.float64)[None, :], net.n_in)[0]
    buf = _Buffers(net)
    t_in, src = _sorted_inputs(x)
    mo = settings.max_hidden_spikes if max_out_spikes is None else int(max_out_spikes)
    layer_start = np.zeros(len(net.w) + 1, dtype=np.int64)
    while True:
        st = K.simulate_network(t_in, src, t_in.shape[0], net.flat(), buf.n_post, buf.off_w,
                                buf.off_r, settings.alpha, settings.beta, settings.theta,
                                settings.t_max, settings.max_hidden_spikes, mo, buf.work,
                                buf.iwork, buf.spk_t, buf.spk_nrn, buf.spk_vdot, layer_start)
        if st == K.STATUS_OK:
            break
        buf.grow(st)
    return [(buf.spk_t[layer_start[l]:layer_start[l + 1]].copy(),
             buf.spk_nrn[layer_start[l]:layer_start[l + 1]].copy()) for l in range(len(net.w))]


def spike_jacobian(net: FPNetwork, settings: FPSettings, in_times: np.ndarray,
                   max_out_spikes: int | None = None):
    """(spikes per layer as in :func:`simulate`, dense dF/dw (K x |w|) from the sparse rows,
    ``V'(f-)`` per spike). Rows are in layer order, then time order."""
    x = _check_times("in_times", np.asarray(in_times, dtype=np.float64)[None, :], net.n_in)[0]
    buf = _Buffers(net, spikes=64, nnz=64)
    t_in, src = _sorted_inputs(x)
    mo = settings.max_hidden_spikes if max_out_spikes is None else int(max_out_spikes)
    layer_start = np.zeros(len(net.w) + 1, dtype=np.int64)
    w = net.flat()
    while True:
        st = K.simulate_network(t_in, src, t_in.shape[0], w, buf.n_post, buf.off_w, buf.off_r,
                                settings.alpha, settings.beta, settings.theta, settings.t_max,
                                settings.max_hidden_spikes, mo, buf.work, buf.iwork, buf.spk_t,
                                buf.spk_nrn, buf.spk_vdot, layer_start)
        if st != K.STATUS_OK:
            buf.grow(st)
            continue
        st = K.fp_rows(t_in, src, t_in.shape[0], w, buf.n_post, buf.off_w, buf.off_r,
                       settings.alpha, settings.beta, settings.theta, buf.spk_t, buf.spk_nrn,
                       buf.spk_vdot, layer_start, buf.row_ptr, buf.row_idx, buf.row_val,
                       buf.acc, buf.mark, buf.touched)
        if st == K.STATUS_OK:
            break
        buf.grow(st)
    n_k = int(layer_start[-1])
    jac = np.zeros((n_k, buf.n_params))
    for k in range(n_k):
        a, b = buf.row_ptr[k], buf.row_ptr[k + 1]
        jac[k, buf.row_idx[a:b]] = buf.row_val[a:b]
    spikes = [(buf.spk_t[layer_start[l]:layer_start[l + 1]].copy(),
               buf.spk_nrn[layer_start[l]:layer_start[l + 1]].copy()) for l in range(len(net.w))]
    return spikes, jac, buf.spk_vdot[:n_k].copy()


class FPEvaluator:
    """Batched loss, gradient and first output spike times (numba, reused buffers).

    With ``neurons`` (:class:`NeuronParams`) every neuron has its own theta / alpha / beta
    (the settings' are unused) and the gradient covers them: ``[weights | dtheta | dalpha |
    dbeta]`` (by the rates; :func:`tau_gradient` turns it into time constants)."""

    def __init__(self, net: FPNetwork, settings: FPSettings, neurons: NeuronParams | None = None):
        self.net = net
        self.settings = settings
        self.neurons = neurons
        if neurons is not None:
            neurons.check_sizes(net.sizes)
        self.n_all = int(sum(net.sizes))
        self.buf = _Buffers(net, extra_params=0 if neurons is None else 3 * self.n_all)

    def run(self, in_times: np.ndarray, labels: np.ndarray, want_grad: bool = True):
        """Returns (mean loss, mean gradient (flat), first times (B, n_out), counts per
        neuron, silent_label (B,))."""
        s = self.settings
        b = self.buf
        n_b = in_times.shape[0]
        n_out = self.net.sizes[-1]
        w = self.net.flat()
        if self.neurons is not None:
            n_w = w.size
            w = np.concatenate([w, self.neurons.kernel_vector()])
            nrn_off = np.concatenate([[0], np.cumsum(b.n_post)]).astype(np.int64)
        while True:
            grad = np.zeros(b.n_params)
            t_first = np.zeros((n_b, n_out))
            losses = np.zeros(n_b)
            counts = np.zeros(int(b.n_post.sum()), dtype=np.int64)
            silent = np.zeros(n_b, dtype=np.int64)
            if self.neurons is None:
                st = K.fp_batch(in_times, labels, w, b.n_post, b.off_w, b.off_r, s.alpha,
                                s.beta, s.theta, s.t_max, s.max_hidden_spikes, s.tau0, s.tau1,
                                s.gamma, want_grad, grad, t_first, losses, counts, silent,
                                b.spk_t, b.spk_nrn, b.spk_vdot, b.row_ptr, b.row_idx,
                                b.row_val, b.work, b.iwork, b.acc, b.mark, b.touched)
            else:
                st = K.fp_batch_pn(in_times, labels, w, b.n_post, b.off_w, b.off_r, nrn_off,
                                   n_w, n_w + self.n_all, n_w + 2 * self.n_all, s.t_max,
                                   s.max_hidden_spikes, s.tau0, s.tau1, s.gamma, want_grad,
                                   grad, t_first, losses, counts, silent, b.spk_t, b.spk_nrn,
                                   b.spk_vdot, b.row_ptr, b.row_idx, b.row_val, b.work,
                                   b.iwork, b.acc, b.mark, b.touched)
            if st == K.STATUS_OK:
                break
            b.grow(st)
        return float(losses.mean()), grad / max(n_b, 1), t_first, counts, silent


def tau_gradient(grad: np.ndarray, n_weights: int, neurons: NeuronParams) -> np.ndarray:
    """A gradient ``[weights | theta | alpha | beta]`` (by the rates, as
    :meth:`FPEvaluator.run` gives it) as ``[weights | theta | tau_syn | tau_mem]``:
    ``dL/dtau = -dL/drate / tau^2``."""
    g = grad.copy()
    n = int(sum(neurons.sizes))
    tau = neurons.vector()[n:]
    g[n_weights + n:] *= -1.0 / (tau * tau)
    return g


def classification_loss_grad(net: FPNetwork, settings: FPSettings, neurons: NeuronParams,
                             in_times: np.ndarray, labels: np.ndarray):
    """(mean TTFS loss, its exact gradient ``[weights | theta | tau_syn | tau_mem]``) of a
    batch with per-neuron parameters: what :func:`train_classifier_fp` descends."""
    x = _check_times("in_times", in_times, net.n_in)
    y = check_labels("labels", labels, x.shape[0], net.sizes[-1])
    loss, grad, _, _, _ = FPEvaluator(net, settings, neurons).run(x, y)
    return loss, tau_gradient(grad, net.layout()[3], neurons)


def predict_from_times(t_first: np.ndarray, t_max: float) -> np.ndarray:
    """Class of the earliest output spike; -1 when every output stayed silent."""
    pred = np.argmin(t_first, axis=1)
    pred[np.all(t_first >= t_max, axis=1)] = -1
    return pred


HEURISTIC_OFF = {"silent_kick": 0.0, "hidden_kick": 0.0, "grad_clip": None, "lr_final": None}
"""The value that switches each training heuristic of :func:`train_classifier_fp` off."""


def heuristics_in_use(*, silent_kick: float = 0.05, hidden_kick: float = 0.0,
                      grad_clip: float | None = None, lr: float | None = None,
                      lr_final: float | None = None) -> list[str]:
    """Names (with values and what they do) of the training heuristics these arguments of
    :func:`train_classifier_fp` switch on; ``[]`` means plain Adam on the exact gradient."""
    out = []
    if silent_kick:
        out.append(f"silent_kick={silent_kick:g}: -silent_kick x (fraction of the minibatch) added "
                   "to the gradient of every weight into a label output neuron that stayed silent")
    if hidden_kick:
        out.append(f"hidden_kick={hidden_kick:g}: -hidden_kick added to the gradient of every "
                   "weight into a hidden neuron silent over the whole minibatch")
    if grad_clip is not None:
        out.append(f"grad_clip={grad_clip:g}: minibatch gradient rescaled to L2 norm <= grad_clip")
    if lr_final is not None:
        src = "" if lr is None else f"{lr:g} "
        out.append(f"cosine learning-rate decay {src}-> lr_final={lr_final:g} over all steps")
    return out


@dataclass
class TrainedFP:
    """A trained FP classifier: ``predict(in_times)``, ``history`` (per-epoch dicts),
    ``heuristics`` (the training heuristics that were on, see :func:`heuristics_in_use`),
    ``selected_epoch`` (validation-based selection, see :func:`train_classifier_fp`)."""

    net: FPNetwork
    settings: FPSettings
    history: list[dict]
    heuristics: list[str] = field(default_factory=list)
    selected_epoch: int | None = None
    """With ``select_on_val``: the epoch (0-based) whose weights were kept, else None."""
    neurons: NeuronParams | None = None
    """Per-neuron thresholds and time constants (None: the settings' values for all)."""

    def first_spike_times(self, in_times: np.ndarray) -> np.ndarray:
        x = _check_times("in_times", in_times, self.net.n_in)
        ev = FPEvaluator(self.net, self.settings, self.neurons)
        return ev.run(x, np.zeros(x.shape[0], dtype=np.int64), want_grad=False)[2]

    def predict(self, in_times: np.ndarray) -> np.ndarray:
        return predict_from_times(self.first_spike_times(in_times), self.settings.t_max)

    def accuracy(self, in_times: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(in_times) == np.asarray(labels)))


def init_network(n_in: int, hidden: list[int], n_out: int, seed: int, *,
                 hidden_mean: float = 1.5, hidden_sd: float = 0.8, out_mean: float = 2.0,
                 out_sd: float = 0.1, recurrent: bool = False, rec_sd: float = 0.1,
                 scale_by_fan_in: bool = False) -> FPNetwork:
    """Gaussian init as in the FP paper (hidden N(mean, sd), output N(mean, sd)).
    ``scale_by_fan_in`` divides means and sds by the layer's fan-in relative to the first."""
    rng = np.random.default_rng(seed)
    sizes = [n_in] + list(hidden) + [n_out]
    ws, rs = [], []
    for l in range(len(sizes) - 1):
        last = l == len(sizes) - 2
        mean, sd = (out_mean, out_sd) if last else (hidden_mean, hidden_sd)
        if scale_by_fan_in and l > 0:
            mean, sd = mean * n_in / sizes[l], sd * n_in / sizes[l]
        ws.append(rng.normal(mean, sd, size=(sizes[l], sizes[l + 1])))
        if recurrent and not last:
            r = rng.normal(0.0, rec_sd, size=(sizes[l + 1], sizes[l + 1]))
            np.fill_diagonal(r, 0.0)
            rs.append(r)
        else:
            rs.append(None)
    return FPNetwork(ws, rs)


def check_labels(name: str, y: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if np.any(np.isnan(y.astype(float))) or np.any(y != np.round(y)):
            raise ValueError(f"{name} must hold integer class labels")
    y = y.astype(np.int64)
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} labels must lie in [0, {n_classes}), got [{y.min()}, {y.max()}]")
    return y


def train_classifier_fp(x_times: np.ndarray, y: np.ndarray, *, hidden: list[int], n_classes: int,
                        epochs: int, seed: int, settings: FPSettings | None = None,
                        lr: float = 5e-3, lr_final: float | None = None, batch_size: int = 32,
                        x_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
                        init: dict | None = None, silent_kick: float = 0.05,
                        hidden_kick: float = 0.0, adam_betas=(0.9, 0.999),
                        target_loss: float | None = None, stop_at_train_acc: float | None = None,
                        grad_clip: float | None = None,
                        progress: bool = False,
                        net: FPNetwork | None = None, pure: bool = False,
                        select_on_val: bool = False, val_from_epoch: int = 0,
                        train_thresholds: bool = False, train_time_constants: bool = False,
                        lr_theta: float | None = None, lr_tau: float | None = None,
                        theta_min: float = 1e-2, tau_min: float = 0.05,
                        neurons: NeuronParams | None = None) -> TrainedFP:
    """Minibatch Adam on the TTFS loss with exact FP gradients.

    ``x_times`` (n, n_in) input spike times (see :func:`encode_latency`); learning rate decays
    with a cosine from ``lr`` to ``lr_final`` (default: constant). ``target_loss`` stops early
    when an epoch's mean training loss falls below it, ``stop_at_train_acc`` when the accuracy
    measured on the epoch's minibatches before their updates reaches it (the weights from the
    start of that epoch are kept; its ``steps`` counts the updates before them); ``grad_clip``
    rescales a minibatch gradient whose L2 norm exceeds it (near-tangential spikes have
    1/V' -> inf). History per epoch: loss, train_acc, val_acc (or None), epoch_s, steps,
    silent_label_frac, hidden_active_frac, hidden_spikes_per_sample.

    Validation: with ``x_val``/``y_val`` each epoch's end is scored on them (``val_acc``,
    from epoch ``val_from_epoch`` on; earlier epochs record None); ``select_on_val`` returns
    the weights of the epoch with the highest validation accuracy (the latest of equals) and
    sets ``selected_epoch``. The validation set must be held out from training and from
    testing: this is epoch selection, never a test-set figure.

    Heuristics: ``silent_kick``, ``hidden_kick``, ``grad_clip``, ``lr_final`` (each off at its
    :data:`HEURISTIC_OFF` value); ``pure=True`` raises ValueError naming any that is on.
    Validation-based selection is not a heuristic (it changes no gradient).

    Per-neuron parameters (module docstring): ``train_thresholds`` trains every neuron's
    theta (learning rate ``lr_theta``, default ``lr``), ``train_time_constants`` its tau_syn
    and tau_mem (``lr_tau``, default ``lr``), hidden and output layers; ``neurons`` gives their
    start (default: the settings' values for every neuron). The cosine schedule scales the
    three rates alike; ``grad_clip`` acts on the whole vector. After each update thresholds
    below ``theta_min`` and time constants below ``tau_min`` are set to the floor, counted in
    ``history[..]["clamped_theta"]`` / ``["clamped_tau"]`` (cumulative, 0 when untrained).
    The returned model carries them in ``neurons`` (None when neither is trained and none
    was given).
    """
    settings = settings or FPSettings()
    used = heuristics_in_use(silent_kick=silent_kick, hidden_kick=hidden_kick,
                             grad_clip=grad_clip, lr=lr, lr_final=lr_final)
    if pure and used:
        on = {"silent_kick": bool(silent_kick), "hidden_kick": bool(hidden_kick),
              "grad_clip": grad_clip is not None, "lr_final": lr_final is not None}
        raise ValueError("pure=True (no heuristics) but these are on: "
                         + ", ".join(k for k, v in on.items() if v))
    if silent_kick < 0 or hidden_kick < 0:
        raise ValueError(f"silent_kick and hidden_kick must be >= 0, got {silent_kick!r}, "
                         f"{hidden_kick!r}")
    if grad_clip is not None and not (grad_clip > 0 and math.isfinite(grad_clip)):
        raise ValueError(f"grad_clip must be finite and > 0 (None = off), got {grad_clip!r}")
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be finite and > 0, got {lr!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if any(int(h) < 1 for h in hidden):
        raise ValueError(f"hidden sizes must be >= 1, got {hidden!r}")
    x_times = _check_times("x_times", x_times)
    y = check_labels("y", y, x_times.shape[0], n_classes)
    if (x_val is None) != (y_val is None):
        raise ValueError("give both x_val and y_val, or neither")
    if x_val is not None:
        x_val = _check_times("x_val", x_val, x_times.shape[1])
        y_val = check_labels("y_val", y_val, x_val.shape[0], n_classes)
    if select_on_val and x_val is None:
        raise ValueError("select_on_val needs a held-out validation set (x_val, y_val)")
    if not (isinstance(val_from_epoch, int) and 0 <= val_from_epoch < int(epochs)):
        raise ValueError(f"val_from_epoch must be an int in [0, epochs), got {val_from_epoch!r}")
    for nm, val in (("lr_theta", lr_theta), ("lr_tau", lr_tau)):
        if val is not None and not (val > 0 and math.isfinite(val)):
            raise ValueError(f"{nm} must be finite and > 0 (None = lr), got {val!r}")
    if not (theta_min > 0 and tau_min > 0 and math.isfinite(theta_min)
            and math.isfinite(tau_min)):
        raise ValueError(f"theta_min and tau_min must be finite and > 0, got {theta_min!r}, "
                         f"{tau_min!r}")
    if net is None:
        net = init_network(x_times.shape[1], list(hidden), n_classes, seed, **(init or {}))
    per_neuron = bool(train_thresholds or train_time_constants or neurons is not None)
    if per_neuron:
        neurons = (neurons.copy() if neurons is not None
                   else NeuronParams.shared(net.sizes, settings))
        neurons.check_sizes(net.sizes)
    ev = FPEvaluator(net, settings, neurons if per_neuron else None)
    n_post, off_w, off_r, n_params = net.layout()
    n_w = n_params
    n_all = int(n_post.sum())
    out_cols = np.zeros(n_params, dtype=bool)  # weights into the output layer, per neuron
    lo = int(off_w[-1])
    n_prev = net.w[-1].shape[0]
    n_out = n_classes
    rng = np.random.default_rng(seed + 1_000_003)
    theta = net.flat()
    if per_neuron:  # [weights | theta_i | tau_syn_i | tau_mem_i]
        theta = np.concatenate([theta, neurons.vector()])
        th_sl = slice(n_w, n_w + n_all)
        tau_sl = slice(n_w + n_all, n_w + 3 * n_all)
        lr_vec = np.full(theta.size, 1.0)  # relative to lr (the schedule scales all)
        lr_vec[th_sl] = (lr if lr_theta is None else lr_theta) / lr
        lr_vec[tau_sl] = (lr if lr_tau is None else lr_tau) / lr
        frozen = np.zeros(theta.size, dtype=bool)
        frozen[th_sl] = not train_thresholds
        frozen[tau_sl] = not train_time_constants
    clamped_theta = clamped_tau = 0
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    b1, b2 = adam_betas
    step = 0
    n = x_times.shape[0]
    n_batches = (n + batch_size - 1) // batch_size
    total_steps = epochs * n_batches
    nrn_off = np.concatenate([[0], np.cumsum(n_post)])
    history: list[dict] = []
    best_val, best_theta, best_ep = -1.0, None, None
    for ep in range(int(epochs)):
        t0 = time.perf_counter()
        theta_start = theta.copy()
        perm = rng.permutation(n)
        ep_loss = 0.0
        ep_correct = 0
        ep_counts = np.zeros(int(n_post.sum()), dtype=np.int64)
        ep_silent = 0
        for bi in range(n_batches):
            idx = perm[bi * batch_size:(bi + 1) * batch_size]
            xb, yb = x_times[idx], y[idx]
            if per_neuron:
                net.set_flat(theta[:n_w])
                neurons.set_vector(theta[n_w:])
            else:
                net.set_flat(theta)
            loss, grad, t_first, counts, silent = ev.run(xb, yb)
            if not math.isfinite(loss) or not np.all(np.isfinite(grad)):
                raise FloatingPointError(f"FP training diverged at epoch {ep}, batch {bi}")
            if per_neuron:
                grad = tau_gradient(grad, n_w, neurons)
                grad[frozen] = 0.0
            ep_loss += loss * len(idx)
            ep_counts += counts
            ep_silent += int(silent.sum())
            ep_correct += int(np.sum(predict_from_times(t_first, settings.t_max) == yb))
            if silent_kick > 0 and np.any(silent):
                for o in np.unique(yb[silent.astype(bool)]):
                    frac = np.mean(silent.astype(bool) & (yb == o))
                    grad[lo + o:lo + n_prev * n_out:n_out] -= silent_kick * frac
            if hidden_kick > 0:
                for l in range(len(net.w) - 1):
                    dead = np.nonzero(counts[nrn_off[l]:nrn_off[l + 1]] == 0)[0]
                    nl = n_post[l]
                    for i in dead:
                        grad[off_w[l] + i:off_w[l] + net.w[l].size:nl] -= hidden_kick
            if grad_clip is not None:
                gn = float(np.linalg.norm(grad))
                if gn > grad_clip:
                    grad *= grad_clip / gn
            step += 1
            if lr_final is None:
                lr_t = lr
            else:
                frac = (step - 1) / max(total_steps - 1, 1)
                lr_t = lr_final + 0.5 * (lr - lr_final) * (1 + math.cos(math.pi * frac))
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad * grad
            mh = m / (1 - b1 ** step)
            vh = v / (1 - b2 ** step)
            if per_neuron:
                theta = theta - (lr_t * lr_vec) * mh / (np.sqrt(vh) + 1e-8)
                theta, c_th, c_tau = clamp_neuron_params(theta, th_sl, tau_sl, theta_min,
                                                         tau_min)
                clamped_theta += c_th
                clamped_tau += c_tau
            else:
                theta = theta - lr_t * mh / (np.sqrt(vh) + 1e-8)
        if per_neuron:
            net.set_flat(theta[:n_w])
            neurons.set_vector(theta[n_w:])
            theta = np.concatenate([net.flat(), theta[n_w:]])  # re-zeroes recurrent diagonals
        else:
            net.set_flat(theta)
            theta = net.flat()  # re-zeroes recurrent diagonals
        ep_s = time.perf_counter() - t0
        rec = {"epoch": ep, "loss": ep_loss / n, "train_acc": ep_correct / n, "val_acc": None,
               "epoch_s": ep_s, "steps": step, "silent_label_frac": ep_silent / n,
               "hidden_active_frac": float(np.mean(ep_counts[:nrn_off[-2]] > 0))
               if len(net.w) > 1 else None,
               "hidden_spikes_per_sample": float(ep_counts[:nrn_off[-2]].sum() / n),
               "clamped_theta": clamped_theta, "clamped_tau": clamped_tau}
        if per_neuron:
            rec["neurons"] = neurons.summary()
        if x_val is not None and ep >= val_from_epoch:
            _, _, tv, _, _ = ev.run(x_val, y_val, want_grad=False)
            rec["val_acc"] = float(np.mean(predict_from_times(tv, settings.t_max) == y_val))
            if select_on_val and rec["val_acc"] >= best_val:
                best_val, best_theta, best_ep = rec["val_acc"], theta.copy(), ep
        history.append(rec)
        if progress:
            print(f"epoch {ep + 1}/{epochs} loss {rec['loss']:.4f} train {rec['train_acc']:.3f}"
                  f" val {rec['val_acc']} {ep_s:.2f}s silent_label {rec['silent_label_frac']:.3f}"
                  f" hidden_active {rec['hidden_active_frac']}"
                  f" spikes/sample {rec['hidden_spikes_per_sample']:.1f}", flush=True)
        if target_loss is not None and rec["loss"] < target_loss:
            break
        if stop_at_train_acc is not None and rec["train_acc"] >= stop_at_train_acc:
            theta = theta_start  # the weights that reached it (before this epoch's updates)
            rec["steps"] = step - n_batches
            break
    if select_on_val and best_theta is not None:
        theta = best_theta
    if per_neuron:
        net.set_flat(theta[:n_w])
        neurons.set_vector(theta[n_w:])
    else:
        net.set_flat(theta)
    return TrainedFP(net, settings, history, used, best_ep if select_on_val else None,
                     neurons if per_neuron else None)


def clamp_neuron_params(z: np.ndarray, th_sl: slice, tau_sl: slice, theta_min: float,
                        tau_min: float) -> tuple[np.ndarray, int, int]:
    """Thresholds below ``theta_min`` and time constants below ``tau_min`` (or NaN) in ``z``
    set to the floor: (new z, thresholds clamped, time constants clamped)."""
    z = z.copy()
    th = z[th_sl]
    bad_th = ~(th >= theta_min)
    th[bad_th] = theta_min
    z[th_sl] = th
    tau = z[tau_sl]
    bad_tau = ~(tau >= tau_min)
    tau[bad_tau] = tau_min
    z[tau_sl] = tau
    return z, int(bad_th.sum()), int(bad_tau.sum())


def settings_dict(s: FPSettings) -> dict:
    return asdict(s)
