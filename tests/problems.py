"""Test problems with known answers, as torchsde's tests keep them: equations whose exact
solution is known, for holding each scheme to the order it declares, and the one log-log
slope every rate test reads (the package's fit, :func:`resnet_scaling.scaling.exponents.loglog_fit`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import expm

from resnet_scaling.scaling.exponents import loglog_fit

DTYPE = torch.float64


def slope(x, y) -> float:
    """OLS slope of log y on log x (NaN with fewer than two finite positive points)."""
    return float(loglog_fit(x, y).slope)


@dataclass(frozen=True)
class LinearODE:
    """``dy/dt = M y`` on [0, 1], y(0) = y0, batched over rows of y0 (P, d): y(1) = y0 e^{Mᵀ}ᵀ."""

    M: np.ndarray
    y0: np.ndarray

    @classmethod
    def random(cls, dim: int = 3, paths: int = 4, seed: int = 0) -> "LinearODE":
        rng = np.random.default_rng(seed)
        return cls(rng.normal(size=(dim, dim)) / math.sqrt(dim), rng.normal(size=(paths, dim)))

    def field(self, t, y: torch.Tensor) -> torch.Tensor:
        return y @ torch.as_tensor(self.M.T, dtype=DTYPE)

    def exact(self) -> torch.Tensor:
        return torch.as_tensor(self.y0 @ expm(self.M).T, dtype=DTYPE)


@dataclass(frozen=True)
class GeometricBrownianMotion:
    """``dX = μ X dt + σ X dW`` on [0, 1], X_0 = x0: X_1 = x0 exp((μ − σ²/2) + σ W_1), E X_1 = x0 e^μ."""

    mu: float = 1.0
    sigma: float = 0.5
    x0: float = 1.0

    def brownian_increments(self, paths: int, steps: int, seed: int) -> torch.Tensor:
        """Increments (steps, paths) of standard Brownian paths on the uniform grid."""
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(steps, paths, generator=gen, dtype=DTYPE) / math.sqrt(steps)

    def exact(self, dW: torch.Tensor) -> torch.Tensor:
        return self.x0 * torch.exp((self.mu - self.sigma**2 / 2) + self.sigma * dW.sum(0))

    def mean(self) -> float:
        return self.x0 * math.exp(self.mu)
