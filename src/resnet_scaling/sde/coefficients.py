"""Coefficients of the limit equations: functions of t, tabulated values, or constants per step."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .tensors import DTYPE, as_tensor

Coefficient = Callable[[float], torch.Tensor] | torch.Tensor | np.ndarray | float


class Tabulated:
    """A coefficient known on a time grid, linearly interpolated: ``values`` (T, ...) at ``ts`` (T,)."""

    def __init__(self, ts, values):
        self.ts = as_tensor(ts)
        self.values = as_tensor(values)
        if self.values.shape[0] != self.ts.shape[0]:
            raise ValueError("Tabulated needs one value per grid time")
        self._times = self.ts.tolist()
        # a solver asks mostly for the grid times themselves: found by arithmetic on a uniform grid
        steps = np.diff(self._times) if len(self._times) > 1 else np.ones(1)
        self._uniform_step = float(steps[0]) if len(steps) and np.allclose(steps, steps[0], rtol=1e-12, atol=0) else None

    def _interval(self, t: float) -> int:
        """The index j of the grid interval [ts[j], ts[j+1]] that holds t (clamped)."""
        times = self._times
        if self._uniform_step is not None and self._uniform_step > 0:
            j = int((t - times[0]) // self._uniform_step)
            if j + 1 < len(times) and times[j + 1] <= t:  # rounding in the division
                j += 1
            elif j >= 0 and times[j] > t:
                j -= 1
        else:
            j = int(torch.searchsorted(self.ts, torch.tensor([t], dtype=DTYPE), right=True)[0]) - 1
        return min(max(j, 0), len(times) - 2)

    def __call__(self, t: float) -> torch.Tensor:
        t = float(t)
        times = self._times
        if len(times) == 1:
            return self.values[0]
        j = self._interval(t)
        w = (t - times[j]) / (times[j + 1] - times[j])
        w = min(max(w, 0.0), 1.0)
        if w == 0.0:
            return self.values[j]
        if w == 1.0:
            return self.values[j + 1]
        return self.values[j] * (1 - w) + self.values[j + 1] * w


class PerStep:
    """A coefficient constant on each step of the solver's grid: ``values`` (n_steps, ...)
    (for instance block means of the layers, the coarsened weights of a trained network)."""

    def __init__(self, values):
        self.values = as_tensor(values)

    def __len__(self) -> int:
        return self.values.shape[0]


def coef_at(coef, n: int, t: float, n_steps: int) -> torch.Tensor:
    """Value of a coefficient in step n at time t: a :class:`PerStep` gives its n-th value,
    a callable is evaluated at t, anything else is a constant."""
    if isinstance(coef, PerStep):
        if len(coef) != n_steps:
            raise ValueError(f"a PerStep coefficient has {len(coef)} values for {n_steps} steps")
        return coef.values[n]
    if callable(coef):
        return as_tensor(coef(t))
    return as_tensor(coef)


def batched_matrix(M: torch.Tensor) -> torch.Tensor:
    """(d, d) or (P, d, d) → (P or 1, d, d) holding Mᵀ for a right multiplication of row states."""
    if M.dim() == 2:
        M = M.unsqueeze(0)
    return M.transpose(-1, -2)


def batched_vector(v: torch.Tensor) -> torch.Tensor:
    """(d,) or (P, d) → (P or 1, 1, d)."""
    if v.dim() == 1:
        v = v.unsqueeze(0)
    return v.unsqueeze(-2)
