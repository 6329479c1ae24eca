"""Deliverables 1 and 3: the shallow block ``h_{k+1} = h_k + b_k + W_k φ(h_k)`` and its diffusion
limit in law, with the first-variation flow of its Jacobian (docs/maths.md §6).

With W_ij ~ N(μ_w/(dL), σ_w²/(dL)), b_i ~ N(μ_b/L, σ_b²/L) (Peluchetti–Favaro), h_{⌊Lt⌋} → Y_t with

    dY = (μ_b + (μ_w/d) Σ_j φ(Y_j)) 𝟙 dt + (σ_b² + σ_w² ‖φ(Y)‖²/d)^{1/2} dB,

and J_k = ∂h_k/∂h_0 → ``dJ = dW_t diag(φ'(Y_t)) J``. With Gaussian weights the network *is*
the Euler–Maruyama scheme of these equations with step 1/L, so every depth is driven by
block sums of one fine Brownian path (exactly the network's law) and the reference by the
fine path itself; the coupling only lowers the variance of the W1 estimate.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from ..config import section_settings
from ..distances import bootstrap_wasserstein1
from ..io import stable_seed
from ..sde.loop import final
from ..sde.schemes import EULER_MARUYAMA
from ..sde.tensors import DTYPE
from ..training.activations import Activation, get_activation
from .sampling import randn32
from .sampling import seeded_generator

#: Weak order of Euler–Maruyama: the W1 distance of h_L's law to the diffusion is O(1/L).
WEAK_ORDER = EULER_MARUYAMA.weak_order


def simulate_shallow(
    x0,
    depths,
    reference_steps: int,
    activation: str,
    mu_w: float,
    sigma_w: float,
    mu_b: float,
    sigma_b: float,
    n_paths: int,
    seed: int,
    progress: bool = False,
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Outputs h_L (P, d) and Jacobians ∂h_L/∂h_0 (P, d, d) for every depth, and the reference.

    One fine Brownian path per sample drives everything: the fine step is
    ``ΔW = μ_w/d Δt 𝟙𝟙ᵀ + σ_w/√d ΔB^W``, ``Δb = μ_b Δt + σ_b ΔB^b`` with Δt = 1/reference_steps.
    The network of depth L uses the sums over blocks of reference_steps/L fine steps
    (its exact weight law); the key ``reference_steps`` holds the fine Euler–Maruyama
    solution of the diffusion and of its first-variation equation.
    """
    depths = sorted(int(L) for L in depths)
    for L in depths:
        if reference_steps % L:
            raise ValueError(f"reference_steps={reference_steps} is not a multiple of depth {L}")
    act = get_activation(activation)
    x0 = torch.as_tensor(np.asarray(x0, dtype=float), dtype=DTYPE)
    d = x0.shape[0]
    n = n_paths
    dt = 1.0 / reference_steps
    gen = seeded_generator(seed, "shallow", activation)
    schemes = depths + [reference_steps] if reference_steps not in depths else depths
    start = (x0.expand(n, d).clone(), torch.eye(d, dtype=DTYPE).expand(n, d, d).clone())
    acc = {L: torch.zeros(n, d, d + 1, dtype=DTYPE) for L in depths if L != reference_steps}
    drift = torch.full((d, d + 1), mu_w / d * dt, dtype=DTYPE)
    drift[:, d] = mu_b * dt
    vol = torch.full((d, d + 1), sigma_w / math.sqrt(d) * math.sqrt(dt), dtype=DTYPE)
    vol[:, d] = sigma_b * math.sqrt(dt)

    def advance(k: int, state: dict) -> dict:
        """One fine step of the reference; a layer of every network whose block ends here."""
        inc = drift + vol * randn32(gen, (n, d, d + 1))
        state = {**state, reference_steps: shallow_step(state[reference_steps], inc, act)}
        for L, a in acc.items():
            a += inc
            if (k + 1) % (reference_steps // L) == 0:
                state[L] = shallow_step(state[L], a, act)
                a.zero_()
        return state

    state = {L: tuple(s.clone() for s in start) for L in schemes}
    return final(advance, state, reference_steps, progress=progress, desc=f"shallow {activation}")


def shallow_step(state: tuple[torch.Tensor, torch.Tensor], inc: torch.Tensor, act: Activation) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer of the shallow block and of its Jacobian, ``inc = (W | b)`` (n, d, d+1): the
    Euler–Maruyama step of the diffusion and of its first variation."""
    h, J = state
    d = h.shape[-1]
    W, b = inc[..., :d], inc[..., d]
    slope = act.grad(h)
    return h + b + torch.einsum("nij,nj->ni", W, act.fn(h)), J + torch.einsum("nij,nj,njk->nik", W, slope, J)


def _quantiles(values: torch.Tensor, levels: np.ndarray) -> np.ndarray:
    return np.quantile(values.numpy(), levels)


def diffusion_law_tables(cfg: dict, seed: int = 0, progress: bool = False):
    """Deliverables 1 and 3: W1 of the laws of h_L and ‖∂h_L/∂h_0‖_F to the diffusion, against L.

    Returns ``(w1, quantiles)``. ``w1``: one row per (activation, quantity, depth) with the
    W1 estimate, a bootstrap 95 % interval, the pathwise RMS distance (context) and the
    number of paths. ``quantiles``: per (activation, quantity, depth or reference) the
    quantiles of the law (for ``state``, of the projection of h_L on the first direction).
    """
    cfg = section_settings("init_limits.diffusion", cfg)
    x0 = np.asarray(cfg["x0"], dtype=float)
    d = len(x0)
    depths = sorted(cfg["depths"])
    ref_steps = int(cfg["reference_factor"]) * math.lcm(*depths)
    n, n_boot = int(cfg["paths"]), int(cfg["bootstrap"])
    gen = torch.Generator().manual_seed(stable_seed(seed, "directions"))
    dirs = torch.randn(int(cfg["directions"]), d, generator=gen, dtype=DTYPE)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    levels = np.linspace(0.01, 0.99, 99)
    rows, qrows = [], []
    for act in cfg["activations"]:
        out = simulate_shallow(
            x0, depths, ref_steps, act, cfg["mu_w"], cfg["sigma_w"], cfg["mu_b"], cfg["sigma_b"],
            n, stable_seed(seed, "diffusion"), progress=progress,
        )
        h_ref, J_ref = out[ref_steps]
        ref = {
            "state": h_ref @ dirs.T,
            "jacobian_norm": J_ref.flatten(1).norm(dim=1, keepdim=True),
        }
        for quantity, r in ref.items():
            qrows += [
                dict(activation=act, quantity=quantity, depth=ref_steps, scheme="reference",
                     level=lv, value=v)
                for lv, v in zip(levels, _quantiles(r[:, 0], levels))
            ]
        for L in depths:
            h, J = out[L]
            net = {"state": h @ dirs.T, "jacobian_norm": J.flatten(1).norm(dim=1, keepdim=True)}
            pathwise = {
                "state": float((h - h_ref).norm(dim=1).pow(2).mean().sqrt()),
                "jacobian_norm": float((J - J_ref).flatten(1).norm(dim=1).pow(2).mean().sqrt()),
            }
            for quantity, a in net.items():
                est, reps = bootstrap_wasserstein1(a, ref[quantity], n_boot, stable_seed(seed, "boot", act, L, quantity))
                rows.append(dict(
                    activation=act, quantity=quantity, depth=L, reference_steps=ref_steps,
                    paths=n, w1=est,
                    ci_low=float(np.quantile(reps, 0.025)) if n_boot else np.nan,
                    ci_high=float(np.quantile(reps, 0.975)) if n_boot else np.nan,
                    pathwise_rms=pathwise[quantity],
                ))
                qrows += [
                    dict(activation=act, quantity=quantity, depth=L, scheme="network",
                         level=lv, value=v)
                    for lv, v in zip(levels, _quantiles(a[:, 0], levels))
                ]
    return pd.DataFrame(rows), pd.DataFrame(qrows)
