"""Drift schedule of the synthetic user, adaptation metrics, replay, and the drift demo config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtsnn.backends.numba_cpu import NumbaCpuBackend
from rtsnn.learn.online.adaptation import (CursorReward, RidgeThenEpropLearner, drift_demo_config, r2_score,
                                           recovery_time_s, replay, windowed_r2)
from rtsnn.learn.online.eprop import EpropLearner
from rtsnn.learn.online.ridge_readout import accumulate_gram, solve_ridge
from rtsnn.snn import Model, single_layer
from rtsnn.stream.synthetic import SyntheticUser


# ---------------------------------------------------------------------------- the schedule
def _rates_for_velocity(user: SyntheticUser, t_s: float, v: tuple[float, float]) -> np.ndarray:
    """The user's rates at time t_s for intended velocity v (from its own tuning code path)."""
    from rtsnn.stream.synthetic import tuning_rates

    active = user._active_after_dropout if t_s >= user.dropout_at_s - 1e-9 else user._all_active
    out = np.zeros(user.n_neurons)
    tuning_rates(v[0], v[1], user._cos_pd, user._sin_pd, user.rotation_at(t_s), user.baseline_hz, user.depth_hz,
                 user.v_max, active, out)
    return out


def test_rotation_steps_at_the_set_time_and_silencing_later():
    user = SyntheticUser(n_neurons=64, seed=3, rotation_deg=30.0, rotation_at_s=0.5, dropout_fraction=0.2,
                         dropout_at_s=1.0)
    dt = 0.001
    counts = np.zeros(64, np.float32)
    vel = np.zeros(2, np.float32)
    pd0 = user.preferred_directions_at(0.0)
    seen = {}
    for k in range(1200):
        t = user.t_s
        user.step(dt, counts, vel)
        if k in (499, 500, 999, 1000):
            # the rates the step used equal the tuning with the scheduled rotation / dropout
            want = _rates_for_velocity(user, t, (float(vel[0]), float(vel[1])))
            np.testing.assert_allclose(user.rates_hz, want, rtol=1e-9)
            seen[k] = (user.preferred_directions_at(t), user.rates_hz.copy())
    # preferred directions: unchanged before 0.5 s, +30 degrees from then on
    np.testing.assert_allclose(seen[499][0], pd0)
    diff = np.angle(np.exp(1j * (seen[500][0] - pd0)))
    np.testing.assert_allclose(np.degrees(diff), 30.0, atol=1e-9)
    # silencing: none before 1.0 s, exactly round(0.2 * 64) = 13 silent neurons after
    assert user.dropped.sum() == 13
    assert np.all(seen[1000][1][user.dropped] == 0.0)
    # at tick 999 dropped neurons still fire at (baseline +- tuning) > 0 for most of them
    assert np.count_nonzero(seen[999][1][user.dropped]) >= 10


def test_rotation_is_visible_in_the_spikes():
    """Fit preferred directions from spike counts before and after the rotation: they turn
    by the scheduled 30 degrees."""
    user = SyntheticUser(n_neurons=48, seed=5, depth_hz=30.0, rotation_deg=30.0, rotation_at_s=60.0)
    counts, vel = user.generate(120.0, 0.005)
    est = []
    for sl in (slice(0, 12000), slice(12000, 24000)):
        c, v = counts[sl].astype(np.float64), vel[sl].astype(np.float64)
        x = np.column_stack([v, np.ones(len(v))])
        coef = np.linalg.lstsq(x, c, rcond=None)[0]
        est.append(np.arctan2(coef[1], coef[0]))
    turn = np.degrees(np.angle(np.mean(np.exp(1j * (est[1] - est[0])))))
    assert abs(turn - 30.0) < 5.0


def test_reach_seed_changes_movements_not_tuning():
    a = SyntheticUser(n_neurons=8, seed=1, reach_seed=1)
    b = SyntheticUser(n_neurons=8, seed=1, reach_seed=2)
    np.testing.assert_array_equal(a.preferred_rad, b.preferred_rad)
    _, va = a.generate(3.0, 0.001)
    _, vb = b.generate(3.0, 0.001)
    assert not np.allclose(va, vb)


@pytest.mark.parametrize("kw, match", [({"rotation_deg": math.nan}, "rotation_deg"),
                                       ({"rotation_at_s": -1.0}, "rotation_at_s"),
                                       ({"reach_seed": -3}, "reach_seed")])
def test_bad_schedule_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        SyntheticUser(**kw)


# ---------------------------------------------------------------------------- metrics
def test_r2_and_recovery_time():
    rng = np.random.default_rng(0)
    t = rng.standard_normal((1000, 2))
    assert r2_score(t, t) == pytest.approx(1.0)
    assert r2_score(np.zeros_like(t) + t.mean(0), t) == pytest.approx(0.0, abs=1e-12)
    y = t.copy()
    y[400:700] = 0.0  # broken for 300 ticks, then fine again
    ends, r2 = windowed_r2(y, t, 100, 10)
    assert recovery_time_s(ends, r2, 400, 1.0, 0.01, 100, fraction=0.9) == pytest.approx((800 - 400) * 0.01)
    assert recovery_time_s(ends, r2, 400, 1.0, 0.01, 100, until_tick=750) is None
    assert recovery_time_s(ends, r2, 400, -0.5, 0.01, 100) is None
    with pytest.raises(ValueError, match="window_ticks"):
        windowed_r2(y, t, 1)
    with pytest.raises(ValueError, match="one shape"):
        r2_score(y[:, :1], t)


def test_cursor_reward_pays_on_entering_the_target():
    got = []
    cr = CursorReward(got.append, 0.01, target_radius=0.1)
    cr.start_reach(np.zeros(2), np.array([1.0, 0.0]))
    for _ in range(200):
        cr.step(np.array([1.0, 0.0], np.float32))
    assert got == [1.0] and cr.hits == 1 and not cr.active
    with pytest.raises(ValueError, match="CursorReward"):
        CursorReward(got.append, 0.0)


# ---------------------------------------------------------------------------- adaptation
def _model(n_in: int, seed: int = 0) -> Model:
    layer = single_layer("alif", 64, tau_mem_s=0.02, tau_adapt_s=0.2, beta_adapt=0.1, v_th=1.0, refractory_s=0.002,
                         tau_out_s=0.05)
    return Model.random(n_in, 64, 2, *layer, dt_s=0.002, seed=seed, input_rate_hz=20.0)


def test_eprop_recovers_after_rotation_and_frozen_does_not():
    """Pretrain (ridge) on a drift-free recording, rotate the tuning by 60 degrees, and run
    frozen vs e-prop on the same input: e-prop must end clearly better (fails with learning off)."""
    dt = 0.002
    user_kw = dict(n_neurons=48, seed=2, depth_hz=25.0)
    c_counts, c_vel = SyntheticUser(**user_kw, reach_seed=7).generate(30.0, dt)
    model = _model(48)
    be = NumbaCpuBackend(model)
    gram, cross = np.zeros((65, 65)), np.zeros((65, 2))
    for k in range(len(c_counts)):
        be.step(c_counts[k])
        accumulate_gram(gram, cross, be.features(), c_vel[k])
    w = solve_ridge(gram, cross, 1e-3)
    model.weights.w_out[...] = w[:-1]
    model.weights.b_out[...] = w[-1]

    counts, vel = SyntheticUser(**user_kw, reach_seed=8, rotation_deg=60.0, rotation_at_s=0.0).generate(40.0, dt)
    tail = slice(len(vel) - int(10.0 / dt), None)
    scores = {}
    for name in ("frozen", "eprop", "eprop_lr0"):
        b = NumbaCpuBackend(Model(model.hidden, model.trace, model.weights.copy(), model.dt_s, {}, ["vx", "vy"],
                                  ["", ""]))
        learner = None
        if name != "frozen":
            learner = EpropLearner(lr=2e-3 if name == "eprop" else 1e-12, update_every_ticks=100, train_rec=False)
            learner.attach(b, dt)
        out = replay(b, learner, counts, vel)
        scores[name] = r2_score(out["y"][tail], vel[tail])
        if learner is not None:
            assert learner.stats()["updates"] > 100
    assert scores["eprop"] > scores["frozen"] + 0.15, scores
    assert abs(scores["eprop_lr0"] - scores["frozen"]) < 0.02, scores


def test_ridge_then_eprop_calibrates_then_adapts():
    dt = 0.002
    counts, vel = SyntheticUser(n_neurons=48, seed=2, depth_hz=25.0).generate(8.0, dt)
    b = NumbaCpuBackend(_model(48))
    learner = RidgeThenEpropLearner(calibration_s=4.0, lr=1e-3, update_every_ticks=100)
    learner.attach(b, dt)
    assert not learner.calibrated
    replay(b, learner, counts, vel)
    st = learner.stats()
    assert learner.calibrated and st["phase"] == "eprop"
    assert st["eprop"]["updates"] >= 15  # 4 s of adaptation at 100 ticks per window
    assert np.any(b.readout_weights()[0] != 0)
    with pytest.raises(ValueError, match="unknown eprop option"):
        RidgeThenEpropLearner(bogus=1)


def test_drift_demo_config_validates_and_sets_the_schedule():
    import importlib.resources

    import yaml

    from rtsnn.config import parse_config

    base = yaml.safe_load(importlib.resources.files("rtsnn.configs").joinpath("demo.yaml").read_text())
    cfg = drift_demo_config(base)
    assert base["learner"]["kind"] == "ridge_readout"  # base untouched
    su = cfg["synthetic_user"]
    assert (su["rotation_deg"], su["rotation_at_s"], su["dropout_fraction"], su["dropout_at_s"]) == (30.0, 120.0, 0.2,
                                                                                                     240.0)
    assert cfg["learner"]["kind"] == "ridge_then_eprop" and cfg["session"]["duration_s"] >= 360
    RidgeThenEpropLearner(**cfg["learner"]["options"])  # the options are valid
    parsed = parse_config(cfg, "drift")
    assert parsed.synthetic_user.rotation_deg == 30.0 and parsed.synthetic_user.rotation_at_s == 120.0
    with pytest.raises(ValueError, match="synthetic_user"):
        drift_demo_config({"session": {}})


def test_ridge_then_eprop_takes_control_messages_after_calibration():
    from rtsnn.control_messages import ControlMessage, apply_control

    dt = 0.002
    counts, vel = SyntheticUser(n_neurons=48, seed=2, depth_hz=25.0).generate(6.0, dt)
    b = NumbaCpuBackend(_model(48))
    learner = RidgeThenEpropLearner(calibration_s=4.0, lr=1e-3, update_every_ticks=100)
    learner.attach(b, dt)
    with pytest.raises(ValueError, match="once calibration is done"):
        apply_control(ControlMessage("set_learning_rate", 1e-4, 0.0), learner)
    replay(b, learner, counts, vel)
    assert apply_control(ControlMessage("pause_learning", None, 0.0), learner)
    w = b.readout_weights()[0].copy()
    replay(b, learner, counts[:1000], vel[:1000])
    np.testing.assert_array_equal(b.readout_weights()[0], w)  # paused: the decoder stays as it is
    assert apply_control(ControlMessage("resume_learning", None, 0.0), learner)
    assert apply_control(ControlMessage("set_learning_rate", 1e-4, 0.0), learner)
    assert learner.eprop.stats()["lr"] == pytest.approx(1e-4)


def test_drift_report_phases_and_recovery_times():
    from rtsnn.learn.online.adaptation import drift_report

    dt = 0.01
    n = int(360 / dt)
    t = np.arange(n) * dt
    target = np.stack([np.sin(t), np.cos(0.7 * t)], axis=1)
    y = target.copy()
    bad = (t >= 120) & (t < 140)  # decoder lost for 20 s after the rotation, then exact again
    y[bad] = -target[bad]
    bad2 = (t >= 240) & (t < 245)  # 5 s after the dropout
    y[bad2] = 0.0
    rows = np.column_stack([np.arange(n), t, t, y, target])
    rep = drift_report(rows, 2, dt)
    assert rep["r2"]["before_drift"] == pytest.approx(1.0)
    assert rep["r2"]["just_after_rotation"] < 0  # 20 of its 30 s are anti-correlated
    assert rep["r2"]["adapted_rotation"] == pytest.approx(1.0) and rep["r2"]["adapted_dropout"] == pytest.approx(1.0)
    # measured to the end of the first 10 s window after the event back at >= 0.9 x before:
    # at most 30 s (the window [140, 150) is clean), at least the 20 s of error
    assert 20.0 <= rep["recovery_s"]["rotation"] <= 30.0
    assert 5.0 <= rep["recovery_s"]["dropout"] <= 15.0
    with pytest.raises(ValueError, match="rows must be"):
        drift_report(rows[:, :5], 2, dt)
    short = drift_report(rows[: int(200 / dt)], 2, dt)
    assert short["r2"]["adapted_dropout"] is None and short["recovery_s"]["dropout"] is None


def test_demo_drift_refuses_a_duration_shorter_than_its_schedule(capsys):
    from rtsnn.cli import main

    assert main(["demo", "--drift", "--duration", "30"]) == 2
    assert "--duration must be >= 360" in capsys.readouterr().err
