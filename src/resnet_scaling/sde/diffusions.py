"""State-dependent diffusions ``dH = μ(t, H) dt + Σ(t, H)^{1/2} dB`` (docs/maths.md §4(d), (e)):
the exact limit of random-sign ReLU layers, the moment-matched diffusion of a set of
networks, their generative Euler–Maruyama solution and the mean-field ODE."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import torch

from ..training.activations import Activation
from .loop import integrate
from .schemes import euler_maruyama_step
from .smoothing import epanechnikov_weights, layer_centres
from .tensors import DTYPE, as_activation, as_tensor, generator, path_inputs


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
    gen = generator(seed)
    dt = 1.0 / n_steps

    def advance(k: int, h: torch.Tensor) -> torch.Tensor:
        return euler_maruyama_step(model.increment, k * dt, dt, h, gen)

    h0 = path_inputs(x, n_paths, model.dim).clone()
    return integrate(advance, h0, n_steps, record_every=record_every, progress=progress, desc="diffusion")


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
        return int(as_tensor(self.b_bar(0.0)).shape[-1])

    def moments(self, t: float, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean E r and variance Var r of r = relu(A h + b) at time t, each (P, N, d)."""
        A, b = as_tensor(self.A_bar(t)), as_tensor(self.b_bar(t))
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


class MomentMatchedDiffusion(DiffusionModel):
    """The moment-matched diffusion of docs/maths.md §4(d), estimated from the layers of networks.

    Around t the layers k with |(k + ½)/L − t| < bandwidth (of all P networks, taken as
    draws of one law) get Epanechnikov weights w_j (:mod:`.smoothing`), and
    with ``r_j(h) = δ_j σ(A_j h + b_j)``

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
        A, b = as_tensor(A), as_tensor(b)
        P, L, d = A.shape[:3]
        delta = as_tensor(delta)
        delta = delta.expand(P, L) if delta.dim() <= 1 else delta
        self.L, self.dim_, self.bandwidth = L, d, float(bandwidth)
        self.max_layers = None if max_layers is None else int(max_layers)
        self.act = as_activation(activation)
        # pooled layer list, layer-major so that a window is a contiguous block
        self.A = A.transpose(0, 1).reshape(L * P, d, d)
        self.b = b.transpose(0, 1).reshape(L * P, d)
        self.delta = delta.transpose(0, 1).reshape(L * P)
        self.P = P
        self.layer_centres = layer_centres(L)

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

    def layer_values(self, idx: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
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
        return self.L * torch.einsum("k,kpne->pne", w, self.layer_values(idx, h))

    def increment(self, t, dt, h, gen):
        layers, wl = self.layer_window(t)
        if self.max_layers is None or len(layers) * self.P <= self.max_layers:
            idx, w = self.window(t)
            r = self.layer_values(idx, h)  # (K, P, N, d)
            mean = torch.einsum("k,kpne->pne", w, r)
            res = w.sqrt().view(-1, 1, 1, 1) * (r - mean)
            g = torch.randn(res.shape[0], *h.shape[:-1], 1, generator=gen, dtype=DTYPE)
            return self.L * dt * mean + math.sqrt(self.L * dt) * (g * res).sum(0)
        # each path draws its own layers with probability ∝ w (then equal weights): unbiased,
        # and the estimation errors of different paths are independent
        K, P = self.max_layers, h.shape[0]
        pick = layers[torch.multinomial(wl.expand(P, -1), K, replacement=True, generator=gen)]
        nets = torch.randint(self.P, (P, K), generator=gen)
        r = self.layer_values(pick * self.P + nets, h)  # (P, K, N, d)
        mean = r.mean(1)
        g = torch.randn(P, K, h.shape[1], 1, generator=gen, dtype=DTYPE)
        return self.L * dt * mean + math.sqrt(self.L * dt / K) * (g * (r - mean.unsqueeze(1))).sum(1)


def solve_mean_field_ode(model: MomentMatchedDiffusion, x, n_steps: int, max_layers: int | None = None) -> torch.Tensor:
    """The mean-field ODE ``dH/dt = μ(t, H)`` of docs/maths.md §4(e), Euler steps, (n+1, P, N, d).

    μ is the window mean of the model's layers (its drift without the noise), over at most
    ``max_layers`` evenly spaced layers per window (:meth:`MomentMatchedDiffusion.window`):
    the Euler–Maruyama step of the diffusion with its noise switched off.
    """
    dt = 1.0 / n_steps

    def drift_increment(t: float, dt: float, h: torch.Tensor, gen) -> torch.Tensor:
        idx, w = model.window(t, max_layers)
        return dt * model.L * torch.einsum("k,kpne->pne", w, model.layer_values(idx, h))

    def advance(k: int, h: torch.Tensor) -> torch.Tensor:
        return euler_maruyama_step(drift_increment, k * dt, dt, h, None)

    return integrate(advance, path_inputs(x, model.P, model.dim).clone(), n_steps)
