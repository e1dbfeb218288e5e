"""Helpers shared by ``scripts/reproduce_{xor,iris,yinyang}.py``: BPTT hand-off (lazy),
discretisation of spike-time inputs onto a dt grid, an snnTorch peer for epoch timing, the FP
paper's published figures and the summaries the ``--paper`` comparison prints.

Published figures (Lee, Haghighatshoar, Karbasi, journal version, appendix A.8 and Tables
1-3): XOR 2-4-2, 1000 initialisations, mean 17.52 / max 98 full-batch steps to 100 %
training accuracy; Iris 4-10-3, 100 % test accuracy on one (unstated) split after a grid
search; Yin-Yang 4(+bias)-150-3, 95.0 +- 0.83 % test over 10 initialisations, 300 epochs.
Accuracies here are fractions in [0, 1].
"""

from __future__ import annotations

import json
import math
import time

import numpy as np


def load_bptt():
    """``rtsnn.learn.offline.bptt.train_classifier`` or a SystemExit naming what is missing."""
    try:
        from rtsnn.learn.offline.bptt import train_classifier  # noqa: PLC0415
    except ImportError as e:  # the BPTT module is built separately
        raise SystemExit(f"--method bptt is unavailable: rtsnn.learn.offline.bptt could not be "
                         f"imported ({e}); use --method fp") from None
    return train_classifier


def times_to_grid(in_times: np.ndarray, unit_s: float, dt_s: float, n_steps: int) -> np.ndarray:
    """Spike times (n, n_in) in network time units -> float32 spike raster (n, n_steps, n_in):
    a spike at time t lands in step ``round(t * unit_s / dt_s)`` (inf = no spike; spikes past
    the grid are dropped)."""
    x = np.asarray(in_times, dtype=np.float64)
    n, n_in = x.shape
    out = np.zeros((n, n_steps, n_in), dtype=np.float32)
    fin = np.isfinite(x)
    steps = np.full(x.shape, -1, dtype=np.int64)
    steps[fin] = np.rint(x[fin] * unit_s / dt_s).astype(np.int64)
    ok = (steps >= 0) & (steps < n_steps)
    r, c = np.nonzero(ok)
    out[r, steps[r, c], c] = 1.0
    return out


def snntorch_epoch_seconds(x_grid: np.ndarray, y: np.ndarray, hidden: int, n_classes: int, *,
                           alpha_step: float, beta_step: float, batch_size: int = 32,
                           seed: int = 0, threads: int = 1) -> dict:
    """One training epoch of an equivalent discretised network in snnTorch (Linear ->
    Synaptic -> Linear -> Synaptic, spike-count cross-entropy, Adam), timed; returns
    ``{"epoch_s": ..., "loss": ...}`` or ``{"error": ...}`` if snnTorch is unavailable."""
    try:
        import snntorch as snn  # noqa: PLC0415
        import torch  # noqa: PLC0415
    except ImportError as e:
        return {"error": f"snntorch/torch not importable: {e}"}
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    n_in = x_grid.shape[2]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(n_in, hidden, bias=False)
            self.lif1 = snn.Synaptic(alpha=alpha_step, beta=beta_step)
            self.fc2 = torch.nn.Linear(hidden, n_classes, bias=False)
            self.lif2 = snn.Synaptic(alpha=alpha_step, beta=beta_step)

        def forward(self, x):  # x: (T, B, n_in)
            syn1, mem1 = self.lif1.init_synaptic()
            syn2, mem2 = self.lif2.init_synaptic()
            count = 0
            for t in range(x.shape[0]):
                s1, syn1, mem1 = self.lif1(self.fc1(x[t]), syn1, mem1)
                s2, syn2, mem2 = self.lif2(self.fc2(s1), syn2, mem2)
                count = count + s2
            return count

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt = torch.from_numpy(np.ascontiguousarray(x_grid.transpose(1, 0, 2)))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    rng = np.random.default_rng(seed)
    perm = torch.from_numpy(rng.permutation(len(y)))
    t0 = time.perf_counter()
    total = 0.0
    for b in range(0, len(y), batch_size):
        idx = perm[b:b + batch_size]
        out = net(xt[:, idx])
        loss = torch.nn.functional.cross_entropy(out, yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    return {"epoch_s": time.perf_counter() - t0, "loss": total / len(y)}


def mean_sd(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def emit(record: dict) -> None:
    """Print one JSON line (NaN -> null)."""
    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, np.generic):
            return clean(o.item())
        return o
    print(json.dumps(clean(record), allow_nan=False), flush=True)


PAPER_SOURCE = ("Lee, Haghighatshoar, Karbasi, 'Exact Gradient Computation for Spiking Neural "
                "Networks Through Forward Propagation', appendix A.8, Tables 1-3")

PUBLISHED = {
    "xor": {"steps_mean": 17.52, "steps_max": 98, "converged": 1000, "inits": 1000,
            "source": PAPER_SOURCE + " (A.8.1, Table 1)",
            "notes": "'Across all 1000 trials, the maximum steps to converge was 98, with the "
                     "average being 17.52 steps'; one step = one full batch of the 4 patterns. "
                     "Peers report that the public notebook dropped 5 runs that never "
                     "converged (shared/REFERENCES.md section 2)."},
    "iris": {"test_acc_mean": 1.0, "test_acc_sd": None, "seeds": 1, "epochs": None,
             "source": PAPER_SOURCE + " (A.8.2, Table 2)",
             "notes": "100 % test accuracy on one split found by a grid search over "
                      "hyperparameters ('several networks achieved 100 %'); the split, its "
                      "size, the batch size and the number of epochs are not given."},
    "yinyang": {"test_acc_mean": 0.950, "test_acc_sd": 0.0083, "seeds": 10, "epochs": 300,
                "source": PAPER_SOURCE + " (A.8.3, Table 3)",
                "notes": "mean 95.0 (0.83) % over 10 random initialisations, 300 epochs, "
                         "batch 150, no heuristics ('only ... the exact gradients for SGD')."},
}


class PaperConflict(ValueError):
    """An option that contradicts the paper's settings was given together with --paper."""


def refuse_paper_conflicts(given: dict) -> None:
    """``given`` maps an option name to (value, allowed): raise :class:`PaperConflict` naming
    the first option whose value is not allowed with ``--paper``."""
    for name, (value, ok) in given.items():
        if not ok:
            raise PaperConflict(f"--paper uses the paper's settings; {name}={value!r} "
                                f"contradicts them (drop {name} or drop --paper)")


def parse_override(text: str) -> dict:
    """The JSON object of a script's ``--override`` option; ValueError naming the option."""
    import json

    try:
        ov = json.loads(text)
    except ValueError as err:
        raise ValueError(f"--override: {err}") from None
    if not isinstance(ov, dict):
        raise ValueError("--override: must be a JSON object")
    return ov


def checked_options(prog: str, counts: dict, override: str, paper: bool, conflicts: dict) -> tuple[dict, int | None]:
    """The checks every reproduction script makes before it runs: each of ``counts`` (option
    name -> value, None when unset) must be >= 1, ``override`` must be a JSON object, and with
    ``paper`` no option of ``conflicts`` (as :func:`refuse_paper_conflicts` takes them) may
    contradict the paper's settings. Returns ``(override dict, None)``, or ``({}, 2)`` after
    printing the refusal (:func:`cli_refusal`)."""
    bad = [name for name, v in counts.items() if v is not None and v < 1]
    if bad:
        names = ", ".join(counts)
        return {}, cli_refusal(prog, ValueError(f"{names.rsplit(', ', 1)[0]} and {names.rsplit(', ', 1)[-1]} "
                                                f"must be >= 1" if len(counts) > 1 else f"{names} must be >= 1"))
    try:
        ov = parse_override(override)
        if paper:
            refuse_paper_conflicts({**conflicts, "--override": (override, not ov)})
    except ValueError as e:
        return {}, cli_refusal(prog, e)
    return ov, None


def cli_refusal(prog: str, err: Exception) -> int:
    """Print ``prog: error: ...`` as one line on stderr; return the exit status 2."""
    import sys  # noqa: PLC0415
    print(f"{prog}: error: {err}", file=sys.stderr, flush=True)
    return 2


def xor_summary(steps: list[int], inits: int) -> dict:
    """Steps to convergence over the converged inits, and how many converged."""
    return {"steps_mean": float(np.mean(steps)) if steps else None,
            "steps_max": int(np.max(steps)) if steps else None,
            "steps_median": float(np.median(steps)) if steps else None,
            "converged": len(steps), "inits": int(inits)}


def acc_summary(accs: list[float], epochs: int) -> dict:
    """Test accuracy mean / sd (ddof 1) over seeds, with the per-seed values."""
    m, sd = mean_sd(accs)
    return {"test_acc_mean": m, "test_acc_sd": sd, "seeds": len(accs), "epochs": int(epochs),
            "test_acc": [float(a) for a in accs]}
