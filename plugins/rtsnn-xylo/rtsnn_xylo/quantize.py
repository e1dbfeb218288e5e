"""Map a float rtsnn :class:`~rtsnn.snn.params.Model` onto Xylo's integer network.

Neuron mapping (rtsnn's discrete LIF, REFERENCES section 1, onto Xylo's current-based IAF):

* membrane decay ``alpha = exp(-dt/tau_mem)`` -> ``dash_mem = round(log2(tau_mem/dt))``
  (per-step decay ``1 - 2^-dash``); the same for the readout ``tau_out_s``. ``dt`` is the
  chip step: the model's ``dt_s / steps_per_tick``.
* rtsnn injects input straight into ``v``; Xylo integrates it through a synaptic current
  that decays before it reaches ``Vmem``. A fast synapse (``dash_syn = 1``, i.e. ``tau_syn
  ~ dt``, default; ``tau_syn_s`` overrides it) hands ~all of a weight's charge to ``Vmem``
  within a few steps. Only synapse 0 is used; synapse 1 gets the same decay and no weights.
* scale: float value ``u`` becomes ``round(u * s)``; the threshold ``round(v_th * s)``;
  weights ``round(w * s / 2^ws) << ws``. ``s`` is as large as both the threshold cap
  (``threshold_max``, default 4095: eight thresholds of head-room below the int16 rail)
  and the int8 * 2^7 weight range allow; the weight shifts ``ws_in``, ``ws_rec`` are the
  smallest that fit every weight into int8.
  ``quantization='global'`` uses one ``s`` for every hidden neuron; ``'per_neuron'`` one per
  neuron (column of ``w_in``/``w_rec``), so one neuron's large weights do not coarsen the others.
* readout (host side ``y = readout_int / out_scale + b_out``): ``'isyn'`` (default) reads the
  output neurons' synaptic current with ``dash_syn_out`` from ``tau_out_s`` -- the chip's
  version of rtsnn's readout trace, one step late (hidden -> output spikes arrive the next
  step) and already decayed once (folded into ``out_scale``); ``'vmem'`` reads ``Vmem_out``
  with a fast output synapse and ``dash_mem_out`` from ``tau_out_s``. Output thresholds are
  32767 so output neurons (at most 1 spike per step on the chip) practically never fire.

Not representable on Xylo (violations unless ``strict=False``, which drops them with a
warning): ALIF adaptation (``beta_adapt > 0``), refractory periods. Differences that stay:
hidden neurons may fire up to 31 spikes per step (rtsnn: 1) and reset right after the spike
(rtsnn: on the next step); quantisation rounding. QAT closes those gaps.
"""

from __future__ import annotations

import math

import numpy as np

from rtsnn.snn.params import Model
from rtsnn_xylo.drc import DrcError, DrcReport, check
from rtsnn_xylo.spec import XYLO2, XyloConfig, XyloLimits
from rtsnn_xylo.ticks import check_steps_per_tick

QUANTIZATIONS = ("global", "per_neuron")
READOUTS = ("isyn", "vmem")


def tau_to_dash(tau_s: float, dt_s: float) -> int:
    """``round(log2(tau/dt))``: the bit-shift whose decay ``1 - 2^-dash`` best matches ``exp(-dt/tau)`` for tau >> dt."""
    return int(round(math.log2(tau_s / dt_s)))


def dash_to_tau(dash: int, dt_s: float) -> float:
    """Inverse of :func:`tau_to_dash`: ``dt * 2^dash``."""
    return dt_s * 2.0**dash


def _dash_or_violation(report: DrcReport, name: str, tau_s: float, dt_s: float, lim: XyloLimits) -> int:
    d = tau_to_dash(tau_s, dt_s)
    lo, hi = max(lim.dash_min, 1), lim.dash_max
    if not lo <= d <= hi:
        report.add(name, f"{dt_s * 2**(lo - 0.5):.3g}..{dt_s * 2**(hi + 0.5):.3g} s at dt_s = {dt_s} "
                         f"(dash {lo}..{hi})", f"got {tau_s} s, which maps to dash {d}")
    return int(min(max(d, lo), hi))


def _shift_for(max_abs: float, s_max: float) -> int:
    """Smallest weight shift with ``round(max_abs * s / 2^ws) <= 127``."""
    for ws in range(8):
        if max_abs * s_max / 2**ws < 127.49:
            return ws
    return 7


def check_map_options(quantization: str, readout: str, threshold_max: int, limits: XyloLimits) -> None:
    """Refuse a bad mapping option of :func:`map_model` or :func:`rtsnn_xylo.graph_map.map_graph`
    (``ValueError`` naming the option): ``quantization`` in :data:`QUANTIZATIONS`, ``readout``
    in :data:`READOUTS`, ``threshold_max`` an int in ``1..limits.threshold_max``."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {', '.join(READOUTS)}, got {readout!r}")
    if isinstance(threshold_max, bool) or not isinstance(threshold_max, (int, np.integer)) \
            or not 1 <= threshold_max <= limits.threshold_max:
        raise ValueError(f"threshold_max must be an int in 1..{limits.threshold_max}, got {threshold_max!r}")


def neuron_scale(col_max: np.ndarray, v_th: np.ndarray, quantization: str, threshold_max: int,
                 limits: XyloLimits = XYLO2) -> np.ndarray:
    """Per-neuron integer scale ``s`` (``V_chip = s v``) from each neuron's largest incoming
    ``|w|`` (``col_max``, float units) and threshold ``v_th``: as large as both the threshold
    cap (``s <= threshold_max / v_th``) and the weight range (``s <= weight_max 2^weight_shift_max
    / col_max``) allow; ``'global'``: the smallest over all neurons, for every neuron."""
    s_th = threshold_max / v_th
    w_cap = limits.weight_max * 2**limits.weight_shift_max
    if quantization == "global":
        m = float(col_max.max(initial=0.0))
        s_min = float(s_th.min())
        return np.full(v_th.shape, min(s_min, w_cap / m) if m > 0 else s_min)
    return np.where(col_max > 0, np.minimum(s_th, w_cap / np.where(col_max > 0, col_max, 1.0)), s_th)


def quantise_weights(w: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, int]:
    """``(w_q, ws)``: ``w_q = round(w s / 2^ws)`` (int64, ``s`` per column) with ``ws`` the
    smallest shift that fits every weight into int8 (:func:`_shift_for`)."""
    ws = _shift_for(float((np.abs(w) * scale).max(initial=0.0)), 1.0)
    return np.rint(w * scale / 2**ws).astype(np.int64), ws


def quantise_threshold(v_th: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Integer thresholds ``max(round(v_th s), 1)`` (int64)."""
    return np.maximum(np.rint(v_th * scale), 1).astype(np.int64)


def quantise_hidden(w_in: np.ndarray, w_rec: np.ndarray, v_th: np.ndarray, quantization: str, threshold_max: int,
                    limits: XyloLimits = XYLO2) -> tuple[np.ndarray, np.ndarray, int, int, np.ndarray, np.ndarray]:
    """Hidden weights (float, ``(n_in, n)`` and ``(n, n)``, row = presynaptic, in units of the
    neurons' ``v``) and per-neuron thresholds -> ``(w_in_q, w_rec_q, ws_in, ws_rec, threshold,
    scale)``: int8 weights with their shifts, integer thresholds and the per-neuron scale ``s``
    (``V_chip = s v``; module docstring). ``'global'``: one ``s`` for every neuron."""
    w_in = np.asarray(w_in, np.float64)
    w_rec = np.asarray(w_rec, np.float64)
    v_th = np.asarray(v_th, np.float64)
    col_max = np.maximum(np.abs(w_in).max(axis=0, initial=0.0), np.abs(w_rec).max(axis=0, initial=0.0))
    scale = neuron_scale(col_max, v_th, quantization, threshold_max, limits)
    w_in_q, ws_in = quantise_weights(w_in, scale)
    w_rec_q, ws_rec = quantise_weights(w_rec, scale)
    return w_in_q, w_rec_q, ws_in, ws_rec, quantise_threshold(v_th, scale), scale


def quantise_trace_readout(w_out: np.ndarray, dash_out: np.ndarray, readout: str, quantization: str,
                           dash_mem: int, limits: XyloLimits = XYLO2
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A readout trace of the hidden spikes (``w_out`` (n_hid, n_out) float, per-output decay
    ``dash_out``) -> ``(w_out_q, out_scale, dash_syn_out, dash_mem_out)``: int8 weights with
    shift 0 and the host-side scale (``y = readout_int / out_scale + b_out``; module docstring).
    ``dash_mem`` is the output membranes' decay under the ``'isyn'`` readout (never read there)."""
    w_out = np.asarray(w_out, np.float64)
    dash_out = np.asarray(dash_out, np.int64)
    n_out = w_out.shape[1]
    out_max = np.abs(w_out).max(axis=0, initial=0.0)
    if quantization == "global":
        m = float(out_max.max(initial=0.0))
        s_out = np.full(n_out, limits.weight_max / m if m > 0 else 1.0)
    else:
        s_out = np.where(out_max > 0, limits.weight_max / np.where(out_max > 0, out_max, 1.0), 1.0)
    w_out_q = np.rint(w_out * s_out).astype(np.int64)
    if readout == "isyn":
        dash_syn_out, dash_mem_out = dash_out.copy(), np.full(n_out, dash_mem, np.int64)
        out_scale = s_out * (1.0 - 2.0**-dash_out)  # Isyn_out is read after one decay
    else:
        dash_syn_out, dash_mem_out = np.ones(n_out, np.int64), dash_out.copy()
        out_scale = s_out.copy()
    return w_out_q, out_scale, dash_syn_out, dash_mem_out


def map_model(model: Model, quantization: str = "global", threshold_max: int = 4095,
              tau_syn_s: float | None = None, readout: str = "isyn", strict: bool = True,
              limits: XyloLimits = XYLO2, steps_per_tick: int = 1) -> tuple[XyloConfig, DrcReport]:
    """Quantise ``model`` for Xylo. Returns ``(config, report)`` (report: warnings only);
    raises :class:`DrcError` listing *every* violation (of the model and of the mapped
    config) at once, or ``ValueError`` for a bad option. ``steps_per_tick = K`` runs each of
    the model's ``dt_s`` ticks as ``K`` chip steps of ``dt_s / K`` (:mod:`rtsnn_xylo.ticks`):
    the decays are mapped at the step, ``config.dt_s`` is the step."""
    if not isinstance(model, Model):
        raise ValueError(f"map_model needs a rtsnn Model, got {type(model).__name__}")
    check_map_options(quantization, readout, threshold_max, limits)
    steps_per_tick = check_steps_per_tick(steps_per_tick)
    s, w = model.constants, model.weights
    dt = s.dt_s / steps_per_tick
    rep = DrcReport()
    unsupported = []
    if s.adaptive and s.beta_adapt > 0:
        unsupported.append(("neuron model", "'lif' (or 'alif' with beta_adapt = 0); Xylo has no threshold adaptation",
                            f"'alif' with beta_adapt = {s.beta_adapt}"))
    if s.n_ref > 0:
        unsupported.append(("refractory_s", "0 (Xylo has no refractory period)", f"got {s.refractory_s} s"))
    for name, allowed, detail in unsupported:
        if strict:
            rep.add(name, allowed, detail)
        else:
            rep.warnings.append(f"{name}: {detail} dropped (strict=False); allowed: {allowed}")
    dash_mem = _dash_or_violation(rep, "tau_mem_s", s.tau_mem_s, dt, limits)
    dash_out = _dash_or_violation(rep, "tau_out_s", s.tau_out_s, dt, limits)
    dash_syn = 1 if tau_syn_s is None else _dash_or_violation(rep, "tau_syn_s", tau_syn_s, dt, limits)

    n_rec, n_out = model.n_rec, model.n_out
    w_in_q, w_rec_q, ws_in, ws_rec, threshold, scale = quantise_hidden(
        w.w_in, w.w_rec, np.full(n_rec, s.v_th), quantization, threshold_max, limits)
    w_out_q, out_scale, dash_syn_out, dash_mem_out = quantise_trace_readout(
        w.w_out, np.full(n_out, dash_out), readout, quantization, dash_mem, limits)

    z3 = np.zeros((model.n_in, n_rec, 2), np.int64)
    z3[:, :, 0] = w_in_q
    r3 = np.zeros((n_rec, n_rec, 2), np.int64)
    r3[:, :, 0] = w_rec_q
    cfg = XyloConfig(
        w_in=z3, w_rec=r3, w_out=w_out_q, threshold=threshold,
        threshold_out=np.full(n_out, limits.threshold_max), dash_mem=np.full(n_rec, dash_mem),
        dash_syn=np.full((n_rec, 2), dash_syn), dash_mem_out=dash_mem_out,
        dash_syn_out=dash_syn_out, weight_shift_in=ws_in, weight_shift_rec=ws_rec,
        weight_shift_out=0, has_bias=False, dt_s=dt, out_scale=out_scale, b_out=w.b_out.astype(np.float64),
        steps_per_tick=steps_per_tick,
        notes={"quantization": quantization, "readout": readout, "threshold_max": int(threshold_max),
               "hidden_scale_min": float(scale.min()), "hidden_scale_max": float(scale.max()),
               "tau_mem_s_chip": dash_to_tau(dash_mem, dt), "tau_out_s_chip": dash_to_tau(dash_out, dt),
               "weight_rel_error": weight_rel_error(w.w_in, w.w_rec, w_in_q << ws_in, w_rec_q << ws_rec, scale)})
    rep.extend(check(cfg, limits))
    if not rep.ok:
        raise DrcError(rep, limits)
    return cfg, rep


def weight_rel_error(w_in: np.ndarray, w_rec: np.ndarray, w_in_eff: np.ndarray, w_rec_eff: np.ndarray,
                     scale: np.ndarray) -> float:
    """RMS quantisation error of the hidden weights relative to their RMS (float units):
    ``rms(w_eff / s - w) / rms(w)`` over ``w_in`` and ``w_rec`` together (0 when ``rms(w)`` is
    0 or not finite)."""
    w_in = np.asarray(w_in, np.float64)
    w_rec = np.asarray(w_rec, np.float64)
    err = np.concatenate([(w_in_eff / scale - w_in).ravel(), (w_rec_eff / scale - w_rec).ravel()])
    ref = np.concatenate([w_in.ravel(), w_rec.ravel()])
    rms = float(np.sqrt(np.mean(ref**2)))
    return float(np.sqrt(np.mean(err**2)) / rms) if rms > 0 and math.isfinite(rms) else 0.0
