"""The synthetic user: kernels vs references, tuning, drift, dropout, and its LSL streams."""

from __future__ import annotations

import math
import time
import uuid

import numpy as np
import pylsl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsnn.stream.synthetic import (SplitMix64Reference, SyntheticUser, SyntheticUserPublisher, new_reach_state,
                                    next_uniform, poisson_counts, poisson_counts_reference, reach_step,
                                    reach_step_reference, spawn_synthetic_user, tuning_rates,
                                    tuning_rates_reference)


# ------------------------------------------------------------------ kernels == references
@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_uniform_matches_reference(seed):
    state = np.array([seed], np.uint64)
    ref = SplitMix64Reference(seed)
    got = [next_uniform(state) for _ in range(20)]
    want = [ref.uniform() for _ in range(20)]
    assert got == want and all(0.0 <= u < 1.0 for u in got)
    assert int(state[0]) == ref.state


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-10.0, 2000.0), min_size=1, max_size=20), st.sampled_from([0.001, 0.02, 0.1]),
       st.integers(0, 2**63))
def test_poisson_matches_reference(rates, dt_s, seed):
    rates = np.array(rates, np.float64)
    got = np.zeros(len(rates), np.float32)
    want = np.zeros(len(rates), np.float32)
    state = np.array([seed], np.uint64)
    ref = SplitMix64Reference(seed)
    poisson_counts(rates, dt_s, state, got)
    poisson_counts_reference(rates, dt_s, ref, want)
    np.testing.assert_array_equal(got, want)
    assert int(state[0]) == ref.state


@settings(max_examples=60, deadline=None)
@given(st.floats(-5, 5), st.floats(-5, 5), st.floats(-7, 7), st.floats(0, 20), st.floats(0, 50),
       st.floats(0.1, 5), st.integers(0, 1000))
def test_tuning_rates_match_reference(vx, vy, rotation, baseline, depth, v_max, seed):
    rng = np.random.default_rng(seed)
    pd = rng.uniform(0, 2 * np.pi, 12)
    active = rng.random(12) < 0.8
    got = np.zeros(12)
    tuning_rates(vx, vy, np.cos(pd), np.sin(pd), rotation, baseline, depth, v_max, active, got)
    want = tuning_rates_reference(vx, vy, pd, rotation, baseline, depth, v_max, active)
    np.testing.assert_allclose(got, want, atol=1e-9 * (1 + baseline + depth * 10 / v_max))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**63), st.sampled_from([0.001, 0.01, 0.3]), st.floats(0.5, 2.0),
       st.floats(0.05, 0.5), st.floats(0.0, 0.5), st.floats(0.05, 0.5))
def test_reach_step_matches_reference(seed, dt_s, radius, reach_min_s, extra_s, hold_s):
    a, b = new_reach_state(hold_s), new_reach_state(hold_s)
    sa, rb = np.array([seed], np.uint64), SplitMix64Reference(seed)
    va, vb = np.zeros(2, np.float32), np.zeros(2, np.float32)
    for _ in range(300):
        reach_step(a, sa, dt_s, radius, reach_min_s, reach_min_s + extra_s, hold_s, va)
        reach_step_reference(b, rb, dt_s, radius, reach_min_s, reach_min_s + extra_s, hold_s, vb)
        np.testing.assert_allclose(va, vb, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert int(sa[0]) == rb.state


# ------------------------------------------------------------------ the model
def _fit_preferred(counts, velocity):
    """Least squares counts ~ c0 + cx vx + cy vy per neuron; pd = atan2(cy, cx)."""
    X = np.column_stack([np.ones(len(velocity)), velocity.astype(np.float64)])
    coef, *_ = np.linalg.lstsq(X, counts.astype(np.float64), rcond=None)
    return np.arctan2(coef[2], coef[1])


def _ang_err(a, b):
    return np.abs(np.angle(np.exp(1j * (a - b))))


def test_tuning_recovers_preferred_directions():
    user = SyntheticUser(n_neurons=48, seed=3)
    counts, velocity = user.generate(120.0, 0.02)
    err = np.degrees(_ang_err(_fit_preferred(counts, velocity), user.preferred_rad))
    assert np.median(err) < 5.0 and err.max() < 15.0
    # mean rate ~ baseline (the cosine term averages out over directions)
    assert 8.0 < counts.mean() / 0.02 < 13.0


def test_intended_velocity_varies_on_a_one_second_scale():
    user = SyntheticUser(seed=1)
    _, v = user.generate(60.0, 0.01)
    vx = v[:, 0] - v[:, 0].mean()

    def corr(lag):
        return float(np.dot(vx[:-lag], vx[lag:]) / np.dot(vx, vx))

    assert corr(5) > 0.9  # 50 ms: smooth
    assert corr(100) < 0.5  # 1 s: a new reach
    speed = np.hypot(v[:, 0], v[:, 1])
    assert 0.8 * user.v_max < speed.max() < 1.5 * user.v_max
    angles = np.arctan2(v[speed > 0.5, 1], v[speed > 0.5, 0])
    assert np.histogram(angles, bins=4, range=(-np.pi, np.pi))[0].min() > 0.1 * len(angles)


def test_drift_rotates_preferred_directions_at_the_set_rate():
    user = SyntheticUser(n_neurons=48, seed=5, drift_deg_per_s=1.0)
    counts, velocity = user.generate(120.0, 0.02)
    np.testing.assert_allclose(user.preferred_directions_at(90.0),
                               np.mod(user.preferred_rad + math.radians(90.0), 2 * np.pi))
    first = _fit_preferred(counts[:2000], velocity[:2000])  # 0-40 s, centre 20 s
    last = _fit_preferred(counts[-2000:], velocity[-2000:])  # 80-120 s, centre 100 s
    rotation_deg = np.degrees(np.angle(np.mean(np.exp(1j * (last - first)))))
    assert abs(rotation_deg - 80.0) < 8.0
    still = SyntheticUser(n_neurons=48, seed=5)
    c2, v2 = still.generate(120.0, 0.02)
    r0 = np.degrees(np.angle(np.mean(np.exp(1j * (_fit_preferred(c2[-2000:], v2[-2000:])
                                                   - _fit_preferred(c2[:2000], v2[:2000]))))))
    assert abs(r0) < 5.0


def test_dropout_silences_the_set_fraction_from_the_set_time():
    user = SyntheticUser(n_neurons=96, seed=2, dropout_fraction=0.25, dropout_at_s=5.0)
    counts, _ = user.generate(10.0, 0.01)
    before, after = counts[:500].sum(0), counts[500:].sum(0)
    assert np.all(before > 0)
    silent = after == 0
    assert silent.sum() == 24
    np.testing.assert_array_equal(silent, user.dropped)


def test_seed_reproduces_and_step_writes_in_place():
    a, b, c = SyntheticUser(seed=7), SyntheticUser(seed=7), SyntheticUser(seed=8)
    ca, va = a.generate(2.0, 0.001)
    cb, vb = b.generate(2.0, 0.001)
    cc, _ = c.generate(2.0, 0.001)
    np.testing.assert_array_equal(ca, cb)
    np.testing.assert_array_equal(va, vb)
    assert not np.array_equal(ca, cc)
    counts, vel = np.zeros(96, np.float32), np.zeros(2, np.float32)
    a.step(0.001, counts, vel)
    assert a.t_s == pytest.approx(2.001)


@pytest.mark.parametrize("kw, match", [
    ({"n_neurons": 0}, "n_neurons"), ({"dropout_fraction": 1.5}, "dropout_fraction"),
    ({"hold_s": 0}, "hold_s"), ({"reach_min_s": 1.0, "reach_max_s": 0.5}, "reach_min_s"),
    ({"baseline_hz": -1}, "baseline_hz"),
])
def test_bad_parameters_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        SyntheticUser(**kw)


# ------------------------------------------------------------------ over LSL
def _labels(info):
    out, ch = [], info.desc().child("channels").child("channel")
    while not ch.empty():
        out.append(ch.child_value("label"))
        ch = ch.next_sibling("channel")
    return out


@pytest.mark.lsl
def test_publisher_streams_spikes_and_velocity_at_1khz():
    prefix = f"rtsnn-test-syn-{uuid.uuid4().hex[:10]}"
    pub = SyntheticUserPublisher(prefix, duration_s=5.0, seed=1, n_neurons=16)
    try:
        inlets = {}
        for kind, n_ch, type_ in (("spikes", 16, "Spikes"), ("velocity", 2, "Kinematics")):
            found = pylsl.resolve_bypred(f"name='{prefix}-{kind}'", 1, 2.0)
            assert len(found) == 1
            info = found[0]
            assert info.channel_count() == n_ch and info.type() == type_ and info.nominal_srate() == 1000.0
            inlets[kind] = pylsl.StreamInlet(info)
            inlets[kind].open_stream(2.0)
            full = inlets[kind].info(2.0)
            assert _labels(full) == ([f"unit{i}" for i in range(16)] if kind == "spikes" else ["vx", "vy"])
        pub.start()
        got = {k: ([], []) for k in inlets}
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            for k, inlet in inlets.items():
                x, t = inlet.pull_chunk(0.0, 4096)
                got[k][0].extend(x)
                got[k][1].extend(t)
            time.sleep(0.01)
    finally:
        pub.close()
    ts_s, ts_v = np.array(got["spikes"][1]), np.array(got["velocity"][1])
    n = min(len(ts_s), len(ts_v))
    assert n > 1000
    np.testing.assert_array_equal(ts_s[:n], ts_v[:n])  # same local_clock() stamp per tick
    rate_hz = (n - 1) / (ts_s[n - 1] - ts_s[0])
    assert 900 < rate_hz < 1100
    spikes = np.array(got["spikes"][0])
    assert set(np.unique(spikes)) <= set(range(10)) and spikes.sum() > 0
    assert pub.stats()["ticks"] >= n


@pytest.mark.lsl
def test_spawned_process_publishes_and_reports_failures():
    prefix = f"rtsnn-test-spawn-{uuid.uuid4().hex[:10]}"
    proc = spawn_synthetic_user(prefix, duration_s=30.0, seed=4, n_neurons=8, drift_deg_per_s=0.5)
    try:
        found = pylsl.resolve_bypred(f"name='{prefix}-spikes'", 1, 2.0)
        assert found and found[0].channel_count() == 8
        inlet = pylsl.StreamInlet(found[0])
        inlet.open_stream(2.0)
        x, t = [], []
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:
            a, b = inlet.pull_chunk(0.05)
            x += a
            t += b
        assert len(t) > 700
    finally:
        proc.terminate()
        assert proc.wait(10) == 0  # SIGTERM ends it cleanly
    with pytest.raises(RuntimeError, match="n_neurons"):  # the child's own error comes back
        spawn_synthetic_user(f"{prefix}-bad", duration_s=1.0, n_neurons=0)
    with pytest.raises(ValueError, match="unknown options"):
        spawn_synthetic_user(prefix, bogus=1)


def test_the_synthetic_user_dies_with_a_killed_parent(tmp_path):
    """kill -9 of the process that spawned the synthetic user (as a demo session does) must
    not leave the child publishing: it watches a pipe whose write end only the parent holds."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = ("import sys, time\n"
              "from rtsnn.stream.synthetic import spawn_synthetic_user\n"
              f"p = spawn_synthetic_user('orphan-test-{os.getpid()}', duration_s=120.0)\n"
              "print(p.pid, flush=True)\n"
              "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # running
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10.0
        alive = True
        while alive and time.monotonic() < deadline:
            try:  # reaped by init once it exits; a zombie of ours it cannot be (not our child)
                os.kill(child, 0)
                with open(f"/proc/{child}/stat") as f:
                    alive = f.read().split()[2] != "Z"
            except (ProcessLookupError, FileNotFoundError):
                alive = False
            time.sleep(0.05)
        assert not alive, f"synthetic user pid {child} still runs after its parent was killed"
    finally:
        if parent.poll() is None:
            parent.kill()
        if child is not None:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
