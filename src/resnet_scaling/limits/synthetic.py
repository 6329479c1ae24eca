"""Synthetic weight paths with known limits (docs/maths.md §4 (a)–(d)): smooth coefficients,
the diffusive case's fine Brownian path and its block sums, random-sign ReLU layers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch

from ..io import stable_seed
from ..sde.diffusions import RandomSignReluLaw
from ..sde.laws import GaussianWeightPathLaw
from ..sde.tensors import DTYPE, as_tensor, generator


CASES = ("neural_ode", "linear_ode", "diffusive", "generic")


class SmoothPath:
    """A smooth coefficient ``C(t) = G_0 + G_1 sin 2πt + G_2 cos 2πt + G_3 t`` (Lipschitz in t).

    ``G`` (4, *shape); evaluating at a scalar t gives a tensor of ``shape``.
    """

    def __init__(self, G: torch.Tensor):
        self.G = G

    def basis(self, t):
        t = as_tensor(t)
        return torch.stack([torch.ones_like(t), torch.sin(2 * math.pi * t), torch.cos(2 * math.pi * t), t])

    def __call__(self, t: float) -> torch.Tensor:
        phi = self.basis(t)
        return torch.tensordot(phi, self.G, dims=([0], [0]))

    def on_grid(self, ts) -> torch.Tensor:
        """Values at many times, (T, *shape)."""
        phi = self.basis(as_tensor(ts))  # (4, T)
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
    gen = generator(stable_seed("limits-diffusive-drift", seed, dim))
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
        gen = generator(stable_seed("limits-diffusive-fine", seed, n_fine, n_paths, j))
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
        gen = generator(stable_seed("limits-smooth", case, seed, dim, n_paths))
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
    gen = generator(stable_seed("limits-generic-law", seed, dim))
    fA = SmoothPath.random((d, d), p["scale_A"] / math.sqrt(d), gen)
    fb = SmoothPath.random((d,), p["scale_b"], gen)
    law = RandomSignReluLaw(fA, fb, p["mu_delta"], p["s_delta"], p["tau_A"], p["tau_b"])
    gen = generator(stable_seed("limits-generic-layers", seed, dim, n_paths, L))
    A = fA.on_grid(tk).unsqueeze(0) + torch.randn(P, L, d, d, generator=gen, dtype=DTYPE) * (p["tau_A"] / math.sqrt(d))
    b = fb.on_grid(tk).unsqueeze(0) + torch.randn(P, L, d, generator=gen, dtype=DTYPE) * p["tau_b"]
    delta = (p["mu_delta"] + p["s_delta"] * math.sqrt(L) * torch.randn(P, L, generator=gen, dtype=DTYPE)) / L
    return WeightPaths(case, A, b, delta, 0.5, law=law, info=p)
