"""Laws of weight paths: fresh increments of W^A, W^b and the rate of their quadratic
covariation, for generative simulation of the Itô SDE (docs/maths.md §4(c))."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import torch

from .tensors import DTYPE, as_tensor


class WeightPathLaw(ABC):
    """Law of a pair of weight paths ``W^A``, ``W^b``: increments over [t0, t1] and the
    quadratic-covariation rate needed by the Itô term. Subclasses implement both."""

    dim: int

    @abstractmethod
    def increments(self, t0: float, t1: float, n_paths: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh increments (n_paths, d, d), (n_paths, d) over [t0, t1]."""

    @abstractmethod
    def row_cov(self, t: float) -> torch.Tensor:
        """C_i(t), (d, d+1, d+1) or (P, d, d+1, d+1)."""


@dataclass
class GaussianWeightPathLaw(WeightPathLaw):
    """``W^A_t = ∫_0^t a(s) ds + s_A ⊙ B^A_t``, ``W^b_t = ∫_0^t β(s) ds + s_b ⊙ B^b_t`` with
    independent standard Brownian entries; drift integrated with the left point.

    ``drift_A(t)`` → (d, d), ``drift_b(t)`` → (d,); ``noise_A`` (d, d) and ``noise_b`` (d,)
    entrywise standard deviations per unit time.
    """

    drift_A: Callable[[float], torch.Tensor]
    drift_b: Callable[[float], torch.Tensor]
    noise_A: torch.Tensor
    noise_b: torch.Tensor

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.noise_b.shape[-1]

    def noise(self, n_steps: int, dt: float, n_paths: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Martingale increments of ``n_steps`` steps of length dt: (P, n, d, d), (P, n, d)."""
        d = self.dim
        xi = torch.randn(n_paths, n_steps, d * (d + 1), generator=gen, dtype=DTYPE) * math.sqrt(dt)
        dMA = xi[..., : d * d].reshape(n_paths, n_steps, d, d) * self.noise_A
        dMb = xi[..., d * d :] * self.noise_b
        return dMA, dMb

    def increments(self, t0, t1, n_paths, gen):
        dMA, dMb = self.noise(1, t1 - t0, n_paths, gen)
        return (
            as_tensor(self.drift_A(t0)) * (t1 - t0) + dMA[:, 0],
            as_tensor(self.drift_b(t0)) * (t1 - t0) + dMb[:, 0],
        )

    def row_cov(self, t: float) -> torch.Tensor:
        d = self.dim
        sA = self.noise_A.expand(d, d)
        sb = self.noise_b.expand(d)
        return torch.diag_embed(torch.cat([sA**2, (sb**2).unsqueeze(-1)], dim=-1))  # (d, d+1, d+1)


def gaussian_increments(law: GaussianWeightPathLaw, dB: torch.Tensor, ts) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight-path increments of ``law`` from standard Brownian increments ``dB`` (P, n, d² + d)
    on the grid ``ts``: ``ΔW^A = a(t_n) Δt + s_A ⊙ ΔB^A``, ``ΔW^b = β(t_n) Δt + s_b ⊙ ΔB^b``."""
    ts = as_tensor(ts)
    P, n, m = dB.shape
    d = law.dim
    dts = (ts[1:] - ts[:-1]).view(1, n, 1)
    driftA = law.drift_A.on_grid(ts[:-1]).unsqueeze(0) * dts.unsqueeze(-1)  # (1, n, d, d)
    driftb = law.drift_b.on_grid(ts[:-1]).unsqueeze(0) * dts
    # one pass each: views of dB, no intermediate copies
    dWA = torch.addcmul(driftA, dB[..., : d * d].unflatten(-1, (d, d)), law.noise_A)
    dWb = torch.addcmul(driftb, dB[..., d * d :], law.noise_b)
    return dWA, dWb
