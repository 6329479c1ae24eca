"""Training throughput of the batched ensemble against the naive per-network baseline.

Measures network training steps per second (one step = forward, backward and optimiser
update of one network on one batch) at d = 10, batch 32, L ∈ {100, 1000}, S ∈ {1, 16}.
The baseline, measured in the same run, trains like the original study's code: per-layer
parameter lists, one network at a time, torch.autograd, torch.optim.Adam over the list.
Also reports the achieved FLOP rate against a large-matmul rate measured in the same run.

Usage: python benchmarks/train_throughput.py [--repeats N]
"""

from __future__ import annotations

import argparse

import torch

from resnet_scaling.training.resnet import ResNetEnsemble

from ensemble_step import adam_training_step, cpu_seconds_per_call

DIM, BATCH = 10, 32


def _timed(step, min_steps: int, min_seconds: float) -> float:
    """CPU seconds of this process per call of ``step``, after one warm-up call."""
    step()
    return cpu_seconds_per_call(step, min_steps, min_seconds)


def ensemble_step_time(depth: int, seeds: int, min_seconds: float) -> float:
    net = ResNetEnsemble.initialise(depth, DIM, range(seeds), delta_type="shared", init="xavier-depth",
                                    init_sd=0.01, activation="tanh", key="bench")
    step = adam_training_step(net, seeds, BATCH, DIM, torch.Generator().manual_seed(0))
    return _timed(step, 3, min_seconds)


class NaiveResNet(torch.nn.Module):
    """The original study's style: a list of per-layer parameters and autograd."""

    def __init__(self, depth: int):
        super().__init__()
        self.A = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(DIM, DIM) * 0.01 / (depth * DIM)) for _ in range(depth)])
        self.b = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(DIM) * 0.01 / depth) for _ in range(depth)])
        self.c = torch.nn.Parameter(torch.tensor(1.0 / depth))

    def forward(self, h):
        for A, b in zip(self.A, self.b):
            h = h + self.c.abs() * torch.tanh(h @ A.T + b)
        return h


def naive_step_time(depth: int, min_seconds: float) -> float:
    """Seconds per training step of ONE network; S networks cost S times as much."""
    net = NaiveResNet(depth)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.randn(BATCH, DIM), torch.randn(BATCH, DIM)

    def step():
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()

    return _timed(step, 2, min_seconds)


def matmul_flops(size: int = 1024) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / _timed(lambda: a @ b, 5, 1.0)


def step_flops(depth: int) -> float:
    """Multiply-adds of one network's step: forward A h, backward Aᵀ s and s hᵀ (2 flops each)."""
    return 3 * 2 * BATCH * DIM * DIM * depth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-seconds", type=float, default=2.0, help="measuring time per case")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (training jobs use 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_flops()
    print(f"threads {torch.get_num_threads()}, large-matmul rate {peak / 1e9:.1f} GFLOP/s")
    print(f"{'L':>5} {'S':>3} {'ensemble steps/s':>17} {'naive steps/s':>14} {'speedup':>8} {'GFLOP/s':>8} {'of matmul':>9}")
    results = {}
    for depth in (100, 1000):
        naive = naive_step_time(depth, args.min_seconds)
        for seeds in (1, 16):
            ours = ensemble_step_time(depth, seeds, args.min_seconds)
            rate, naive_rate = seeds / ours, 1.0 / naive
            flops = rate * step_flops(depth)
            results[(depth, seeds)] = rate / naive_rate
            print(f"{depth:>5} {seeds:>3} {rate:>17.1f} {naive_rate:>14.1f} {rate / naive_rate:>7.1f}x "
                  f"{flops / 1e9:>8.2f} {flops / peak:>8.1%}")
    print(f"speedup L=1000 S=16: {results[(1000, 16)]:.1f}")


if __name__ == "__main__":
    main()
