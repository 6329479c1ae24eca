"""Cost of training the paper grid on this machine, predicted from measured epochs.

Measures the process CPU time of one training epoch of the batched ensemble (32 steps of
batch 32 with Adam, then the training and test losses the trainer records every epoch) at
several depths, for the widths of the synthetic (d = 10) and digits (d = 25) data, with
S = 8 seeds and one intra-op thread (as training jobs run), on the engine training uses (the
config's ``engine``: the compiled loop over layers where it builds). It prints the time per
(layer × network × step), which would be constant if the cost were linear in depth, and the
share of the per-epoch evaluation.

The prediction multiplies, for every enabled experiment and depth of the config (``config/paper.yaml``,
or ``--configfile`` files merged as Snakemake merges them, e.g. with ``config/overlays/fc_cpu.yaml``), the
interpolated cost per epoch (steps scaled to the dataset's n_train, evaluation to its
n_train + n_test) by the number of epochs the seeds took: the median over seeds
in ``--epochs`` (a CSV with experiment, depth, epochs, e.g. ``figures/paper/training.csv``
of the committed paper run); experiments or depths missing there are assumed to take
``--assumed-epochs`` epochs, and the output says which. Wall time assumes the jobs share
``--cores`` cores perfectly.

Usage: python benchmarks/paper_grid.py [--configfile YAML...] [--epochs CSV] [--cores 2] [--quick]
Last line: ``paper grid minutes: <m>``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from snakemake.utils import update_config

from resnet_scaling.config import depth_grid, network_width, with_schema_defaults
from resnet_scaling.training.resnet import ResNetEnsemble

from ensemble_step import adam_training_step

ROOT = Path(__file__).resolve().parents[1]
SEEDS, BATCH, N_TRAIN, N_TEST = 8, 32, 1024, 256


def epoch_seconds(depth: int, dim: int, activation: str, engine: str) -> tuple[float, float, str]:
    """CPU seconds of one epoch (steps, evaluation) at this depth and width on the engine training
    uses, and the name of that engine."""
    net = ResNetEnsemble.initialise(depth, dim, range(SEEDS), delta_type="shared", init="xavier-depth",
                                    init_sd=0.01, activation=activation, key="bench")
    used = net.select_engine(engine)
    gen = torch.Generator().manual_seed(0)
    step = adam_training_step(net, SEEDS, BATCH, dim, gen)
    x_train, y_train = torch.randn(N_TRAIN, dim, generator=gen), torch.randn(N_TRAIN, dim, generator=gen)

    step()  # warm-up: buffers allocated once
    n_steps = 4
    start = time.process_time()
    for _ in range(n_steps):
        step()
    per_step = (time.process_time() - start) / n_steps
    start = time.process_time()
    net.loss(x_train, y_train)
    net.loss(x_train[:N_TEST], y_train[:N_TEST])
    evaluation = time.process_time() - start
    return per_step * (N_TRAIN // BATCH), evaluation, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", nargs="+", default=[str(ROOT / "config" / "paper.yaml")])
    parser.add_argument("--epochs", default=str(ROOT / "figures" / "paper" / "training.csv"))
    parser.add_argument("--assumed-epochs", type=float, default=20.0)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="measure at fewer depths")
    args = parser.parse_args()
    torch.set_num_threads(1)

    config: dict = {}
    for path in args.configfile:
        update_config(config, yaml.safe_load(Path(path).read_text()))
    config = with_schema_defaults(config)
    depths_measured = [100, 1000] if args.quick else [100, 1000, 3000, 9100]
    costs = {}
    print(f"{'d':>3} {'act':>5} {'L':>5} {'engine':>10} {'epoch s':>8} {'eval %':>7} {'us per layer x net x step':>26}")
    enabled = {name: exp for name, exp in config["experiments"].items() if exp.get("enabled", True)}
    widths = sorted({network_width(config["datasets"][exp["dataset"]]) for exp in enabled.values()})
    for dim in widths:
        for activation in ("tanh", "relu"):
            steps, evals = [], []
            for L in depths_measured:
                steps_s, eval_s, used = epoch_seconds(L, dim, activation, config["engine"])
                total = steps_s + eval_s
                steps.append(steps_s)
                evals.append(eval_s)
                unit = steps_s / (L * SEEDS * (N_TRAIN // BATCH)) * 1e6
                print(f"{dim:>3} {activation:>5} {L:>5} {used:>10} {total:8.2f} {100 * eval_s / total:6.1f}% {unit:26.2f}")
            costs[dim, activation] = (np.log(depths_measured), np.log(steps), np.log(evals))

    def interpolate(xs, ys, x: float) -> float:
        """Log-log interpolation between the measured depths, linear extrapolation outside."""
        if x < xs[0]:
            return math.exp(ys[0] + (ys[1] - ys[0]) / (xs[1] - xs[0]) * (x - xs[0]))
        if x > xs[-1]:
            return math.exp(ys[-1] + (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) * (x - xs[-1]))
        return math.exp(float(np.interp(x, xs, ys)))

    def cost_per_epoch(L: int, dim: int, activation: str, n_train: int, n_test: int) -> float:
        """Seconds of one epoch: the steps scale with n_train, the evaluation with n_train + n_test."""
        xs, log_steps, log_evals = costs[dim, activation]
        x = math.log(L)
        return (interpolate(xs, log_steps, x) * n_train / N_TRAIN
                + interpolate(xs, log_evals, x) * (n_train + n_test) / (N_TRAIN + N_TEST))

    epochs = pd.read_csv(args.epochs) if Path(args.epochs).exists() else pd.DataFrame(columns=["experiment", "depth", "epochs"])
    median = epochs.groupby(["experiment", "depth"])["epochs"].median().to_dict()
    total_cpu = 0.0
    for name, exp in enabled.items():
        dataset = config["datasets"][exp["dataset"]]
        dim = network_width(dataset)
        cpu, assumed = 0.0, 0
        for L in depth_grid(exp["depths"]):
            n = median.get((name, L))
            if n is None:
                n, assumed = args.assumed_epochs, assumed + 1
            cpu += cost_per_epoch(L, dim, exp["activation"], dataset["n_train"], dataset["n_test"]) * n
        total_cpu += cpu
        note = f"{assumed} depths at an assumed {args.assumed_epochs:g} epochs" if assumed else "measured epochs"
        print(f"{name}: {cpu / 60:.1f} CPU-minutes ({note}; n_train {dataset['n_train']})")
    print(f"training CPU minutes: {total_cpu / 60:.1f} on {args.cores} cores")
    print(f"paper grid minutes: {total_cpu / 60 / args.cores:.1f}")


if __name__ == "__main__":
    main()
