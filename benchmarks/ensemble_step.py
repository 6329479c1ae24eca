"""What the FC training benchmarks share: one Adam training step of an ensemble on a fixed
random batch, and its process CPU time per call (imported by the scripts beside it)."""

from __future__ import annotations

import time
from typing import Callable

import torch

from resnet_scaling.training.resnet import ResNetEnsemble
from resnet_scaling.training.optimizer import EnsembleOptimizer


def adam_training_step(net: ResNetEnsemble, seeds: int, batch: int, dim: int,
                       gen: torch.Generator) -> Callable[[], None]:
    """One step of the trainer for ``net``: ``loss_and_grad`` on a random batch drawn from
    ``gen``, then the Adam update (lr 1e-3) of every network."""
    opt = EnsembleOptimizer(net.params, "adam", 1e-3)
    x = torch.randn(seeds, batch, dim, generator=gen)
    y = torch.randn(seeds, batch, dim, generator=gen)
    active = torch.ones(seeds, dtype=torch.bool)

    def step() -> None:
        _, grads = net.loss_and_grad(x, y)
        opt.step(net.params, grads, active)

    return step


def cpu_seconds_per_call(fn: Callable[[], None], min_calls: int, min_seconds: float) -> float:
    """CPU seconds of this process per call of ``fn`` (at least ``min_calls`` calls and
    ``min_seconds`` in all). Process CPU time rather than wall time, so that other work on a
    shared machine does not enter a ratio; with one intra-op thread the two are equal on an
    idle machine."""
    n, start = 0, time.process_time()
    while n < min_calls or time.process_time() - start < min_seconds:
        fn()
        n += 1
    return (time.process_time() - start) / n
