"""Reproduce NEST 3.10 / TensorFlow five-iteration e-prop losses (REFERENCES section 4).

Every weight, input spike and target is drawn from numpy's legacy generator with seed 1 in the
order NEST's own test (testsuite/pytests/synapses/test_eprop_bsshslm_2020_plasticity.py) draws
them; training runs with ``conventions='nest_bsshslm_2020'`` in float64.

    python scripts/check_eprop_golden.py --task sine|evidence

prints one JSON line: task, losses, reference, max_rel_err, wall_s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from rtsnn.learn.online.eprop_reference import GOLDEN, run_golden


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=sorted(GOLDEN), required=True)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    losses = run_golden(args.task, dtype=args.dtype)
    ref = GOLDEN[args.task]
    err = max(abs(a - b) / abs(b) for a, b in zip(losses, ref))
    print(json.dumps({"task": args.task, "losses": losses, "reference": ref, "max_rel_err": err,
                      "dtype": args.dtype, "wall_s": round(time.perf_counter() - t0, 3)}))
    return 0 if err <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
