"""The FC engine against its arithmetic floor, both measured in the same run.

For d ∈ {10, 25} × {tanh, ReLU} at L = 1000, S = 8 networks, batch 32, one intra-op thread
(as training jobs run), prints the process CPU time per (layer × network × step) of

* a training step of the engine training uses (``engine: auto``: the compiled loop over
  layers where it builds, :mod:`resnet_scaling.compiled`), and of the per-layer engine:
  ``loss_and_grad`` and the Adam update, as ``benchmarks/paper_grid.py`` measures it;
* the floor: the step's three matrix products (h Aᵀ, p A, pᵀ h) and the activation for all
  S × L layers as single batched calls, which pay the arithmetic and almost no dispatch;

and their ratios. Each case alternates the three measurements over several rounds and keeps
each one's fastest round, so load from other processes on a shared machine enters neither
column much. Last line: ``largest ratio engine/floor: <r>``.

Usage: python benchmarks/engine_floor.py [--rounds 5] [--min-seconds 0.3]
"""

from __future__ import annotations

import argparse

import torch

from resnet_scaling.training.resnet import ResNetEnsemble

from ensemble_step import adam_training_step, cpu_seconds_per_call

DEPTH, SEEDS, BATCH = 1000, 8, 32


def training_step(dim: int, activation: str, engine: str):
    """One step of the trainer (loss, gradients, Adam) and the name of the engine that runs it."""
    net = ResNetEnsemble.initialise(DEPTH, dim, range(SEEDS), delta_type="multi", init="xavier-depth",
                                    init_sd=0.01, activation=activation, key="bench")
    used = net.select_engine(engine)
    step = adam_training_step(net, SEEDS, BATCH, dim, torch.Generator().manual_seed(0))
    step()  # work tensors allocated once
    return step, used


def floor_step(dim: int, activation: str):
    """The step's arithmetic over all layers of all networks in four batched calls."""
    gen = torch.Generator().manual_seed(1)
    H = torch.randn(DEPTH * SEEDS, BATCH, dim, generator=gen)
    P = torch.randn(DEPTH * SEEDS, BATCH, dim, generator=gen)
    A = torch.randn(DEPTH * SEEDS, dim, dim, generator=gen) / dim
    Z = torch.empty_like(H)
    S = torch.empty_like(H)
    P_new = torch.empty_like(P)
    grad_A = torch.empty_like(A)
    act = {"tanh": lambda: torch.tanh(Z, out=S), "relu": lambda: torch.clamp(Z, min=0.0, out=S)}[activation]

    def step():
        torch.bmm(H, A.transpose(1, 2), out=Z)  # z = h Aᵀ
        act()
        torch.bmm(P, A, out=P_new)  # p A
        torch.bmm(P.transpose(1, 2), H, out=grad_A)  # pᵀ h

    step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the three measurements")
    parser.add_argument("--min-seconds", type=float, default=0.3, help="measuring time per round and column")
    args = parser.parse_args()
    torch.set_num_threads(1)
    unit = 1e6 / (DEPTH * SEEDS)  # seconds per step -> µs per layer × network × step
    print(f"L = {DEPTH}, S = {SEEDS}, batch {BATCH}, {torch.get_num_threads()} thread; "
          "µs per layer × network × step (process CPU time, fastest of the rounds)")
    print(f"{'d':>3} {'act':>5} {'engine':>10} {'engine µs':>10} {'per-layer µs':>13} {'floor µs':>9} "
          f"{'engine/floor':>13} {'per-layer/floor':>16}")
    worst = 0.0
    for dim in (10, 25):
        for activation in ("tanh", "relu"):
            engine, used = training_step(dim, activation, "auto")
            per_layer, _ = training_step(dim, activation, "per-layer")
            floor = floor_step(dim, activation)
            best = {"engine": float("inf"), "per-layer": float("inf"), "floor": float("inf")}
            for _ in range(args.rounds):
                for name, fn in (("engine", engine), ("per-layer", per_layer), ("floor", floor)):
                    best[name] = min(best[name], cpu_seconds_per_call(fn, 2, args.min_seconds))
            ratio = best["engine"] / best["floor"]
            worst = max(worst, ratio)
            print(f"{dim:>3} {activation:>5} {used:>10} {best['engine'] * unit:>10.2f} {best['per-layer'] * unit:>13.2f} "
                  f"{best['floor'] * unit:>9.2f} {ratio:>13.2f} {best['per-layer'] / best['floor']:>16.2f}", flush=True)
    print(f"largest ratio engine/floor: {worst:.2f}")


if __name__ == "__main__":
    main()
