"""Plain-numpy references of :mod:`rtsnn.learn.online.eprop_kernels` (tests, not speed).

Written over whole sequences with time-major arrays and explicit filters, so they share no
code path with the per-tick kernels: ``e`` is formed as a (T, n_pre, n_post) tensor and the
gradients as sums over time, exactly as the equations in the kernels' docstring read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ConventionScalars:
    """Scalars of one e-prop convention (see :mod:`eprop_kernels`)."""

    alpha: float
    kappa: float
    rho: float
    v_th: float
    gamma: float = 0.3
    zeta: float = 1.0
    g_e: float = 1.0
    g_out: float = 1.0
    n_ref: int = 0


def exp_filter(a: np.ndarray, decay: float, gain: float) -> np.ndarray:
    """``s[t] = decay s[t-1] + gain a[t]`` along axis 0, ``s[-1] = 0``."""
    out = np.zeros_like(a, dtype=np.float64)
    s = np.zeros(a.shape[1:], np.float64)
    for t in range(a.shape[0]):
        s = decay * s + gain * a[t]
        out[t] = s
    return out


def forward_reference(c: ConventionScalars, beta: np.ndarray, w_in, w_rec, w_out, x: np.ndarray):
    """Run a sequence from the zero state; return ``v, a, z, y`` (time-major, float64)."""
    n_t = x.shape[0]
    n_rec = w_in.shape[1]
    v = np.zeros(n_rec); a = np.zeros(n_rec); z = np.zeros(n_rec); refr = np.zeros(n_rec, int)
    y = np.zeros(w_out.shape[1])
    V, A, Z, Y = (np.zeros((n_t, n_rec)), np.zeros((n_t, n_rec)), np.zeros((n_t, n_rec)),
                  np.zeros((n_t, w_out.shape[1])))
    for t in range(n_t):
        v = c.alpha * v + c.zeta * (x[t] @ w_in + z @ w_rec) - c.v_th * z
        a = c.rho * a + z
        refractory = refr > 0
        z = ((v >= c.v_th + beta * a) & ~refractory).astype(float)
        refr = np.where(refractory, refr - 1, np.where(z > 0, c.n_ref, 0))
        y = c.kappa * y + c.g_out * (z @ w_out)
        V[t], A[t], Z[t], Y[t] = v, a, z, y
    return V, A, Z, Y


def pseudo_derivative_reference(c: ConventionScalars, beta, V, A, Z) -> np.ndarray:
    """``psi`` over a sequence, zero on the ``n_ref`` steps after each spike."""
    psi = c.gamma / c.v_th * np.maximum(0.0, 1.0 - np.abs(V - (c.v_th + beta * A)) / c.v_th)
    n_t = V.shape[0]
    blocked = np.zeros_like(psi, bool)
    for t in range(n_t):
        for s in range(max(0, t - c.n_ref), t):
            blocked[t] |= Z[s] > 0
    return np.where(blocked, 0.0, psi)


def eprop_gradients_reference(c: ConventionScalars, beta, x, Z, psi, err, B, creg=None):
    """Gradients of one sequence: ``grad_in, grad_rec, grad_out, grad_b, esum_in, esum_rec``.

    ``err`` (T, n_out) is the output error per step (rows of NaN are skipped: no learning
    signal, no regulariser), ``creg`` (T, n_rec) the online regulariser coefficient (or None).
    """
    n_t, n_rec = Z.shape
    z_prev = np.vstack([np.zeros((1, n_rec)), Z[:-1]])
    bad = ~np.all(np.isfinite(err), axis=1)
    err0 = np.where(bad[:, None], 0.0, err)
    L = err0 @ B.T  # (T, n_rec)
    creg = np.zeros((n_t, n_rec)) if creg is None else np.where(bad[:, None], 0.0, creg)
    out = []
    for pre in (x, z_prev):
        zbar = exp_filter(pre.astype(np.float64), c.alpha, c.zeta)  # (T, n_pre)
        n_pre = zbar.shape[1]
        e = np.zeros((n_t, n_pre, n_rec))
        eps = np.zeros((n_pre, n_rec))
        for t in range(n_t):
            e[t] = psi[t][None, :] * (zbar[t][:, None] - beta[None, :] * eps)
            eps = c.rho * eps + e[t]
        ebar = exp_filter(e, c.kappa, c.g_e)
        grad = np.einsum("tj,tij->ij", L, ebar) + np.einsum("tj,tij->ij", creg, e)
        out.append((grad, e.sum(0)))
    zbar_out = exp_filter(Z, c.kappa, c.g_out)
    grad_out = zbar_out.T @ err0
    grad_b = err0.sum(0)
    return out[0][0], out[1][0], grad_out, grad_b, out[0][1], out[1][1]


def adam_reference(w, g, m, s, lr, beta1, beta2, eps, step, w_min=-np.inf, w_max=np.inf):
    """One Adam step (returns new ``w, m, s``)."""
    m = beta1 * m + (1 - beta1) * g
    s = beta2 * s + (1 - beta2) * g * g
    lr_t = lr * np.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
    return np.clip(w - lr_t * m / (np.sqrt(s) + eps), w_min, w_max), m, s


# ---------------------------------------------------------------------------- NEST's golden tasks
# Five-iteration losses asserted by NEST 3.10's test_eprop_bsshslm_2020_plasticity.py (seed 1).
GOLDEN = {
    "sine": [101.964356999041, 103.466731126205, 103.340607074771, 103.680244037686, 104.412775748752],
    "evidence": [0.741152550006, 0.740388187700, 0.665785233177, 0.663644193322, 0.729428962844],
}


def sine_task(n_iter: int = 5, n_in: int = 100, n_rec: int = 100, steps: int = 1000, seed: int = 1) -> dict:
    """The sine-wave regression task with NEST's draws (numpy legacy RNG, same order):
    weights ``randn/sqrt(fan_in)`` (w_in, w_rec, w_out, feedback), inputs ``rand < 0.05`` with
    the first step silent, target a normalised sum of four sines (periods 1000, 500, 333, 200)."""
    rs = np.random.RandomState(seed)
    f32 = np.float32
    w_in = np.array(rs.randn(n_in, n_rec).T / np.sqrt(n_in), f32).T  # (pre, post)
    w_rec = np.array(rs.randn(n_rec, n_rec).T / np.sqrt(n_rec), f32)
    np.fill_diagonal(w_rec, 0.0)
    w_rec = w_rec.T
    w_out = np.array(rs.randn(n_rec, 1).T / np.sqrt(n_rec), f32).T
    feedback = np.array(rs.randn(n_rec, 1) / np.sqrt(n_rec), f32)
    x = (rs.rand(steps, n_in) < 0.05).astype(np.float64)
    x[0] = 0
    amps = rs.uniform(0.5, 2.0, 4)
    phases = rs.uniform(0.0, 2.0 * np.pi, 4)
    sines = [a * np.sin(np.linspace(ph, ph + 2.0 * np.pi * (steps // per), steps))
             for a, ph, per in zip(amps, phases, [1000, 500, 333, 200])]
    tgt = sum(sines)
    tgt = tgt - tgt[0]
    tgt = tgt / max(np.abs(tgt).max(), 1e-6)
    return {"w_in": w_in, "w_rec": w_rec, "w_out": w_out, "feedback": feedback,
            "xs": np.repeat(x[None], n_iter, 0), "targets": np.repeat(tgt[None, :, None], n_iter, 0),
            "tau_m_ms": 30.0, "tau_out_ms": 30.0, "v_th": 0.03, "t_ref_ms": 0.0}


def evidence_task(n_iter: int = 5, seed: int = 1) -> dict:
    """Evidence accumulation (40 in, 50 LIF + 50 ALIF, 2 out) with NEST's draws: 7 cues of
    100 steps with 50-step gaps, 1050 steps of background, 150 recall steps (the learning
    window); weights ``randn/sqrt(fan_in)``, Glorot-uniform readout, ``randn`` feedback."""
    rs = np.random.RandomState(seed)
    n_in, n_reg, n_ad, n_out = 40, 50, 50, 2
    n_rec = n_reg + n_ad
    n_symbols, n_cues, prob_group, spike_prob = 4, 7, 0.3, 0.04
    cue, spacing, bg, recall = 100, 50, 1050, 150
    steps = n_cues * (cue + spacing) + bg + recall
    f32 = np.float32
    w_in = np.array(rs.randn(n_in, n_rec).T / np.sqrt(n_in), f32).T
    w_rec = np.array(rs.randn(n_rec, n_rec).T / np.sqrt(n_rec), f32)
    np.fill_diagonal(w_rec, 0.0)
    w_rec = w_rec.T
    lim = np.sqrt(3.0 / max(1.0, (n_rec + n_out) / 2.0))
    w_out = np.array(rs.uniform(-lim, lim, size=(n_rec, n_out)).T, f32).T
    feedback = np.array(rs.randn(n_rec, n_out), f32)
    n_pop = n_in // n_symbols
    xs = np.zeros((n_iter, steps, n_in))
    targets = np.zeros((n_iter, steps, n_out))
    for it in range(n_iter):
        choices = np.array([prob_group, 1 - prob_group], f32)
        idx = rs.choice([0, 1], 1)
        probs = np.zeros((1, 2), f32)
        probs[:, 0] = choices[idx]
        probs[:, 1] = choices[1 - idx]
        cues = rs.choice([0, 1], n_cues, p=probs[0])
        p_in = np.zeros((1, steps, n_in))
        for c_idx in range(n_cues):
            start = c_idx * (cue + spacing) + spacing
            pop = cues[c_idx] * n_pop
            p_in[0, start:start + cue, pop:pop + n_pop] = spike_prob
        p_in[:, -recall:, 2 * n_pop:3 * n_pop] = spike_prob
        p_in[:, :, 3 * n_pop:] = spike_prob / 4.0
        bools = p_in > rs.rand(p_in.size).reshape(p_in.shape)
        bools[:, 0, :] = 0
        xs[it] = bools[0]
        targets[it, :, int(np.sum(cues) > n_cues // 2)] = 1.0
    alpha = np.exp(-1.0 / 20.0)
    rho = np.exp(-1.0 / 2000.0)
    beta_ad = 1.7 * (1.0 - rho) / (1.0 - alpha)
    beta = np.r_[np.zeros(n_reg), np.full(n_ad, beta_ad)]
    mask = np.zeros(steps, bool)
    mask[-recall:] = True
    return {"w_in": w_in, "w_rec": w_rec, "w_out": w_out, "feedback": feedback, "xs": xs, "targets": targets,
            "beta": beta, "err_mask": mask, "tau_m_ms": 20.0, "tau_out_ms": 20.0, "v_th": 0.6, "t_ref_ms": 5.0,
            "adapt_tau_ms": 2000.0, "adapt_beta": beta_ad, "learning_window": recall}


def golden_setup(task: str, n_iter: int = 5):
    """``(constants, options, task dict)`` of NEST's golden runs with NEST's conventions."""
    from rtsnn.learn.online.eprop import EpropOptions, nest_constants

    if task == "sine":
        d = sine_task(n_iter)
        constants = nest_constants(d["tau_m_ms"], d["tau_out_ms"], d["v_th"], d["t_ref_ms"])
        options = EpropOptions(lr=1e-4, feedback="random", optimizer="gd", update_every_ticks=d["xs"].shape[1],
                               loss="mse", conventions="nest_bsshslm_2020", c_reg=300.0, reg_rate_hz=10.0)
    elif task == "evidence":
        d = evidence_task(n_iter)
        constants = nest_constants(d["tau_m_ms"], d["tau_out_ms"], d["v_th"], d["t_ref_ms"], d["adapt_tau_ms"],
                                 d["adapt_beta"], model="alif")
        options = EpropOptions(lr=5e-3, feedback="random", optimizer="adam", update_every_ticks=d["xs"].shape[1],
                               loss="cross_entropy", conventions="nest_bsshslm_2020", regular_spike_arrival=True,
                               c_reg=300.0, reg_rate_hz=10.0, average_gradient=True,
                               learning_window_ticks=d["learning_window"])
    else:
        raise ValueError(f"task must be one of {', '.join(GOLDEN)}, got {task!r}")
    return constants, options, d


def run_golden(task: str, dtype: str = "float64", n_iter: int = 5) -> list[float]:
    """Train NEST's golden task with NEST's conventions; return the per-iteration losses."""
    from rtsnn.learn.online.eprop import train_sequences

    constants, options, d = golden_setup(task, n_iter)
    res = train_sequences(constants, options, d["w_in"], d["w_rec"], d["w_out"], d["xs"], d["targets"],
                          beta=d.get("beta"), feedback=d["feedback"], err_mask=d.get("err_mask"),
                          dtype=np.dtype(dtype))
    return res["losses"]


def run_nest_regression(d: dict, lr: float = 1e-4, c_reg: float = 300.0, f_target_hz: float = 10.0) -> dict:
    """Train the regression task ``d`` (as returned by :func:`sine_task`) live in NEST 3.10
    with ``eprop_iaf_bsshslm_2020`` / ``eprop_readout_bsshslm_2020`` and gradient descent;
    return ``{"losses": [...], "wall_s": simulate time}``. The network, spikes and target
    are exactly ``d``'s; NEST's pipeline delays (generator -> parrot -> recurrent -> readout,
    1 step each) are the ones its e-prop examples use.
    """
    import time

    import nest

    xs, targets = d["xs"], d["targets"]
    n_iter, steps, n_in = xs.shape
    n_rec = d["w_in"].shape[1]
    n_out = d["w_out"].shape[1]
    nest.ResetKernel()
    if hasattr(nest, "VerbosityLevel"):
        nest.verbosity = nest.VerbosityLevel.ERROR
    nest.set(eprop_learning_window=float(steps), eprop_reset_neurons_on_update=True,
             eprop_update_interval=float(steps), print_time=False, resolution=1.0, total_num_virtual_procs=1)
    v_th = d["v_th"]
    rec_params = {"C_m": 1.0, "c_reg": c_reg, "E_L": 0.0, "f_target": f_target_hz,
                  "flush_event_send_interval": float(steps), "I_e": 0.0, "regular_spike_arrival": False,
                  "surrogate_gradient_function": "piecewise_linear", "surrogate_gradient_height": 0.3 / v_th,
                  "surrogate_gradient_width": abs(v_th), "t_ref": d["t_ref_ms"], "tau_m": d["tau_m_ms"],
                  "V_m": 0.0, "V_th": v_th}
    out_params = {"C_m": 1.0, "E_L": 0.0, "I_e": 0.0, "loss": "mean_squared_error", "regular_spike_arrival": False,
                  "tau_m": d["tau_out_ms"], "V_m": 0.0}
    gen = nest.Create("spike_generator", n_in)
    parrots = nest.Create("parrot_neuron", n_in)
    rec = nest.Create("eprop_iaf_bsshslm_2020", n_rec, rec_params)
    out = nest.Create("eprop_readout_bsshslm_2020", n_out, out_params)
    tgt_gen = nest.Create("step_rate_generator", n_out)
    offset = 1  # generator offset; recurrent sequences start at offset + 1, the readout's at offset + 3
    mm = nest.Create("multimeter", params={"interval": 1.0, "record_from": ["readout_signal", "target_signal"],
                                           "start": float(offset + 3), "stop": float(offset + 3 + n_iter * steps)})
    nest.SetDefaults("eprop_synapse_bsshslm_2020", {
        "optimizer": {"type": "gradient_descent", "batch_size": 1, "eta": lr, "Wmin": -100.0, "Wmax": 100.0},
        "average_gradient": False})
    syn = {"synapse_model": "eprop_synapse_bsshslm_2020", "delay": 1.0, "tau_m_readout": d["tau_out_ms"]}
    a2a = {"rule": "all_to_all", "allow_autapses": False}
    o2o = {"rule": "one_to_one"}
    nest.Connect(gen, parrots, o2o, {"synapse_model": "static_synapse", "delay": 1.0})
    nest.Connect(parrots, rec, a2a, {**syn, "weight": np.ascontiguousarray(d["w_in"].T)})
    nest.Connect(rec, rec, a2a, {**syn, "weight": np.ascontiguousarray(d["w_rec"].T)})
    nest.Connect(rec, out, a2a, {**syn, "weight": np.ascontiguousarray(d["w_out"].T)})
    nest.Connect(out, rec, a2a, {"synapse_model": "eprop_learning_signal_connection_bsshslm_2020", "delay": 1.0,
                                 "weight": np.ascontiguousarray(d["feedback"])})
    nest.Connect(tgt_gen, out, o2o, {"synapse_model": "rate_connection_delayed", "delay": 1.0, "receptor_type": 2})
    nest.Connect(mm, out, a2a, {"synapse_model": "static_synapse", "delay": 1.0})
    starts = np.arange(n_iter) * steps + offset
    gen.set([{"spike_times": np.hstack([starts[it] + np.flatnonzero(xs[it, :, i]) for it in range(n_iter)]
                                       ).astype(np.float64)} for i in range(n_in)])
    for k in range(n_out):
        tgt_gen[k].set({"amplitude_times": np.arange(n_iter * steps, dtype=float) + offset + 3,
                        "amplitude_values": targets[:, :, k].reshape(-1).astype(float)})
    t0 = time.perf_counter()
    nest.Simulate(float(n_iter * steps + offset + 3 + 1))
    wall = time.perf_counter() - t0
    ev = mm.get("events")
    ys, ts, snd = np.asarray(ev["readout_signal"]), np.asarray(ev["target_signal"]), np.asarray(ev["senders"])
    y = np.stack([ys[snd == s] for s in np.unique(snd)]).reshape(n_out, n_iter, steps)
    t = np.stack([ts[snd == s] for s in np.unique(snd)]).reshape(n_out, n_iter, steps)
    losses = (0.5 * np.sum((y - t) ** 2, axis=(0, 2))).tolist()
    return {"losses": losses, "wall_s": wall}
