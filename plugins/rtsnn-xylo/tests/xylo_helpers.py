"""Helpers shared by the plugin's tests: hypothesis strategies for random integer Xylo networks,
and stepping a backend through an input."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from rtsnn_xylo.spec import XyloConfig


@st.composite
def xylo_configs(draw, max_in: int = 4, max_hid: int = 6, max_out: int = 3) -> XyloConfig:
    """Small networks covering the awkward corners: saturation (large weights and shifts),
    dash = 0 and 15, thresholds from 1 to 32767, biases, both synapses, dense and sparse."""
    n_in = draw(st.integers(1, max_in))
    n_hid = draw(st.integers(1, max_hid))
    n_out = draw(st.integers(1, max_out))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    density = draw(st.sampled_from([0.2, 0.6, 1.0]))

    def weights(shape):
        w = rng.integers(-128, 128, shape)
        return np.where(rng.random(shape) < density, w, 0)

    w_rec = weights((n_hid, n_hid, 2))
    w_rec[np.arange(n_hid), np.arange(n_hid)] = 0
    th_log = draw(st.sampled_from([1, 4, 8, 12, 15]))
    threshold = rng.integers(1, 2**th_log + 1, n_hid)
    has_bias = draw(st.booleans())
    return XyloConfig(
        w_in=weights((n_in, n_hid, 2)), w_rec=w_rec, w_out=weights((n_hid, n_out)),
        threshold=np.minimum(threshold, 32767), threshold_out=rng.integers(1, 32768, n_out),
        dash_mem=rng.integers(0, 16, n_hid), dash_syn=rng.integers(0, 16, (n_hid, 2)),
        dash_mem_out=rng.integers(0, 16, n_out), dash_syn_out=rng.integers(0, 16, n_out),
        weight_shift_in=draw(st.integers(0, 7)), weight_shift_rec=draw(st.integers(0, 7)),
        weight_shift_out=draw(st.integers(0, 7)), has_bias=has_bias,
        bias=rng.integers(-2**15, 2**15, n_hid) // draw(st.sampled_from([1, 64, 4096])),
        bias_out=rng.integers(-2**15, 2**15, n_out) // 256)


@st.composite
def inputs(draw, n_in: int, max_t: int = 25) -> np.ndarray:
    T = draw(st.integers(1, max_t))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lam = draw(st.sampled_from([0.1, 1.0, 8.0, 15.0]))
    return np.minimum(rng.poisson(lam, (T, n_in)), 40).astype(np.int64)  # > 15 tests the cap


def run_backend(backend, xs: np.ndarray) -> np.ndarray:
    """Step ``backend`` through ``xs`` (T, n_in); its readout after each step, (T, n_out) float32."""
    out = np.zeros((len(xs), backend.n_out), np.float32)
    for t in range(len(xs)):
        backend.step(xs[t])
        out[t] = backend.readout()
    return out


def readout_rel_error(backend, xs: np.ndarray, w_out: np.ndarray, b_out: np.ndarray) -> float:
    """Step ``backend`` through ``xs`` and return the largest deviation of its readout from the
    float prediction ``features @ w_out + b_out``, relative to the prediction's largest swing
    ``max |features @ w_out|`` (the readout check of the single-layer and the graph backend)."""
    ys, preds = [], []
    for t in range(len(xs)):
        backend.step(xs[t])
        ys.append(backend.readout().copy())
        preds.append(backend.features() @ w_out + b_out)
    ys, preds = np.array(ys), np.array(preds)
    return float(np.abs(ys - preds).max() / (np.abs(preds - b_out).max() + 1e-9))
