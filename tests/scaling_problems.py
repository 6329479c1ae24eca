"""Known-answer weight sequences for the scaling stage (docs/maths.md §3), and training-output stand-ins.

- ``smooth``: A_k = L^{-β} f(k/L), b_k = L^{-β} g(k/L) with smooth random f, g of non-zero
  mean (hypothesis H1), and a shared δ = L^{β−1}, so that M = δA has exponent 1 (ODE);
- ``brownian``: i.i.d. Gaussian A_k, b_k of size L^{-1/2} and δ ≡ 1 (H2: M are the
  increments of a Brownian path; SDE);
- ``rough``: i.i.d. Gaussian A_k, b_k of size 1 and δ ≡ 1 (no decay: neither);
- ``rough_mean_field``: A_k = Ā + Z_k with i.i.d. Gaussian Z_k of size 1 and per-layer
  δ_k = (1 + ξ_k)/L (the §4(e) shape: M of size 1/L, increments as large as the weights,
  quadratic variation ~ 1/L: the ODE with rough weights).
"""

from __future__ import annotations

import numpy as np

from resnet_scaling.io import stable_seed, write_npz
from resnet_scaling.scaling.weights import TrainedWeights

DEPTHS = (16, 24, 38, 57, 86, 129, 194, 291, 437, 656, 985)


def sequences(kind: str, depth: int, seeds: int = 4, dim: int = 10, beta: float = 0.3, key: str = ""):
    """A (S,L,d,d), b (S,L,d), δ (S,L) and the δ type of one synthetic (kind, depth)."""
    S, L, d = seeds, depth, dim
    if kind == "smooth":  # the same f, g for every depth (one draw per seed)
        rng = np.random.default_rng(stable_seed("scaling-problem", kind, key, beta))
        t = (np.arange(L) / L)[None, :, None, None]
        C = rng.normal(size=(3, S, 1, d, d))
        c = rng.normal(size=(3, S, 1, d))
        A = L**-beta * (C[0] + C[1] * np.sin(2 * np.pi * t) + C[2] * t**2)
        b = L**-beta * (1.0 + c[0] ** 2 + c[1] * np.cos(2 * np.pi * t[..., 0]))
        return A, b, np.full((S, L), float(L) ** (beta - 1.0)), "shared"
    rng = np.random.default_rng(stable_seed("scaling-problem", kind, key, depth, beta))
    if kind == "rough_mean_field":
        A_bar = np.random.default_rng(stable_seed("scaling-problem", kind, key)).normal(size=(S, 1, d, d))
        A = A_bar + rng.normal(size=(S, L, d, d))
        b = 1.0 + rng.normal(size=(S, L, d))
        return A, b, (1.0 + rng.normal(size=(S, L))) / L, "multi"
    scale = {"brownian": L**-0.5, "rough": 1.0}[kind]
    A = scale * rng.normal(size=(S, L, d, d))
    b = scale * rng.normal(size=(S, L, d))
    return A, b, np.ones((S, L)), "none"


def network(kind: str, depth: int, seeds: int = 4, dim: int = 10, beta: float = 0.3,
            status=None, experiment: str | None = None) -> TrainedWeights:
    A, b, delta, delta_type = sequences(kind, depth, seeds, dim, beta)
    status = np.array(status if status is not None else ["converged"] * seeds)
    return TrainedWeights(A, b, delta, np.arange(seeds), status, experiment or kind, depth, delta_type, "tanh",
                          dataset="synthetic")


def write_training_output(path, kind: str, depth: int, seeds: int = 4, dim: int = 10, beta: float = 0.3,
                          experiment: str = "exp", activation: str = "tanh", dataset: str = "toy",
                          status=None, epochs=3, max_epochs: int = 10) -> None:
    """A stand-in for ``results/train/{exp}/depth_{L}.npz`` with the trainer's keys and metadata
    (``epochs``: one count for all seeds or one per seed; histories as long as the largest)."""
    A, b, delta, delta_type = sequences(kind, depth, seeds, dim, beta)
    rng = np.random.default_rng(stable_seed("losses", kind, depth))
    epochs = np.broadcast_to(np.asarray(epochs, dtype=int), (seeds,))
    history = np.exp(-np.arange(epochs.max()))[None, :] * rng.uniform(0.5, 1.5, size=(seeds, 1))
    history[0, -1] = np.nan  # seed 0 stopped one epoch early: padded with NaN
    write_npz(
        path,
        metadata={
            "experiment": experiment, "dataset": dataset, "depth": depth, "wall_time_s": 0.0,
            "device": "cpu", "versions": {},
            "config": {"dataset": dataset, "activation": activation, "delta": delta_type, "seeds": seeds,
                       "max_epochs": max_epochs},
        },
        A=A, b=b, delta=delta, A_init=np.zeros_like(A), b_init=np.zeros_like(b), delta_init=delta,
        seeds=np.arange(seeds), epochs=epochs,
        status=np.array(status if status is not None else ["converged"] * seeds),
        train_loss=history, test_loss=2 * history, epoch_loss=1.1 * history,
    )
