"""CPU time of one depth of the trained backward comparison (``fbsde.trained.compare_trained``,
docs/maths.md §5) with glibc's default allocator settings against the settings the workflow
gives its jobs (``runs.ALLOCATOR_ENVIRONMENT``), each in a fresh process, in the same run.

By default glibc maps every array above 32 MiB afresh and returns it at ``free``; the analysis
of a deep network makes many such temporaries (kernel-smoothed coefficients, pre-activations of
every half-grid time, gradient fields), and each is page-faulted in anew. The workflow's
settings keep arrays up to 64 MiB in the heap. Synthetic weights of the paper's digits shape
(d = 25, 16 inputs, two networks) stand in for a training output; both processes compare the
same networks, and their tables are checked to agree to 1e-12 before the ratio is printed.

    .venv/bin/python benchmarks/analysis_allocator.py [--depth 4000 --repeats 2]

The last line is ``speedup of the workflow's allocator settings: <ratio>`` (CPU seconds,
best of ``--repeats`` per setting), with each process's peak memory above it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def _one(depth: int, out: str) -> None:
    """Child process: compare two synthetic networks of one depth, report CPU seconds and peak."""
    import numpy as np
    import torch

    from resnet_scaling.fbsde.trained import compare_trained
    from resnet_scaling.scaling.weights import TrainedWeights

    torch.set_num_threads(1)
    rng = np.random.default_rng(7)
    S, d, N = 2, 25, 16
    # a smooth trend plus i.i.d. noise of size L^-1/2 per layer, δ = 1/L: a trained network's shape
    t = (np.arange(depth) + 0.5) / depth
    trend = np.sin(2 * np.pi * t)[None, :, None, None] * rng.normal(size=(S, 1, d, d)) / d**0.5
    A = trend + rng.normal(size=(S, depth, d, d)) / (d * depth) ** 0.5
    b = rng.normal(size=(S, depth, d)) / depth**0.5
    w = TrainedWeights(A=A, b=b, delta=np.full((S, depth), 1.0 / depth), seeds=np.arange(S),
                       status=np.array(["converged"] * S), experiment="benchmark", depth=depth,
                       delta_type="multi", activation="tanh", dataset="synthetic")
    x, y = rng.normal(size=(N, d)) / d**0.5, rng.normal(size=(N, d)) / d**0.5
    start = time.process_time()
    table = compare_trained(w, x, y, state="trained", kinds=("neural_ode", "linear_ode"), bandwidth=0.05).table
    cpu = time.process_time() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out).write_text(json.dumps({"cpu_s": cpu, "peak_mb": peak, "values": table["value"].tolist()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _one(args.depth, args.child)
        return

    from resnet_scaling.runs import ALLOCATOR_ENVIRONMENT

    default_env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENVIRONMENT}
    settings = {"glibc default": default_env, "workflow": {**default_env, **ALLOCATOR_ENVIRONMENT}}
    results: dict[str, list[dict]] = {name: [] for name in settings}
    out = Path(f"/tmp/analysis_allocator_{os.getpid()}.json")
    for _ in range(args.repeats):
        for name, env in settings.items():  # interleaved, so drifts of the machine hit both alike
            subprocess.run([sys.executable, __file__, "--depth", str(args.depth), "--child", str(out)], env=env, check=True)
            results[name].append(json.loads(out.read_text()))
    out.unlink(missing_ok=True)
    base, ours = results["glibc default"][0]["values"], results["workflow"][0]["values"]
    worst = max(abs(a - b) / max(abs(a), 1e-300) for a, b in zip(base, ours))
    if worst > 1e-12:
        raise SystemExit(f"the two settings disagree: relative difference {worst:.2e}")
    best = {name: min(r["cpu_s"] for r in runs) for name, runs in results.items()}
    for name, runs in results.items():
        print(f"{name:14s} CPU {best[name]:7.2f} s   peak {max(r['peak_mb'] for r in runs):6.0f} MB   (L = {args.depth})")
    print(f"speedup of the workflow's allocator settings: {best['glibc default'] / best['workflow']:.2f}")


if __name__ == "__main__":
    main()
