"""The single-layer model of the fused kernel, and the values it is made of.

The neuron description is the node dataclass of :mod:`rtsnn.snn.nodes` (one parameter type per
neuron kind, per-neuron arrays). A :class:`Model` is the smallest model graph the fused kernel
(:mod:`rtsnn.snn.kernels`) runs, held as its parts:

* ``hidden`` -- a :class:`~rtsnn.snn.nodes.LIF` or :class:`~rtsnn.snn.nodes.ALIF` node of
  ``n_rec`` neurons, ``trace`` -- an :class:`~rtsnn.snn.nodes.LI` node (the readout trace), and
  the tick ``dt_s``;
* :class:`Weights` -- trainable parameters (float32 arrays): ``w_in`` (n_in, n_rec),
  ``w_rec`` (n_rec, n_rec, zero diagonal), ``w_out`` (n_rec, n_out), ``b_out`` (n_out,);
* provenance, output labels/units and the optional input contract.

:class:`NetworkState` is the runtime state (float32 arrays, ``refr`` int32): membrane ``v``,
adaptation ``a``, spikes ``z``, refractory countdown ``refr``, readout trace ``r``, output ``y``.

:class:`LayerConstants` is no model description: it is the handful of per-step scalars the
fused kernel, its numpy reference and e-prop compute with, derived from the nodes by
:func:`layer_constants` (``alpha = exp(-dt_s/tau_mem_s)``, ``rho = exp(-dt_s/tau_adapt_s)``,
``kappa = exp(-dt_s/tau_s)`` of the trace, ``n_ref = round(refractory_s/dt_s)``).

The fused kernel has one value per parameter for the whole layer, so a Model's nodes must be
uniform over the neurons and at the kernel's fixed choices (subtractive reset at the next tick,
spike when ``v >= v_th``, unit gains, no leak potential); anything else is a model graph
(:class:`rtsnn.snn.graph.GraphModel`), run by :mod:`rtsnn.snn.graph_network`. Model files
(:mod:`rtsnn.snn.model_file`) store a Model as that graph; checkpoints add a state.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from rtsnn.snn.contract import InputContract
from rtsnn.snn.nodes import ALIF, LI, LIF, GraphError

NEURON_MODELS = ("lif", "alif")
EXACT_RADIUS_MAX_N = 1024  # Model.random: above this, the circular-law radius instead of eigvals
_AS_GRAPH = "a network that differs runs as a graph (rtsnn.snn.graph.GraphModel)"


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _finite_positive(name: str, value: float) -> None:
    _require(isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
             and math.isfinite(value) and value > 0, f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class LayerConstants:
    """The per-step scalars of the fused single-layer kernel (derived, never a model description;
    built only by :func:`layer_constants`).

    ``alpha = exp(-dt_s/tau_mem_s)`` membrane decay, ``rho = exp(-dt_s/tau_adapt_s)`` adaptation
    decay and ``beta_adapt`` the adaptive threshold's strength (``A = v_th + beta_adapt a``) of
    ALIF neurons -- for LIF ``tau_adapt_s = rho = beta_adapt = 0`` (no adaptation state) --
    ``kappa = exp(-dt_s/tau_out_s)`` readout-trace decay, ``n_ref = round(refractory_s/dt_s)``
    refractory steps (0: none). ``model`` is ``'lif'`` or ``'alif'``; ``adaptive`` is
    ``model == 'alif'``. Times in seconds.
    """

    dt_s: float
    model: str
    adaptive: bool
    alpha: float
    rho: float
    kappa: float
    v_th: float
    beta_adapt: float
    n_ref: int
    tau_mem_s: float
    tau_adapt_s: float
    tau_out_s: float
    refractory_s: float


def _uniform_value(role: str, node: Any, fld: str) -> float:
    arr = np.asarray(getattr(node, fld))
    if not bool(np.all(arr == arr[0])):
        raise GraphError(f"node {role!r}: {fld}: the fused single-layer model needs one value for every neuron, "
                         f"got {np.unique(arr).size} different values; {_AS_GRAPH}")
    return float(arr[0])


def layer_constants(hidden: LIF | ALIF, trace: LI, dt_s: float) -> LayerConstants:
    """The fused kernel's constants of ``hidden`` (LIF | ALIF) and ``trace`` (LI) at tick ``dt_s``.

    Raises a one-line :class:`~rtsnn.snn.nodes.GraphError` (a ValueError) naming the node
    ('hidden' / 'trace') and field when the nodes are not what the fused kernel computes:
    every parameter uniform over the neurons, ``hidden.n == trace.n``, hidden reset
    ``'subtract'`` at ``'next'``, ``spike_if`` ``'>='``, ``gain`` 1 and ``v_leak`` 0 on both
    nodes, and every time constant > ``dt_s`` (a time constant at or below the tick is almost
    always a unit error: milliseconds given as seconds).
    """
    _finite_positive("Model.dt_s", dt_s)
    dt_s = float(dt_s)
    if type(hidden) not in (LIF, ALIF):
        raise GraphError(f"node 'hidden': kind: the fused single-layer model needs a LIF or ALIF node, got "
                         f"{type(hidden).__name__}; {_AS_GRAPH}")
    if type(trace) is not LI:
        raise GraphError(f"node 'trace': kind: the fused single-layer model needs an LI node, got "
                         f"{type(trace).__name__}; {_AS_GRAPH}")
    if trace.n != hidden.n:
        raise GraphError(f"node 'trace': n: must equal the hidden layer's n ({hidden.n}), got {trace.n}")
    if np.any(hidden.reset != 0):
        raise GraphError(f"node 'hidden': reset: the fused single-layer model resets by 'subtract', got 'zero' "
                         f"for {int(np.count_nonzero(hidden.reset))} neuron(s); {_AS_GRAPH}")
    if hidden.reset_at != "next":
        raise GraphError(f"node 'hidden': reset_at: the fused single-layer model resets at 'next', got "
                         f"{hidden.reset_at!r}; {_AS_GRAPH}")
    if hidden.spike_if != ">=":
        raise GraphError(f"node 'hidden': spike_if: the fused single-layer model spikes when v >= v_th, got "
                         f"{hidden.spike_if!r}; {_AS_GRAPH}")
    for role, node in (("hidden", hidden), ("trace", trace)):
        for fld, want in (("gain", 1.0), ("v_leak", 0.0)):
            arr = getattr(node, fld)
            if np.any(arr != want):
                raise GraphError(f"node {role!r}: {fld}: the fused single-layer model has {fld} {want:g}, got "
                                 f"{float(arr[np.flatnonzero(arr != want)[0]])!r}; {_AS_GRAPH}")
    adaptive = type(hidden).__name__ == "ALIF"
    val = {fld: _uniform_value("hidden", hidden, fld) for fld in ("tau_mem_s", "v_th", "refractory_s")}
    if adaptive:
        val.update({fld: _uniform_value("hidden", hidden, fld) for fld in ("tau_adapt_s", "beta_adapt")})
    tau_out_s = _uniform_value("trace", trace, "tau_s")
    taus = [("hidden", "tau_mem_s", val["tau_mem_s"]), ("trace", "tau_s", tau_out_s)]
    if adaptive:
        taus.append(("hidden", "tau_adapt_s", val["tau_adapt_s"]))
    for role, fld, tau in taus:
        # tau <= dt makes the exponential decay degenerate (the state forgets everything within
        # one step); almost always a unit error (ms given as s)
        if not tau > dt_s:
            raise GraphError(f"node {role!r}: {fld}: {tau:g} s must be larger than dt_s ({dt_s:g} s); "
                             f"are the units seconds?")
    if not val["refractory_s"] / dt_s < 2**30:
        raise GraphError(f"node 'hidden': refractory_s: {val['refractory_s']:g} s is absurdly long for dt_s "
                         f"{dt_s:g} s")
    tau_adapt_s = val.get("tau_adapt_s", 0.0)
    return LayerConstants(
        dt_s=dt_s, model="alif" if adaptive else "lif", adaptive=adaptive,
        alpha=math.exp(-dt_s / val["tau_mem_s"]),
        rho=math.exp(-dt_s / tau_adapt_s) if adaptive else 0.0,
        kappa=math.exp(-dt_s / tau_out_s), v_th=val["v_th"], beta_adapt=val.get("beta_adapt", 0.0),
        n_ref=int(round(val["refractory_s"] / dt_s)), tau_mem_s=val["tau_mem_s"], tau_adapt_s=tau_adapt_s,
        tau_out_s=tau_out_s, refractory_s=val["refractory_s"])


def single_layer(model: str, n: int, *, tau_mem_s: float = 20e-3, tau_adapt_s: float = 200e-3,
                 beta_adapt: float = 0.0, v_th: float = 1.0, refractory_s: float = 0.0,
                 tau_out_s: float = 20e-3) -> tuple[LIF | ALIF, LI]:
    """``(hidden, trace)`` nodes of ``n`` neurons for a :class:`Model`, every parameter uniform:
    ``'lif'`` gives a :class:`~rtsnn.snn.nodes.LIF` (``tau_adapt_s`` and ``beta_adapt`` are not
    used), ``'alif'`` an :class:`~rtsnn.snn.nodes.ALIF`; the trace is an LI node with
    ``tau_s = tau_out_s``. Named ``'hidden'`` and ``'trace'``."""
    _require(model in NEURON_MODELS, f"neuron model must be one of {', '.join(NEURON_MODELS)}, got {model!r}")
    _require(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1,
             f"n must be an int >= 1, got {n!r}")
    common = dict(name="hidden", n=int(n), tau_mem_s=tau_mem_s, v_th=v_th, refractory_s=refractory_s)
    hidden: LIF | ALIF = (ALIF(tau_adapt_s=tau_adapt_s, beta_adapt=beta_adapt, **common) if model == "alif"
                          else LIF(**common))
    return hidden, LI(name="trace", tau_s=tau_out_s, n=int(n))


def layer_from_config(cfg: Any, n: int) -> tuple[LIF | ALIF, LI]:
    """``(hidden, trace)`` of ``n`` neurons from a :class:`rtsnn.config.NeuronConfig` (its fields
    are :func:`single_layer`'s keyword arguments)."""
    return single_layer(cfg.model, n, tau_mem_s=cfg.tau_mem_s, tau_adapt_s=cfg.tau_adapt_s,
                        beta_adapt=cfg.beta_adapt, v_th=cfg.v_th, refractory_s=cfg.refractory_s,
                        tau_out_s=cfg.tau_out_s)


def _as_f32(name: str, arr: Any, ndim: int) -> np.ndarray:
    try:
        out = np.ascontiguousarray(arr, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array, got {type(arr).__name__}: {err}") from err
    _require(out.ndim == ndim, f"{name} must be {ndim}-D, got shape {out.shape}")
    _require(bool(np.all(np.isfinite(out))),
             f"{name} must be finite, got {int(np.count_nonzero(~np.isfinite(out)))} NaN/inf entries")
    return out


@dataclass
class Weights:
    """Trainable parameters, float32 C-contiguous (converted on construction).

    ``w_in`` (n_in, n_rec): input -> hidden; ``w_rec`` (n_rec, n_rec): hidden -> hidden,
    row = presynaptic, zero diagonal (no autapses); ``w_out`` (n_rec, n_out): readout
    trace -> output; ``b_out`` (n_out,): output bias.
    """

    w_in: np.ndarray
    w_rec: np.ndarray
    w_out: np.ndarray
    b_out: np.ndarray

    def __post_init__(self) -> None:
        self.w_in = _as_f32("w_in", self.w_in, 2)
        self.w_rec = _as_f32("w_rec", self.w_rec, 2)
        self.w_out = _as_f32("w_out", self.w_out, 2)
        self.b_out = _as_f32("b_out", self.b_out, 1)
        self.validate()

    def validate(self) -> None:
        """Check shapes agree, values are finite and ``w_rec`` has a zero diagonal."""
        n_in, n_rec = self.w_in.shape
        _require(n_in >= 1 and n_rec >= 1, f"w_in must be (n_in>=1, n_rec>=1), got shape {self.w_in.shape}")
        _require(self.w_rec.shape == (n_rec, n_rec),
                 f"w_rec must be (n_rec, n_rec) = ({n_rec}, {n_rec}) to match w_in {self.w_in.shape}, "
                 f"got {self.w_rec.shape}")
        _require(self.w_out.ndim == 2 and self.w_out.shape[0] == n_rec and self.w_out.shape[1] >= 1,
                 f"w_out must be (n_rec={n_rec}, n_out>=1), got {self.w_out.shape}")
        n_out = self.w_out.shape[1]
        _require(self.b_out.shape == (n_out,), f"b_out must be (n_out,) = ({n_out},), got {self.b_out.shape}")
        for name in ("w_in", "w_rec", "w_out", "b_out"):
            arr = getattr(self, name)
            _require(arr.dtype == np.float32, f"{name} must be float32, got {arr.dtype}")
            _require(bool(np.all(np.isfinite(arr))),
                     f"{name} must be finite, got {int(np.count_nonzero(~np.isfinite(arr)))} NaN/inf entries")
        diag = np.flatnonzero(np.diagonal(self.w_rec))
        _require(diag.size == 0, f"w_rec must have a zero diagonal (no autapses); got nonzero self-weights "
                                 f"at neurons {diag[:8].tolist()}{' ...' if diag.size > 8 else ''} "
                                 f"(np.fill_diagonal(w_rec, 0) removes them)")

    @property
    def n_in(self) -> int:
        return int(self.w_in.shape[0])

    @property
    def n_rec(self) -> int:
        return int(self.w_in.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.w_out.shape[1])

    def copy(self) -> Weights:
        return Weights(self.w_in.copy(), self.w_rec.copy(), self.w_out.copy(), self.b_out.copy())


@dataclass
class NetworkState:
    """Runtime state of a network (everything a checkpoint adds to a model).

    ``v`` membrane potential, ``a`` adaptation variable, ``z`` spikes of the last step
    (0/1), ``r`` readout trace, all float32 (n_rec,); ``refr`` remaining refractory steps,
    int32 (n_rec,); ``y`` output, float32 (n_out,).
    """

    v: np.ndarray
    a: np.ndarray
    z: np.ndarray
    refr: np.ndarray
    r: np.ndarray
    y: np.ndarray

    @classmethod
    def zeros(cls, n_rec: int, n_out: int) -> NetworkState:
        f = np.float32
        return cls(np.zeros(n_rec, f), np.zeros(n_rec, f), np.zeros(n_rec, f),
                   np.zeros(n_rec, np.int32), np.zeros(n_rec, f), np.zeros(n_out, f))

    def copy(self) -> NetworkState:
        return NetworkState(*(getattr(self, f.name).copy() for f in fields(self)))

    def fill_zero(self) -> None:
        """Zero every array in place (views handed out stay valid)."""
        for f in fields(self):
            getattr(self, f.name)[...] = 0

    def assign(self, other: NetworkState) -> None:
        """Copy ``other`` into this state in place, checking shapes."""
        for f in fields(self):
            dst, src = getattr(self, f.name), np.asarray(getattr(other, f.name))
            _require(src.shape == dst.shape, f"state.{f.name} must have shape {dst.shape}, got {src.shape}")
            dst[...] = src


def check_model_metadata(provenance: Any, input_contract: Any, dt_s: float, whose: str) -> None:
    """Refuse what a model file stores beside the network when it cannot be stored or does not
    fit (shared by :class:`Model` and :class:`rtsnn.snn.graph.GraphModel`): ``provenance`` must be a
    dict that strict JSON can write (no NaN or infinity), ``input_contract`` None or an
    :class:`~rtsnn.snn.contract.InputContract` whose ``dt_s`` equals ``dt_s`` (relative
    tolerance 1e-9). ``whose`` names the tick's owner in the message (``"model's"``,
    ``"graph's"``). Raises :class:`GraphError` starting ``model:``."""
    if not isinstance(provenance, dict):
        raise GraphError(f"model: provenance must be a dict, got {type(provenance).__name__}")
    try:
        json.dumps(provenance, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise GraphError(f"model: provenance must be JSON-serialisable: {err}") from None
    if input_contract is not None:
        if not isinstance(input_contract, InputContract):
            raise GraphError(f"model: input_contract must be an InputContract or None, got "
                             f"{type(input_contract).__name__}")
        if not math.isclose(input_contract.dt_s, dt_s, rel_tol=1e-9):
            raise GraphError(f"model: input_contract.dt_s ({input_contract.dt_s:g} s) differs from the {whose} "
                             f"dt_s ({dt_s:g} s)")


def _check_labels(name: str, values: list[str], n_out: int) -> list[str]:
    values = list(values)
    _require(all(isinstance(s, str) for s in values), f"{name} must be strings, got {values!r}")
    _require(len(values) == n_out, f"{name} must have n_out = {n_out} entries, got {len(values)}: {values!r}")
    return values




@dataclass
class Model:
    """The fused kernel's single recurrent layer: everything a single-layer model file holds.

    ``hidden`` (:class:`~rtsnn.snn.nodes.LIF` | :class:`~rtsnn.snn.nodes.ALIF`) and ``trace``
    (:class:`~rtsnn.snn.nodes.LI`) are the neuron description, ``weights`` the trainable
    parameters, ``dt_s`` the tick. The nodes must be what the fused kernel computes (see
    :func:`layer_constants`; a violation raises a ValueError naming the node and field), with
    ``hidden.n == trace.n == weights.n_rec``. ``provenance`` is a JSON-serialisable dict saying
    where the model came from (method, seed, training data and losses ...).
    ``output_labels``/``output_units`` default to ``y0, y1, ...`` and ``a.u.``.
    ``input_contract`` (optional) says what the model expects at its input
    (:class:`rtsnn.snn.contract.InputContract`: channels, tick, encoder); its ``dt_s`` must be
    the model's. :attr:`constants` gives the kernel's scalars.
    """

    hidden: LIF | ALIF
    trace: LI
    weights: Weights
    dt_s: float
    provenance: dict[str, Any] = field(default_factory=dict)
    output_labels: list[str] | None = None
    output_units: list[str] | None = None
    input_contract: InputContract | None = None

    def __post_init__(self) -> None:
        _require(isinstance(self.weights, Weights), f"Model.weights must be Weights, got {type(self.weights).__name__}")
        if self.provenance is None:
            self.provenance = {}
        if self.output_labels is None:
            self.output_labels = [f"y{k}" for k in range(self.n_out)]
        if self.output_units is None:
            self.output_units = ["a.u."] * self.n_out
        self.validate()

    def validate(self) -> None:
        """Re-check everything (labels or nodes may have been changed after construction)."""
        self.weights.validate()
        c = layer_constants(self.hidden, self.trace, self.dt_s)
        self.dt_s = c.dt_s
        if self.hidden.n != self.weights.n_rec:
            raise GraphError(f"node 'hidden': n: must equal the weights' n_rec ({self.weights.n_rec}), got "
                             f"{self.hidden.n}")
        self.output_labels = _check_labels("output_labels", self.output_labels or [], self.n_out)
        self.output_units = _check_labels("output_units", self.output_units or [], self.n_out)
        check_model_metadata(self.provenance, self.input_contract, self.dt_s, "model's")

    @property
    def constants(self) -> LayerConstants:
        """The fused kernel's scalars (:func:`layer_constants` of the nodes and ``dt_s``)."""
        return layer_constants(self.hidden, self.trace, self.dt_s)

    @property
    def n_in(self) -> int:
        return self.weights.n_in

    @property
    def n_rec(self) -> int:
        return self.weights.n_rec

    @property
    def n_out(self) -> int:
        return self.weights.n_out

    def copy(self) -> Model:
        """A copy with its own weights and nodes (the input contract, immutable, is shared)."""
        return Model(copy.deepcopy(self.hidden), copy.deepcopy(self.trace), self.weights.copy(), self.dt_s,
                     copy.deepcopy(self.provenance), list(self.output_labels or []), list(self.output_units or []),
                     self.input_contract)

    @classmethod
    def random(cls, n_in: int, n_rec: int, n_out: int, hidden: LIF | ALIF | None = None, trace: LI | None = None,
               dt_s: float = 1e-3, seed: int = 0, input_gain: float = 1.0, spectral_radius: float = 0.5,
               input_rate_hz: float = 20.0, rec_density: float = 1.0,
               readout_scale: float = 0.0) -> Model:
        """A random reservoir (Gaussian weights) with documented scaling; ``hidden`` and ``trace``
        default to ``single_layer('lif', n_rec)`` (they must have ``n_rec`` neurons).

        Input weights ``w_in ~ N(0, sigma_in^2)`` with
        ``sigma_in = input_gain * v_th * sqrt((1 - alpha^2) / (n_in * p))``, ``p = input_rate_hz * dt_s``
        the expected count per input per step. For Poisson inputs at ``input_rate_hz`` the
        free (sub-threshold, no-reset) membrane then fluctuates with standard deviation
        ``input_gain * v_th`` around a neuron-specific mean (shot-noise variance
        ``n_in p sigma_in^2 / (1 - alpha^2)``), so a fraction of neurons fires at a moderate
        rate and the others stay near threshold; ``input_gain = 1`` with 96 inputs at 20 Hz
        gives a mean of roughly 1-3 % of LIF neurons spiking per 1 ms step.

        Recurrent weights: ``N(0, 1)``, a fraction ``rec_density`` kept, zero diagonal, rescaled
        so that the spectral radius of the *spike-to-spike gain* ``w_rec / ((1 - alpha) v_th)``
        equals ``spectral_radius`` (one presynaptic spike of weight w charges the membrane by
        ``w / (1 - alpha)`` over its decay, i.e. that many thresholds' worth of extra spikes).
        Below 1 the linearised recurrent loop is contracting; 0 gives a feed-forward layer. Above
        ``EXACT_RADIUS_MAX_N`` neurons the radius is the circular-law value ``sqrt(n_rec *
        rec_density)`` instead of an eigenvalue solve (which would take tens of seconds).

        ``w_out`` is zero (a readout is calibrated or trained later) unless ``readout_scale``
        > 0, then ``N(0, (readout_scale / sqrt(n_rec))^2)``. ``b_out`` is zero.
        """
        _require(isinstance(n_rec, (int, np.integer)) and n_rec >= 1,
                 f"Model.random: n_rec must be an int >= 1, got {n_rec!r}")
        if hidden is None or trace is None:
            default_hidden, default_trace = single_layer("lif", int(n_rec))
            hidden = default_hidden if hidden is None else hidden
            trace = default_trace if trace is None else trace
        for name, n in (("n_in", n_in), ("n_rec", n_rec), ("n_out", n_out)):
            _require(isinstance(n, (int, np.integer)) and n >= 1, f"Model.random: {name} must be an int >= 1, got {n!r}")
        _finite_positive("Model.random: input_gain", input_gain)
        _finite_positive("Model.random: input_rate_hz", input_rate_hz)
        _require(math.isfinite(spectral_radius) and spectral_radius >= 0,
                 f"Model.random: spectral_radius must be >= 0, got {spectral_radius!r}")
        _require(0 < rec_density <= 1, f"Model.random: rec_density must be in (0, 1], got {rec_density!r}")
        _require(math.isfinite(readout_scale) and readout_scale >= 0,
                 f"Model.random: readout_scale must be >= 0, got {readout_scale!r}")
        rng = np.random.default_rng(seed)
        c = layer_constants(hidden, trace, dt_s)
        alpha, v_th = c.alpha, c.v_th
        p = min(input_rate_hz * c.dt_s, 1.0)
        sigma_in = input_gain * v_th * math.sqrt((1.0 - alpha**2) / (n_in * p))
        w_in = rng.standard_normal((n_in, n_rec)) * sigma_in

        w_rec = rng.standard_normal((n_rec, n_rec))
        if rec_density < 1:
            w_rec *= rng.random((n_rec, n_rec)) < rec_density
        np.fill_diagonal(w_rec, 0.0)
        if n_rec > EXACT_RADIUS_MAX_N:
            # circular law: a random n x n matrix of i.i.d. N(0, 1) entries kept with probability p
            # has its eigenvalues in a disc of radius sqrt(n p) (within ~10 % at n = 1024); an
            # eigenvalue solve would take tens of seconds from here on up
            radius = math.sqrt(n_rec * rec_density)
        else:
            radius = float(np.max(np.abs(np.linalg.eigvals(w_rec)))) if n_rec > 1 else 0.0
        if radius > 0 and spectral_radius > 0:
            w_rec *= spectral_radius * (1.0 - alpha) * v_th / radius
        else:
            w_rec[...] = 0.0

        w_out = (rng.standard_normal((n_rec, n_out)) * (readout_scale / math.sqrt(n_rec))
                 if readout_scale > 0 else np.zeros((n_rec, n_out)))
        weights = Weights(w_in, w_rec, w_out, np.zeros(n_out))
        prov = {"method": "random_reservoir", "seed": int(seed), "input_gain": float(input_gain),
                "spectral_radius": float(spectral_radius), "input_rate_hz": float(input_rate_hz),
                "rec_density": float(rec_density), "readout_scale": float(readout_scale)}
        return cls(hidden, trace, weights, dt_s, provenance=prov)
