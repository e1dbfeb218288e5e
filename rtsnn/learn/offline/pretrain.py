"""``rtsnn pretrain CONFIG``: train a runtime decoder (one recurrent LIF/ALIF layer + leaky
readout, a :class:`rtsnn.snn.Model`) with BPTT on a recording, compare with a baseline users
trust, save a model file that ``rtsnn run`` loads unchanged.

Data (:mod:`rtsnn.learn.offline.pretrain_data`): ``data.kind: recording`` reads any file of
the recording layer (:mod:`rtsnn.recording`: XDF, EDF/BDF, npz, CSV, .mat) with an explicit
``rate_hz`` / ``bin_s`` where the file states none; ``chewie`` is the same with the Chewie
npz's streams preset (``bin_s`` required); ``synthetic`` simulates the demo's user. The input
stream goes through the session's own encoder plugin (the config's ``encoder:`` section, as in
a session config) one tick of ``dt_s`` at a time, so the network sees offline what it will see
live; the model's tick is that ``dt_s`` and the model file records the recipe as its input
contract (:mod:`rtsnn.snn.contract`). A session config that runs the model live is written
beside it as ``<model stem>.session.yaml`` (``--session-config PATH`` to put it elsewhere;
:func:`session_config_for` says what it holds).

Tasks: regression (``data.target``: z-scored for training, the scaling folded into
``w_out``/``b_out`` so the model outputs the target's units) or classification
(``data.classes``: one output per class; a per-tick cross-entropy inside each marker window;
a trial's class is the argmax of the outputs averaged over its window).

Split by trial (seeded; ``test_fraction`` held out, per class for classification);
``train.validation_fraction`` splits the training trials once more, and ``train.select:
best_validation`` keeps the epoch whose continuous figure on those validation trials is best.
Training sequences are runs of ``train.chunk_trials`` consecutive training trials without a
reset between them (1: a fresh state per trial; a held-out trial between two is left out),
so the network learns to decode from whatever state the previous trial left, as live.
Held-out figures are reported twice: with a state reset per trial, and on the continuous
stream (the whole recording run once in time order, no reset, scored on the held-out ticks
only: what a live session sees). Baselines on the same held-out ticks: a
Wiener filter (ridge on ``history_bins`` ticks of encoded input) for regression, CSP + LDA
on the raw input windows for classification (:mod:`rtsnn.learn.offline.baselines`). R^2 per
target dimension is ``1 - SS_res / SS_tot`` over the held-out ticks, averaged over dimensions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rtsnn.datasets.neural import BinnedSession
from rtsnn.learn.offline.bptt import FitConfig, data_init, fit
from rtsnn.config import NeuronConfig
from rtsnn.learn.offline.bptt_engine import Engine, init_params
from rtsnn.learn.offline.bptt_graph import BpttOptions, layered_graph
from rtsnn.learn.offline.baselines import csp_lda, fit_wiener, history_features, r2_score, wiener_filter, wiener_score
from rtsnn.learn.offline.checkpoint import load_checkpoint
from rtsnn.learn.offline.pretrain_data import (ClassesSpec, EncoderSection, InputSpec, TargetSpec, TickData, TrialsSpec,
                                               groups_of, load_recording_ticks, sequences, split, synthetic_ticks,
                                               whole_stream)


# ------------------------------------------------------------------ config schema
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticData(_Strict):
    duration_s: float = Field(300.0, gt=0)
    trial_s: float = Field(2.0, gt=0)
    seed: int = 0
    n_neurons: int = Field(96, ge=1)
    baseline_hz: float = Field(10.0, ge=0)
    depth_hz: float = Field(20.0, ge=0)


class DataConfig(_Strict):
    kind: Literal["recording", "chewie", "synthetic"]
    path: str | None = Field(None, description="recording / chewie: the file (relative to the config's folder)")
    rate_hz: float | None = Field(None, gt=0, description="recording: sampling rate for a file that states none")
    bin_s: float | None = Field(None, gt=0, description="recording / chewie: bin width for a file that states no rate; "
                                                        "synthetic: bin width = model dt_s (default 0.02)")
    format: str | None = Field(None, description="recording: the file's format when its suffix does not say it")
    time_column: str | None = None
    groups: dict[str, list[str]] | None = Field(None, description="recording tables: stream name -> columns")
    markers: dict[str, list[str]] | None = Field(None, description="recording tables: marker stream -> columns")
    dt_s: float | None = Field(None, gt=0, description="the model's tick (default: the input stream's sample period)")
    input: InputSpec | None = None
    target: TargetSpec | None = None
    classes: ClassesSpec | None = None
    trials: TrialsSpec | None = None
    synthetic: SyntheticData = SyntheticData()
    test_fraction: float = Field(0.2, gt=0, lt=1)
    split_seed: int = 0

    @model_validator(mode="after")
    def _fits_kind(self) -> "DataConfig":
        if self.kind in ("recording", "chewie") and not self.path:
            raise ValueError(f"data.path is required for kind {self.kind!r}")
        if self.kind == "recording":
            if self.input is None:
                raise ValueError("data.input is required for kind 'recording' (the stream fed to the encoder)")
            if (self.target is None) == (self.classes is None):
                raise ValueError("kind 'recording' needs exactly one of data.target (regression) or data.classes "
                                 "(classification)")
        else:
            given = [k for k in ("input", "target", "classes", "trials", "groups", "markers", "dt_s", "rate_hz")
                     if getattr(self, k) is not None]
            if given:
                raise ValueError(f"data.{given[0]} applies to kind 'recording' (kind {self.kind!r} fixes its streams)")
        return self

    @property
    def synthetic_bin_s(self) -> float:
        return self.bin_s if self.bin_s is not None else 0.02

    def resolved(self) -> "DataConfig":
        """kind 'chewie' as the kind 'recording' it stands for: the Chewie npz's ``rates_hz`` (Hz,
        times ``bin_s`` = counts per bin) in, ``vel`` out, trials from ``trial``."""
        if self.kind != "chewie":
            return self
        if self.bin_s is None:
            raise ValueError(f"{self.path}: data.bin_s: kind 'chewie' needs the bin width in s (the npz states no "
                             f"rate, and nothing is read from the file name), e.g. bin_s: 0.1")
        return self.model_copy(update={"kind": "recording", "input": InputSpec(stream="rates_hz", scale=self.bin_s),
                                       "target": TargetSpec(stream="vel"), "trials": TrialsSpec(stream="trial")})


# the pretrained decoder's neurons unless the config says otherwise: slow enough for binned
# neural data (bins of tens of ms); a key the config's model.neuron leaves out keeps its value here
PRETRAIN_NEURON = NeuronConfig(model="lif", tau_mem_s=0.3, tau_adapt_s=1.0, beta_adapt=0.0, v_th=1.0,
                               refractory_s=0.0, tau_out_s=0.3)


class ModelPretrain(_Strict):
    n_rec: int = Field(128, ge=1)
    recurrent: bool = True
    spectral_radius: float = Field(0.9, ge=0)
    neuron: NeuronConfig = Field(PRETRAIN_NEURON, description="the session config's neuron section; defaults: "
                                 "PRETRAIN_NEURON (lif, tau_mem_s 0.3, tau_adapt_s 1.0, beta_adapt 0, v_th 1, "
                                 "refractory_s 0, tau_out_s 0.3)")

    @field_validator("neuron", mode="before")
    @classmethod
    def _pretrain_defaults(cls, v: Any) -> Any:
        # keys left out take PRETRAIN_NEURON's values, not NeuronConfig's session defaults
        return {**PRETRAIN_NEURON.model_dump(), **v} if isinstance(v, dict) else v


class TrainPretrain(_Strict):
    epochs: int = Field(60, ge=1)
    lr: float = Field(3e-3, gt=0)
    batch_size: int = Field(16, ge=1)
    seed: int = 0
    surrogate: Literal["sigmoid", "fast_sigmoid", "boxcar", "triangular", "exponential", "atan", "ste"] = "fast_sigmoid"
    surrogate_param: float | None = Field(None, gt=0)
    detach_reset: bool = False
    clip_norm: float | None = Field(10.0, gt=0)
    reg_rate: float = Field(0.0, ge=0)
    target_rate_hz: float = Field(5.0, ge=0)
    init_gain: float = Field(1.0, gt=0)
    train_readout_tau: bool = True
    checkpoint_steps: int | None = Field(None, ge=1)
    chunk_trials: int = Field(4, ge=1, description="training sequences: this many consecutive training trials "
                                                   "without a reset between them (1: a fresh state per trial)")
    validation_fraction: float = Field(0.0, ge=0, lt=1, description="share of the training trials held out "
                                       "(seeded by data.split_seed) and scored on the continuous stream after "
                                       "each epoch; the test trials are never used (0: none)")
    select: Literal["last", "best_validation"] = Field("last", description="the parameters kept: the last "
                                                      "epoch's, or the epoch's with the best validation figure")

    @model_validator(mode="after")
    def _select_needs_validation(self) -> "TrainPretrain":
        if self.select == "best_validation" and self.validation_fraction == 0:
            raise ValueError("select 'best_validation' needs train.validation_fraction > 0 (e.g. 0.15)")
        return self


class BaselinePretrain(_Strict):
    history_bins: int = Field(5, ge=1, description="Wiener filter: ticks of input history")
    band_hz: tuple[float, float] | None = Field((8.0, 30.0), description="CSP + LDA: band-pass before CSP (null: none)")
    csp_components: int = Field(4, ge=1)


class OutputPretrain(_Strict):
    model_path: str = "pretrained.npz"
    checkpoint_path: str | None = None


# per-epoch metrics of run_pretrain's evaluation a sweep can rank trials by, and the direction
# that is better for each (sweep.mode defaults to it). val_*: the validation trials
# (train.validation_fraction) on the continuous stream -- what a sweep selects on; test_*: the
# held-out test trials -- reported, and ranked on only with sweep.select_on_test
SWEEP_VALIDATION_METRICS = {"val_r2_continuous": "max", "val_acc_continuous": "max", "val_loss_continuous": "min"}
SWEEP_TEST_METRICS = {"test_r2": "max", "test_r2_continuous": "max", "test_acc": "max", "test_acc_continuous": "max",
                      "test_loss": "min"}
SWEEP_METRICS = {**SWEEP_VALIDATION_METRICS, **SWEEP_TEST_METRICS}


class SweepParam(_Strict):
    """One dotted key's search space: exactly one of ``choice`` (a random pick from the list),
    ``uniform`` / ``loguniform`` ([lo, hi], drawn uniformly in the value / its logarithm) or
    ``grid`` (every value, crossed with the other grid keys)."""
    choice: list[Any] | None = Field(None, min_length=1)
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    grid: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> "SweepParam":
        given = [k for k in ("choice", "uniform", "loguniform", "grid") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of choice, uniform, loguniform, grid (got {', '.join(given) or 'none'})")
        bounds = self.uniform or self.loguniform
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"{given[0]}: [lo, hi] needs lo < hi (got {list(bounds)})")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError(f"loguniform: lo must be > 0 (got {self.loguniform[0]})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("choice", "uniform", "loguniform", "grid") if getattr(self, k) is not None)


class AshaOptions(_Strict):
    """Asynchronous successive halving: at epochs grace_period * reduction_factor^k a trial
    whose metric is not in the best 1/reduction_factor of those seen at that epoch stops."""
    kind: Literal["asha"] = "asha"
    grace_period: int = Field(1, ge=1, description="epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(2.0, gt=1)


class SweepConfig(_Strict):
    """``rtsnn pretrain`` runs a sweep (rtsnn.learn.offline.sweep) when the config has this section."""
    space: dict[str, SweepParam] = Field(default_factory=dict, description="dotted config key -> its search space")
    num_samples: int = Field(1, ge=1, description="draws of the random keys; the grid is repeated for each")
    seed: int = Field(0, description="seed of the random draws")
    metric: Literal["val_r2_continuous", "val_acc_continuous", "val_loss_continuous", "test_r2", "test_r2_continuous",
                    "test_acc", "test_acc_continuous", "test_loss"] | None = Field(
        None, description="what trials are ranked (and ASHA-stopped) by; default: val_r2_continuous "
                          "(classification: val_acc_continuous; with select_on_test: test_r2 / test_acc)")
    select_on_test: bool = Field(False, strict=True, description="allow ranking on a test_* metric (the best trial's "
                                 "test figures are then optimistically biased; the results say selected_on: test); "
                                 "true or false only")
    mode: Literal["max", "min"] | None = Field(None, description="default: min for the losses, else max")
    scheduler: AshaOptions | None = Field(None, description="asha (max_t = train.epochs) or none")
    max_concurrent_trials: int | None = Field(None, ge=1, description="default: the cluster's CPUs")

    @field_validator("scheduler", mode="before")
    @classmethod
    def _scheduler_name(cls, v: Any) -> Any:
        if v is None or v == "none":
            return None
        return {"kind": "asha"} if v == "asha" else v

    @property
    def best_mode(self) -> str:
        return self.mode or SWEEP_METRICS[self.metric]

    @property
    def selected_on(self) -> str:
        """The split trials are ranked on: ``validation`` (a ``val_*`` metric) or ``test``."""
        return "test" if self.metric in SWEEP_TEST_METRICS else "validation"


class PretrainConfig(_Strict):
    data: DataConfig
    encoder: EncoderSection = EncoderSection()
    model: ModelPretrain = ModelPretrain()
    train: TrainPretrain = TrainPretrain()
    baseline: BaselinePretrain = BaselinePretrain()
    output: OutputPretrain = OutputPretrain()
    sweep: SweepConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_sweep_metric(cls, v: Any) -> Any:
        # sweep.metric left out: the task's figure on validation (on test with select_on_test)
        if isinstance(v, dict) and isinstance(v.get("sweep"), dict) and v["sweep"].get("metric") is None:
            data = v.get("data")
            classify = isinstance(data, dict) and data.get("classes") is not None
            test = v["sweep"].get("select_on_test") is True
            metric = ("test_" if test else "val_") + ("acc" if classify else "r2") + ("" if test else "_continuous")
            v = {**v, "sweep": {**v["sweep"], "metric": metric}}
        return v

    @model_validator(mode="after")
    def _taus_exceed_dt(self) -> "PretrainConfig":
        if self.data.kind == "synthetic":
            dt = self.data.synthetic_bin_s
            for key in ("tau_mem_s", "tau_adapt_s", "tau_out_s"):
                tau = getattr(self.model.neuron, key)
                if tau <= dt:
                    raise ValueError(f"model.neuron.{key} ({tau}) must exceed the bin width data.bin_s ({dt})")
        return self


def parse_pretrain_config(data: Any, origin: str = "<config>") -> PretrainConfig:
    if not isinstance(data, dict):
        raise ValueError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        cfg = PretrainConfig.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "(top level)"
            got = "" if e["type"] == "missing" else f" (got {e.get('input')!r})"
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            lines.append(f"{origin}: {key}: {msg}{got}")
        raise ValueError("\n".join(lines)) from None
    if cfg.sweep is not None:  # ranked on validation unless told; every value of the space must make a valid config
        check_sweep_selection(cfg, origin)
        from rtsnn.learn.offline.sweep import check_space

        check_space(cfg, origin)
    return cfg


def check_sweep_selection(cfg: PretrainConfig, origin: str) -> None:
    """Raise ValueError (one line naming ``origin`` and the key) unless the sweep ranks trials on
    a split the test trials are not part of: a ``val_*`` metric needs
    ``train.validation_fraction > 0``; a ``test_*`` metric needs ``sweep.select_on_test: true``
    (and ``select_on_test`` a test metric); the metric must be one the task produces."""
    s = cfg.sweep
    classify = cfg.data.classes is not None
    if s.select_on_test and s.metric not in SWEEP_TEST_METRICS:
        raise ValueError(f"{origin}: sweep.select_on_test: true but sweep.metric {s.metric!r} is a validation metric; "
                         f"drop select_on_test (or rank on a test_* metric)")
    if s.metric in SWEEP_TEST_METRICS and not s.select_on_test:
        raise ValueError(f"{origin}: sweep.metric: {s.metric!r} ranks trials on the test split, which biases the best "
                         f"trial's test figure; use {'val_acc_continuous' if classify else 'val_r2_continuous'} "
                         f"(with train.validation_fraction > 0), or set sweep.select_on_test: true to accept that")
    task, wrong, right = ("classification", "r2", "acc") if classify else ("regression", "acc", "r2")
    if f"_{wrong}" in s.metric:
        raise ValueError(f"{origin}: sweep.metric: {s.metric!r} is not a {task} metric; use "
                         f"{s.metric.replace(wrong, right)}")
    if s.metric in SWEEP_VALIDATION_METRICS and cfg.train.validation_fraction == 0:
        raise ValueError(f"{origin}: train.validation_fraction: a sweep ranks trials by sweep.metric {s.metric!r} on "
                         f"a validation split; set train.validation_fraction > 0 (e.g. 0.15), or sweep.select_on_test:"
                         f" true to rank on the test split (its figure for the best trial is then biased)")


def load_pretrain_config(path: str | Path) -> PretrainConfig:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such config file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{p}: not valid YAML: {err}") from None
    return parse_pretrain_config(data, str(p))


# ------------------------------------------------------------------ data preparation
def data_file(cfg: PretrainConfig, base_dir: Path | None = None) -> str:
    """The data file as named in messages (resolved against the config's folder), or the
    simulated user's name."""
    if cfg.data.kind == "synthetic":
        return f"synthetic user (seed {cfg.data.synthetic.seed})"
    return str(_resolve(cfg.data.path, base_dir))


def load_data(cfg: PretrainConfig, base_dir: Path | None = None, log=sys.stderr) -> TickData:
    """The network's input (after the encoder) and targets on the tick grid."""
    d = cfg.data
    if d.kind == "synthetic":
        s = d.synthetic
        return synthetic_ticks(s, d.synthetic_bin_s, cfg.encoder)
    return load_recording_ticks(d.resolved(), cfg.encoder, _resolve(d.path, base_dir), log=log)


def split_trials(session: BinnedSession, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of a :class:`BinnedSession`'s trials (scripts/qat_xylo.py)."""
    ids = session.trial_ids
    if ids.size < 2:
        raise ValueError(f"need at least 2 trials to split, got {ids.size}")
    perm = np.random.default_rng(seed).permutation(ids)
    n_test = min(max(1, int(round(test_fraction * ids.size))), ids.size - 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def to_sequences(session: BinnedSession, trials: np.ndarray):
    """Padded (T, B, n) counts, (T, B, d) velocity and (T, B) validity mask of a
    :class:`BinnedSession`, one trial per sequence (scripts/qat_xylo.py)."""
    rows = [np.flatnonzero(session.trial == t) for t in trials]
    T = max(len(r) for r in rows)
    B = len(rows)
    x = np.zeros((T, B, session.counts.shape[1]))
    v = np.zeros((T, B, session.vel.shape[1]))
    m = np.zeros((T, B))
    for b, r in enumerate(rows):
        x[: len(r), b] = session.counts[r]
        v[: len(r), b] = session.vel[r]
        m[: len(r), b] = 1.0
    return x, v, m


# ------------------------------------------------------------------ training
def build_graph(cfg: PretrainConfig, n_in: int, n_out: int, dt_s: float):
    """``(graph, options)`` of the decoder ``cfg`` describes: ``input -> w0 -> layer0`` (one
    LIF/ALIF layer of ``model.n_rec`` neurons, recurrent when ``model.recurrent``) ``-> trace ->
    w_out -> output`` (:func:`rtsnn.learn.offline.bptt_graph.layered_graph`), and the
    surrogate choices of ``train``. ValueError naming the key when a time constant does not
    exceed ``dt_s``."""
    n = cfg.model.neuron
    for key in ("tau_mem_s", "tau_adapt_s", "tau_out_s"):
        if getattr(n, key) <= dt_s:
            raise ValueError(f"model.neuron.{key} ({getattr(n, key)}) must exceed the model dt_s = bin width ({dt_s})")
    graph = layered_graph(n_in, (cfg.model.n_rec,), (cfg.model.recurrent,), n_out, dt_s=dt_s, model=n.model,
                          tau_mem_s=n.tau_mem_s, tau_adapt_s=n.tau_adapt_s, beta_adapt=n.beta_adapt, v_th=n.v_th,
                          refractory_s=n.refractory_s, tau_out_s=n.tau_out_s)
    options = BpttOptions(surrogate=cfg.train.surrogate, surrogate_param=cfg.train.surrogate_param,
                          detach_reset=cfg.train.detach_reset)
    return graph, options


def to_runtime_model(graph, params: dict[str, np.ndarray], v_mean: np.ndarray, v_sd: np.ndarray,
                     provenance: dict, labels: list[str] | None = None, units: list[str] | None = None,
                     options: BpttOptions | None = None):
    """The trained network with nothing dropped (:func:`rtsnn.learn.offline.bptt.to_model`):
    today's single-layer :class:`rtsnn.snn.Model` when it is that pattern, else the full
    :class:`rtsnn.snn.graph.GraphModel` (any depth, per-neuron values, a readout decay below
    one tick, ...); :func:`rtsnn.snn.save_model` writes either as a graph. The readout is
    rescaled to the target's units and the trained ``kappa`` kept (``tau = -dt_s / ln kappa``)."""
    from rtsnn.learn.offline.bptt import to_model

    if labels is None:
        labels = ["vx", "vy"][: len(v_mean)] if len(v_mean) <= 2 else None
    return to_model(graph, params, options, out_scale=v_sd, out_offset=v_mean, provenance=provenance,
                    output_labels=labels, output_units=units or ["a.u./s"] * len(v_mean))


def _class_accuracy(out: np.ndarray, labels: np.ndarray, mask: np.ndarray,
                    bounds: list[tuple[int, int, int]] | None = None) -> float:
    """Share of trials whose outputs averaged over the trial's ticks peak at its class: one
    trial per sequence of ``out`` (T, B, C), or (``bounds``) trials at positions of sequence 0."""
    hits = []
    if bounds is None:
        for b in range(out.shape[1]):
            sel = mask[:, b] > 0
            hits.append(int(np.argmax(out[sel, b].mean(axis=0)) == labels[sel, b][0]))
    else:
        for _, a, z in bounds:
            hits.append(int(np.argmax(out[a:z, 0].mean(axis=0)) == labels[a, 0]))
    return float(np.mean(hits))


def run_pretrain(cfg: PretrainConfig, base_dir: Path | None = None, *, progress: bool = True,
                 resume: bool = False, log=sys.stderr,
                 on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                 session_config_path: str | Path | None = None) -> dict:
    """Train, evaluate against the baseline, save the model; returns the result dict.
    ``on_epoch(epoch, metrics)``, when given, is called after each epoch's held-out
    evaluation with the epoch number (from 1) and its metrics (``test_loss``, ``test_r2``,
    ``test_r2_continuous``; classification: ``test_acc``, ``test_acc_continuous``; with
    ``train.validation_fraction > 0`` also ``val_r2_continuous`` / ``val_acc_continuous`` and
    ``val_loss_continuous``: the task loss over the validation ticks of the continuous run)."""
    from rtsnn.learn.offline.losses import rate_ce

    t_start = time.perf_counter()
    data = load_data(cfg, base_dir, log=log if progress else None)
    file = data_file(cfg, base_dir)
    tr, te = split(data, cfg.data.test_fraction, cfg.data.split_seed, file)
    t = cfg.train
    classify = data.task == "classification"
    va = np.zeros(0, np.int64)
    if t.validation_fraction > 0:  # split the training trials again (the view hides every other trial)
        only_train = dataclasses.replace(data, trial=np.where(np.isin(data.trial, tr), data.trial, -1))
        try:
            tr, va = split(only_train, t.validation_fraction, cfg.data.split_seed, file)
        except ValueError as err:
            raise ValueError(f"train.validation_fraction {t.validation_fraction}: the {tr.size} training trials "
                             f"cannot be split again: {err}") from None
    x_tr, y_tr, m_tr = sequences(data, groups_of(tr, t.chunk_trials))
    x_te, y_te, m_te = sequences(data, [[int(i)] for i in te])  # a fresh state per held-out trial
    x_co, y_co, m_co, bounds = whole_stream(data, te)  # the recording once, as live; scored on held-out ticks
    _, y_va, m_va, bounds_va = whole_stream(data, va)  # the same stream, scored on the validation ticks
    val_key = ("val_acc_continuous" if classify else "val_r2_continuous") if va.size else None
    n_out = len(data.class_names) if classify else data.target.shape[1]
    graph, options = build_graph(cfg, data.x.shape[1], n_out, data.dt_s)
    engine = Engine(graph, options, dtype=np.float32, checkpoint_steps=t.checkpoint_steps)
    params = init_params(graph, t.seed, options, spectral_radius=cfg.model.spectral_radius)
    data_init(engine, params, x_tr[:, : min(64, x_tr.shape[1])], gain=t.init_gain)

    if classify:
        y_mean, y_sd = np.zeros(n_out), np.ones(n_out)
        tgt_tr = y_tr

        def task_loss(out, target):
            # cross-entropy of every tick inside a class window (rate_ce over the selected ticks)
            lab, m = target
            sel = m > 0
            if not sel.any():
                return 0.0, np.zeros(out.shape)
            loss, d = rate_ce(out[sel][None].astype(np.float64), lab[sel])
            g = np.zeros(out.shape)
            g[sel] = d[0]
            return loss, g
    else:
        sel = m_tr > 0
        y_mean = y_tr[sel].mean(axis=0)
        y_sd = y_tr[sel].std(axis=0) + 1e-12
        tgt_tr = (y_tr - y_mean) / y_sd * m_tr[..., None]

        def task_loss(out, target):
            z, m = target
            diff = (out.astype(np.float64) - z) * m[..., None]
            n = max(float(m.sum()) * out.shape[2], 1.0)
            return float(0.5 * np.sum(diff**2) / n), diff / n

    def get_batch(idx):
        idx = np.sort(idx)
        return np.ascontiguousarray(x_tr[:, idx]), (tgt_tr[:, idx], m_tr[:, idx])

    def forward(p, x):
        return engine.forward(p, np.ascontiguousarray(x, dtype=np.float32))

    def evaluate(p):
        # held-out figures after the epoch: per trial from the zero state, and continuous; the
        # continuous run also scores the validation ticks (val_key), which choose the epoch
        out = forward(p, x_te).y.astype(np.float64)
        out_co = forward(p, x_co).y.astype(np.float64)
        if classify:
            loss, _ = task_loss(out, (y_te, m_te))
            metrics = {"test_loss": loss, "test_acc": _class_accuracy(out, y_te, m_te),
                       "test_acc_continuous": _class_accuracy(out_co, y_co, m_co, bounds)}
            if val_key:
                metrics[val_key] = _class_accuracy(out_co, y_va, m_va, bounds_va)
                metrics["val_loss_continuous"] = task_loss(out_co, (y_va, m_va))[0]
            return metrics
        loss, _ = task_loss(out, ((y_te - y_mean) / y_sd * m_te[..., None], m_te))
        pred, pred_co = out * y_sd + y_mean, out_co * y_sd + y_mean
        metrics = {"test_loss": loss, "test_r2": r2_score(pred[m_te > 0], y_te[m_te > 0])[0],
                   "test_r2_continuous": r2_score(pred_co[m_co > 0], y_co[m_co > 0])[0]}
        if val_key:
            metrics[val_key] = r2_score(pred_co[m_va > 0], y_va[m_va > 0])[0]
            metrics["val_loss_continuous"] = task_loss(out_co, ((y_va - y_mean) / y_sd * m_va[..., None], m_va))[0]
        return metrics

    trainable = ("weights", "readout_tau") if t.train_readout_tau else ("weights",)
    fcfg = FitConfig(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, clip_norm=t.clip_norm, trainable=trainable,
                     reg_rate=t.reg_rate, target_rate_hz=t.target_rate_hz,
                     checkpoint_path=cfg.output.checkpoint_path and str(_resolve(cfg.output.checkpoint_path, base_dir)),
                     resume=resume, progress=progress, seed=t.seed)
    ck_path = fcfg.checkpoint_path
    done = [int(load_checkpoint(ck_path)[1]["epoch"]) if resume and ck_path and Path(ck_path).exists() else 0]
    # the best validation epoch of this process and a copy of its parameters (after a resume:
    # of the epochs run since; the checkpoint holds the last epoch's parameters only)
    best: dict[str, Any] = {"epoch": None, "metric": -math.inf, "params": None}

    def evaluate_hook(p):
        metrics = evaluate(p)
        done[0] += 1
        if val_key and metrics[val_key] >= best["metric"]:  # ties: the later epoch, as fit's and FP's; NaN never
            best.update(epoch=done[0], metric=metrics[val_key], params={k: v.copy() for k, v in p.items()})
        if on_epoch is not None:
            on_epoch(done[0], dict(metrics))
        return metrics

    _, history = fit(engine, params, x_tr.shape[1], get_batch, task_loss, fcfg, evaluate=evaluate_hook,
                     log=log)
    selected_epoch = len(history)
    if t.select == "best_validation" and best["params"] is not None:
        params.update(best["params"])
        selected_epoch = best["epoch"]

    final = evaluate(params)
    rate_hz = float(forward(params, x_co).spike_counts[0].sum() / (m_co.size * cfg.model.n_rec * data.dt_s))
    about: dict[str, Any] = {
        "data": data.name, "task": data.task, "dt_s": data.dt_s, "n_channels": data.n_channels,
        "n_inputs": int(data.x.shape[1]), "encoder": data.encoder, "train_trials": int(tr.size),
        "test_trials": int(te.size), "test_bins": int(m_te.sum()), "chunk_trials": t.chunk_trials,
        "select": t.select, "selected_epoch": selected_epoch}
    if val_key:  # the chosen epoch's validation figure (continuous stream, validation ticks)
        about.update(validation_trials=int(va.size), validation_bins=int(m_va.sum()),
                     **{val_key.replace("val_", "validation_"): final[val_key],
                        "validation_loss_continuous": final["val_loss_continuous"]})
    if classify:
        cl = np.array([data.labels[np.flatnonzero(data.trial == i)[0]] for i in te])
        ct = np.array([data.labels[np.flatnonzero(data.trial == i)[0]] for i in tr])
        base = _csp_baseline(cfg, data, tr, te)
        figures = {"classes": data.class_names,
                   "train_trials_per_class": {c: int(np.sum(ct == k)) for k, c in enumerate(data.class_names)},
                   "test_trials_per_class": {c: int(np.sum(cl == k)) for k, c in enumerate(data.class_names)},
                   "chance_acc": float(np.max(np.bincount(cl, minlength=n_out)) / cl.size),
                   "snn_acc": final["test_acc"], "snn_acc_reset": final["test_acc"],
                   "snn_acc_continuous": final["test_acc_continuous"], "csp_lda": base,
                   "csp_lda_acc": base.get("accuracy")}
        base_name, base_metric, metric = "CSP + LDA", base.get("accuracy"), "accuracy"
        base_co = None  # stateless: one figure
        hist_keys = {**BPTT_HISTORY_KEYS, "heldout_metric": "test_acc",
                     "heldout_metric_continuous": "test_acc_continuous"}
        loss_note = ("cross-entropy of the class outputs at every tick inside a class window; train: mean over the "
                     "epoch's minibatches; held-out: the test trials after the epoch")
        out_labels, out_units = data.class_names, ["score"] * n_out
    else:
        # fitted on the training trials one by one (the overlapping chunks would repeat ticks
        # and leak into its validation fifth), then run per trial and on the continuous stream
        x_w, y_w, m_w = sequences(data, [[int(i)] for i in tr])
        w, lam = fit_wiener(x_w, y_w, m_w, cfg.baseline.history_bins, cfg.data.split_seed)
        wf_r2, wf_per = wiener_score(w, x_te, y_te, m_te, cfg.baseline.history_bins)
        wf_co, _ = wiener_score(w, x_co, y_co, m_co, cfg.baseline.history_bins)
        out = forward(params, x_te).y.astype(np.float64) * y_sd + y_mean
        _, r2_per = r2_score(out[m_te > 0], y_te[m_te > 0])
        figures = {"snn_r2": final["test_r2"], "snn_r2_reset": final["test_r2"],
                   "snn_r2_continuous": final["test_r2_continuous"], "snn_r2_per_dim": r2_per,
                   "wiener_r2": wf_r2, "wiener_r2_reset": wf_r2, "wiener_r2_continuous": wf_co,
                   "wiener_r2_per_dim": wf_per, "wiener_history_bins": cfg.baseline.history_bins,
                   "wiener_ridge": lam, "n_neurons": data.n_channels, "bin_s": data.dt_s}
        base_name, base_metric, metric = f"Wiener filter ({cfg.baseline.history_bins} bins)", wf_r2, "R^2"
        base_co = wf_co
        hist_keys = {**BPTT_HISTORY_KEYS, "heldout_metric_continuous": "test_r2_continuous"}
        loss_note = BPTT_LOSS_NOTE
        out_labels, out_units = data.target_labels, data.target_units
    if val_key:
        hist_keys["validation_metric"] = val_key
    prov = {"method": "bptt_pretrain", "data": data.name, "task": data.task, "seed": t.seed, "epochs": t.epochs,
            "train_trials": tr.tolist(), "test_trials": te.tolist(),
            **({"validation_trials": va.tolist(), "selected_epoch": selected_epoch} if val_key else {}),
            **{k: v for k, v in figures.items() if isinstance(v, (int, float, str)) and k.endswith(("acc", "r2",
                                                                                                       "continuous"))},
            "input": f"{data.n_channels}-channel stream through encoder {data.encoder['kind']} at dt_s {data.dt_s:g}"}
    if cfg.data.kind != "synthetic" and cfg.data.resolved().input.scale != 1.0:
        prov["input_scale"] = cfg.data.resolved().input.scale
    model = to_runtime_model(graph, params, y_mean, y_sd, prov, labels=out_labels, units=out_units, options=options)
    model.input_contract = input_contract_of(data, cfg)
    from rtsnn.snn.model_file import save_model

    out_path = save_model(_resolve(cfg.output.model_path, base_dir), model)
    scfg_path = write_session_config(session_config_path or session_config_path_for(out_path),
                                     *session_config_for(cfg, out_path, model))
    hist_path = save_history(history_path_for(out_path), training_history(
        history, method="bptt_pretrain", metric=metric, loss=loss_note, keys=hist_keys,
        model_file=Path(out_path).name, data=data.name, select=t.select, selected_epoch=selected_epoch,
        baseline={"name": base_name, "heldout_metric": _finite_or_none(base_metric),
                  "heldout_metric_continuous": _finite_or_none(base_co)}))
    return {**about, **figures, "repairs": data.repairs,
            "n_rec": cfg.model.n_rec, "neuron": cfg.model.neuron.model, "epochs": len(history),
            "epoch_s_median": float(np.median([h["epoch_s"] for h in history])) if history else None,
            "hidden_rate_hz": rate_hz, "model_path": str(out_path),
            "history_path": str(hist_path), "session_config_path": str(scfg_path),
            "wall_s": time.perf_counter() - t_start}


def _csp_baseline(cfg: PretrainConfig, data: TickData, tr: np.ndarray, te: np.ndarray) -> dict:
    """CSP + LDA on the raw input windows of the same train / test trials (empty when the
    input stream has no regular rate)."""
    if data.windows is None or not data.input_rate_hz:
        return {"accuracy": None, "skipped": "the input stream has no regular rate"}
    b = cfg.baseline
    idx_tr = np.flatnonzero(np.isin(data.window_trial, tr))
    idx_te = np.flatnonzero(np.isin(data.window_trial, te))
    return csp_lda(data.windows, data.window_label, idx_tr, idx_te, srate_hz=data.input_rate_hz,
                   band_hz=tuple(b.band_hz) if b.band_hz else None, n_components=b.csp_components)


# ------------------------------------------------------------------ input contract + session config
def input_contract_of(data: TickData, cfg: PretrainConfig):
    """What the trained network was fed, as an :class:`rtsnn.snn.contract.InputContract`:
    the input stream's channel count and labels, the tick, the encoder section it went
    through (its options as built, ``n_channels`` / ``srate_hz`` filled in from the stream),
    and the stream's name and type. Simulated data (``data.kind: synthetic``) is what the
    simulated user's LSL stream (type 'Spikes', channels unit0 ... unitN-1, one count row per
    ms) delivers live, summed per tick by the encoder."""
    from rtsnn.snn.contract import InputContract

    src = dict(data.source) if data.source is not None else None
    return InputContract(n_channels=int(data.n_channels), dt_s=float(data.dt_s), encoder_kind=data.encoder["kind"],
                         encoder_options=dict(data.encoder["options"]), channel_labels=tuple(data.channel_labels),
                         source=src)


def session_config_path_for(model_path: str | Path) -> Path:
    """Where ``rtsnn pretrain`` writes a model's session config: ``<folder>/<model stem>.session.yaml``."""
    p = Path(model_path)
    return p.with_name(p.stem + ".session.yaml")


def session_config_for(cfg: PretrainConfig, model_path: str | Path, model: Any) -> tuple[dict, str]:
    """A session config that runs ``model`` live as its input contract says, and a comment for
    its head: (config dict, comment text).

    Source: an LSL stream with the contract's channel count; encoder: the contract's; model:
    the file (absolute path: ``rtsnn run`` reads relative paths from the current directory); no
    learner (the model is already trained); an LSL sink '<stem>-decoded'. With
    ``data.kind: synthetic`` the source is the simulated user the data came from (the demo's
    ``synthetic_user`` section, its velocity stream as teacher so the session reports R^2):
    runnable as is. Otherwise the stream name is a ``<FILL IN ...>`` placeholder that ``rtsnn
    config check`` and ``rtsnn run`` report until it is replaced."""
    from rtsnn.snn.contract import PLACEHOLDER

    c = model.input_contract
    stem = Path(model_path).stem
    session = {"name": stem, "dt_s": c.dt_s, "out_dir": "sessions",
               "warmup_ticks": max(1, int(round(0.2 / c.dt_s)))}  # ~0.2 s of warm-up, as the demo's
    doc: dict[str, Any] = {"session": session}
    if cfg.data.kind == "synthetic":
        s = cfg.data.synthetic
        session.update(duration_s=60.0, tick_phase_us=500.0)  # the user pushes on the 1 ms grid, as in the demo
        doc["synthetic_user"] = {"prefix": "rtsnn-pretrained", "n_neurons": s.n_neurons, "seed": s.seed,
                                 "baseline_hz": s.baseline_hz, "depth_hz": s.depth_hz}
        doc["source"] = {"kind": "lsl", "options": {"name": "{synthetic}-spikes", "n_channels": c.n_channels,
                                                    "loss_timeout_s": 1.0}}
        doc["teacher"] = {"kind": "lsl", "options": {"name": "{synthetic}-velocity", "n_channels": model.n_out,
                                                     "loss_timeout_s": 1.0}}
        sink_name = "{synthetic}-decoded"
        note = (f"Runs as is: the simulated user the model was pretrained on (seed {s.seed}) streams over LSL;\n"
                f"its intended velocity is the teacher, so the summary reports the live R^2.")
    else:
        per = f"one row per {c.dt_s:g} s bin, or finer rows the encoder sums per tick"
        doc["source"] = {"kind": "lsl", "options": {
            "name": f"{PLACEHOLDER}: the LSL name of your {c.n_channels}-channel spike-count stream>",
            "n_channels": c.n_channels}}
        sink_name = f"{stem}-decoded"
        note = (f"Fill in source.options.name: the LSL stream of {c.n_channels} spike-count channels\n"
                f"({per}); `rtsnn config check` reports it until then.")
    doc["encoder"] = {"kind": c.encoder_kind, "options": dict(c.encoder_options)}
    doc["model"] = {"path": str(Path(model_path).resolve())}
    doc["sinks"] = [{"kind": "lsl", "options": {"name": sink_name, "type": "Control"}}]
    head = (f"Session config for {Path(model_path).name}, written by `rtsnn pretrain` from the model's input\n"
            f"contract ({c.n_channels} channels, {c.dt_s:g} s ticks, encoder {c.encoder_kind}).\n{note}\n"
            f"Run: rtsnn run THIS_FILE   (check first: rtsnn config check THIS_FILE)")
    return doc, head


def write_session_config(path: str | Path, doc: dict, head: str = "") -> Path:
    """Write ``doc`` as YAML (``head`` as leading ``#`` comment lines), atomically."""
    import os

    from rtsnn.snn.model_file import create_temp_beside

    path = Path(path)
    text = "".join(f"# {line}\n" if line else "#\n" for line in head.splitlines())
    text += yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=110)
    fd, tmp = create_temp_beside(path)  # mode 0666 less the umask, as any file the user writes
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------ per-epoch history file
HISTORY_FORMAT = "rtsnn-training-history"
HISTORY_VERSION = 1
BPTT_LOSS_NOTE = ("0.5 x mean squared error of the z-scored velocity over unpadded bins; train: mean over "
                  "the epoch's minibatches while the weights change, plus rate regularisation (train.reg_rate); "
                  "held-out: the test trials after the epoch")
# which key of a trainer's per-epoch entry fills which field of the history file
BPTT_HISTORY_KEYS = {"train_loss": "loss", "heldout_loss": "test_loss", "train_metric": None,
                     "heldout_metric": "test_r2", "epoch_s": "epoch_s"}
# FP (rtsnn.learn.offline.fp.train_classifier_fp, TrainedFP.history): loss, train_acc, val_acc (None
# without a validation set), epoch_s; FP writes no model file of its own, so a caller saves this
FP_HISTORY_KEYS = {"train_loss": "loss", "heldout_loss": None, "train_metric": "train_acc",
                   "heldout_metric": "val_acc", "epoch_s": "epoch_s"}


def history_path_for(model_path: str | Path) -> Path:
    """Where a model file's training history goes: ``<folder>/<model stem>.history.json``."""
    p = Path(model_path)
    return p.with_name(p.stem + ".history.json")


def _finite_or_none(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def training_history(entries: list[dict], *, method: str, metric: str, loss: str,
                     keys: dict[str, str | None] | None = None, **about: Any) -> dict:
    """The history file's content: one record per completed epoch (``epoch`` numbered from 1,
    ``train_loss``, ``heldout_loss``, ``train_metric``, ``heldout_metric``, ``epoch_s``; null
    where the trainer has no such figure or it was not finite), taken from a trainer's
    per-epoch ``entries`` through ``keys`` (default: :func:`fit`'s as used here)."""
    keys = BPTT_HISTORY_KEYS if keys is None else keys
    epochs = []
    for i, e in enumerate(entries):
        rec: dict[str, Any] = {"epoch": i + 1}
        for field, key in keys.items():
            rec[field] = _finite_or_none(e.get(key)) if key else None
        epochs.append(rec)
    return {"format": HISTORY_FORMAT, "format_version": HISTORY_VERSION, "method": method, "metric": metric,
            "loss": loss, **about, "epochs": epochs}


def save_history(path: str | Path, doc: dict) -> Path:
    """Write ``doc`` as strict JSON (temp file + rename, so a crash never leaves half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def _resolve(p: str, base_dir: Path | None) -> Path:
    q = Path(p)
    return q if q.is_absolute() or base_dir is None else base_dir / q


def emit(result: dict, stream=None) -> None:
    from rtsnn.jsonout import json_safe  # NaN R^2 (a constant target) -> null: strict JSON

    print(json.dumps(json_safe(result), allow_nan=False), file=stream if stream is not None else sys.stdout,
          flush=True)
