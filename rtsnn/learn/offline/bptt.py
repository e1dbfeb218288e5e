"""Training with BPTT and surrogate gradients: a generic epoch loop (progress, atomic per-epoch
checkpoints, resume, Ctrl-C saves first, divergence stop) and the classifier API
:func:`train_classifier` used by ``scripts/reproduce_*.py --method bptt``.

Per-epoch time: every entry of ``TrainedClassifier.history`` has ``epoch_s``, the wall time of
that epoch's training pass (forward + backward + updates over all minibatches; evaluation of
train/val accuracy excluded).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rtsnn.errors import RtsnnRuntimeError
from rtsnn.learn.offline.bptt_engine import Engine, init_params
from rtsnn.learn.offline.bptt_graph import BpttOptions, graph_difference, layered_graph, options_difference, typical
from rtsnn.learn.offline.checkpoint import CheckpointError, load_checkpoint, network_of, save_checkpoint
from rtsnn.learn.offline.losses import (CLASSIFICATION_LOSSES, classification_logits, compute_loss,
                                        homeostatic_reg, spike_count_reg)
from rtsnn.learn.offline.optim import Adam
from rtsnn.snn.graph import Graph


class TrainingDiverged(RtsnnRuntimeError):
    """Loss or gradients became NaN/inf or exploded; the last good checkpoint is kept."""


# ------------------------------------------------------------------ data checks
def check_inputs(x: Any, name: str = "x", n_in: int | None = None) -> np.ndarray:
    """``x`` as float32 (n_samples, T, n_in); ValueError naming ``name`` otherwise."""
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array, got {type(x).__name__}: {err}") from None
    if arr.ndim != 3:
        raise ValueError(f"{name} must be 3-D (n_samples, T, n_in), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise ValueError(f"{name} must have n_samples, T, n_in >= 1, got shape {arr.shape}")
    if n_in is not None and arr.shape[2] != n_in:
        raise ValueError(f"{name} must have n_in = {n_in} inputs (last axis), got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} contains {int(bad.sum())} NaN/inf values (first at index "
                         f"{tuple(int(i) for i in np.argwhere(bad)[0])})")
    return arr


def check_labels(y: Any, n: int, n_classes: int, name: str = "y") -> np.ndarray:
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape (n_samples,) = ({n},), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if n and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{name} labels must lie in [0, n_classes={n_classes}), got range "
                         f"[{arr.min()}, {arr.max()}]")
    return arr


# ------------------------------------------------------------------ initialisation
def data_init(engine: Engine, params: dict[str, np.ndarray], x_tbn: np.ndarray, gain: float = 1.0,
              bias: float = 0.0) -> None:
    """Rescale each layer's feedforward weights on a data batch so its free membrane
    ``u[t] = alpha u[t-1] + W^T x[t]`` (no reset) has standard deviation ``gain * v_th`` and
    mean ``bias * v_th`` over time, samples and neurons (layer by layer, with the actual spikes
    of the rescaled layer below). LSUV-style; makes training start from a responsive network
    whatever the input encoding."""
    plan = engine.plan
    # the spikes of layer l-1 do not depend on the layers above: the whole network's forward
    # pass (float64, full tape) gives them, with the layers up to l-1 already rescaled
    eng = Engine(engine.graph, engine.options, dtype=np.float64)
    for l in range(len(plan.layers)):
        v_th = typical(plan.v_th[l])  # the graph's initial threshold of the layer
        h = x_tbn if l == 0 else eng.forward(params, x_tbn).records[0][0][l - 1][3]
        T, B, _ = h.shape
        cur = (h.reshape(T * B, -1) @ params[f"w{l}"]).reshape(T, B, -1)
        u = np.empty_like(cur)
        acc = np.zeros(cur.shape[1:])
        a = params[f"alpha{l}"]
        for t in range(T):
            acc = a * acc + cur[t]
            u[t] = acc
        sd = float(u.std())
        if sd > 0:
            params[f"w{l}"] *= gain * v_th / sd
            u *= gain * v_th / sd
        if bias:
            # shift by a constant current so the mean membrane is bias * v_th: add it to all
            # weights proportionally to the mean input of each presynaptic channel
            mean_in = h.mean(axis=(0, 1))
            tot = float(mean_in.sum())
            if tot > 0:
                du = bias * v_th - float(u.mean())
                params[f"w{l}"] += du * (1 - float(np.mean(a))) / tot


# ------------------------------------------------------------------ generic loop
@dataclass
class FitConfig:
    epochs: int
    batch_size: int = 32
    lr: float = 1e-3
    clip_norm: float | None = 10.0
    trainable: tuple[str, ...] = ("weights",)  # 'weights', 'threshold', 'leak', 'readout_tau', 'delays'
    reg_count: float = 0.0
    reg_rate: float = 0.0
    target_rate_hz: float = 10.0
    calibrate_every: int = 0  # epochs between adaptive surrogate calibrations (0: off)
    calibrate_gamma: float = 1.0
    checkpoint_path: str | None = None
    resume: bool = False
    diverge_factor: float = 1e3  # loss > factor * first-epoch loss: diverged
    progress: bool = False
    seed: int = 0
    # cosine learning-rate decay over all steps, lr -> lr_final (None: constant lr)
    lr_final: float | None = None
    # keep the weights of the epoch with the highest history[select_metric] (e.g. "val_acc"),
    # scored from 0-based epoch select_from_epoch on (None: the final weights)
    select_metric: str | None = None
    select_from_epoch: int = 0


def cosine_lr(lr: float, lr_final: float | None, step: int, total_steps: int) -> float:
    """Learning rate of 0-based optimiser step ``step`` of ``total_steps``: ``lr`` when
    ``lr_final`` is None, else ``lr_final + (lr - lr_final) (1 + cos(pi s / (S - 1))) / 2``
    with ``s = min(step, S - 1)`` (``lr`` at the first step, ``lr_final`` at the last)."""
    if lr_final is None:
        return lr
    frac = min(step, total_steps - 1) / max(total_steps - 1, 1)
    return lr_final + 0.5 * (lr - lr_final) * (1.0 + math.cos(math.pi * frac))


def trainable_keys(params: dict[str, np.ndarray], trainable: tuple[str, ...]) -> list[str]:
    known = {"weights", "threshold", "leak", "readout_tau", "delays"}
    unknown = set(trainable) - known
    if unknown:
        raise ValueError(f"trainable must name some of {sorted(known)}, got unknown {sorted(unknown)}")
    keys = []
    for k in params:
        if k.startswith(("w", "r", "b_out")) and "weights" in trainable:
            keys.append(k)
        elif k.startswith("vth") and "threshold" in trainable:
            keys.append(k)
        elif k.startswith("alpha") and "leak" in trainable:
            keys.append(k)
        elif k in ("kappa", "kappa2") and "readout_tau" in trainable:
            keys.append(k)
        elif k == "delay_logits" and "delays" in trainable:
            keys.append(k)
    return keys


def _clamp(params: dict[str, np.ndarray]) -> None:
    for k, v in params.items():
        if k.startswith("alpha") or k in ("kappa", "kappa2"):
            np.clip(v, 0.0, 0.9999, out=v)
        elif k.startswith("vth"):
            np.maximum(v, 1e-2, out=v)


def fit(engine: Engine, params: dict[str, np.ndarray], n_samples: int,
        get_batch: Callable[[np.ndarray], tuple[np.ndarray, Any]],
        loss_name: str | Callable, cfg: FitConfig, loss_kw: dict | None = None,
        evaluate: Callable[[dict[str, np.ndarray]], dict[str, float]] | None = None,
        meta: dict | None = None, log=sys.stderr) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Train ``params`` in place for ``cfg.epochs``; returns ``(params, history)``.

    ``get_batch(indices) -> (x (T, B, n_in), target)``; ``loss_name`` names a loss of
    :mod:`rtsnn.learn.offline.losses` or is a callable ``(out, target) -> (loss, d_out)``; ``evaluate(params)`` adds metrics
    (e.g. accuracies) to each epoch's history entry. With ``cfg.checkpoint_path`` the params,
    Adam state, history, ``meta``, the engine's graph and options are saved atomically after every epoch; on
    KeyboardInterrupt the current params are saved first (the interrupted epoch is redone on
    resume). With ``cfg.resume`` an existing checkpoint is loaded and training continues at its
    epoch; the checkpoint's graph (all but the values of the weights the engine draws) and
    options must be the engine's (CheckpointError naming the first field that differs). A
    non-finite or exploding loss raises :class:`TrainingDiverged` and leaves the last good
    checkpoint untouched.

    ``cfg.lr_final``: the learning rate follows :func:`cosine_lr` over ``cfg.epochs`` epochs'
    steps. ``cfg.select_metric``: after training, ``params`` hold the weights of the last
    epoch (0-based, from ``cfg.select_from_epoch`` on) with the highest value of that metric (ties: the later epoch)
    (a key ``evaluate`` returns, e.g. ``val_acc``); its 0-based index is
    ``history[-1]["selected_epoch"]`` (the best weights travel in the checkpoint)."""
    loss_kw = loss_kw or {}
    keys = trainable_keys(params, cfg.trainable)
    if cfg.lr_final is not None and not (math.isfinite(cfg.lr_final) and cfg.lr_final > 0):
        raise ValueError(f"lr_final must be a finite number > 0 or None, got {cfg.lr_final!r}")
    if cfg.select_metric is not None and evaluate is None:
        raise ValueError(f"select_metric {cfg.select_metric!r} needs an evaluate function")
    if not (isinstance(cfg.select_from_epoch, int) and 0 <= cfg.select_from_epoch < max(cfg.epochs, 1)):
        raise ValueError(f"select_from_epoch must be an int in [0, epochs={cfg.epochs}), "
                         f"got {cfg.select_from_epoch!r}")
    opt = Adam(lr=cfg.lr, clip_norm=cfg.clip_norm)
    history: list[dict] = []
    start_epoch = 0
    best: dict[str, np.ndarray] | None = None  # weights of the selected epoch so far
    best_score, best_epoch = -math.inf, None
    ck = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    if ck is not None and cfg.resume and ck.exists():
        arrays, m = load_checkpoint(ck)
        stored_graph, stored_options = network_of(arrays, m, ck)
        diff = graph_difference(stored_graph, engine.graph) or options_difference(stored_options, engine.options)
        if diff is not None:
            raise CheckpointError(f"{ck}: the checkpoint was trained with another network or options, {diff} "
                                  f"(checkpoint vs this run); resume with what it was trained with")
        for k in params:
            if f"param/{k}" not in arrays:
                raise ValueError(f"{ck}: checkpoint lacks parameter {k!r} (different network?)")
            if arrays[f"param/{k}"].shape != params[k].shape:
                raise ValueError(f"{ck}: parameter {k!r} has shape {arrays[f'param/{k}'].shape}, "
                                 f"the network needs {params[k].shape}")
            params[k][...] = arrays[f"param/{k}"]
        opt.load_state_arrays({k: v for k, v in arrays.items() if k.startswith("adam_")}, m["adam_steps"])
        history = list(m["history"])
        start_epoch = int(m["epoch"])
        engine.calib = list(m.get("calib", engine.calib))
        if cfg.select_metric is not None and m.get("best_epoch") is not None:
            best = {k: arrays[f"best/{k}"].copy() for k in params}
            best_score, best_epoch = float(m["best_score"]), int(m["best_epoch"])
        print(f"resumed from {ck} at epoch {start_epoch}", file=log)

    def save(epoch: int) -> None:
        if ck is None:
            return
        arrays = {f"param/{k}": v for k, v in params.items()}
        arrays.update(opt.state_arrays())
        extra = {}
        if best is not None:
            arrays.update({f"best/{k}": v for k, v in best.items()})
            extra = {"best_epoch": best_epoch, "best_score": best_score}
        save_checkpoint(ck, arrays, {"epoch": epoch, "history": history, "adam_steps": opt.step_count,
                                     "calib": list(engine.calib), "bptt_options": engine.options.to_dict(),
                                     **extra, **(meta or {})}, graph=engine.graph)

    bs = max(1, min(cfg.batch_size, n_samples))
    total_steps = cfg.epochs * math.ceil(n_samples / bs)
    first_loss = history[0]["loss"] if history else None
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, cfg.epochs):
            rng = np.random.default_rng([cfg.seed, epoch])  # per epoch: a resumed run repeats it exactly
            if cfg.calibrate_every and epoch % cfg.calibrate_every == 0:
                xb, _ = get_batch(rng.choice(n_samples, size=bs, replace=False))
                engine.calibrate(params, xb, gamma=cfg.calibrate_gamma)
            good = {k: v.copy() for k, v in params.items()}
            order = rng.permutation(n_samples)
            n_batches = math.ceil(n_samples / bs)
            t0 = time.perf_counter()
            tot_loss = 0.0
            for bi in range(n_batches):
                idx = order[bi * bs:(bi + 1) * bs]
                xb, tb = get_batch(idx)
                tape = engine.forward(params, xb)
                if callable(loss_name):
                    loss, dy = loss_name(tape.y, tb)
                else:
                    loss, dy = compute_loss(loss_name, tape.y, tb, **loss_kw)
                T, B = xb.shape[0], xb.shape[1]
                dz_reg = [np.zeros(n) for n in engine.plan.layers]
                for l, counts in enumerate(tape.spike_counts):
                    if cfg.reg_count:
                        v, d = spike_count_reg(counts, B, T, cfg.reg_count)
                        loss += v
                        dz_reg[l] += d
                    if cfg.reg_rate:
                        v, d = homeostatic_reg(counts, B, T, engine.plan.dt_s, cfg.target_rate_hz, cfg.reg_rate)
                        loss += v
                        dz_reg[l] += d
                if not math.isfinite(loss) or (first_loss is not None and loss > cfg.diverge_factor * max(first_loss, 1e-12)):
                    params.update(good)
                    raise TrainingDiverged(
                        f"training diverged at epoch {epoch + 1}, batch {bi + 1}: loss {loss!r}"
                        + (f" (first epoch {first_loss:.4g})" if first_loss is not None else "")
                        + (f"; last good checkpoint kept at {ck}" if ck else "")
                        + "; lower the learning rate or enable gradient clipping")
                grads = engine.backward(params, tape, dy, dz_reg)
                gn = sum(float(np.sum(grads[k] ** 2)) for k in keys)
                if not math.isfinite(gn):
                    params.update(good)
                    raise TrainingDiverged(f"training diverged at epoch {epoch + 1}, batch {bi + 1}: "
                                           f"non-finite gradient" + (f"; last good checkpoint kept at {ck}" if ck else ""))
                if cfg.lr_final is not None:
                    opt.lr = cosine_lr(cfg.lr, cfg.lr_final, opt.step_count, total_steps)
                opt.step(params, grads, keys)
                _clamp(params)
                tot_loss += loss * len(idx)
                if cfg.progress and log is not None and (
                        int(30 * (bi + 1) / n_batches) != int(30 * bi / n_batches) or bi + 1 == n_batches):
                    done = (bi + 1) / n_batches
                    print(f"\repoch {epoch + 1}/{cfg.epochs} [{'#' * int(30 * done):<30}] "
                          f"{bi + 1}/{n_batches} loss {tot_loss / min((bi + 1) * bs, n_samples):.4f}",
                          end="", file=log, flush=True)
            epoch_s = time.perf_counter() - t0
            entry = {"epoch": epoch + 1, "loss": tot_loss / n_samples, "epoch_s": epoch_s}
            if first_loss is None:
                first_loss = entry["loss"]
            if evaluate is not None:
                entry.update(evaluate(params))
            if cfg.lr_final is not None:
                entry["lr"] = opt.lr  # the rate of the epoch's last step
            if cfg.select_metric is not None and epoch >= cfg.select_from_epoch:
                if cfg.select_metric not in entry:
                    raise ValueError(f"select_metric {cfg.select_metric!r} is not among the epoch's "
                                     f"metrics {sorted(entry)}")
                score = float(entry[cfg.select_metric])
                if score >= best_score:  # ties: the later epoch, as FP's select_on_val
                    best_score, best_epoch = score, epoch
                    best = {k: v.copy() for k, v in params.items()}
                entry["selected_epoch"] = best_epoch
            history.append(entry)
            if cfg.progress and log is not None:
                extra = " ".join(f"{k} {v:.4f}" for k, v in entry.items() if k not in ("epoch", "loss", "epoch_s"))
                print(f"\repoch {epoch + 1}/{cfg.epochs} loss {entry['loss']:.4f} {extra} "
                      f"({epoch_s:.2f} s)" + " " * 20, file=log, flush=True)
            save(epoch + 1)
    except KeyboardInterrupt:
        # save the progress made so far (params and Adam state as they are now); the
        # interrupted epoch is run again from them on resume
        save(epoch)
        if ck is not None and log is not None:
            print(f"\ninterrupted: checkpoint saved to {ck} (resume with the same command and resume)",
                  file=log, flush=True)
        raise
    if best is not None:
        for k, v in best.items():
            params[k] = v.copy()
    return params, history


# ------------------------------------------------------------------ classifier API
def to_graph(graph: Graph, params: dict[str, np.ndarray], options: BpttOptions | None = None, *,
             out_scale: Any = 1.0, out_offset: Any = 0.0,
             provenance: dict | None = None, output_labels: list[str] | None = None,
             output_units: list[str] | None = None):
    """The trained network as a :class:`rtsnn.snn.graph.GraphModel`, nothing dropped: any
    depth, recurrent or not per layer, per-neuron ``alpha{l}`` / ``vth{l}``, ALIF, refractory,
    the readout (single or double exponential) rescaled as
    ``y = out_scale * (w_out^T r + b_out) + out_offset``, soft input delays as ``Delay``
    nodes; no readout: the output is the last layer's spikes. ``graph`` and ``options`` are
    what was trained (:class:`Engine`'s). Mapping and numerics: :mod:`rtsnn.learn.offline.export`."""
    from rtsnn.learn.offline.export import bptt_to_graph

    return bptt_to_graph(graph, params, options, out_scale=out_scale, out_offset=out_offset, provenance=provenance,
                         output_labels=output_labels, output_units=output_units)


def to_model(graph: Graph, params: dict[str, np.ndarray], options: BpttOptions | None = None, *,
             out_scale: Any = 1.0, out_offset: Any = 0.0,
             provenance: dict | None = None, output_labels: list[str] | None = None,
             output_units: list[str] | None = None):
    """What :func:`to_graph` gives, as the runtime's single-layer :class:`rtsnn.snn.Model`
    when it is that pattern (one LIF/ALIF layer, recurrent or not -- feedforward gets a zero
    ``w_rec`` --, a single-exponential readout, no delays, uniform decays and thresholds,
    time constants above ``dt_s``), else the :class:`rtsnn.snn.graph.GraphModel` itself.
    Either one is what :func:`rtsnn.snn.save_model` writes and
    :func:`rtsnn.snn.graph_network.build_network` runs; nothing trained is dropped."""
    from rtsnn.learn.offline.export import single_layer_model

    gm = to_graph(graph, params, options, out_scale=out_scale, out_offset=out_offset, provenance=provenance,
                  output_labels=output_labels, output_units=output_units)
    model = single_layer_model(gm)
    return gm if model is None else model


@dataclass
class TrainedClassifier:
    """A trained spiking classifier. ``predict(x)`` takes (n, T, n_in) inputs on the training
    dt grid; ``history`` has one dict per epoch (``loss``, ``train_acc``, ``val_acc`` when
    validation data was given, ``epoch_s``); ``params`` the float64 weights (``w0``, ``w1``,
    ... feedforward, ``r{l}`` recurrent, ``alpha{l}``/``vth{l}`` per-neuron leak/threshold,
    ``w_out``/``b_out``/``kappa`` for readout losses); ``graph`` the model graph trained
    (architecture and initial neuron parameters, :mod:`rtsnn.learn.offline.bptt_graph`) and
    ``options`` the training options; :meth:`to_model` gives the trained model."""

    graph: Graph
    params: dict[str, np.ndarray]
    loss: str
    options: BpttOptions = field(default_factory=BpttOptions)
    history: list[dict] = field(default_factory=list)
    calib: list[float] = field(default_factory=list)
    loss_kw: dict = field(default_factory=dict)
    selected_epoch: int | None = None  # with select_on_val: the 0-based epoch whose weights were kept

    @property
    def epoch_time(self) -> list[float]:
        """Seconds of training per epoch (same as ``[h['epoch_s'] for h in history]``)."""
        return [h["epoch_s"] for h in self.history]

    def to_graph(self, **kw):
        """The trained network as a :class:`rtsnn.snn.graph.GraphModel` (:func:`to_graph`)."""
        return to_graph(self.graph, self.params, self.options, **kw)

    def to_model(self, **kw):
        """The trained network as :func:`to_model` gives it (a single-layer Model or a GraphModel)."""
        return to_model(self.graph, self.params, self.options, **kw)

    def logits(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        eng = Engine(self.graph, self.options, dtype=np.float32)
        x = check_inputs(x, "x", eng.plan.n_in)
        out = []
        for i in range(0, x.shape[0], batch_size):
            xb = np.ascontiguousarray(x[i:i + batch_size].transpose(1, 0, 2))
            y = eng.forward(self.params, xb).y
            lg = classification_logits(y, self.loss, **self.loss_kw)
            if eng.plan.n_out is None:  # a spiking output layer
                # ties in spike counts are common: earlier spikes break them
                T = y.shape[0]
                lg = lg + 1e-3 * np.tensordot(1.0 - np.arange(T) / T, y.astype(np.float64), axes=(0, 0))
            out.append(lg)
        return np.concatenate(out, axis=0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(x), axis=1).astype(np.int64)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(x) == np.asarray(y)))


def train_classifier(x: np.ndarray, y: np.ndarray, *, hidden: list[int], n_classes: int, epochs: int,
                     seed: int, lr: float = 1e-3, loss: str = "count_ce", batch_size: int = 32,
                     dt_s: float = 1e-3, recurrent: bool = False, surrogate: str = "fast_sigmoid",
                     neuron: str = "lif", tau_mem_s: float = 20e-3, x_val=None, y_val=None,
                     progress: bool = False, **opts) -> TrainedClassifier:
    """Train a spiking classifier with BPTT and surrogate gradients.

    ``x`` (n_samples, T, n_in) float inputs on the ``dt_s`` grid (spikes or currents), ``y``
    (n_samples,) int labels. Network: ``hidden`` LIF/ALIF layers (each recurrent when
    ``recurrent``), then for ``loss`` in ``count_ce``/``first_spike`` a spiking output layer of
    ``n_classes`` neurons, for ``mean_ce``/``rate_ce`` a leaky readout. Weights are drawn at
    random and rescaled on a data batch (:func:`data_init`). Per-epoch training time is in
    ``history[i]['epoch_s']`` (also ``.epoch_time``).

    ``opts``: ``surrogate_param`` (steepness/width), ``detach_reset`` (False), ``tau_out_s``,
    ``tau_adapt_s``, ``beta_adapt``, ``v_th``, ``refractory_s``, ``init_gain`` (1.0),
    ``init_bias`` (0.0), ``spectral_radius`` (0.9), ``clip_norm`` (10), ``trainable``
    (('weights',) plus 'threshold', 'leak', 'readout_tau', 'delays'), ``tau_out2_s`` (a second
    readout stage: double-exponential filter), ``max_delay_steps`` (trainable input delays,
    softmax relaxation), ``reg_count``, ``reg_rate``,
    ``target_rate_hz``, ``calibrate_every``, ``checkpoint_steps`` (BPTT recompute segments),
    ``checkpoint_path``/``resume`` (per-epoch checkpoints), ``tau_steps`` (first_spike),
    ``dtype`` (float32), ``reset`` ('subtract' or 'zero', see :mod:`rtsnn.learn.offline.bptt_engine`), ``output``
    ('spiking': a spiking output layer of ``n_classes`` neurons whose spikes are the loss's
    ``out``, or 'readout': the leaky readout; default 'spiking' for ``count_ce``/``first_spike``
    and 'readout' for ``mean_ce``/``rate_ce``; ``rate_ce`` on a spiking output is snnTorch's
    ``ce_rate_loss``, ``count_ce`` its ``ce_count_loss``), ``init_weights`` (a dict of
    initial arrays by parameter name, e.g. ``{'w0': ..., 'w1': ...}``, replacing the random
    draw: the same initialisation as another trainer), ``data_init`` (True: rescale the
    initial weights on a data batch; set False to start from ``init_weights`` as given),
    ``surrogate_scale`` (a fixed factor on the surrogate of every layer, default 1: e.g.
    ``surrogate='fast_sigmoid', surrogate_param=k, surrogate_scale=2/k`` is snnTorch's
    ``fast_sigmoid(slope=k)``, ``1/(1 + k|x|)^2``; ``calibrate_every`` replaces it when set),
    ``lr_final`` (None: constant ``lr``; else a cosine decay from ``lr`` at the first step to
    ``lr_final`` at the last, :func:`cosine_lr`), ``select_on_val`` (False; True: keep the
    weights of the epoch with the best ``val_acc`` on ``x_val``/``y_val``, ties to the later
    epoch, scored from 0-based epoch ``val_from_epoch`` (0) on; the kept epoch is
    ``selected_epoch``; never select on a test set).
    """
    known = {"surrogate_param", "detach_reset", "tau_out_s", "tau_adapt_s", "beta_adapt", "v_th",
             "refractory_s", "init_gain", "init_bias", "spectral_radius", "clip_norm", "trainable",
             "reg_count", "reg_rate", "target_rate_hz", "calibrate_every", "calibrate_gamma",
             "checkpoint_steps", "checkpoint_path", "resume", "tau_steps", "dtype", "log", "tau_out2_s",
             "max_delay_steps", "reset", "output", "init_weights", "data_init", "surrogate_scale",
             "lr_final", "select_on_val", "val_from_epoch"}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if loss not in CLASSIFICATION_LOSSES:
        raise ValueError(f"loss must be one of {', '.join(CLASSIFICATION_LOSSES)}, got {loss!r}")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if not (isinstance(n_classes, int) and n_classes >= 2):
        raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
    x = check_inputs(x, "x")
    y = check_labels(y, x.shape[0], n_classes, "y")
    if (x_val is None) != (y_val is None):
        raise ValueError("give both x_val and y_val, or neither")
    if x_val is not None:
        x_val = check_inputs(x_val, "x_val", x.shape[2])
        y_val = check_labels(y_val, x_val.shape[0], n_classes, "y_val")
        if x_val.shape[1] != x.shape[1]:
            raise ValueError(f"x_val must have T = {x.shape[1]} steps like x, got shape {x_val.shape}")
    select_on_val = bool(opts.get("select_on_val", False))
    if select_on_val and x_val is None:
        raise ValueError("select_on_val needs a held-out validation set (x_val, y_val)")
    val_from_epoch = opts.get("val_from_epoch", 0)
    if not (isinstance(val_from_epoch, int) and 0 <= val_from_epoch < epochs):
        raise ValueError(f"val_from_epoch must be an int in [0, epochs={epochs}), got {val_from_epoch!r}")
    lr_final = opts.get("lr_final")
    if lr_final is not None and not (isinstance(lr_final, (int, float)) and math.isfinite(lr_final)
                                     and 0 < lr_final):
        raise ValueError(f"lr_final must be a finite number > 0 or None, got {lr_final!r}")
    output = opts.get("output", "spiking" if loss in ("count_ce", "first_spike") else "readout")
    if output not in ("spiking", "readout"):
        raise ValueError(f"output must be 'spiking' or 'readout', got {output!r}")
    spiking_out = output == "spiking"
    layers = tuple(int(n) for n in hidden) + ((n_classes,) if spiking_out else ())
    rec = tuple([bool(recurrent)] * len(hidden)) + ((False,) if spiking_out else ())
    graph = layered_graph(int(x.shape[2]), layers, rec, None if spiking_out else n_classes, dt_s=dt_s, model=neuron,
                          tau_mem_s=tau_mem_s, tau_adapt_s=opts.get("tau_adapt_s", 200e-3),
                          beta_adapt=opts.get("beta_adapt", 0.0), v_th=opts.get("v_th", 1.0),
                          refractory_s=opts.get("refractory_s", 0.0), reset=opts.get("reset", "subtract"),
                          tau_out_s=opts.get("tau_out_s", max(20e-3, 2 * dt_s)),
                          tau_out2_s=None if spiking_out else opts.get("tau_out2_s"))
    options = BpttOptions(surrogate=surrogate, surrogate_param=opts.get("surrogate_param"),
                          detach_reset=opts.get("detach_reset", False),
                          max_delay_steps=int(opts.get("max_delay_steps", 0)))
    engine = Engine(graph, options, dtype=opts.get("dtype", np.float32), checkpoint_steps=opts.get("checkpoint_steps"))
    params = init_params(graph, seed, options, spectral_radius=opts.get("spectral_radius", 0.9))
    sg_scale = opts.get("surrogate_scale", 1.0)
    if not (isinstance(sg_scale, (int, float)) and math.isfinite(sg_scale) and sg_scale > 0):
        raise ValueError(f"surrogate_scale must be a finite number > 0, got {sg_scale!r}")
    engine.calib = [float(sg_scale)] * len(engine.plan.layers)
    for k, w in (opts.get("init_weights") or {}).items():
        if k not in params:
            raise ValueError(f"init_weights: unknown parameter {k!r}; the network has {', '.join(params)}")
        arr = np.asarray(w, dtype=np.float64)
        if arr.shape != params[k].shape or not np.all(np.isfinite(arr)):
            raise ValueError(f"init_weights[{k!r}] must be a finite array of shape {params[k].shape}, "
                             f"got shape {arr.shape}")
        params[k] = arr.copy()
    if opts.get("data_init", True):
        rng = np.random.default_rng(seed)
        init_idx = rng.choice(x.shape[0], size=min(256, x.shape[0]), replace=False)
        data_init(engine, params, np.ascontiguousarray(x[init_idx].transpose(1, 0, 2), dtype=np.float64),
                  gain=opts.get("init_gain", 1.0), bias=opts.get("init_bias", 0.0))
    loss_kw = {"tau_steps": opts["tau_steps"]} if (loss == "first_spike" and "tau_steps" in opts) else {}
    clf = TrainedClassifier(graph=graph, params=params, loss=loss, options=options, loss_kw=loss_kw)

    def get_batch(idx):
        return np.ascontiguousarray(x[np.sort(idx)].transpose(1, 0, 2)), y[np.sort(idx)]

    def evaluate(_p):
        out = {"train_acc": clf.accuracy(x, y)}
        if x_val is not None:
            out["val_acc"] = clf.accuracy(x_val, y_val)
        return out

    cfg = FitConfig(epochs=epochs, batch_size=batch_size, lr=lr, clip_norm=opts.get("clip_norm", 10.0),
                    trainable=tuple(opts.get("trainable", ("weights",))), reg_count=opts.get("reg_count", 0.0),
                    reg_rate=opts.get("reg_rate", 0.0), target_rate_hz=opts.get("target_rate_hz", 10.0),
                    calibrate_every=opts.get("calibrate_every", 0), calibrate_gamma=opts.get("calibrate_gamma", 1.0),
                    checkpoint_path=opts.get("checkpoint_path"), resume=opts.get("resume", False),
                    progress=progress, seed=seed,
                    lr_final=None if lr_final is None else float(lr_final),
                    select_metric="val_acc" if select_on_val else None,
                    select_from_epoch=val_from_epoch if select_on_val else 0)
    _, history = fit(engine, params, x.shape[0], get_batch, loss, cfg, loss_kw=loss_kw, evaluate=evaluate,
                     meta={"loss": loss}, log=opts.get("log", sys.stderr))
    clf.history = history
    clf.calib = list(engine.calib)
    if select_on_val and history:
        clf.selected_epoch = history[-1].get("selected_epoch")
    return clf
