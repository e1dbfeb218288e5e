"""The actor-critic numba kernels agree with their plain-numpy references."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rtsnn.learn.online import ac_kernels as K
from rtsnn.learn.online.ac_reference import (ac_window_reference, gaussian_rates_reference,
                                             inject_decision_reference, terminal_update_reference)
from rtsnn.learn.online.actor_critic import ActorCriticSettings, DiscreteReadout


def _state(rng, n_in, n_act, n_cri):
    return dict(
        w_act=rng.normal(0, 1.0, (n_in, n_act)), b_act=rng.normal(-1, 0.5, n_act),
        w_lat=DiscreteReadout(2, n_act // 2).lateral(1.0, 2.0, 0.1) if n_act % 2 == 0 else np.zeros((n_act, n_act)),
        w_cri=rng.normal(0, 1.0, (n_in, n_cri)), b_cri=rng.normal(-1, 0.5, n_cri),
        syn_in=rng.random((2, n_in)), psp_in=np.zeros(n_in), syn_act=rng.random((2, n_act)),
        psp_act=rng.random(n_act), elig_act=rng.normal(0, 0.1, (2, n_in, n_act)),
        elig_cri=rng.normal(0, 0.1, (2, n_in, n_cri)), filt_cri=rng.random((2, n_cri)),
        counts_act=np.zeros((2, n_act)), cand_act=rng.normal(0, 0.1, (n_in, n_act)), scal=np.array([3.0, 1.0, 0.0, 0.0, 0.0, 0.0]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_in=st.integers(1, 12), n_half=st.integers(1, 4),
       n_cri=st.integers(1, 6), n_steps=st.integers(1, 30),
       mode_a=st.sampled_from(["tdltp", "policy_gradient", "expected", "decision"]),
       mode_c=st.sampled_from(["tdltp", "policy_gradient", "expected"]), learn=st.booleans(),
       reward=st.floats(-100, 100), rho_c=st.sampled_from([None, 400.0]))
def test_ac_window_matches_reference(seed, n_in, n_half, n_cri, n_steps, mode_a, mode_c, learn, reward, rho_c):
    rng = np.random.default_rng(seed)
    n_act = 2 * n_half
    s = ActorCriticSettings(eta_actor=0.05, eta_critic=0.03, actor_trace=mode_a, critic_trace=mode_c,
                            w_clip=1.5, value_offset=-2.0, n_critic=n_cri, rho_critic_hz=rho_c)
    prm = s.params(learn)
    rates = rng.uniform(0, 400, n_in)
    uni = rng.random((n_steps, n_in + n_act + n_cri))
    a = _state(rng, n_in, n_act, n_cri)
    b = {k: v.copy() for k, v in a.items()}
    K.ac_window(n_steps, rates, uni, reward, a["w_act"], a["b_act"], a["w_lat"], a["w_cri"], a["b_cri"],
                a["syn_in"], a["psp_in"], a["syn_act"], a["psp_act"], a["elig_act"], a["elig_cri"], a["filt_cri"],
                np.zeros((5, n_act)), np.zeros((5, n_cri)), a["counts_act"], a["cand_act"], a["scal"], prm)
    ac_window_reference(n_steps, rates, uni, reward, b["w_act"], b["b_act"], b["w_lat"], b["w_cri"], b["b_cri"],
                        b["syn_in"], b["psp_in"], b["syn_act"], b["psp_act"], b["elig_act"], b["elig_cri"],
                        b["filt_cri"], b["counts_act"], b["cand_act"], b["scal"], prm)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-9, atol=1e-9, err_msg=k)
    if learn:
        assert a["scal"][K.S_NSTEPS] == n_steps


def test_learning_changes_weights_only_when_on():
    rng = np.random.default_rng(1)
    s = ActorCriticSettings(eta_actor=0.1, eta_critic=0.1, n_critic=4)
    a = _state(rng, 5, 4, 4)
    w0a, w0c = a["w_act"].copy(), a["w_cri"].copy()
    args = lambda prm: (20, rng.uniform(0, 300, 5), rng.random((20, 13)), 10.0, a["w_act"], a["b_act"], a["w_lat"],
                        a["w_cri"], a["b_cri"], a["syn_in"], a["psp_in"], a["syn_act"], a["psp_act"], a["elig_act"],
                        a["elig_cri"], a["filt_cri"], np.zeros((5, 4)), np.zeros((5, 4)), a["counts_act"], a["cand_act"],
                        a["scal"], prm)
    K.ac_window(*args(s.params(False)))
    assert np.array_equal(a["w_act"], w0a) and np.array_equal(a["w_cri"], w0c)
    K.ac_window(*args(s.params(True)))
    assert not np.array_equal(a["w_act"], w0a) and not np.array_equal(a["w_cri"], w0c)


def test_policy_gradient_trace_is_zero_mean():
    """E[(Y - p) g] = 0: with learning off the filtered PG eligibility averages to ~0,
    while TD-LTP's (Y psp) is positive."""
    n_in, n_act, n_cri, n = 3, 2, 1, 4000
    for mode, expect_zero in (("policy_gradient", True), ("tdltp", False)):
        rng = np.random.default_rng(3)
        s = ActorCriticSettings(actor_trace=mode, n_critic=n_cri)
        a = _state(rng, n_in, n_act, n_cri)
        a["w_act"][:] = 0.5
        a["elig_act"][:] = 0.0
        acc = np.zeros((n_in, n_act))
        for _ in range(n // 20):
            K.ac_window(20, np.full(n_in, 200.0), rng.random((20, n_in + n_act + n_cri)), 0.0, a["w_act"], a["b_act"],
                        np.zeros((n_act, n_act)), a["w_cri"], a["b_cri"], a["syn_in"], a["psp_in"], a["syn_act"],
                        a["psp_act"], a["elig_act"], a["elig_cri"], a["filt_cri"], np.zeros((5, n_act)),
                        np.zeros((5, n_cri)), a["counts_act"], a["cand_act"], a["scal"], s.params(False))
            acc += a["elig_act"][0] - a["elig_act"][1]
        m = acc.mean() / (n // 20)
        if expect_zero:
            assert abs(m) < 0.05, m
        else:
            assert m > 0.2, m


@settings(max_examples=40, deadline=None)
@given(obs=st.lists(st.floats(-10, 10) | st.just(float("nan")), min_size=1, max_size=5),
       n_per_dim=st.integers(2, 9), width=st.floats(0.02, 1.0))
def test_gaussian_rates_matches_reference(obs, n_per_dim, width):
    obs = np.array(obs)
    low, high = np.full(obs.size, -3.0), np.full(obs.size, 4.0)
    out = np.zeros(obs.size * n_per_dim)
    K.gaussian_rates(obs, low, high, n_per_dim, width, 150.0, out)
    np.testing.assert_allclose(out, gaussian_rates_reference(obs, low, high, n_per_dim, width, 150.0), rtol=1e-12)
    assert np.all(np.isfinite(out))


def test_terminal_update_matches_reference():
    rng = np.random.default_rng(5)
    wa, ea, wc, ec = rng.normal(size=(4, 3)), rng.normal(size=(2, 4, 3)), rng.normal(size=(4, 2)), rng.normal(size=(2, 4, 2))
    wa2, wc2 = wa.copy(), wc.copy()
    K.terminal_update(wa, ea, wc, ec, -7.0, 0.1, 0.2, 6.0, 1.0)
    terminal_update_reference(wa2, ea, wc2, ec, -7.0, 0.1, 0.2, 6.0, 1.0)
    np.testing.assert_allclose(wa, wa2, rtol=1e-12)
    np.testing.assert_allclose(wc, wc2, rtol=1e-12)
    assert np.abs(wa).max() <= 1.0


def test_decision_trace_accumulates_candidate_not_eligibility():
    """'decision' mode: the window's source dp/dh psp goes into the candidate (positive, as
    dp/dh > 0 and psp >= 0) while the eligibility only decays; inject_decision then moves
    sign_j cand_ij into both filter stages and clears the candidate (kernel == reference)."""
    rng = np.random.default_rng(7)
    n_in, n_act, n_cri = 4, 4, 2
    s = ActorCriticSettings(actor_trace="decision", n_critic=n_cri)
    a = _state(rng, n_in, n_act, n_cri)
    a["cand_act"][:] = 0.0
    e0 = a["elig_act"].copy()
    K.ac_window(10, np.full(n_in, 200.0), rng.random((10, n_in + n_act + n_cri)), 0.0, a["w_act"], a["b_act"],
                a["w_lat"], a["w_cri"], a["b_cri"], a["syn_in"], a["psp_in"], a["syn_act"], a["psp_act"],
                a["elig_act"], a["elig_cri"], a["filt_cri"], np.zeros((5, n_act)), np.zeros((5, n_cri)),
                a["counts_act"], a["cand_act"], a["scal"], s.params(False))
    p = s.params(False)
    np.testing.assert_allclose(a["elig_act"][0], e0[0] * p[K.P_AK] ** 10, rtol=1e-12)
    np.testing.assert_allclose(a["elig_act"][1], e0[1] * p[K.P_AN] ** 10, rtol=1e-12)
    assert np.all(a["cand_act"] > 0)
    assert np.all(a["counts_act"][1] > 0) and np.all(a["counts_act"][1] < 10)
    sign = np.array([0.5, -0.5, 0.2, -0.2])
    e_k, c_k = a["elig_act"].copy(), a["cand_act"].copy()
    e_r, c_r = e_k.copy(), c_k.copy()
    K.inject_decision(e_k, c_k, sign)
    inject_decision_reference(e_r, c_r, sign)
    np.testing.assert_allclose(e_k, e_r, rtol=1e-12)
    assert not c_k.any() and not c_r.any()
    np.testing.assert_allclose(e_k[0] - a["elig_act"][0], a["cand_act"] * sign[None, :], rtol=1e-12)
