"""Closed-loop decoder adaptation under drift: replay loop, metrics, and the drift demo.

* :func:`replay` runs the session's per-tick learning path offline, tick by tick, on a
  recorded (or generated) input/target sequence: ``backend.step(x)``, ``y = backend.readout()``
  (recorded *before* the learner sees the tick, so every decoded sample is a prediction made
  without that tick's target), ``learner.observe(backend, target)``, and when the learner
  ``wants_apply()``: ``prepare()`` then ``apply(backend)`` between two ticks (in a session the
  I/O thread prepares while ticks continue; here the update lands at the tick boundary where it
  was requested, i.e. a faithful replay with zero I/O-thread delay).
* :func:`windowed_r2` and :func:`recovery_time_s` turn the decoded trace into the adaptation
  metrics: ``R^2 = 1 - SS_res / SS_tot`` per output dimension over a window, averaged over
  dimensions (the session's own definition, :func:`rtsnn.runtime.session.r2_from_acc`).
* :class:`RidgeThenEpropLearner` (entry point ``ridge_then_eprop``) calibrates the readout
  by ridge regression first (the demo's decoder) and then adapts the whole network with e-prop
  from the teaching signal; :func:`drift_demo_config` turns the demo config into the drift demo.
* :class:`CursorReward` is the reward adapter of the reward-only variant: the decoded velocity
  drives a cursor from the start of each of the user's reaches; reward 1 when it enters the
  reach's target (once per reach), optionally plus a dense progress term.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable

import numpy as np


# ---------------------------------------------------------------------------- metrics
def r2_score(y: np.ndarray, target: np.ndarray, target_var: np.ndarray | None = None) -> float:
    """Mean over output dimensions of ``1 - sum (y - t)^2 / sum (t - mean t)^2``; NaN when the
    target does not vary in any dimension. With ``target_var`` (per dimension) the denominator
    is ``n * target_var`` instead: the variance of a whole recording, which keeps short windows
    (a few reaches, perhaps mostly along one axis) from giving erratic values."""
    y = np.asarray(y, np.float64)
    t = np.asarray(target, np.float64)
    if y.shape != t.shape or y.ndim != 2:
        raise ValueError(f"r2_score: y and target must be 2-D arrays of one shape, got {y.shape} and {t.shape}")
    if target_var is None:
        ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    else:
        ss_tot = len(t) * np.asarray(target_var, np.float64)
    ss_res = np.sum((y - t) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, np.nan)
    return float(np.nanmean(r2)) if np.any(np.isfinite(r2)) else float("nan")


def windowed_r2(y: np.ndarray, target: np.ndarray, window_ticks: int, hop_ticks: int | None = None,
                target_var: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """R^2 over windows of ``window_ticks`` every ``hop_ticks`` (default: the window);
    returns ``(end_tick, r2)`` with ``end_tick`` the index one past each window."""
    if int(window_ticks) != window_ticks or window_ticks < 2:
        raise ValueError(f"window_ticks must be an integer >= 2, got {window_ticks!r}")
    hop = int(hop_ticks or window_ticks)
    if hop < 1:
        raise ValueError(f"hop_ticks must be >= 1, got {hop_ticks!r}")
    ends = np.arange(int(window_ticks), len(y) + 1, hop)
    return ends, np.array([r2_score(y[e - window_ticks:e], target[e - window_ticks:e], target_var) for e in ends])


def recovery_time_s(ends: np.ndarray, r2: np.ndarray, event_tick: int, reference_r2: float, dt_s: float,
                    window_ticks: int, fraction: float = 0.9, until_tick: int | None = None) -> float | None:
    """Seconds from ``event_tick`` until the first window lying wholly after the event (and
    ending before ``until_tick``) whose R^2 regains ``fraction * reference_r2``; the time is
    measured to that window's end. None if it never does or ``reference_r2 <= 0``."""
    if not (np.isfinite(reference_r2) and reference_r2 > 0):
        return None  # nothing to regain
    want = fraction * reference_r2
    for e, v in zip(ends, r2):
        if until_tick is not None and e > until_tick:
            break
        if e - window_ticks < event_tick:
            continue
        if np.isfinite(v) and v >= want:
            return float((e - event_tick) * dt_s)
    return None


# ---------------------------------------------------------------------------- replay
def replay(backend: Any, learner: Any | None, inputs: np.ndarray | Callable[[int, np.ndarray], None],
           targets: np.ndarray, n_ticks: int | None = None, on_tick: Callable[[int, np.ndarray], None] | None = None,
           learn: bool = True) -> dict[str, Any]:
    """Run the tick loop offline (see the module docstring). ``inputs`` float32[T, n_in] or a
    callable ``fill(k, x_out)`` writing tick ``k``'s input spikes; ``targets`` float32[T, n_out]
    (the teaching signal handed to learners with ``needs_target``); ``on_tick(k, y)`` runs after
    the readout and before the learner (e.g. a reward adapter). Returns ``y`` float32[T, n_out]
    (decoded before learning from that tick) and counters."""
    n = int(n_ticks if n_ticks is not None else len(targets))
    if len(targets) < n:
        raise ValueError(f"replay: targets has {len(targets)} rows but {n} ticks were asked for")
    if not callable(inputs) and len(inputs) < n:
        raise ValueError(f"replay: inputs has {len(inputs)} rows but {n} ticks were asked for")
    x = np.zeros(backend.n_in, np.float32)
    ys = np.zeros((n, backend.n_out), np.float32)
    tgt = np.zeros(backend.n_out, np.float32)
    needs_target = learner is not None and getattr(learner, "needs_target", True)
    applied = 0
    for k in range(n):
        if callable(inputs):
            inputs(k, x)
        else:
            x[:] = inputs[k]
        backend.step(x)
        y = backend.readout()
        ys[k] = y
        if on_tick is not None:
            on_tick(k, y)
        if learner is None or not learn:
            continue
        if needs_target:
            tgt[:] = targets[k]
            learner.observe(backend, tgt)
        else:
            learner.observe(backend, None)
        if learner.wants_apply():
            learner.prepare()
            if getattr(learner, "ready", lambda: True)():
                learner.apply(backend)
                applied += 1
    return {"y": ys, "applied": applied}


# ---------------------------------------------------------------------------- reward adapter
class CursorReward:
    """Cursor task driven by the decoded velocity (the reward of the reward-only variant).

    At the start of each of the user's reaches (``reach_start(k)`` true) the cursor is placed at
    the reach's start and the reach's target is taken from ``target_of(k)``; every tick it moves
    by ``gain * y * dt_s``. Reward: ``hit_reward`` once when ``|target - cursor| <
    target_radius`` during a reach; plus, if ``progress_gain > 0``, ``progress_gain`` times the
    decrease of the distance to the target that tick (dense shaping). Rewards go to
    ``sink(r)`` (e.g. a QueueRewardSource's ``push``), only when non-zero.
    """

    def __init__(self, sink: Callable[[float], Any], dt_s: float, target_radius: float = 0.2, gain: float = 1.0,
                 hit_reward: float = 1.0, progress_gain: float = 0.0):
        if not (dt_s > 0 and target_radius > 0 and gain > 0 and hit_reward >= 0 and progress_gain >= 0):
            raise ValueError("CursorReward: need dt_s, target_radius, gain > 0 and hit_reward, progress_gain >= 0")
        self.sink, self.dt_s, self.radius, self.gain = sink, float(dt_s), float(target_radius), float(gain)
        self.hit_reward, self.progress_gain = float(hit_reward), float(progress_gain)
        self.cursor = np.zeros(2)
        self.target = np.zeros(2)
        self.active = False
        self.hits = 0
        self.reaches = 0
        self.reward_sum = 0.0

    def start_reach(self, start: np.ndarray, target: np.ndarray) -> None:
        self.cursor[:] = start
        self.target[:] = target
        self.active = True
        self.reaches += 1

    def end_reach(self) -> None:
        self.active = False

    def step(self, y: np.ndarray) -> float:
        if not self.active:
            return 0.0
        d0 = math.hypot(*(self.target - self.cursor))
        self.cursor += self.gain * self.dt_s * np.asarray(y[:2], np.float64)
        d1 = math.hypot(*(self.target - self.cursor))
        r = self.progress_gain * (d0 - d1)
        if d1 < self.radius:
            r += self.hit_reward
            self.hits += 1
            self.active = False
        if r != 0.0:
            self.sink(r)
            self.reward_sum += r
        return r


# ---------------------------------------------------------------------------- calibrate, then e-prop
class RidgeThenEpropLearner:
    """Ridge readout calibration (the demo's decoder) followed by e-prop adaptation.

    ``calibration_s`` and ``ridge`` go to :class:`RidgeReadoutLearner`; every other option to
    :class:`rtsnn.learn.online.eprop.EpropLearner`. e-prop is attached (its weight masters are
    copied from the network) right after the ridge readout is installed, so it adapts the
    calibrated decoder. ``calibrated`` gates the session's R^2 as for the ridge learner.
    """

    needs_target = True

    @staticmethod
    def model_problem(model: Any) -> str | None:
        """None when both phases can run on ``model`` (e-prop's need includes the ridge
        readout's), else why not."""
        from rtsnn.learn.online.eprop import EpropLearner

        return EpropLearner.model_problem(model)

    def __init__(self, calibration_s: float = 20.0, ridge: float = 1e-3, **eprop_options: Any):
        from rtsnn.learn.online.eprop import EpropLearner
        from rtsnn.learn.online.ridge_readout import RidgeReadoutLearner

        self.ridge_learner = RidgeReadoutLearner(calibration_s=calibration_s, ridge=ridge)
        self.eprop = EpropLearner(**eprop_options)
        self._backend = None
        self._dt_s = 0.0
        self.adapting = False

    @property
    def calibrated(self) -> bool:
        return self.ridge_learner.calibrated

    def attach(self, backend: Any, dt_s: float) -> None:
        self._backend, self._dt_s = backend, dt_s
        self.ridge_learner.attach(backend, dt_s)

    def observe(self, backend: Any, target: np.ndarray | None) -> None:
        if self.adapting:
            self.eprop.observe(backend, target)
        else:
            self.ridge_learner.observe(backend, target)

    def wants_apply(self) -> bool:
        return self.eprop.wants_apply() if self.adapting else self.ridge_learner.wants_apply()

    def prepare(self) -> None:
        (self.eprop if self.adapting else self.ridge_learner).prepare()

    def ready(self) -> bool:
        return self.eprop.ready() if self.adapting else self.ridge_learner.ready()

    def apply(self, backend: Any) -> None:
        if self.adapting:
            self.eprop.apply(backend)
            return
        self.ridge_learner.apply(backend)
        if self.ridge_learner.calibrated:
            self.eprop.attach(backend, self._dt_s)  # masters = the calibrated weights
            self.adapting = True

    # control messages (pause / resume / learning rate) go to e-prop
    def pause(self) -> None:
        if self.adapting:
            self.eprop.pause()

    def resume(self) -> None:
        if self.adapting:
            self.eprop.resume()

    def set_lr(self, lr: float) -> None:
        if not self.adapting:
            raise ValueError("ridge_then_eprop: the learning rate can be set once calibration is done")
        self.eprop.set_lr(lr)

    # the names control messages use (rtsnn.control_messages.apply_control)
    pause_learning = pause
    resume_learning = resume
    set_learning_rate = set_lr

    def close(self) -> None:
        if self.adapting:
            self.eprop.close()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"phase": "eprop" if self.adapting else "calibration",
                               "ridge": self.ridge_learner.stats()}
        if self.adapting:
            out["eprop"] = self.eprop.stats()
        return out


# ---------------------------------------------------------------------------- the drift demo
DRIFT_SCHEDULE = {"rotation_deg": 30.0, "rotation_at_s": 120.0, "dropout_fraction": 0.2, "dropout_at_s": 240.0}
DRIFT_DURATION_S = 360.0
DRIFT_EPROP = {"lr": 5e-4, "optimizer": "adam", "update_every_ticks": 500, "feedback": "symmetric",
               "train_in": True, "train_rec": False, "train_out": True}


def drift_demo_config(base: dict[str, Any]) -> dict[str, Any]:
    """The demo config with the drift schedule (30 degree rotation of every preferred direction
    at 120 s, 20 % of neurons silenced at 240 s, 360 s in all) and online e-prop adaptation
    (ridge calibration on the first ``calibration_s`` of the base learner, then e-prop from the
    intended velocity). ``base`` is the demo's config mapping (not modified); it needs a
    ``synthetic_user`` section."""
    if not isinstance(base, dict) or not isinstance(base.get("synthetic_user"), dict):
        raise ValueError("drift_demo_config: the base config needs a synthetic_user section (a mapping)")
    cfg = copy.deepcopy(base)
    cfg["synthetic_user"].update(DRIFT_SCHEDULE)
    session = cfg.setdefault("session", {})
    session["duration_s"] = max(float(session.get("duration_s") or 0.0), DRIFT_DURATION_S)
    session["name"] = f"{session.get('name', 'demo')}-drift"
    old = cfg.get("learner") or {}
    calib = dict(old.get("options") or {}) if old.get("kind") == "ridge_readout" else {}
    opts = {"calibration_s": float(calib.get("calibration_s", 20.0)), "ridge": float(calib.get("ridge", 1e-3))}
    opts.update(DRIFT_EPROP)
    cfg["learner"] = {"kind": "ridge_then_eprop", "options": opts}
    return cfg


DRIFT_PHASES_S = {  # windows of session time (s) the drift demo reports R^2 over
    "before_drift": (60.0, 120.0),
    "just_after_rotation": (120.0, 150.0),
    "adapted_rotation": (210.0, 240.0),
    "just_after_dropout": (240.0, 270.0),
    "adapted_dropout": (330.0, 360.0),
}


def drift_report(rows: np.ndarray, n_out: int, dt_s: float, window_s: float = 10.0) -> dict[str, Any]:
    """R^2 per phase of the drift schedule and the recovery times, from a session's output
    rows (``outputs.f64``: ``[tick, t_source, t_emit, y (n_out), target (n_out)]``, one per
    measured tick; row ``i`` is at session time ``i dt_s``, the user's clock runs ~1-2 s
    ahead). Recovery: seconds after the event until a ``window_s`` window (hop 1 s) regains
    90 % of the R^2 before it (rotation: ``before_drift``; dropout: ``adapted_rotation``). The
    R^2 denominator is the whole run's target variance, so short windows are comparable."""
    rows = np.asarray(rows, np.float64)
    if rows.ndim != 2 or rows.shape[1] != 3 + 2 * n_out:
        raise ValueError(f"drift_report: rows must be (ticks, {3 + 2 * n_out}), got {rows.shape}")
    y, t = rows[:, 3:3 + n_out], rows[:, 3 + n_out:]
    var = t.var(axis=0)
    per_s = 1.0 / dt_s
    out: dict[str, Any] = {"phases_s": {k: list(v) for k, v in DRIFT_PHASES_S.items()}, "r2": {}}
    for name, (a, b) in DRIFT_PHASES_S.items():
        i, j = int(round(a * per_s)), int(round(b * per_s))
        out["r2"][name] = r2_score(y[i:j], t[i:j], var) if j <= len(rows) else None
    w = int(round(window_s * per_s))
    ends, r2 = windowed_r2(y, t, w, int(round(per_s)), var)
    rot, drop = (int(round(x * per_s)) for x in (DRIFT_SCHEDULE["rotation_at_s"], DRIFT_SCHEDULE["dropout_at_s"]))
    ref_rot, ref_drop = out["r2"]["before_drift"], out["r2"]["adapted_rotation"]
    out["recovery_s"] = {
        "rotation": (recovery_time_s(ends, r2, rot, ref_rot, dt_s, w, until_tick=drop)
                     if ref_rot is not None else None),
        "dropout": (recovery_time_s(ends, r2, drop, ref_drop, dt_s, w) if ref_drop is not None else None)}
    out["window_s"] = window_s
    return out
