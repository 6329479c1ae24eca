"""Limits of the hidden state: simulators, synthetic weight paths with known limits, and
the fitting of limit equations to trained networks (docs/maths.md §4, rates in §7).

The network (docs/maths.md §1) is ``h_{k+1} = h_k + δ_k σ(A_k h_k + b_k)``, ``t = k/L``. Its limits:

- neural ODE (§4(a))      ``dH/dt = δ̄_t σ(A_t H + b_t)``                          (RK4)
- linear ODE (§4(b))      ``dH/dt = g (Ā_t H + b̄_t)``,  g = δ̄ σ'(0)                (RK4)
- Itô SDE (§4(c))         ``dH = σ'(0)(dW^A H + dW^b) + ½ σ''(0)/δ q(t, H) dt``      (Euler–Maruyama)
                          ``q_i = ũᵀ C_i ũ``,  ũ = (H, 1),  C_i the rate of the quadratic
                          covariation of row i of (W^A | W^b)
- moment-matched (§4(d))  ``dH = μ(t, H) dt + Σ(t, H)^{1/2} dB``, μ, Σ = L × window mean
                          and covariance of ``δ_k σ(A_k h + b_k)``             (Euler–Maruyama)

Shapes (float64 torch tensors; NumPy arrays are accepted everywhere):

- weights, path-major:  ``A`` (P, L, d, d), ``b`` (P, L, d), ``delta`` (L,) or (P, L)
- increments:           ``dWA`` (P, n, d, d), ``dWb`` (P, n, d)
- inputs:               ``x`` (N, d), shared by every path, or (P, N, d)
- states:               (n + 1, P, N, d), the initial state first

``P`` counts weight paths (independent networks / Brownian paths), ``N`` inputs per path.
Randomness comes from ``torch.Generator`` objects seeded with :func:`stable_seed`.

Sections: the discrete network (:func:`network_states`); ODE solvers; the Itô SDE, pathwise
(:func:`solve_ito_sde`) and generative (:func:`sample_ito_sde`); state-dependent diffusions
(:class:`MomentMatchedDiffusion`, :func:`sample_diffusion`); synthetic weights with known
limits (:func:`synthetic_weight_paths`); the convergence study (:func:`convergence_table`);
the same SDE through torchsde (:func:`torchsde_ito_solve`); fitting trained networks
(:func:`estimate_coefficients`, :func:`fit_experiment`, :func:`limits_note`); writers.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from .activations import Activation, get_activation
from .io import stable_seed

DTYPE = torch.float64

#: Expected log-log slopes of the sup-error in L (docs/maths.md §4, §7), importable by tests.
RATE_NEURAL_ODE = -1.0
RATE_DIFFUSIVE = -0.5


def rate_linear_ode(beta: float, curvature_at_0: float) -> float:
    """Slope of the §4(b) error: −β when σ''(0) ≠ 0, −min(2β, 1) when σ''(0) = 0."""
    return -beta if curvature_at_0 != 0 else -min(2 * beta, 1.0)


# ----------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------
def _t(a, dtype=DTYPE) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a, dtype=dtype)


def _act(activation: str | Activation) -> Activation:
    return get_activation(activation) if isinstance(activation, str) else activation


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) & ((1 << 63) - 1))


def _inputs(x, n_paths: int, dim: int) -> torch.Tensor:
    """Inputs as (P, N, d): a shared (N, d) block is expanded (no copy) over the paths."""
    x = _t(x)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() == 2:
        x = x.unsqueeze(0).expand(n_paths, *x.shape)
    if x.shape[0] != n_paths or x.shape[-1] != dim:
        raise ValueError(f"inputs of shape {tuple(x.shape)} do not fit {n_paths} paths of width {dim}")
    return x


def _grid(n_steps: int | None, ts) -> torch.Tensor:
    """A time grid 0 = t_0 < … < t_n = 1 (uniform with n steps when ``ts`` is None)."""
    if ts is None:
        if n_steps is None:
            raise ValueError("give either n_steps or the time grid ts")
        return torch.linspace(0.0, 1.0, n_steps + 1, dtype=DTYPE)
    ts = _t(ts)
    if ts.dim() != 1 or ts.numel() < 2 or not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError("the time grid ts must be a strictly increasing 1-D sequence")
    return ts


def unit_inputs(n: int, dim: int, seed: int) -> torch.Tensor:
    """``n`` inputs of unit Euclidean norm in R^dim (like the synthetic data), (n, dim)."""
    x = torch.randn(n, dim, generator=_generator(stable_seed("limits-inputs", seed)), dtype=DTYPE)
    return x / x.norm(dim=1, keepdim=True)


# ----------------------------------------------------------------------------------------
# the discrete network
# ----------------------------------------------------------------------------------------
def network_states(A, b, delta, activation: str | Activation, x) -> torch.Tensor:
    """Hidden states h_0..h_L of P networks on N inputs each, (L+1, P, N, d), float64.

    ``A`` (P, L, d, d), ``b`` (P, L, d), ``delta`` scalar, (L,) or (P, L); ``x`` (N, d) or
    (P, N, d). The recursion is ``h_{k+1} = h_k + δ_k σ(A_k h_k + b_k)`` (docs/maths.md §1).
    """
    sigma = _act(activation).fn
    A, b = _t(A), _t(b)
    P, L, d = A.shape[0], A.shape[1], A.shape[2]
    delta = _t(delta)
    delta = delta.expand(P, L) if delta.dim() <= 1 else delta
    AT = A.transpose(0, 1).transpose(2, 3).contiguous()  # (L, P, d, d) holding A_kᵀ
    bk = b.transpose(0, 1).unsqueeze(2).contiguous()  # (L, P, 1, d)
    dk = delta.transpose(0, 1).reshape(L, P, 1, 1).contiguous()
    h0 = _inputs(x, P, d)
    H = torch.empty((L + 1, P, h0.shape[1], d), dtype=DTYPE)
    H[0] = h0
    for k in range(L):
        z = torch.baddbmm(bk[k], H[k], AT[k])
        torch.addcmul(H[k], dk[k], sigma(z), out=H[k + 1])
    return H


# ----------------------------------------------------------------------------------------
# coefficients given as functions of t or as per-step constants
# ----------------------------------------------------------------------------------------
Coefficient = Callable[[float], torch.Tensor] | torch.Tensor | np.ndarray | float


class Tabulated:
    """A coefficient known on a time grid, linearly interpolated: ``values`` (T, ...) at ``ts`` (T,)."""

    def __init__(self, ts, values):
        self.ts = _t(ts)
        self.values = _t(values)
        if self.values.shape[0] != self.ts.shape[0]:
            raise ValueError("Tabulated needs one value per grid time")

    def __call__(self, t: float) -> torch.Tensor:
        ts = self.ts
        j = int(torch.searchsorted(ts, torch.tensor([t], dtype=DTYPE), right=True)[0]) - 1
        j = min(max(j, 0), len(ts) - 2)
        w = (t - float(ts[j])) / float(ts[j + 1] - ts[j])
        w = min(max(w, 0.0), 1.0)
        return self.values[j] * (1 - w) + self.values[j + 1] * w


class PerStep:
    """A coefficient constant on each step of the solver's grid: ``values`` (n_steps, ...)
    (for instance block means of the layers, the coarsened weights of a trained network)."""

    def __init__(self, values):
        self.values = _t(values)

    def __len__(self) -> int:
        return self.values.shape[0]


def _coef_at(coef, n: int, t: float, n_steps: int) -> torch.Tensor:
    """Value of a coefficient in step n at time t: a :class:`PerStep` gives its n-th value,
    a callable is evaluated at t, anything else is a constant."""
    if isinstance(coef, PerStep):
        if len(coef) != n_steps:
            raise ValueError(f"a PerStep coefficient has {len(coef)} values for {n_steps} steps")
        return coef.values[n]
    if callable(coef):
        return _t(coef(t))
    return _t(coef)


def _as_batched_matrix(M: torch.Tensor) -> torch.Tensor:
    """(d, d) or (P, d, d) → (P or 1, d, d) holding Mᵀ for a right multiplication of row states."""
    if M.dim() == 2:
        M = M.unsqueeze(0)
    return M.transpose(-1, -2)


def _as_batched_vector(v: torch.Tensor) -> torch.Tensor:
    """(d,) or (P, d) → (P or 1, 1, d)."""
    if v.dim() == 1:
        v = v.unsqueeze(0)
    return v.unsqueeze(-2)


def _rk4(f: Callable[[float, int, torch.Tensor], torch.Tensor], h0: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """Classical RK4 on the grid ``ts``; ``f(t, n, H)`` with n the step index (for per-step coefficients)."""
    out = torch.empty((len(ts), *h0.shape), dtype=DTYPE)
    out[0] = h = h0
    for n in range(len(ts) - 1):
        t0, t1 = float(ts[n]), float(ts[n + 1])
        dt = t1 - t0
        k1 = f(t0, n, h)
        k2 = f(t0 + dt / 2, n, h + dt / 2 * k1)
        k3 = f(t0 + dt / 2, n, h + dt / 2 * k2)
        k4 = f(t1, n, h + dt * k3)
        h = h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out[n + 1] = h
    return out


def solve_neural_ode(
    A: Coefficient,
    b: Coefficient,
    x,
    activation: str | Activation,
    n_steps: int | None = None,
    *,
    delta: Coefficient = 1.0,
    ts=None,
) -> torch.Tensor:
    """RK4 solution of the neural ODE ``dH/dt = δ̄_t σ(A_t H + b_t)`` (docs/maths.md §4(a)).

    ``A``, ``b``, ``delta`` are callables of t returning (P, d, d) / (d, d), (P, d) / (d,),
    and a scalar or (P,) (e.g. :class:`Tabulated`), :class:`PerStep` values constant on each
    step (coarsened block means), or constants. The same equation with ReLU and δ̄ > 0
    is the ReLU ODE of docs/maths.md §4(b). Returns the states on the grid, (n+1, P, N, d).
    """
    sigma = _act(activation).fn
    ts = _grid(n_steps, ts)
    n = len(ts) - 1
    A0 = _as_batched_matrix(_coef_at(A, 0, 0.0, n))
    P = A0.shape[0]
    x = _t(x)
    if x.dim() == 3:
        P = max(P, x.shape[0])
    h0 = _inputs(x, P, A0.shape[-1]).clone()

    def f(t: float, k: int, h: torch.Tensor) -> torch.Tensor:
        At = _as_batched_matrix(_coef_at(A, k, t, n))
        bt = _as_batched_vector(_coef_at(b, k, t, n))
        dt_ = _coef_at(delta, k, t, n)
        dt_ = dt_.reshape(-1, 1, 1) if dt_.dim() > 0 else dt_
        return dt_ * sigma(torch.matmul(h, At) + bt)

    return _rk4(f, h0, ts)


def solve_linear_ode(
    A: Coefficient,
    b: Coefficient,
    x,
    n_steps: int | None = None,
    *,
    gain: float = 1.0,
    ts=None,
) -> torch.Tensor:
    """RK4 solution of the linear ODE ``dH/dt = g (Ā_t H + b̄_t)`` of docs/maths.md §4(b).

    ``g = δ̄ σ'(0)``: the nonlinearity of a smooth σ with σ(0) = 0 disappears when β > 0.
    Coefficients as in :func:`solve_neural_ode`. Returns (n+1, P, N, d).
    """
    return solve_neural_ode(A, b, x, "identity", n_steps, delta=gain, ts=ts)


# ----------------------------------------------------------------------------------------
# the Itô SDE of docs/maths.md §4(c)
# ----------------------------------------------------------------------------------------
def ito_q(h: torch.Tensor, row_cov: torch.Tensor) -> torch.Tensor:
    """``q_i(H) = ũᵀ C_i ũ`` with ũ = (H, 1): the rate of d[X^i] (docs/maths.md §4(c)).

    ``h`` (P, N, d); ``row_cov`` the quadratic-covariation rate of row i of (W^A | W^b):
    (d, d+1, d+1) shared, (P, d, d+1, d+1) per path, or (d, d+1) when every C_i is diagonal
    (independent entries; then q = (ũ⊙ũ) Cᵀ). Returns (P, N, d).
    """
    d = h.shape[-1]
    u = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)  # (P, N, d+1)
    if row_cov.dim() == 2:
        return torch.matmul(u * u, row_cov.transpose(0, 1))
    if row_cov.dim() == 3:
        Cu = torch.matmul(u, row_cov.permute(1, 0, 2).reshape(d + 1, d * (d + 1)))  # (P, N, d(d+1))
        Cu = Cu.view(*u.shape[:-1], d, d + 1)
    else:
        Cu = torch.einsum("pnj,pijk->pnik", u, row_cov)
    return (Cu * u.unsqueeze(-2)).sum(-1)


def compact_row_cov(C: torch.Tensor) -> torch.Tensor:
    """The diagonal (…, d, d+1) of row covariances (…, d, d+1, d+1) when they are all diagonal
    (the cheap form of :func:`ito_q`), else ``C`` unchanged."""
    if C.dim() >= 3 and C.shape[-1] == C.shape[-2]:
        diag = torch.diagonal(C, dim1=-2, dim2=-1)
        if torch.equal(C, torch.diag_embed(diag)):
            return diag
    return C


def ito_step(
    h: torch.Tensor,
    dWA: torch.Tensor,
    dWb: torch.Tensor,
    dt: float,
    act: Activation,
    with_ito_term: bool = True,
    row_cov: torch.Tensor | None = None,
    delta: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    """One Euler–Maruyama step of docs/maths.md §4(c) for states (P, N, d), increments (P, d, d), (P, d).

    ``delta``: the constant δ of the network, a float or one per path as (P, 1, 1).

    ``H + σ'(0) ΔX + ½ σ''(0)/δ · (q(H) dt if row_cov is given else ΔX⊙ΔX)``, ΔX = ΔW^A H + ΔW^b.
    The realised-square form is the discrete scheme consistent with the network (strong order ½).
    """
    dX = torch.baddbmm(dWb.unsqueeze(1), h, dWA.transpose(1, 2))
    out = h + act.slope_at_0 * dX
    if with_ito_term and act.curvature_at_0 != 0.0:
        c = 0.5 * act.curvature_at_0 / delta
        out = out + (c * dt) * ito_q(h, row_cov) if row_cov is not None else out + c * dX * dX
    return out


def solve_ito_sde(
    dWA,
    dWb,
    x,
    activation: str | Activation,
    with_ito_term: bool = True,
    *,
    row_cov=None,
    row_cov_per_step: bool = False,
    ts=None,
    delta: float = 1.0,
    record_every: int = 1,
) -> torch.Tensor:
    """Pathwise Euler–Maruyama scheme of the Itô SDE of docs/maths.md §4(c) on *given* increments.

    ``dWA`` (P, n, d, d), ``dWb`` (P, n, d): increments of the weight paths (drift included)
    over the steps of ``ts`` (default uniform, n steps on [0, 1]). ``row_cov``: the rate C_i
    of the quadratic covariation in the Itô drift ½σ''(0)/δ · q dt, (d, d+1, d+1) or
    (P, d, d+1, d+1) (see :func:`ito_q`), with a leading step axis of length n when
    ``row_cov_per_step``; with None the realised squares ΔX⊙ΔX are used instead.
    ``with_ito_term=False`` drops the ½σ''(0) term. ``delta`` the constant δ (σ''(0)/δ, §4(c)),
    a float or one per path (P,).
    Returns the states at every ``record_every``-th grid time, (n/record_every + 1, P, N, d).
    """
    act = _act(activation)
    dWA, dWb = _t(dWA), _t(dWb)
    P, n, d = dWA.shape[0], dWA.shape[1], dWA.shape[2]
    ts = _grid(n, ts)
    if len(ts) != n + 1:
        raise ValueError(f"{n} increments need a grid of {n + 1} times, got {len(ts)}")
    if n % record_every:
        raise ValueError(f"record_every={record_every} must divide the {n} steps")
    dts = (ts[1:] - ts[:-1]).tolist()
    if isinstance(delta, (torch.Tensor, np.ndarray)) and np.ndim(delta) > 0:
        delta = _t(delta).reshape(-1, 1, 1)
    C = None if row_cov is None else compact_row_cov(_t(row_cov))
    per_step = C is not None and row_cov_per_step
    if per_step and C.shape[0] != n:
        raise ValueError(f"row_cov_per_step needs {n} covariances, got {C.shape[0]}")
    A_steps = dWA.transpose(0, 1)  # (n, P, d, d) views
    b_steps = dWb.transpose(0, 1)
    h = _inputs(x, P, d).clone()
    out = torch.empty((n // record_every + 1, *h.shape), dtype=DTYPE)
    out[0] = h
    for k in range(n):
        Ck = C[k] if per_step else C
        h = ito_step(h, A_steps[k], b_steps[k], dts[k], act, with_ito_term, Ck, delta)
        if (k + 1) % record_every == 0:
            out[(k + 1) // record_every] = h
    return out


# ----------------------------------------------------------------------------------------
# laws of weight paths (for generative simulation with fresh noise)
# ----------------------------------------------------------------------------------------
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
            _t(self.drift_A(t0)) * (t1 - t0) + dMA[:, 0],
            _t(self.drift_b(t0)) * (t1 - t0) + dMb[:, 0],
        )

    def row_cov(self, t: float) -> torch.Tensor:
        d = self.dim
        sA = self.noise_A.expand(d, d)
        sb = self.noise_b.expand(d)
        return torch.diag_embed(torch.cat([sA**2, (sb**2).unsqueeze(-1)], dim=-1))  # (d, d+1, d+1)


def sample_ito_sde(
    law: WeightPathLaw,
    x,
    activation: str | Activation,
    n_steps: int,
    n_paths: int,
    seed: int,
    with_ito_term: bool = True,
    *,
    delta: float = 1.0,
    record_every: int = 1,
) -> torch.Tensor:
    """Generative Euler–Maruyama solution of docs/maths.md §4(c) with fresh noise from ``law``.

    Increments come from ``law.increments`` (seeded by ``seed``), the Itô drift uses
    ``law.row_cov(t) · dt``. Returns (n_steps/record_every + 1, n_paths, N, d).
    """
    act = _act(activation)
    gen = _generator(seed)
    d = law.dim
    h = _inputs(x, n_paths, d).clone()
    out = torch.empty((n_steps // record_every + 1, *h.shape), dtype=DTYPE)
    out[0] = h
    dt = 1.0 / n_steps
    for k in range(n_steps):
        t0 = k * dt
        dWA, dWb = law.increments(t0, t0 + dt, n_paths, gen)
        C = law.row_cov(t0) if with_ito_term and act.curvature_at_0 != 0.0 else None
        h = ito_step(h, dWA, dWb, dt, act, with_ito_term, C, delta)
        if (k + 1) % record_every == 0:
            out[(k + 1) // record_every] = h
    return out


# ----------------------------------------------------------------------------------------
# state-dependent diffusions (docs/maths.md §4(d)) and their generative solver
# ----------------------------------------------------------------------------------------
class DiffusionModel(ABC):
    """A diffusion ``dH = μ(t, H) dt + Σ(t, H)^{1/2} dB`` given by its Euler–Maruyama increment."""

    dim: int

    @abstractmethod
    def increment(self, t: float, dt: float, h: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``μ(t, h) dt + (Σ(t, h) dt)^{1/2} ξ`` for states (P, N, d), fresh ξ from ``gen``."""


def sample_diffusion(
    model: DiffusionModel, x, n_steps: int, n_paths: int, seed: int, *, record_every: int = 1, progress: bool = False
) -> torch.Tensor:
    """Generative Euler–Maruyama solution of a :class:`DiffusionModel`, (n/record_every + 1, P, N, d)."""
    gen = _generator(seed)
    h = _inputs(x, n_paths, model.dim).clone()
    out = torch.empty((n_steps // record_every + 1, *h.shape), dtype=DTYPE)
    out[0] = h
    dt = 1.0 / n_steps
    for k in _progress(range(n_steps), progress, "diffusion"):
        h = h + model.increment(k * dt, dt, h, gen)
        if (k + 1) % record_every == 0:
            out[(k + 1) // record_every] = h
    return out


def _progress(it, enabled: bool, desc: str):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, mininterval=5.0)


def _norm_pdf(u: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)


def _norm_cdf(u: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-u / math.sqrt(2.0))


def relu_gaussian_moments(m: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``E relu(z)`` and ``E relu(z)²`` for z ~ N(m, v) (entrywise)."""
    s = v.clamp_min(1e-300).sqrt()
    u = m / s
    cdf, pdf = _norm_cdf(u), _norm_pdf(u)
    return m * cdf + s * pdf, (m * m + v) * cdf + m * s * pdf


@dataclass
class RandomSignReluLaw(DiffusionModel):
    """Exact diffusion limit of a ReLU network with i.i.d. random-sign layers (docs/maths.md §4(d)).

    Layer k of a network: ``δ_k ~ N(μ_δ/L, s_δ²/L)``, ``A_k = Ā(k/L) + τ_A/√d · ξ``,
    ``b_k = b̄(k/L) + τ_b ξ'`` with independent standard normal entries. Rows of ``A_k h + b_k``
    are independent N(m_i, v), m = Ā h + b̄, v = τ_A²|h|²/d + τ_b², so with r = relu(z)

        μ(t, h) = μ_δ E r,     Σ(t, h) = s_δ² E[r rᵀ] = s_δ² (diag Var r + E r E rᵀ)

    (up to O(1/L)). ``A_bar(t)`` → (d, d), ``b_bar(t)`` → (d,).
    """

    A_bar: Callable[[float], torch.Tensor]
    b_bar: Callable[[float], torch.Tensor]
    mu_delta: float
    s_delta: float
    tau_A: float
    tau_b: float

    @property
    def dim(self) -> int:  # type: ignore[override]
        return int(_t(self.b_bar(0.0)).shape[-1])

    def moments(self, t: float, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean E r and variance Var r of r = relu(A h + b) at time t, each (P, N, d)."""
        A, b = _t(self.A_bar(t)), _t(self.b_bar(t))
        m = torch.matmul(h, A.transpose(-1, -2)) + b
        v = (self.tau_A**2 / self.dim) * (h * h).sum(-1, keepdim=True) + self.tau_b**2
        e1, e2 = relu_gaussian_moments(m, v.expand_as(m))
        return e1, (e2 - e1 * e1).clamp_min(0.0)

    def increment(self, t, dt, h, gen):
        e1, var = self.moments(t, h)
        xi = torch.randn(*h.shape, generator=gen, dtype=DTYPE)
        xi0 = torch.randn(*h.shape[:-1], 1, generator=gen, dtype=DTYPE)
        noise = self.s_delta * math.sqrt(dt) * (var.sqrt() * xi + e1 * xi0)  # covariance s²(diag Var + E r E rᵀ) dt
        return self.mu_delta * e1 * dt + noise


def epanechnikov_weights(t: float, centres: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Kernel weights ``K((c − t)/bw)`` with ``K(u) = ¾(1 − u²)₊``, normalised to sum 1.

    Near the ends of [0, 1] the window is cut, so the weights renormalise over what is
    left; when no centre lies inside the window the nearest one gets all the weight.
    """
    u = (centres - t) / bandwidth
    w = (1 - u * u).clamp_min(0.0)
    if float(w.sum()) == 0.0:
        w = torch.zeros_like(centres)
        w[int(torch.argmin((centres - t).abs()))] = 1.0
    return w / w.sum()


class MomentMatchedDiffusion(DiffusionModel):
    """The moment-matched diffusion of docs/maths.md §4(d), estimated from the layers of networks.

    Around t the layers k with |(k + ½)/L − t| < bandwidth (of all P networks, taken as
    draws of one law) get Epanechnikov weights w_j, and with ``r_j(h) = δ_j σ(A_j h + b_j)``

        μ(t, h) = L Σ_j w_j r_j(h),    Σ(t, h) = L Σ_j w_j (r_j − r̄)(r_j − r̄)ᵀ.

    The noise is drawn as ``√(L dt) Σ_j √w_j (r_j − r̄) g_j`` with g_j ~ N(0, 1): exactly
    Gaussian with covariance Σ dt, without forming or factorising Σ.

    Since ``L δ_j`` fluctuates like √L, the window mean carries an estimation error of
    variance ≈ L Σ / K for K layers; a fixed error integrates into a shift of the law. With
    ``max_layers`` set, every path draws at every step its own random subset of that many
    window layers (unbiased; the error then adds a variance ≈ L Σ / (K n) over n steps).
    A (P, L, d, d), b (P, L, d), delta (P, L) or (L,).
    """

    def __init__(self, A, b, delta, activation: str | Activation, bandwidth: float, *, max_layers: int | None = None):
        A, b = _t(A), _t(b)
        P, L, d = A.shape[:3]
        delta = _t(delta)
        delta = delta.expand(P, L) if delta.dim() <= 1 else delta
        self.L, self.dim_, self.bandwidth = L, d, float(bandwidth)
        self.max_layers = None if max_layers is None else int(max_layers)
        self.act = _act(activation)
        # pooled layer list, layer-major so that a window is a contiguous block
        self.A = A.transpose(0, 1).reshape(L * P, d, d)
        self.b = b.transpose(0, 1).reshape(L * P, d)
        self.delta = delta.transpose(0, 1).reshape(L * P)
        self.P = P
        self.layer_centres = (torch.arange(L, dtype=DTYPE) + 0.5) / L

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.dim_

    def layer_window(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Layers k inside the window around t and their kernel weights (summing to 1)."""
        wl = epanechnikov_weights(t, self.layer_centres, self.bandwidth)
        layers = torch.nonzero(wl > 0).flatten()
        return layers, wl[layers]

    def window(self, t: float, max_layers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices into the pooled layers (all networks) and their weights for time t.

        With ``max_layers`` a window of more layers is represented by that many evenly
        spaced ones, their kernel weights renormalised (deterministic).
        """
        layers, wl = self.layer_window(t)
        if max_layers is not None and len(layers) > max_layers:
            pick = torch.linspace(0, len(layers) - 1, max_layers).round().long()
            layers, wl = layers[pick], wl[pick] / wl[pick].sum()
        idx = (layers.unsqueeze(1) * self.P + torch.arange(self.P)).flatten()
        return idx, (wl / self.P).repeat_interleave(self.P)

    def _layer_values(self, idx: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """r_j(h) = δ_j σ(A_j h + b_j): idx (K,) shared → (K, P, N, d); idx (P, K) per path → (P, K, N, d)."""
        A, b, dl = self.A[idx], self.b[idx], self.delta[idx]
        if idx.dim() == 1:
            z = torch.einsum("pnd,ked->kpne", h, A) + b[:, None, None, :]
            return dl.view(-1, 1, 1, 1) * self.act.fn(z)
        z = torch.einsum("pnd,pked->pkne", h, A) + b[:, :, None, :]
        return dl[..., None, None] * self.act.fn(z)

    def drift(self, t: float, h: torch.Tensor) -> torch.Tensor:
        """μ(t, h) over the whole window, (P, N, d)."""
        idx, w = self.window(t)
        return self.L * torch.einsum("k,kpne->pne", w, self._layer_values(idx, h))

    def increment(self, t, dt, h, gen):
        layers, wl = self.layer_window(t)
        if self.max_layers is None or len(layers) * self.P <= self.max_layers:
            idx, w = self.window(t)
            r = self._layer_values(idx, h)  # (K, P, N, d)
            mean = torch.einsum("k,kpne->pne", w, r)
            res = w.sqrt().view(-1, 1, 1, 1) * (r - mean)
            g = torch.randn(res.shape[0], *h.shape[:-1], 1, generator=gen, dtype=DTYPE)
            return self.L * dt * mean + math.sqrt(self.L * dt) * (g * res).sum(0)
        # each path draws its own layers with probability ∝ w (then equal weights): unbiased,
        # and the estimation errors of different paths are independent
        K, P = self.max_layers, h.shape[0]
        pick = layers[torch.multinomial(wl.expand(P, -1), K, replacement=True, generator=gen)]
        nets = torch.randint(self.P, (P, K), generator=gen)
        r = self._layer_values(pick * self.P + nets, h)  # (P, K, N, d)
        mean = r.mean(1)
        g = torch.randn(P, K, h.shape[1], 1, generator=gen, dtype=DTYPE)
        return self.L * dt * mean + math.sqrt(self.L * dt / K) * (g * (r - mean.unsqueeze(1))).sum(1)


def solve_mean_field_ode(model: MomentMatchedDiffusion, x, n_steps: int, max_layers: int | None = None) -> torch.Tensor:
    """The mean-field ODE ``dH/dt = μ(t, H)`` of docs/maths.md §4(e), Euler steps, (n+1, P, N, d).

    μ is the window mean of the model's layers (its drift without the noise), over at most
    ``max_layers`` evenly spaced layers per window (:meth:`MomentMatchedDiffusion.window`).
    """
    h = _inputs(x, model.P, model.dim).clone()
    out = torch.empty((n_steps + 1, *h.shape), dtype=DTYPE)
    out[0] = h
    dt = 1.0 / n_steps
    for k in range(n_steps):
        idx, w = model.window(k * dt, max_layers)
        h = h + dt * model.L * torch.einsum("k,kpne->pne", w, model._layer_values(idx, h))
        out[k + 1] = h
    return out


# ----------------------------------------------------------------------------------------
# synthetic weight paths with known limits (docs/maths.md §4 (a)–(d))
# ----------------------------------------------------------------------------------------
CASES = ("neural_ode", "linear_ode", "diffusive", "generic")


class SmoothPath:
    """A smooth coefficient ``C(t) = G_0 + G_1 sin 2πt + G_2 cos 2πt + G_3 t`` (Lipschitz in t).

    ``G`` (4, *shape); evaluating at a scalar t gives a tensor of ``shape``.
    """

    def __init__(self, G: torch.Tensor):
        self.G = G

    def basis(self, t):
        t = _t(t)
        return torch.stack([torch.ones_like(t), torch.sin(2 * math.pi * t), torch.cos(2 * math.pi * t), t])

    def __call__(self, t: float) -> torch.Tensor:
        phi = self.basis(t)
        return torch.tensordot(phi, self.G, dims=([0], [0]))

    def on_grid(self, ts) -> torch.Tensor:
        """Values at many times, (T, *shape)."""
        phi = self.basis(_t(ts))  # (4, T)
        return torch.tensordot(phi.T, self.G, dims=([1], [0]))

    @classmethod
    def random(cls, shape: Sequence[int], scale: float, gen: torch.Generator) -> "SmoothPath":
        G = torch.randn(4, *shape, generator=gen, dtype=DTYPE) * scale
        G[3] *= 0.5
        return cls(G)


@dataclass
class WeightPaths:
    """Synthetic weights of P networks of depth L with a known limit (see :func:`synthetic_weight_paths`).

    ``A`` (P, L, d, d), ``b`` (P, L, d), ``delta`` (L,) (or (P, L) for ``generic``).
    ``limit_A``/``limit_b``: the ODE coefficients A_t, b_t (``neural_ode``) or Ā_t, b̄_t
    (``linear_ode``) as callables of t returning (P, d, d), (P, d). ``law``: the law of the
    weight paths (``diffusive``: a :class:`GaussianWeightPathLaw`; ``generic``: the exact
    :class:`RandomSignReluLaw`). ``dWA_fine`` (P, n_fine, d, d), ``dWb_fine`` (P, n_fine, d):
    the fine increments whose block sums are the weights (``diffusive`` only).
    """

    case: str
    A: torch.Tensor
    b: torch.Tensor
    delta: torch.Tensor
    beta: float = 0.0
    limit_A: Callable[[float], torch.Tensor] | None = None
    limit_b: Callable[[float], torch.Tensor] | None = None
    law: object | None = None
    dWA_fine: torch.Tensor | None = None
    dWb_fine: torch.Tensor | None = None
    info: dict = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return self.A.shape[1]


#: Default scales of the synthetic cases (entry std of A is scale/√d).
SYNTHETIC_DEFAULTS = {
    "neural_ode": {"scale_A": 1.0, "scale_b": 0.5},
    "linear_ode": {"scale_A": 1.0, "scale_b": 0.5},
    "diffusive": {"noise_A": 1.2, "noise_b": 0.4, "drift_A": 0.3, "drift_b": 0.2},
    "generic": {"scale_A": 0.5, "scale_b": 0.3, "mu_delta": 0.5, "s_delta": 1.0, "tau_A": 1.0, "tau_b": 0.3},
}


def diffusive_law(dim: int, seed: int, *, noise_A: float, noise_b: float, drift_A: float, drift_b: float) -> GaussianWeightPathLaw:
    """The law of the diffusive synthetic case: smooth drifts shared by all paths plus
    independent Brownian entries (std noise_A/√d for W^A, noise_b for W^b)."""
    gen = _generator(stable_seed("limits-diffusive-drift", seed, dim))
    fA = SmoothPath.random((dim, dim), drift_A / math.sqrt(dim), gen)
    fb = SmoothPath.random((dim,), drift_b, gen)
    return GaussianWeightPathLaw(
        fA, fb, torch.full((dim, dim), noise_A / math.sqrt(dim), dtype=DTYPE), torch.full((dim,), noise_b, dtype=DTYPE)
    )


def fine_increment_chunks(
    law: GaussianWeightPathLaw, n_fine: int, n_paths: int, seed: int, chunk: int = 1024
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """The fine increments of the diffusive case on the uniform grid of ``n_fine`` steps,
    chunk by chunk: yields ``(start, dWA (P, c, d, d), dWb (P, c, d))``.

    Chunk j is drawn from its own generator seeded by (seed, n_fine, j), so a streaming
    computation and :func:`synthetic_weight_paths` see the same path.
    """
    dt = 1.0 / n_fine
    for j, start in enumerate(range(0, n_fine, chunk)):
        c = min(chunk, n_fine - start)
        gen = _generator(stable_seed("limits-diffusive-fine", seed, n_fine, n_paths, j))
        dMA, dMb = law.noise(c, dt, n_paths, gen)
        ts = torch.arange(start, start + c, dtype=DTYPE) * dt
        dWA = dMA + law.drift_A.on_grid(ts).unsqueeze(0) * dt
        dWb = dMb + law.drift_b.on_grid(ts).unsqueeze(0) * dt
        yield start, dWA, dWb


def block_sums(dW: torch.Tensor, L: int) -> torch.Tensor:
    """Sums of consecutive blocks of n_fine/L fine increments along axis 1: (P, L, ...)."""
    P, n = dW.shape[:2]
    if n % L:
        raise ValueError(f"depth {L} must divide the {n} fine steps")
    return dW.reshape(P, L, n // L, *dW.shape[2:]).sum(2)


def synthetic_weight_paths(
    case: str,
    L: int,
    n_paths: int,
    dim: int,
    seed: int,
    *,
    beta: float = 0.5,
    n_fine: int | None = None,
    **scales: float,
) -> WeightPaths:
    """Weights of ``n_paths`` networks of depth ``L`` with a known limit (docs/maths.md §4).

    - ``neural_ode`` (§4(a)): ``δ = 1/L``, ``A_k = A(k/L)``, ``b_k = b(k/L)`` for smooth random
      A(t), b(t) per path (:class:`SmoothPath`); limit ``dH/dt = σ(A_t H + b_t)``, error O(1/L).
    - ``linear_ode`` (§4(b)): ``δ = L^{β−1}``, ``A_k = L^{−β} Ā(k/L)``, ``b_k = L^{−β} b̄(k/L)``;
      limit ``dH/dt = σ'(0)(Ā_t H + b̄_t)`` (δ̄ = 1), error O(L^{−β}) or O(L^{−min(2β,1)}).
    - ``diffusive`` (§4(c)): ``δ = 1``; A_k, b_k are block sums of one fine increment path
      of :func:`diffusive_law` on ``n_fine`` steps (default 16 L; give every depth of a study
      the same ``n_fine``, a multiple of L). The fine increments are returned as well.
    - ``generic`` (§4(d)): i.i.d. random-sign layers of :class:`RandomSignReluLaw`, δ (P, L).

    The smooth coefficients depend on (seed, dim, n_paths) only, not on L, so every depth
    of a study shares the same limit. ``scales`` override :data:`SYNTHETIC_DEFAULTS`.
    """
    if case not in CASES:
        raise ValueError(f"unknown synthetic case {case!r}; expected one of {CASES}")
    unknown = set(scales) - set(SYNTHETIC_DEFAULTS[case])
    if unknown:
        raise ValueError(f"unknown scales {sorted(unknown)} for case {case!r}")
    p = {**SYNTHETIC_DEFAULTS[case], **scales}
    d, P = dim, n_paths
    tk = torch.arange(L, dtype=DTYPE) / L
    if case in ("neural_ode", "linear_ode"):
        gen = _generator(stable_seed("limits-smooth", case, seed, dim, n_paths))
        fA = SmoothPath.random((P, d, d), p["scale_A"] / math.sqrt(d), gen)
        fb = SmoothPath.random((P, d), p["scale_b"], gen)
        A = fA.on_grid(tk).transpose(0, 1).contiguous()  # (P, L, d, d)
        b = fb.on_grid(tk).transpose(0, 1).contiguous()
        if case == "neural_ode":
            return WeightPaths(case, A, b, torch.full((L,), 1.0 / L, dtype=DTYPE), 0.0, fA, fb, info=p)
        s = float(L) ** -beta
        delta = torch.full((L,), float(L) ** (beta - 1), dtype=DTYPE)
        return WeightPaths(case, A * s, b * s, delta, beta, fA, fb, info={**p, "beta": beta})
    if case == "diffusive":
        n_fine = 16 * L if n_fine is None else int(n_fine)
        law = diffusive_law(d, seed, **p)
        chunks = list(fine_increment_chunks(law, n_fine, P, seed))
        dWA = torch.cat([c[1] for c in chunks], dim=1)
        dWb = torch.cat([c[2] for c in chunks], dim=1)
        return WeightPaths(
            case, block_sums(dWA, L), block_sums(dWb, L), torch.ones(L, dtype=DTYPE), 0.5,
            law=law, dWA_fine=dWA, dWb_fine=dWb, info={**p, "n_fine": n_fine},
        )
    # generic: the law is shared by all paths; each path is an independent network
    gen = _generator(stable_seed("limits-generic-law", seed, dim))
    fA = SmoothPath.random((d, d), p["scale_A"] / math.sqrt(d), gen)
    fb = SmoothPath.random((d,), p["scale_b"], gen)
    law = RandomSignReluLaw(fA, fb, p["mu_delta"], p["s_delta"], p["tau_A"], p["tau_b"])
    gen = _generator(stable_seed("limits-generic-layers", seed, dim, n_paths, L))
    A = fA.on_grid(tk).unsqueeze(0) + torch.randn(P, L, d, d, generator=gen, dtype=DTYPE) * (p["tau_A"] / math.sqrt(d))
    b = fb.on_grid(tk).unsqueeze(0) + torch.randn(P, L, d, generator=gen, dtype=DTYPE) * p["tau_b"]
    delta = (p["mu_delta"] + p["s_delta"] * math.sqrt(L) * torch.randn(P, L, generator=gen, dtype=DTYPE)) / L
    return WeightPaths(case, A, b, delta, 0.5, law=law, info=p)


# ----------------------------------------------------------------------------------------
# the convergence study: synthetic weights against their known limits (docs/maths.md §4, §7)
# ----------------------------------------------------------------------------------------
def _sup_errors(h: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """sup_k |h_k − H_k| (Euclidean in R^d) for every path and input, flattened."""
    return (h - H).norm(dim=-1).amax(0).flatten()


def _error_row(case: str, activation: str, beta: float, L: int, e: torch.Tensor, **extra) -> dict:
    return {
        "case": case,
        "activation": activation,
        "beta": beta,
        "L": L,
        "error": float(e.pow(2).mean().sqrt()),  # root mean square over paths and inputs
        "error_median": float(e.median()),
        "n_samples": int(e.numel()),
        **extra,
    }


def ode_convergence(
    case: str,
    depths: Sequence[int],
    activation: str,
    *,
    beta: float = 0.0,
    n_paths: int = 8,
    n_inputs: int = 4,
    dim: int = 3,
    seed: int = 0,
    progress: bool = False,
) -> list[dict]:
    """sup_k |h_k − H_{k/L}| of the networks of :func:`synthetic_weight_paths` (``neural_ode``
    or ``linear_ode``) against their ODE limit, solved by RK4 on the network's own grid
    (RK4 error O(L^{-4}), far below the O(L^{-β}) or O(1/L) being measured)."""
    act = get_activation(activation)
    x = unit_inputs(n_inputs, dim, seed)
    rows = []
    for L in _progress(sorted(depths), progress, f"{case} {activation} β={beta}"):
        wp = synthetic_weight_paths(case, L, n_paths, dim, seed, beta=beta)
        h = network_states(wp.A, wp.b, wp.delta, act, x)
        if case == "neural_ode":
            H = solve_neural_ode(wp.limit_A, wp.limit_b, x, act, L)
        else:
            H = solve_linear_ode(wp.limit_A, wp.limit_b, x, L, gain=act.slope_at_0)
        rows.append(_error_row(case, activation, beta, L, _sup_errors(h, H), with_ito_term=np.nan, metric="sup_error"))
    return rows


def diffusive_convergence(
    depths: Sequence[int],
    activation: str = "softplus0",
    *,
    n_paths: int = 200,
    dim: int = 3,
    seed: int = 0,
    refine: int = 16,
    chunk: int = 1024,
    progress: bool = False,
    **scales: float,
) -> list[dict]:
    """(E sup_k |h_k − H_{k/L}|²)^{1/2} and the median over paths for the diffusive case
    (docs/maths.md §4(c)), with and without the ½σ''(0) term in the reference SDE.

    One fine increment path of ``refine × max(depths)`` steps drives everything: each depth's
    weights are its block sums, the reference is the Euler–Maruyama solution (q dt form) on
    the fine grid. The fine path is streamed chunk by chunk (the same chunks as
    :func:`synthetic_weight_paths`), so memory stays at the coarse grid of the largest depth.
    """
    act = get_activation(activation)
    p = {**SYNTHETIC_DEFAULTS["diffusive"], **scales}
    law = diffusive_law(dim, seed, **p)
    depths = sorted(depths)
    L_max = depths[-1]
    if any(L_max % L for L in depths):
        raise ValueError(f"every depth must divide the largest one, got {depths}")
    n_fine = refine * L_max
    r = refine
    x = unit_inputs(1, dim, seed)
    C = law.row_cov(0.0)
    P, d = n_paths, dim
    WA = torch.zeros(L_max + 1, P, d, d, dtype=DTYPE)  # weight paths on the grid of L_max
    Wb = torch.zeros(L_max + 1, P, d, dtype=DTYPE)
    refs = {flag: torch.empty(L_max + 1, P, 1, d, dtype=DTYPE) for flag in (True, False)}
    hs = {flag: _inputs(x, P, d).clone() for flag in (True, False)}
    for flag in refs:
        refs[flag][0] = hs[flag]
    accA, accb = torch.zeros(P, d, d, dtype=DTYPE), torch.zeros(P, d, dtype=DTYPE)
    dt = 1.0 / n_fine
    chunks = fine_increment_chunks(law, n_fine, P, seed, chunk)
    for start, dWA, dWb in _progress(chunks, progress, "diffusive reference"):
        for j in range(dWA.shape[1]):
            n = start + j
            for flag in (True, False):
                hs[flag] = ito_step(hs[flag], dWA[:, j], dWb[:, j], dt, act, flag, C)
            accA += dWA[:, j]
            accb += dWb[:, j]
            if (n + 1) % r == 0:
                m = (n + 1) // r
                WA[m], Wb[m] = accA, accb
                for flag in (True, False):
                    refs[flag][m] = hs[flag]
    rows = []
    for L in depths:
        s = L_max // L
        A = (WA[s::s] - WA[:-s:s]).transpose(0, 1)  # block sums: (P, L, d, d)
        b = (Wb[s::s] - Wb[:-s:s]).transpose(0, 1)
        h = network_states(A, b, 1.0, act, x)
        for flag in (True, False):
            e = _sup_errors(h, refs[flag][::s])
            rows.append(_error_row("diffusive", activation, 0.5, L, e, with_ito_term=flag, metric="sup_error"))
    return rows


def wasserstein1(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Mean over coordinates of the Wasserstein-1 distance between two samples (n, d), (m, d)."""
    from scipy import stats

    a, b = np.asarray(a), np.asarray(b)
    return float(np.mean([stats.wasserstein_distance(a[:, i], b[:, i]) for i in range(a.shape[1])]))


def ks_min_pvalue(a, b) -> float:
    """Smallest two-sample Kolmogorov–Smirnov p-value over coordinates (Bonferroni: × d)."""
    from scipy import stats

    a, b = np.asarray(a), np.asarray(b)
    p = min(stats.ks_2samp(a[:, i], b[:, i]).pvalue for i in range(a.shape[1]))
    return float(min(1.0, p * a.shape[1]))


def generic_convergence(
    depths: Sequence[int],
    *,
    n_paths: int = 1000,
    dim: int = 3,
    seed: int = 0,
    reference_paths: int = 4000,
    reference_steps: int = 512,
    steps: int = 256,
    bandwidth: float = 0.1,
    max_layers: int = 64,
    progress: bool = False,
) -> list[dict]:
    """The law of h_L for ReLU networks with i.i.d. random-sign layers (docs/maths.md §4(d)).

    Reference: the exact diffusion :class:`RandomSignReluLaw` solved by Euler–Maruyama on a
    fine grid. Compared in law (mean W1 over coordinates, KS p-value) with (i) the networks
    (``generic_network``) and (ii) the moment-matched diffusion estimated from those
    networks' own layers and simulated with fresh noise (``generic_moment_matched``). The
    row ``generic_floor`` is the W1 between two independent reference samples of the same
    sizes (the Monte Carlo floor).
    """
    x = unit_inputs(1, dim, seed)
    law = synthetic_weight_paths("generic", 1, 1, dim, seed).law
    ref = sample_diffusion(law, x, reference_steps, reference_paths, stable_seed("ref", seed), record_every=reference_steps)[-1, :, 0]
    ref2 = sample_diffusion(law, x, reference_steps, n_paths, stable_seed("ref2", seed), record_every=reference_steps)[-1, :, 0]
    rows = []
    for L in _progress(sorted(depths), progress, "generic"):
        wp = synthetic_weight_paths("generic", L, n_paths, dim, seed)
        h = network_states(wp.A, wp.b, wp.delta, "relu", x)[-1, :, 0]
        mm = MomentMatchedDiffusion(wp.A, wp.b, wp.delta, "relu", bandwidth, max_layers=max_layers)
        g = sample_diffusion(mm, x, steps, n_paths, stable_seed("mm", seed, L), record_every=steps)[-1, :, 0]
        for case, sample in (("generic_network", h), ("generic_moment_matched", g), ("generic_floor", ref2)):
            rows.append({
                "case": case, "activation": "relu", "beta": 0.5, "L": L,
                "error": wasserstein1(sample, ref), "error_median": np.nan, "n_samples": len(sample),
                "with_ito_term": np.nan, "metric": "wasserstein1", "ks_pvalue": ks_min_pvalue(sample, ref),
            })
    return rows


def theoretical_slope(case: str, activation: str, beta: float, with_ito_term) -> float:
    """The log-log slope docs/maths.md §4 predicts for a row of the convergence table (NaN: none)."""
    if case == "neural_ode":
        return RATE_NEURAL_ODE
    if case == "linear_ode":
        return rate_linear_ode(beta, get_activation(activation).curvature_at_0)
    if case == "diffusive":
        return RATE_DIFFUSIVE if bool(with_ito_term) else 0.0
    return float("nan")


def fit_min_depth(case: str, activation: str, beta: float) -> int:
    """Smallest depth of the slope fit: tanh at β = ¼ reaches its rate late (fit L ≥ 512, docs/maths.md §4(b))."""
    if case == "linear_ode" and get_activation(activation).curvature_at_0 == 0 and beta < 0.5:
        return 512
    return 0


def convergence_table(cfg: dict, progress: bool = False) -> "pd.DataFrame":
    """All cases of the convergence study as one tidy table (one row per case, depth, variant).

    ``cfg`` is the ``limits.convergence`` config section: ``depths``, ``dim``, ``seed``,
    ``ode`` {n_paths, n_inputs, linear: {activation: [β, …]}}, ``diffusive`` {activation,
    n_paths, refine, max_depth}, ``generic`` {depths, n_paths, reference_paths,
    reference_steps, steps, bandwidth, max_layers}.
    """
    import pandas as pd

    depths = sorted(int(L) for L in cfg["depths"])
    dim, seed = int(cfg.get("dim", 3)), int(cfg.get("seed", 0))
    ode = cfg.get("ode", {})
    rows: list[dict] = []
    kw = dict(n_paths=int(ode.get("n_paths", 8)), n_inputs=int(ode.get("n_inputs", 4)), dim=dim, seed=seed, progress=progress)
    rows += ode_convergence("neural_ode", depths, ode.get("activation", "tanh"), **kw)
    for activation, betas in ode.get("linear", {"softplus0": [0.25, 0.5], "tanh": [0.5]}).items():
        for beta in betas:
            rows += ode_convergence("linear_ode", depths, activation, beta=float(beta), **kw)
    diff = cfg.get("diffusive", {})
    max_depth = int(diff.get("max_depth", depths[-1]))
    rows += diffusive_convergence(
        [L for L in depths if L <= max_depth],
        diff.get("activation", "softplus0"),
        n_paths=int(diff.get("n_paths", 200)),
        dim=dim,
        seed=seed,
        refine=int(diff.get("refine", 16)),
        progress=progress,
    )
    gen = cfg.get("generic", {})
    if gen.get("depths"):
        rows += generic_convergence(
            [int(L) for L in gen["depths"]],
            n_paths=int(gen.get("n_paths", 1000)),
            dim=dim,
            seed=seed,
            reference_paths=int(gen.get("reference_paths", 4000)),
            reference_steps=int(gen.get("reference_steps", 512)),
            steps=int(gen.get("steps", 256)),
            bandwidth=float(gen.get("bandwidth", 0.1)),
            max_layers=int(gen.get("max_layers", 64)),
            progress=progress,
        )
    df = pd.DataFrame(rows)
    if "ks_pvalue" not in df:
        df["ks_pvalue"] = np.nan
    df["with_ito_term"] = df["with_ito_term"].astype(object)
    df.loc[df["case"] != "diffusive", "with_ito_term"] = ""
    return df


def _variant_keys(df) -> list[str]:
    return ["case", "activation", "beta", "with_ito_term"]


def convergence_fits(df) -> "pd.DataFrame":
    """Log-log slope (OLS, standard error, 95 % interval) of every series of the convergence
    table with a predicted rate, for the RMS error and the median, beside the predicted slope."""
    import pandas as pd
    from scipy import stats

    rows = []
    for key, g in df.groupby(_variant_keys(df), sort=False, dropna=False):
        case, activation, beta, ito = key
        expected = theoretical_slope(case, activation, beta, ito == True)  # noqa: E712
        if not np.isfinite(expected):
            continue
        g = g[g["L"] >= fit_min_depth(case, activation, beta)]
        for stat in ("error", "error_median"):
            y = g[stat].to_numpy(float)
            lx, ly = np.log(g["L"].to_numpy(float)), np.log(y)
            res = stats.linregress(lx, ly)
            half = stats.t.ppf(0.975, len(lx) - 2) * res.stderr if len(lx) > 2 else np.nan
            rows.append({
                "case": case, "activation": activation, "beta": beta, "with_ito_term": ito, "statistic": stat,
                "slope": res.slope, "stderr": res.stderr, "ci_low": res.slope - half, "ci_high": res.slope + half,
                "expected": expected, "L_min": int(g["L"].min()), "L_max": int(g["L"].max()), "n_depths": len(g),
            })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------
# the same Itô SDE through torchsde (cross-check and benchmark baseline)
# ----------------------------------------------------------------------------------------
def gaussian_increments(law: GaussianWeightPathLaw, dB: torch.Tensor, ts) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight-path increments of ``law`` from standard Brownian increments ``dB`` (P, n, d² + d)
    on the grid ``ts``: ``ΔW^A = a(t_n) Δt + s_A ⊙ ΔB^A``, ``ΔW^b = β(t_n) Δt + s_b ⊙ ΔB^b``."""
    ts = _t(ts)
    P, n, m = dB.shape
    d = law.dim
    dts = (ts[1:] - ts[:-1]).view(1, n, 1)
    driftA = law.drift_A.on_grid(ts[:-1]).unsqueeze(0) * dts.unsqueeze(-1)  # (1, n, d, d)
    driftb = law.drift_b.on_grid(ts[:-1]).unsqueeze(0) * dts
    # one pass each: views of dB, no intermediate copies
    dWA = torch.addcmul(driftA, dB[..., : d * d].unflatten(-1, (d, d)), law.noise_A)
    dWb = torch.addcmul(driftb, dB[..., d * d :], law.noise_b)
    return dWA, dWb


def torchsde_ito_solve(
    law: GaussianWeightPathLaw,
    dB: torch.Tensor,
    x,
    activation: str | Activation,
    with_ito_term: bool = True,
    out_times: Sequence[float] = (0.0, 1.0),
) -> torch.Tensor:
    """The SDE of docs/maths.md §4(c) with the weight-path law ``law``, solved by torchsde's Euler
    scheme (general noise, m = d² + d Brownian motions) on the increments ``dB`` (P, n, m)
    of the uniform grid with n steps; the N inputs of a path share its Brownian path.

    Drift ``f = σ'(0)(a(t) H + β(t)) + ½σ''(0) q(H)``, diffusion ``g`` (batch, d, m) with
    ``g dB = σ'(0)(s_A ⊙ dB^A H + s_b ⊙ dB^b)``. Returns the states at ``out_times``,
    (len(out_times), P, N, d) — compare with :func:`solve_ito_sde` on
    :func:`gaussian_increments` of the same ``dB``.
    """
    import torchsde

    act = _act(activation)
    P, n, m = dB.shape
    d = law.dim
    x = _inputs(x, P, d)
    N = x.shape[1]
    C = compact_row_cov(law.row_cov(0.0))  # the same q evaluation as solve_ito_sde
    c2 = 0.5 * act.curvature_at_0 if with_ito_term else 0.0
    s1 = act.slope_at_0
    sA, sb = law.noise_A, law.noise_b
    cum = torch.cat([torch.zeros(P, 1, m, dtype=DTYPE), dB.cumsum(1)], dim=1)  # B at the grid times

    class TabulatedBrownian(torchsde.BaseBrownian):
        """B(tb) − B(ta) read from the table of grid increments (ta, tb rounded to the grid)."""

        def __init__(self):
            super().__init__()

        def __call__(self, ta, tb=None, return_U=False, return_A=False):
            i0, i1 = round(float(ta) * n), round(float(tb) * n)
            return (cum[:, i1] - cum[:, i0]).repeat_interleave(N, dim=0)

        def __repr__(self):
            return "TabulatedBrownian()"

        dtype = DTYPE
        device = torch.device("cpu")
        shape = (P * N, m)
        levy_area_approximation = "none"

    class SDE(torch.nn.Module):
        noise_type = "general"
        sde_type = "ito"

        def f(self, t, y):
            h = y.view(P, N, d)
            tt = float(t)
            out = s1 * (torch.matmul(h, _t(law.drift_A(tt)).transpose(0, 1)) + _t(law.drift_b(tt)))
            if c2:
                out = out + c2 * ito_q(h, C)
            return out.reshape(P * N, d)

        def g(self, t, y):
            B = y.shape[0]
            g = torch.zeros(B, d, m, dtype=DTYPE)
            # column (i, j) of the A block multiplies y_j in row i; the b block is diagonal
            gA = g[:, :, : d * d].view(B, d, d, d)
            idx = torch.arange(d)
            gA[:, idx, idx, :] = s1 * sA.unsqueeze(0) * y.unsqueeze(1)
            g[:, idx, d * d + idx] = s1 * sb
            return g

    ts = torch.tensor(list(out_times), dtype=DTYPE)
    ys = torchsde.sdeint(SDE(), x.reshape(P * N, d).clone(), ts, bm=TabulatedBrownian(), method="euler", dt=1.0 / n)
    return ys.view(len(ts), P, N, d)


# ----------------------------------------------------------------------------------------
# fitting limits to trained networks (docs/maths.md §4, "Trained networks")
# ----------------------------------------------------------------------------------------
LIMITS = ("neural_ode", "linear_ode", "ito_sde", "moment_matched")


def normalise_regime(regime: str) -> str:
    """'ODE', 'SDE', 'ODE (rough weights)', 'neither' or 'undetermined' from the scaling stage's label."""
    r = str(regime).strip().lower()
    if r == "ode (rough weights)":
        return "ODE (rough weights)"
    if r in ("ode", "smooth", "h1"):
        return "ODE"
    if r in ("sde", "diffusive", "h2"):
        return "SDE"
    return "neither" if r == "neither" else "undetermined"


def choose_limit(regime: str, activation: str, delta_type: str, beta: float, beta_min: float = 0.1) -> str:
    """The limit equation to fit for a regime (docs/maths.md §3, §4).

    - ODE, smooth σ with σ(0) = 0 and β > ``beta_min``: the linear ODE of §4(b);
      otherwise (β ≈ 0, or ReLU: positively homogeneous) the nonlinear ODE
      ``dH/dt = δ̄ σ(A_t H + b_t)`` of §4(a)/(b).
    - SDE with σ C² at 0 and δ constant per network (none, fixed, shared): the Itô SDE of §4(c).
    - otherwise (ReLU, per-layer δ, neither, undetermined): the moment-matched diffusion of
      §4(d), compared in law only — descriptive where the regime is ``neither``.
    """
    act = get_activation(activation)
    regime = normalise_regime(regime)
    if regime == "ODE":
        linear_ok = act.smooth and act.value_at_0 == 0.0 and np.isfinite(beta) and beta > beta_min
        return "linear_ode" if linear_ok else "neural_ode"
    if regime == "SDE" and act.smooth and act.value_at_0 == 0.0 and delta_type in ("none", "fixed", "shared"):
        return "ito_sde"
    return "moment_matched"


def kernel_matrix(ts, L: int, bandwidth: float) -> torch.Tensor:
    """Epanechnikov weights (T, L) of the layer centres (k + ½)/L around each time of ``ts``,
    each row normalised to sum 1 (cut windows at the ends of [0, 1] renormalise)."""
    centres = (torch.arange(L, dtype=DTYPE) + 0.5) / L
    return torch.stack([epanechnikov_weights(float(t), centres, bandwidth) for t in _t(ts)])


@dataclass
class CoefficientEstimate:
    """Kernel estimates of the drift and local covariance of trained weight paths (docs/maths.md §4).

    On the grid ``ts`` (T,), for each of S networks of depth L:
    ``A_bar`` (S, T, d, d), ``b_bar`` (S, T, d): smoothed ``L M_k``, ``L m_k`` (the drift of W);
    ``delta_bar`` (S, T): smoothed ``L δ_k``; ``A_mean``, ``b_mean``: smoothed A_k, b_k;
    ``cov_trace`` (S, T): trace of the local covariance, smoothed ``L |ΔW_k − Ā/L|²``;
    ``row_cov`` (S, T, d, d+1, d+1) or None: the blocks C_i of the Itô term (§4(c)).
    ``residuals`` (S, L, d, d+1): ``√L (ΔW_k − Ā(t_k)/L)`` rows (ΔW^A | ΔW^b), for sampling.
    """

    ts: torch.Tensor
    L: int
    bandwidth: float
    A_bar: torch.Tensor
    b_bar: torch.Tensor
    delta_bar: torch.Tensor
    A_mean: torch.Tensor
    b_mean: torch.Tensor
    cov_trace: torch.Tensor
    residuals: torch.Tensor
    row_cov: torch.Tensor | None = None


def estimate_coefficients(A, b, delta, bandwidth: float, n_grid: int = 40, *, with_row_cov: bool = True) -> CoefficientEstimate:
    """Kernel-smoothed drift ``Ā(t)``, ``b̄(t)`` and local covariance of the weight paths of
    S trained networks: ``A`` (S, L, d, d), ``b`` (S, L, d), ``delta`` (S, L)."""
    A, b, delta = _t(A), _t(b), _t(delta)
    S, L, d = A.shape[:3]
    ts = torch.linspace(0.0, 1.0, n_grid + 1, dtype=DTYPE)
    K = kernel_matrix(ts, L, bandwidth)  # (T, L)
    M = delta[..., None, None] * A
    m = delta[..., None] * b
    A_bar = torch.einsum("tk,skij->stij", K, L * M)
    b_bar = torch.einsum("tk,ski->sti", K, L * m)
    # drift at the layer centres (linear interpolation of the grid), then centred increments
    centres = (torch.arange(L, dtype=DTYPE) + 0.5) / L
    Ak = Tabulated(ts, A_bar.transpose(0, 1))
    bk = Tabulated(ts, b_bar.transpose(0, 1))
    A_at = torch.stack([Ak(float(c)) for c in centres], 1)  # (S, L, d, d)
    b_at = torch.stack([bk(float(c)) for c in centres], 1)
    R = math.sqrt(L) * torch.cat([M - A_at / L, (m - b_at / L).unsqueeze(-1)], dim=-1)  # (S, L, d, d+1)
    row_cov = torch.einsum("tk,skia,skib->stiab", K, R, R) if with_row_cov else None
    return CoefficientEstimate(
        ts=ts,
        L=L,
        bandwidth=float(bandwidth),
        A_bar=A_bar,
        b_bar=b_bar,
        delta_bar=torch.einsum("tk,sk->st", K, L * delta),
        A_mean=torch.einsum("tk,skij->stij", K, A),
        b_mean=torch.einsum("tk,ski->sti", K, b),
        cov_trace=torch.einsum("tk,sk->st", K, R.pow(2).sum((-1, -2))),
        residuals=R,
        row_cov=row_cov,
    )


class KernelWeightPathLaw(WeightPathLaw):
    """The law fitted to trained networks: drift ``Ā(t)``, ``b̄(t)`` and Gaussian increments
    with the kernel-smoothed local covariance, drawn as ``√dt Σ_k √K(t, k) R_k g_k`` from the
    centred residuals R_k (exact covariance, no factorisation of the (d² + d)² matrix).

    ``seeds``: one network index (its own drift, which still carries that network's
    realised noise, smoothed), or several: the drift is their mean and the residuals of all
    of them, centred on that mean, share the kernel weight (so the networks are treated as
    draws of one law, and differences between their drifts count as diffusion).
    """

    def __init__(self, est: CoefficientEstimate, seeds: int | Sequence[int]):
        seeds = [seeds] if isinstance(seeds, (int, np.integer)) else list(seeds)
        self.est, self.seeds = est, seeds
        L = self.L = est.L
        self.centres = (torch.arange(L, dtype=DTYPE) + 0.5) / L
        A_bar, b_bar = est.A_bar[seeds], est.b_bar[seeds]  # (n, T, ...)
        self._A = Tabulated(est.ts, A_bar.mean(0))
        self._b = Tabulated(est.ts, b_bar.mean(0))
        R = est.residuals[seeds]  # (n, L, d, d+1), centred on each network's own drift
        if len(seeds) > 1:  # re-centre on the common drift: R + (Ā_s − Ā)(t_k)/√L
            own = Tabulated(est.ts, torch.cat([A_bar, b_bar.unsqueeze(-1)], -1).transpose(0, 1))
            common = Tabulated(est.ts, torch.cat([A_bar.mean(0), b_bar.mean(0).unsqueeze(-1)], -1))
            shift = torch.stack([own(float(c)) - common(float(c)) for c in self.centres], 1)  # (n, L, d, d+1)
            R = R + shift / math.sqrt(L)
        self.n = len(seeds)
        self.R = R.transpose(0, 1).reshape(L * self.n, *R.shape[2:])  # layer-major (L·n, d, d+1)

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.R.shape[1]

    def _window(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        w = epanechnikov_weights(t, self.centres, self.est.bandwidth)
        k = torch.nonzero(w > 0).flatten()
        idx = (k.unsqueeze(1) * self.n + torch.arange(self.n)).flatten()
        return idx, (w[k] / self.n).repeat_interleave(self.n)

    def increments(self, t0, t1, n_paths, gen):
        dt = t1 - t0
        k, w = self._window(t0)
        d = self.dim
        g = torch.randn(n_paths, len(k), generator=gen, dtype=DTYPE)
        noise = (g * w.sqrt()) @ self.R[k].reshape(len(k), -1) * math.sqrt(dt)
        noise = noise.view(n_paths, d, d + 1)
        return self._A(t0) * dt + noise[..., :d], self._b(t0) * dt + noise[..., d]

    def row_cov(self, t: float) -> torch.Tensor:
        k, w = self._window(t)
        Rk = self.R[k]
        return torch.einsum("k,kia,kib->iab", w, Rk, Rk)


def block_edges(L: int, n_steps: int) -> np.ndarray:
    """Layer indices 0 = e_0 < … < e_N = L splitting L layers into N nearly equal blocks."""
    return np.unique(np.round(np.linspace(0, L, min(n_steps, L) + 1)).astype(int))


def _block_sums(X: torch.Tensor, edges: np.ndarray) -> torch.Tensor:
    """Sums of X (S, L, ...) over the layer blocks [e_n, e_{n+1}): (S, N, ...)."""
    cs = torch.cat([torch.zeros_like(X[:, :1]), X.cumsum(1)], dim=1)
    e = torch.as_tensor(edges)
    return cs[:, e[1:]] - cs[:, e[:-1]]


def pathwise_limit(
    limit: str, A, b, delta, activation: str, x, n_steps: int, est: CoefficientEstimate | None = None, form: str = "q_dt"
) -> tuple[torch.Tensor, np.ndarray]:
    """The limit equation driven by the network's own weights coarsened to ``n_steps`` blocks.

    ODE limits use the block means of ``L M_k`` (linear) or of ``L δ_k``, A_k, b_k (nonlinear)
    as coefficients constant on each block (RK4); the Itô SDE uses the block sums of M_k, m_k
    as increments with ``form`` ``q_dt`` (the Itô drift from the estimated covariance, the
    limit) or ``realised`` (realised squares, the discrete scheme). Returns the states
    (N+1, S, n_inputs, d) at the block edges and the edges.
    """
    act = _act(activation)
    A, b, delta = _t(A), _t(b), _t(delta)
    S, L, d = A.shape[:3]
    edges = block_edges(L, n_steps)
    ts = torch.as_tensor(edges / L, dtype=DTYPE)
    widths = torch.as_tensor(np.diff(edges), dtype=DTYPE)  # layers per block
    M = delta[..., None, None] * A
    m = delta[..., None] * b
    if limit == "linear_ode":
        Ab = _block_sums(M, edges) / (widths.view(1, -1, 1, 1) / L)  # block means of L M_k
        bb = _block_sums(m, edges) / (widths.view(1, -1, 1) / L)
        H = solve_linear_ode(PerStep(Ab.transpose(0, 1)), PerStep(bb.transpose(0, 1)), x, gain=act.slope_at_0, ts=ts)
    elif limit == "neural_ode":
        db = _block_sums(delta, edges) / (widths.view(1, -1) / L)
        Am = _block_sums(A, edges) / widths.view(1, -1, 1, 1)
        bm = _block_sums(b, edges) / widths.view(1, -1, 1)
        H = solve_neural_ode(PerStep(Am.transpose(0, 1)), PerStep(bm.transpose(0, 1)), x, act,
                             delta=PerStep(db.transpose(0, 1)), ts=ts)
    elif limit == "ito_sde":
        dWA, dWb = _block_sums(M, edges), _block_sums(m, edges)
        d_const = delta.mean(1)
        C = None
        if form == "q_dt" and act.curvature_at_0 != 0.0:
            if est is None or est.row_cov is None:
                raise ValueError("the q dt form needs a CoefficientEstimate with row_cov")
            tab = Tabulated(est.ts, est.row_cov.transpose(0, 1))  # (T, S, d, d+1, d+1)
            C = torch.stack([tab(float(t)) for t in ts[:-1]])  # (N, S, d, d+1, d+1)
        H = solve_ito_sde(dWA, dWb, x, act, True, row_cov=C, row_cov_per_step=C is not None, ts=ts, delta=d_const)
    else:
        raise ValueError(f"no pathwise limit for {limit!r} (the moment-matched diffusion is compared in law only)")
    return H, edges


@dataclass
class TrainedFit:
    """Everything fitted for one (experiment, depth): tables as lists of row dicts."""

    pathwise: list[dict]
    generative: list[dict]
    coefficients: list[dict]
    trajectories: list[dict]


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over samples and coordinates, per leading index: out (..., N, d)."""
    return (out - y).pow(2).mean(dim=(-1, -2))


def fit_trained_depth(
    w,
    x_test,
    y_test,
    limit: str,
    cfg: dict,
    *,
    labels: dict | None = None,
    seed: int = 0,
    trajectory_depth: bool = False,
) -> TrainedFit:
    """Fit and simulate the chosen limit for all seeds of one trained (experiment, depth).

    ``w``: a :class:`resnet_scaling.weights.TrainedWeights`; ``cfg`` the ``limits.fit``
    config (bandwidth, n_grid, steps, n_inputs, n_pathwise_inputs, draws, max_layers,
    n_trajectories). Non-finite seeds are left out.
    """
    labels = dict(labels or {})
    act = get_activation(w.activation)
    keep = np.asarray(w.finite, bool)
    if not keep.any():
        raise ValueError(f"{w.experiment} depth {w.depth}: no seed has finite weights")
    A, b, delta = _t(w.A[keep]), _t(w.b[keep]), _t(w.delta[keep])
    seeds = np.asarray(w.seeds)[keep]
    S, L, d = A.shape[:3]
    x_all, y_all = _t(x_test), _t(y_test)
    n_in = min(int(cfg.get("n_inputs", 256)), len(x_all))
    x, y = x_all[:n_in], y_all[:n_in]
    n_pw = min(int(cfg.get("n_pathwise_inputs", 64)), n_in)
    base = {**labels, "depth": L, "limit": limit}
    need_cov = limit == "ito_sde" and act.curvature_at_0 != 0.0
    est = estimate_coefficients(A, b, delta, float(cfg.get("bandwidth", 0.1)), int(cfg.get("n_grid", 40)), with_row_cov=need_cov)
    h = network_states(A, b, delta, act, x)  # (L+1, S, n_in, d)
    motion = (h - h[0]).norm(dim=-1).amax(0)  # (S, n_in): size of the hidden-state path

    # -- coefficients against t --------------------------------------------------------------
    coef_rows = []
    for s in range(S):
        for j, t in enumerate(est.ts.tolist()):
            for q, v in (
                ("drift_A_norm", est.A_bar[s, j].norm()),
                ("drift_b_norm", est.b_bar[s, j].norm()),
                ("delta_bar", est.delta_bar[s, j]),
                ("diffusion_trace", est.cov_trace[s, j]),
            ):
                coef_rows.append({**base, "seed": int(seeds[s]), "t": t, "quantity": q, "value": float(v)})

    # -- (a) pathwise, coarsened to N steps ---------------------------------------------------
    pw_rows = []
    Hpw_traj = None
    if limit != "moment_matched":
        steps = sorted({int(n) for n in cfg.get("pathwise_steps", [8, 32, 128])} | {L})
        forms = ["q_dt", "realised"] if limit == "ito_sde" and act.curvature_at_0 != 0.0 else ["ode" if "ode" in limit else "q_dt"]
        traj_n = max([n for n in steps if n <= min(L, 128)] or [min(steps)])  # the one drawn in the figure
        for n in steps:
            if n > L:
                continue
            for form in forms:
                H, edges = pathwise_limit(limit, A, b, delta, act, x[:n_pw], n, est, "q_dt" if form == "ode" else form)
                err = (h[torch.as_tensor(edges), :, :n_pw] - H).norm(dim=-1).amax(0)  # (S, n_pw)
                rel = err / motion[:, :n_pw].clamp_min(1e-300)
                for s in range(S):
                    pw_rows.append({
                        **base, "seed": int(seeds[s]), "n_steps": len(edges) - 1, "form": form,
                        "measures": "taylor_remainder" if len(edges) - 1 == L else "coarsened",
                        "error": float(err[s].pow(2).mean().sqrt()),
                        "relative_error": float(rel[s].pow(2).mean().sqrt()),
                    })
                if n == traj_n and form in ("ode", "q_dt"):
                    Hpw_traj = (H, edges)

    # -- (b) generative: fresh noise with the estimated coefficients --------------------------
    n_gen = int(cfg.get("steps", 100))
    draws = int(cfg.get("draws", 4))
    gen_seed = stable_seed("limits-generative", seed, labels.get("experiment", ""), L)
    variants: dict[str, torch.Tensor] = {}  # name -> outputs (S or 1, R, n_in, d) ; trajectories (n+1, ...)
    traj: dict[str, torch.Tensor] = {}
    ts_gen = torch.linspace(0, 1, n_gen + 1, dtype=DTYPE)
    if limit in ("linear_ode", "neural_ode", "ito_sde"):
        trend = solve_linear_ode(Tabulated(est.ts, est.A_bar.transpose(0, 1)), Tabulated(est.ts, est.b_bar.transpose(0, 1)),
                                 x, gain=act.slope_at_0, ts=ts_gen)
        if limit == "linear_ode":
            variants["limit"] = trend[-1].unsqueeze(1)
            traj["limit"] = trend.unsqueeze(2)
        elif limit == "neural_ode":
            Hn = solve_neural_ode(Tabulated(est.ts, est.A_mean.transpose(0, 1)), Tabulated(est.ts, est.b_mean.transpose(0, 1)),
                                  x, act, delta=Tabulated(est.ts, est.delta_bar.transpose(0, 1)), ts=ts_gen)
            variants["limit"] = Hn[-1].unsqueeze(1)
            traj["limit"] = Hn.unsqueeze(2)
        else:
            outs, trs = [], []
            for s in range(S):
                law = KernelWeightPathLaw(est, s)
                Hs = sample_ito_sde(law, x, act, n_gen, draws, stable_seed(gen_seed, s), delta=float(delta[s].mean()))
                outs.append(Hs[-1])
                trs.append(Hs)
            variants["limit"] = torch.stack(outs)  # (S, R, n_in, d)
            traj["limit"] = torch.stack(trs, 1)  # (n+1, S, R, n_in, d)
            variants["trend_only"] = trend[-1].unsqueeze(1)
            if S > 1:  # the seeds as draws of one law: common drift, pooled covariance
                law = KernelWeightPathLaw(est, range(S))
                Hp = sample_ito_sde(law, x, act, n_gen, draws * S, stable_seed(gen_seed, "pooled"),
                                    delta=float(delta.mean()), record_every=n_gen)
                variants["limit_pooled"] = Hp[-1].unsqueeze(0)
    else:
        mm = MomentMatchedDiffusion(A, b, delta, act, float(cfg.get("bandwidth", 0.1)),
                                    max_layers=int(cfg.get("max_layers", 128)))
        Hm = sample_diffusion(mm, x, n_gen, draws, gen_seed)  # (n+1, R, n_in, d), pooled over seeds
        variants["limit"] = Hm[-1].unsqueeze(0)
        traj["limit"] = Hm.unsqueeze(1)
        # the mean-field ODE of docs/maths.md §4(e): each network's window-mean field, no noise
        mean_field = [
            solve_mean_field_ode(MomentMatchedDiffusion(A[s:s + 1], b[s:s + 1], delta[s:s + 1], act,
                                                        float(cfg.get("bandwidth", 0.1))),
                                 x, n_gen, int(cfg.get("max_layers", 128)))[-1, 0]
            for s in range(S)
        ]
        variants["mean_field_ode"] = torch.stack(mean_field).unsqueeze(1)  # (S, 1, n_in, d)
    gen_rows = []
    hL = h[-1]  # (S, n_in, d)
    net_pool = hL.reshape(-1, d)
    loss_net = _mse(hL, y)  # (S,)
    size = (hL - x).norm(dim=-1).pow(2).mean().sqrt()  # RMS size of the change h_L − x

    def spread(z: torch.Tensor) -> float:
        """RMS over inputs of the spread (root total variance) of samples z (n, n_in, d) at each input."""
        return float(z.var(0).sum(-1).mean().sqrt()) if z.shape[0] > 1 else float("nan")

    net_spread = spread(hL)
    for name, out in variants.items():
        # per network: the mean over draws against that network's own output
        bias = (out.mean(1) - hL).norm(dim=-1).pow(2).mean().sqrt()
        # per input, in law: mean and spread of all draws against those of the networks
        pooled = out.reshape(-1, n_in, d)
        mean_err = (pooled.mean(0) - hL.mean(0)).norm(dim=-1).pow(2).mean().sqrt()
        lim_spread = spread(pooled) if pooled.shape[0] > 1 else 0.0
        gen_rows.append({
            **base, "variant": name, "n_seeds": S, "draws": out.shape[1], "n_inputs": n_in, "steps": n_gen,
            "output_w1": wasserstein1(pooled.reshape(-1, d), net_pool),
            "output_rmse": float(bias), "relative_output_error": float(bias / size),
            "relative_mean_error": float(mean_err / size),
            # standard error of that difference of means, from the two spreads and sample sizes
            "relative_mean_error_se": float(math.sqrt(
                (net_spread**2 / S if np.isfinite(net_spread) else 0.0) + lim_spread**2 / max(pooled.shape[0], 1)) / size),
            "limit_spread": lim_spread, "network_spread": net_spread,
            "spread_ratio": lim_spread / net_spread if np.isfinite(net_spread) and net_spread > 0 else float("nan"),
            "test_loss_network": float(loss_net.mean()), "test_loss_limit": float(_mse(out, y).mean()),
        })

    # -- trajectories of a few inputs (first seed) ------------------------------------------
    traj_rows = []
    if trajectory_depth:
        n_tr = min(int(cfg.get("n_trajectories", 3)), n_pw)
        coords = range(min(2, d))
        sub = np.unique(np.round(np.linspace(0, L, min(L, 200) + 1)).astype(int))
        for i in range(n_tr):
            for c in coords:
                for k in sub:
                    traj_rows.append({**base, "input": i, "coordinate": c, "source": "network", "draw": 0,
                                      "t": k / L, "value": float(h[k, 0, i, c])})
                if Hpw_traj is not None:
                    H, edges = Hpw_traj
                    for j, e in enumerate(edges):
                        traj_rows.append({**base, "input": i, "coordinate": c, "source": "pathwise limit", "draw": 0,
                                          "t": e / L, "value": float(H[j, 0, i, c])})
                T = traj["limit"]  # (n+1, S or 1, R, n_in, d)
                for r in range(min(T.shape[2], 3)):
                    for j in range(0, n_gen + 1, max(1, n_gen // 100)):
                        traj_rows.append({**base, "input": i, "coordinate": c, "source": "generative limit", "draw": r,
                                          "t": j / n_gen, "value": float(T[j, 0, r, i, c])})
    return TrainedFit(pw_rows, gen_rows, coef_rows, traj_rows)


PATHWISE_COLUMNS = ["experiment", "regime", "depth", "limit", "seed", "n_steps", "form", "measures", "error", "relative_error"]


def read_regime(regimes_csv, experiment: str) -> str:
    """The regime the scaling stage found for an experiment (``regimes.csv``: experiment, regime)."""
    from .tables import read_regimes

    table = read_regimes(regimes_csv, [experiment])
    row = table[table["experiment"] == experiment]
    if row.empty:
        raise ValueError(f"{regimes_csv}: no regime for experiment {experiment!r}")
    return normalise_regime(row["regime"].iloc[0])


def read_beta(exponents_csv, experiment: str, statistic: str = "rms_norm") -> float:
    """β = the exponent of the layer norms of A (``exponents.csv``: experiment, quantity,
    statistic, exponent); NaN when the table has no such row."""
    from .tables import read_exponents

    table = read_exponents(exponents_csv)
    row = table[(table.experiment == experiment) & (table.quantity == "A") & (table.statistic == statistic)]
    return float(row["exponent"].iloc[0]) if len(row) else float("nan")


def estimate_beta(weights: Sequence) -> float:
    """β from the RMS layer norm of A across the given depths (−OLS slope in log L); NaN for one depth."""
    from scipy import stats

    if len(weights) < 2:
        return float("nan")
    L = np.array([w.depth for w in weights], float)
    rms = np.array([np.sqrt(np.mean(np.sum(w.A[np.asarray(w.finite, bool)] ** 2, axis=(-1, -2)))) for w in weights])
    return float(-stats.linregress(np.log(L), np.log(rms)).slope)


def coefficient_agreement(fits: dict[int, CoefficientEstimate]) -> list[dict]:
    """Do the estimated coefficients of different depths agree (docs/maths.md §4, trained networks)?

    For each depth: ‖X_L − X_deepest‖ / ‖X_deepest‖ over the time grid, X the seed mean of
    the drift Ā (and b̄) or of the diffusion trace.
    """
    deepest = max(fits)
    ref = fits[deepest]
    rows = []
    for L, est in sorted(fits.items()):
        for name, get in (
            ("drift_A", lambda e: e.A_bar.mean(0)),
            ("drift_b", lambda e: e.b_bar.mean(0)),
            ("diffusion_trace", lambda e: e.cov_trace.mean(0)),
        ):
            a, r = get(est), get(ref)
            rows.append({"depth": L, "reference_depth": deepest, "quantity": name,
                         "relative_difference": float((a - r).norm() / r.norm().clamp_min(1e-300))})
    return rows


def fit_experiment(
    train_paths: Sequence,
    dataset_path,
    regime: str,
    cfg: dict,
    *,
    beta: float = float("nan"),
    experiment: str = "",
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Fit the limit of an experiment's deepest networks (one training output per depth).

    Chooses the limit from ``regime`` (:func:`choose_limit`; β from the scaling stage or,
    if NaN, from these depths), then for every depth: kernel estimates, the pathwise
    comparison (a) and the generative one (b). Returns the tables ``pathwise``,
    ``generative``, ``coefficients``, ``trajectories``, ``agreement`` (DataFrames) and a
    ``summary`` dict.
    """
    import pandas as pd

    from .io import read_npz
    from .weights import load_training

    weights = sorted((load_training(p) for p in train_paths), key=lambda w: w.depth)
    if not weights:
        raise ValueError(f"{experiment}: no training outputs given")
    w0 = weights[-1]
    data, _ = read_npz(dataset_path)
    for key in ("x_test", "y_test"):
        if key not in data:
            raise ValueError(f"{dataset_path}: no array {key!r}")
    beta_used = beta if np.isfinite(beta) else estimate_beta(weights)
    limit = choose_limit(regime, w0.activation, w0.delta_type, beta_used, float(cfg.get("beta_min", 0.1)))
    labels = {"experiment": experiment or w0.experiment, "regime": normalise_regime(regime)}
    tables: dict[str, list] = {"pathwise": [], "generative": [], "coefficients": [], "trajectories": []}
    ests = {}
    for w in _progress(weights, progress, f"limits {labels['experiment']}"):
        fit = fit_trained_depth(w, data["x_test"], data["y_test"], limit, cfg, labels=labels, seed=seed,
                                trajectory_depth=w is w0)
        for name in tables:
            tables[name] += getattr(fit, name)
        keep = np.asarray(w.finite, bool)
        ests[w.depth] = estimate_coefficients(w.A[keep], w.b[keep], w.delta[keep], float(cfg.get("bandwidth", 0.1)),
                                              int(cfg.get("n_grid", 40)), with_row_cov=False)
    out = {k: pd.DataFrame(v) for k, v in tables.items()}
    if out["pathwise"].empty:  # moment-matched: compared in law only; keep the header
        out["pathwise"] = pd.DataFrame(columns=PATHWISE_COLUMNS)
    agreement = pd.DataFrame(coefficient_agreement(ests))
    agreement.insert(0, "experiment", labels["experiment"])
    out["agreement"] = agreement
    out["summary"] = summarise_fit(out, labels["experiment"], labels["regime"], limit, beta_used, w0)
    return out


def _is_close(row: dict, threshold: float) -> bool:
    """A deterministic limit is close when its outputs are within ``threshold`` (relative)
    of every network's; a stochastic one when, input by input, its mean is within the
    threshold or two standard errors of the networks' mean and its spread within a factor 2
    of theirs; both need a test-loss ratio within a factor 2."""
    ratio = row["test_loss_limit"] / row["test_loss_network"] if row["test_loss_network"] > 0 else float("nan")
    loss_ok = 0.5 < ratio < 2.0
    if row["stochastic"]:
        mean_ok = row["relative_mean_error"] < max(threshold, 2 * row["relative_mean_error_se"])
        spread_ok = not np.isfinite(row["spread_ratio"]) or 0.5 < row["spread_ratio"] < 2.0
        return bool(loss_ok and mean_ok and spread_ok)
    return bool(loss_ok and row["relative_output_error"] < threshold)


def summarise_fit(tables: dict, experiment: str, regime: str, limit: str, beta: float, w) -> dict:
    """The numbers the note quotes for one experiment, read from its tables (deepest depth).

    The generative variant quoted is ``limit_pooled`` when there is one (the seeds as draws of
    one law), else ``limit``."""
    L = int(w.depth)
    gen = tables["generative"]
    at_L = gen[gen.depth == L]
    variant = "limit_pooled" if (at_L.variant == "limit_pooled").any() else "limit"
    g = at_L[at_L.variant == variant].iloc[0]
    summary = {
        "experiment": experiment, "regime": regime, "limit": limit, "beta": beta, "activation": w.activation,
        "delta": w.delta_type, "depth": L, "depths": sorted(int(x) for x in gen.depth.unique()),
        "variant": variant, "stochastic": limit in ("ito_sde", "moment_matched"), "n_seeds": int(g.n_seeds),
    }
    for key in ("output_w1", "relative_output_error", "relative_mean_error", "relative_mean_error_se",
                "limit_spread", "network_spread", "spread_ratio", "test_loss_network", "test_loss_limit"):
        summary[key] = float(g[key])
    trend = at_L[at_L.variant == "trend_only"]
    if len(trend):
        summary["test_loss_trend_only"] = float(trend.test_loss_limit.iloc[0])
    mean_field = gen[gen.variant == "mean_field_ode"].sort_values("depth")
    if len(mean_field):  # §4(e): does each network approach its own mean-field ODE as L grows?
        summary["mean_field_relative_error_by_depth"] = dict(zip(mean_field.depth.astype(int).tolist(),
                                                                 mean_field.relative_output_error.astype(float).tolist()))
        summary["network_spread_by_depth"] = dict(zip(mean_field.depth.astype(int).tolist(),
                                                      mean_field.network_spread.astype(float).tolist()))
        diffusion = gen[gen.variant == "limit"].sort_values("depth")
        summary["diffusion_spread_by_depth"] = dict(zip(diffusion.depth.astype(int).tolist(),
                                                        diffusion.limit_spread.astype(float).tolist()))
    pw = tables["pathwise"]
    if len(pw):
        p = pw[(pw.depth == L) & (pw.form != "realised")].groupby("n_steps").relative_error.mean()
        summary["pathwise_relative_error"] = {int(k): float(v) for k, v in p.items()}
        by_depth = pw[(pw.form != "realised") & (pw.measures == "taylor_remainder")].groupby("depth").error.mean()
        summary["taylor_remainder_by_depth"] = {int(k): float(v) for k, v in by_depth.items()}
    agr = tables["agreement"]
    shallow = agr[agr.depth == agr.depth.min()]
    summary["agreement_shallowest"] = {r.quantity: float(r.relative_difference) for r in shallow.itertuples()}
    return summary


def _pct(v: float) -> str:
    """A relative error as a percentage with two significant digits (0.034 % rather than 0.0 %)."""
    return f"{100 * v:.2g} %"


def limits_note(summaries: Sequence[dict], convergence_fits=None, *, close_threshold: float = 0.1) -> str:
    """A short Markdown note: how close each fitted limit is to its trained networks, and why
    not where it is not. Every number is read from the summaries (rule outputs)."""
    lines = ["# Fitted limits of the trained networks", ""]
    if convergence_fits is not None and len(convergence_fits):
        lines += ["## Solvers against known rates (synthetic weights, docs/maths.md §4)", "",
                  "| case | activation | β | Itô term | slope (RMS) | 95 % interval | expected |", "|---|---|---|---|---|---|---|"]
        for r in convergence_fits[convergence_fits.statistic == "error"].itertuples():
            ito = "" if r.case != "diffusive" else ("with" if str(r.with_ito_term) == "True" else "without")
            lines.append(f"| {r.case} | {r.activation} | {r.beta:g} | {ito} | {r.slope:+.2f} | "
                         f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}] | {r.expected:+.2f} |")
        lines.append("")
    lines += ["## Trained networks", "",
              f"A deterministic limit counts as close when its outputs are within {close_threshold:.0%} (relative to the size "
              "of the change h_L − x) of every network's; a stochastic one when, input by input, its mean is within that "
              "or two standard errors of the networks' mean over seeds and its spread within a factor 2 of theirs; both "
              "also need the test loss within a factor 2.", ""]
    for s in summaries:
        ratio = s["test_loss_limit"] / s["test_loss_network"] if s["test_loss_network"] > 0 else float("nan")
        close = _is_close(s, close_threshold)
        lines.append(f"### {s['experiment']}")
        lines.append("")
        lines.append(
            f"Regime from the scaling stage: **{s['regime']}**; fitted limit: **{s['limit']}** "
            f"({s['activation']}, δ {s['delta']}, β used {s['beta']:.2f}); depths {', '.join(map(str, s['depths']))}, "
            f"{s['n_seeds']} seeds."
        )
        lines.append("")
        verdict = "close to" if close else "not close to"
        if s["stochastic"]:
            body = (f"mean over draws {_pct(s['relative_mean_error'])} from the networks' mean (standard error "
                    f"{_pct(s['relative_mean_error_se'])}), spread {s['limit_spread']:.3g} against {s['network_spread']:.3g} "
                    f"across seeds (ratio {s['spread_ratio']:.2f})")
        else:
            body = f"output error {_pct(s['relative_output_error'])} of the size of the output change"
        lines.append(
            f"At depth {s['depth']} the generative limit ({s['variant']}) is **{verdict}** the networks: {body}; "
            f"Wasserstein-1 {s['output_w1']:.3g}; test loss {s['test_loss_limit']:.3g} against "
            f"{s['test_loss_network']:.3g} (ratio {ratio:.2f})."
        )
        if "test_loss_trend_only" in s:
            lines.append(f"With the noise switched off (trend of the weights only) the test loss is {s['test_loss_trend_only']:.3g}.")
        if s["limit"] == "moment_matched":
            lines.append(
                "The moment-matched diffusion is compared in law only (docs/maths.md §4(d)): "
                + ("ReLU is not C² at 0, so neither the ODE nor the Itô SDE of §4(b)–(c) applies; "
                   if s["activation"] == "relu" else f"the regime is {s['regime']}, so the fit is descriptive; ")
                + "its window drift also carries the estimation noise of L·δ_k σ(z_k), which fluctuates like √L."
            )
        if s.get("mean_field_relative_error_by_depth"):
            def by_depth(key, fmt):
                return ", ".join(f"L = {k}: {fmt(v)}" for k, v in s[key].items())
            lines.append(
                "Mean-field ODE of docs/maths.md §4(e) (each network's window-mean field, integrated without "
                "noise), relative output error against the network: "
                + by_depth("mean_field_relative_error_by_depth", _pct)
                + "; spread of the networks over seeds: " + by_depth("network_spread_by_depth", lambda v: f"{v:.3g}")
                + "; spread of the fitted diffusion: " + by_depth("diffusion_spread_by_depth", lambda v: f"{v:.3g}")
                + ". An ODE with rough weights shows a small mean-field error that falls with L, a seed spread "
                "that shrinks and a vanishing fitted diffusion."
            )
        if s.get("pathwise_relative_error"):
            pr = ", ".join(f"N = {k}: {_pct(v)}" for k, v in s["pathwise_relative_error"].items())
            lines.append(
                f"Pathwise, driven by the network's own weights coarsened to N steps (relative sup error): {pr}. "
                "At N = L this measures the Taylor remainder of the scheme, not the distance to the limit."
            )
        agr = s.get("agreement_shallowest", {})
        if agr:
            txt = ", ".join(f"{k} {v:.0%}" for k, v in agr.items())
            lines.append(f"Estimated coefficients of the shallowest fitted depth against the deepest (relative difference): {txt}.")
        lines.append("")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------
# writers called by the workflow scripts
# ----------------------------------------------------------------------------------------
def write_convergence(cfg: dict, table_path, fits_path, progress: bool = True) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Run the convergence study of ``cfg`` and write its table and slope fits atomically."""
    from .io import write_csv

    table = convergence_table(cfg, progress=progress)
    fits = convergence_fits(table)
    write_csv(table_path, table)
    write_csv(fits_path, fits)
    return table, fits


def write_fit(
    train_paths: Sequence,
    dataset_path,
    regimes_csv,
    exponents_csv,
    cfg: dict,
    outputs: dict,
    *,
    experiment: str,
    seed: int = 0,
    exponent_statistic: str = "rms_norm",
) -> dict:
    """Fit one experiment (:func:`fit_experiment`) with its regime and β from the scaling
    stage, and write the tables named in ``outputs`` (pathwise, generative, coefficients,
    trajectories, agreement, summary) atomically."""
    from .io import write_csv, write_json

    regime = read_regime(regimes_csv, experiment)
    beta = read_beta(exponents_csv, experiment, exponent_statistic) if exponents_csv else float("nan")
    out = fit_experiment(train_paths, dataset_path, regime, cfg, beta=beta, experiment=experiment, seed=seed, progress=True)
    for name in ("pathwise", "generative", "coefficients", "trajectories", "agreement"):
        write_csv(outputs[name], out[name])
    write_json(outputs["summary"], out["summary"])
    return out["summary"]


def write_note(summary_paths: Sequence, fits_path, note_path, table_path, close_threshold: float = 0.1) -> str:
    """Collect the experiments' summaries into ``summary.csv`` and the Markdown note."""
    import json

    import pandas as pd

    from .io import write_csv, write_text

    from .tables import read_json, read_table

    summaries = [read_json(p) for p in summary_paths]
    fits = read_table(fits_path) if fits_path else None
    note = limits_note(summaries, fits, close_threshold=close_threshold)
    flat = [{k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in s.items()} for s in summaries]
    write_csv(table_path, pd.DataFrame(flat))
    write_text(note_path, note)
    return note
