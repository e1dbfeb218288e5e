"""The FP paper's Figure 6 (left), redone on Yin-Yang: exact gradients (FP) against BPTT with the
fast-sigmoid surrogate and with the straight-through estimator, each with a spike-count and a
spike-rate cross entropy; same architecture and the same initial weights per seed.

What the paper compared (journal version, appendix A.8.3 and footnote 2): FP trained with its
first-spike-time loss; "equivalent models" trained in snnTorch with "the same hyperparameters
and initializations, but with surrogate gradients" (fast sigmoid; straight-through
estimator), each with snnTorch's count-based cross entropy (CE of the output spike counts)
and spike-rate cross entropy (CE of the output spikes at every step, averaged over steps);
training loss over 300 epochs. We do the same with rtsnn's own trainers:

* FP: :func:`rtsnn.learn.offline.fp.train_classifier_fp`, the paper's Table 3 settings as
  ``scripts/reproduce_yinyang.py --paper`` reads them (alpha 0.999, beta 1, theta 1, window
  4, hidden neurons fire at most once, tau0 0.2, tau1 1, gamma 0.005), no heuristics; inputs
  ``t = 0.15 + 1.85 v`` plus a bias spike at 0.9 on a fifth channel; 4(+bias)-150-3.
* BPTT: :func:`rtsnn.learn.offline.bptt.train_classifier`, the same 5-150-3 feedforward
  network of LIF neurons (snnTorch's ``Leaky``: reset by subtraction, as the FP neuron
  subtracts theta, detached as snnTorch does), a spiking output layer whose spikes feed the
  loss (``output='spiking'``), losses ``count_ce`` (= snnTorch ``ce_count_loss``) and
  ``rate_ce`` (= ``ce_rate_loss``); surrogates snnTorch's ``fast_sigmoid()`` (slope 25,
  ``1/(1 + 25|x|)^2``) and ``straight_through_estimator()`` (``dz/du = 1``). One FP time unit
  is 10 steps of 1 ms (``tau_mem`` 10 ms = 1/beta), 40 steps = the FP window of 4 units; the
  input spike times are rounded onto that grid.
* Same initialisation: per seed one draw of :func:`fp.init_network` (hidden N(1.5, 0.8),
  output N(2, 0.1)) is used by every method. The discrete LIF has no synaptic current, so a
  weight ``w`` jumps its membrane by ``w`` where the FP neuron's PSP peaks at ``w h_max``
  (``h_max = max_t (e^{-alpha t} - e^{-beta t}) / (beta - alpha)`` ~ 0.368): BPTT starts from
  the same draw times ``h_max`` (same peak depolarisation per input spike). With the weights
  unscaled every output neuron fires at nearly every step and the loss stays at ln 3 (measured:
  6 epochs, all four BPTT variants, seed 0).
* Optimiser for all: Adam (0.9, 0.999, 1e-8), lr 5e-4, batch 150, no clipping, no schedule
  (Table 3). The test set (1000) is scored after every epoch; nothing is selected on it.

Prints one strict-JSON object (settings, per-run histories, the table of final figures) and
writes it to ``--json``; draws ``--png`` (loss and test accuracy per epoch, mean over seeds
with the min-max band).

    python scripts/figure6_yinyang.py --seeds 3 --epochs 70 --jobs 2 \\
        --json docs/img/figure6_yinyang.json --png docs/img/figure6_yinyang.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtsnn.datasets import load_yinyang  # noqa: E402
from rtsnn.learn.offline import fp  # noqa: E402
from rtsnn.learn.offline.fp_repro import times_to_grid  # noqa: E402

HIDDEN = 150
FP_SETTINGS = dict(alpha=0.999, beta=1.0, theta=1.0, t_max=4.0, max_hidden_spikes=1, tau0=0.2, tau1=1.0,
                   gamma=0.005)
INIT = dict(hidden_mean=1.5, hidden_sd=0.8, out_mean=2.0, out_sd=0.1)
LR, BATCH = 5e-4, 150
UNIT_S, DT_S, N_STEPS = 10e-3, 1e-3, 40  # one FP time unit = 10 steps of 1 ms; window 4 units
FAST_SIGMOID_SLOPE = 25.0  # snnTorch's default fast_sigmoid slope
METHODS = {
    "fp": dict(label="FP (exact), first-spike loss"),
    "fast_sigmoid/count_ce": dict(label="BPTT fast sigmoid, count CE", surrogate="fast_sigmoid", loss="count_ce"),
    "fast_sigmoid/rate_ce": dict(label="BPTT fast sigmoid, rate CE", surrogate="fast_sigmoid", loss="rate_ce"),
    "ste/count_ce": dict(label="BPTT straight-through, count CE", surrogate="ste", loss="count_ce"),
    "ste/rate_ce": dict(label="BPTT straight-through, rate CE", surrogate="ste", loss="rate_ce"),
}


def psp_peak(alpha: float, beta: float) -> float:
    """``max_t h(t)``, ``h = (e^{-alpha t} - e^{-beta t}) / (beta - alpha)`` (``t e^{-alpha t}``
    when alpha == beta)."""
    if abs(beta - alpha) < 1e-12:
        return math.exp(-1.0) / alpha
    t = math.log(beta / alpha) / (beta - alpha)
    return (math.exp(-alpha * t) - math.exp(-beta * t)) / (beta - alpha)


def _data():
    tr, te = load_yinyang("train"), load_yinyang("test")
    return tr, te, fp.encode_latency(tr.x), fp.encode_latency(te.x)


def run_one(job: tuple[str, int, int]) -> dict:
    """Train one method from seed ``seed``'s initial weights; per-epoch loss and test accuracy."""
    method, seed, epochs = job
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tr, te, xtr, xte = _data()
    net = fp.init_network(xtr.shape[1], [HIDDEN], 3, seed, **INIT)
    t0 = time.perf_counter()
    if method == "fp":
        s = fp.FPSettings(**FP_SETTINGS)
        init_acc = fp.TrainedFP(net.copy(), s, []).accuracy(xte, te.y)
        m = fp.train_classifier_fp(xtr, tr.y, hidden=[HIDDEN], n_classes=3, epochs=epochs, seed=seed, settings=s,
                                   lr=LR, batch_size=BATCH, x_val=xte, y_val=te.y, net=net.copy(), pure=True,
                                   **fp.HEURISTIC_OFF)
        hist = [{"epoch": i + 1, "loss": h["loss"], "test_acc": h["val_acc"]} for i, h in enumerate(m.history)]
        extra = {"hidden_spikes_per_sample_first_epoch": m.history[0]["hidden_spikes_per_sample"]}
    else:
        from rtsnn.learn.offline.bptt import TrainedClassifier, train_classifier
        from rtsnn.learn.offline.bptt_engine import Engine

        cfg = METHODS[method]
        scale = psp_peak(FP_SETTINGS["alpha"], FP_SETTINGS["beta"])
        init = {"w0": net.w[0] * scale, "w1": net.w[1] * scale}
        gtr = times_to_grid(xtr, UNIT_S, DT_S, N_STEPS)
        gte = times_to_grid(xte, UNIT_S, DT_S, N_STEPS)
        sg = ({"surrogate_param": FAST_SIGMOID_SLOPE, "surrogate_scale": 2.0 / FAST_SIGMOID_SLOPE}
              if cfg["surrogate"] == "fast_sigmoid" else {})
        clf = train_classifier(gtr, tr.y, hidden=[HIDDEN], n_classes=3, epochs=epochs, seed=seed, lr=LR,
                               loss=cfg["loss"], output="spiking", batch_size=BATCH, dt_s=DT_S, tau_mem_s=UNIT_S,
                               surrogate=cfg["surrogate"], reset="subtract", detach_reset=True, clip_norm=None,
                               init_weights=init, data_init=False, x_val=gte, y_val=te.y, **sg)
        p0 = {k: v.copy() for k, v in clf.params.items()}
        p0.update(init)
        c0 = TrainedClassifier(graph=clf.graph, params=p0, loss=clf.loss, options=clf.options)
        init_acc = c0.accuracy(gte, te.y)
        tape = Engine(clf.graph, clf.options).forward(p0, np.ascontiguousarray(gtr[:500].transpose(1, 0, 2)))
        hist = [{"epoch": h["epoch"], "loss": h["loss"], "test_acc": h["val_acc"]} for h in clf.history]
        extra = {"init_spikes_per_sample": [float(c.sum() / 500) for c in tape.spike_counts]}
    return {"method": method, "seed": seed, "init_test_acc": float(init_acc), "history": hist,
            "wall_s": time.perf_counter() - t0, **extra}


def mean_sd(v) -> dict:
    a = np.asarray(v, dtype=np.float64)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if a.size > 1 else 0.0}


def table(runs: list[dict]) -> dict:
    out = {}
    for method in METHODS:
        rs = [r for r in runs if r["method"] == method]
        if not rs:
            continue
        out[method] = {
            "label": METHODS[method]["label"],
            "seeds": [r["seed"] for r in rs],
            "init_test_acc": mean_sd([r["init_test_acc"] for r in rs]),
            "first_epoch_loss": mean_sd([r["history"][0]["loss"] for r in rs]),
            "final_loss": mean_sd([r["history"][-1]["loss"] for r in rs]),
            "final_test_acc": mean_sd([r["history"][-1]["test_acc"] for r in rs]),
            "final_test_acc_per_seed": [r["history"][-1]["test_acc"] for r in rs],
            "wall_s_per_run": mean_sd([r["wall_s"] for r in rs]),
        }
    return out


STYLE = {"fp": ("k", "-"), "fast_sigmoid/count_ce": ("tab:blue", "-"), "fast_sigmoid/rate_ce": ("tab:blue", "--"),
         "ste/count_ce": ("tab:orange", "-"), "ste/rate_ce": ("tab:orange", "--")}


def plot(runs: list[dict], path: Path, epochs: int, n_seeds: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    for method, cfg in METHODS.items():
        rs = [r for r in runs if r["method"] == method]
        if not rs:
            continue
        color, ls = STYLE[method]
        ep = np.array([h["epoch"] for h in rs[0]["history"]])
        for ax, key in zip(axes, ("loss", "test_acc")):
            v = np.array([[h[key] for h in r["history"]] for r in rs], dtype=np.float64)
            if key == "test_acc":  # with the accuracy at initialisation as epoch 0
                v = np.concatenate([np.array([[r["init_test_acc"]] for r in rs]), v], axis=1) * 100
                e = np.concatenate([[0], ep])
            else:
                e = ep
            ax.plot(e, v.mean(axis=0), color=color, ls=ls, lw=1.8, label=cfg["label"])
            ax.fill_between(e, v.min(axis=0), v.max(axis=0), color=color, alpha=0.12, lw=0)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("training loss (each method's own)")
    axes[0].set_title("Training loss per epoch")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("test accuracy (%)")
    axes[1].set_title("Test accuracy (1000 samples) per epoch")
    axes[1].axhline(95.0, color="grey", lw=0.8, ls=":")
    axes[1].text(1, 95.6, "FP paper, 300 epochs: 95.0 %", color="grey", fontsize=8)
    axes[1].set_ylim(25, 100)
    for ax in axes:
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=9, loc="lower center", ncol=3, frameon=False)
    fig.suptitle(f"Yin-Yang, 4(+bias)-150-3, same initial weights per seed: mean over {n_seeds} seeds, "
                 f"band = min-max; Adam lr 5e-4, batch 150, {epochs} epochs", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="initialisations 0..N-1 (default 3)")
    ap.add_argument("--epochs", type=int, default=70)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--png", type=Path, default=None, help="draw the figure here")
    ap.add_argument("--replot", type=Path, default=None, help="only redraw --png from this JSON (no training)")
    a = ap.parse_args(argv)
    if a.replot is not None:
        if a.png is None:
            print("figure6_yinyang: error: --replot needs --png", file=sys.stderr)
            return 2
        try:
            d = json.loads(a.replot.read_text())
            plot(d["runs"], a.png, int(d["epochs"]), len(d["seeds"]))
        except (OSError, ValueError, KeyError) as e:
            print(f"figure6_yinyang: error: {a.replot}: cannot redraw from it ({e})", file=sys.stderr)
            return 2
        return 0
    methods = [m for m in a.methods.split(",") if m]
    bad = [m for m in methods if m not in METHODS]
    if bad or a.seeds < 1 or a.epochs < 1 or a.jobs < 1:
        print("figure6_yinyang: error: " + (f"unknown method(s) {', '.join(bad)}" if bad else
              "--seeds, --epochs and --jobs must be >= 1"), file=sys.stderr)
        return 2
    jobs = [(m, s, a.epochs) for s in range(a.seeds) for m in methods]
    jobs.sort(key=lambda j: j[0] != "fp")  # the slowest (FP) first
    t0 = time.perf_counter()
    runs = []
    with ProcessPoolExecutor(max_workers=a.jobs) as ex:
        for r in ex.map(run_one, jobs):
            h = r["history"][-1]
            print(f"{r['method']} seed {r['seed']}: loss {h['loss']:.4f} test {h['test_acc']:.3f} "
                  f"({r['wall_s']:.0f} s)", file=sys.stderr, flush=True)
            runs.append(r)
    result = {
        "figure": "FP paper (journal version) Figure 6 left, redone on Yin-Yang",
        "command": "python scripts/figure6_yinyang.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seeds": list(range(a.seeds)), "epochs": a.epochs,
        "settings": {
            "architecture": "4 features + bias channel -> 150 hidden -> 3 outputs, feedforward",
            "fp": {**FP_SETTINGS, "init": INIT, "encoding": "t = 0.15 + 1.85 v, bias spike at 0.9 (channel 5)",
                   "loss": "first-spike softmax CE on -t/tau0 + gamma (exp(t_label/tau1) - 1)",
                   "heuristics": "none (pure=True)"},
            "bptt": {"neuron": "LIF (snnTorch Leaky), reset by subtraction, reset detached", "dt_s": DT_S,
                     "tau_mem_s": UNIT_S, "steps": N_STEPS, "time_unit_s": UNIT_S,
                     "init": "the FP draw times h_max = %.6f" % psp_peak(FP_SETTINGS["alpha"], FP_SETTINGS["beta"]),
                     "fast_sigmoid": "1/(1 + 25|u - theta|)^2 (snnTorch fast_sigmoid(slope=25))",
                     "ste": "dz/du = 1 (snnTorch straight_through_estimator())",
                     "count_ce": "CE of output spike counts (snnTorch ce_count_loss)",
                     "rate_ce": "mean over steps of CE of output spikes (snnTorch ce_rate_loss)",
                     "prediction": "most output spikes (count) / highest mean (rate), ties to the earlier spikes"},
            "optimiser": {"name": "Adam", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8, "batch_size": BATCH,
                          "clip": None},
            "data": "Yin-Yang published sets: train 5000, test 1000 (test scored every epoch, no selection)",
        },
        "published": {"fp_test_acc_mean": 0.950, "fp_test_acc_sd": 0.0083, "seeds": 10, "epochs": 300,
                      "init": "all models ~30-36 % accuracy, loss ~1.09-1.1 (A.8.3)"},
        "table": table(runs),
        "runs": runs,
        "wall_s": time.perf_counter() - t0,
    }
    text = json.dumps(result, allow_nan=False)
    print(text, flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, allow_nan=False, indent=1) + "\n")
    if a.png:
        plot(runs, a.png, a.epochs, a.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
