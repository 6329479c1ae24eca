"""ODE limits of the network (docs/maths.md §4(a), (b)) and the generic ODE solver behind them."""

from __future__ import annotations

from typing import Callable

import torch

from ..training.activations import Activation
from .coefficients import Coefficient, PerStep, batched_matrix, batched_vector, coef_at
from .loop import integrate
from .registry import get_scheme
from .tensors import as_activation, as_tensor, path_inputs, time_grid


def solve_ode(f: Callable[[float, int, torch.Tensor], torch.Tensor], y0: torch.Tensor, ts, method: str = "rk4") -> torch.Tensor:
    """States of ``dy/dt = f(t, n, y)`` on the grid ``ts`` (n the step index, for per-step
    coefficients) by the ODE scheme ``method`` (``rk4`` or ``euler``), (len(ts), *y0.shape)."""
    scheme = get_scheme(method, solves="ode")
    times = as_tensor(ts).tolist()

    def advance(n: int, y: torch.Tensor) -> torch.Tensor:
        t0, t1 = times[n], times[n + 1]
        return scheme.step(lambda t, h: f(t, n, h), t0, t1 - t0, y, t1=t1)

    return integrate(advance, y0, len(times) - 1)


def solve_neural_ode(
    A: Coefficient,
    b: Coefficient,
    x,
    activation: str | Activation,
    n_steps: int | None = None,
    *,
    delta: Coefficient = 1.0,
    ts=None,
    method: str = "rk4",
) -> torch.Tensor:
    """Solution of the neural ODE ``dH/dt = δ̄_t σ(A_t H + b_t)`` (docs/maths.md §4(a)).

    ``A``, ``b``, ``delta`` are callables of t returning (P, d, d) / (d, d), (P, d) / (d,),
    and a scalar or (P,) (e.g. :class:`Tabulated`), :class:`PerStep` values constant on each
    step (coarsened block means), or constants. The same equation with ReLU and δ̄ > 0
    is the ReLU ODE of docs/maths.md §4(b). Returns the states on the grid, (n+1, P, N, d).
    """
    sigma = as_activation(activation).fn
    ts = time_grid(n_steps, ts)
    n = len(ts) - 1
    A0 = batched_matrix(coef_at(A, 0, 0.0, n))
    P = A0.shape[0]
    x = as_tensor(x)
    if x.dim() == 3:
        P = max(P, x.shape[0])
    h0 = path_inputs(x, P, A0.shape[-1]).clone()

    # A Runge–Kutta step evaluates the coefficients twice at its midpoint and once at its end,
    # which is the next step's start: each distinct (time, step) is evaluated once.
    per_step = any(isinstance(c, PerStep) for c in (A, b, delta))
    evaluated: dict = {}

    def coefficients(t: float, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (t, k) if per_step else t
        values = evaluated.get(key)
        if values is None:
            if len(evaluated) >= 4:
                evaluated.clear()
            dt_ = coef_at(delta, k, t, n)
            dt_ = dt_.reshape(-1, 1, 1) if dt_.dim() > 0 else dt_
            values = evaluated[key] = (batched_matrix(coef_at(A, k, t, n)), batched_vector(coef_at(b, k, t, n)), dt_)
        return values

    def f(t: float, k: int, h: torch.Tensor) -> torch.Tensor:
        At, bt, dt_ = coefficients(t, k)
        return dt_ * sigma(torch.matmul(h, At) + bt)

    return solve_ode(f, h0, ts, method)


def solve_linear_ode(
    A: Coefficient,
    b: Coefficient,
    x,
    n_steps: int | None = None,
    *,
    gain: float = 1.0,
    ts=None,
    method: str = "rk4",
) -> torch.Tensor:
    """Solution of the linear ODE ``dH/dt = g (Ā_t H + b̄_t)`` of docs/maths.md §4(b).

    ``g = δ̄ σ'(0)``: the nonlinearity of a smooth σ with σ(0) = 0 disappears when β > 0.
    Coefficients as in :func:`solve_neural_ode`. Returns (n+1, P, N, d).
    """
    return solve_neural_ode(A, b, x, "identity", n_steps, delta=gain, ts=ts, method=method)
