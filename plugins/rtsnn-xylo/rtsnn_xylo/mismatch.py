"""Parameter mismatch: the mismatch gradient and accuracy under parameter jitter.

* :func:`mismatch_gradient` -- the seed's first-order sim-to-real term (REFERENCES section 1):
  how the weight gradient ``G = dL/dW`` moves under a hardware-parameter perturbation ``dp``
  (per-neuron threshold ``vth`` and leak ``alpha`` of the float BPTT network),
  ``dG ~ (d^2 L / dW dp) dp``. ``G`` is the exact BPTT (surrogate) gradient of
  :class:`rtsnn.learn.offline.bptt_engine.Engine` in float64; its derivative along ``dp`` is a
  central difference ``(G(p + e dp) - G(p - e dp)) / (2 e)`` with small ``e`` (spikes do not
  flip, so ``G`` is smooth there).
* :func:`jitter_accuracy` -- the chip's accuracy when every hidden neuron's threshold is
  ``rint(th (1 + U(-j, j)))`` (one draw = one chip instance, shared by all samples), many draws.
* :func:`jitter_dash` -- leak jitter on Xylo: ``tau (1 + U(-j, j))`` re-rounded to a dash
  (``round(log2(tau/dt))``). Because decays are powers of two, ``|log2(1 + j)| < 0.5`` (j < 41 %)
  never changes a dash: the chip's leaks are immune to +-10 % jitter by construction; the
  function returns the jittered dashes so scripts can show it.

Noise training is :func:`rtsnn_xylo.qat.qat_finetune` with ``threshold_jitter`` (per-sample,
per-neuron thresholds drawn afresh in every batch's forward pass).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from rtsnn_xylo.qat import ChipTrainer, check_counts, jitter_thresholds
from rtsnn_xylo.ticks import tick_rows
from rtsnn_xylo.spec import XyloConfig

PERTURBABLE = ("vth", "alpha")


def weight_gradient(engine: Any, params: dict[str, np.ndarray], x_tbn: np.ndarray, loss: Callable) -> dict[str, np.ndarray]:
    """BPTT gradient of ``loss(out) -> (value, d_out)`` for the weights (keys ``w*``, ``r*``)."""
    tape = engine.forward(params, x_tbn)
    _, dy = loss(tape.y)
    g = engine.backward(params, tape, dy)
    return {k: v for k, v in g.items() if k.startswith(("w", "r"))}


def mismatch_gradient(engine: Any, params: dict[str, np.ndarray], x_tbn: np.ndarray, loss: Callable,
                      direction: dict[str, np.ndarray], eps: float = 1e-6) -> dict[str, np.ndarray]:
    """``(d^2 L / dW dp) dp`` for ``dp = direction`` (keys ``vth{l}`` / ``alpha{l}``, arrays shaped
    like the params); returned per weight key. ``engine`` should run in float64."""
    for k, d in direction.items():
        if not k.startswith(PERTURBABLE) or k not in params:
            raise ValueError(f"direction key {k!r} must name a threshold/leak parameter of the network "
                             f"(one of {[p for p in params if p.startswith(PERTURBABLE)]})")
        if np.shape(d) != params[k].shape:
            raise ValueError(f"direction[{k!r}] must have shape {params[k].shape}, got {np.shape(d)}")

    def at(e: float) -> dict[str, np.ndarray]:
        p = {k: v.copy() for k, v in params.items()}
        for k, d in direction.items():
            p[k] = p[k] + e * np.asarray(d, np.float64)
        return weight_gradient(engine, p, x_tbn, loss)

    gp, gm = at(eps), at(-eps)
    return {k: (gp[k] - gm[k]) / (2 * eps) for k in gp}


def jitter_dash(dash: np.ndarray, jitter: float, dt_s: float, rng: np.random.Generator) -> np.ndarray:
    """Dashes after ``tau -> tau (1 + U(-jitter, jitter))`` and re-rounding (module docstring)."""
    dash = np.asarray(dash, np.int64)
    tau = dt_s * 2.0**dash * (1.0 + rng.uniform(-jitter, jitter, dash.shape))
    return np.clip(np.rint(np.log2(tau / dt_s)), 0, 15).astype(np.int64)


def jitter_accuracy(cfg: XyloConfig, xs: np.ndarray, labels: np.ndarray, jitter: float = 0.1, n_draws: int = 20,
                    seed: int = 0, batch_size: int = 512) -> dict[str, Any]:
    """Accuracy (argmax of ``mean_t y``) over ``n_draws`` chips with per-neuron thresholds jittered by
    ``U(-jitter, jitter)``: ``{'mean', 'sd', 'accs', 'nominal'}``."""
    if not (isinstance(n_draws, int) and n_draws >= 1):
        raise ValueError(f"n_draws must be an int >= 1, got {n_draws!r}")
    if not (0.0 <= jitter < 1.0):
        raise ValueError(f"jitter must lie in [0, 1), got {jitter!r}")
    xs = check_counts(xs, cfg.n_in, steps_per_tick=cfg.steps_per_tick)
    rows = tick_rows(xs.shape[1], cfg.steps_per_tick)
    labels = np.asarray(labels)
    if labels.shape != (xs.shape[0],):
        raise ValueError(f"labels must have shape ({xs.shape[0]},), got {labels.shape}")
    tr = ChipTrainer(cfg)
    rng = np.random.default_rng(seed)

    def acc(th_row: np.ndarray | None) -> float:
        hits = 0
        for i in range(0, xs.shape[0], batch_size):
            xb = xs[i:i + batch_size]
            th = None if th_row is None else np.repeat(th_row[None], xb.shape[0], axis=0)
            y = tr.outputs(tr.run(xb, th))[:, rows].mean(axis=1)
            hits += int(np.sum(np.argmax(y, axis=1) == labels[i:i + batch_size]))
        return hits / xs.shape[0]

    accs = [acc(jitter_thresholds(cfg.threshold, jitter, 1, rng)[0]) for _ in range(n_draws)]
    return {"mean": float(np.mean(accs)), "sd": float(np.std(accs)), "accs": accs, "nominal": acc(None)}
