"""The graph's node kernels (rtsnn/snn/neuron_kernels.py) against their numpy twins, bit for bit:
the spiking kernel under every switch combination (CubaLIF, ALIF, reset in the tick of the
spike, strict threshold, clamping reset) with mixed per-neuron reset modes and refractory
periods, the leaky integrator and the delay line; the branch-free fast path against the
general kernel; the graph's projection kernels (rtsnn/snn/projection_kernels.py); plus
hand-computed values, so the twins cannot agree on a wrong equation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rtsnn.snn import neuron_kernels as NK

F32 = np.float32


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32 if a.dtype == F32 else a.dtype)


def _spiking_setup(rng: np.random.Generator, n: int) -> tuple[dict, dict]:
    """Per-neuron parameters (float32, as GraphNetwork passes them) and a zero state."""
    alpha = np.exp(-1e-3 / rng.uniform(2e-3, 50e-3, n))
    params = {
        "alpha": alpha.astype(F32),
        "alpha_syn": np.exp(-1e-3 / rng.uniform(2e-3, 20e-3, n)).astype(F32),
        "rho": np.exp(-1e-3 / rng.uniform(20e-3, 300e-3, n)).astype(F32),
        "beta": rng.uniform(0, 0.5, n).astype(F32),
        "v_th": rng.uniform(0.5, 1.5, n).astype(F32),
        "gain": rng.uniform(0.5, 2.0, n).astype(F32),
        "leak": ((1 - alpha) * rng.uniform(-0.2, 0.3, n)).astype(F32),
        "v_reset": rng.uniform(-0.3, 0.2, n).astype(F32),
        "reset_zero": (rng.random(n) < 0.5).astype(np.uint8),
        "n_ref": rng.integers(0, 4, n).astype(np.int32),
    }
    state = {"v": np.zeros(n, F32), "isyn": np.zeros(n, F32), "a": np.zeros(n, F32), "z": np.zeros(n, F32),
             "refr": np.zeros(n, np.int32)}
    return params, state


def _spiking_args(cur, s, p, cuba, adaptive, reset_now, strict=False, clamp=False):
    return (cur, s["v"], s["isyn"], s["a"], s["z"], s["refr"], p["alpha"], p["alpha_syn"], p["rho"], p["beta"],
            p["v_th"], p["gain"], p["leak"], p["v_reset"], p["reset_zero"], p["n_ref"], cuba, adaptive, reset_now,
            strict, clamp)


@pytest.mark.parametrize("cuba, adaptive, reset_now, strict, clamp", list(itertools.product([False, True], repeat=5)))
def test_spiking_update_matches_numpy_twin_for_every_switch(cuba, adaptive, reset_now, strict, clamp):
    switches = (cuba, adaptive, reset_now, strict, clamp)
    rng = np.random.default_rng(17 + sum(b << k for k, b in enumerate(switches)))
    n, ticks = 48, 150
    p, s_nb = _spiking_setup(rng, n)
    # thresholds and inputs on a grid of 1/8, so v == v_th happens and strict matters
    p["v_th"] = np.round(p["v_th"] * 8).astype(F32) / F32(8)
    s_np = {k: v.copy() for k, v in s_nb.items()}
    total = 0
    for _ in range(ticks):
        cur = (np.round(rng.standard_normal(n) * 5 + 2) / 8).astype(F32)
        k_nb = NK.spiking_update(*_spiking_args(cur, s_nb, p, *switches))
        k_np = NK.spiking_update_np(*_spiking_args(cur, s_np, p, *switches))
        assert k_nb == k_np
        total += k_nb
        for key in s_nb:
            np.testing.assert_array_equal(_bits(s_nb[key]), _bits(s_np[key]), err_msg=key)
    assert 0.05 * n * ticks < total < 0.8 * n * ticks  # the neurons do spike, and not always
    # switches off leave their state untouched
    if not cuba:
        assert not s_nb["isyn"].any()
    if not adaptive:
        assert not s_nb["a"].any()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.lists(st.booleans(), min_size=5, max_size=5), st.integers(0, 2**32 - 1))
def test_spiking_update_twin_property(n, switches, seed):
    rng = np.random.default_rng(seed)
    p, s_nb = _spiking_setup(rng, n)
    s_np = {k: v.copy() for k, v in s_nb.items()}
    for _ in range(12):
        cur = (rng.standard_normal(n) * rng.uniform(0.1, 2.0)).astype(F32)
        assert NK.spiking_update(*_spiking_args(cur, s_nb, p, *switches)) == \
            NK.spiking_update_np(*_spiking_args(cur, s_np, p, *switches))
        for key in s_nb:
            np.testing.assert_array_equal(_bits(s_nb[key]), _bits(s_np[key]), err_msg=key)


def _one_neuron(**over):
    p = {"alpha": np.array([0.5], F32), "alpha_syn": np.array([0.25], F32), "rho": np.array([0.5], F32),
         "beta": np.array([1.0], F32), "v_th": np.array([1.0], F32), "gain": np.array([1.0], F32),
         "leak": np.array([0.0], F32), "v_reset": np.array([-0.5], F32), "reset_zero": np.array([0], np.uint8),
         "n_ref": np.array([0], np.int32)}
    p.update({k: np.asarray(v, p[k].dtype) for k, v in over.items()})
    s = {"v": np.zeros(1, F32), "isyn": np.zeros(1, F32), "a": np.zeros(1, F32), "z": np.zeros(1, F32),
         "refr": np.zeros(1, np.int32)}
    return p, s


@pytest.mark.parametrize("kernel", [NK.spiking_update, NK.spiking_update_np])
def test_spiking_update_hand_values(kernel):
    """One neuron, alpha 0.5, threshold 1, input 0.75 every tick, worked out by hand."""
    cur = np.array([0.75], F32)
    # subtractive reset at the next tick: v 0.75, 1.125 (spike), then 0.5625 + 0.75 - 1 = 0.3125
    p, s = _one_neuron()
    vs, zs = [], []
    for _ in range(3):
        kernel(*_spiking_args(cur, s, p, False, False, False))
        vs.append(float(s["v"][0]))
        zs.append(float(s["z"][0]))
    assert vs == [0.75, 1.125, 0.3125] and zs == [0, 1, 0]
    # reset to v_reset = -0.5 in the tick of the spike: 0.75, 1.125 -> -0.5, then -0.25 + 0.75 = 0.5
    p, s = _one_neuron(reset_zero=[1])
    vs = []
    for _ in range(3):
        kernel(*_spiking_args(cur, s, p, False, False, True))
        vs.append(float(s["v"][0]))
    assert vs == [0.75, -0.5, 0.5]
    # CubaLIF: i = 0.25 i + 0.75 -> 0.75, 0.9375; v = 0.5 v + i -> 0.75, 1.3125 (spike)
    p, s = _one_neuron()
    kernel(*_spiking_args(cur, s, p, True, False, False))
    kernel(*_spiking_args(cur, s, p, True, False, False))
    assert (float(s["isyn"][0]), float(s["v"][0]), float(s["z"][0])) == (0.9375, 1.3125, 1.0)
    # ALIF (rho 0.5, beta 1), input 0.5, alpha 1: the spike at tick 2 raises the threshold to 2,
    # so v = 1.0 at tick 4 (a spike without adaptation) stays silent; v = 1.5 at tick 5 spikes
    p, s = _one_neuron(alpha=[1.0], v_th=[1.0])
    out = []
    for _ in range(5):
        kernel(*_spiking_args(np.array([0.5], F32), s, p, False, True, False))
        out.append((float(s["v"][0]), float(s["a"][0]), float(s["z"][0])))
    assert out == [(0.5, 0.0, 0.0), (1.0, 0.0, 1.0), (0.5, 1.0, 0.0), (1.0, 0.5, 0.0), (1.5, 0.25, 1.0)]
    # refractory 2 ticks: a spike, then two silent ticks although v stays above threshold
    p, s = _one_neuron(alpha=[1.0], n_ref=[2], v_th=[0.1])
    zs = []
    for _ in range(5):
        kernel(*_spiking_args(np.array([1.0], F32), s, p, False, False, True))
        zs.append(float(s["z"][0]))
    assert zs == [1, 0, 0, 1, 0]
    # strict threshold: v reaching exactly v_th = 1 (0.5 + 0.5) spikes with >=, not with >
    for strict, want in ((False, [0, 1]), (True, [0, 0])):
        p, s = _one_neuron(alpha=[1.0])
        zs = []
        for _ in range(2):
            kernel(*_spiking_args(np.array([0.5], F32), s, p, False, False, False, strict))
            zs.append(float(s["z"][0]))
        assert zs == want
    # clamping zero reset at the next tick: the tick after a spike is v_reset, its input dropped;
    # without clamp it is alpha v_reset + input (0.5 * -0.5 + 0.75 = 0.5)
    for clamp, want in ((False, [0.75, 1.125, 0.5]), (True, [0.75, 1.125, -0.5])):
        p, s = _one_neuron(reset_zero=[1])
        vs = []
        for _ in range(3):
            kernel(*_spiking_args(cur, s, p, False, False, False, False, clamp))
            vs.append(float(s["v"][0]))
        assert vs == want


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 64), st.integers(0, 2**32 - 1))
def test_li_update_matches_twin_and_equation(n, seed):
    rng = np.random.default_rng(seed)
    kappa = rng.uniform(0.5, 0.999, n).astype(F32)
    gain = rng.uniform(-2, 2, n).astype(F32)
    leak = rng.uniform(-0.1, 0.1, n).astype(F32)
    y_nb, y_np = np.zeros(n, F32), np.zeros(n, F32)
    y_ref = np.zeros(n, np.float64)
    for _ in range(20):
        cur = rng.standard_normal(n).astype(F32)
        NK.li_update(cur, y_nb, kappa, gain, leak)
        NK.li_update_np(cur, y_np, kappa, gain, leak)
        y_ref = kappa.astype(np.float64) * y_ref + leak + gain.astype(np.float64) * cur
        np.testing.assert_array_equal(_bits(y_nb), _bits(y_np))
    np.testing.assert_allclose(y_nb, y_ref, rtol=1e-4, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 16), st.integers(0, 9), st.integers(0, 2**32 - 1))
def test_delay_update_matches_twin_and_shifts(n, max_steps, seed):
    rng = np.random.default_rng(seed)
    steps = rng.integers(0, max_steps + 1, n).astype(np.int32)
    depth = int(steps.max()) + 1
    ring_nb, ring_np = np.zeros((depth, n), F32), np.zeros((depth, n), F32)
    head_nb, head_np = np.zeros(1, np.int64), np.zeros(1, np.int64)
    y_nb, y_np = np.zeros(n, F32), np.zeros(n, F32)
    xs = rng.standard_normal((30, n)).astype(F32)
    for t in range(xs.shape[0]):
        NK.delay_update(xs[t], ring_nb, head_nb, steps, y_nb)
        NK.delay_update_np(xs[t], ring_np, head_np, steps, y_np)
        np.testing.assert_array_equal(_bits(y_nb), _bits(y_np))
        assert head_nb[0] == head_np[0]
        want = np.array([xs[t - s, i] if t >= s else 0.0 for i, s in enumerate(steps)], F32)
        np.testing.assert_array_equal(y_nb, want)


# ---------------------------------------------------------------- the shared element, the fast path
def test_every_engine_calls_the_one_spiking_element():
    """The live tick, BPTT's forward pass and e-prop's forward pass import the same function."""
    from rtsnn.learn.offline import bptt_kernels
    from rtsnn.learn.online import eprop_kernels

    assert bptt_kernels.spiking_element is NK.spiking_element
    assert eprop_kernels.spiking_element is NK.spiking_element


def _packed(p: dict, s: dict) -> tuple[np.ndarray, np.ndarray]:
    """The fast kernel's state block (rows v, isyn, a, z) and parameter block from the dicts."""
    st = np.stack([s["v"], s["isyn"], s["a"], s["z"]]).astype(F32)
    blk = np.stack([p[k] for k in ("alpha", "alpha_syn", "rho", "beta", "v_th", "gain", "leak")]).astype(F32)
    return st, blk


def _flags(cuba: bool, adaptive: bool, strict: bool) -> int:
    return NK.F_CUBA * cuba | NK.F_ADAPTIVE * adaptive | NK.F_STRICT * strict


@pytest.mark.parametrize("cuba, adaptive, strict, clamp", list(itertools.product([False, True], repeat=4)))
def test_fast_path_equals_the_general_kernel_for_every_switch(cuba, adaptive, strict, clamp):
    """spiking_update_subtract (subtractive reset at the next tick) gives the bits of
    spiking_update with every reset by subtraction ('next' and 'next_clamp' alike), and of its
    numpy twin, with per-neuron refractory periods; inputs on a 1/8 grid so v == v_th occurs."""
    rng = np.random.default_rng(5 + 16 * cuba + 8 * adaptive + 4 * strict + 2 * clamp)
    n, ticks = 53, 150
    p, s_gen = _spiking_setup(rng, n)
    p["v_th"] = np.round(p["v_th"] * 8).astype(F32) / F32(8)
    p["reset_zero"][:] = 0
    st, blk = _packed(p, s_gen)
    st_np, refr_fast, refr_np = st.copy(), s_gen["refr"].copy(), s_gen["refr"].copy()
    flags = _flags(cuba, adaptive, strict)
    total = refr_max = 0
    for _ in range(ticks):
        cur = (np.round(rng.standard_normal(n) * 5 + 2) / 8).astype(F32)
        k_gen = NK.spiking_update(*_spiking_args(cur, s_gen, p, cuba, adaptive, False, strict, clamp))
        k_fast = NK.spiking_update_subtract(cur, st, refr_fast, p["n_ref"], blk, flags)
        k_np = NK.spiking_update_subtract_np(cur, st_np, refr_np, p["n_ref"], blk, flags)
        assert k_gen == k_fast == k_np
        total += k_fast
        for row, key in enumerate(("v", "isyn", "a", "z")):
            np.testing.assert_array_equal(_bits(st[row]), _bits(s_gen[key]), err_msg=key)
            np.testing.assert_array_equal(_bits(st_np[row]), _bits(s_gen[key]), err_msg=key)
        np.testing.assert_array_equal(refr_fast, s_gen["refr"])
        np.testing.assert_array_equal(refr_np, s_gen["refr"])
        refr_max = max(refr_max, int(refr_fast.max()))
    assert 0.05 * n * ticks < total < 0.8 * n * ticks
    assert refr_max > 0  # refractory periods did gate some neurons


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 70), st.lists(st.booleans(), min_size=3, max_size=3), st.integers(0, 2**32 - 1))
def test_fast_path_property(n, switches, seed):
    rng = np.random.default_rng(seed)
    p, s_gen = _spiking_setup(rng, n)
    p["reset_zero"][:] = 0
    cuba, adaptive, strict = switches
    st_blk, blk = _packed(p, s_gen)
    refr = s_gen["refr"].copy()
    for _ in range(12):
        cur = (rng.standard_normal(n) * rng.uniform(0.1, 2.0)).astype(F32)
        assert NK.spiking_update(*_spiking_args(cur, s_gen, p, cuba, adaptive, False, strict)) == \
            NK.spiking_update_subtract(cur, st_blk, refr, p["n_ref"], blk, _flags(cuba, adaptive, strict))
        for row, key in enumerate(("v", "isyn", "a", "z")):
            np.testing.assert_array_equal(_bits(st_blk[row]), _bits(s_gen[key]), err_msg=key)
        np.testing.assert_array_equal(refr, s_gen["refr"])


def test_fast_path_hand_values():
    """One neuron, alpha 0.5, threshold 1, input 0.75: v 0.75, 1.125 (spike), 0.3125 (as the
    general kernel's hand values); with refractory 1 tick and v_th 0.5 the neuron spikes every
    other tick."""
    p, s = _one_neuron()
    st_blk, blk = _packed(p, s)
    refr = np.zeros(1, np.int32)
    vs, zs = [], []
    for _ in range(3):
        NK.spiking_update_subtract(np.array([0.75], F32), st_blk, refr, p["n_ref"], blk, 0)
        vs.append(float(st_blk[NK.S_V, 0]))
        zs.append(float(st_blk[NK.S_Z, 0]))
    assert vs == [0.75, 1.125, 0.3125] and zs == [0, 1, 0]
    p, s = _one_neuron(v_th=[0.5], n_ref=[1], alpha=[1.0])
    st_blk, blk = _packed(p, s)
    zs = []
    for _ in range(4):
        NK.spiking_update_subtract(np.array([0.75], F32), st_blk, refr, p["n_ref"], blk, 0)
        zs.append(float(st_blk[NK.S_Z, 0]))
    assert zs == [1, 0, 1, 0]


@pytest.mark.parametrize("event, fill, bias", list(itertools.product([False, True], repeat=3)))
def test_project_matches_its_twin_and_counts(event, fill, bias):
    """project = (fill) + W^T src (dense or event) + (bias), the bits of its numpy twin and of
    fill + propagate + bias_into; one count per call in the slot of the form it ran in."""
    from rtsnn.snn import kernels as K
    from rtsnn.snn import projection_kernels as PK

    rng = np.random.default_rng(11 + 4 * event + 2 * fill + bias)
    n_src, n = 37, 29
    w = rng.standard_normal((n_src, n)).astype(F32)
    b = rng.standard_normal(n).astype(F32) if bias else np.zeros(0, F32)
    ctl = np.array([event, fill, bias], np.int64)
    acc_nb = rng.standard_normal(n).astype(F32)
    acc_np, acc_ref = acc_nb.copy(), acc_nb.copy()
    cnt_nb, cnt_np = np.zeros(K.N_COUNTERS, np.int64), np.zeros(K.N_COUNTERS, np.int64)
    for t in range(6):
        src = ((rng.random(n_src) < 0.3) * rng.standard_normal(n_src)).astype(F32)
        PK.project(src, w, acc_nb, b, ctl, cnt_nb)
        PK.project_np(src, w, acc_np, b, ctl, cnt_np)
        if fill:
            NK.fill(acc_ref, F32(0.0))
        (K.propagate_event if event else K.propagate_dense)(src, w, acc_ref)
        if bias:
            NK.bias_into(b, acc_ref)
        np.testing.assert_array_equal(_bits(acc_nb), _bits(acc_np))
        np.testing.assert_array_equal(_bits(acc_nb), _bits(acc_ref))
    slot = K.CNT_EVENT if event else K.CNT_DENSE
    assert cnt_nb[slot] == cnt_np[slot] == 6 and cnt_nb.sum() == cnt_np.sum() == 6
    if fill:  # hand value: one row, src 2, w 0.5, on a filled accumulator
        acc = np.full(1, 7.0, F32)
        PK.project(np.array([2.0], F32), np.array([[0.5]], F32), acc, np.array([0.25], F32),
                   np.array([event, 1, 1], np.int64), np.zeros(3, np.int64))
        assert float(acc[0]) == 1.25


def test_assign_sum_is_fill_then_add():
    from rtsnn.snn import projection_kernels as PK

    src = np.array([-0.0, 0.0, -1.5, 2.25, np.inf], F32)
    acc, ref, acc_np = np.full(5, 9.0, F32), np.full(5, 9.0, F32), np.full(5, 9.0, F32)
    PK.assign_sum(src, acc)
    PK.assign_sum_np(src, acc_np)
    NK.fill(ref, F32(0.0))
    NK.add_into(src, ref)
    np.testing.assert_array_equal(_bits(acc), _bits(ref))
    np.testing.assert_array_equal(_bits(acc_np), _bits(ref))
    assert not np.signbit(acc[0])  # -0 in, +0 out: what 0 + (-0) gives
