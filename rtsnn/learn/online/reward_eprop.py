"""Reward-based e-prop: an actor-critic whose actor learns with e-prop traces.

The network's readout ``y`` is the mean of a Gaussian policy: the emitted action is
``a_t = y_t + xi_t``, ``xi_t ~ N(0, sigma^2)`` (drawn in place each tick). The critic is the
spiking critic of :class:`rtsnn.learn.online.actor_critic.ActorCriticLearner` (escape-noise
neurons driven at the hidden neurons' rates, value ``V``, continuous TD error
``delta_t = dV/dt - V/tau_r + r_t``). The actor's learning signal is the policy gradient of the
reward-weighted log likelihood, handed to e-prop as its output error::

    err_k(t) = -delta_t dt xi_k(t-1) / sigma^2       (d log N(a | y, sigma^2) / dy = xi / sigma^2;
                                                       delta is a rate: delta dt per tick)
    dW_ji   ~ -lr sum_t sum_k B_jk err_k(t) ebar_ji(t)   (e-prop, feedback B = W_out^T when symmetric)

so the input, recurrent and readout weights all climb ``E[delta log pi]`` (Bellec et al. 2020,
reward-based e-prop; here the TD error gates the readout-filtered eligibility ``ebar``
directly, in place of the paper's separate discount filter of the learning signal). The noise
of tick ``t-1`` is paired with the reward seen at tick ``t`` (the action that earned it).
e-prop sees the error as ``y - y*`` through a target ``y* = y + delta dt xi_prev / sigma^2``, so
every e-prop option (feedback, optimiser, windows, deferral, guards, checkpoints) applies.

Entry point ``rtsnn.learners: reward_eprop``; reward from the session's ``reward:`` section.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rtsnn.learn.online.actor_critic import ActorCriticLearner
from rtsnn.learn.online.eprop import EpropLearner


class RewardEpropLearner:
    """Options: ``sigma`` (exploration SD, output units), critic options ``n_critic``,
    ``eta_critic``, ``tau_r_s``, ``value_scale``, ``value_offset``, ``seed``; every other option
    goes to e-prop (``lr``, ``feedback``, ``optimizer``, ``update_every_ticks``, ...)."""

    needs_target = False  # learns from reward: the session calls observe every tick
    needs = EpropLearner.needs  # e-prop's layer (its readout is the critic's too)

    @staticmethod
    def model_problem(model: Any) -> str | None:
        """None when e-prop can train ``model``'s (last) recurrent layer, else why not."""
        return EpropLearner.model_problem(model)

    def __init__(self, reward_source=None, sigma: float = 0.1, n_critic: int = 32, eta_critic: float = 1e-3,
                 tau_r_s: float = 1.0, value_scale: float = 0.1, value_offset: float = 0.0, seed: int = 0,
                 **eprop_options: Any):
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
        eprop_options.setdefault("optimizer", "gd")
        eprop_options.setdefault("update_every_ticks", 100)
        self.critic = ActorCriticLearner(reward_source=reward_source, n_critic=n_critic, eta_actor=0.0,
                                         eta_critic=eta_critic, sigma=sigma, tau_r_s=tau_r_s,
                                         value_scale=value_scale, value_offset=value_offset, seed=seed)
        self.eprop = EpropLearner(**eprop_options)
        self.sigma = float(sigma)
        self._inv_var = 1.0 / self.sigma ** 2
        self.calibrated = True
        self.ticks = 0

    # -- Learner protocol ---------------------------------------------------------------
    def attach(self, backend: Any, dt_s: float) -> None:
        self.eprop.attach(backend, dt_s)
        self.critic.attach(backend, dt_s)
        self._dt_s = float(dt_s)
        n_out = backend.n_out
        self._xi_prev = np.zeros(n_out)
        self._target = np.zeros(n_out, np.float32)
        self._y = backend.readout()

    def set_reward_source(self, source) -> None:
        self.critic.set_reward_source(source)

    @property
    def reward_source(self):
        return self.critic.reward_source

    def observe(self, backend: Any, target: np.ndarray | None) -> None:
        """One tick: critic step and TD error, new exploration noise added to the emitted
        output, then e-prop with the reward-weighted policy-gradient error."""
        critic = self.critic
        self._xi_prev[:] = critic.xi  # the noise that produced the reward polled now
        critic.observe(backend, None)  # adds the new noise into the readout view in place
        scale = critic.last_delta * self._dt_s * self._inv_var if critic.learning else 0.0
        # y* = (y + xi_new) + delta dt xi_prev / sigma^2, so e-prop's error y_view - y* is the
        # policy-gradient error -delta dt xi_prev / sigma^2
        np.multiply(self._xi_prev, scale, out=self._xi_prev)
        np.add(self._y, self._xi_prev, out=self._target, casting="same_kind")
        self.eprop.observe(backend, self._target)
        self.ticks += 1

    def wants_apply(self) -> bool:
        return self.eprop.wants_apply()

    def prepare(self) -> None:
        self.eprop.prepare()

    def ready(self) -> bool:
        return self.eprop.ready()

    def apply(self, backend: Any) -> None:
        self.eprop.apply(backend)

    # -- control -------------------------------------------------------------------------
    def pause_learning(self) -> None:
        self.critic.pause_learning()
        self.eprop.pause_learning()

    def resume_learning(self) -> None:
        self.critic.resume_learning()
        self.eprop.resume_learning()

    def set_learning_rate(self, lr: float) -> None:
        """The actor's (e-prop) rate; the critic keeps its own."""
        self.eprop.set_learning_rate(lr)

    def close(self) -> None:
        self.eprop.close()

    def stats(self) -> dict[str, Any]:
        c = self.critic.stats()
        return {"ticks": self.ticks, "rewards": c["rewards"], "reward_sum": c["reward_sum"],
                "bad_rewards": c["bad_rewards"], "value": c["value"], "learning": c["learning"],
                "eprop": self.eprop.stats(), "reward_source": c["reward_source"]}
