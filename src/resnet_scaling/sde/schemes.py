"""One-step schemes, each with the order it promises (docs/maths.md §4(f)).

A scheme is a ``step`` that advances a state by one step of size dt, and the strong and
weak orders of its global error (for ODEs both are the order of the deterministic error).
States may be tensors or tuples of tensors (a state with its Jacobian, say).
The schemes of the network's Itô SDE and of its adjoint live in :mod:`.ito`; all of them
are listed in :mod:`.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Scheme:
    """A named step with the orders the tests hold it to."""

    name: str
    step: Callable
    strong_order: float
    weak_order: float
    solves: str  # the kind of equation the step is written for


def _axpy(y, a: float, k):
    """``y + a·k`` for tensors and, componentwise, for tuples of tensors."""
    if isinstance(y, tuple):
        return tuple(torch.add(yi, ki, alpha=a) for yi, ki in zip(y, k))
    return torch.add(y, k, alpha=a)


def rk4_step(f: Callable, t0, dt: float, y, *, t_half=None, t1=None):
    """One classical Runge–Kutta step of ``dy/dt = f(t, y)``.

    ``t_half`` and ``t1`` default to t0 + dt/2 and t0 + dt; a solver may pass its own labels
    (grid times, or indices of a tabulated coefficient) for the three evaluation times.
    """
    t_half = t0 + dt / 2 if t_half is None else t_half
    t1 = t0 + dt if t1 is None else t1
    k1 = f(t0, y)
    k2 = f(t_half, _axpy(y, dt / 2, k1))
    k3 = f(t_half, _axpy(y, dt / 2, k2))
    k4 = f(t1, _axpy(y, dt, k3))
    if isinstance(y, tuple):
        return tuple(_rk4_combine(*parts, dt) for parts in zip(y, k1, k2, k3, k4))
    return _rk4_combine(y, k1, k2, k3, k4, dt)


def _rk4_combine(y, k1, k2, k3, k4, dt: float):
    """``y + dt/6 (k1 + 2 k2 + 2 k3 + k4)`` in four tensor operations (a step's Python cost
    is most of its time for the small states of a deep network)."""
    return torch.add(y, torch.add(k1, k2, alpha=2.0).add_(k3, alpha=2.0).add_(k4), alpha=dt / 6)


def euler_step(f: Callable, t0, dt: float, y, *, t_half=None, t1=None):
    """One explicit Euler step of ``dy/dt = f(t, y)`` (it evaluates f at t0 only; the
    keywords keep the signature of :func:`rk4_step`)."""
    return _axpy(y, dt, f(t0, y))


def euler_maruyama_step(increment: Callable, t0: float, dt: float, y, gen):
    """One Euler–Maruyama step ``y + μ(t, y) dt + (Σ(t, y) dt)^{1/2} ξ`` of a diffusion given by
    its increment ``increment(t, dt, y, gen)`` (fresh noise from ``gen``)."""
    return y + increment(t0, dt, y, gen)


RK4 = Scheme("rk4", rk4_step, strong_order=4.0, weak_order=4.0, solves="ode")
EULER = Scheme("euler", euler_step, strong_order=1.0, weak_order=1.0, solves="ode")
EULER_MARUYAMA = Scheme("euler_maruyama", euler_maruyama_step, strong_order=0.5, weak_order=1.0, solves="ito_sde")
