"""Forward Propagation (FP) for regression decoders, with trainable thresholds and time constants.

Lee, Haghighatshoar, Karbasi (exact gradients of spiking networks, eq. 4) write the loss as
``L = l_F(F; W) + int_0^T l_V(V_o(t), F; W) dt`` and, for regression, take the output layer
*linear*: no firing, no reset (their eq. 15)::

    V_o(t) = b_o + sum_j W_jo sum_{g in F_j, g < t} a_g h_o(t - g),
    h_o(s) = (exp(-alpha_o s) - exp(-beta_o s)) / (beta_o - alpha_o)

Here ``l_V`` is the squared error and the integral is sampled at the readout times ``t_m`` (the
bin ends the decoder is scored on)::

    L = (1 / N) sum_samples sum_m mask_m sum_o 0.5 (V_o(t_m) - y_mo)^2,   N = sum mask * n_out

The gradient is exact: the direct dependence of ``V_o`` on ``W_out``, ``b``, ``alpha_o``,
``beta_o``, plus ``dV_o(t)/dg = -W_jo h_o'(t - g)`` times the FP rows ``dg/dp`` of every
hidden spike ``g`` (forward substitution; equations in :mod:`rtsnn.learn.offline.fp_kernels`,
section "per-neuron parameters"). Hidden neurons fire many times (``max_hidden_spikes`` per
sample) and every neuron has its own threshold ``theta_i``, synaptic and membrane time
constants ``tau_syn_i = 1/alpha_i``, ``tau_mem_i = 1/beta_i`` (time units), all trainable.

Data: binned spike counts. Bin ``k`` of a sequence (counts ``x[k, c]``) becomes one input event
per channel with a nonzero count, at time ``k + offset`` (one time unit = one bin) with
amplitude ``x[k, c]`` (that many coincident spikes); a bias channel fires once per bin. The
prediction for bin ``k`` is ``V_o(k + 1)``, read at the bin's end: it depends on the bins
``0..k`` only, the information a per-tick decoder has at tick ``k``. A sequence starts at rest.

Robustness: a target with NaN / inf or a length that does not match the inputs is refused
(ValueError naming it); an update that drives a threshold or time constant below its floor
(``theta_min``, ``tau_min``) is clamped there and counted (``history[..]["clamped_theta"]``,
``["clamped_tau"]``); a minibatch whose gradient is not finite is skipped and counted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from rtsnn.learn.offline import fp_kernels as K
from rtsnn.learn.offline.fp import FPNetwork, clamp_neuron_params  # one clamp for FP (fp.py's)
from rtsnn.learn.offline.fp import _Buffers as _FPBuffers


# ---------------------------------------------------------------------------- the network
def _vec(name: str, v, n: int, positive: bool = True) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise ValueError(f"{name} must be a number or {n} numbers (one per neuron), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    if positive and np.any(a <= 0):
        raise ValueError(f"{name} must be > 0, got {float(a.min())!r}")
    return np.ascontiguousarray(a)


@dataclass
class FPRegressionNet:
    """Spiking layers then a linear output layer (the last entry of every list).

    ``w[l]`` (n_pre, n_post); ``r[l]`` (n_post, n_post) or None (recurrent spiking layer, zero
    diagonal; the output layer has none); per neuron ``theta[l]``, ``tau_syn[l]``,
    ``tau_mem[l]`` (time units; the output layer's theta is unused); ``bias`` (n_out,)."""

    w: list[np.ndarray]
    theta: list
    tau_syn: list
    tau_mem: list
    bias: np.ndarray
    r: list = field(default_factory=list)

    def __post_init__(self) -> None:
        L = len(self.w)
        if L < 1:
            raise ValueError("FPRegressionNet needs at least the output layer")
        if not self.r:
            self.r = [None] * L
        for name in ("theta", "tau_syn", "tau_mem", "r"):
            if len(getattr(self, name)) != L:
                raise ValueError(f"FPRegressionNet.{name} needs one entry per layer ({L})")
        n_pre = None
        for l in range(L):
            w = np.asarray(self.w[l], np.float64)
            if w.ndim != 2:
                raise ValueError(f"FPRegressionNet.w[{l}] must be 2-D (n_pre, n_post), got {w.shape}")
            if n_pre is not None and w.shape[0] != n_pre:
                raise ValueError(f"FPRegressionNet.w[{l}] has {w.shape[0]} rows, layer {l - 1} has {n_pre} neurons")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"FPRegressionNet.w[{l}] contains NaN or inf")
            self.w[l] = np.ascontiguousarray(w)
            n = w.shape[1]
            self.theta[l] = _vec(f"FPRegressionNet.theta[{l}]", self.theta[l], n)
            self.tau_syn[l] = _vec(f"FPRegressionNet.tau_syn[{l}]", self.tau_syn[l], n)
            self.tau_mem[l] = _vec(f"FPRegressionNet.tau_mem[{l}]", self.tau_mem[l], n)
            r = self.r[l]
            if r is not None:
                if l == L - 1:
                    raise ValueError("FPRegressionNet.r: the linear output layer cannot be recurrent")
                r = np.asarray(r, np.float64)
                if r.shape != (n, n) or not np.all(np.isfinite(r)):
                    raise ValueError(f"FPRegressionNet.r[{l}] must be finite ({n}, {n}), got {r.shape}")
                r = r.copy()
                np.fill_diagonal(r, 0.0)
                self.r[l] = np.ascontiguousarray(r)
            n_pre = n
        self.bias = _vec("FPRegressionNet.bias", self.bias, self.w[-1].shape[1], positive=False)

    @property
    def n_in(self) -> int:
        return self.w[0].shape[0]

    @property
    def n_out(self) -> int:
        return self.w[-1].shape[1]

    @property
    def sizes(self) -> list[int]:
        return [w.shape[1] for w in self.w]

    # The weights come first in the vector, laid out, flattened and set exactly as in
    # :class:`rtsnn.learn.offline.fp.FPNetwork`, whose methods (they read only ``w``, ``r``
    # and ``sizes``) serve this network too.

    def layout(self) -> dict:
        """Offsets of the flat vector (the kernels' layout): weights (W, R per layer), then per
        neuron theta, alpha (or tau_syn), beta (or tau_mem) over all layers, then the bias."""
        n_post, off_w, off_r, p = FPNetwork.layout(self)
        nrn_off = np.concatenate([[0], np.cumsum(n_post)]).astype(np.int64)
        n_all = int(nrn_off[-1])
        lay = dict(n_post=n_post, off_w=off_w, off_r=off_r, nrn_off=nrn_off, n_weights=p,
                   off_th=p, off_al=p + n_all, off_be=p + 2 * n_all, off_b=p + 3 * n_all)
        lay["n_params"] = lay["off_b"] + self.n_out
        return lay

    def trainable_vector(self) -> np.ndarray:
        """[weights | theta | tau_syn | tau_mem | bias] (time constants, not rates)."""
        parts = [FPNetwork.flat(self), np.concatenate(self.theta), np.concatenate(self.tau_syn),
                 np.concatenate(self.tau_mem), self.bias]
        return np.concatenate(parts).astype(np.float64)

    def kernel_vector(self) -> np.ndarray:
        """The kernels' vector: as :meth:`trainable_vector` with rates 1/tau."""
        z = self.trainable_vector()
        lay = self.layout()
        a, b = lay["off_al"], lay["off_b"]
        z[a:b] = 1.0 / z[a:b]
        return z

    def set_trainable_vector(self, z: np.ndarray) -> None:
        lay = self.layout()
        FPNetwork.set_flat(self, z)
        for name, off in (("theta", lay["off_th"]), ("tau_syn", lay["off_al"]), ("tau_mem", lay["off_be"])):
            vals = getattr(self, name)
            for l in range(len(self.w)):
                a, b = off + lay["nrn_off"][l], off + lay["nrn_off"][l + 1]
                vals[l] = z[a:b].copy()
        self.bias = z[lay["off_b"]:lay["off_b"] + self.n_out].copy()

    def copy(self) -> "FPRegressionNet":
        return FPRegressionNet([w.copy() for w in self.w], [t.copy() for t in self.theta],
                               [t.copy() for t in self.tau_syn], [t.copy() for t in self.tau_mem],
                               self.bias.copy(), [None if r is None else r.copy() for r in self.r])


# ---------------------------------------------------------------------------- data
@dataclass
class EventBatch:
    """Input events and targets of ``n`` sequences (CSR over sequences).

    Sequence b: events ``t[ptr[b]:ptr[b+1]]`` (time-sorted, time units), ``src`` (channel),
    ``amp`` (coincident spikes); readout times ``t_read[:n_read[b]]`` (shared grid), targets
    ``y`` (n, M, n_out) and ``mask`` (n, M) (0: not scored)."""

    ptr: np.ndarray
    t: np.ndarray
    src: np.ndarray
    amp: np.ndarray
    t_read: np.ndarray
    n_read: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    n_in: int

    @property
    def n(self) -> int:
        return int(self.ptr.shape[0] - 1)

    def take(self, idx: np.ndarray) -> "EventBatch":
        idx = np.asarray(idx, np.int64)
        lens = self.ptr[idx + 1] - self.ptr[idx]
        ptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        sel = np.concatenate([np.arange(self.ptr[i], self.ptr[i + 1]) for i in idx]) if idx.size else \
            np.zeros(0, np.int64)
        return EventBatch(ptr, self.t[sel], self.src[sel], self.amp[sel], self.t_read, self.n_read[idx],
                          np.ascontiguousarray(self.y[idx]), np.ascontiguousarray(self.mask[idx]), self.n_in)


def check_regression_target(name: str, y: np.ndarray, n_bins: int, n_seq: int) -> np.ndarray:
    """``y`` (n_bins, n_seq, n_out) finite; ValueError naming ``name`` otherwise."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 2:
        y = y[:, :, None]
    if y.ndim != 3:
        raise ValueError(f"{name} must be (bins, sequences, outputs), got shape {y.shape}")
    if y.shape[0] != n_bins:
        raise ValueError(f"{name} has {y.shape[0]} bins, the inputs have {n_bins}")
    if y.shape[1] != n_seq:
        raise ValueError(f"{name} has {y.shape[1]} sequences, the inputs have {n_seq}")
    bad = ~np.isfinite(y)
    if bad.any():
        k, b, o = np.argwhere(bad)[0]
        raise ValueError(f"{name} contains {int(bad.sum())} NaN/inf value(s) (first: bin {k}, sequence {b}, "
                         f"output {o})")
    return y


def events_from_bins(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None, *,
                     offset: float = 0.0, bias_channel: bool = True, name: str = "x") -> EventBatch:
    """Binned counts ``x`` (T, B, n) (the pretraining sequences' layout), targets ``y`` (T, B,
    n_out), ``mask`` (T, B) -> an :class:`EventBatch` (module docstring: bin k -> events at
    ``k + offset``, readout at ``k + 1``). Counts must be finite and >= 0; the bias channel
    (index n) fires with amplitude 1 in every bin of the sequence."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"{name} must be (bins, sequences, channels), got shape {x.shape}")
    T, B, n = x.shape
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError(f"{name} must hold finite counts >= 0")
    if not (0.0 <= offset < 1.0):
        raise ValueError(f"offset must lie in [0, 1) bins, got {offset!r}")
    y = check_regression_target("target" if name == "x" else f"target of {name}", y, T, B)
    m = np.ones((T, B)) if mask is None else np.asarray(mask, np.float64)
    if m.shape != (T, B):
        raise ValueError(f"mask must be ({T}, {B}), got {m.shape}")
    n_read = np.zeros(B, np.int64)
    ts, ss, aa, ptr = [], [], [], [0]
    for b in range(B):
        valid = np.flatnonzero(m[:, b] > 0)
        nb = int(valid[-1]) + 1 if valid.size else 0
        n_read[b] = nb
        k, c = np.nonzero(x[:nb, b] > 0)  # row-major: bin-sorted
        t = k + offset
        amp = x[:nb, b][k, c]
        if bias_channel:
            kb = np.arange(nb)
            t = np.concatenate([t, kb + offset])
            c = np.concatenate([c, np.full(nb, n)])
            amp = np.concatenate([amp, np.ones(nb)])
        o = np.argsort(t, kind="stable")
        ts.append(t[o])
        ss.append(c[o])
        aa.append(amp[o])
        ptr.append(ptr[-1] + t.size)
    cat = (lambda a, dt: np.ascontiguousarray(np.concatenate(a).astype(dt)) if a else np.zeros(0, dt))
    return EventBatch(np.array(ptr, np.int64), cat(ts, np.float64), cat(ss, np.int64), cat(aa, np.float64),
                      np.arange(1, T + 1, dtype=np.float64), n_read,
                      np.ascontiguousarray(y.transpose(1, 0, 2)), np.ascontiguousarray(m.T), n + int(bias_channel))


# ---------------------------------------------------------------------------- evaluation
class _Buffers(_FPBuffers):
    """The classifier's kernel buffers (:mod:`rtsnn.learn.offline.fp`: preallocated, grown and
    the call retried on overflow) sized for a regression network; its layout dict as ``lay``."""

    def __init__(self, net: FPRegressionNet, spikes: int = 1 << 14, nnz: int = 1 << 18):
        lay = net.layout()
        sized = SimpleNamespace(layout=lambda: (lay["n_post"], lay["off_w"], lay["off_r"], lay["n_params"]))
        super().__init__(sized, spikes, nnz)
        self.lay = lay


class FPRegressionEvaluator:
    """Loss, exact gradient (w.r.t. the kernel vector: rates) and outputs of a batch."""

    def __init__(self, net: FPRegressionNet, max_hidden_spikes: int):
        if int(max_hidden_spikes) < 1:
            raise ValueError(f"max_hidden_spikes must be >= 1, got {max_hidden_spikes!r}")
        self.net = net
        self.max_hidden = int(max_hidden_spikes)
        self.buf = _Buffers(net)

    def run(self, batch: EventBatch, want_grad: bool = True, p: np.ndarray | None = None):
        """(summed loss, summed gradient d/d(kernel vector), outputs (n, M, n_out), spikes per
        neuron summed over the batch)."""
        if batch.n_in != self.net.n_in:
            raise ValueError(f"the events have {batch.n_in} input channels, the network expects {self.net.n_in}")
        if batch.y.shape[2] != self.net.n_out:
            raise ValueError(f"the target has {batch.y.shape[2]} outputs, the network has {self.net.n_out}")
        b = self.buf
        lay = b.lay
        p = self.net.kernel_vector() if p is None else p
        M = batch.t_read.shape[0]
        while True:
            grad = np.zeros(lay["n_params"])
            v_out = np.zeros((batch.n, M, self.net.n_out))
            losses = np.zeros(batch.n)
            counts = np.zeros(int(lay["nrn_off"][-1]), np.int64)
            err = np.zeros((M, self.net.n_out))
            st = K.fp_regression_batch(batch.ptr, batch.t, batch.src, batch.amp, batch.t_read, batch.n_read,
                                       batch.y, batch.mask, p, lay["n_post"], lay["off_w"], lay["off_r"],
                                       lay["nrn_off"], lay["off_th"], lay["off_al"], lay["off_be"], lay["off_b"],
                                       self.max_hidden, want_grad, grad, v_out, losses, counts, b.spk_t,
                                       b.spk_nrn, b.spk_vdot, b.row_ptr, b.row_idx, b.row_val, b.work, b.iwork,
                                       b.acc, b.mark, b.touched, err)
            if st == K.STATUS_OK:
                return float(losses.sum()), grad, v_out, counts
            b.grow(st)


def spike_jacobian_pn(net: FPRegressionNet, in_t, in_src, in_amp, t_max: float, max_hidden_spikes: int,
                      linear_out: bool = True):
    """(spikes per spiking layer [(times, neurons)], dense dF/dp (K x |p|) over the kernel
    vector, V'(f-) per spike) of one sample; for tests and inspection."""
    lay = net.layout()
    buf = _Buffers(net, spikes=64, nnz=256)
    order = np.argsort(np.asarray(in_t, float), kind="stable")
    t = np.ascontiguousarray(np.asarray(in_t, float)[order])
    s = np.ascontiguousarray(np.asarray(in_src, np.int64)[order])
    a = np.ascontiguousarray(np.asarray(in_amp, float)[order])
    p = net.kernel_vector()
    n_spk = len(net.w) - 1 if linear_out else len(net.w)
    ls = np.zeros(len(net.w) + 1, np.int64)
    mh = int(max_hidden_spikes)
    while True:
        st = K.simulate_network_pn(t, s, a, t.size, p, lay["n_post"], lay["off_w"], lay["off_r"], lay["nrn_off"],
                                   lay["off_th"], lay["off_al"], lay["off_be"], n_spk, float(t_max), mh, mh,
                                   buf.work, buf.iwork, buf.spk_t, buf.spk_nrn, buf.spk_vdot, ls)
        if st != K.STATUS_OK:
            buf.grow(st)
            continue
        st = K.fp_rows_pn(t, s, a, t.size, p, lay["n_post"], lay["off_w"], lay["off_r"], lay["nrn_off"],
                          lay["off_th"], lay["off_al"], lay["off_be"], n_spk, buf.spk_t, buf.spk_nrn, buf.spk_vdot,
                          ls, buf.row_ptr, buf.row_idx, buf.row_val, buf.acc, buf.mark, buf.touched)
        if st == K.STATUS_OK:
            break
        buf.grow(st)
    n_k = int(ls[n_spk])
    jac = np.zeros((n_k, lay["n_params"]))
    for k in range(n_k):
        lo, hi = buf.row_ptr[k], buf.row_ptr[k + 1]
        jac[k, buf.row_idx[lo:hi]] = buf.row_val[lo:hi]
    spikes = [(buf.spk_t[ls[l]:ls[l + 1]].copy(), buf.spk_nrn[ls[l]:ls[l + 1]].copy()) for l in range(n_spk)]
    return spikes, jac, buf.spk_vdot[:n_k].copy()


def reference_layers(net: FPRegressionNet) -> list[dict]:
    """The network as :mod:`rtsnn.learn.offline.fp_reference`'s per-neuron layer dicts."""
    out = []
    for l in range(len(net.w)):
        d = {"w": net.w[l], "r": net.r[l], "theta": net.theta[l], "alpha": 1.0 / net.tau_syn[l],
             "beta": 1.0 / net.tau_mem[l]}
        if l == len(net.w) - 1:
            d["bias"] = net.bias
        out.append(d)
    return out


# ---------------------------------------------------------------------------- training
@dataclass
class TrainedFPRegression:
    """An FP-trained regression decoder: ``predict(batch)`` in the target's units."""

    net: FPRegressionNet
    max_hidden_spikes: int
    y_mean: np.ndarray
    y_sd: np.ndarray
    history: list[dict]
    settings: dict

    def predict(self, batch: EventBatch) -> np.ndarray:
        """(n, M, n_out) outputs in the target's units (0 past each sequence's end)."""
        ev = FPRegressionEvaluator(self.net, self.max_hidden_spikes)
        z = EventBatch(batch.ptr, batch.t, batch.src, batch.amp, batch.t_read, batch.n_read,
                       np.zeros((batch.n, batch.t_read.size, self.net.n_out)), batch.mask, batch.n_in)
        _, _, v, _ = ev.run(z, want_grad=False)
        return v * self.y_sd + self.y_mean


def init_regression_net(batch: EventBatch, hidden: list[int], n_out: int, seed: int, *, theta: float = 1.0,
                        tau_syn: float = 0.5, tau_mem: float = 1.0, tau_out_syn: float = 0.5,
                        tau_out_mem: float = 1.0, drive_mean: float = 1.0, drive_sd: float = 0.6) -> FPRegressionNet:
    """Data-scaled init. Hidden layer 0: Gaussian weights rescaled per neuron so that the
    drive of a bin, ``u = sum_c W_ci a_c``, times the integral of the kernel (tau_syn tau_mem)
    has mean ``drive_mean theta`` and sd ``drive_sd theta`` over the training bins (the last
    input channel is taken as the bias channel and sets the mean); deeper layers
    ``N(0, 1.5 theta / sqrt(fan_in)) + theta / fan_in``; output weights 0 (the readout's least-squares fit
    is done by the trainer)."""
    rng = np.random.default_rng(seed)
    sizes = [batch.n_in] + list(hidden) + [n_out]
    ws = [rng.normal(0.0, 1.0, size=(sizes[l], sizes[l + 1])) for l in range(len(sizes) - 1)]
    if hidden:
        # bins x channels of the training events
        nb = int(batch.n_read.sum())
        X = np.zeros((max(nb, 1), batch.n_in))
        row0 = np.concatenate([[0], np.cumsum(batch.n_read)])
        for b in range(batch.n):
            a, z = batch.ptr[b], batch.ptr[b + 1]
            k = np.floor(batch.t[a:z]).astype(np.int64)
            np.add.at(X, (row0[b] + k, batch.src[a:z]), batch.amp[a:z])
        w0 = ws[0]
        w0[-1] = 0.0
        u = X @ w0
        k_int = tau_syn * tau_mem
        sd = u.std(axis=0) + 1e-12
        w0 *= (drive_sd * theta / (k_int * sd))[None, :]
        u = X @ w0
        w0[-1] = (drive_mean * theta / k_int - u.mean(axis=0)) / max(float(X[:, -1].mean()), 1e-12)
        for l in range(1, len(hidden)):
            fan = sizes[l]
            ws[l] = ws[l] * 1.5 * theta / math.sqrt(fan) + theta / fan
    ws[-1][:] = 0.0
    L = len(ws)
    th = [np.full(s, float(theta)) for s in sizes[1:]]
    ts = [np.full(s, float(tau_syn if l < L - 1 else tau_out_syn)) for l, s in enumerate(sizes[1:])]
    tm = [np.full(s, float(tau_mem if l < L - 1 else tau_out_mem)) for l, s in enumerate(sizes[1:])]
    return FPRegressionNet(ws, th, ts, tm, np.zeros(n_out))


def fit_readout_lstsq(net: FPRegressionNet, batch: EventBatch, max_hidden_spikes: int, ridge: float = 1.0) -> None:
    """Set the output weights and bias to the ridge least-squares fit of ``batch.y`` on the
    current spikes (``V_o`` is linear in them given the spikes): one column of outputs per
    presynaptic neuron, obtained by running the network with unit output weights."""
    n_pre = net.w[-1].shape[0]
    n_out = net.n_out
    feats = np.zeros((batch.n, batch.t_read.size, n_pre, n_out))
    probe = net.copy()
    for j in range(n_pre):
        probe.w[-1][:] = 0.0
        probe.w[-1][j, :] = 1.0
        probe.bias[:] = 0.0
        ev = FPRegressionEvaluator(probe, max_hidden_spikes)
        _, _, v, _ = ev.run(batch, want_grad=False)
        feats[:, :, j, :] = v
    sel = batch.mask > 0
    for o in range(n_out):
        F = np.concatenate([feats[:, :, :, o][sel], np.ones((int(sel.sum()), 1))], axis=1)
        G = F.T @ F + ridge * np.diag(np.r_[np.ones(n_pre), 0.0])
        sol = np.linalg.solve(G, F.T @ batch.y[:, :, o][sel])
        net.w[-1][:, o] = sol[:-1]
        net.bias[o] = sol[-1]


def train_regression_fp(train: EventBatch, *, hidden: list[int], epochs: int, seed: int, lr: float = 2e-3,
                        lr_theta: float | None = None, lr_tau: float | None = None, batch_size: int = 16,
                        max_hidden_spikes: int = 64, train_thresholds: bool = True,
                        train_time_constants: bool = True, theta_min: float = 1e-2, tau_min: float = 0.05,
                        grad_clip: float | None = 1.0, init: dict | None = None, readout_lstsq: bool = True,
                        optimizer: str = "adam", momentum: float = 0.9,
                        val: EventBatch | None = None, net: FPRegressionNet | None = None,
                        progress: bool = False) -> TrainedFPRegression:
    """Minibatch Adam on the sampled membrane-potential loss (module docstring) with exact FP
    gradients. Targets are z-scored over the masked training bins (``predict`` undoes it).
    Trainable: all weights and the output bias; per-neuron thresholds (``train_thresholds``,
    learning rate ``lr_theta``) and time constants tau_syn, tau_mem of every layer
    (``train_time_constants``, ``lr_tau``), clamped at ``theta_min`` / ``tau_min`` (counted).
    ``readout_lstsq``: start the output layer at its least-squares fit on the initial spikes.
    ``optimizer``: ``'adam'`` or ``'sgd'`` (heavy ball, ``momentum``); the loss is piecewise
    smooth (a spike appearing or vanishing is a jump no gradient sees), and Adam's equal-size
    steps for every weight move the many small-gradient input weights too far on it.
    History per epoch: loss, val_loss, val_r2 (z-scored bins), epoch_s, hidden_spikes_per_bin,
    hidden_active_frac, clamped_theta, clamped_tau, skipped_batches."""
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs!r}")
    for nm, v in (("lr", lr), ("lr_theta", lr_theta), ("lr_tau", lr_tau)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"{nm} must be finite and > 0, got {v!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if not (theta_min > 0 and tau_min > 0):
        raise ValueError(f"theta_min and tau_min must be > 0, got {theta_min!r}, {tau_min!r}")
    sel = train.mask > 0
    if not sel.any():
        raise ValueError("the training batch has no scored bins (mask is all 0)")
    y_mean = train.y[sel].mean(axis=0)
    y_sd = train.y[sel].std(axis=0) + 1e-12
    zt = EventBatch(train.ptr, train.t, train.src, train.amp, train.t_read, train.n_read,
                    np.ascontiguousarray((train.y - y_mean) / y_sd * train.mask[..., None]), train.mask, train.n_in)
    zv = None
    if val is not None:
        zv = EventBatch(val.ptr, val.t, val.src, val.amp, val.t_read, val.n_read,
                        np.ascontiguousarray((val.y - y_mean) / y_sd * val.mask[..., None]), val.mask, val.n_in)
    if net is None:
        net = init_regression_net(train, list(hidden), train.y.shape[2], seed, **(init or {}))
    if net.n_in != train.n_in:
        raise ValueError(f"the events have {train.n_in} input channels, the network expects {net.n_in}")
    if readout_lstsq:
        fit_readout_lstsq(net, zt, max_hidden_spikes)
    lay = net.layout()
    ev = FPRegressionEvaluator(net, max_hidden_spikes)
    z = net.trainable_vector()
    n_all = int(lay["nrn_off"][-1])
    n_out = net.n_out
    th_sl = slice(lay["off_th"], lay["off_th"] + n_all)
    tau_sl = slice(lay["off_al"], lay["off_b"])
    lr_vec = np.full(z.size, lr)
    lr_vec[th_sl] = lr if lr_theta is None else lr_theta
    lr_vec[tau_sl] = lr if lr_tau is None else lr_tau
    frozen = np.zeros(z.size, bool)
    frozen[lay["off_th"] + lay["nrn_off"][-2]:lay["off_th"] + n_all] = True  # the linear output's theta
    if not train_thresholds:
        frozen[th_sl] = True
    if not train_time_constants:
        frozen[tau_sl] = True
    m = np.zeros_like(z)
    v = np.zeros_like(z)
    b1, b2 = 0.9, 0.999
    step = 0
    rng = np.random.default_rng(seed + 1_000_003)
    n = train.n
    n_batches = (n + batch_size - 1) // batch_size
    n_bins_total = float(train.mask.sum())
    history: list[dict] = []
    clamped_theta = clamped_tau = skipped = 0
    for ep in range(int(epochs)):
        t0 = time.perf_counter()
        perm = rng.permutation(n)
        ep_loss = 0.0
        ep_counts = np.zeros(n_all, np.int64)
        for bi in range(n_batches):
            idx = np.sort(perm[bi * batch_size:(bi + 1) * batch_size])
            mb = zt.take(idx)
            n_sc = float(mb.mask.sum()) * n_out
            net.set_trainable_vector(z)
            loss, gp, _, counts = ev.run(mb)
            ep_counts += counts
            if not (math.isfinite(loss) and np.all(np.isfinite(gp))) or n_sc == 0:
                skipped += 1
                continue
            ep_loss += loss
            g = gp / n_sc
            # the kernels differentiate by the rates; the trainer moves the time constants
            g[tau_sl] *= -1.0 / (z[tau_sl] ** 2)
            g[frozen] = 0.0
            if grad_clip is not None:
                gn = float(np.linalg.norm(g))
                if gn > grad_clip:
                    g *= grad_clip / gn
            step += 1
            if optimizer == "adam":
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                z = z - lr_vec * (m / (1 - b1 ** step)) / (np.sqrt(v / (1 - b2 ** step)) + 1e-8)
            else:  # heavy-ball SGD: steps scale with the gradient (Adam's per-weight steps do not)
                m = momentum * m + g
                z = z - lr_vec * m
            z, c_th, c_tau = clamp_neuron_params(z, th_sl, tau_sl, theta_min, tau_min)
            clamped_theta += c_th
            clamped_tau += c_tau
        net.set_trainable_vector(z)
        hid = int(lay["nrn_off"][-2])
        rec = {"epoch": ep, "loss": ep_loss / max(n_bins_total * n_out, 1.0), "val_loss": None, "val_r2": None,
               "epoch_s": time.perf_counter() - t0,
               "hidden_spikes_per_bin": float(ep_counts[:hid].sum() / max(n_bins_total, 1.0)),
               "hidden_active_frac": float(np.mean(ep_counts[:hid] > 0)) if hid else None,
               "clamped_theta": clamped_theta, "clamped_tau": clamped_tau, "skipped_batches": skipped}
        if zv is not None:
            lv, _, out, _ = ev.run(zv, want_grad=False)
            rec["val_loss"] = lv / max(float(zv.mask.sum()) * n_out, 1.0)
            rec["val_r2"] = r2_masked(out, zv.y, zv.mask)[0]
        history.append(rec)
        if progress:
            print(f"epoch {ep + 1}/{epochs} loss {rec['loss']:.4f} val_r2 {rec['val_r2']} "
                  f"{rec['epoch_s']:.2f}s spikes/bin {rec['hidden_spikes_per_bin']:.1f}", flush=True)
    net.set_trainable_vector(z)
    settings = {"hidden": list(hidden), "epochs": int(epochs), "seed": int(seed), "lr": lr, "lr_theta": lr_theta,
                "lr_tau": lr_tau, "batch_size": int(batch_size), "max_hidden_spikes": int(max_hidden_spikes),
                "train_thresholds": bool(train_thresholds), "train_time_constants": bool(train_time_constants),
                "theta_min": theta_min, "tau_min": tau_min, "grad_clip": grad_clip, "init": dict(init or {}),
                "readout_lstsq": bool(readout_lstsq), "optimizer": optimizer, "momentum": momentum}
    return TrainedFPRegression(net, int(max_hidden_spikes), y_mean, y_sd, history, settings)


def r2_masked(pred: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[float, list[float]]:
    """R^2 per output over the masked bins of (n, M, n_out) arrays (baselines.r2_score)."""
    from rtsnn.learn.offline.baselines import r2_score

    sel = mask > 0
    return r2_score(pred[sel], y[sel])


# ---------------------------------------------------------------------------- export
def fp_regression_to_graph(model, dt_s: float, *, unit_s: float, provenance: dict | None = None,
                           output_labels: list[str] | None = None, output_units: list[str] | None = None):
    """The model graph of an FP regression network at tick ``dt_s`` (one FP time unit =
    ``unit_s`` seconds; ``D = dt_s / unit_s`` units per tick)::

        input -> w0 (Linear) -> layer0 (CubaLIF) [-> r0 -> layer0] -> w1 -> layer1 ... ->
        w_out (Linear, W_out y_sd) -> out_syn (LI, tau_syn_o, gain 1)
                                   -> out_mem (LI, tau_mem_o, gain h_o(D)) -> readout (Affine: 1, b y_sd + y_mean)

    Spiking layers as :func:`rtsnn.learn.offline.export.fp_to_graph`, with per-neuron
    ``tau_syn_s``, ``tau_mem_s``, ``v_th`` and gain ``h_i(D)``; the two LIs are the linear
    output's synaptic and membrane filters: for inputs on the tick grid ``out_mem`` after tick
    ``t`` is exactly ``V_o((t+1) D) - b_o``. A spike reaching the output in the tick it is
    seen, threshold tests at tick ends and input times rounded to ticks are the approximations
    (one tick each); FP's cap of spikes per hidden neuron is not modelled.
    ``model``: a :class:`TrainedFPRegression` (outputs in the target's units) or an
    :class:`FPRegressionNet` (outputs as the network's ``V_o``)."""
    from rtsnn.learn.offline.export import exported_graph_model, fp_layer_gains
    from rtsnn.snn.nodes import LI, Affine, CubaLIF, Input, Linear, Output

    if isinstance(model, TrainedFPRegression):
        net, scale, offset = model.net, np.asarray(model.y_sd, float), np.asarray(model.y_mean, float)
    elif isinstance(model, FPRegressionNet):
        net, scale, offset = model, np.ones(model.n_out), np.zeros(model.n_out)
    else:
        raise ValueError(f"fp_regression_to_graph: expected a TrainedFPRegression or FPRegressionNet, "
                         f"got {type(model).__name__}")
    for name, v in (("dt_s", dt_s), ("unit_s", unit_s)):
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
            raise ValueError(f"fp_regression_to_graph: {name} must be a finite number of seconds > 0, got {v!r}")
    D = dt_s / unit_s

    def gains(l):
        return fp_layer_gains(net.tau_syn[l], net.tau_mem[l], D)

    nodes = {"input": Input(shape=(net.n_in,))}
    edges = []
    src = "input"
    L = len(net.w)
    for l in range(L - 1):
        name = f"layer{l}"
        nodes[f"w{l}"] = Linear(weight=net.w[l])
        nodes[name] = CubaLIF(tau_syn_s=net.tau_syn[l] * unit_s, tau_mem_s=net.tau_mem[l] * unit_s,
                              v_th=net.theta[l], gain=gains(l), reset="subtract", reset_at="now",
                              refractory_s=0.0, n=net.w[l].shape[1])
        edges += [(src, f"w{l}"), (f"w{l}", name)]
        if net.r[l] is not None:
            nodes[f"r{l}"] = Linear(weight=net.r[l])
            edges += [(name, f"r{l}"), (f"r{l}", name)]
        src = name
    n_out = net.n_out
    nodes["w_out"] = Linear(weight=net.w[-1] * scale[None, :])
    nodes["out_syn"] = LI(tau_s=net.tau_syn[-1] * unit_s, gain=1.0, n=n_out)
    nodes["out_mem"] = LI(tau_s=net.tau_mem[-1] * unit_s, gain=gains(L - 1), n=n_out)
    nodes["readout"] = Affine(weight=np.eye(n_out), bias=net.bias * scale + offset)
    nodes["output"] = Output(shape=(n_out,))
    edges += [(src, "w_out"), ("w_out", "out_syn"), ("out_syn", "out_mem"), ("out_mem", "readout"),
              ("readout", "output")]
    prov = dict(provenance or {})
    prov.setdefault("export", {
        "from": "fp_regression", "unit_s": unit_s, "dt_s": dt_s, "ticks_per_unit": 1.0 / D,
        "discretisation": "CubaLIF / LI with exact decays exp(-dt/tau) and gain h(D) per neuron: v[t] = V((t+1) D) "
                          "for inputs on the grid; input times rounded to the nearest tick; threshold tested at tick "
                          "ends; spikes reach the next layer in the same tick; hidden spike cap not modelled",
        "readout": "out_mem after tick t -> V_o((t+1) D) - b_o; Affine adds the bias and undoes the z-scoring"})
    prov.setdefault("method", "fp_regression_export")
    return exported_graph_model("FP regression export", nodes, edges, dt_s, prov, output_labels, output_units)


def events_raster(batch: EventBatch, b: int, dt_s: float, unit_s: float, n_ticks: int) -> np.ndarray:
    """Sequence ``b``'s events as a float32 raster (n_ticks, n_in): an event at time t adds its
    amplitude to tick ``round(t unit_s / dt_s)`` (dropped past the window)."""
    a, z = batch.ptr[b], batch.ptr[b + 1]
    ticks = np.rint(batch.t[a:z] * unit_s / dt_s).astype(np.int64)
    keep = ticks < n_ticks
    r = np.zeros((n_ticks, batch.n_in), np.float32)
    np.add.at(r, (ticks[keep], batch.src[a:z][keep]), batch.amp[a:z][keep].astype(np.float32))
    return r
