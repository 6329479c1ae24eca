"""Random draws and intervals shared by the studies at initialisation."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from ..io import stable_seed
from ..sde.tensors import DTYPE


def seeded_generator(*parts) -> torch.Generator:
    """A CPU generator seeded from the parts of a name (:func:`resnet_scaling.io.stable_seed`)."""
    return torch.Generator().manual_seed(stable_seed(*parts))


def randn32(gen: torch.Generator, shape) -> torch.Tensor:
    """Standard normals drawn in float32 (several times faster on CPU), used in float64."""
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(DTYPE)


def t_interval(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and half-width of a 95 % t-interval along ``axis``."""
    values = np.asarray(values, dtype=float)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    half = stats.t.ppf(0.975, n - 1) * values.std(axis=axis, ddof=1) / math.sqrt(n)
    return mean, half
