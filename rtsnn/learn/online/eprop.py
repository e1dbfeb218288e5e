"""e-prop (Bellec et al. 2020) for LIF/ALIF recurrent networks with leaky readouts.

The per-tick work (traces, learning signal, gradient accumulation) is one numba kernel,
:func:`rtsnn.learn.online.eprop_kernels.eprop_tick`; its equations are in that module's
docstring. Every ``update_every_ticks`` ticks the accumulated gradient is finalised::

    grad_ji += c_reg (n_j / T - f_target dt) / T * sum_t e_ji[t]     windowed rate regulariser
    grad    /= T_avg                                                 if average_gradient

and one optimiser step (GD or Adam, weights clipped to [w_min, w_max]) updates the weights.

Two conventions (``conventions=``):

* ``'native'``: the runtime's own model (:mod:`rtsnn.snn.kernels`): ``zeta = 1``, leaky readout
  ``y = kappa y + w_out^T z + b_out`` (through the trace ``r``), so ``g_e = g_out = 1``; the
  weights learned are the runtime's weights.
* ``'nest_bsshslm_2020'``: NEST 3.10's ``eprop_iaf(_adapt)_bsshslm_2020`` /
  ``eprop_readout_bsshslm_2020`` (and the original TensorFlow code): input and recurrent spikes
  scaled by ``zeta = 1 - alpha`` (``1`` with ``regular_spike_arrival``), readout and filtered
  eligibility scaled by ``1 - kappa``, windowed regulariser, NEST's Adam. The learner keeps the
  weights in NEST's units and installs ``zeta W_in, zeta W_rec, (1 - kappa) W_out`` into the
  runtime. NEST's one-step shifts (its readout reports the previous step's value, and spikes
  reach the readout one step late) cancel: the loss compares ``y[t]`` (including ``z[t]``)
  with ``y*[t]``. NEST's ``t_ref`` of N steps silences N - 1 steps (its countdown is
  decremented before the spike test), i.e. the runtime's ``n_ref = N - 1``; see
  :func:`nest_constants`.

On a model graph the live learner trains the **last** recurrent layer
(:func:`rtsnn.learn.online.needs.find_last_layer`): its input ``x[t]`` is the spikes of the layer
feeding it in the same tick, the earlier layers are frozen, and the equations above hold with
that layer as the network. A graph without such a layer is refused with the reason
(:meth:`EpropLearner.model_problem`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from rtsnn.learn.online import eprop_kernels as K
from rtsnn.learn.online.guards import CheckpointWriter, LearningGuard
from rtsnn.learn.online.needs import NEEDS_LAYER, LastLayer, describe, find_last_layer, last_layer_problem
from rtsnn.snn.graph import GraphModel
from rtsnn.snn.params import LayerConstants, Model, layer_constants, single_layer

CONVENTIONS = ("native", "nest_bsshslm_2020")
FEEDBACKS = ("symmetric", "random", "adaptive")
OPTIMIZERS = ("gd", "adam")
LOSSES = ("mse", "cross_entropy")
REG_MODES = ("window", "online")


@dataclass(frozen=True)
class EpropOptions:
    """Options of e-prop (units in the names; rates in Hz).

    ``update_every_ticks``: ticks per gradient window (1 = update every tick).
    ``reg_rate_hz``/``c_reg``: firing-rate regulariser ``c_reg/2 sum_j (f_j - reg_rate_hz)^2``;
    ``reg_mode='window'`` uses the window's spike count (NEST), ``'online'`` an exponential
    moving average with ``tau_reg_s`` applied every tick. ``feedback_decay``: weight decay of
    the adaptive feedback matrix. ``defer``: None = defer the optimiser step to the session's
    I/O thread when ``update_every_ticks >= 100``. ``max_abs_weight``: the guard's explosion
    bound; ``max_growth``: the guard also rolls back when a weight array's RMS grew more than
    this factor within one commit window (a learning-rate explosion that the clip to
    ``[w_min, w_max]`` hides from ``max_abs_weight``). ``lr_min``/``lr_max``: the range
    ``set_learning_rate`` (the control channel) accepts. ``learning_window_ticks``: divisor of ``average_gradient`` (default: the window).
    ``reset_on_update``: at each window end zero the traces and the network state (NEST's
    ``eprop_reset_neurons_on_update``; trials as sequences). The reset happens in ``observe``,
    so that tick's emitted output is the reset state's.
    """

    lr: float = 1e-3
    lr_min: float = 1e-12
    lr_max: float = 1.0
    feedback: str = "symmetric"
    optimizer: str = "adam"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    update_every_ticks: int = 1000
    loss: str = "mse"
    conventions: str = "native"
    regular_spike_arrival: bool = False
    gamma: float = 0.3
    c_reg: float = 0.0
    reg_rate_hz: float = 10.0
    reg_mode: str = "window"
    tau_reg_s: float = 1.0
    average_gradient: bool = False
    learning_window_ticks: int | None = None
    w_min: float = -100.0
    w_max: float = 100.0
    train_in: bool = True
    train_rec: bool = True
    train_out: bool = True
    train_bias: bool = False
    feedback_decay: float = 0.0
    seed: int = 0
    max_abs_weight: float = 1e3
    max_growth: float = 10.0
    defer: bool | None = None
    reset_on_update: bool = False
    checkpoint_path: str | None = None
    checkpoint_every_s: float = 60.0

    def __post_init__(self) -> None:
        def req(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(msg)

        def pos(name: str) -> None:
            val = getattr(self, name)
            req(isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val) and val > 0,
                f"eprop option {name} must be a finite number > 0, got {val!r}")

        for name, allowed in (("feedback", FEEDBACKS), ("optimizer", OPTIMIZERS), ("loss", LOSSES),
                              ("conventions", CONVENTIONS), ("reg_mode", REG_MODES)):
            req(getattr(self, name) in allowed,
                f"eprop option {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("lr", "lr_min", "lr_max", "adam_eps", "gamma", "tau_reg_s", "max_abs_weight",
                     "checkpoint_every_s", "max_growth"):
            pos(name)
        req(self.lr_min <= self.lr <= self.lr_max,
            f"eprop option lr {self.lr!r} is outside [lr_min, lr_max] = [{self.lr_min:g}, {self.lr_max:g}]")
        for name in ("adam_beta1", "adam_beta2"):
            val = getattr(self, name)
            req(isinstance(val, (int, float)) and 0.0 <= val < 1.0, f"eprop option {name} must be in [0, 1), got {val!r}")
        req(isinstance(self.update_every_ticks, int) and not isinstance(self.update_every_ticks, bool)
            and self.update_every_ticks >= 1, f"eprop option update_every_ticks must be an int >= 1, "
                                              f"got {self.update_every_ticks!r}")
        for name in ("c_reg", "reg_rate_hz", "feedback_decay"):
            val = getattr(self, name)
            req(isinstance(val, (int, float)) and math.isfinite(val) and val >= 0,
                f"eprop option {name} must be a finite number >= 0, got {val!r}")
        req(self.w_min < self.w_max, f"eprop options need w_min < w_max, got {self.w_min!r} >= {self.w_max!r}")
        req(self.learning_window_ticks is None or (isinstance(self.learning_window_ticks, int)
                                                   and self.learning_window_ticks >= 1),
            f"eprop option learning_window_ticks must be None or an int >= 1, got {self.learning_window_ticks!r}")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> EpropOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ValueError(f"unknown eprop option(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def nest_constants(tau_m_ms: float, tau_out_ms: float, v_th: float, t_ref_ms: float = 0.0,
                   adapt_tau_ms: float = 2000.0, adapt_beta: float = 0.0, model: str = "lif",
                   dt_ms: float = 1.0) -> LayerConstants:
    """The fused kernel's constants equal to NEST's ``eprop_*_bsshslm_2020`` parameters (NEST's
    ``t_ref`` of N steps silences N - 1 steps, so the runtime's refractory period is one step
    shorter). ``adapt_tau_ms`` and ``adapt_beta`` are used for ``model='alif'`` only."""
    n_ref = max(int(round(t_ref_ms / dt_ms)) - 1, 0)
    hidden, trace = single_layer(model, 1, tau_mem_s=tau_m_ms * 1e-3, tau_adapt_s=adapt_tau_ms * 1e-3,
                                 beta_adapt=adapt_beta, v_th=v_th, refractory_s=n_ref * dt_ms * 1e-3,
                                 tau_out_s=tau_out_ms * 1e-3)
    return layer_constants(hidden, trace, dt_ms * 1e-3)


def convention_scalars(constants: LayerConstants, options: EpropOptions) -> dict[str, float]:
    """``zeta, g_e, g_out`` and the weight scales (runtime weight = scale * learned weight)."""
    alpha, kappa = constants.alpha, constants.kappa
    if options.conventions == "nest_bsshslm_2020":
        zeta = 1.0 if options.regular_spike_arrival else 1.0 - alpha
        return {"zeta": zeta, "g_e": 1.0 - kappa, "g_out": 1.0 - kappa,
                "scale_in": zeta, "scale_rec": zeta, "scale_out": 1.0 - kappa}
    return {"zeta": 1.0, "g_e": 1.0, "g_out": 1.0, "scale_in": 1.0, "scale_rec": 1.0, "scale_out": 1.0}


class _GradSet:
    """Gradient accumulators of one window (swapped whole between compute and I/O thread)."""

    def __init__(self, n_in: int, n_rec: int, n_out: int, dtype: Any, track_esum: bool):
        self.grad_in = np.zeros((n_in, n_rec), dtype)
        self.grad_rec = np.zeros((n_rec, n_rec), dtype)
        self.grad_out = np.zeros((n_rec, n_out), dtype)
        self.grad_b = np.zeros(n_out, dtype)
        shape_in, shape_rec = ((n_in, n_rec), (n_rec, n_rec)) if track_esum else ((1, 1), (1, 1))
        self.esum_in = np.zeros(shape_in, dtype)
        self.esum_rec = np.zeros(shape_rec, dtype)
        self.count = np.zeros(n_rec, dtype)
        self.counters = np.zeros(K.N_COUNTERS, np.int64)

    def zero(self) -> None:
        for arr in (self.grad_in, self.grad_rec, self.grad_out, self.grad_b, self.esum_in, self.esum_rec,
                    self.count, self.counters):
            arr[...] = 0

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.grad_in, self.grad_rec, self.grad_out, self.grad_b, self.esum_in,
                                      self.esum_rec, self.count))


class EpropCore:
    """Buffers and steps of e-prop for one network (no session logic).

    Weights are held in the convention's units (``w_in, w_rec, w_out, b_out``, the masters);
    :meth:`install` writes ``scale * master`` into runtime arrays. ``beta`` (n_rec) is the
    per-neuron adaptation strength (0 for LIF neurons).
    """

    def __init__(self, constants: LayerConstants, options: EpropOptions, w_in: np.ndarray, w_rec: np.ndarray,
                 w_out: np.ndarray, b_out: np.ndarray, beta: np.ndarray | None = None,
                 dtype: Any = np.float32, feedback: np.ndarray | None = None):
        self.constants, self.options = constants, options
        self.dtype = np.dtype(dtype)
        o = options
        self.n_in, self.n_rec = w_in.shape
        self.n_out = w_out.shape[1]
        self.conv = convention_scalars(constants, options)
        dt = self.dtype
        self.w_in = np.array(w_in, dt)
        self.w_rec = np.array(w_rec, dt)
        self.w_out = np.array(w_out, dt)
        self.b_out = np.array(b_out, dt)
        if beta is None:
            beta = np.full(self.n_rec, constants.beta_adapt if constants.adaptive else 0.0)
        self.beta = np.ascontiguousarray(beta, dt)
        if self.beta.shape != (self.n_rec,):
            raise ValueError(f"beta must have shape (n_rec,) = ({self.n_rec},), got {self.beta.shape}")
        self.adaptive = bool(np.any(self.beta != 0))
        self.learn_rec = bool(o.train_rec)
        rng = np.random.default_rng(o.seed)
        if feedback is not None:
            self.B = np.array(feedback, dt)
            if self.B.shape != (self.n_rec, self.n_out):
                raise ValueError(f"feedback must have shape (n_rec, n_out) = ({self.n_rec}, {self.n_out}), "
                                 f"got {self.B.shape}")
        elif o.feedback == "symmetric":
            self.B = self.w_out.copy()
        else:
            self.B = (rng.standard_normal((self.n_rec, self.n_out)) / math.sqrt(self.n_rec)).astype(dt)
        self.track_esum = o.c_reg > 0 and o.reg_mode == "window"
        self.active = _GradSet(self.n_in, self.n_rec, self.n_out, dt, self.track_esum)
        self.pending = _GradSet(self.n_in, self.n_rec, self.n_out, dt, self.track_esum)
        # traces
        self.zbar_in = np.zeros(self.n_in, dt)
        self.vec = np.zeros((6, self.n_rec), dt)
        self.z_prev = np.zeros(self.n_rec, dt)
        self.refc = np.zeros(self.n_rec, np.int32)
        shape_eps_in = (self.n_in, self.n_rec) if self.adaptive else (1, 1)
        shape_eps_rec = (self.n_rec, self.n_rec) if self.adaptive else (1, 1)
        self.eps_in = np.zeros(shape_eps_in, dt)
        self.eps_rec = np.zeros(shape_eps_rec, dt)
        self.ebar_in = np.zeros((self.n_in, self.n_rec), dt)
        self.ebar_rec = np.zeros((self.n_rec, self.n_rec), dt)
        self.err = np.zeros(self.n_out, dt)
        # optimiser state
        self.step_count = 0
        names = ("w_in", "w_rec", "w_out", "b_out", "B")
        self.adam_m = {n: np.zeros_like(getattr(self, n)) for n in names}
        self.adam_s = {n: np.zeros_like(getattr(self, n)) for n in names}
        self.p = np.zeros(K.N_PARAMS, np.float64)
        p = self.p
        c = constants
        p[K.P_ALPHA], p[K.P_KAPPA], p[K.P_RHO] = c.alpha, c.kappa, c.rho
        p[K.P_VTH], p[K.P_GAMMA], p[K.P_ZETA] = c.v_th, o.gamma, self.conv["zeta"]
        p[K.P_GE], p[K.P_GOUT], p[K.P_NREF] = self.conv["g_e"], self.conv["g_out"], c.n_ref
        p[K.P_ADAPTIVE] = float(self.adaptive)
        f_target = o.reg_rate_hz * c.dt_s  # spikes per step
        p[K.P_FTARGET] = f_target
        if o.c_reg > 0 and o.reg_mode == "online":
            n_avg = o.tau_reg_s / c.dt_s
            p[K.P_KREG] = math.exp(-1.0 / n_avg)
            p[K.P_CREG_TICK] = o.c_reg / o.update_every_ticks
        else:
            p[K.P_KREG] = 0.0
            p[K.P_CREG_TICK] = 0.0
        self._window_coef = np.zeros(self.n_rec, dt)
        self.lr = float(o.lr)

    # -------------------------------------------------------------- per tick
    def tick(self, x: np.ndarray, z: np.ndarray, v: np.ndarray, a: np.ndarray, err: np.ndarray) -> bool:
        """Advance traces and accumulate gradients for one tick (see :func:`eprop_tick`)."""
        g = self.active
        return K.eprop_tick(x, self.z_prev, z, v, a, err, self.beta, self.B, self.refc, self.vec, self.zbar_in,
                            self.eps_in, self.ebar_in, g.esum_in, g.grad_in, self.eps_rec, self.ebar_rec,
                            g.esum_rec, g.grad_rec, g.grad_out, g.grad_b, g.count, g.counters, self.p,
                            self.track_esum, self.learn_rec)

    def reset_traces(self) -> None:
        """Zero every trace (start of a sequence when the network state is reset too)."""
        for arr in (self.zbar_in, self.vec, self.z_prev, self.refc, self.eps_in, self.eps_rec, self.ebar_in,
                    self.ebar_rec):
            arr[...] = 0

    def swap(self) -> None:
        """Hand the active window's gradients over to ``pending`` and start a fresh window."""
        self.active, self.pending = self.pending, self.active
        self.active.zero()

    # -------------------------------------------------------------- window end
    def finalize(self, g: _GradSet) -> int:
        """Add the windowed regulariser and average (in place); return the window's ticks."""
        o = self.options
        n_ticks = int(g.counters[K.C_TICKS])
        if n_ticks == 0:
            return 0
        if self.track_esum:
            f_t = o.reg_rate_hz * self.constants.dt_s
            self._window_coef[:] = o.c_reg * (g.count / n_ticks - f_t) / n_ticks
            K.add_window_regulariser(g.grad_in, g.esum_in, self._window_coef)
            if self.learn_rec:
                K.add_window_regulariser(g.grad_rec, g.esum_rec, self._window_coef)
        if o.average_gradient:
            div = float(o.learning_window_ticks or n_ticks)
            for arr in (g.grad_in, g.grad_rec, g.grad_out, g.grad_b):
                arr /= div
        np.fill_diagonal(g.grad_rec, 0.0)  # no autapses
        return n_ticks

    def optimizer_step(self, g: _GradSet, sync_feedback: bool = True) -> None:
        """One optimiser step of the masters from the finalised gradients ``g``
        (``sync_feedback=False``: leave symmetric ``B`` for :meth:`sync_feedback`, so a step
        run on another thread does not write what the tick reads)."""
        o = self.options
        self.step_count += 1
        pairs = []
        if o.train_in:
            pairs.append(("w_in", g.grad_in))
        if o.train_rec and self.learn_rec:
            pairs.append(("w_rec", g.grad_rec))
        if o.train_out:
            pairs.append(("w_out", g.grad_out))
        if o.train_bias:
            pairs.append(("b_out", g.grad_b))
        if o.feedback == "adaptive":
            # B follows W_out's gradient; weight decay on both lets them converge (Bellec 2020)
            g_b = g.grad_out + o.feedback_decay * self.B
            if o.feedback_decay > 0:
                g.grad_out += o.feedback_decay * self.w_out
            pairs.append(("B", g_b))
        for name, grad in pairs:
            w = getattr(self, name)
            if o.optimizer == "adam":
                K.adam_update(w, grad, self.adam_m[name], self.adam_s[name], self.lr, 1.0, o.adam_beta1,
                              o.adam_beta2, o.adam_eps, self.step_count, o.w_min, o.w_max)
            else:
                K.gd_update(w, grad, self.lr, 1.0, o.w_min, o.w_max)
        np.fill_diagonal(self.w_rec, 0.0)
        if sync_feedback:
            self.sync_feedback()

    def sync_feedback(self) -> None:
        if self.options.feedback == "symmetric":
            self.B[...] = self.w_out

    def weights_ok(self) -> bool:
        m = self.options.max_abs_weight
        return all(K.all_finite_bounded(w, m) for w in (self.w_in, self.w_rec, self.w_out, self.b_out, self.B))

    def install(self, w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray, b_out: np.ndarray) -> None:
        """Write ``scale * master`` into runtime weight arrays (in place)."""
        c = self.conv
        np.multiply(self.w_in, c["scale_in"], out=w_in, casting="unsafe")
        np.multiply(self.w_rec, c["scale_rec"], out=w_rec, casting="unsafe")
        np.multiply(self.w_out, c["scale_out"], out=w_out, casting="unsafe")
        b_out[...] = self.b_out

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {n: getattr(self, n) for n in ("w_in", "w_rec", "w_out", "b_out", "B")}

    def memory_bytes(self) -> int:
        """Bytes of every per-synapse/per-neuron learning buffer (weights not counted)."""
        arrs = [self.zbar_in, self.vec, self.z_prev, self.refc, self.eps_in, self.eps_rec, self.ebar_in,
                self.ebar_rec, self.B]
        arrs += list(self.adam_m.values()) + list(self.adam_s.values())
        arrs += [self.w_in, self.w_rec, self.w_out, self.b_out]  # the masters
        return sum(a.nbytes for a in arrs) + self.active.nbytes() + self.pending.nbytes()


def compute_error(y: np.ndarray, target: np.ndarray, loss: str, out: np.ndarray) -> None:
    """``out = y - target`` (mse) or ``softmax(y) - target`` (cross_entropy), in place."""
    if loss == "mse":
        np.subtract(y, target, out=out)
    else:
        m = float(np.max(y))
        np.subtract(y, m, out=out)
        np.exp(out, out=out)
        out /= out.sum()
        out -= target


# ---------------------------------------------------------------------------- offline driver
def train_sequences(constants: LayerConstants, options: EpropOptions, w_in, w_rec, w_out, xs: np.ndarray,
                    targets: np.ndarray, beta: np.ndarray | None = None, feedback: np.ndarray | None = None,
                    err_mask: np.ndarray | None = None, dtype: Any = np.float64) -> dict[str, Any]:
    """Train on sequences with the state reset at each start and one update per sequence
    (NEST's ``eprop_reset_neurons_on_update`` with ``eprop_update_interval`` = sequence).

    ``xs`` (n_iter, T, n_in) input spikes, ``targets`` (n_iter, T, n_out); ``err_mask`` (T,)
    boolean: steps whose error counts (others get error 0, as NEST's learning window).
    Returns per-iteration ``losses`` (0.5 sum_t (y-y*)^2 for mse; mean cross-entropy over the
    masked steps), the final weights and the EpropCore.
    """
    n_iter, n_t, n_in = xs.shape
    core = EpropCore(constants, options, w_in, w_rec, w_out, np.zeros(np.shape(w_out)[1]), beta=beta,
                     dtype=dtype, feedback=feedback)
    n_rec, n_out = core.n_rec, core.n_out
    dt = core.dtype
    v, a, z = np.zeros(n_rec, dt), np.zeros(n_rec, dt), np.zeros(n_rec, dt)
    refr = np.zeros(n_rec, np.int32)
    y, cur = np.zeros(n_out, dt), np.zeros(n_rec, dt)
    err = core.err
    mask = np.ones(n_t, bool) if err_mask is None else np.asarray(err_mask, bool)
    # forward scalars: the convention's zeta/g_out on the learned (master) weights
    pf = core.p.copy()
    losses = []
    ys = np.zeros((n_t, n_out))
    xs_d = np.ascontiguousarray(xs, dt)
    tg_d = np.ascontiguousarray(targets, dt)
    for it in range(n_iter):
        for arr in (v, a, z, refr, y):
            arr[...] = 0
        core.reset_traces()
        g = core.active
        K.run_sequence(xs_d[it], tg_d[it], mask, options.loss == "cross_entropy", core.w_in, core.w_rec, core.w_out,
                       core.beta, core.B, v, a, z, refr, y, cur, err, core.refc, core.vec, core.zbar_in, core.eps_in,
                       core.ebar_in, g.esum_in, g.grad_in, core.eps_rec, core.ebar_rec, g.esum_rec, g.grad_rec,
                       g.grad_out, g.grad_b, g.count, g.counters, core.z_prev, pf, core.track_esum, core.learn_rec, ys)
        tg = targets[it]
        if options.loss == "mse":
            losses.append(float(0.5 * np.sum((ys - tg) ** 2)))
        else:
            e = np.exp(ys - ys.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            losses.append(float(-np.mean(np.sum(tg[mask] * np.log(p[mask]), axis=1))))
        core.finalize(core.active)
        core.optimizer_step(core.active)
        core.active.zero()
    return {"losses": losses, "core": core}


# ---------------------------------------------------------------------------- session plugin
class _BackendView:
    """What e-prop reads from a backend each tick, and the weights it writes.

    Uses ``backend.inputs()`` (the last tick's input spikes) when the backend has it; else it
    wraps ``backend.step`` once to remember the input buffer the session passes (the session
    reuses one buffer, so the reference stays valid until the next encode). Membrane ``v``,
    adaptation ``a`` and spikes ``z`` come from ``backend.network.state`` (or ``backend.state()``),
    the weights from ``backend.model.weights`` (the arrays the network steps with).

    A backend running a model graph (``backend.model`` a :class:`GraphModel`) is trained on its
    last recurrent layer (:func:`rtsnn.learn.online.needs.find_last_layer`): ``model`` is that
    layer as a single-layer Model sharing the graph's weight arrays, ``x`` the spikes of the
    layer feeding it (the same tick's; earlier layers are frozen), ``v, a, z`` the layer's
    state from ``backend.state()`` (``'<node>.<name>'`` views).
    """

    def __init__(self, backend: Any):
        self.backend = backend
        net = getattr(backend, "network", None)
        state = backend.state() if hasattr(backend, "state") and callable(backend.state) else \
            (net.state if net is not None else None)
        model = getattr(backend, "model", None)
        if state is None or model is None:
            raise ValueError(f"eprop learner needs a backend exposing its network state (backend.network.state "
                             f"or backend.state()) and backend.model; {type(backend).__name__} has neither")
        self.graph_model: GraphModel | None = None
        self.layer: LastLayer | None = None
        if isinstance(model, GraphModel):
            layer, why = find_last_layer(model)
            if layer is None:
                raise ValueError(f"eprop: {NEEDS_LAYER}; {describe(model.graph)}, and {why}")
            if not isinstance(state, dict):
                raise ValueError(f"eprop learner needs backend.state() of a graph as '<node>.<name>' arrays; "
                                 f"{type(backend).__name__} gives {type(state).__name__}")
            self.graph_model, self.layer = model, layer
            self.v, self.a, self.z = (state[f"{layer.hidden}.{k}"] for k in ("v", "a", "z"))
            model = layer.model
        else:
            self.v, self.a, self.z = state.v, state.a, state.z
        self.state = state
        self.model: Model = model
        self.x: np.ndarray = np.zeros(model.n_in, np.float32)
        if self.layer is not None and not self.layer.from_input:
            src = state[f"{self.layer.source}.z"]  # the previous layer's spikes, this tick
            self.inputs = lambda: src
        elif hasattr(backend, "inputs"):
            self.inputs = backend.inputs
        else:
            orig = backend.step
            view = self

            def step(spikes_in: np.ndarray) -> None:
                view.x = spikes_in
                orig(spikes_in)

            backend.step = step
            self.inputs = lambda: view.x


class EpropLearner:
    """e-prop inside a live session (:class:`rtsnn.protocols.Learner`); options as keyword
    arguments (see :class:`EpropOptions`), e.g. ``lr``, ``feedback``, ``optimizer``,
    ``update_every_ticks``, ``reg_rate_hz``, ``c_reg``, ``conventions``.

    ``observe`` runs one :func:`eprop_tick` per tick with a teaching target (no allocation).
    At the end of each window the optimiser step runs inline (short windows) or, deferred,
    on the session's I/O thread in :meth:`prepare`, and :meth:`apply` installs the new
    weights between two ticks. Every update passes the :class:`LearningGuard`: NaN or
    exploding weights roll back to the last good weights and pause learning (counted in
    :meth:`stats`). :meth:`pause`, :meth:`resume` and :meth:`set_lr` change learning while
    running; a checkpoint of the adapted model is written atomically every
    ``checkpoint_every_s`` and at :meth:`close` when ``checkpoint_path`` is set.
    """

    needs_target = True
    needs = NEEDS_LAYER

    @staticmethod
    def model_problem(model: Any) -> str | None:
        """None when e-prop can train ``model`` (today's single layer, or the last recurrent
        layer of a graph with earlier layers frozen), else ``needs ...; model graph has ...``."""
        return last_layer_problem(model)

    def __init__(self, **options: Any):
        self.options = EpropOptions.from_kwargs(**options)
        o = self.options
        self.defer = o.update_every_ticks >= 100 if o.defer is None else bool(o.defer)
        self.core: EpropCore | None = None
        self._want = False
        self._ready = False
        self.windows = 0
        self.updates = 0
        self.windows_merged = 0
        self.ticks = 0
        self.bad_targets = 0
        self._win_ticks = 0
        self._resume_reset = False
        self.checkpoint: CheckpointWriter | None = None
        self._snap_every = max(1, 1000 // o.update_every_ticks)
        self._since_snap = 0

    # -------------------------------------------------------------- set-up
    def attach(self, backend: Any, dt_s: float) -> None:
        view = _BackendView(backend)
        model = view.model
        constants = model.constants
        if abs(constants.dt_s - dt_s) > 1e-12:
            raise ValueError(f"eprop: session dt_s {dt_s} differs from the model's dt_s {constants.dt_s}")
        o = self.options
        if o.loss == "cross_entropy" and model.n_out < 2:
            raise ValueError("eprop: loss 'cross_entropy' needs n_out >= 2")
        conv = convention_scalars(constants, o)
        w = model.weights
        self.view = view
        self.rt = (w.w_in, w.w_rec, w.w_out, w.b_out)
        self.core = EpropCore(constants, o, w.w_in / conv["scale_in"], w.w_rec / conv["scale_rec"],
                              w.w_out / conv["scale_out"], w.b_out, dtype=np.float32)
        self.guard = LearningGuard(self.core.state_arrays(), o.max_abs_weight, o.max_growth)
        self._check_arrays = list(self.core.state_arrays().values())
        self.err = self.core.err
        self._y = backend.readout()
        self._v, self._a, self._z = view.v, view.a, view.z
        if o.checkpoint_path:
            self.checkpoint = CheckpointWriter(o.checkpoint_path, self.snapshot_model, o.checkpoint_every_s)
        self._warm()

    def _warm(self) -> None:
        """Compile every kernel on scratch copies (the real buffers are left untouched)."""
        c = self.core
        assert c is not None
        scratch = EpropCore(c.constants, c.options, c.w_in, c.w_rec, c.w_out, c.b_out, beta=c.beta, dtype=c.dtype)
        x = np.zeros(c.n_in, np.float32)
        z, v, a = np.zeros(c.n_rec, np.float32), np.zeros(c.n_rec, np.float32), np.zeros(c.n_rec, np.float32)
        scratch.tick(x, z, v, a, np.zeros(c.n_out, np.float32))
        scratch.finalize(scratch.active)
        scratch.optimizer_step(scratch.active)
        scratch.weights_ok()
        scratch.install(*(arr.copy() for arr in self.rt))
        compute_error(self._y.copy(), np.zeros(c.n_out, np.float32), self.options.loss, scratch.err)

    # -------------------------------------------------------------- per tick
    def observe(self, backend: Any, target: np.ndarray | None) -> None:
        core = self.core
        if target is None or core is None or self.guard.paused:
            return
        if self._resume_reset:
            core.reset_traces()
            core.active.zero()
            self._win_ticks = 0
            self._resume_reset = False
        compute_error(self._y, target, self.options.loss, self.err)
        if not core.tick(self.view.inputs(), self._z, self._v, self._a, self.err):
            self.bad_targets += 1  # NaN/inf teaching signal: this tick taught nothing
        self.ticks += 1
        self._win_ticks += 1
        if self._win_ticks >= self.options.update_every_ticks:
            self._win_ticks = 0
            self.windows += 1
            if self.options.reset_on_update:
                backend.reset_state()
            if not self.defer:
                self._update_inline()
            elif not self._want:
                core.swap()
                self._want = True
            else:
                self.windows_merged += 1  # the previous window is still waiting: keep accumulating
            if self.options.reset_on_update:
                core.reset_traces()

    def _update_inline(self) -> None:
        core = self.core
        assert core is not None
        g = core.active
        if core.finalize(g):
            core.optimizer_step(g)
            self._since_snap += 1
            ok = True
            if not core.weights_ok():
                ok = self.guard.commit_or_rollback()  # restores the last good copy, pauses
            elif self._since_snap >= self._snap_every:
                self._since_snap = 0
                ok = self.guard.commit_or_rollback()
            if not ok:
                core.sync_feedback()
                self._reset_optimizer()
            core.install(*self.rt)
            self.updates += ok
        g.zero()

    def _reset_optimizer(self) -> None:
        core = self.core
        assert core is not None
        for d in (core.adam_m, core.adam_s):
            for arr in d.values():
                arr[...] = 0
        core.step_count = 0
        self._resume_reset = True

    # -------------------------------------------------------------- deferred update
    def wants_apply(self) -> bool:
        """A deferred window is waiting, or (inline updates) a scheduled checkpoint is due:
        either way the session's I/O thread should call :meth:`prepare`."""
        if self._want and not self._ready:
            return True
        return not self.defer and self.checkpoint is not None and self.checkpoint.due()

    def prepare(self) -> None:
        """I/O thread: finalise the pending window, optimiser step, guard check; with inline
        updates only the scheduled checkpoint (of the guard's last good weights)."""
        core = self.core
        if core is not None and not self._want and self.checkpoint is not None:
            self.checkpoint.maybe_write()
        if core is None or not self._want:
            return
        g = core.pending
        if core.finalize(g) and not self.guard.paused:
            core.optimizer_step(g, sync_feedback=False)
            if self.guard.commit_or_rollback():
                self.updates += 1
            else:
                self._reset_optimizer()
        g.zero()
        if self.checkpoint is not None:
            self.checkpoint.maybe_write()
        self._ready = True

    def ready(self) -> bool:
        return self._ready

    def apply(self, backend: Any) -> None:
        """Compute thread, between ticks: install the new weights."""
        core = self.core
        if core is None or not self._ready:
            return
        core.sync_feedback()
        core.install(*self.rt)
        self._ready = False
        self._want = False

    # -------------------------------------------------------------- control
    def pause(self) -> None:
        self.guard.pause("operator")

    def resume(self) -> None:
        """Resume learning; traces and the window restart (stale traces would mix regimes)."""
        self._resume_reset = True
        self.guard.resume()

    def set_lr(self, lr: float) -> None:
        """Change the learning rate; refused (ValueError, the control channel answers with it)
        outside ``[lr_min, lr_max]`` of the options."""
        if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"eprop learning rate must be a finite number > 0, got {lr!r}")
        o = self.options
        if not o.lr_min <= lr <= o.lr_max:
            raise ValueError(f"eprop learning rate {lr:g} is outside [lr_min, lr_max] = [{o.lr_min:g}, {o.lr_max:g}] "
                             f"(the learner's options lr_min / lr_max set the bounds)")
        assert self.core is not None, "attach() first"
        self.core.lr = float(lr)

    # the names control messages use (rtsnn.protocols.Learner, MQTT control topic)
    def pause_learning(self) -> None:
        self.pause()

    def resume_learning(self) -> None:
        self.resume()

    def set_learning_rate(self, lr: float) -> None:
        self.set_lr(lr)

    def snapshot_model(self) -> Model | GraphModel:
        """The adapted model (weights as the runtime uses them), copied under the guard's lock:
        a Model, or for a graph the whole GraphModel with its last layer's adapted weights
        (the frozen layers as they are)."""
        core = self.core
        assert core is not None
        view = self.view
        conv = core.conv
        record = {"options": self.options.to_dict(), "updates": self.updates, "ticks": self.ticks}
        if view.graph_model is not None and view.layer is not None:
            gm = view.graph_model.copy()  # deep copies of every node's arrays
            nodes, L = gm.graph.nodes, view.layer
            with self.guard._lock:
                nodes[L.w_in].weight[...] = self.guard.good["w_in"] * conv["scale_in"]  # type: ignore[attr-defined]
                nodes[L.w_rec].weight[...] = self.guard.good["w_rec"] * conv["scale_rec"]  # type: ignore[attr-defined]
                nodes[L.w_out].weight[...] = self.guard.good["w_out"] * conv["scale_out"]  # type: ignore[attr-defined]
                nodes[L.w_out].bias[...] = self.guard.good["b_out"]  # type: ignore[attr-defined]
            gm.provenance["eprop"] = {**record, "layer": L.hidden, "frozen": list(L.frozen)}
            return gm
        with self.guard._lock:
            w = view.model.weights.copy()
            w.w_in[...] = self.guard.good["w_in"] * conv["scale_in"]
            w.w_rec[...] = self.guard.good["w_rec"] * conv["scale_rec"]
            w.w_out[...] = self.guard.good["w_out"] * conv["scale_out"]
            w.b_out[...] = self.guard.good["b_out"]
        prov = dict(view.model.provenance)
        prov["eprop"] = record
        m = view.model
        # adapted weights, same input: the checkpoint keeps the contract
        return Model(copy.deepcopy(m.hidden), copy.deepcopy(m.trace), w, m.dt_s, prov, list(m.output_labels or []),
                     list(m.output_units or []), m.input_contract)

    def close(self) -> None:
        """Session end: check the running weights once more (a final commit, or a rollback when
        they diverged since the last one), then write the final checkpoint (when configured):
        it holds the weights the network ran with at the end, not those of the last periodic commit."""
        if self.core is not None and not self.guard.paused:
            self.guard.commit_or_rollback()
        if self.checkpoint is not None:
            self.checkpoint.close()

    def stats(self) -> dict[str, Any]:
        core = self.core
        out: dict[str, Any] = {"ticks": self.ticks, "windows": self.windows, "updates": self.updates,
                               "windows_merged": self.windows_merged,
                               "lr": core.lr if core is not None else self.options.lr}
        if core is not None:
            out["bad_targets"] = self.bad_targets
            out.update(self.guard.stats())
        if self.checkpoint is not None:
            out.update(self.checkpoint.stats())
        return out
