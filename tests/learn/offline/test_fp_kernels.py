"""FP numba kernels against the plain-numpy references."""

import math

import mpmath
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from rtsnn.learn.offline import fp
from rtsnn.learn.offline import fp_kernels as K
from rtsnn.learn.offline import fp_reference as R

from _fp_nets import fp_case


def _psp_mp(s, alpha, beta):
    """h and h' at 400 digits (mpmath), the definition without cancellation trouble."""
    with mpmath.workdps(400):
        s, a, b = mpmath.mpf(s), mpmath.mpf(alpha), mpmath.mpf(beta)
        if a == b:
            h = s * mpmath.exp(-a * s)
        else:
            h = (mpmath.exp(-a * s) - mpmath.exp(-b * s)) / (b - a)
        return float(h), float(mpmath.exp(-a * s) - b * h)


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-300, 30.0), st.floats(0.05, 5.0),
       st.sampled_from([1.0, 0.999, 1.001, 1 + 1e-9, 0.5, 3.0]))
def test_psp_full_precision_even_when_alpha_near_beta(s, alpha, ratio):
    beta = alpha * ratio
    h, hd = _psp_mp(s, alpha, beta)
    # exp(-beta s) alone is conditioned by beta s (the rounding of the product beta * s)
    rel = 1e-15 * (8.0 + 2.0 * max(alpha, beta) * s)
    assert K.psp(s, alpha, beta) == pytest.approx(h, rel=rel, abs=1e-300)
    assert K.psp_dot(s, alpha, beta) == pytest.approx(hd, rel=10 * rel, abs=1e-15)
    if (abs(ratio - 1) > 0.01 or ratio == 1.0) and s > 1e-3:  # plain definition: no cancellation
        assert R.psp_ref(np.array([s]), alpha, beta)[0] == pytest.approx(h, rel=1e-12, abs=1e-300)


@settings(max_examples=300, deadline=None)
@given(st.floats(-2.0, 0.99), st.floats(-3.0, 6.0), st.floats(0.01, 20.0), st.floats(0.2, 3.0),
       st.sampled_from([1.0, 0.999, 0.5, 2.0]))
def test_first_crossing_is_exact_and_first(v0, i0, s_end, alpha, ratio):
    beta, theta = alpha * ratio, 1.0
    s = K.first_crossing(v0, i0, s_end, alpha, beta, theta)

    def v(t):
        return v0 * np.exp(-beta * t) + i0 * R.psp_ref(np.asarray(t), alpha, beta)

    grid = np.linspace(0.0, s_end, 4001)
    vg = v(grid)
    if s < 0:
        assert np.all(vg < theta + 1e-12)
        return
    assert 0.0 <= s <= s_end
    assert abs(K._v_at(v0, i0, s, alpha, beta) - theta) <= 4e-15 * max(1.0, abs(i0), abs(v0))
    assert np.all(vg[grid < s * (1 - 1e-9)] < theta + 1e-12)


@settings(max_examples=40, deadline=None)
@given(fp_case())
def test_simulator_matches_reference(case):
    net, s, x = case
    got = fp.simulate(net, s, x, max_out_spikes=3)
    order = np.argsort(x, kind="stable")
    keep = np.isfinite(x[order])
    ref = R.simulate_network_ref(x[order][keep], order[keep], list(zip(net.w, net.r)), s.alpha,
                                 s.beta, s.theta, s.t_max, s.max_hidden_spikes, 3)
    for (tg, ng), (tr, nr) in zip(got, ref):
        assert tg.shape == tr.shape
        np.testing.assert_array_equal(ng, nr)
        np.testing.assert_allclose(tg, tr, rtol=0, atol=1e-11)


@settings(max_examples=40, deadline=None)
@given(fp_case())
def test_sparse_rows_match_dense_solve(case):
    net, s, x = case
    spikes, jac, vdot = fp.spike_jacobian(net, s, x, max_out_spikes=3)
    assume(jac.shape[0] > 0)
    order = np.argsort(x, kind="stable")
    keep = np.isfinite(x[order])
    ref = R.spike_jacobian_ref(x[order][keep], order[keep], list(zip(net.w, net.r)), spikes,
                               s.alpha, s.beta, s.theta)
    scale = np.abs(ref).max() + 1e-300
    assert np.abs(jac - ref).max() <= 1e-9 * scale


def test_alpha_equal_beta_limit_is_continuous():
    """alpha == beta uses the limit kernel; spike times are continuous across it."""
    rng = np.random.default_rng(3)
    net = fp.FPNetwork([rng.normal(2.0, 0.5, (3, 4)), rng.normal(1.5, 0.3, (4, 2))])
    x = np.array([0.2, 0.7, 1.1])
    eq = fp.simulate(net, fp.FPSettings(alpha=1.0, beta=1.0, t_max=8.0), x)
    near = fp.simulate(net, fp.FPSettings(alpha=1.0, beta=1.0 + 1e-9, t_max=8.0), x)
    for (a, na), (b, nb) in zip(eq, near):
        np.testing.assert_array_equal(na, nb)
        np.testing.assert_allclose(a, b, atol=1e-7)
    assert sum(len(a) for a, _ in eq) > 0


def test_crossing_needs_no_precision_loss_near_equal_rates():
    # alpha ~ beta: the A/B form would lose ~9 digits here; ours keeps V(f) = theta to ulps
    alpha, beta = 1.0, 1.0 + 1e-9
    s = K.first_crossing(0.0, 3.0, 10.0, alpha, beta, 1.0)
    assert s > 0
    assert math.isclose(K._v_at(0.0, 3.0, s, alpha, beta), 1.0, rel_tol=0, abs_tol=1e-15)
