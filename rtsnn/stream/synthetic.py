"""A simulated motor-cortex user: cosine-tuned Poisson neurons driven by center-out reaches.

Model (REFERENCES section 6, the standard closed-loop simulator):

* Intended velocity ``v(t)`` (a.u./s, 2-D) comes from center-out-and-back reaching: hold
  ``hold_s`` at the center, reach to a target at distance ``radius`` in a uniformly random
  direction, hold ``hold_s`` there, reach back to the center, and so on. Each reach lasts
  ``T`` ~ uniform[``reach_min_s``, ``reach_max_s``] and follows the minimum-jerk profile
  ``x(t) = x0 + (x1 - x0) (10 s^3 - 15 s^4 + 6 s^5)``, ``s = t / T``, so the speed is
  bell-shaped: ``v(t) = (x1 - x0) / T * 30 s^2 (1 - s)^2``, peak ``1.875 radius / T``.
  The velocity thus varies on a ~1 s scale.
* Neuron ``i`` has preferred direction ``pd_i`` (rad, uniform on [0, 2 pi) from ``seed``)
  that rotates with the tuning drift: ``pd_i(t) = pd_i + drift_rad_per_s * t``. Its rate is
  ``rate_i(t) = max(0, baseline_hz + depth_hz * |v| / v_max * cos(angle(v) - pd_i(t)))``
  (Hz) where ``v_max`` defaults to the mean peak speed ``1.875 radius / mean(T)``.
* Scheduled rotation: from ``rotation_at_s`` on, every preferred direction is rotated by
  a further ``rotation_deg`` (a step change, on top of the gradual drift):
  ``pd_i(t) = pd_i + drift_rad_per_s * t + rotation_rad * [t >= rotation_at_s]``.
* Dropout: ``round(dropout_fraction * n_neurons)`` neurons (chosen from ``seed``) have rate 0
  from ``dropout_at_s`` on (from the start when ``dropout_at_s`` is None).
* Spike counts per tick are Poisson(``rate_i * dt_s``), drawn with our own splitmix64
  generator inside the kernels so a seed reproduces a run exactly and ``step`` allocates
  nothing (``reach_seed``, when given, seeds the reaches and spikes separately from the
  tuning, so a second recording of the same user has different movements) (Knuth's product method for means < 30, a rounded normal approximation above).

``SyntheticUserPublisher`` streams it over two real LSL outlets at 1 kHz;
``python -m rtsnn.stream.synthetic`` runs that as a process and ``spawn_synthetic_user``
starts such a process and waits until its streams resolve.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np
from numba import njit

from rtsnn.stream import lslraw

# ---------------------------------------------------------------------------- RNG
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV_2_53 = 1.0 / 9007199254740992.0
_MASK64 = (1 << 64) - 1
POISSON_NORMAL_ABOVE = 30.0


@njit(cache=True, nogil=True)
def next_uniform(rng_state):  # pragma: no cover - compiled
    """splitmix64 step on ``rng_state`` (uint64[1]); returns a float64 uniform in [0, 1)."""
    z = rng_state[0] + _GOLDEN
    rng_state[0] = z
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return (z >> _S11) * _INV_2_53


class SplitMix64Reference:
    """Pure-Python splitmix64, the reference for ``next_uniform``."""

    def __init__(self, state: int):
        self.state = int(state) & _MASK64

    def uniform(self) -> float:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        z = z ^ (z >> 31)
        return (z >> 11) * _INV_2_53


# ---------------------------------------------------------------------------- kernels
@njit(cache=True, nogil=True)
def poisson_counts(rates_hz, dt_s, rng_state, counts_out):  # pragma: no cover - compiled
    """counts_out[i] ~ Poisson(rates_hz[i] * dt_s); no draw where the mean is <= 0."""
    for i in range(rates_hz.shape[0]):
        lam = rates_hz[i] * dt_s
        if lam <= 0.0:
            counts_out[i] = 0.0
        elif lam < POISSON_NORMAL_ABOVE:
            limit = math.exp(-lam)
            k = 0
            p = next_uniform(rng_state)
            while p > limit:
                k += 1
                p *= next_uniform(rng_state)
            counts_out[i] = k
        else:
            u1 = next_uniform(rng_state)
            u2 = next_uniform(rng_state)
            z = math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)
            counts_out[i] = max(0.0, math.floor(lam + math.sqrt(lam) * z + 0.5))


def poisson_counts_reference(rates_hz, dt_s, rng: SplitMix64Reference, counts_out) -> None:
    for i, rate in enumerate(np.asarray(rates_hz, np.float64)):
        lam = float(rate) * dt_s
        if lam <= 0.0:
            counts_out[i] = 0.0
        elif lam < POISSON_NORMAL_ABOVE:
            limit, k, p = math.exp(-lam), 0, rng.uniform()
            while p > limit:
                k += 1
                p *= rng.uniform()
            counts_out[i] = k
        else:
            u1, u2 = rng.uniform(), rng.uniform()
            z = math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)
            counts_out[i] = max(0.0, math.floor(lam + math.sqrt(lam) * z + 0.5))


@njit(cache=True, nogil=True)
def tuning_rates(vx, vy, cos_pd, sin_pd, rotation_rad, baseline_hz, depth_hz, v_max, active,
                 rates_out):  # pragma: no cover - compiled
    """rates_out[i] = max(0, b + m |v|/v_max cos(angle(v) - pd_i - rotation)) where active, else 0.

    Computed as ``b + (m / v_max) * (R(-rotation) v) . (cos pd_i, sin pd_i)``, which is the
    same quantity without an atan2 per neuron."""
    c = math.cos(rotation_rad)
    s = math.sin(rotation_rad)
    wx = c * vx + s * vy
    wy = -s * vx + c * vy
    gain = depth_hz / v_max
    for i in range(rates_out.shape[0]):
        r = baseline_hz + gain * (wx * cos_pd[i] + wy * sin_pd[i])
        rates_out[i] = r if (r > 0.0 and active[i]) else 0.0


def tuning_rates_reference(vx, vy, preferred_rad, rotation_rad, baseline_hz, depth_hz, v_max, active):
    speed = math.hypot(vx, vy)
    angle = math.atan2(vy, vx)
    r = baseline_hz + depth_hz * speed / v_max * np.cos(angle - np.asarray(preferred_rad) - rotation_rad)
    return np.where(np.asarray(active, bool), np.maximum(r, 0.0), 0.0)


# reach state layout (float64[8])
PHASE, T_IN_PHASE, DURATION, X0, Y0, X1, Y1, AT_CENTER = range(8)
HOLD, REACH = 0.0, 1.0


def new_reach_state(hold_s: float) -> np.ndarray:
    """Holding at the center; the first reach starts after ``hold_s``."""
    state = np.zeros(8, np.float64)
    state[PHASE], state[DURATION], state[AT_CENTER] = HOLD, hold_s, 1.0
    return state


@njit(cache=True, nogil=True)
def reach_step(state, rng_state, dt_s, radius, reach_min_s, reach_max_s, hold_s,
               velocity_out):  # pragma: no cover - compiled
    """Write the intended velocity at the current time, then advance the reach process by dt_s."""
    t = state[T_IN_PHASE]
    dur = state[DURATION]
    if state[PHASE] == REACH:
        s = t / dur
        shape = 30.0 * s * s * (1.0 - s) * (1.0 - s) / dur
        velocity_out[0] = (state[X1] - state[X0]) * shape
        velocity_out[1] = (state[Y1] - state[Y0]) * shape
    else:
        velocity_out[0] = 0.0
        velocity_out[1] = 0.0
    t += dt_s
    while t >= dur:
        t -= dur
        if state[PHASE] == REACH:  # arrived: hold at the target (or the center)
            state[PHASE] = HOLD
            state[X0] = state[X1]
            state[Y0] = state[Y1]
            dur = hold_s
        else:  # start the next reach from where we are
            state[PHASE] = REACH
            state[X0] = state[X1]
            state[Y0] = state[Y1]
            if state[AT_CENTER] != 0.0:
                angle = 2.0 * math.pi * next_uniform(rng_state)
                state[X1] = radius * math.cos(angle)
                state[Y1] = radius * math.sin(angle)
                state[AT_CENTER] = 0.0
            else:
                state[X1] = 0.0
                state[Y1] = 0.0
                state[AT_CENTER] = 1.0
            dur = reach_min_s + (reach_max_s - reach_min_s) * next_uniform(rng_state)
        state[DURATION] = dur
    state[T_IN_PHASE] = t


def reach_step_reference(state, rng: SplitMix64Reference, dt_s, radius, reach_min_s, reach_max_s, hold_s,
                         velocity_out) -> None:
    """Plain-Python restatement of ``reach_step`` (same state layout)."""
    phase, t, dur = state[PHASE], state[T_IN_PHASE], state[DURATION]
    start = np.array([state[X0], state[Y0]])
    end = np.array([state[X1], state[Y1]])
    if phase == REACH:
        s = t / dur
        velocity_out[:] = (end - start) / dur * (30.0 * s ** 2 * (1.0 - s) ** 2)
    else:
        velocity_out[:] = 0.0
    t += dt_s
    while t >= dur:
        t -= dur
        state[X0], state[Y0] = state[X1], state[Y1]
        if phase == REACH:
            phase, dur = HOLD, hold_s
        else:
            phase = REACH
            if state[AT_CENTER]:
                angle = 2.0 * math.pi * rng.uniform()
                state[X1], state[Y1], state[AT_CENTER] = radius * math.cos(angle), radius * math.sin(angle), 0.0
            else:
                state[X1], state[Y1], state[AT_CENTER] = 0.0, 0.0, 1.0
            dur = reach_min_s + (reach_max_s - reach_min_s) * rng.uniform()
    state[PHASE], state[T_IN_PHASE], state[DURATION] = phase, t, dur


@njit(cache=True, nogil=True)
def user_step(reach_state, rng_state, dt_s, radius, reach_min_s, reach_max_s, hold_s, cos_pd, sin_pd,
              rotation_rad, baseline_hz, depth_hz, v_max, active, rates, counts_out,
              velocity_out):  # pragma: no cover - compiled
    """One tick: velocity (at the tick start), rates from it, Poisson counts over dt_s."""
    reach_step(reach_state, rng_state, dt_s, radius, reach_min_s, reach_max_s, hold_s, velocity_out)
    tuning_rates(velocity_out[0], velocity_out[1], cos_pd, sin_pd, rotation_rad, baseline_hz, depth_hz,
                 v_max, active, rates)
    poisson_counts(rates, dt_s, rng_state, counts_out)


# ---------------------------------------------------------------------------- the model
class SyntheticUser:
    """The pure model (no LSL). See the module docstring for the equations and units."""

    def __init__(self, n_neurons: int = 96, baseline_hz: float = 10.0, depth_hz: float = 20.0,
                 v_max: float | None = None, radius: float = 1.0, reach_min_s: float = 0.6,
                 reach_max_s: float = 1.0, hold_s: float = 0.2, drift_deg_per_s: float = 0.0,
                 dropout_fraction: float = 0.0, dropout_at_s: float | None = None, seed: int = 0,
                 rotation_deg: float = 0.0, rotation_at_s: float | None = None, reach_seed: int | None = None):
        if int(n_neurons) != n_neurons or n_neurons < 1:
            raise ValueError(f"n_neurons must be a positive integer, got {n_neurons!r}")
        for key, val in (("baseline_hz", baseline_hz), ("depth_hz", depth_hz)):
            if not val >= 0:
                raise ValueError(f"{key} must be >= 0, got {val!r}")
        if not radius > 0:
            raise ValueError(f"radius must be > 0, got {radius!r}")
        if not 0 < reach_min_s <= reach_max_s:
            raise ValueError(f"need 0 < reach_min_s <= reach_max_s, got {reach_min_s!r}, {reach_max_s!r}")
        if not hold_s > 0:
            raise ValueError(f"hold_s must be > 0, got {hold_s!r}")
        if not 0.0 <= dropout_fraction <= 1.0:
            raise ValueError(f"dropout_fraction must be in [0, 1], got {dropout_fraction!r}")
        if dropout_at_s is not None and not dropout_at_s >= 0:
            raise ValueError(f"dropout_at_s must be >= 0 or None, got {dropout_at_s!r}")
        if v_max is not None and not v_max > 0:
            raise ValueError(f"v_max must be > 0 or None, got {v_max!r}")
        if not math.isfinite(rotation_deg):
            raise ValueError(f"rotation_deg must be a finite number, got {rotation_deg!r}")
        if rotation_at_s is not None and not rotation_at_s >= 0:
            raise ValueError(f"rotation_at_s must be >= 0 or None, got {rotation_at_s!r}")
        if reach_seed is not None and (int(reach_seed) != reach_seed or reach_seed < 0):
            raise ValueError(f"reach_seed must be a non-negative integer or None, got {reach_seed!r}")
        self.n_neurons = int(n_neurons)
        self.baseline_hz, self.depth_hz = float(baseline_hz), float(depth_hz)
        self.radius, self.hold_s = float(radius), float(hold_s)
        self.reach_min_s, self.reach_max_s = float(reach_min_s), float(reach_max_s)
        self.v_max = float(v_max) if v_max is not None else 1.875 * self.radius / (0.5 * (reach_min_s + reach_max_s))
        self.drift_deg_per_s = float(drift_deg_per_s)
        self.drift_rad_per_s = math.radians(self.drift_deg_per_s)
        self.dropout_fraction = float(dropout_fraction)
        self.dropout_at_s = 0.0 if dropout_at_s is None else float(dropout_at_s)
        self.seed = int(seed)
        self.rotation_deg = float(rotation_deg)
        self.rotation_rad = math.radians(self.rotation_deg)
        # None: no scheduled rotation (an infinite time never comes)
        self.rotation_at_s = math.inf if rotation_at_s is None else float(rotation_at_s)
        self.reach_seed = None if reach_seed is None else int(reach_seed)

        rng = np.random.default_rng(self.seed)
        self.preferred_rad = rng.uniform(0.0, 2.0 * np.pi, self.n_neurons)
        n_drop = int(round(self.dropout_fraction * self.n_neurons))
        self.dropped = np.zeros(self.n_neurons, np.bool_)
        self.dropped[rng.permutation(self.n_neurons)[:n_drop]] = True
        self._cos_pd = np.cos(self.preferred_rad)
        self._sin_pd = np.sin(self.preferred_rad)
        self._all_active = np.ones(self.n_neurons, np.bool_)
        self._active_after_dropout = ~self.dropped
        self._rng_state = np.array([rng.integers(0, 2**63 - 1)], np.uint64)
        if self.reach_seed is not None:
            self._rng_state[0] = np.random.default_rng([self.seed, self.reach_seed]).integers(0, 2**63 - 1)
        self._reach = new_reach_state(self.hold_s)
        self._rates = np.zeros(self.n_neurons, np.float64)
        self.t_s = 0.0

    def rotation_at(self, t_s: float) -> float:
        """Total rotation of every preferred direction at time ``t_s`` (rad): drift + step."""
        # t_s is a running sum of dt_s: allow for its rounding (as for dropout_at_s)
        step = self.rotation_rad if t_s >= self.rotation_at_s - 1e-9 else 0.0
        return self.drift_rad_per_s * t_s + step

    def preferred_directions_at(self, t_s: float) -> np.ndarray:
        """pd_i(t) (rad, wrapped to [0, 2 pi))."""
        return np.mod(self.preferred_rad + self.rotation_at(t_s), 2.0 * np.pi)

    @property
    def rates_hz(self) -> np.ndarray:
        """The rates used in the last step (Hz); a view."""
        return self._rates

    def step(self, dt_s: float, counts_out: np.ndarray, velocity_out: np.ndarray) -> None:
        """Advance one tick of ``dt_s``: ``counts_out`` float32[n] spike counts,
        ``velocity_out`` float32[2] the intended velocity at the tick start (a.u./s)."""
        t = self.t_s
        # t_s is a running sum of dt_s: allow for its rounding so dropout_at_s = k * dt_s
        # takes effect at step k, not k + 1
        active = self._active_after_dropout if t >= self.dropout_at_s - 1e-9 else self._all_active
        user_step(self._reach, self._rng_state, dt_s, self.radius, self.reach_min_s, self.reach_max_s,
                  self.hold_s, self._cos_pd, self._sin_pd, self.rotation_at(t), self.baseline_hz,
                  self.depth_hz, self.v_max, active, self._rates, counts_out, velocity_out)
        self.t_s = t + dt_s

    def generate(self, duration_s: float, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Run ``round(duration_s / dt_s)`` steps; returns counts float32[T, n] and velocity float32[T, 2]."""
        if not dt_s > 0 or not duration_s > 0:
            raise ValueError(f"need duration_s > 0 and dt_s > 0, got {duration_s!r}, {dt_s!r}")
        n_steps = int(round(duration_s / dt_s))
        counts = np.zeros((n_steps, self.n_neurons), np.float32)
        velocity = np.zeros((n_steps, 2), np.float32)
        for k in range(n_steps):
            self.step(dt_s, counts[k], velocity[k])
        return counts, velocity

    def params(self) -> dict[str, Any]:
        return {"n_neurons": self.n_neurons, "baseline_hz": self.baseline_hz, "depth_hz": self.depth_hz,
                "v_max": self.v_max, "radius": self.radius, "reach_min_s": self.reach_min_s,
                "reach_max_s": self.reach_max_s, "hold_s": self.hold_s,
                "drift_deg_per_s": self.drift_deg_per_s, "dropout_fraction": self.dropout_fraction,
                "dropout_at_s": self.dropout_at_s, "seed": self.seed, "rotation_deg": self.rotation_deg,
                "rotation_at_s": None if math.isinf(self.rotation_at_s) else self.rotation_at_s,
                "reach_seed": self.reach_seed}


# ---------------------------------------------------------------------------- publishing
def _outlet(name: str, type_: str, labels: list[str], unit: str, srate_hz: float, source_id: str,
            params: dict[str, Any]):
    import pylsl

    info = pylsl.StreamInfo(name, type_, len(labels), srate_hz, "float32", source_id)
    desc = info.desc()
    channels = desc.append_child("channels")
    for label in labels:
        ch = channels.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
        ch.append_child_value("type", type_)
    synth = desc.append_child("synthetic_user")
    for key, val in params.items():
        synth.append_child_value(key, str(val))
    return pylsl.StreamOutlet(info, chunk_size=0, max_buffered=10)


def synthetic_streams(prefix: str) -> list[dict[str, str]]:
    """The two outlets a publisher with ``prefix`` creates, in the form of
    ``lsl_streams()`` (:mod:`rtsnn.protocols`): spikes, then velocity."""
    return [{"name": f"{prefix}-spikes", "type": "Spikes", "direction": "out", "source_id": f"{prefix}-spikes"},
            {"name": f"{prefix}-velocity", "type": "Kinematics", "direction": "out",
             "source_id": f"{prefix}-velocity"}]


class SyntheticUserPublisher:
    """Runs a SyntheticUser at ``1/dt_s`` Hz and pushes every tick to two LSL outlets:

    ``<prefix>-spikes`` (type 'Spikes', n float32 counts, labels unit0..unit{n-1}) and
    ``<prefix>-velocity`` (type 'Kinematics', 'vx', 'vy' in a.u./s), both nominal
    ``1/dt_s`` Hz, one sample each per tick stamped with the same ``local_clock()`` at the
    push. Ticks follow absolute ``perf_counter_ns`` deadlines on the monotonic grid
    ``k * dt_s`` (phase 0; sleep, then spin the last
    ~200 us); a late tick catches up immediately, more than ``max_catch_up_s`` behind the
    schedule is skipped (counted in ``skipped_ticks``).

    Use as a thread (``start``, ``stop``, ``join``) or call ``run`` directly;
    ``duration_s=None`` runs until ``stop``. The outlets exist from construction until
    ``close`` (so consumers can resolve them before the first tick).
    """

    def __init__(self, prefix: str, duration_s: float | None = None, seed: int = 0, dt_s: float = 0.001,
                 max_catch_up_s: float = 0.1, **user_kwargs: Any):
        if not prefix or "'" in prefix:
            raise ValueError(f"prefix must be a non-empty string without quotes, got {prefix!r}")
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"duration_s must be > 0 or None, got {duration_s!r}")
        self.prefix = prefix
        self.duration_s = duration_s
        self.dt_s = float(dt_s)
        self.max_catch_up_s = float(max_catch_up_s)
        self.user = SyntheticUser(seed=seed, **user_kwargs)
        # compile (or load) the kernels before the streams appear, on a throwaway user with
        # the same types, so the first tick is on time and the user's own state is untouched
        SyntheticUser(n_neurons=1).step(self.dt_s, np.zeros(1, np.float32), np.zeros(2, np.float32))
        n = self.user.n_neurons
        srate = 1.0 / self.dt_s
        params = self.user.params()
        spk, vel = synthetic_streams(prefix)  # one place names them: the session lists them from it
        self.spikes_name, self.velocity_name = spk["name"], vel["name"]
        self._spikes_outlet = _outlet(spk["name"], spk["type"], [f"unit{i}" for i in range(n)], "count",
                                      srate, spk["source_id"], params)
        self._velocity_outlet = _outlet(vel["name"], vel["type"], ["vx", "vy"], "a.u./s", srate,
                                        vel["source_id"], params)
        self._spikes = lslraw.SamplePusher(self._spikes_outlet.obj, n)
        self._velocity = lslraw.SamplePusher(self._velocity_outlet.obj, 2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.skipped_ticks = 0
        self.push_errors = 0
        self.max_lateness_s = 0.0

    def run(self) -> None:
        from rtsnn.clock import DeadlineClock

        user, spikes, velocity, dt_s = self.user, self._spikes, self._velocity, self.dt_s
        n_ticks = -1 if self.duration_s is None else int(round(self.duration_s / dt_s))
        max_behind_ns = int(self.max_catch_up_s * 1e9)
        clock = DeadlineClock(dt_s)
        clock.start(phase_ns=0)  # on the monotonic grid: see session.tick_phase_us
        stop = self._stop
        local_clock = lslraw.local_clock
        while self.ticks != n_ticks and not stop.is_set():
            late_ns = clock.wait()
            if late_ns > max_behind_ns:
                self.skipped_ticks += clock.skip_to_now()
            elif late_ns * 1e-9 > self.max_lateness_s:
                self.max_lateness_s = late_ns * 1e-9
            user.step(dt_s, spikes.sample, velocity.sample)
            t = local_clock()
            if spikes.push(t) != 0 or velocity.push(t) != 0:
                self.push_errors += 1
            self.ticks += 1
            clock.advance()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("SyntheticUserPublisher already started")
        self._thread = threading.Thread(target=self.run, name=f"synthetic-user[{self.prefix}]", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        """Stop, wait for the thread, and withdraw both streams."""
        self.stop()
        self.join(5.0)
        self._spikes = self._velocity = None  # type: ignore[assignment]
        self._spikes_outlet = self._velocity_outlet = None

    def lsl_streams(self) -> list[dict[str, str]]:
        return synthetic_streams(self.prefix)

    def stats(self) -> dict[str, Any]:
        return {"ticks": self.ticks, "skipped_ticks": self.skipped_ticks, "push_errors": self.push_errors,
                "max_lateness_s": self.max_lateness_s}


# ---------------------------------------------------------------------------- process
_CLI_OPTIONS = ("n_neurons", "baseline_hz", "depth_hz", "drift_deg_per_s", "dropout_fraction", "dropout_at_s",
                "v_max", "radius", "reach_min_s", "reach_max_s", "hold_s", "rotation_deg", "rotation_at_s",
                "reach_seed")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rtsnn.stream.synthetic",
                                description="Publish a simulated motor-cortex user over LSL.")
    p.add_argument("--prefix", required=True, help="streams are <prefix>-spikes and <prefix>-velocity")
    p.add_argument("--duration", type=float, default=None, help="seconds (default: until terminated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-neurons", type=int)
    p.add_argument("--reach-seed", type=int)
    p.add_argument("--parent-fd", type=int, default=None,
                   help="read end of a pipe whose write end the parent holds: stop when it closes "
                        "(the parent exited or was killed)")
    for key in _CLI_OPTIONS[1:-1]:
        p.add_argument("--" + key.replace("_", "-"), type=float)
    return p


def _watch_parent(fd: int, pub: SyntheticUserPublisher) -> None:
    """Stop publishing once the pipe ``fd`` reaches end of file: every write end is closed,
    i.e. the parent is gone, even after ``kill -9`` (no orphan keeps publishing)."""
    def _wait() -> None:
        try:
            while os.read(fd, 64):
                pass
        except OSError:
            pass
        pub.stop()

    threading.Thread(target=_wait, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kwargs = {k: getattr(args, k) for k in _CLI_OPTIONS if getattr(args, k) is not None}
    pub = SyntheticUserPublisher(args.prefix, duration_s=args.duration, seed=args.seed, **kwargs)

    def _terminate(signum, frame):  # noqa: ARG001
        pub.stop()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    if args.parent_fd is not None:
        _watch_parent(args.parent_fd, pub)
    print(f"publishing {pub.spikes_name} and {pub.velocity_name}", flush=True)
    pub.start()
    while pub._thread is not None and pub._thread.is_alive():
        pub.join(0.2)  # the main thread stays responsive to signals
    time.sleep(0.2)  # let consumers receive the last samples before the streams go away
    pub.close()
    return 0


def spawn_synthetic_user(prefix: str, duration_s: float | None = None, seed: int = 0,
                         startup_timeout_s: float = 10.0, **kw: Any) -> subprocess.Popen:
    """Start ``python -m rtsnn.stream.synthetic`` (same interpreter) and return once both of
    its streams resolve. Keyword options are those of ``SyntheticUser`` that the CLI takes
    (``None`` values are left out). Raises RuntimeError with the process's stderr if it dies
    or its streams do not appear within ``startup_timeout_s``. The caller terminates it."""
    import pylsl

    unknown = sorted(set(kw) - set(_CLI_OPTIONS))
    if unknown:
        raise ValueError(f"spawn_synthetic_user: unknown options {unknown}; expected some of {list(_CLI_OPTIONS)}")
    cmd = [sys.executable, "-m", "rtsnn.stream.synthetic", "--prefix", prefix, "--seed", str(int(seed))]
    if duration_s is not None:
        cmd += ["--duration", repr(float(duration_s))]
    for key, val in kw.items():
        if val is not None:
            cmd += ["--" + key.replace("_", "-"), str(val)]
    # stderr goes to a file, not a pipe nobody reads (a full pipe would stall the child)
    err_file = tempfile.TemporaryFile()
    # lifeline: the child stops when this pipe's write end closes, which the kernel does when
    # this process exits in any way (kill -9 included); the write end is not inherited
    life_r, life_w = os.pipe()
    try:
        proc = subprocess.Popen(cmd + ["--parent-fd", str(life_r)], stdout=subprocess.DEVNULL, stderr=err_file,
                                pass_fds=(life_r,))
    except BaseException:
        os.close(life_w)
        raise
    finally:
        os.close(life_r)
    proc.rtsnn_stderr = err_file  # type: ignore[attr-defined]
    proc.rtsnn_lifeline = os.fdopen(life_w, "wb")  # type: ignore[attr-defined]

    def _stderr() -> str:
        err_file.seek(0)
        return err_file.read().decode(errors="replace")[-4000:]

    deadline = time.monotonic() + startup_timeout_s
    pending = [f"{prefix}-spikes", f"{prefix}-velocity"]
    while pending:
        if proc.poll() is not None:
            raise RuntimeError(f"synthetic user exited with code {proc.returncode} before its streams "
                               f"appeared; stderr:\n{_stderr()}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(5)
            raise RuntimeError(f"synthetic user streams {pending} did not appear within {startup_timeout_s:g} s; "
                               f"stderr:\n{_stderr()}")
        if pylsl.resolve_bypred(f"name='{pending[0]}'", 1, 0.2):
            pending.pop(0)
    return proc


if __name__ == "__main__":
    sys.exit(main())
