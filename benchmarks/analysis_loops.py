"""CPU time of the analysis's loops over layers and steps in C++ (``sde.compiled``) against the
loops they replace, in the same run, on synthetic networks of the paper's digits shape (d = 25).

- the limit ODEs' forward and adjoint (``fbsde.ode.ode_backprop``, neural ODE with tanh and
  linear ODE) on as many RK4 steps as layers, 16 inputs: compiled against torch operations;
- the networks' forward and explicit adjoint with ∂ℓ/∂M_k (``fbsde.backprop.network_backprop``),
  16 inputs: compiled against the training engine's per-layer adjoint;
- the outputs on 1,024 inputs (``scaling.decomposition.network_loss``): compiled against the
  training engine's compiled evaluation pass.

Each pair is checked to agree to 1e-12 (relative) before its ratio is printed.

    .venv/bin/python benchmarks/analysis_loops.py [--depth 2000 --repeats 2]

The last line is ``speedup of the compiled loops on the backward comparison: <ratio>`` (the
first two cases together, best CPU seconds of ``--repeats`` per side).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _best(fn, repeats: int):
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.process_time()
        value = fn()
        best = min(best, time.process_time() - start)
    return best, value


def _relative(a, b) -> float:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return float((a - b).abs().max() / b.abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from resnet_scaling.fbsde.backprop import network_backprop
    from resnet_scaling.fbsde.ode import half_grid, ode_backprop
    from resnet_scaling.scaling.decomposition import network_loss
    from resnet_scaling.sde import compiled
    from resnet_scaling.training.resnet import ResNetEnsemble

    if compiled.library() is None:
        raise SystemExit(f"the compiled loops cannot be built here: {compiled.unavailable_reason()}")
    L, S, d, N = args.depth, 2, 25, 16
    rng = np.random.default_rng(3)
    t = (np.arange(L) + 0.5) / L  # a smooth trend plus i.i.d. noise of size L^-1/2 per layer, δ = 1/L
    A = np.sin(2 * np.pi * t)[None, :, None, None] * rng.normal(size=(S, 1, d, d)) / d**0.5
    A = A + rng.normal(size=(S, L, d, d)) / (d * L) ** 0.5
    b = rng.normal(size=(S, L, d)) / L**0.5
    delta = np.full((S, L), 1.0 / L)
    x, y = rng.normal(size=(N, d)) / d**0.5, rng.normal(size=(N, d)) / d**0.5
    ts = half_grid(L)
    A_half = torch.as_tensor(np.sin(2 * np.pi * ts.numpy())[:, None, None, None] * A[:, :1].mean(1)[None])
    b_half = torch.as_tensor(np.cos(2 * np.pi * ts.numpy())[:, None, None] * b[:, :1].mean(1)[None])

    cases = {
        "neural ODE forward + adjoint": lambda engine: ode_backprop("neural_ode", A_half, b_half, x, y, "tanh",
                                                                    engine=engine).p,
        "linear ODE forward + adjoint": lambda engine: ode_backprop("linear_ode", A_half, b_half, x, y, "tanh",
                                                                    engine=engine).p,
        "network forward + adjoint": lambda engine: network_backprop(A, b, delta, "tanh", x, y, engine=engine).grad_M,
    }
    total = {"python": 0.0, "compiled": 0.0}
    for name, run in cases.items():
        base_s, base = _best(lambda: run("python"), args.repeats)
        ours_s, ours = _best(lambda: run("compiled"), args.repeats)
        worst = _relative(ours, base)
        if worst > 1e-12:
            raise SystemExit(f"{name}: the compiled loops disagree, relative difference {worst:.2e}")
        total["python"] += base_s
        total["compiled"] += ours_s
        print(f"{name:30s} torch {base_s:7.2f} s   compiled {ours_s:7.2f} s   ratio {base_s / ours_s:5.2f}")

    x_train, y_train = rng.normal(size=(1024, d)) / d**0.5, rng.normal(size=(1024, d)) / d**0.5
    net = ResNetEnsemble.from_numpy(A, b, delta, "multi", "tanh")
    net.select_engine("auto")

    def engine_loss():
        with torch.no_grad():
            return net.loss(torch.as_tensor(x_train), torch.as_tensor(y_train)).numpy()

    base_s, base = _best(engine_loss, args.repeats)
    ours_s, ours = _best(lambda: network_loss(A, b, delta, "tanh", x_train, y_train), args.repeats)
    if _relative(ours, base) > 1e-12:
        raise SystemExit(f"network loss: the compiled loops disagree, relative difference {_relative(ours, base):.2e}")
    print(f"{'loss on 1,024 inputs':30s} engine {base_s:6.2f} s   compiled {ours_s:7.2f} s   ratio {base_s / ours_s:5.2f}")
    print(f"(L = {L}, {S} networks, d = {d}, {N} inputs, one thread)")
    print(f"speedup of the compiled loops on the backward comparison: {total['python'] / total['compiled']:.2f}")


if __name__ == "__main__":
    main()
