"""Throughput of the pathwise Euler–Maruyama solver of the limit SDE (docs/maths.md §4(c)) against
torchsde's Euler scheme on the same SDE, the same Brownian increments and the same steps.

Both solve ``dH = σ'(0)(dW^A H + dW^b) + ½σ''(0) q(H) dt`` for P Brownian paths with N
inputs each. torchsde sees it as a general-noise Itô SDE with m = d² + d Brownian motions
(diffusion matrix (P·N, d, m)); ``solve_ito_sde`` uses the structure ``g dB = dW^A H + dW^b``.
The Brownian increments are drawn once and fed to both (torchsde through a tabulated
Brownian object), so the timings compare the solvers only. Before timing, the two final
states are checked to agree to 1e-9.

    .venv/bin/python benchmarks/sde_throughput.py [--paths 64 --inputs 32 --dim 10 --steps 500]

The default shape is that of the generative fits of the limit stage (a few noise draws per
network, many test inputs sharing each Brownian path). The gain comes from never forming
the (P·N, d, d² + d) diffusion matrix, so it grows with the inputs per path and with d; with
one input per path the solvers do comparable work and the ratio is small.
The last line is ``speedup vs torchsde: <ratio>`` (best of ``--repeats`` runs each).
"""

from __future__ import annotations

import argparse
import time

import torch

from resnet_scaling.io import stable_seed
from resnet_scaling.limits import SYNTHETIC_DEFAULTS, diffusive_law, unit_inputs
from resnet_scaling.sde import gaussian_increments, solve_ito_sde, torchsde_ito_solve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paths", type=int, default=64)
    parser.add_argument("--inputs", type=int, default=32)
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--activation", default="softplus0")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    P, N, d, n = args.paths, args.inputs, args.dim, args.steps
    law = diffusive_law(d, 0, **SYNTHETIC_DEFAULTS["diffusive"])
    gen = torch.Generator().manual_seed(stable_seed("benchmark", P, N, d, n))
    dB = torch.randn(P, n, d * d + d, generator=gen, dtype=torch.float64) / n**0.5
    x = unit_inputs(N, d, 0)
    ts = torch.linspace(0.0, 1.0, n + 1, dtype=torch.float64)
    C = law.row_cov(0.0)

    def ours() -> torch.Tensor:
        dWA, dWb = gaussian_increments(law, dB, ts)
        return solve_ito_sde(dWA, dWb, x, args.activation, True, row_cov=C, ts=ts, record_every=n)[-1]

    def theirs() -> torch.Tensor:
        return torchsde_ito_solve(law, dB, x, args.activation, True)[-1]

    diff = float((ours() - theirs()).abs().max())
    scale = float(ours().abs().max())
    print(f"paths {P}, inputs per path {N}, width {d}, Brownian motions {d * d + d}, steps {n}, threads {args.threads}")
    print(f"max |ours - torchsde| at t = 1: {diff:.2e} (states up to {scale:.2f})")
    if not diff <= 1e-9 * max(1.0, scale):
        raise SystemExit("the two solvers disagree on the same Brownian increments")

    times = {"ours": [], "torchsde": []}
    for _ in range(args.repeats):  # interleaved, so that load from other processes hits both
        for name, fn in (("ours", ours), ("torchsde", theirs)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    for name, t in best.items():
        print(f"{name:>9}: {t:8.3f} s   {P * N * n / t:12.0f} path-steps/s")
    print(f"speedup vs torchsde: {best['torchsde'] / best['ours']:.1f}")


if __name__ == "__main__":
    main()
