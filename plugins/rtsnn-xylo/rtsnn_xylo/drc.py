"""Design-rule check: does an integer network fit the chip? Every violation at once.

:func:`check` inspects a :class:`~rtsnn_xylo.spec.XyloConfig` against
:class:`~rtsnn_xylo.spec.XyloLimits` and returns a :class:`DrcReport` listing *all*
violations (sizes, int8 weights, weight shifts, thresholds, biases, bit-shift decays,
fan-out) and warnings (legal but almost certainly unintended settings, e.g. ``dash = 0``
which zeroes a state every step). :func:`require_fit` raises :class:`DrcError` (a
``ValueError``) whose message lists them all, each naming the parameter, the offending
value(s) and the allowed range. xylosim checks few of these itself (a negative threshold
is accepted and fires 31 spikes every step; a weight shift of 9 silently overflows), so
nothing is built before this check passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rtsnn_xylo.spec import XYLO2, XyloConfig, XyloLimits


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``parameter`` (e.g. ``'w_rec'``), ``allowed`` (e.g. ``'-128..127'``),
    ``detail`` (what was found, with counts and the worst offender)."""

    parameter: str
    allowed: str
    detail: str

    def __str__(self) -> str:
        return f"{self.parameter}: {self.detail} (allowed: {self.allowed})"


@dataclass
class DrcReport:
    violations: list[Violation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, parameter: str, allowed: str, detail: str) -> None:
        self.violations.append(Violation(parameter, allowed, detail))

    def extend(self, other: DrcReport) -> None:
        self.violations.extend(other.violations)
        self.warnings.extend(other.warnings)

    def __str__(self) -> str:
        if len(self.violations) == 1 and not self.warnings:  # one refusal: one line
            return f"1 design-rule violation: {self.violations[0]}"
        lines = [f"{len(self.violations)} design-rule violation(s):"] + [f"  - {v}" for v in self.violations]
        if self.warnings:
            lines += [f"{len(self.warnings)} warning(s):"] + [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)


class DrcError(ValueError):
    """The network does not fit the chip; ``report`` holds every violation."""

    def __init__(self, report: DrcReport, limits: XyloLimits = XYLO2):
        self.report = report
        super().__init__(f"the network does not fit {limits.name}: {report}")


def _range(report: DrcReport, name: str, arr: np.ndarray, lo: int, hi: int) -> None:
    a = np.asarray(arr)
    bad = (a < lo) | (a > hi)
    n_bad = int(np.count_nonzero(bad))
    if n_bad:
        idx = np.unravel_index(int(np.argmax(np.abs(np.where(bad, a.astype(np.float64), 0.0)))), a.shape)
        where = f"[{', '.join(str(int(i)) for i in idx)}]" if a.ndim else ""
        report.add(name, f"{lo}..{hi}", f"{n_bad} of {a.size} value(s) out of range, worst {name}{where} = "
                                       f"{int(a[idx])}")


def check_sizes(report: DrcReport, n_in: int, n_hid: int, n_out: int, limits: XyloLimits = XYLO2) -> None:
    for name, n, hi in (("n_in (input channels)", n_in, limits.n_in_max),
                        ("n_hid (hidden neurons)", n_hid, limits.n_hid_max),
                        ("n_out (output neurons)", n_out, limits.n_out_max)):
        if not 1 <= n <= hi:
            report.add(name, f"1..{hi}", f"got {n}")


def check(cfg: XyloConfig, limits: XyloLimits = XYLO2) -> DrcReport:
    """Every rule of ``limits`` applied to ``cfg``; never raises on a well-formed config."""
    r = DrcReport()
    check_sizes(r, cfg.n_in, cfg.n_hid, cfg.n_out, limits)
    for name in ("w_in", "w_rec", "w_out"):
        _range(r, name, getattr(cfg, name), limits.weight_min, limits.weight_max)
    for name in ("weight_shift_in", "weight_shift_rec", "weight_shift_out"):
        _range(r, name, np.asarray(getattr(cfg, name)), 0, limits.weight_shift_max)
    for name in ("threshold", "threshold_out"):
        _range(r, name, getattr(cfg, name), limits.threshold_min, limits.threshold_max)
    for name in ("bias", "bias_out"):
        _range(r, name, getattr(cfg, name), limits.state_min, limits.state_max)
    for name in ("dash_mem", "dash_syn", "dash_mem_out", "dash_syn_out"):
        arr = getattr(cfg, name)
        _range(r, name, arr, limits.dash_min, limits.dash_max)
        n_zero = int(np.count_nonzero(arr == 0))
        if n_zero:
            r.warnings.append(f"{name}: {n_zero} value(s) are 0, which zeroes that state every step")
    if np.any(cfg.w_rec[np.arange(cfg.n_hid), np.arange(cfg.n_hid)] != 0):
        r.warnings.append("w_rec has self-connections (allowed on the chip, absent from rtsnn models)")
    fan_out = np.count_nonzero(cfg.w_rec, axis=(1, 2)) if cfg.n_hid else np.zeros(0, np.int64)
    over = np.flatnonzero(fan_out > limits.fan_out_max)
    if over.size:
        worst = int(over[np.argmax(fan_out[over])])
        r.add("w_rec fan-out (recurrent synapses per hidden neuron)", f"0..{limits.fan_out_max}",
              f"{over.size} neuron(s) over the limit, worst neuron {worst} with {int(fan_out[worst])}")
    if not np.all(np.isfinite(cfg.out_scale)) or np.any(cfg.out_scale <= 0):
        r.add("out_scale", "finite > 0", f"got {cfg.out_scale.tolist()}")
    if not (np.isfinite(cfg.dt_s) and cfg.dt_s > 0):
        r.add("dt_s", "finite > 0", f"got {cfg.dt_s}")
    return r


def require_fit(cfg: XyloConfig, limits: XyloLimits = XYLO2) -> DrcReport:
    """:func:`check`, raising :class:`DrcError` listing every violation if any."""
    r = check(cfg, limits)
    if not r.ok:
        raise DrcError(r, limits)
    return r
