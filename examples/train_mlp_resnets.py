"""Train small residual MLPs at several depths, save their checkpoints, and analyse them.

    .venv/bin/python examples/train_mlp_resnets.py            # seconds on a CPU

trains, for every depth L and seed s, the MLP ResNet of ``examples/maps/mlp_modulelist.yaml``,

    h ← h + δ_k tanh(W_k h + c_k),   k = 0..L-1   (W_k, c_k: blocks.k.linear; δ_k: blocks.k.delta)

with δ_k initialised to 1/L, on a regression task (targets from a fixed smooth residual map of
the inputs) by Adam, saves ``torch.save(model.state_dict(), f"{checkpoints}/mlp_L{L}_seed{s}.pt")``
and then runs the command

    resnet-scaling analyse 'checkpoints/mlp_L*_seed*.pt' --map examples/maps/mlp_modulelist.yaml \
        --out runs/analysis/

which prints the regime of the trained networks, with warnings where the input cannot support it
(these checkpoints carry no training status, so every network is assumed converged; a few
depths or seeds make a thin fit), and writes its tables, figures and report to ``--out``.
Smaller or larger runs: ``--depths 4 8 16 --seeds 2 --steps 30``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
MAP = ROOT / "examples" / "maps" / "mlp_modulelist.yaml"


class Block(nn.Module):
    """One residual block h + δ tanh(W h + c), the layout the example map reads."""

    def __init__(self, d: int, depth: int):
        super().__init__()
        self.linear = nn.Linear(d, d)
        self.delta = nn.Parameter(torch.tensor(1.0 / depth))

    def forward(self, h):
        return h + self.delta * torch.tanh(self.linear(h))


class MLPResNet(nn.Module):
    def __init__(self, d: int, depth: int):
        super().__init__()
        self.blocks = nn.ModuleList(Block(d, depth) for _ in range(depth))

    def forward(self, h):
        for block in self.blocks:
            h = block(h)
        return h


def task(d: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs x ~ U([-1, 1]^d) and targets y = x + ½ tanh(B x + e) for one fixed B, e."""
    gen = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(n, d, generator=gen) - 1
    B, e = torch.randn(d, d, generator=gen) / d**0.5, torch.randn(d, generator=gen)
    return x, x + 0.5 * torch.tanh(x @ B.T + e)


def train(depth: int, seed: int, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> tuple[MLPResNet, float]:
    """One network trained by full-batch Adam; returns it and its final training loss."""
    torch.manual_seed(1000 * depth + seed)
    model = MLPResNet(x.shape[1], depth)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return model, float(torch.mean((model(x) - y) ** 2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--seeds", type=int, default=3, help="networks per depth")
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200, help="full-batch Adam steps per network")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--checkpoints", default="checkpoints", help="folder for mlp_L{L}_seed{s}.pt")
    parser.add_argument("--out", default="runs/analysis/", help="folder for the analysis")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    folder = Path(args.checkpoints)
    folder.mkdir(parents=True, exist_ok=True)
    x, y = task(args.width, args.samples)
    for depth in args.depths:
        for seed in range(args.seeds):
            model, loss = train(depth, seed, x, y, args.steps, args.lr)
            path = folder / f"mlp_L{depth}_seed{seed}.pt"
            torch.save(model.state_dict(), path)
            print(f"trained L = {depth}, seed {seed}: training loss {loss:.2e} -> {path}")

    from resnet_scaling.cli import main as command

    argv = ["analyse", str(folder / "mlp_L*_seed*.pt"), "--map", os.path.relpath(MAP), "--out", args.out]
    print("resnet-scaling " + " ".join(f"'{a}'" if "*" in a else a for a in argv))
    return command(argv)


if __name__ == "__main__":
    sys.exit(main())
