"""Closed-loop BCI adaptation under drift: frozen vs e-prop (teacher) vs actor-critic (reward).

Synthetic protocol (``--task synthetic``, times scaled by ``--time-scale``): the simulated
motor-cortex user (rtsnn.stream.synthetic) with every preferred direction rotated by
``--rotation-deg`` at ``rotation_at_s`` and ``--dropout`` of its neurons silenced at
``dropout_at_s``. The decoder (256 ALIF, demo settings) is pretrained offline: its readout is
calibrated by ridge regression on a drift-free recording of the same user with different
reaches (``reach_seed``), and saved with ``rtsnn.snn.save_model``; every variant loads that
file. Each variant then runs the protocol through :func:`rtsnn.learn.online.adaptation.replay`,
the session's per-tick learning path replayed offline (step, readout, observe, prepare/apply at
the tick boundary) -- not a live LSL session, to keep wall time bounded on a shared machine.

Real-data protocol (``--task chewie``): the Chewie centre-out recording (100 ms bins of rates)
replayed as Poisson spikes at the model dt; readout calibrated on the first half, the online
run replays the second half ``--chewie-loops`` times with a simulated electrode shift
(``--permute-fraction`` of channels permuted among themselves, ``--chewie-dropout`` silenced)
at ``shift_at_s``.

Metrics per variant: R^2 (decoded vs intended velocity, mean over x/y; the denominator is the
whole protocol's velocity variance, so short windows are comparable) in the
``--window-s`` before each event, in the window right after it, in the last window before the
next event / the end ("adapted"), and the recovery time: seconds until a sliding window
(hop 1 s) regains ``--recover-fraction`` of the pre-event R^2. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rtsnn.backends.numba_cpu import NumbaCpuBackend
from rtsnn.learn.online.adaptation import CursorReward, r2_score, recovery_time_s, replay, windowed_r2
from rtsnn.learn.online.ridge_readout import accumulate_gram, solve_ridge
from rtsnn.snn import Model, load_model, save_model, single_layer
from rtsnn.stream import synthetic as S

ROOT = Path(__file__).resolve().parents[1]
CHEWIE = ROOT / ".." / "shared" / "data" / "neural" / "chewie_20131003_bin100ms.npz"


def make_model(n_in: int, n_rec: int, dt_s: float, seed: int, tau_out_s: float, input_rate_hz: float) -> Model:
    layer = single_layer("alif", n_rec, tau_mem_s=0.02, tau_adapt_s=0.2, beta_adapt=0.1, v_th=1.0, refractory_s=0.002,
                         tau_out_s=tau_out_s)
    m = Model.random(n_in, n_rec, 2, *layer, dt_s=dt_s, seed=seed, input_rate_hz=input_rate_hz)
    m.output_labels, m.output_units = ["vx", "vy"], ["a.u./s", "a.u./s"]
    return m


def calibrate(model: Model, counts: np.ndarray, vel: np.ndarray, ridge: float) -> Model:
    """Ridge readout on the network's features over a recording (offline pretraining)."""
    be = NumbaCpuBackend(model)
    gram = np.zeros((model.n_rec + 1,) * 2)
    cross = np.zeros((model.n_rec + 1, 2))
    tgt = np.zeros(2, np.float32)
    for k in range(len(counts)):
        be.step(counts[k])
        tgt[:] = vel[k]
        accumulate_gram(gram, cross, be.features(), tgt)
    w = solve_ridge(gram, cross, ridge)
    be.set_readout(w[:-1].astype(np.float32), w[-1].astype(np.float32))
    model.provenance["pretraining"] = {"method": "ridge readout on a drift-free recording", "ticks": len(counts),
                                       "ridge": ridge}
    return model


def summarise(y, target, dt_s, events, end_tick, window_s, frac) -> dict:
    w = int(round(window_s / dt_s))
    var = np.var(np.asarray(target, np.float64), axis=0)  # whole-protocol velocity variance
    ends, r2 = windowed_r2(y, target, w, int(round(1.0 / dt_s)), target_var=var)
    out = {"r2_trace_10s": [round(float(v), 3) for v in r2[::w // int(round(1.0 / dt_s))]]}
    bounds = [e for _, e in events] + [end_tick]
    for i, (name, ev) in enumerate(events):
        nxt = bounds[i + 1]
        before = r2_score(y[ev - w:ev], target[ev - w:ev], var)
        out[name] = {"r2_before": round(before, 4),
                     "r2_just_after": round(r2_score(y[ev:ev + w], target[ev:ev + w], var), 4),
                     "r2_adapted": round(r2_score(y[nxt - w:nxt], target[nxt - w:nxt], var), 4),
                     "recovery_s": recovery_time_s(ends, r2, ev, before, dt_s, w, frac, until_tick=nxt)}
    return out


# ---------------------------------------------------------------------------- synthetic
def synthetic_run(a) -> dict:
    dt = a.dt_s
    sc = a.time_scale
    rot_at, drop_at, end_s = 120.0 * sc, 240.0 * sc, 360.0 * sc
    user_kw = dict(n_neurons=96, baseline_hz=10.0, depth_hz=20.0, seed=a.seed)
    # offline pretraining recording: same user (same tuning), other reaches, no drift
    calib_user = S.SyntheticUser(**user_kw, reach_seed=1000 + a.seed)
    c_counts, c_vel = calib_user.generate(a.calib_s, dt)
    model = calibrate(make_model(96, a.n_rec, dt, a.seed, 0.05, 20.0), c_counts, c_vel, a.ridge)
    path = Path(tempfile.mkdtemp(prefix="rtsnn-adapt-")) / "pretrained.npz"
    save_model(path, model)

    # the protocol recording (identical for every variant) with reach bookkeeping
    user = S.SyntheticUser(**user_kw, reach_seed=2000 + a.seed, rotation_deg=a.rotation_deg, rotation_at_s=rot_at,
                           dropout_fraction=a.dropout, dropout_at_s=drop_at)
    n = int(round(end_s / dt))
    counts = np.zeros((n, 96), np.float32)
    vel = np.zeros((n, 2), np.float32)
    reach = np.zeros((n, 5))  # phase, x0, y0, x1, y1 at the tick start
    for k in range(n):
        st = user._reach
        reach[k] = st[S.PHASE], st[S.X0], st[S.Y0], st[S.X1], st[S.Y1]
        user.step(dt, counts[k], vel[k])
    events = [("rotation", int(round(rot_at / dt))), ("dropout", int(round(drop_at / dt)))]

    results = {}
    for variant in a.variants:
        t0 = time.perf_counter()
        be = NumbaCpuBackend(load_model(path))
        on_tick = None
        learner = None
        if variant == "eprop":
            from rtsnn.learn.online.eprop import EpropLearner

            learner = EpropLearner(lr=a.eprop_lr, optimizer="adam", update_every_ticks=a.eprop_window,
                                   feedback="symmetric", train_in=True, train_rec=a.eprop_train_rec, train_out=True)
            learner.attach(be, dt)
        elif variant == "actor_critic":
            from rtsnn.learn.online.actor_critic import ActorCriticLearner
            from rtsnn.learn.online.reward import QueueRewardSource

            q = QueueRewardSource()
            learner = ActorCriticLearner(reward_source=q, eta_actor=a.ac_eta, sigma=a.ac_sigma, seed=a.seed)
            learner.attach(be, dt)
            cursor = CursorReward(q.push, dt, target_radius=a.target_radius, progress_gain=a.progress_gain)

            def on_tick(k, y, cursor=cursor):
                ph = reach[k, 0]
                if ph == S.REACH and (k == 0 or reach[k - 1, 0] != S.REACH):
                    cursor.start_reach(reach[k, 1:3], reach[k, 3:5])
                elif ph != S.REACH and cursor.active:
                    cursor.end_reach()
                cursor.step(y)
        out = replay(be, learner, counts, vel, on_tick=on_tick)
        res = summarise(out["y"], vel, dt, events, n, a.window_s, a.recover_fraction)
        res["wall_s"] = round(time.perf_counter() - t0, 1)
        res["us_per_tick"] = round(res["wall_s"] / n * 1e6, 1)
        if learner is not None:
            st = learner.stats()
            res["learner"] = {k: st[k] for k in ("updates", "rolled_back", "rewards", "reward_sum") if k in st}
        if variant == "actor_critic":
            res["cursor"] = {"reaches": cursor.reaches, "hits": cursor.hits}
        results[variant] = res
    return {"task": "synthetic", "time_scale": sc, "rotation_at_s": rot_at, "dropout_at_s": drop_at,
            "end_s": end_s, "rotation_deg": a.rotation_deg, "dropout_fraction": a.dropout, "calib_s": a.calib_s,
            "n_rec": a.n_rec, "results": results}


# ---------------------------------------------------------------------------- chewie
def chewie_run(a) -> dict:
    if not CHEWIE.exists():
        raise SystemExit(f"no Chewie recording at {CHEWIE}")
    d = np.load(CHEWIE)
    rates, vel = d["rates_hz"].astype(np.float64), d["vel"].astype(np.float32)
    n_bins, n_ch = rates.shape
    dt, bin_s = a.dt_s, 0.1
    per_bin = int(round(bin_s / dt))
    vel = (vel - vel.mean(0)) / vel.std(0)  # z-scored velocity (the decoder's target)
    half = n_bins // 2
    rng = np.random.default_rng(a.seed)

    def spikes(r: np.ndarray) -> np.ndarray:
        lam = np.repeat(r, per_bin, axis=0) * dt
        return rng.poisson(lam).astype(np.float32)

    mean_rate = float(rates.mean())
    c_counts = spikes(rates[:half])
    c_vel = np.repeat(vel[:half], per_bin, axis=0)
    model = calibrate(make_model(n_ch, a.n_rec, dt, a.seed, 0.1, max(mean_rate, 1.0)), c_counts, c_vel, a.ridge)
    path = Path(tempfile.mkdtemp(prefix="rtsnn-adapt-")) / "pretrained_chewie.npz"
    save_model(path, model)

    test_r = np.tile(rates[half:], (a.chewie_loops, 1))
    test_v = np.tile(vel[half:], (a.chewie_loops, 1))
    shift_bin = int(round(a.shift_at_s / bin_s))
    # electrode shift: a fraction of channels permuted among themselves, a fraction silenced
    perm = np.arange(n_ch)
    sel = rng.choice(n_ch, int(round(a.permute_fraction * n_ch)), replace=False)
    perm[sel] = sel[rng.permutation(len(sel))]
    shifted = test_r[:, perm].copy()
    shifted[:, rng.choice(n_ch, int(round(a.chewie_dropout * n_ch)), replace=False)] = 0.0
    test_r = np.concatenate([test_r[:shift_bin], shifted[shift_bin:]])
    counts = spikes(test_r)
    target = np.repeat(test_v, per_bin, axis=0)
    n = len(counts)
    events = [("electrode_shift", shift_bin * per_bin)]
    results = {}
    if a.via == "lsl":
        results = {v: chewie_via_lsl(a, v, path, counts, target, dt) for v in a.variants if v != "actor_critic"}
        return {"task": "chewie", "via": "lsl", "calib_s": half * bin_s, "online_s": n * dt, "shift_at_s": a.shift_at_s,
                "loops_of_second_half": a.chewie_loops, "permute_fraction": a.permute_fraction,
                "dropout_fraction": a.chewie_dropout, "n_rec": a.n_rec, "results": results}
    for variant in a.variants:
        if variant == "actor_critic":
            continue  # no cursor task on recorded data
        t0 = time.perf_counter()
        be = NumbaCpuBackend(load_model(path))
        learner = None
        if variant == "eprop":
            from rtsnn.learn.online.eprop import EpropLearner

            learner = EpropLearner(lr=a.eprop_lr, optimizer="adam", update_every_ticks=a.eprop_window,
                                   feedback="symmetric", train_in=True, train_rec=a.eprop_train_rec, train_out=True)
            learner.attach(be, dt)
        elif variant == "ridge_refit":
            from rtsnn.learn.online.ridge_readout import RidgeReadoutLearner

            learner = RidgeReadoutLearner(calibration_s=a.refit_every_s, ridge=a.ridge, refit_every_s=a.refit_every_s,
                                          refit_window_s=a.refit_window_s)
            learner.attach(be, dt)
        out = replay(be, learner, counts, target)
        res = summarise(out["y"], target, dt, events, n, a.window_s, a.recover_fraction)
        res["wall_s"] = round(time.perf_counter() - t0, 1)
        if learner is not None:
            st = learner.stats()
            res["learner"] = {k: st[k] for k in ("updates", "rolled_back") if k in st}
        results[variant] = res
    return {"task": "chewie", "calib_s": half * bin_s, "online_s": n * dt, "shift_at_s": a.shift_at_s,
            "loops_of_second_half": a.chewie_loops, "permute_fraction": a.permute_fraction,
            "dropout_fraction": a.chewie_dropout, "n_rec": a.n_rec, "results": results}


def chewie_via_lsl(a, variant: str, model_path: Path, counts: np.ndarray, target: np.ndarray, dt: float) -> dict:
    """The same protocol as a live session: the shifted spike counts and the z-scored velocity
    are written to an XDF file, re-published in real time by an LslReplayer (rtsnn replay),
    and decoded by a Session whose source and teacher are LSL inlets (e-prop adapts from the
    teacher, or the decoder stays frozen). Times are mapped back through the replay's LSL t0."""
    import threading
    import uuid

    from rtsnn.config import parse_config
    from rtsnn.runtime.session import Session
    from rtsnn.stream.readers import load_recording
    from rtsnn.stream.replay import LslReplayer
    from rtsnn.recording.xdf_writer import StreamInfoData, XdfWriter

    folder = Path(tempfile.mkdtemp(prefix="rtsnn-adapt-lsl-"))
    n, n_ch = counts.shape
    ts = np.arange(n) * dt
    w = XdfWriter(folder / "chewie_shift.xdf")
    w.add_stream(1, StreamInfoData("spikes", "Spikes", n_ch, 1.0 / dt, "float32", "chewie-spikes"))
    w.add_stream(2, StreamInfoData("velocity", "Kinematics", 2, 1.0 / dt, "float32", "chewie-velocity",
                                   ["vx", "vy"], ["z", "z"]))
    for i in range(0, n, 1000):
        w.write_samples(1, ts[i:i + 1000], counts[i:i + 1000])
        w.write_samples(2, ts[i:i + 1000], target[i:i + 1000])
    w.close()
    prefix = f"adapt-{uuid.uuid4().hex[:6]}-"
    rp = LslReplayer(load_recording(folder / "chewie_shift.xdf"), speed=1.0, name_prefix=prefix)
    stop = threading.Event()

    def publish() -> None:
        rp.open(wait_consumers_s=30.0)
        rp.run(stop)

    cfg = {"session": {"name": f"chewie-{variant}", "duration_s": n * dt - 3.0, "out_dir": str(folder),
                       "warmup_ticks": 50, "monitor": False},
           "source": {"kind": "lsl", "options": {"name": prefix + "spikes", "n_channels": n_ch,
                                                 "resolve_timeout_s": 30.0}},
           "teacher": {"kind": "lsl", "options": {"name": prefix + "velocity", "n_channels": 2,
                                                  "resolve_timeout_s": 30.0}},
           "encoder": {"kind": "passthrough", "options": {"n_channels": n_ch}},
           "model": {"path": str(model_path)}}
    if variant == "eprop":
        cfg["learner"] = {"kind": "eprop", "options": {"lr": a.eprop_lr, "optimizer": "adam",
                                                      "update_every_ticks": a.eprop_window, "feedback": "symmetric",
                                                      "train_in": True, "train_rec": a.eprop_train_rec,
                                                      "train_out": True}}
    th = threading.Thread(target=publish, daemon=True)
    th.start()
    t0 = time.perf_counter()
    try:
        summary = Session(parse_config(cfg, "<bench_adaptation via lsl>")).run()
    finally:
        stop.set()
        th.join(10)
        rp.close()
    rows = np.fromfile(Path(summary["folder"]) / "outputs.f64", "<f8").reshape(-1, 7)
    rows = rows[np.isfinite(rows[:, 1])]
    rel = rows[:, 1] - rp.lsl_start  # recording time of each tick's newest input
    ev = int(np.searchsorted(rel, a.shift_at_s))
    res = summarise(rows[:, 3:5], rows[:, 5:7], dt, [("electrode_shift", ev)], len(rows), a.window_s,
                    a.recover_fraction)
    res.update(wall_s=round(time.perf_counter() - t0, 1), ticks=summary["ticks"],
               e2e_p99_us=summary["e2e_latency_us"]["p99"], deadline_miss_rate=summary["deadline_miss_rate"],
               dropped_samples=summary["dropped_samples"])
    if variant == "eprop":
        res["learner"] = {k: summary["learner"][k] for k in ("updates",) if k in summary["learner"]}
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=("synthetic", "chewie"), default="synthetic")
    p.add_argument("--variants", nargs="+", default=["frozen", "eprop", "actor_critic"],
                   choices=("frozen", "eprop", "actor_critic", "ridge_refit"))
    p.add_argument("--dt-s", type=float, default=0.001)
    p.add_argument("--time-scale", type=float, default=0.5,
                   help="protocol times 120/240/360 s are multiplied by this (0.5: rotation at 60 s)")
    p.add_argument("--rotation-deg", type=float, default=30.0)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--calib-s", type=float, default=60.0)
    p.add_argument("--n-rec", type=int, default=256)
    p.add_argument("--ridge", type=float, default=None,
                   help="ridge of the calibration (and of ridge_refit); default 1e-3 synthetic, 1.0 chewie "
                        "(the short, noisy recording overfits a weakly regularised decoder)")
    p.add_argument("--eprop-lr", type=float, default=5e-4)
    p.add_argument("--eprop-window", type=int, default=500)
    p.add_argument("--eprop-train-rec", action="store_true")
    p.add_argument("--ac-eta", type=float, default=1e-6)
    p.add_argument("--ac-sigma", type=float, default=0.3)
    p.add_argument("--target-radius", type=float, default=0.2)
    p.add_argument("--progress-gain", type=float, default=0.0)
    p.add_argument("--window-s", type=float, default=10.0)
    p.add_argument("--recover-fraction", type=float, default=0.9)
    p.add_argument("--shift-at-s", type=float, default=20.0)
    p.add_argument("--chewie-loops", type=int, default=2)
    p.add_argument("--permute-fraction", type=float, default=0.3)
    p.add_argument("--chewie-dropout", type=float, default=0.1)
    p.add_argument("--refit-every-s", type=float, default=5.0, help="ridge_refit: seconds between readout refits")
    p.add_argument("--refit-window-s", type=float, default=30.0, help="ridge_refit: seconds of teaching each refit uses")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--via", choices=("replay", "lsl"), default="replay",
                   help="chewie: offline replay of the tick loop, or a live session fed over LSL (real time)")
    a = p.parse_args(argv)
    if a.ridge is None:
        a.ridge = 1.0 if a.task == "chewie" else 1e-3
    t0 = time.perf_counter()
    out = synthetic_run(a) if a.task == "synthetic" else chewie_run(a)
    out["replay"] = ("live session over LSL (rtsnn replay of an XDF of the shifted counts)" if out.get("via") == "lsl"
                     else "offline replay of the session tick loop (rtsnn.learn.online.adaptation.replay)")
    out["ridge"] = a.ridge
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
