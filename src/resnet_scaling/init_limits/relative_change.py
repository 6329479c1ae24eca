"""Deliverable 4 (Marion et al.): ``h_{k+1} = h_k + L^{-β} V_k relu(W_k h_k)`` with i.i.d. zero-mean
entries of variance 1/d, W Gaussian: ``E‖h_L − h_0‖²/‖h_0‖² = (1 + L^{-2β}/2)^L − 1`` exactly, and
the same for ``E‖∂ℓ/∂h_0 − ∂ℓ/∂h_L‖²/‖∂ℓ/∂h_L‖²`` with a linear loss ℓ = ⟨u, h_L⟩ and isotropic
h_0 (it equals E‖J_L − I‖_F²/d by rotation invariance); smooth weights at β = 1 against
their ODE limit (docs/maths.md §6)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..config import section_settings
from ..io import stable_seed
from ..sde.loop import final
from ..sde.schemes import rk4_step
from ..sde.tensors import DTYPE
from .sampling import randn32
from .sampling import seeded_generator


#: A relative change above this (or not finite) counts as an explosion (shown, never clipped).
EXPLOSION_THRESHOLD = 1e12


def relative_change_identity(depth, beta) -> np.ndarray:
    """E‖h_L − h_0‖²/‖h_0‖² = E‖∂ℓ/∂h_0 − ∂ℓ/∂h_L‖²/‖∂ℓ/∂h_L‖² = (1 + L^{-2β}/2)^L − 1 (i.i.d. weights)."""
    depth = np.asarray(depth, dtype=float)
    return np.expm1(depth * np.log1p(depth ** (-2.0 * np.asarray(beta, dtype=float)) / 2.0))


WeightFn = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


def marion_network(
    weights: WeightFn,
    depth: int,
    betas,
    h0: torch.Tensor,
    u: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Relative changes of ``h_{k+1} = h_k + L^{-β} V_k relu(W_k h_k)`` for every β at once.

    ``weights(k)`` returns (V_k, W_k), each (P, d, d), deterministically in k (it is called
    again in the backward pass instead of storing every layer). ``h0`` (P, d) are the inputs;
    ``u`` (P, d) the output gradients ∂ℓ/∂h_L of the linear loss ℓ = ⟨u, h_L⟩.
    Returns ‖h_L − h_0‖/‖h_0‖ and, when ``u`` is given, ‖∂ℓ/∂h_0 − u‖/‖u‖, each (n_β, P).
    The backward pass is the explicit adjoint p_k = p_{k+1} + s W_kᵀ (1{W_k h_k > 0} ⊙ V_kᵀ p_{k+1}).
    """
    betas = np.atleast_1d(np.asarray(betas, dtype=float))
    nb = len(betas)
    s = torch.as_tensor(float(depth) ** -betas, dtype=DTYPE).view(nb, 1, 1)
    h = h0.unsqueeze(0).expand(nb, *h0.shape).clone()
    masks = [] if u is not None else None
    with np.errstate(all="ignore"):
        for k in range(depth):
            V, W = weights(k)
            pre = torch.einsum("pij,bpj->bpi", W, h)
            if masks is not None:
                masks.append(pre > 0)
            h = h + s * torch.einsum("pij,bpj->bpi", V, torch.relu(pre))
        rel_h = (h - h0).norm(dim=-1) / h0.norm(dim=-1)
        if u is None:
            return rel_h, None
        p = u.unsqueeze(0).expand(nb, *u.shape).clone()
        for k in range(depth - 1, -1, -1):
            V, W = weights(k)
            g = torch.einsum("pji,bpj->bpi", V, p) * masks[k]
            p = p + s * torch.einsum("pji,bpj->bpi", W, g)
        rel_g = (p - u).norm(dim=-1) / u.norm(dim=-1)
    return rel_h, rel_g


def iid_weights(n_paths: int, dim: int, *seed_parts) -> WeightFn:
    """i.i.d. Gaussian V_k, W_k with N(0, 1/d) entries; layer k has its own seeded generator."""

    def weights(k: int):
        w = randn32(seeded_generator(*seed_parts, k), (2, n_paths, dim, dim)) / math.sqrt(dim)
        return w[0], w[1]

    return weights


class SmoothWeights:
    """V(t), W(t): stationary Gaussian processes in t, smooth (finite Fourier series).

    Every entry is (1/√d) Σ_{m<M} a_m (ξ_m cos 2πmt + η_m sin 2πmt) with Σ a_m² = 1 and
    a_m² ∝ 2^{-m}: variance 1/d at every t, W(t) symmetric Gaussian. The same functions are
    sampled at t = k/L for every depth, so depths share one draw per path.
    """

    def __init__(self, n_paths: int, dim: int, modes: int, gen: torch.Generator):
        a = 2.0 ** (-np.arange(modes) / 2.0)
        a = a / np.sqrt((a**2).sum())
        self.amp = torch.as_tensor(a, dtype=DTYPE)
        self.coef = randn32(gen, (2, n_paths, dim, dim, 2, modes)) / math.sqrt(dim)
        self.freq = 2 * math.pi * torch.arange(modes, dtype=DTYPE)

    def at(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        basis = torch.stack([torch.cos(self.freq * t), torch.sin(self.freq * t)]) * self.amp
        w = torch.einsum("xpijcm,cm->xpij", self.coef, basis)
        return w[0], w[1]

    def layers(self, depth: int) -> WeightFn:
        return lambda k: self.at(k / depth)

    def ode_limit(self, h0: torch.Tensor, u: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """β = 1 limit dH/dt = V(t) relu(W(t) H), with J = ∂H/∂h_0 (RK4, ``steps`` steps).

        Returns ‖H_1 − h_0‖/‖h_0‖ and ‖J_1ᵀ u − u‖/‖u‖, each (P,).
        """
        d = h0.shape[1]

        def f(t, y):
            H, J = y
            V, W = self.at(t)
            pre = torch.einsum("pij,pj->pi", W, H)
            dH = torch.einsum("pij,pj->pi", V, torch.relu(pre))
            dJ = torch.bmm(V * (pre > 0).to(DTYPE).unsqueeze(1), torch.bmm(W, J))
            return dH, dJ

        start = (h0.clone(), torch.eye(d, dtype=DTYPE).expand(h0.shape[0], d, d).clone())
        dt = 1.0 / steps
        H, J = final(lambda n, y: rk4_step(f, n * dt, dt, y), start, steps)
        g = torch.einsum("pji,pj->pi", J, u)
        return (H - h0).norm(dim=1) / h0.norm(dim=1), (g - u).norm(dim=1) / u.norm(dim=1)


def is_exploded(values: np.ndarray, threshold: float = EXPLOSION_THRESHOLD) -> np.ndarray:
    return ~np.isfinite(values) | (values > threshold)


def _rms_with_ci(values: np.ndarray, n_boot: int, rng: np.random.Generator):
    """Root mean square with a percentile-bootstrap 95 % interval, and the mean square's SE."""
    sq = values**2
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    boot = np.sqrt(sq[idx].mean(axis=1))
    return (float(np.sqrt(sq.mean())), float(np.quantile(boot, 0.025)),
            float(np.quantile(boot, 0.975)), float(sq.std(ddof=1) / math.sqrt(len(sq))))


def relative_change_table(cfg: dict, seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """Deliverable 4: ‖h_L − h_0‖/‖h_0‖ and its gradient counterpart against L (Marion et al.).

    One row per (weights ∈ {iid, smooth}, quantity ∈ {state, gradient}, β, depth): RMS over
    paths with a bootstrap interval, the mean square with its standard error, the median,
    the number of explosions, and the theory: the exact identity for i.i.d. weights, and
    for smooth weights at β = 1 the RMS of the ODE limit (with its bootstrap interval).
    """
    cfg = section_settings("init_limits.relative_change", cfg)
    d, n = int(cfg["dim"]), int(cfg["paths"])
    betas = [float(b) for b in cfg["betas"]]
    depths = sorted(int(L) for L in cfg["depths"])
    n_boot = int(cfg["bootstrap"])
    threshold = float(cfg["explosion_threshold"])
    gen = seeded_generator(seed, "marion-inputs")
    h0 = randn32(gen, (n, d))
    u = randn32(gen, (n, d))
    u = u / u.norm(dim=1, keepdim=True)
    smooth = SmoothWeights(n, d, int(cfg["smooth_modes"]), seeded_generator(seed, "marion-smooth"))
    rng = np.random.default_rng(stable_seed(seed, "marion-boot"))
    ode_h, ode_g = smooth.ode_limit(h0, u, int(cfg["ode_steps"]))
    ode = {"state": ode_h.numpy(), "gradient": ode_g.numpy()}
    ode_stats = {q: _rms_with_ci(v, n_boot, rng) for q, v in ode.items()}
    rows = []
    jobs = [(w, L) for w in ("iid", "smooth") for L in depths]
    for kind, L in tqdm(jobs, disable=not progress, desc="relative change"):
        weights = iid_weights(n, d, seed, "marion-iid", L) if kind == "iid" else smooth.layers(L)
        rel_h, rel_g = marion_network(weights, L, betas, h0, u)
        for quantity, rel in (("state", rel_h), ("gradient", rel_g)):
            for bi, beta in enumerate(betas):
                v = rel[bi].numpy()
                boom = is_exploded(v, threshold)
                if boom.any():
                    rms = lo = hi = se = math.inf
                else:
                    rms, lo, hi, se = _rms_with_ci(v, n_boot, rng)
                exact_ms = float(relative_change_identity(L, beta)) if kind == "iid" else np.nan
                ode_rms = ode_stats[quantity] if (kind == "smooth" and beta == 1.0) else (np.nan,) * 4
                rows.append(dict(
                    weights=kind, quantity=quantity, beta=beta, depth=L, dim=d, paths=n,
                    rms=rms, ci_low=lo, ci_high=hi, mean_square=rms**2, mean_square_se=se,
                    median=float(np.median(np.where(boom, np.inf, v))),
                    exploded=int(boom.sum()),
                    theory_mean_square=exact_ms,
                    theory_rms=math.sqrt(exact_ms) if kind == "iid" else ode_rms[0],
                    theory_ci_low=np.nan if kind == "iid" else ode_rms[1],
                    theory_ci_high=np.nan if kind == "iid" else ode_rms[2],
                    z=(rms**2 - exact_ms) / se if kind == "iid" and np.isfinite(se) and se > 0 else np.nan,
                ))
    return pd.DataFrame(rows)
