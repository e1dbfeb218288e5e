"""The spiking actor-critic and the session learner learn small tasks a non-learning control fails;
bad input is counted, not fatal."""

import math

import numpy as np
import pytest

from rtsnn.envs.cursor import CursorReach
from rtsnn.learn.online import ac_kernels as K
from rtsnn.learn.online.ac_reference import perturbation_step_reference
from rtsnn.learn.online.actor_critic import (ActorCriticLearner, ActorCriticSettings, DiscreteReadout,
                                             LinearActorCritic, LineReadout, PlaceCellEncoder, RingReadout,
                                             SpikingActorCritic)
from rtsnn.learn.online.reward import QueueRewardSource


def _bandit(eta: float, seed: int, n_episodes: int = 150, trace: str = "policy_gradient") -> float:
    """Two-armed bandit (arm 1 pays 1, arm 0 pays 0), one decision per episode; returns the
    fraction of arm-1 choices over the last 50 episodes."""
    enc = PlaceCellEncoder([-1.0], [1.0], n_per_dim=3, width=0.5)
    s = ActorCriticSettings(eta_actor=eta, eta_critic=eta, n_critic=10, settle_s=0.02, critic_trace="expected",
                            actor_trace=trace)
    ag = SpikingActorCritic(enc, DiscreteReadout(2, 10), s, window_s=0.05, seed=seed)
    picks = []
    obs = np.zeros(1)
    for _ in range(n_episodes):
        ag.begin_episode(obs)
        a = ag.act(obs, 0.0)
        picks.append(a)
        ag.end_episode(1.0 if a == 1 else 0.0, terminal=True)
    return float(np.mean(picks[-50:]))


def test_spiking_actor_critic_learns_two_armed_bandit():
    learned = [_bandit(0.05, seed) for seed in (0, 1)]
    control = [_bandit(0.0, seed) for seed in (0, 1)]
    assert min(learned) >= 0.9, learned
    assert max(control) <= 0.75, control


def test_decision_trace_learns_two_armed_bandit():
    """The 'decision' actor trace (eligibility of the chosen action) learns the bandit too; this
    needs the terminal TD error to reach the eligibility one window after the decision."""
    learned = [_bandit(0.05, seed, trace="decision") for seed in (0, 1)]
    control = [_bandit(0.0, seed, trace="decision") for seed in (0, 1)]
    assert min(learned) >= 0.9, learned
    assert max(control) <= 0.75, control


def test_decision_signs_are_policy_gradient_factors():
    d = DiscreteReadout(2, 3)
    f = d.decision_signs(0, np.array([4.0, 4, 4, 4, 4, 4]))  # equal drive: pi = 1/2
    beta = 1.7 / np.sqrt(24.0)
    np.testing.assert_allclose(f, [beta / 2] * 3 + [-beta / 2] * 3)
    f = d.decision_signs(1, np.array([10.0, 10, 10, 0, 0, 0.1]))  # chose the unlikely action: large push
    assert f[3] > 0.9 * 1.7 / np.sqrt(30.1) and f[0] < 0
    assert np.all(d.decision_signs(0, np.zeros(6))[:3] == 0.5)  # silent: uniform pi, beta 1
    line = LineReadout(-1.0, 1.0, 5)
    L = np.array([1.0, 2, 4, 2, 1])  # mean 0
    f = line.decision_signs(0.5, L)
    assert f[4] > 0 and f[0] < 0 and f[2] == 0  # moves the mean towards the taken action
    assert np.all(line.decision_signs(0.0, L) == 0)
    ring = RingReadout(8)
    f = ring.decision_signs(0.3, np.ones(8) + np.eye(8)[0] * 5)  # mean angle 0
    assert f[1] > 0 and f[7] < 0


def test_decision_pi_floor_keeps_a_saturated_policy_learning():
    d = DiscreteReadout(2, 2)
    L = np.array([30.0, 30.0, 0.0, 0.0])  # group 0 always wins: pi_0 ~ 1
    assert np.allclose(d.decision_signs(0, L), 0.0, atol=1e-6)  # no gradient: stuck
    f = d.decision_signs(0, L, pi_floor=0.1)
    beta = 1.7 / np.sqrt(60.0)
    np.testing.assert_allclose(f, [0.1 * beta] * 2 + [-0.1 * beta] * 2)
    with pytest.raises(ValueError, match="decision_pi_floor"):
        ActorCriticSettings(decision_pi_floor=0.5)


def test_stationary_start_removes_the_value_transient():
    """With stationary_start the value at the first decision is already the mean the critic
    settles to; without it the kappa filters are still charging after the 0.1 s settle."""
    def gap(stationary):
        enc = PlaceCellEncoder([-1.0], [1.0], n_per_dim=3, width=0.5)
        s = ActorCriticSettings(n_critic=50, bias_critic=0.0, stationary_start=stationary)
        ag = SpikingActorCritic(enc, DiscreteReadout(2, 4), s, window_s=0.02, seed=3)
        ag.learning = False
        ag.begin_episode(np.zeros(1))
        v0 = ag.value
        vs = [v0]
        for _ in range(100):
            ag.act(np.zeros(1))
            vs.append(ag.value)
        return abs(v0 - np.mean(vs[25:])) / np.mean(vs[25:])
    assert gap(True) < 0.1, gap(True)
    assert gap(False) > 0.2, gap(False)


def test_actor_learning_rate_schedule():
    s = ActorCriticSettings(eta_actor=1e-3, actor_warmup_episodes=10, eta_decay_episodes=100)
    assert s.eta_actor_at(0) == 0.0 and s.eta_actor_at(9) == 0.0
    assert s.eta_actor_at(10) == pytest.approx(1e-3)
    assert s.eta_actor_at(110) == pytest.approx(5e-4)
    assert ActorCriticSettings(eta_actor=2e-3).eta_actor_at(500) == 2e-3
    with pytest.raises(ValueError, match="actor_warmup_episodes"):
        ActorCriticSettings(actor_warmup_episodes=-1)
    with pytest.raises(ValueError, match="eta_decay_episodes"):
        ActorCriticSettings(eta_decay_episodes=float("nan"))
    with pytest.raises(ValueError, match="rho_critic_hz"):
        ActorCriticSettings(rho_critic_hz=0.0)
    with pytest.raises(ValueError, match="critic_trace cannot be 'decision'"):
        ActorCriticSettings(critic_trace="decision")


def test_warmup_keeps_actor_weights_fixed():
    enc = PlaceCellEncoder([-1.0], [1.0], n_per_dim=3)
    s = ActorCriticSettings(n_critic=4, eta_actor=0.1, eta_critic=0.1, actor_warmup_episodes=2, actor_trace="decision")
    ag = SpikingActorCritic(enc, DiscreteReadout(2, 4), s, seed=0)
    w0 = ag.w_act.copy()
    for ep in range(3):
        ag.begin_episode(np.zeros(1))
        for _ in range(5):
            ag.act(np.zeros(1), 1.0)
        ag.end_episode(-1.0, terminal=True)
        if ep < 2:
            assert np.array_equal(ag.w_act, w0)
    assert not np.array_equal(ag.w_act, w0)


def test_nan_reward_is_counted_and_ignored():
    enc = PlaceCellEncoder([-1.0], [1.0], n_per_dim=3)
    ag = SpikingActorCritic(enc, DiscreteReadout(2, 4), ActorCriticSettings(n_critic=4, eta_actor=0.1), seed=0)
    ag.begin_episode(np.zeros(1))
    ag.act(np.zeros(1), float("nan"))
    ag.act(np.zeros(1), float("inf"))
    ag.end_episode(float("nan"), terminal=True)
    assert ag.stats()["bad_rewards"] == 3
    assert np.all(np.isfinite(ag.w_act)) and np.all(np.isfinite(ag.w_cri))
    lin = LinearActorCritic(enc, 2)
    lin.begin_episode(np.zeros(1))
    lin.act(np.zeros(1))
    lin.act(np.zeros(1), float("nan"))
    assert lin.bad_rewards == 1 and np.all(np.isfinite(lin.th))


def test_bad_settings_and_observations_raise_clear_errors():
    with pytest.raises(ValueError, match="eta_actor"):
        ActorCriticSettings(eta_actor=float("nan"))
    with pytest.raises(ValueError, match="actor_trace"):
        ActorCriticSettings(actor_trace="bogus")
    with pytest.raises(ValueError, match="tau_k_s"):
        ActorCriticSettings(tau_k_s=0.5e-3)
    with pytest.raises(ValueError, match="high > low"):
        PlaceCellEncoder([1.0], [0.0])
    enc = PlaceCellEncoder([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="expected 2"):
        enc.encode(np.zeros(3))
    with pytest.raises(ValueError, match="n_actions"):
        DiscreteReadout(1)


def test_readouts_decode_population_vectors():
    rng = np.random.default_rng(0)
    ring = RingReadout(8)
    c = np.zeros(8)
    c[2] = 5.0  # preferred angle pi/2
    assert ring.decode(c, rng) == pytest.approx(math.pi / 2)
    line = LineReadout(-2.0, 2.0, 5)
    c = np.array([0, 0, 0, 1.0, 1.0])
    assert line.decode(c, rng) == pytest.approx(1.5)
    assert line.decode(np.zeros(5), rng) == 0.0
    d = DiscreteReadout(3, 2)
    assert d.decode(np.array([0, 1, 3, 0, 1, 1.0]), rng) == 1
    w = d.lateral(1.0, 2.0, 0.1)
    assert w[0, 1] > 0 and w[0, 2] < 0 and w[0, 0] == 0


def test_ring_agent_learns_cursor_reach_direction():
    """Cursor reaching with a ring actor: reward only on reaching the target. After training,
    reaching takes fewer steps than with plasticity off."""
    def run(eta, n_ep=150, seed=0):
        env = CursorReach(target_distance=0.3, target_radius=0.1, window_s=0.05, max_steps=30, n_targets=2)
        enc = PlaceCellEncoder([-0.6, -0.6], [0.6, 0.6], n_per_dim=5, width=0.25)
        s = ActorCriticSettings(eta_actor=eta, eta_critic=eta, n_critic=10, tau_r_s=0.5, settle_s=0.02,
                                critic_trace="expected", value_scale=0.02)
        ag = SpikingActorCritic(enc, RingReadout(16), s, window_s=0.05, seed=seed)
        steps = []
        for ep in range(n_ep):
            obs, _ = env.reset(seed=seed * 1000 + ep)
            ag.begin_episode(obs)
            r, n = 0.0, 0
            while True:
                obs, r, term, trunc, _ = env.step(ag.act(obs, r))
                n += 1
                if term or trunc:
                    ag.end_episode(r, term)
                    break
            steps.append(n)
        return float(np.mean(steps[-30:]))
    learned, control = run(0.03), run(0.0)
    assert learned < 0.75 * control, (learned, control)


def test_perturbation_step_matches_reference():
    rng = np.random.default_rng(2)
    for scale in (0.0, 0.3):
        r = rng.random(6).astype(np.float32)
        xi = rng.normal(size=2)
        e = rng.normal(size=(2, 7, 2))
        w, b = rng.normal(size=(6, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)
        e2, w2, b2 = e.copy(), w.copy(), b.copy()
        K.perturbation_step(r, xi, e, w, b, 4.0, 0.99, 0.9, 6.0, scale, 1.2)
        perturbation_step_reference(r, xi, e2, w2, b2, 4.0, 0.99, 0.9, 6.0, scale, 1.2)
        np.testing.assert_allclose(e, e2, rtol=1e-12)
        np.testing.assert_allclose(w, w2, rtol=1e-6)
        np.testing.assert_allclose(b, b2, rtol=1e-6)


class _FakeNetwork:
    def __init__(self, n_rec, n_out):
        self._w_out = np.zeros((n_rec, n_out), np.float32)
        self._b_out = np.zeros(n_out, np.float32)


class _FakeBackend:
    """A local adapter with the numba_cpu backend's surface: two alternating hidden patterns."""

    def __init__(self, n_rec=8, n_out=1):
        self.n_in, self.n_rec, self.n_out = 1, n_rec, n_out
        self.network = _FakeNetwork(n_rec, n_out)
        self.r = np.zeros(n_rec, np.float32)
        self.y = np.zeros(n_out, np.float32)
        self.k = 0

        class _M:
            class settings:
                tau_out_s = 20e-3
        self.model = _M

    def step(self, x):
        self.k += 1
        ctx = (self.k // 200) % 2
        self.r[:] = 0.0
        self.r[ctx * 4:(ctx + 1) * 4] = 1.0  # 50 Hz equivalent
        self.y[:] = self.r @ self.network._w_out + self.network._b_out

    def features(self):
        return self.r

    def readout(self):
        return self.y

    def readout_weights(self):
        return self.network._w_out, self.network._b_out


def _session_like(eta_actor, n_ticks=6000, seed=0):
    """Context 0 wants y = +1, context 1 wants y = -1; reward rate -(y - y*)^2 (per s)."""
    be = _FakeBackend()
    q = QueueRewardSource()
    lr = ActorCriticLearner(reward_source=q, eta_actor=eta_actor, eta_critic=1e-3, sigma=0.3, tau_r_s=0.2,
                            value_scale=0.005, value_offset=-0.3, seed=seed)
    lr.attach(be, 1e-3)
    errs = []
    for _ in range(n_ticks):
        be.step(None)
        y = be.readout()
        lr.observe(be, np.zeros(1, np.float32))
        want = 1.0 if (be.k // 200) % 2 == 0 else -1.0
        e = float(y[0]) - want
        errs.append(e * e)
        q.push(-e * e * 1e-3)  # reward rate -(y - y*)^2 per second
    return float(np.mean(errs[-1000:])), lr


def test_session_learner_reduces_error_from_reward_alone_and_ignores_nan():
    learned, lr = _session_like(1e-3)
    control, _ = _session_like(0.0)
    assert learned < 0.9 * control, (learned, control)  # weak but real: see the report
    q = lr.reward_source
    assert not q.push(float("nan"))
    assert q.stats()["bad"] == 1
    assert lr.stats()["ticks"] == 6000


def test_control_messages_pause_resume_and_set_the_actor_rate():
    from rtsnn.control_messages import ControlMessage, apply_control

    be = _FakeBackend()
    lr = ActorCriticLearner(reward_source=QueueRewardSource(), eta_actor=1e-3, sigma=0.3, seed=1)
    lr.attach(be, 1e-3)
    w0 = be.readout_weights()[0].copy()
    assert apply_control(ControlMessage("pause_learning", None, 0.0), lr)
    for _ in range(300):
        be.step(None)
        y = be.readout().copy()
        lr.observe(be, None)
        np.testing.assert_array_equal(be.readout(), y)  # paused: no exploration noise added
        lr.reward_source.push(1.0)
    np.testing.assert_array_equal(be.readout_weights()[0], w0)  # and no weight change
    assert apply_control(ControlMessage("resume_learning", None, 0.0), lr)
    assert apply_control(ControlMessage("set_learning_rate", 5e-3, 0.0), lr) and lr.eta_actor == 5e-3
    for _ in range(300):
        be.step(None)
        lr.observe(be, None)
        lr.reward_source.push(1.0)
    assert np.any(be.readout_weights()[0] != w0)
    with pytest.raises(ValueError, match="finite number >= 0"):
        lr.set_learning_rate(float("nan"))


def test_the_learning_rate_the_control_channel_sets_is_bounded():
    lr = ActorCriticLearner(reward_source=QueueRewardSource(), eta_actor=1e-3, seed=0)
    with pytest.raises(ValueError, match=r"learning rate 1e\+300 is above lr_max 1"):
        lr.set_learning_rate(1e300)
    lr.set_learning_rate(0.5)
    assert lr.eta_actor == 0.5
    with pytest.raises(ValueError, match="outside"):
        ActorCriticLearner(eta_actor=2.0)
    assert ActorCriticLearner(eta_actor=2.0, lr_max=5.0).eta_actor == 2.0
