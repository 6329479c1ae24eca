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

    per_step = any(isinstance(c, PerStep) for c in (A, b, delta))
    if per_step and method == "rk4" and not any(callable(c) and not isinstance(c, PerStep) for c in (A, b, delta)):
        # coefficients constant on each step (coarsened weights): every step of every path in one
        # compiled call where the loops build and evaluate σ (the identity is the linear ODE)
        from . import compiled

        linear = as_activation(activation).name == "identity"
        lib = compiled.select("auto", None if linear else as_activation(activation).name)
        if lib is not None:
            d = A0.shape[-1]
            times = as_tensor(ts)
            return compiled.forward(lib, _steps(A, n, P, (d, d)), _steps(b, n, P, (d,)), h0,
                                    activation=None if linear else as_activation(activation).name,
                                    scale=_steps(delta, n, P, ()), per_step=True, dts=times[1:] - times[:-1])

    # A Runge–Kutta step evaluates the coefficients twice at its midpoint and once at its end,
    # which is the next step's start: each distinct (time, step) is evaluated once.
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


def _steps(coef, n: int, P: int, item: tuple) -> torch.Tensor:
    """A :class:`PerStep` coefficient or a constant as (n, P, *item): one value per step and path."""
    v = coef.values if isinstance(coef, PerStep) else as_tensor(coef).unsqueeze(0)
    if v.dim() == 1 + len(item):  # no path axis: shared by the paths
        v = v.unsqueeze(1)
    return v.expand(n, P, *item)


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


def half_grid(n_steps: int) -> torch.Tensor:
    """Times j/(2n), j = 0..2n: the grid points and midpoints of n RK4 steps on [0, 1]."""
    return torch.linspace(0.0, 1.0, 2 * n_steps + 1, dtype=torch.float64)


def solve_on_half_grid(kind: str, A_half, b_half, x, activation: str | Activation, *, delta_half=None,
                       engine: str = "auto") -> torch.Tensor:
    """RK4 states (n+1, P, N, d) of an ODE limit with coefficients tabulated at the half-grid times
    j/(2n), j = 0..2n (grid points and step midpoints: every evaluation time of a step, read by
    index, no interpolation).

    ``kind="neural_ode"``: ``dH/dt = δ̄_t σ(A_t H + b_t)`` (``delta_half`` (2n+1, P), default 1);
    ``kind="linear_ode"``: ``dH/dt = σ'(0)(Ā_t H + b̄_t)``. ``A_half`` (2n+1, P, d, d), ``b_half``
    (2n+1, P, d), inputs x (N, d) or (P, N, d). ``engine`` as in :mod:`.compiled`: the compiled
    loops where they build and apply (tanh, ReLU; any σ for the linear ODE), else torch operations;
    the two agree to rounding.
    """
    from . import compiled
    from .schemes import rk4_step

    act = as_activation(activation)
    A_half, b_half = as_tensor(A_half), as_tensor(b_half)
    n = (A_half.shape[0] - 1) // 2
    h0 = path_inputs(x, A_half.shape[1], A_half.shape[-1]).clone()
    if kind not in ("neural_ode", "linear_ode"):
        raise ValueError(f"unknown ODE kind {kind!r}; expected neural_ode or linear_ode")
    lib = compiled.select(engine, act.name if kind == "neural_ode" else None)
    if lib is not None:
        if kind == "linear_ode":
            return compiled.forward(lib, A_half, b_half, h0, activation=None, slope=act.slope_at_0)
        return compiled.forward(lib, A_half, b_half, h0, activation=act.name,
                                scale=None if delta_half is None else as_tensor(delta_half))
    # (P, N, d) states: A h + b as one batched multiply-add per evaluation
    A_T, b_rows = A_half.transpose(-1, -2), b_half.unsqueeze(-2)
    if kind == "neural_ode":
        d_half = torch.ones(A_half.shape[:2], dtype=A_half.dtype) if delta_half is None else as_tensor(delta_half)
        scale = d_half.view(*d_half.shape, 1, 1)  # (2n+1, P, 1, 1)

        def field(j: int, h: torch.Tensor) -> torch.Tensor:
            return scale[j] * act.fn(torch.baddbmm(b_rows[j], h, A_T[j]))

    else:
        g = act.slope_at_0

        def field(j: int, h: torch.Tensor) -> torch.Tensor:
            return torch.baddbmm(b_rows[j], h, A_T[j], beta=g, alpha=g)

    return integrate(lambda k, h: rk4_step(field, 2 * k, 1.0 / n, h, t_half=2 * k + 1, t1=2 * k + 2), h0, n)
