"""``rtsnn pretrain CONFIG``: train a runtime decoder (one recurrent LIF/ALIF layer + leaky
readout, a :class:`rtsnn.snn.Model`) with BPTT on binned recordings, compare with a Wiener
filter, save a model file that ``rtsnn run`` loads unchanged.

Input convention: the model's ``dt_s`` equals the bin width; its input at each step is the
vector of spike counts in that bin (``rates_hz * bin_s`` for rate files), which is what a
session at ``session.dt_s = bin_s`` receives from a source of binned counts with the
``passthrough`` encoder. Targets are z-scored for training and the scaling is folded into
``w_out``/``b_out`` of the saved model, so it outputs velocity in the recording's units.

Split by trial (seeded permutation of trial ids; ``test_fraction`` held out). Each trial is
one sequence from the zero state (padded to the longest trial, padding masked from loss and
metrics). Baseline on the same bins: ridge regression (Wiener filter) on the counts of the
current and ``history_bins - 1`` previous bins of the trial (zeros before its start) plus a
bias, ridge strength chosen on a validation fifth of the training trials. R^2 per velocity
dimension is ``1 - SS_res / SS_tot`` on the held-out bins, averaged over dimensions.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rtsnn.datasets.neural import BinnedSession, load_chewie, synthetic_session
from rtsnn.learn.offline.bptt import FitConfig, data_init, fit
from rtsnn.learn.offline.bptt_engine import Engine, NetSpec, init_params


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
    kind: Literal["chewie", "synthetic"]
    path: str | None = Field(None, description="chewie: the .npz file (relative to the config's folder)")
    bin_s: float = Field(0.02, gt=0, description="synthetic: bin width = model dt_s (chewie: from the file)")
    synthetic: SyntheticData = SyntheticData()
    test_fraction: float = Field(0.2, gt=0, lt=1)
    split_seed: int = 0

    @model_validator(mode="after")
    def _path_for_chewie(self) -> "DataConfig":
        if self.kind == "chewie" and not self.path:
            raise ValueError("data.path is required for kind 'chewie'")
        return self


class NeuronPretrain(_Strict):
    model: Literal["lif", "alif"] = "lif"
    tau_mem_s: float = Field(0.3, gt=0)
    tau_adapt_s: float = Field(1.0, gt=0)
    beta_adapt: float = Field(0.0, ge=0)
    v_th: float = Field(1.0, gt=0)
    refractory_s: float = Field(0.0, ge=0)
    tau_out_s: float = Field(0.3, gt=0)


class ModelPretrain(_Strict):
    n_rec: int = Field(128, ge=1)
    recurrent: bool = True
    spectral_radius: float = Field(0.9, ge=0)
    neuron: NeuronPretrain = NeuronPretrain()


class TrainPretrain(_Strict):
    epochs: int = Field(60, ge=1)
    lr: float = Field(3e-3, gt=0)
    batch_size: int = Field(16, ge=1)
    seed: int = 0
    surrogate: Literal["sigmoid", "fast_sigmoid", "boxcar", "triangular", "exponential", "atan"] = "fast_sigmoid"
    surrogate_param: float | None = Field(None, gt=0)
    detach_reset: bool = False
    clip_norm: float | None = Field(10.0, gt=0)
    reg_rate: float = Field(0.0, ge=0)
    target_rate_hz: float = Field(5.0, ge=0)
    init_gain: float = Field(1.0, gt=0)
    train_readout_tau: bool = True
    checkpoint_steps: int | None = Field(None, ge=1)


class BaselinePretrain(_Strict):
    history_bins: int = Field(5, ge=1)


class OutputPretrain(_Strict):
    model_path: str = "pretrained.npz"
    checkpoint_path: str | None = None


class PretrainConfig(_Strict):
    data: DataConfig
    model: ModelPretrain = ModelPretrain()
    train: TrainPretrain = TrainPretrain()
    baseline: BaselinePretrain = BaselinePretrain()
    output: OutputPretrain = OutputPretrain()

    @model_validator(mode="after")
    def _taus_exceed_dt(self) -> "PretrainConfig":
        if self.data.kind == "synthetic":
            dt = self.data.bin_s
            for key in ("tau_mem_s", "tau_adapt_s", "tau_out_s"):
                tau = getattr(self.model.neuron, key)
                if tau <= dt:
                    raise ValueError(f"model.neuron.{key} ({tau}) must exceed the bin width data.bin_s ({dt})")
        return self


def parse_pretrain_config(data: Any, origin: str = "<config>") -> PretrainConfig:
    if not isinstance(data, dict):
        raise ValueError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return PretrainConfig.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "(top level)"
            got = "" if e["type"] == "missing" else f" (got {e.get('input')!r})"
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            lines.append(f"{origin}: {key}: {msg}{got}")
        raise ValueError("\n".join(lines)) from None


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
def load_data(cfg: PretrainConfig, base_dir: Path | None = None) -> BinnedSession:
    d = cfg.data
    if d.kind == "chewie":
        p = Path(d.path)
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        return load_chewie(p)
    s = d.synthetic
    return synthetic_session(duration_s=s.duration_s, bin_s=d.bin_s, trial_s=s.trial_s, seed=s.seed,
                             n_neurons=s.n_neurons, baseline_hz=s.baseline_hz, depth_hz=s.depth_hz)


def split_trials(session: BinnedSession, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    ids = session.trial_ids
    if ids.size < 2:
        raise ValueError(f"need at least 2 trials to split, got {ids.size}")
    perm = np.random.default_rng(seed).permutation(ids)
    n_test = min(max(1, int(round(test_fraction * ids.size))), ids.size - 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def to_sequences(session: BinnedSession, trials: np.ndarray):
    """Padded (T, B, n) counts, (T, B, d) velocity and (T, B) validity mask."""
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


def r2_score(pred: np.ndarray, target: np.ndarray) -> tuple[float, list[float]]:
    per = []
    for k in range(target.shape[1]):
        ss_res = float(np.sum((target[:, k] - pred[:, k]) ** 2))
        ss_tot = float(np.sum((target[:, k] - target[:, k].mean()) ** 2))
        per.append(1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"))
    return float(np.mean(per)), per


def history_features(x: np.ndarray, H: int) -> np.ndarray:
    """(T, B, n) -> (T, B, n H + 1): counts of bins t, t-1, .. t-H+1 (zeros before the
    sequence start) and a constant 1."""
    T, B, n = x.shape
    feats = [x]
    for h in range(1, H):
        s = np.zeros_like(x)
        s[h:] = x[:-h]
        feats.append(s)
    feats.append(np.ones((T, B, 1)))
    return np.concatenate(feats, axis=2)


def wiener_filter(x_tr, v_tr, m_tr, x_te, v_te, m_te, H: int, seed: int = 0) -> dict:
    """Ridge regression on history features; lambda from a validation fifth of the training
    sequences. Returns R^2 on the test bins and the chosen lambda."""
    f_tr = history_features(x_tr, H)
    f_te = history_features(x_te, H)
    B = x_tr.shape[1]
    perm = np.random.default_rng(seed).permutation(B)
    n_val = max(1, B // 5)
    val, fit_b = perm[:n_val], perm[n_val:]

    def flat(f, v, m, idx):
        sel = m[:, idx] > 0
        return f[:, idx][sel], v[:, idx][sel]

    def solve(F, Y, lam):
        G = F.T @ F
        reg = lam * np.eye(G.shape[0])
        reg[-1, -1] = 0.0  # no penalty on the bias
        return np.linalg.solve(G + reg, F.T @ Y)

    F_fit, Y_fit = flat(f_tr, v_tr, m_tr, fit_b)
    F_val, Y_val = flat(f_tr, v_tr, m_tr, val)
    best = None
    for lam in 10.0 ** np.arange(-2, 5):
        w = solve(F_fit, Y_fit, lam)
        r2, _ = r2_score(F_val @ w, Y_val)
        if best is None or r2 > best[0]:
            best = (r2, lam)
    F_all, Y_all = flat(f_tr, v_tr, m_tr, np.arange(B))
    w = solve(F_all, Y_all, best[1])
    F_te, Y_te = flat(f_te, v_te, m_te, np.arange(x_te.shape[1]))
    r2, per = r2_score(F_te @ w, Y_te)
    return {"r2": r2, "r2_per_dim": per, "ridge": float(best[1])}


# ------------------------------------------------------------------ training
def build_spec(cfg: PretrainConfig, n_in: int, n_out: int, dt_s: float) -> NetSpec:
    n = cfg.model.neuron
    for key in ("tau_mem_s", "tau_adapt_s", "tau_out_s"):
        if getattr(n, key) <= dt_s:
            raise ValueError(f"model.neuron.{key} ({getattr(n, key)}) must exceed the model dt_s = bin width ({dt_s})")
    return NetSpec(n_in=n_in, layers=(cfg.model.n_rec,), recurrent=(cfg.model.recurrent,), n_out=n_out,
                   model=n.model, dt_s=dt_s, tau_mem_s=n.tau_mem_s, tau_adapt_s=n.tau_adapt_s,
                   beta_adapt=n.beta_adapt, v_th=n.v_th, refractory_s=n.refractory_s, tau_out_s=n.tau_out_s,
                   surrogate=cfg.train.surrogate, surrogate_param=cfg.train.surrogate_param,
                   detach_reset=cfg.train.detach_reset)


def to_runtime_model(spec: NetSpec, params: dict[str, np.ndarray], v_mean: np.ndarray, v_sd: np.ndarray,
                     provenance: dict):
    """A :class:`rtsnn.snn.Model` (readout rescaled to velocity units; trained readout
    ``kappa`` exported as ``tau_out_s = -dt_s / ln kappa``)."""
    from rtsnn.learn.offline.bptt import to_model

    labels = ["vx", "vy"][: len(v_mean)] if len(v_mean) <= 2 else None
    return to_model(spec, params, out_scale=v_sd, out_offset=v_mean, provenance=provenance,
                    output_labels=labels, output_units=["a.u./s"] * len(v_mean))


def run_pretrain(cfg: PretrainConfig, base_dir: Path | None = None, *, progress: bool = True,
                 resume: bool = False, log=sys.stderr) -> dict:
    """Train, evaluate against the Wiener filter, save the model; returns the result dict."""
    t_start = time.perf_counter()
    session = load_data(cfg, base_dir)
    tr, te = split_trials(session, cfg.data.test_fraction, cfg.data.split_seed)
    x_tr, v_tr, m_tr = to_sequences(session, tr)
    x_te, v_te, m_te = to_sequences(session, te)
    sel = m_tr > 0
    v_mean = v_tr[sel].mean(axis=0)
    v_sd = v_tr[sel].std(axis=0) + 1e-12
    z_tr = (v_tr - v_mean) / v_sd * m_tr[..., None]

    spec = build_spec(cfg, session.counts.shape[1], session.vel.shape[1], session.bin_s)
    t = cfg.train
    engine = Engine(spec, dtype=np.float32, checkpoint_steps=t.checkpoint_steps)
    params = init_params(spec, t.seed, spectral_radius=cfg.model.spectral_radius)
    data_init(engine, params, x_tr[:, : min(64, x_tr.shape[1])], gain=t.init_gain)

    def get_batch(idx):
        idx = np.sort(idx)
        return np.ascontiguousarray(x_tr[:, idx], dtype=np.float32), (z_tr[:, idx], m_tr[:, idx])

    def masked_mse(out, target):
        z, m = target
        diff = (out.astype(np.float64) - z) * m[..., None]
        n = max(float(m.sum()) * out.shape[2], 1.0)
        return float(0.5 * np.sum(diff**2) / n), diff / n

    def predict(p, x):
        return engine.forward(p, np.ascontiguousarray(x, dtype=np.float32)).y.astype(np.float64) * v_sd + v_mean

    z_te = (v_te - v_mean) / v_sd * m_te[..., None]

    def evaluate(p):
        # held-out loss (the task loss alone, on the test trials after the epoch) and R^2
        out = engine.forward(p, np.ascontiguousarray(x_te, dtype=np.float32)).y
        test_loss, _ = masked_mse(out, (z_te, m_te))
        pred = out.astype(np.float64) * v_sd + v_mean
        r2, _ = r2_score(pred[m_te > 0], v_te[m_te > 0])
        return {"test_loss": test_loss, "test_r2": r2}

    trainable = ("weights", "readout_tau") if t.train_readout_tau else ("weights",)
    fcfg = FitConfig(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, clip_norm=t.clip_norm, trainable=trainable,
                     reg_rate=t.reg_rate, target_rate_hz=t.target_rate_hz,
                     checkpoint_path=cfg.output.checkpoint_path and str(_resolve(cfg.output.checkpoint_path, base_dir)),
                     resume=resume, progress=progress, seed=t.seed)
    _, history = fit(engine, params, x_tr.shape[1], get_batch, masked_mse, fcfg, evaluate=evaluate,
                     meta={"spec": spec.to_dict()}, log=log)

    pred = predict(params, x_te)
    r2, r2_per = r2_score(pred[m_te > 0], v_te[m_te > 0])
    wf = wiener_filter(x_tr, v_tr, m_tr, x_te, v_te, m_te, cfg.baseline.history_bins, cfg.data.split_seed)
    rate_hz = float(engine.forward(params, np.ascontiguousarray(x_te, dtype=np.float32)).spike_counts[0].sum()
                    / (m_te.size * spec.layers[0] * spec.dt_s))
    prov = {"method": "bptt_pretrain", "data": session.name, "seed": t.seed, "epochs": t.epochs,
            "test_r2": r2, "wiener_r2": wf["r2"], "train_trials": tr.tolist(), "test_trials": te.tolist(),
            "input": "spike counts per bin of dt_s (passthrough encoder)"}
    model = to_runtime_model(spec, params, v_mean, v_sd, prov)
    from rtsnn.snn.model_file import save_model

    out_path = save_model(_resolve(cfg.output.model_path, base_dir), model)
    hist_path = save_history(history_path_for(out_path), training_history(
        history, method="bptt_pretrain", metric="R^2", loss=BPTT_LOSS_NOTE, model_file=Path(out_path).name,
        data=session.name, baseline={"name": f"Wiener filter ({cfg.baseline.history_bins} bins)",
                                     "heldout_metric": _finite_or_none(wf["r2"])}))
    return {"data": session.name, "bin_s": session.bin_s, "n_neurons": int(session.counts.shape[1]),
            "train_trials": int(tr.size), "test_trials": int(te.size), "test_bins": int(m_te.sum()),
            "snn_r2": r2, "snn_r2_per_dim": r2_per, "wiener_r2": wf["r2"], "wiener_r2_per_dim": wf["r2_per_dim"],
            "wiener_history_bins": cfg.baseline.history_bins, "wiener_ridge": wf["ridge"],
            "n_rec": spec.layers[0], "neuron": spec.model, "epochs": len(history),
            "epoch_s_median": float(np.median([h["epoch_s"] for h in history])) if history else None,
            "hidden_rate_hz": rate_hz, "model_path": str(out_path),
            "history_path": str(hist_path), "wall_s": time.perf_counter() - t_start}


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
    from rtsnn.runtime.metrics import json_safe  # NaN R^2 (a constant target) -> null: strict JSON

    print(json.dumps(json_safe(result), allow_nan=False), file=stream if stream is not None else sys.stdout,
          flush=True)
