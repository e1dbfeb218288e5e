"""Spiking three-factor actor-critic (Fremaux, Sprekeler & Gerstner 2013) and a non-spiking
linear actor-critic baseline of the same size.

Spiking agent (equations in :mod:`rtsnn.learn.online.ac_kernels`): observations are encoded
by Gaussian place cells firing Poisson spikes; a *critic* population of escape-noise neurons
represents the value ``V = (nu/N) sum_j (Y_j * kappa) + V0`` read from its filtered spike
trains; the continuous TD error ``delta = dV/dt - V/tau_r + r`` is the neuromodulator (third
factor) that gates the kappa-filtered eligibility traces of actor and critic synapses; an
*actor* population with fixed lateral weights chooses the action:

* ``DiscreteReadout``: one population per action, within-population excitation and
  between-population inhibition; the action is the population with most spikes in the
  decision window.
* ``LineReadout`` (1-D continuous, e.g. a torque): neurons with preferred values spread over
  ``[low, high]`` and Mexican-hat lateral weights; the action is the spike-count-weighted mean
  of the preferred values (population vector on a line).
* ``RingReadout`` (a direction): preferred angles on a ring with Mexican-hat lateral weights;
  the action is the angle of the population vector ``sum_j c_j (cos phi_j, sin phi_j)``.

Actor traces (``ActorCriticSettings.actor_trace``): 'policy_gradient' (per-neuron escape-noise
likelihood), 'tdltp' (the paper's PSP-at-post-spike), or 'decision': the window's candidate
``sum_t dp_j/dh_j psp_i`` is injected into the eligibility once the action is chosen, scaled by
the readout's ``decision_signs`` (the policy-gradient factor of the population decision), so
only the taken action's population is credited. Stabilisers used by the control benchmark:
``stationary_start`` (no value transient at an episode start), ``actor_warmup_episodes``
(critic first), ``eta_decay_episodes`` and ``decision_pi_floor``.

The escape-noise neurons are the SRM0 model of the paper (firing intensity
``rho_max sigmoid(h)``), not the runtime's deterministic LIF: the stochastic spikes are the
agent's exploration, and their likelihood is what the 'policy_gradient' trace uses.

Time: each call of :meth:`SpikingActorCritic.act` simulates one decision window (for a
gymnasium task the task's own step, e.g. 20 ms for CartPole) of ``dt_s`` steps; the reward of
the previous action is delivered during that window as the rate ``r / window_s``. When an
episode ends in a terminal state the value drops to 0, which :meth:`end_episode` applies as an
integrated TD error ``r - V``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rtsnn.learn.online import ac_kernels as K
from rtsnn.learn.online.needs import NEEDS_READOUT, describe, readout_parts, readout_problem
from rtsnn.snn.graph import GraphModel

TRACE_MODES = {"tdltp": 0.0, "policy_gradient": 1.0, "expected": 2.0, "decision": 3.0}


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class ActorCriticSettings:
    """Settings of the spiking actor-critic (times in s, rates in Hz)."""

    dt_s: float = 1e-3
    tau_psp_m_s: float = 20e-3  # PSP decay
    tau_psp_s_s: float = 5e-3  # PSP rise
    f_ref_hz: float = 100.0  # PSP normalisation: steady input at f_ref gives psp ~ 1
    tau_k_s: float = 0.2  # kappa decay (value / eligibility filter)
    nu_k_s: float = 0.05  # kappa rise
    tau_r_s: float = 1.0  # reward discount time constant
    rho_max_hz: float = 100.0  # escape-noise maximal firing intensity (actor)
    rho_critic_hz: float | None = None  # the critic's (None: rho_max_hz); higher = less value noise
    n_critic: int = 50
    value_scale: float = 1.0  # nu: V = nu/N sum_j ybar_j + V0  (ybar in Hz)
    value_offset: float = 0.0  # V0
    eta_actor: float = 1e-3
    eta_critic: float = 1e-3
    actor_trace: str = "policy_gradient"
    critic_trace: str = "tdltp"
    w_clip: float = 20.0
    w_init_sd: float = 0.1
    bias_actor: float = -1.0
    bias_critic: float = -1.0
    lateral_exc: float = 0.0
    lateral_inh: float = 0.0
    lateral_width: float = 0.1  # Mexican-hat width (fraction of the ring / line)
    settle_s: float = 0.1  # network settles on the first observation before learning
    stationary_start: bool = False  # begin_episode sets the value filters to their stationary means
    decision_pi_floor: float = 0.0  # 'decision' trace: action probabilities clipped to [f, 1 - f]
    actor_warmup_episodes: int = 0  # the actor does not learn in the first episodes (critic first)
    eta_decay_episodes: float = 0.0  # > 0: eta_actor / (1 + (episode - warmup) / eta_decay_episodes)

    def __post_init__(self) -> None:
        for name in ("dt_s", "tau_psp_m_s", "tau_psp_s_s", "f_ref_hz", "tau_k_s", "nu_k_s", "tau_r_s",
                     "rho_max_hz", "value_scale", "w_clip", "lateral_width"):
            v = getattr(self, name)
            _check(isinstance(v, (int, float)) and math.isfinite(v) and v > 0,
                   f"ActorCriticSettings.{name} must be a finite number > 0, got {v!r}")
        _check(isinstance(self.decision_pi_floor, (int, float)) and 0.0 <= self.decision_pi_floor < 0.5,
               f"ActorCriticSettings.decision_pi_floor must be in [0, 0.5), got {self.decision_pi_floor!r}")
        _check(int(self.actor_warmup_episodes) == self.actor_warmup_episodes and self.actor_warmup_episodes >= 0,
               f"ActorCriticSettings.actor_warmup_episodes must be an integer >= 0, got {self.actor_warmup_episodes!r}")
        _check(isinstance(self.eta_decay_episodes, (int, float)) and math.isfinite(self.eta_decay_episodes)
               and self.eta_decay_episodes >= 0,
               f"ActorCriticSettings.eta_decay_episodes must be a finite number >= 0, got {self.eta_decay_episodes!r}")
        _check(self.rho_critic_hz is None or (isinstance(self.rho_critic_hz, (int, float))
                                             and math.isfinite(self.rho_critic_hz) and self.rho_critic_hz > 0),
               f"ActorCriticSettings.rho_critic_hz must be None or a finite number > 0, got {self.rho_critic_hz!r}")
        for name in ("value_offset", "eta_actor", "eta_critic", "w_init_sd", "bias_actor", "bias_critic",
                     "lateral_exc", "lateral_inh", "settle_s"):
            v = getattr(self, name)
            _check(isinstance(v, (int, float)) and math.isfinite(v),
                   f"ActorCriticSettings.{name} must be a finite number, got {v!r}")
        _check(self.tau_psp_m_s != self.tau_psp_s_s, "ActorCriticSettings: tau_psp_m_s must differ from tau_psp_s_s")
        _check(self.tau_k_s != self.nu_k_s, "ActorCriticSettings: tau_k_s must differ from nu_k_s")
        for name in ("tau_psp_m_s", "tau_psp_s_s", "tau_k_s", "nu_k_s"):
            _check(getattr(self, name) > self.dt_s, f"ActorCriticSettings.{name} must be larger than dt_s "
                                                     f"({self.dt_s} s); are the units seconds?")
        _check(int(self.n_critic) == self.n_critic and self.n_critic >= 1,
               f"ActorCriticSettings.n_critic must be a positive integer, got {self.n_critic!r}")
        for name in ("actor_trace", "critic_trace"):
            _check(getattr(self, name) in TRACE_MODES,
                   f"ActorCriticSettings.{name} must be one of {tuple(TRACE_MODES)}, got {getattr(self, name)!r}")
        _check(self.critic_trace != "decision",
               "ActorCriticSettings.critic_trace cannot be 'decision' (the critic takes no action)")

    def params(self, learn: bool) -> np.ndarray:
        """The packed float64 parameter vector of :func:`ac_kernels.ac_window`."""
        p = np.zeros(K.N_PARAMS)
        dt = self.dt_s
        p[K.P_DT] = dt
        p[K.P_AM] = math.exp(-dt / self.tau_psp_m_s)
        p[K.P_AS] = math.exp(-dt / self.tau_psp_s_s)
        p[K.P_PSPN] = 1.0 / ((self.tau_psp_m_s - self.tau_psp_s_s) * self.f_ref_hz)
        p[K.P_AK] = math.exp(-dt / self.tau_k_s)
        p[K.P_AN] = math.exp(-dt / self.nu_k_s)
        p[K.P_KN] = 1.0 / (self.tau_k_s - self.nu_k_s)
        p[K.P_RHO] = self.rho_max_hz
        p[K.P_RHO_C] = self.rho_max_hz if self.rho_critic_hz is None else self.rho_critic_hz
        p[K.P_NU_N] = self.value_scale / self.n_critic
        p[K.P_V0] = self.value_offset
        p[K.P_TAUR] = self.tau_r_s
        p[K.P_ETA_A] = self.eta_actor
        p[K.P_ETA_C] = self.eta_critic
        p[K.P_MODE_A] = TRACE_MODES[self.actor_trace]
        p[K.P_MODE_C] = TRACE_MODES[self.critic_trace]
        p[K.P_WCLIP] = self.w_clip
        p[K.P_LEARN] = 1.0 if learn else 0.0
        return p

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def eta_actor_at(self, episode: int) -> float:
        """The actor's learning rate in episode ``episode`` (0-based): 0 during the warm-up, then
        ``eta_actor / (1 + (episode - warmup) / eta_decay_episodes)`` (constant if the decay is 0)."""
        k = episode - int(self.actor_warmup_episodes)
        if k < 0:
            return 0.0
        if self.eta_decay_episodes > 0:
            return self.eta_actor / (1.0 + k / self.eta_decay_episodes)
        return self.eta_actor


# ---------------------------------------------------------------------------- encoders
@dataclass
class PlaceCellEncoder:
    """Gaussian place cells per observation dimension (see :func:`ac_kernels.gaussian_rates`)."""

    low: np.ndarray
    high: np.ndarray
    n_per_dim: int = 11
    width: float = 0.1
    rate_max_hz: float = 200.0

    def __post_init__(self) -> None:
        self.low = np.asarray(self.low, np.float64).ravel()
        self.high = np.asarray(self.high, np.float64).ravel()
        _check(self.low.shape == self.high.shape and self.low.size >= 1,
               f"PlaceCellEncoder: low {self.low.shape} and high {self.high.shape} must be equal, non-empty")
        _check(bool(np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high)) and np.all(self.high > self.low)),
               "PlaceCellEncoder: low and high must be finite with high > low in every dimension")
        _check(int(self.n_per_dim) == self.n_per_dim and self.n_per_dim >= 2,
               f"PlaceCellEncoder.n_per_dim must be an integer >= 2, got {self.n_per_dim!r}")
        _check(self.width > 0 and self.rate_max_hz > 0, "PlaceCellEncoder: width and rate_max_hz must be > 0")
        self.n_obs = self.low.size
        self.n_out = self.n_obs * int(self.n_per_dim)
        self.rates = np.zeros(self.n_out)
        self._obs = np.zeros(self.n_obs)

    def encode(self, obs: np.ndarray) -> np.ndarray:
        """Rates (Hz, a view of an internal buffer) for one observation."""
        o = np.asarray(obs, np.float64).ravel()
        _check(o.size == self.n_obs, f"PlaceCellEncoder: observation has {o.size} values, expected {self.n_obs}")
        self._obs[:] = o
        K.gaussian_rates(self._obs, self.low, self.high, int(self.n_per_dim), float(self.width),
                         float(self.rate_max_hz), self.rates)
        return self.rates


# ---------------------------------------------------------------------------- readouts
class DiscreteReadout:
    """One population of ``pop_size`` neurons per action; action = argmax spike count."""

    kind = "discrete"

    def __init__(self, n_actions: int, pop_size: int = 20):
        _check(int(n_actions) == n_actions and n_actions >= 2, f"n_actions must be an integer >= 2, got {n_actions!r}")
        _check(int(pop_size) == pop_size and pop_size >= 1, f"pop_size must be a positive integer, got {pop_size!r}")
        self.n_actions, self.pop_size = int(n_actions), int(pop_size)
        self.n_neurons = self.n_actions * self.pop_size
        self._groups = np.zeros(self.n_actions)

    def lateral(self, exc: float, inh: float, width: float) -> np.ndarray:
        grp = np.repeat(np.arange(self.n_actions), self.pop_size)
        same = grp[:, None] == grp[None, :]
        w = np.where(same, exc / self.pop_size, -inh / self.pop_size)
        np.fill_diagonal(w, 0.0)
        return w

    def decode(self, counts: np.ndarray, rng: np.random.Generator) -> int:
        g = counts.reshape(self.n_actions, self.pop_size).sum(axis=1)
        best = np.flatnonzero(g == g.max())
        return int(best[0] if best.size == 1 else rng.choice(best))

    def decision_signs(self, action: int, expected: np.ndarray, pi_floor: float = 0.0) -> np.ndarray:
        """Per neuron ``beta (1[group_j = a] - pi_group_j)``: the policy-gradient factor
        ``d log pi_a / d L_k`` of the argmax-of-counts decision, with the group counts taken as
        independent Poisson variables of means ``L_k`` (the expected spike counts) and their
        argmax approximated by ``pi = softmax(beta L)``, ``beta = 1.7 / sqrt(sum L)`` (for two
        actions ``Phi((L_a - L_b) / sqrt(L_a + L_b))``, the normal approximation, with
        ``Phi(x) ~ sigmoid(1.7 x)``). Uniform ``pi`` when silent. ``pi_floor`` > 0 clips ``pi``
        to ``[pi_floor, 1 - pi_floor]`` so that a saturated (deterministic) policy still receives
        a gradient and can leave a wrong choice (the gradient of an ``pi_floor``-soft policy)."""
        L = expected.reshape(self.n_actions, self.pop_size).sum(axis=1)
        tot = float(L.sum())
        if tot > 0:
            beta = 1.7 / math.sqrt(tot)
            z = np.exp(beta * (L - L.max()))
            pi = z / z.sum()
        else:
            beta = 1.0
            pi = np.full(self.n_actions, 1.0 / self.n_actions)
        if pi_floor > 0:
            pi = np.clip(pi, pi_floor, 1.0 - pi_floor)
        f = -beta * pi
        f[int(action)] += beta
        return np.repeat(f, self.pop_size)


def _wrap(d: np.ndarray | float, period: float | None):
    return d if period is None else (np.asarray(d) + period / 2) % period - period / 2


def _gaussian_signs(action: float, expected: np.ndarray, preferred: np.ndarray, period: float | None) -> np.ndarray:
    tot = float(expected.sum())
    if tot <= 0:
        return np.zeros(preferred.size)
    if period is None:
        mu = float(expected @ preferred) / tot
    else:
        v = expected @ np.stack([np.cos(preferred), np.sin(preferred)], axis=1)
        mu = math.atan2(v[1], v[0])
    dj = _wrap(preferred - mu, period)
    var = float(expected @ (dj * dj)) / (tot * tot)
    if var <= 0:
        return np.zeros(preferred.size)
    return float(_wrap(action - mu, period)) * dj / (var * tot)


class LineReadout:
    """Preferred values ``linspace(low, high, n)``; action = count-weighted mean (or the
    centre when no neuron spiked)."""

    kind = "line"

    def __init__(self, low: float, high: float, n_neurons: int = 40):
        _check(math.isfinite(low) and math.isfinite(high) and high > low, f"LineReadout: need low < high, got {low}, {high}")
        _check(int(n_neurons) == n_neurons and n_neurons >= 2, f"n_neurons must be an integer >= 2, got {n_neurons!r}")
        self.n_neurons = int(n_neurons)
        self.preferred = np.linspace(low, high, self.n_neurons)
        self.low, self.high = float(low), float(high)

    def lateral(self, exc: float, inh: float, width: float) -> np.ndarray:
        x = np.linspace(0.0, 1.0, self.n_neurons)
        d = x[:, None] - x[None, :]
        w = (exc * np.exp(-d * d / (2 * width * width)) - inh) / self.n_neurons
        np.fill_diagonal(w, 0.0)
        return w

    def decode(self, counts: np.ndarray, rng: np.random.Generator) -> float:
        s = counts.sum()
        if s <= 0:
            return 0.5 * (self.low + self.high)
        return float(counts @ self.preferred / s)

    def decision_signs(self, action: float, expected: np.ndarray, pi_floor: float = 0.0) -> np.ndarray:
        """Gaussian policy-gradient factor: with ``mu = sum L_j x_j / sum L`` (``L`` expected
        counts, ``x`` preferred values) and the Poisson variance of the decoded value
        ``var = sum L_j (x_j - mu)^2 / (sum L)^2``, ``d log N(a; mu, var) / d L_j`` (mean path)
        ``= (a - mu)(x_j - mu) / (var sum L)`` (``pi_floor`` is not used: no saturation)."""
        return _gaussian_signs(float(action), expected, self.preferred, None)


class RingReadout:
    """Preferred angles on a ring; action = angle (rad) of the population vector."""

    kind = "ring"

    def __init__(self, n_neurons: int = 40):
        _check(int(n_neurons) == n_neurons and n_neurons >= 3, f"n_neurons must be an integer >= 3, got {n_neurons!r}")
        self.n_neurons = int(n_neurons)
        self.preferred = 2 * np.pi * np.arange(self.n_neurons) / self.n_neurons
        self._cs = np.stack([np.cos(self.preferred), np.sin(self.preferred)], axis=1)

    def lateral(self, exc: float, inh: float, width: float) -> np.ndarray:
        d = np.abs(self.preferred[:, None] - self.preferred[None, :])
        d = np.minimum(d, 2 * np.pi - d) / (2 * np.pi)
        w = (exc * np.exp(-d * d / (2 * width * width)) - inh) / self.n_neurons
        np.fill_diagonal(w, 0.0)
        return w

    def decode(self, counts: np.ndarray, rng: np.random.Generator) -> float:
        v = counts @ self._cs
        if not np.any(v):
            return float(rng.uniform(-np.pi, np.pi))
        return float(math.atan2(v[1], v[0]))

    def decision_signs(self, action: float, expected: np.ndarray, pi_floor: float = 0.0) -> np.ndarray:
        """As :meth:`LineReadout.decision_signs`, with angle differences wrapped to (-pi, pi]
        around the expected population-vector angle ``mu``."""
        return _gaussian_signs(float(action), expected, self.preferred, 2 * np.pi)


# ---------------------------------------------------------------------------- spiking agent
class SpikingActorCritic:
    """The spiking actor-critic agent; see the module docstring.

    Use: ``begin_episode(obs)``, then per decision ``a = act(obs, reward_of_previous_action)``,
    and ``end_episode(last_reward, terminal)``. ``learning`` switches plasticity on/off.
    Non-finite rewards are counted (``stats()['bad_rewards']``) and treated as 0.
    """

    def __init__(self, encoder: PlaceCellEncoder, readout, settings: ActorCriticSettings | None = None,
                 window_s: float = 0.02, seed: int = 0):
        self.s = settings or ActorCriticSettings()
        self.encoder = encoder
        self.readout = readout
        _check(math.isfinite(window_s) and window_s >= self.s.dt_s,
               f"window_s must be >= dt_s ({self.s.dt_s}), got {window_s!r}")
        self.window_s = float(window_s)
        self.n_steps = max(1, int(round(window_s / self.s.dt_s)))
        self.rng = np.random.default_rng(seed)
        n_in, n_act, n_cri = encoder.n_out, readout.n_neurons, int(self.s.n_critic)
        self.n_in, self.n_act, self.n_cri = n_in, n_act, n_cri
        sd = self.s.w_init_sd
        self.w_act = self.rng.normal(0.0, sd, (n_in, n_act))
        self.w_cri = self.rng.normal(0.0, sd, (n_in, n_cri))
        self.b_act = np.full(n_act, self.s.bias_actor)
        self.b_cri = np.full(n_cri, self.s.bias_critic)
        self.w_lat = readout.lateral(self.s.lateral_exc, self.s.lateral_inh, self.s.lateral_width)
        # state
        self.syn_in = np.zeros((2, n_in))
        self.psp_in = np.zeros(n_in)
        self.syn_act = np.zeros((2, n_act))
        self.psp_act = np.zeros(n_act)
        self.elig_act = np.zeros((2, n_in, n_act))
        self.elig_cri = np.zeros((2, n_in, n_cri))
        self.filt_cri = np.zeros((2, n_cri))
        self.scal = np.zeros(K.N_SCALARS)
        # scratch
        self.scr_act = np.zeros((5, n_act))
        self.scr_cri = np.zeros((5, n_cri))
        self.counts = np.zeros((2, n_act))  # spikes, expected spikes of the window
        self.decision = self.s.actor_trace == "decision"
        if self.decision and not hasattr(readout, "decision_signs"):
            raise ValueError(f"actor_trace 'decision' needs a readout with decision_signs(); "
                             f"{type(readout).__name__} has none")
        self.cand = np.zeros((n_in, n_act) if self.decision else (1, 1))
        self.uniforms = np.zeros((self.n_steps, n_in + n_act + n_cri))
        self._prm_learn = self.s.params(True)
        self._prm_frozen = self.s.params(False)
        self.learning = True
        self.bad_rewards = 0
        self.episodes = 0
        self.windows = 0

    @property
    def n_weights(self) -> int:
        return self.w_act.size + self.w_cri.size

    @property
    def value(self) -> float:
        return float(self.scal[K.S_V])

    def reset_state(self) -> None:
        for a in (self.syn_in, self.psp_in, self.syn_act, self.psp_act, self.elig_act, self.elig_cri,
                  self.filt_cri, self.scal, self.cand):
            a[:] = 0.0
        self.scal[K.S_V] = self.s.value_offset

    def _run(self, rates: np.ndarray, n_steps: int, reward_rate: float, learn: bool) -> None:
        u = self.uniforms[:n_steps]
        self.rng.random(out=u)
        K.ac_window(n_steps, rates, u, reward_rate, self.w_act, self.b_act, self.w_lat, self.w_cri, self.b_cri,
                    self.syn_in, self.psp_in, self.syn_act, self.psp_act, self.elig_act, self.elig_cri,
                    self.filt_cri, self.scr_act, self.scr_cri, self.counts, self.cand, self.scal,
                    self._prm_learn if learn else self._prm_frozen)

    def _clean_reward(self, reward: float) -> float:
        r = float(reward)
        if not math.isfinite(r):
            self.bad_rewards += 1
            return 0.0
        return r

    def begin_episode(self, obs: np.ndarray) -> None:
        """Reset the network and let it settle on ``obs`` for ``settle_s`` without learning; set
        the actor's learning rate of this episode (:meth:`ActorCriticSettings.eta_actor_at`)."""
        self.reset_state()
        self._prm_learn[K.P_ETA_A] = self.s.eta_actor_at(self.episodes)
        rates = self.encoder.encode(obs)
        n_settle = int(round(self.s.settle_s / self.s.dt_s))
        while n_settle > 0:
            n = min(n_settle, self.n_steps)
            self.counts[:] = 0.0
            self._run(rates, n, 0.0, False)
            n_settle -= n
        self.scal[K.S_HAVE_V] = 0.0
        self.cand[:] = 0.0
        if self.s.stationary_start:
            self._stationary_value_filters()

    def _stationary_value_filters(self) -> None:
        """Set the critic's kappa filters to their stationary means for the current inputs,
        ``e1 = p / (1 - a_k)``, ``e2 = p / (1 - a_n)`` (so ``ybar`` = the expected rate), and the
        value accordingly: the episode starts without the filters' charging transient, which
        would otherwise read as a large positive ``dV/dt``."""
        s, prm = self.s, self._prm_learn
        h = self.b_cri + self.psp_in @ self.w_cri
        q = 0.5 * (1.0 + np.tanh(0.5 * h))
        p = 1.0 - np.exp(-prm[K.P_RHO_C] * s.dt_s * q)
        self.filt_cri[0] = p / (1.0 - prm[K.P_AK])
        self.filt_cri[1] = p / (1.0 - prm[K.P_AN])
        ybar_sum = float((self.filt_cri[0] - self.filt_cri[1]).sum())
        self.scal[K.S_V] = prm[K.P_NU_N] * prm[K.P_KN] * ybar_sum + prm[K.P_V0]
        self.scal[K.S_VPREV] = self.scal[K.S_V]

    def act(self, obs: np.ndarray, reward: float = 0.0):
        """One decision window on ``obs`` with the previous action's ``reward`` delivered
        during it; returns the action decoded from the actor's spike counts."""
        r = self._clean_reward(reward)
        rates = self.encoder.encode(obs)
        self.counts[:] = 0.0
        self._run(rates, self.n_steps, r / self.window_s, self.learning)
        self.windows += 1
        a = self.readout.decode(self.counts[0], self.rng)
        if self.decision:
            if self.learning:
                K.inject_decision(self.elig_act, self.cand, self.readout.decision_signs(a, self.counts[1],
                                                                                         self.s.decision_pi_floor))
            else:
                self.cand[:] = 0.0
        return a

    def end_episode(self, reward: float = 0.0, terminal: bool = True) -> None:
        """Apply the TD error of the episode end: ``r - V`` if terminal (the value drops to 0 one
        window after the last decision, so the eligibility traces first decay over that window);
        for a truncated episode nothing (the value would have been bootstrapped)."""
        r = self._clean_reward(reward)
        self.episodes += 1
        if terminal and self.learning:
            s = self.s
            # the terminal state is reached one window after the last decision: the eligibility
            # traces evolve for that window (no new source) before the value drops to 0
            t = self.n_steps * s.dt_s
            for e in (self.elig_act, self.elig_cri):
                e[0] *= math.exp(-t / s.tau_k_s)
                e[1] *= math.exp(-t / s.nu_k_s)
            K.terminal_update(self.w_act, self.elig_act, self.w_cri, self.elig_cri, r - self.value,
                              float(self._prm_learn[K.P_ETA_A]), s.eta_critic, 1.0 / (s.tau_k_s - s.nu_k_s), s.w_clip)

    def stats(self) -> dict[str, Any]:
        n = max(self.scal[K.S_NSTEPS], 1.0)
        return {"episodes": self.episodes, "windows": self.windows, "bad_rewards": self.bad_rewards,
                "value": self.value, "mean_abs_delta": float(self.scal[K.S_DELTA_ABS] / (n * self.s.dt_s)),
                "n_weights": self.n_weights, "learning": self.learning}


# ---------------------------------------------------------------------------- non-spiking baseline
class LinearActorCritic:
    """Non-spiking baseline: the same place-cell features (rates / rate_max), a linear critic
    ``V = w . phi`` and a linear actor (softmax over actions for a discrete task; Gaussian with
    mean ``theta . phi`` and fixed ``sigma`` for a continuous one), trained by one-step TD with
    accumulating eligibility traces (actor-critic with TD(lambda), Sutton & Barto 13.5):

        delta = r + gamma V(phi') - V(phi),  z_w <- gamma lam z_w + phi,
        z_th <- gamma lam z_th + grad log pi(a|phi),  w += a_w delta z_w,  th += a_th delta z_th

    with ``gamma = exp(-window_s / tau_r_s)`` (the same discount as the spiking critic).
    """

    def __init__(self, encoder: PlaceCellEncoder, n_actions: int | None = None,
                 action_low: float | None = None, action_high: float | None = None, *, window_s: float = 0.02,
                 tau_r_s: float = 1.0, lam: float = 0.8, alpha_critic: float = 0.05, alpha_actor: float = 0.05,
                 sigma: float = 0.5, seed: int = 0):
        self.encoder = encoder
        self.discrete = n_actions is not None
        self.n_actions = int(n_actions) if self.discrete else 1
        self.low, self.high = action_low, action_high
        self.gamma = math.exp(-window_s / tau_r_s)
        self.lam, self.a_w, self.a_th, self.sigma = lam, alpha_critic, alpha_actor, sigma
        self.rng = np.random.default_rng(seed)
        n = encoder.n_out
        self.w = np.zeros(n)
        self.th = np.zeros((self.n_actions, n))
        self.z_w = np.zeros(n)
        self.z_th = np.zeros((self.n_actions, n))
        self._phi_prev: np.ndarray | None = None
        self._grad_prev: np.ndarray | None = None
        self.learning = True
        self.bad_rewards = 0

    @property
    def n_weights(self) -> int:
        return self.w.size + self.th.size

    def _phi(self, obs):
        return self.encoder.encode(obs) / self.encoder.rate_max_hz

    def begin_episode(self, obs) -> None:
        self.z_w[:] = 0.0
        self.z_th[:] = 0.0
        self._phi_prev = None

    def _td(self, r: float, v_next: float) -> None:
        phi = self._phi_prev
        delta = r + self.gamma * v_next - float(self.w @ phi)
        self.z_w *= self.gamma * self.lam
        self.z_w += phi
        self.z_th *= self.gamma * self.lam
        self.z_th += self._grad_prev
        self.w += self.a_w * delta * self.z_w
        self.th += self.a_th * delta * self.z_th

    def act(self, obs, reward: float = 0.0):
        r = float(reward)
        if not math.isfinite(r):
            self.bad_rewards += 1
            r = 0.0
        phi = self._phi(obs).copy()
        if self._phi_prev is not None and self.learning:
            self._td(r, float(self.w @ phi))
        if self.discrete:
            logits = self.th @ phi
            p = np.exp(logits - logits.max())
            p /= p.sum()
            a = int(self.rng.choice(self.n_actions, p=p))
            grad = -p[:, None] * phi[None, :]
            grad[a] += phi
        else:
            mu = float(self.th[0] @ phi)
            a_raw = mu + self.sigma * float(self.rng.standard_normal())
            grad = ((a_raw - mu) / self.sigma ** 2 * phi)[None, :]
            a = float(np.clip(a_raw, self.low, self.high))
        self._phi_prev, self._grad_prev = phi, grad
        return a

    def end_episode(self, reward: float = 0.0, terminal: bool = True) -> None:
        if self._phi_prev is not None and self.learning:
            r = float(reward) if math.isfinite(reward) else 0.0
            if terminal:
                self._td(r, 0.0)
            else:
                self._td(r, float(self.w @ self._phi_prev))

    def stats(self) -> dict[str, Any]:
        return {"bad_rewards": self.bad_rewards, "n_weights": self.n_weights}


# ---------------------------------------------------------------------------- session learner
def _rate_scale(model: Any, n_rec: int) -> float | np.ndarray:
    """Factor from the readout trace ``r`` to firing rates (Hz): ``1 / tau_out_s`` for today's
    model (``r = kappa r + z`` holds about ``f tau_out`` spikes); for a graph's ``LI`` trace
    ``y = kappa y + gain z``, per neuron ``1 / (gain tau_s)`` (``1 / tau_s`` where the gain is 0);
    ``1 / 20 ms`` for a backend without a model."""
    if isinstance(model, GraphModel):
        parts = readout_parts(model.graph)
        if parts is None:
            raise ValueError(f"actor_critic: {NEEDS_READOUT}; {describe(model.graph)}")
        li = model.graph.nodes[parts[0]]
        tau, gain = np.asarray(li.tau_s, np.float64), np.asarray(li.gain, np.float64)  # type: ignore[attr-defined]
        scale = 1.0 / (np.where(gain != 0, np.abs(gain), 1.0) * tau)
        if scale.shape != (n_rec,):
            raise ValueError(f"actor_critic: readout trace {parts[0]!r} has {scale.shape[0]} neurons, the backend's "
                             f"features {n_rec}")
        return scale
    constants = getattr(model, "constants", None)
    return 1.0 / float(constants.tau_out_s) if constants is not None else 1.0 / 20e-3


class ActorCriticLearner:
    """Reward-driven learner for the live session (``rtsnn.learners`` entry ``actor_critic``).

    Actor: the backend's own linear readout ``y = w_out^T r + b_out`` (``r`` the hidden spike
    trains filtered by the readout trace) explored with Gaussian noise ``xi ~ N(0, sigma^2)``
    added to the emitted output each tick (``observe`` runs between ``readout`` and ``emit``
    and writes into the readout view). Critic: a population of ``n_critic`` escape-noise
    neurons driven by Poisson spikes at the hidden neurons' rates ``r / tau_out_s``, value
    ``V = (nu/N) sum_j (Y_j * kappa) + V0`` and TD error ``delta = dV/dt - V/tau_r + r(t)``
    (the ac_window kernel with an empty actor). Three-factor update of the readout:
    ``W += eta_actor delta dt (kappa * (xi inv_var r^T))`` (node perturbation). Rewards come
    from ``reward_source`` (a :class:`rtsnn.learn.online.reward.RewardSource`), polled every tick
    and delivered as an impulse of rate ``r / dt``. Weight updates happen inside ``observe``;
    ``wants_apply`` is always False. Non-finite rewards are counted and ignored.
    """

    needs = NEEDS_READOUT

    @staticmethod
    def model_problem(model: Any) -> str | None:
        """None when ``model`` has the ``LI -> Affine -> Output`` readout this learner trains
        (it adapts only the readout, so any layers before the trace may be there), else why not."""
        return readout_problem(model)

    def __init__(self, reward_source=None, n_critic: int = 32, eta_actor: float = 1e-3, eta_critic: float = 1e-3,
                 sigma: float = 0.1, tau_r_s: float = 1.0, value_scale: float = 0.1, value_offset: float = 0.0,
                 w_clip: float = 100.0, seed: int = 0, lr_max: float = 1.0):
        from rtsnn.learn.online.reward import QueueRewardSource

        _check(math.isfinite(sigma) and sigma > 0, f"sigma must be a finite number > 0, got {sigma!r}")
        _check(isinstance(lr_max, (int, float)) and math.isfinite(lr_max) and lr_max > 0,
               f"lr_max must be a finite number > 0, got {lr_max!r}")
        _check(0 <= eta_actor <= lr_max, f"eta_actor {eta_actor!r} is outside [0, lr_max] = [0, {lr_max:g}]")
        self.lr_max = float(lr_max)
        self.reward_source = reward_source if reward_source is not None else QueueRewardSource()
        self.settings_kw = dict(n_critic=n_critic, eta_actor=0.0, eta_critic=eta_critic, tau_r_s=tau_r_s,
                                value_scale=value_scale, value_offset=value_offset, w_clip=w_clip,
                                critic_trace="expected", bias_critic=-1.0)
        self.eta_actor, self.sigma, self.seed = float(eta_actor), float(sigma), int(seed)
        self.learning = True
        self.bad_rewards = 0
        self.rewards = 0
        self.reward_sum = 0.0
        self.ticks = 0
        self.calibrated = True  # the session evaluates R^2 from the first tick

    def attach(self, backend, dt_s: float) -> None:
        s = ActorCriticSettings(dt_s=dt_s, **self.settings_kw)
        self.s = s
        self.dt_s = float(dt_s)
        self._features = backend.features
        n_rec, n_out = backend.n_rec, backend.n_out
        if not hasattr(backend, "readout_weights"):
            raise ValueError("ActorCriticLearner needs a backend with readout_weights() (in-place views of "
                             "w_out, b_out), e.g. numba_cpu")
        self._w_out, self._b_out = backend.readout_weights()
        self._rate_scale = _rate_scale(getattr(backend, "model", None), n_rec)
        self.rng = np.random.default_rng(self.seed)
        n_cri = s.n_critic
        self.rates = np.zeros(n_rec)
        self.w_cri = self.rng.normal(0.0, s.w_init_sd, (n_rec, n_cri))
        self.b_cri = np.full(n_cri, s.bias_critic)
        self._empty = (np.zeros((n_rec, 0)), np.zeros(0), np.zeros((0, 0)), np.zeros((2, 0)), np.zeros(0),
                       np.zeros((2, n_rec, 0)), np.zeros((5, 0)), np.zeros((2, 0)), np.zeros((1, 1)))
        self.syn_in = np.zeros((2, n_rec))
        self.psp_in = np.zeros(n_rec)
        self.elig_cri = np.zeros((2, n_rec, n_cri))
        self.filt_cri = np.zeros((2, n_cri))
        self.scr_cri = np.zeros((5, n_cri))
        self.scal = np.zeros(K.N_SCALARS)
        self.uni = np.zeros((1, n_rec + n_cri))
        self.xi = np.zeros(n_out)
        self.elig_out = np.zeros((2, n_rec + 1, n_out))
        self._prm = s.params(True)
        self._inv_var = 1.0 / self.sigma ** 2
        self.last_delta = 0.0
        self._observe(np.zeros(n_out, np.float32), compile_only=True)  # compile / warm

    def _observe(self, y: np.ndarray, compile_only: bool = False) -> None:
        got = None if compile_only else self.reward_source.poll()  # warming up consumes no reward
        r = 0.0
        if got is not None:
            r = float(got[0])
            if not math.isfinite(r):
                self.bad_rewards += 1
                r = 0.0
            else:
                self.rewards += 1
                self.reward_sum += r
        np.multiply(self._features(), self._rate_scale, out=self.rates)
        self.rng.random(out=self.uni)
        e = self._empty
        v_prev, have = self.scal[K.S_VPREV], self.scal[K.S_HAVE_V]
        self._prm[K.P_LEARN] = 1.0 if (self.learning and not compile_only) else 0.0
        K.ac_window(1, self.rates, self.uni, r / self.dt_s, e[0], e[1], e[2], self.w_cri, self.b_cri, self.syn_in,
                    self.psp_in, e[3], e[4], e[5], self.elig_cri, self.filt_cri, e[6], self.scr_cri, e[7], e[8],
                    self.scal, self._prm)
        v = self.scal[K.S_V]
        delta = (v - v_prev) / self.dt_s - v / self.s.tau_r_s + r / self.dt_s if have else 0.0
        self.last_delta = delta
        scale = self.eta_actor * delta * self.dt_s if (self.learning and not compile_only) else 0.0
        # the update uses the exploration noise of the previous tick (it produced this reward)
        K.perturbation_step(self._features(), self.xi, self.elig_out, self._w_out, self._b_out, self._inv_var,
                            self._prm[K.P_AK], self._prm[K.P_AN], self._prm[K.P_KN], scale, self.s.w_clip)
        if compile_only:
            self.scal[:] = 0.0
            self.elig_out[:] = 0.0
            return
        if self.learning:
            self.rng.standard_normal(out=self.xi)  # in place: nothing allocated per tick
            self.xi *= self.sigma
        else:
            self.xi[:] = 0.0
        y += self.xi  # float64 noise added into the float32 readout view, in place
        self.ticks += 1

    needs_target = False  # the session calls observe every tick, with target None

    def set_reward_source(self, source) -> None:
        """Use ``source`` (a RewardSource: ``poll() -> (reward, t_s) | None``, ``stats()``), e.g.
        the one a session builds from its ``reward:`` config."""
        if not (hasattr(source, "poll") and hasattr(source, "stats")):
            raise ValueError(f"a reward source needs poll() and stats(); got {type(source).__name__}")
        self.reward_source = source

    def observe(self, backend, target: np.ndarray | None) -> None:
        """One tick: poll the reward, step the critic, update the readout, add exploration
        noise to the emitted output (``target`` is not used: learning is from reward alone)."""
        self._observe(backend.readout())

    def prepare(self) -> None:
        return None

    def wants_apply(self) -> bool:
        return False

    def apply(self, backend) -> None:
        return None

    # control messages (a session's control topic, rtsnn.control_messages.apply_control)
    def pause_learning(self) -> None:
        """Stop exploring and learning; the readout keeps its current weights."""
        self.learning = False

    def resume_learning(self) -> None:
        self.learning = True

    def set_learning_rate(self, lr: float) -> None:
        """The actor's rate ``eta_actor`` (the critic keeps its own)."""
        _check(isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr >= 0,
               f"learning rate must be a finite number >= 0, got {lr!r}")
        _check(lr <= self.lr_max, f"actor-critic learning rate {lr:g} is above lr_max {self.lr_max:g} (the "
                                  f"learner's option lr_max sets the bound)")
        self.eta_actor = float(lr)

    def stats(self) -> dict[str, Any]:
        return {"ticks": self.ticks, "rewards": self.rewards, "reward_sum": self.reward_sum,
                "bad_rewards": self.bad_rewards, "value": float(self.scal[K.S_V]), "learning": self.learning,
                "reward_source": self.reward_source.stats()}
