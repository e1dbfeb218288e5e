"""Plain-numpy references of the kernels in :mod:`rtsnn.snn.kernels` (for tests, not speed).

They follow the equations in the kernels' module docstring literally, with numpy's own
matrix products (so sums may round differently from the kernels by float32 ulps).
"""

from __future__ import annotations

import numpy as np

from rtsnn.snn.params import LayerConstants, NetworkState, Weights


def propagate_reference(src: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``w^T src`` (float32)."""
    return (src.astype(np.float32) @ w).astype(np.float32)


def readout_reference(r: np.ndarray, w_out: np.ndarray, b_out: np.ndarray) -> np.ndarray:
    """``y = w_out^T r + b_out``."""
    return (r @ w_out + b_out).astype(np.float32)


def step_reference(constants: LayerConstants, weights: Weights, state: NetworkState,
                   x: np.ndarray) -> NetworkState:
    """One step from ``state`` with input counts ``x``; returns the new state (no mutation)."""
    f32 = np.float32
    alpha, rho, kappa = f32(constants.alpha), f32(constants.rho), f32(constants.kappa)
    v_th, beta = f32(constants.v_th), f32(constants.beta_adapt)
    z_prev = state.z
    cur = propagate_reference(x, weights.w_in) + propagate_reference(z_prev, weights.w_rec)
    v = alpha * state.v + cur - v_th * z_prev
    if constants.adaptive:
        a = rho * state.a + z_prev
        threshold = v_th + beta * a
    else:
        a = state.a.copy()
        threshold = np.full_like(v, v_th)
    refractory = state.refr > 0
    z = ((v >= threshold) & ~refractory).astype(f32)
    refr = np.where(refractory, state.refr - 1, np.where(z > 0, constants.n_ref, 0)).astype(np.int32)
    r = kappa * state.r + z
    y = readout_reference(r, weights.w_out, weights.b_out)
    return NetworkState(v.astype(f32), a.astype(f32), z, refr, r.astype(f32), y)


def run_reference(constants: LayerConstants, weights: Weights, xs: np.ndarray,
                  state: NetworkState | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run ``xs`` (T, n_in) from ``state`` (zeros if None); return ``(y (T, n_out), z (T, n_rec))``."""
    state = state if state is not None else NetworkState.zeros(weights.n_rec, weights.n_out)
    ys = np.zeros((xs.shape[0], weights.n_out), np.float32)
    zs = np.zeros((xs.shape[0], weights.n_rec), np.float32)
    for t in range(xs.shape[0]):
        state = step_reference(constants, weights, state, xs[t])
        ys[t], zs[t] = state.y, state.z
    return ys, zs
