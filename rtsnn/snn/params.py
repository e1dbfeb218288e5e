"""The three kinds of values of an SNN model (NIR/Rockpool-like taxonomy, kept small):

* :class:`NeuronSettings` -- fixed simulation settings (frozen): neuron model, ``dt_s``,
  time constants, threshold, adaptation strength, refractory period, readout filter.
* :class:`Weights` -- trainable parameters (float32 arrays): ``w_in`` (n_in, n_rec),
  ``w_rec`` (n_rec, n_rec, zero diagonal), ``w_out`` (n_rec, n_out), ``b_out`` (n_out,).
* :class:`NetworkState` -- runtime state (float32 arrays, ``refr`` int32): membrane ``v``,
  adaptation ``a``, spikes ``z``, refractory countdown ``refr``, readout trace ``r``,
  output ``y``.

:class:`Model` bundles settings and weights with provenance and output labels/units;
model files (:mod:`rtsnn.snn.model_file`) store exactly a Model, checkpoints add a state.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from rtsnn.snn.contract import InputContract

NEURON_MODELS = ("lif", "alif")
EXACT_RADIUS_MAX_N = 1024  # Model.random: above this, the circular-law radius instead of eigvals


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _finite_positive(name: str, value: float) -> None:
    _require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
             and value > 0, f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class NeuronSettings:
    """Fixed simulation settings (units in the names; time constants in seconds).

    Per step of ``dt_s`` the decay factors are ``alpha = exp(-dt_s/tau_mem_s)`` (membrane),
    ``rho = exp(-dt_s/tau_adapt_s)`` (adaptation, ALIF only) and
    ``kappa = exp(-dt_s/tau_out_s)`` (readout trace). ``beta_adapt`` scales the adaptive
    threshold ``A = v_th + beta_adapt * a`` of ALIF neurons; it is ignored for ``'lif'``.
    ``refractory_s`` is rounded to ``n_ref = round(refractory_s / dt_s)`` steps (0 disables).
    """

    model: str = "lif"
    dt_s: float = 1e-3
    tau_mem_s: float = 20e-3
    tau_adapt_s: float = 200e-3
    beta_adapt: float = 0.0
    v_th: float = 1.0
    refractory_s: float = 0.0
    tau_out_s: float = 20e-3

    def __post_init__(self) -> None:
        _require(self.model in NEURON_MODELS,
                 f"NeuronSettings.model must be one of {', '.join(NEURON_MODELS)}, got {self.model!r}")
        _finite_positive("NeuronSettings.dt_s", self.dt_s)
        for name in ("tau_mem_s", "tau_adapt_s", "tau_out_s"):
            tau = getattr(self, name)
            _finite_positive(f"NeuronSettings.{name}", tau)
            # tau <= dt makes the exponential-Euler decay degenerate (the state forgets
            # everything within one step); almost always a unit error (ms given as s).
            _require(tau > self.dt_s, f"NeuronSettings.{name} ({tau} s) must be larger than dt_s "
                                      f"({self.dt_s} s); are the units seconds?")
        _finite_positive("NeuronSettings.v_th", self.v_th)
        _require(isinstance(self.beta_adapt, (int, float)) and math.isfinite(self.beta_adapt)
                 and self.beta_adapt >= 0,
                 f"NeuronSettings.beta_adapt must be a finite number >= 0, got {self.beta_adapt!r}")
        _require(isinstance(self.refractory_s, (int, float)) and math.isfinite(self.refractory_s)
                 and self.refractory_s >= 0,
                 f"NeuronSettings.refractory_s must be a finite number >= 0, got {self.refractory_s!r}")
        _require(self.refractory_s / self.dt_s < 2**30,
                 f"NeuronSettings.refractory_s ({self.refractory_s} s) is absurdly long for dt_s {self.dt_s}")

    @property
    def alpha(self) -> float:
        """Membrane decay per step, ``exp(-dt_s/tau_mem_s)``."""
        return math.exp(-self.dt_s / self.tau_mem_s)

    @property
    def rho(self) -> float:
        """Adaptation decay per step, ``exp(-dt_s/tau_adapt_s)``."""
        return math.exp(-self.dt_s / self.tau_adapt_s)

    @property
    def kappa(self) -> float:
        """Readout-trace decay per step, ``exp(-dt_s/tau_out_s)``."""
        return math.exp(-self.dt_s / self.tau_out_s)

    @property
    def n_ref(self) -> int:
        """Refractory period in steps, ``round(refractory_s/dt_s)``."""
        return int(round(self.refractory_s / self.dt_s))

    @property
    def adaptive(self) -> bool:
        """True for ALIF (threshold adaptation active)."""
        return self.model == "alif"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NeuronSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        _require(not unknown, f"unknown neuron setting(s) {', '.join(unknown)}; expected some of "
                              f"{', '.join(sorted(known))}")
        return cls(**d)


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


def _check_labels(name: str, values: list[str], n_out: int) -> list[str]:
    values = list(values)
    _require(all(isinstance(s, str) for s in values), f"{name} must be strings, got {values!r}")
    _require(len(values) == n_out, f"{name} must have n_out = {n_out} entries, got {len(values)}: {values!r}")
    return values


@dataclass
class Model:
    """Settings + weights + description: everything a model file holds.

    ``provenance`` is a JSON-serialisable dict saying where the model came from (method,
    seed, training data and losses ...). ``output_labels``/``output_units`` default to
    ``y0, y1, ...`` and ``a.u.``. ``input_contract`` (optional) says what the model expects at
    its input (:class:`rtsnn.snn.contract.InputContract`: channels, tick, encoder); its
    ``dt_s`` must be the model's.
    """

    settings: NeuronSettings
    weights: Weights
    provenance: dict[str, Any] = field(default_factory=dict)
    output_labels: list[str] | None = None
    output_units: list[str] | None = None
    input_contract: InputContract | None = None

    def __post_init__(self) -> None:
        _require(isinstance(self.settings, NeuronSettings),
                 f"Model.settings must be NeuronSettings, got {type(self.settings).__name__}")
        _require(isinstance(self.weights, Weights), f"Model.weights must be Weights, got {type(self.weights).__name__}")
        if self.output_labels is None:
            self.output_labels = [f"y{k}" for k in range(self.n_out)]
        if self.output_units is None:
            self.output_units = ["a.u."] * self.n_out
        self.validate()

    def validate(self) -> None:
        """Re-check everything (labels may have been reassigned after construction)."""
        self.weights.validate()
        self.output_labels = _check_labels("output_labels", self.output_labels or [], self.n_out)
        self.output_units = _check_labels("output_units", self.output_units or [], self.n_out)
        _require(isinstance(self.provenance, dict), f"provenance must be a dict, got {type(self.provenance).__name__}")
        try:
            json.dumps(self.provenance)
        except (TypeError, ValueError) as err:
            raise ValueError(f"provenance must be JSON-serialisable: {err}") from err
        c = self.input_contract
        if c is not None:
            _require(isinstance(c, InputContract),
                     f"input_contract must be an InputContract or None, got {type(c).__name__}")
            _require(math.isclose(c.dt_s, self.settings.dt_s, rel_tol=1e-9),
                     f"input_contract.dt_s ({c.dt_s:g} s) differs from the model's dt_s ({self.settings.dt_s:g} s)")

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
        return Model(self.settings, self.weights.copy(), copy.deepcopy(self.provenance),
                     list(self.output_labels or []), list(self.output_units or []), self.input_contract)

    @classmethod
    def random(cls, n_in: int, n_rec: int, n_out: int, settings: NeuronSettings | None = None,
               seed: int = 0, input_gain: float = 1.0, spectral_radius: float = 0.5,
               input_rate_hz: float = 20.0, rec_density: float = 1.0,
               readout_scale: float = 0.0) -> Model:
        """A random reservoir (Gaussian weights) with documented scaling.

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
        settings = settings if settings is not None else NeuronSettings()
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
        alpha, v_th = settings.alpha, settings.v_th
        p = min(input_rate_hz * settings.dt_s, 1.0)
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
        return cls(settings, weights, provenance=prov)
