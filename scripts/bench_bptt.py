"""Per-epoch BPTT training time: our numba engine vs snnTorch (torch autograd, CPU) on the
same network (n_in-hidden-n_out LIF, spiking output, spike-count CE, Adam), same random
spike inputs. Prints one JSON line (median seconds per batch, per-epoch extrapolation to
``--samples``, ratio snntorch/ours). Run: python scripts/bench_bptt.py [--batches 20]"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-in", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=120)
    ap.add_argument("--n-out", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    xs = [((rng.random((a.steps, a.batch, a.n_in)) < 0.05) * 1.0).astype(np.float32) for _ in range(a.batches)]
    ys = [rng.integers(0, a.n_out, a.batch) for _ in range(a.batches)]

    from rtsnn.learn.offline.bptt_engine import Engine, init_params
    from rtsnn.learn.offline.bptt_graph import BpttOptions, layered_graph
    from rtsnn.learn.offline.losses import count_ce
    from rtsnn.learn.offline.optim import Adam

    graph = layered_graph(a.n_in, (a.hidden, a.n_out), (False, False), None)
    eng = Engine(graph, BpttOptions(detach_reset=True))
    p = init_params(graph, 0, input_scale=8.0)
    opt = Adam(lr=1e-3)
    keys = ["w0", "w1"]

    def ours(x, y):
        tape = eng.forward(p, x)
        _, dy = count_ce(tape.y, y)
        opt.step(p, eng.backward(p, tape, dy), keys)

    ours(xs[0], ys[0])  # compile
    t_ours = []
    for x, y in zip(xs, ys):
        t0 = time.perf_counter()
        ours(x, y)
        t_ours.append(time.perf_counter() - t0)

    import snntorch as snn
    import torch
    from snntorch import surrogate

    torch.set_num_threads(a.threads)
    k = 10.0
    sg = surrogate.custom_surrogate(lambda u, gi, s: gi * k / (2 * (1 + k * u.abs()) ** 2))
    fc1 = torch.nn.Linear(a.n_in, a.hidden, bias=False)
    fc2 = torch.nn.Linear(a.hidden, a.n_out, bias=False)
    with torch.no_grad():
        fc1.weight.copy_(torch.tensor(p["w0"].T, dtype=torch.float32))
        fc2.weight.copy_(torch.tensor(p["w1"].T, dtype=torch.float32))
    l1 = snn.Leaky(beta=spec.alpha, spike_grad=sg)
    l2 = snn.Leaky(beta=spec.alpha, spike_grad=sg)
    topt = torch.optim.Adam(list(fc1.parameters()) + list(fc2.parameters()), lr=1e-3)

    def theirs(x, y):
        xt = torch.tensor(x)
        m1 = l1.init_leaky()
        m2 = l2.init_leaky()
        cnt = 0
        for t in range(xt.shape[0]):
            s1, m1 = l1(fc1(xt[t]), m1)
            s2, m2 = l2(fc2(s1), m2)
            cnt = cnt + s2
        loss = torch.nn.functional.cross_entropy(cnt, torch.tensor(y))
        topt.zero_grad()
        loss.backward()
        topt.step()

    theirs(xs[0], ys[0])
    t_th = []
    for x, y in zip(xs, ys):
        t0 = time.perf_counter()
        theirs(x, y)
        t_th.append(time.perf_counter() - t0)
    n_b = -(-a.samples // a.batch)
    mo, mt = float(np.median(t_ours)), float(np.median(t_th))
    print(json.dumps({"bench": "bptt_epoch", "network": f"{a.n_in}-{a.hidden}-{a.n_out} LIF", "steps": a.steps,
                      "batch": a.batch, "samples": a.samples, "ours_batch_s": mo, "snntorch_batch_s": mt,
                      "ours_epoch_s": mo * n_b, "snntorch_epoch_s": mt * n_b, "snntorch_over_ours": mt / mo,
                      "torch_threads": a.threads}))


if __name__ == "__main__":
    main()
