"""The backpropagation limit: backward equations and forward-backward systems (docs/maths.md §5).

The network's adjoint ``p_k = ∂ℓ/∂h_k`` and per-layer gradients come from the engine's
explicit discrete adjoint (:meth:`ResNetEnsemble.adjoint`). Their limits ``P_t`` solve

- neural ODE (§5, §4(a)):  ``dP/dt = −A_tᵀ(σ'(A_t H_t + b_t) ⊙ P_t) δ̄_t``,  ``P_1 = ∇ℓ(H_1)``
- smooth β > 0 (§4(b)):    ``dP/dt = −δ̄ σ'(0) Ā_tᵀ P_t``
- diffusive (§4(c)):       ``P_t = ∇ℓ(H_1) + σ'(0) ∫_t^1 (dW^A_s)ᵀ P_s + σ''(0) ∫_t^1 r(s, H_s, P_s) ds``,
                           ``r_j = Σ_i P^i (C_i ũ)_j``, ũ = (H, 1), C_i the covariation rate of
                           row i of (W^A | W^b); the increment on [s, s+ds] multiplies P_{s+ds}
                           (right-point sums, as in the discrete recursion), driven by the same
                           weight path as the forward SDE.

The ODE adjoints are solved by RK4 backward on the grid of the forward RK4 solution; the
diffusive backward equation by the exact discrete adjoint of the forward Euler scheme of
:func:`resnet_scaling.limits.solve_ito_sde` (so the pair is one forward-backward system).

Per-layer gradients are compared through the effective weights ``M_k = δ_k A_k``:
``∂ℓ/∂M_k = ∂ℓ/∂A_k / δ_k = (σ'(z_k) ⊙ p_{k+1}) h_kᵀ``. With ``δ_k = δ̄ L^{β−1}`` this is the
rescaled gradient ``L^{1−β} ∂ℓ/∂A_k / δ̄`` of §5, and its limit is the gradient field
``G(t) = (s_t ⊙ P_t) H_tᵀ`` with ``s_t = σ'(A_t H_t + b_t)`` (neural ODE) or ``σ'(0)``
(linear ODE, diffusive). On a layer grid the limit is read as ``(s_{k/L} ⊙ P_{(k+1)/L}) H_{k/L}ᵀ``.
The bias gradients ``∂ℓ/∂m_k → s_t ⊙ P_t`` likewise. The loss is
``ℓ = (c/2) Σ_n |h_L^n − y^n|²`` (c = ``loss_scale``), summed over the inputs of a path.

Shapes (float64 torch tensors, time-major like the engine): states and adjoints
(n+1, P, N, d); per-layer gradients (n, P, d, d) and (n, P, d); ``P`` weight paths (or
seeds), ``N`` inputs per path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps
from tqdm.auto import tqdm

from . import limits
from .activations import Activation, get_activation
from .exponents import ols_fit
from .io import read_npz, stable_seed, write_csv, write_npz
from .resnet import ResNetEnsemble
from .statistics import sequence_statistics
from .weights import TrainedWeights, effective_weights, from_training, included

DTYPE = torch.float64
#: Network-only quantities of the synthetic study: :func:`roughness` of M_k and of ∂ℓ/∂M_k.
ROUGHNESS = ("weight_roughness", "gradient_roughness")


def _act(activation: str | Activation) -> Activation:
    return get_activation(activation) if isinstance(activation, str) else activation


def _t(a) -> torch.Tensor:
    return torch.as_tensor(a if isinstance(a, torch.Tensor) else np.asarray(a), dtype=DTYPE)


def expected_slope(case: str, quantity: str, activation: str | Activation, beta: float = 0.0, with_ito_term: bool = True) -> float:
    """Log-log slope in L of a network-versus-limit error (docs/maths.md §5, §7).

    ``neural_ode`` −1; ``linear_ode`` the §4(b) rate (−β when σ''(0) ≠ 0); ``diffusive`` −½,
    and 0 (a plateau) without the Itô term when σ''(0) ≠ 0. NaN for the sup-over-layers
    gradient error of the diffusive case, which carries a √log L factor (not asserted).
    :func:`roughness` of the weights and gradients: −1 (smooth) in the ODE cases; in the
    diffusive case 0 for the weights (increments of a Brownian path) and −1/2 for the
    gradients (a continuous, Brownian-like path).
    """
    act = _act(activation)
    if quantity in ROUGHNESS:
        if case != "diffusive":
            return -1.0
        return 0.0 if quantity == "weight_roughness" else -0.5
    if case == "neural_ode":
        return limits.RATE_NEURAL_ODE
    if case == "linear_ode":
        return limits.rate_linear_ode(beta, act.curvature_at_0)
    if case == "diffusive":
        if not with_ito_term and act.curvature_at_0 != 0.0:
            return 0.0
        return math.nan if quantity == "grad_A_sup" else limits.RATE_DIFFUSIVE
    raise ValueError(f"unknown case {case!r}; expected neural_ode, linear_ode or diffusive")


# ----------------------------------------------------------------------------------------
# containers
# ----------------------------------------------------------------------------------------
@dataclass
class NetworkBackprop:
    """The network's forward states, adjoint and per-layer gradients (time-major).

    ``h``, ``p`` (L+1, P, N, d); ``grad_M`` = ∂ℓ/∂A_k / δ_k (L, P, d, d); ``grad_m`` =
    ∂ℓ/∂b_k / δ_k (L, P, d); ``delta`` (L, P).
    """

    h: torch.Tensor
    p: torch.Tensor
    grad_M: torch.Tensor
    grad_m: torch.Tensor
    delta: torch.Tensor

    @property
    def depth(self) -> int:
        return self.grad_M.shape[0]


@dataclass
class LimitBackprop:
    """A limit system solved on a uniform grid of n steps: states ``h``, adjoints ``p``
    (n+1, P, N, d) and the slope field ``slope`` (σ'(A_t H_t + b_t), (n+1, P, N, d), or the
    constant σ'(0))."""

    h: torch.Tensor
    p: torch.Tensor
    slope: torch.Tensor | float

    @property
    def n_steps(self) -> int:
        return self.h.shape[0] - 1

    def on_layers(self, L: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """States, adjoints at t = k/L (L+1, …) and the gradient fields on the layer grid:
        ``G_k = (s_{k/L} ⊙ P_{(k+1)/L}) H_{k/L}ᵀ`` (L, P, d, d) and ``s ⊙ P`` (L, P, d), summed
        over the inputs like the network's gradients."""
        n = self.n_steps
        if n % L:
            raise ValueError(f"depth {L} must divide the {n} steps of the limit grid")
        r = n // L
        h, p = self.h[::r], self.p[::r]
        s = self.slope[::r][:-1] if isinstance(self.slope, torch.Tensor) else self.slope
        sp = s * p[1:]
        return h, p, torch.einsum("kpni,kpnj->kpij", sp, h[:-1]), sp.sum(2)


# ----------------------------------------------------------------------------------------
# the network side: the engine's explicit adjoint
# ----------------------------------------------------------------------------------------
def network_backprop(A, b, delta, activation: str, x, target, loss_scale: float = 1.0) -> NetworkBackprop:
    """Adjoint and per-layer gradients of P networks from :meth:`ResNetEnsemble.adjoint`.

    ``A`` (P, L, d, d), ``b`` (P, L, d) path-major (the convention on disk), ``delta`` (L,)
    or (P, L) the effective δ_k; ``x``, ``target`` (N, d) or (P, N, d). The loss is
    ``(c/2) Σ_n |h_L^n − y^n|²``, so ``p_L = c (h_L − y)``.
    """
    A = np.asarray(A, dtype=np.float64)
    P, L = A.shape[:2]
    delta = np.broadcast_to(np.asarray(delta, dtype=np.float64), (P, L))
    net = ResNetEnsemble.from_numpy(A, b, delta, "multi", activation)
    traj = net.trajectory(_t(x))
    y = _t(target)
    y = y.expand(P, *y.shape) if y.dim() == 2 else y
    grads, p = net.adjoint(traj, loss_scale * (traj.h[-1] - y), keep_adjoint=True)
    dl = net.deltas()  # (L, P)
    return NetworkBackprop(traj.h, p, grads["A"] / dl[..., None, None], grads["b"] / dl[..., None], dl)


# ----------------------------------------------------------------------------------------
# ODE regimes: RK4 forward (limits) and RK4 backward on the same grid
# ----------------------------------------------------------------------------------------
def half_grid(n_steps: int) -> torch.Tensor:
    """Times j/(2n), j = 0..2n: the grid points and midpoints of n RK4 steps on [0, 1]."""
    return torch.linspace(0.0, 1.0, 2 * n_steps + 1, dtype=DTYPE)


def solve_adjoint_ode(vjp: Callable[[int, torch.Tensor], torch.Tensor], p1: torch.Tensor, n_steps: int) -> torch.Tensor:
    """RK4 backward from ``P_1 = p1`` for ``dP/dt = −J(t)ᵀ P`` on n uniform steps.

    ``vjp(j, P)`` returns ``J(t_j)ᵀ P`` at the half-grid time t_j = j/(2n) (grid points even
    j, midpoints odd j). Returns P at the n+1 grid times, (n+1, *p1.shape).
    """
    dt = 1.0 / n_steps
    out = torch.empty((n_steps + 1, *p1.shape), dtype=DTYPE)
    out[n_steps] = p = p1
    for i in range(n_steps - 1, -1, -1):
        k1 = vjp(2 * i + 2, p)
        k2 = vjp(2 * i + 1, p + dt / 2 * k1)
        k3 = vjp(2 * i + 1, p + dt / 2 * k2)
        k4 = vjp(2 * i, p + dt * k3)
        p = p + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out[i] = p
    return out


def _hermite_midpoints(h: torch.Tensor, f: torch.Tensor, dt: float) -> torch.Tensor:
    """States at the step midpoints by cubic Hermite interpolation (O(dt⁴)), (n, …)."""
    return 0.5 * (h[:-1] + h[1:]) + (dt / 8) * (f[:-1] - f[1:])


def ode_backprop(
    kind: str,
    A_half,
    b_half,
    x,
    target,
    activation: str | Activation,
    *,
    delta_half=None,
    loss_scale: float = 1.0,
) -> LimitBackprop:
    """Forward-backward solution of an ODE limit with coefficients tabulated on the half grid.

    ``kind="neural_ode"``: ``dH/dt = δ̄_t σ(A_t H + b_t)``, ``dP/dt = −δ̄_t A_tᵀ(σ'(A_t H_t + b_t) ⊙ P)``;
    ``kind="linear_ode"``: ``dH/dt = σ'(0)(Ā_t H + b̄_t)``, ``dP/dt = −σ'(0) Ā_tᵀ P`` (δ̄ = 1
    absorbed in Ā, b̄). ``A_half`` (2n+1, P, d, d), ``b_half`` (2n+1, P, d) and ``delta_half``
    (2n+1, P) (neural ODE; default 1) at :func:`half_grid` times. The forward pass is
    :func:`limits.solve_neural_ode` / :func:`limits.solve_linear_ode` on the n-step grid.
    """
    act = _act(activation)
    A_half, b_half = _t(A_half), _t(b_half)
    n = (A_half.shape[0] - 1) // 2
    ts_half, ts = half_grid(n), torch.linspace(0.0, 1.0, n + 1, dtype=DTYPE)
    A_fn, b_fn = limits.Tabulated(ts_half, A_half), limits.Tabulated(ts_half, b_half)
    if kind == "neural_ode":
        d_half = torch.ones(A_half.shape[:2], dtype=DTYPE) if delta_half is None else _t(delta_half)
        H = limits.solve_neural_ode(A_fn, b_fn, x, act, delta=limits.Tabulated(ts_half, d_half), ts=ts)
        scale = d_half.view(*d_half.shape, 1, 1)  # (2n+1, P, 1, 1)

        def pre(j: int, h: torch.Tensor) -> torch.Tensor:
            return torch.matmul(h, A_half[j].transpose(-1, -2)) + b_half[j].unsqueeze(-2)

        def field(j: int, h: torch.Tensor) -> torch.Tensor:
            return scale[j] * act.fn(pre(j, h))

        def vjp_at(j: int, h: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
            return scale[j] * torch.matmul(act.grad(pre(j, h)) * p, A_half[j])

    elif kind == "linear_ode":
        g = act.slope_at_0
        H = limits.solve_linear_ode(A_fn, b_fn, x, gain=g, ts=ts)

        def field(j: int, h: torch.Tensor) -> torch.Tensor:
            return g * (torch.matmul(h, A_half[j].transpose(-1, -2)) + b_half[j].unsqueeze(-2))

        def vjp_at(j: int, h: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
            return g * torch.matmul(p, A_half[j])

    else:
        raise ValueError(f"unknown ODE kind {kind!r}; expected neural_ode or linear_ode")

    f = torch.stack([field(2 * k, H[k]) for k in range(n + 1)])
    H_mid = _hermite_midpoints(H, f, 1.0 / n)

    def vjp(j: int, p: torch.Tensor) -> torch.Tensor:
        return vjp_at(j, H[j // 2] if j % 2 == 0 else H_mid[j // 2], p)

    y = _t(target)
    p1 = loss_scale * (H[-1] - y)
    Pt = solve_adjoint_ode(vjp, p1, n)
    if kind == "neural_ode":
        slope = torch.stack([act.grad(pre(2 * k, H[k])) for k in range(n + 1)])
    else:
        slope = act.slope_at_0
    return LimitBackprop(H, Pt, slope)


# ----------------------------------------------------------------------------------------
# the diffusive regime: the forward-backward SDE system
# ----------------------------------------------------------------------------------------
def backward_sde(
    dWA,
    dWb,
    H: torch.Tensor,
    p1: torch.Tensor,
    activation: str | Activation,
    with_ito_term: bool = True,
    row_cov=None,
) -> torch.Tensor:
    """The backward linear SDE of docs/maths.md §5 (diffusive), driven by the forward's increments.

    ``dWA`` (P, n, d, d), ``dWb`` (P, n, d) on the uniform n-step grid of the forward states
    ``H`` (n+1, P, N, d) of :func:`limits.solve_ito_sde`; ``p1`` (P, N, d). Backward-Itô steps,
    each increment multiplying the later adjoint:

        P_n = P_{n+1} + σ'(0) ΔW^A_nᵀ P_{n+1} + σ''(0) (r(H_n, P_{n+1}) dt  or  ΔW^A_nᵀ(ΔX_n ⊙ P_{n+1}))

    with the covariation rate ``row_cov`` (d, d+1, d+1) when given, else the realised
    products (ΔX_n = ΔW^A_n H_n + ΔW^b_n) — in each case the exact discrete adjoint of the
    forward scheme with the same choice. ``with_ito_term=False`` drops the σ''(0) term.
    Returns P at the grid times, (n+1, P, N, d).
    """
    act = _act(activation)
    dWA, dWb = _t(dWA), _t(dWb)
    n = dWA.shape[1]
    A_steps, b_steps = dWA.transpose(0, 1), dWb.transpose(0, 1)
    ito = with_ito_term and act.curvature_at_0 != 0.0
    C = None if row_cov is None else _t(row_cov)
    if C is not None and C.dim() != 3:
        raise ValueError("row_cov must be one (d, d+1, d+1) covariation rate shared by all steps")
    dt = 1.0 / n
    out = torch.empty((n + 1, *p1.shape), dtype=DTYPE)
    out[n] = p = p1
    s1, s2 = act.slope_at_0, act.curvature_at_0
    for k in range(n - 1, -1, -1):
        dA = A_steps[k]
        if not ito:
            p = p + s1 * torch.matmul(p, dA)
        elif C is None:
            dX = torch.baddbmm(b_steps[k].unsqueeze(1), H[k], dA.transpose(1, 2))
            p = p + torch.matmul(s1 * p + s2 * dX * p, dA)
        else:
            # r_j = Σ_i P^i (C_i ũ)_j, ũ = (H, 1): ½ ∂_H q(H)ᵀ P (docs/maths.md §5)
            u = torch.cat([H[k], torch.ones_like(H[k][..., :1])], dim=-1)
            Cu = torch.einsum("pnl,ijl->pnij", u, C)[..., :-1]
            r = torch.einsum("pni,pnij->pnj", p, Cu)
            p = p + s1 * torch.matmul(p, dA) + (s2 * dt) * r
        out[k] = p
    return out


def solve_fbsde(
    dWA,
    dWb,
    x,
    target,
    activation: str | Activation,
    with_ito_term: bool = True,
    *,
    row_cov=None,
    loss_scale: float = 1.0,
) -> LimitBackprop:
    """The forward-backward system of the diffusive regime on given increments (docs/maths.md §4(c), §5).

    Forward: :func:`limits.solve_ito_sde` (Euler–Maruyama, Itô term ½σ''(0) q dt from
    ``row_cov`` or the realised squares); backward: :func:`backward_sde` with the matching
    σ''(0) term, from ``P_1 = c (H_1 − y)``. ``with_ito_term=False`` drops both σ''(0) terms.
    """
    act = _act(activation)
    H = limits.solve_ito_sde(dWA, dWb, x, act, with_ito_term, row_cov=row_cov)
    p1 = loss_scale * (H[-1] - _t(target))
    Pt = backward_sde(dWA, dWb, H, p1, act, with_ito_term, row_cov)
    return LimitBackprop(H, Pt, act.slope_at_0)


# ----------------------------------------------------------------------------------------
# comparison of a network with its limit
# ----------------------------------------------------------------------------------------
def _frob(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return x.pow(2).sum(dim=dims).sqrt()


def compare(net: NetworkBackprop, lim: LimitBackprop) -> dict[str, np.ndarray]:
    """Per-path errors of a network against its limit on the layer grid, each (P,):

    - ``adjoint_sup``: sup over layers k and inputs of |p_k − P_{k/L}|;
    - ``grad_A_rms``: (Σ_k ‖∂ℓ/∂M_k − G_k‖² / Σ_k ‖G_k‖²)^{1/2}, the relative error of the
      per-layer gradients in root mean square over layers (``grad_b_rms`` for the biases);
    - ``grad_A_sup``: max_k ‖∂ℓ/∂M_k − G_k‖ / max_k ‖G_k‖.
    """
    _, Pk, G, g = lim.on_layers(net.depth)
    adj = (net.p - Pk).pow(2).sum(-1).sqrt().amax(dim=(0, 2))
    dG = _frob(net.grad_M - G, (2, 3))  # (L, P)
    nG = _frob(G, (2, 3))
    dg = _frob(net.grad_m - g, (2,))
    ng = _frob(g, (2,))
    out = {
        "adjoint_sup": adj,
        "grad_A_rms": _frob(dG, (0,)) / _frob(nG, (0,)),
        "grad_b_rms": _frob(dg, (0,)) / _frob(ng, (0,)),
        "grad_A_sup": dG.amax(0) / nG.amax(0),
    }
    return {k: v.numpy() for k, v in out.items()}


def roughness(X) -> np.ndarray:
    """RMS increment over RMS norm, ``(Σ_k ‖X_{k+1} − X_k‖² / L)^{1/2} / (Σ_k ‖X_k‖² / L)^{1/2}``,
    per network of a sequence (S, L, …): of order 1/L for samples of a smooth function of t,
    L^{-1/2} for a Brownian-like path, 1 for white-noise-like layers (the increments of a
    Brownian path). Built from the §3 statistics, without the log bias of the max ones."""
    X = X.numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    st = sequence_statistics(X, statistics=["quadratic_variation", "rms_norm"])
    return np.sqrt(st["quadratic_variation"] / X.shape[1]) / st["rms_norm"]


# ----------------------------------------------------------------------------------------
# the convergence study on synthetic weight paths
# ----------------------------------------------------------------------------------------
def _study_inputs(n_inputs: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm inputs and targets shared by every path (N, d) each."""
    x = limits.unit_inputs(n_inputs, dim, stable_seed("fbsde-inputs", seed))
    y = limits.unit_inputs(n_inputs, dim, stable_seed("fbsde-targets", seed))
    return x, y


def _limit_for_case(spec: dict, wp_max: limits.WeightPaths, x, y, with_ito_term: bool) -> LimitBackprop:
    """The reference solution of a synthetic case on a grid ``ref_factor`` × the deepest L."""
    case, act = spec["case"], _act(spec["activation"])
    if case == "diffusive":
        return solve_fbsde(
            wp_max.dWA_fine, wp_max.dWb_fine, x, y, act, with_ito_term, row_cov=wp_max.law.row_cov(0.0)
        )
    n = int(spec.get("ref_factor", 1)) * max(spec["depths"])
    ts = half_grid(n)
    A_half = wp_max.limit_A.on_grid(ts)
    b_half = wp_max.limit_b.on_grid(ts)
    return ode_backprop(case, A_half, b_half, x, y, act)


def _weights_at(spec: dict, L: int, wp_max: limits.WeightPaths, seed: int, n_paths: int, dim: int):
    """Weights of depth L: block sums of the fine path (diffusive) or the case's own sampling."""
    if spec["case"] == "diffusive":
        return limits.block_sums(wp_max.dWA_fine, L), limits.block_sums(wp_max.dWb_fine, L), torch.ones(L, dtype=DTYPE)
    wp = limits.synthetic_weight_paths(spec["case"], L, n_paths, dim, seed, beta=spec.get("beta", 0.5))
    return wp.A, wp.b, wp.delta


def run_case(
    spec: dict, seed: int, dim: int, n_inputs: int, *, progress: bool = False, keep: Sequence[int] = ()
) -> tuple[pd.DataFrame, dict]:
    """Errors of networks of every depth of one synthetic case against its limit.

    ``spec``: ``name``, ``case`` (neural_ode | linear_ode | diffusive), ``activation``,
    ``depths`` (each dividing the deepest), ``n_paths``, ``ref_factor`` (reference grid =
    ref_factor × deepest L; ≥ 16 for the diffusive case), ``beta`` (linear_ode),
    ``with_ito_term`` (list of booleans, diffusive). Returns a tidy table with one row per
    (L, quantity, with_ito_term) — RMS and median over paths; the network-only
    :data:`ROUGHNESS` rows appear once, under the first ``with_ito_term`` — and, for the depths in
    ``keep``, the network and limit backprop objects (for figures).
    """
    case, n_paths = spec["case"], int(spec["n_paths"])
    depths = sorted(int(L) for L in spec["depths"])
    L_max = depths[-1]
    beta = float(spec.get("beta", 0.5)) if case == "linear_ode" else (0.5 if case == "diffusive" else 0.0)
    x, y = _study_inputs(n_inputs, dim, seed)
    if case == "diffusive":
        wp_max = limits.synthetic_weight_paths(
            case, L_max, n_paths, dim, seed, n_fine=int(spec.get("ref_factor", 16)) * L_max
        )
        itos = [bool(v) for v in spec.get("with_ito_term", [True, False])]
    else:
        wp_max = limits.synthetic_weight_paths(case, L_max, n_paths, dim, seed, beta=spec.get("beta", 0.5))
        itos = [True]
    refs = {ito: _limit_for_case(spec, wp_max, x, y, ito) for ito in itos}
    rows, kept = [], {}
    for L in tqdm(depths, desc=f"fbsde {spec['name']}", disable=not progress, mininterval=5.0):
        A, b, delta = _weights_at(spec, L, wp_max, seed, n_paths, dim)
        net = network_backprop(A, b, delta, spec["activation"], x, y)
        rough = {
            "weight_roughness": roughness(_t(A) * _t(delta).reshape(-1, 1, 1)),
            "gradient_roughness": roughness(net.grad_M.transpose(0, 1)),
        }
        for ito, ref in refs.items():
            errs = {**compare(net, ref), **(rough if ito == itos[0] else {})}
            for quantity, e in errs.items():
                rows.append(
                    {
                        "case": spec["name"],
                        "limit": case,
                        "activation": spec["activation"],
                        "beta": beta,
                        "L": L,
                        "quantity": quantity,
                        "error": float(np.sqrt(np.mean(e**2))),
                        "error_median": float(np.median(e)),
                        "with_ito_term": ito,
                        "n_paths": n_paths,
                        "expected_slope": expected_slope(case, quantity, spec["activation"], beta, ito),
                    }
                )
        if L in keep:
            kept[L] = (A, net)
    return pd.DataFrame(rows), {"refs": refs, "networks": kept, "x": x, "y": y}


def loglog_slope(x, y) -> dict:
    """OLS slope of log y on log x over the finite positive points, its standard error and
    95 % t-interval (NaN when fewer than three points remain)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[keep]), np.log(y[keep])
    slope, _, stderr = ols_fit(lx, ly)
    half = sps.t.ppf(0.975, len(lx) - 2) * stderr if len(lx) > 2 else np.nan
    return {"slope": slope, "ci_low": slope - half, "ci_high": slope + half, "stderr": stderr, "n_depths": int(keep.sum())}


def fit_slopes(errors: pd.DataFrame, fit_min: dict | None = None) -> pd.DataFrame:
    """Log-log slopes of the errors in L per (case, quantity, with_ito_term), for the RMS and
    the median over paths, with 95 % intervals; ``fit_min`` maps a case name to the smallest
    depth of its fit window."""
    rows = []
    keys = ["case", "limit", "activation", "beta", "quantity", "with_ito_term"]
    for key, grp in errors.groupby(keys, sort=False):
        g = grp[grp["L"] >= (fit_min or {}).get(key[0], 0)]
        for stat, col in (("rms", "error"), ("median", "error_median")):
            rows.append(
                {
                    **dict(zip(keys, key)),
                    "statistic": stat,
                    **loglog_slope(g["L"], g[col]),
                    "L_min": int(g["L"].min()),
                    "L_max": int(g["L"].max()),
                    "expected_slope": float(grp["expected_slope"].iloc[0]),
                }
            )
    return pd.DataFrame(rows)


def _path_rows(values: torch.Tensor, ts: np.ndarray, n_paths: int, n_inputs: int, **labels) -> pd.DataFrame:
    """Tidy rows (path, input, coord, t, value) of the first paths and inputs of (T, P, N, d) values."""
    v = values[:, :n_paths, :n_inputs].numpy()
    T, P, N, d = v.shape
    idx = np.indices((T, P, N, d)).reshape(4, -1)
    frame = pd.DataFrame(
        {"path": idx[1], "input": idx[2], "coord": idx[3], "t": np.asarray(ts)[idx[0]], "value": v.reshape(-1)}
    )
    for position, (key, value) in enumerate(labels.items()):
        frame.insert(position, key, value)
    return frame


def _subsample(n_steps: int, max_points: int) -> int:
    """The largest stride r dividing n_steps with at most max_points + 1 points left."""
    r = max(1, math.ceil(n_steps / max_points))
    while n_steps % r:
        r += 1
    return r


@dataclass
class ConvergenceResult:
    """Outputs of :func:`convergence_study`: the error and slope tables, tidy adjoint paths
    of a few networks and of their limits, and one gradient field (weights, network and limit)."""

    errors: pd.DataFrame
    slopes: pd.DataFrame
    paths: pd.DataFrame
    field: dict[str, np.ndarray]


def convergence_study(
    cases: Sequence[dict],
    seed: int,
    dim: int,
    n_inputs: int,
    *,
    figure_case: str | None = None,
    figure_depths: Sequence[int] = (),
    n_figure_paths: int = 3,
    max_points: int = 1024,
    progress: bool = False,
) -> ConvergenceResult:
    """Every synthetic case of :func:`run_case`, their fitted slopes, and for ``figure_case``
    the adjoints p_k (at ``figure_depths``) and P_t of a few paths and the gradient field of
    its deepest network: weights M_k, network ∂ℓ/∂M_k and limit (σ'(0) ⊙ P) Hᵀ of path 0."""
    frames, paths, field = [], [], {}
    for spec in cases:
        keep = tuple(figure_depths) + (max(spec["depths"]),) if spec["name"] == figure_case else ()
        errors, extra = run_case(spec, stable_seed("fbsde", seed, spec["name"]), dim, n_inputs, progress=progress, keep=keep)
        frames.append(errors)
        if spec["name"] != figure_case:
            continue
        for L in figure_depths:
            _, net = extra["networks"][L]
            ts = np.arange(L + 1) / L
            paths.append(_path_rows(net.p, ts, n_figure_paths, 1, case=spec["name"], source="network", label=f"network, L = {L}"))
        for ito, ref in extra["refs"].items():
            r = _subsample(ref.n_steps, max_points)
            ts = np.arange(0, ref.n_steps + 1, r) / ref.n_steps
            label = "limit" if ito else "limit without the σ''(0) term"
            paths.append(_path_rows(ref.p[::r], ts, n_figure_paths, 1, case=spec["name"], source="limit", label=label))
        L = max(spec["depths"])
        A, net = extra["networks"][L]
        _, _, G, _ = extra["refs"][True].on_layers(L)
        delta = net.delta[:, 0]
        field = {
            "weights": (_t(A)[0] * delta[:, None, None]).numpy(),
            "network": net.grad_M[:, 0].numpy(),
            "limit": G[:, 0].numpy(),
        }
    errors = pd.concat(frames, ignore_index=True)
    fit_min = {spec["name"]: int(spec.get("fit_min", 0)) for spec in cases}
    return ConvergenceResult(errors, fit_slopes(errors, fit_min), pd.concat(paths, ignore_index=True) if paths else pd.DataFrame(), field)


# ----------------------------------------------------------------------------------------
# trained networks: the limit systems of their kernel-smoothed weights
# ----------------------------------------------------------------------------------------
#: Limit systems fitted to a trained network (see :func:`trained_limit`).
TRAINED_LIMITS = ("neural_ode", "linear_ode")


def kernel_smooth(X, ts, bandwidth: float) -> torch.Tensor:
    """Epanechnikov average of a layer sequence X (S, L, …) around each time of ``ts``, (T, S, …).

    Layer k sits at (k + ½)/L; the bandwidth is at least 1/L so that every t has a layer in
    its window, and the weights renormalise where the window is cut at 0 or 1.
    """
    X, ts = _t(X), _t(ts)
    L = X.shape[1]
    centres = (torch.arange(L, dtype=DTYPE) + 0.5) / L
    u = (centres.unsqueeze(0) - ts.unsqueeze(1)) / max(float(bandwidth), 1.0 / L)
    w = (1 - u * u).clamp_min(0.0)
    w = w / w.sum(1, keepdim=True)
    return torch.tensordot(w, X.transpose(0, 1), dims=([1], [0]))


def trained_limit(
    kind: str, A, b, delta, activation: str, x, target, *, bandwidth: float, ref_factor: int = 1, loss_scale: float = 1.0
) -> LimitBackprop:
    """The limit system of S networks with weights A (S, L, d, d), b (S, L, d), δ (S, L).

    ``neural_ode``: ``dH/dt = δ̂_t σ(Â_t H + b̂_t)`` with Â, b̂ the kernel-smoothed A_k, b_k and
    δ̂ the kernel-smoothed L δ_k (docs/maths.md §4(a); for δ of one sign). ``linear_ode``:
    ``dH/dt = σ'(0)(Ā_t H + b̄_t)`` with Ā, b̄ the kernel-smoothed L M_k, L m_k, the drifts of
    the weight paths (docs/maths.md §4(b), trained networks). Solved with its adjoint on
    ``ref_factor × L`` RK4 steps.
    """
    A, b, delta = _t(A), _t(b), _t(delta)
    L = A.shape[1]
    ts = half_grid(ref_factor * L)
    if kind == "neural_ode":
        return ode_backprop(
            kind, kernel_smooth(A, ts, bandwidth), kernel_smooth(b, ts, bandwidth), x, target, activation,
            delta_half=kernel_smooth(L * delta, ts, bandwidth), loss_scale=loss_scale,
        )
    if kind == "linear_ode":
        M, m = effective_weights(A, b, delta)
        return ode_backprop(
            kind, kernel_smooth(L * M, ts, bandwidth), kernel_smooth(L * m, ts, bandwidth), x, target, activation,
            loss_scale=loss_scale,
        )
    raise ValueError(f"unknown trained limit {kind!r}; expected one of {TRAINED_LIMITS}")


@dataclass
class TrainedComparison:
    """One (experiment, depth, state) compared with its limits: a tidy table and, for figures,
    the network and limit backprops of the included seeds."""

    table: pd.DataFrame
    network: NetworkBackprop
    limits: dict[str, LimitBackprop]
    weights: np.ndarray  # M_k of the included seeds, (S', L, d, d)


def compare_trained(
    w: TrainedWeights,
    x,
    y,
    *,
    state: str,
    kinds: Sequence[str] = TRAINED_LIMITS,
    bandwidth: float = 0.1,
    ref_factor: int = 1,
) -> TrainedComparison | None:
    """Adjoint and per-layer gradient errors of the networks of one training output against
    each limit system of :func:`trained_limit`, and the :func:`roughness` of their effective
    weights M_k and of their gradient fields ∂ℓ/∂M_k.

    ``x``, ``y`` (N, d): inputs and targets; the loss is ½ Σ_n |h_L − y|² (proportional to the
    training MSE). Networks that diverged or have non-finite weights are left out; None when
    none is left. ``state`` labels the rows (``trained`` or ``init``).
    """
    keep = included(w)
    if not keep.any():
        return None
    A, b, delta = w.A[keep], w.b[keep], w.delta[keep]
    net = network_backprop(A, b, delta, w.activation, x, y)
    M, _ = effective_weights(A, b, delta)
    labels = {"experiment": w.experiment, "dataset": w.dataset, "activation": w.activation, "delta": w.delta_type, "depth": w.depth}
    seeds = w.seeds[keep]
    frames = []

    def rows(limit: str, values: dict[str, np.ndarray]) -> None:
        for quantity, v in values.items():
            frames.append(pd.DataFrame({**labels, "seed": seeds, "state": state, "limit": limit, "quantity": quantity, "value": v}))

    rows("network", {"weight_roughness": roughness(M), "gradient_roughness": roughness(net.grad_M.transpose(0, 1))})
    lims = {}
    for kind in kinds:
        lims[kind] = trained_limit(kind, A, b, delta, w.activation, x, y, bandwidth=bandwidth, ref_factor=ref_factor)
        rows(kind, compare(net, lims[kind]))
    return TrainedComparison(pd.concat(frames, ignore_index=True), net, lims, M)


def trained_slopes(table: pd.DataFrame, min_depth: int = 0) -> pd.DataFrame:
    """Log-log slopes in depth of the median over seeds of every (state, limit, quantity)."""
    rows = []
    keys = ["experiment", "state", "limit", "quantity"]
    med = table[table["depth"] >= min_depth].groupby(keys + ["depth"], sort=False)["value"].median().reset_index()
    for key, grp in med.groupby(keys, sort=False):
        deepest = grp.loc[grp["depth"].idxmax()]
        rows.append(
            {
                **dict(zip(keys, key)),
                **loglog_slope(grp["depth"], grp["value"]),
                "depth_min": int(grp["depth"].min()),
                "depth_max": int(deepest["depth"]),
                "value_at_depth_max": float(deepest["value"]),
            }
        )
    return pd.DataFrame(rows)


def _states(arrays: dict, meta: dict) -> dict[str, TrainedWeights]:
    """The trained networks and the same networks at initialisation (all finite ones kept)."""
    out = {"trained": from_training(arrays, meta)}
    if all(k in arrays for k in ("A_init", "b_init", "delta_init")):
        S = arrays["A_init"].shape[0]
        init = {**arrays, "A": arrays["A_init"], "b": arrays["b_init"], "delta": arrays["delta_init"], "status": np.full(S, "converged")}
        out["init"] = from_training(init, meta)
    return out


def trained_study(train_paths: Sequence[str], dataset_path: str, cfg: dict, *, progress: bool = False) -> dict:
    """Compare every depth of one experiment with its limit systems, trained and at init.

    ``cfg``: ``n_inputs`` (test inputs used), ``limits`` (kinds of :data:`TRAINED_LIMITS`, the
    first drawn in the figures), ``bandwidth``, ``ref_factor``, ``min_fit_depth``,
    ``n_figure_inputs``. Returns the tidy ``table``, the ``slopes`` against depth, tidy
    adjoint ``paths`` of the deepest network's first included seed (network and limits, a few
    inputs) and its gradient ``field`` per state (weights M_k, network ∂ℓ/∂M_k, limit G)."""
    data, _ = read_npz(dataset_path)
    n = int(cfg.get("n_inputs", 32))
    x, y = data["x_test"][:n], data["y_test"][:n]
    kinds = list(cfg.get("limits", TRAINED_LIMITS))
    n_fig = int(cfg.get("n_figure_inputs", 3))
    tables, deepest = [], {}
    loaded = [read_npz(p) for p in train_paths]
    depth_max = max(int(a["A"].shape[1]) for a, _ in loaded)
    for arrays, meta in tqdm(loaded, desc="fbsde trained", disable=not progress, mininterval=5.0):
        for state, w in _states(arrays, meta).items():
            res = compare_trained(
                w, x, y, state=state, kinds=kinds, bandwidth=float(cfg.get("bandwidth", 0.1)), ref_factor=int(cfg.get("ref_factor", 1))
            )
            if res is None:
                continue
            tables.append(res.table)
            if w.depth == depth_max:
                deepest[state] = res
    if not tables:
        raise ValueError(f"no network with finite weights and an accepted status in {list(train_paths)}")
    table = pd.concat(tables, ignore_index=True)
    paths, field = [], {}
    for state, res in deepest.items():
        L = res.network.depth
        paths.append(_path_rows(res.network.p, np.arange(L + 1) / L, 1, n_fig, state=state, source="network", label=f"network, L = {L}"))
        for kind, lim in res.limits.items():
            paths.append(
                _path_rows(lim.p, np.arange(lim.n_steps + 1) / lim.n_steps, 1, n_fig, state=state, source=kind, label=f"limit {kind}")
            )
        _, _, G, _ = res.limits[kinds[0]].on_layers(L)
        field[f"{state}_weights"] = res.weights[0]
        field[f"{state}_network"] = res.network.grad_M[:, 0].numpy()
        field[f"{state}_limit"] = G[:, 0].numpy()
    paths = pd.concat(paths, ignore_index=True)
    # per input, the coordinate where the trained network's adjoint is largest
    net = paths[(paths["source"] == "network") & (paths["state"] == paths["state"].iloc[0])]
    coord = net.assign(size=net["value"].abs()).groupby("input")["size"].idxmax().map(net["coord"])
    paths = paths[paths["coord"] == paths["input"].map(coord)]
    return {
        "table": table,
        "slopes": trained_slopes(table, int(cfg.get("min_fit_depth", 0))),
        "paths": paths,
        "field": field,
        "limit": kinds[0],
    }


# ----------------------------------------------------------------------------------------
# outputs of the workflow rules
# ----------------------------------------------------------------------------------------
def check_cases(cases: Sequence[dict], figure_case: str | None = None, figure_depths: Sequence[int] = ()) -> None:
    """One clear sentence for the first synthetic case (or figure choice) that cannot work."""
    names = [spec.get("name") for spec in cases]
    if figure_case is not None:
        if figure_case not in names:
            raise ValueError(f"fbsde.convergence.figure_case: {figure_case!r} is not one of the case names {names}")
        missing = sorted(set(int(L) for L in figure_depths) - set(int(L) for L in cases[names.index(figure_case)]["depths"]))
        if missing:
            raise ValueError(f"fbsde.convergence.figure_depths: {missing} are not depths of the case {figure_case!r}")
    for i, spec in enumerate(cases):
        where = f"fbsde.convergence.cases[{i}] ({spec.get('name', '?')})"
        depths = sorted(int(L) for L in spec["depths"])
        if len(depths) < 3:
            raise ValueError(f"{where}: a slope needs at least three depths, got {depths}")
        bad = [L for L in depths if depths[-1] % L]
        if bad:
            raise ValueError(f"{where}: every depth must divide the deepest {depths[-1]}; {bad} do not")
        if spec["case"] == "diffusive" and int(spec.get("ref_factor", 16)) < 16:
            raise ValueError(f"{where}: the diffusive reference needs ref_factor >= 16 (docs/maths.md §4(c))")


def write_convergence(cfg: dict, out: dict, *, progress: bool = True) -> ConvergenceResult:
    """Run the synthetic convergence study of ``cfg`` (the ``fbsde.convergence`` config
    section) and write ``out['errors']``, ``out['slopes']``, ``out['paths']`` (CSV) and
    ``out['field']`` (npz)."""
    check_cases(cfg["cases"], cfg.get("figure_case"), cfg.get("figure_depths", []))
    res = convergence_study(
        cfg["cases"],
        int(cfg.get("seed", 0)),
        int(cfg.get("dim", 3)),
        int(cfg.get("n_inputs", 2)),
        figure_case=cfg.get("figure_case"),
        figure_depths=[int(L) for L in cfg.get("figure_depths", [])],
        progress=progress,
    )
    write_csv(out["errors"], res.errors)
    write_csv(out["slopes"], res.slopes)
    write_csv(out["paths"], res.paths)
    write_npz(out["field"], metadata={"case": cfg.get("figure_case")}, **res.field)
    return res


def write_trained(train_paths: Sequence[str], dataset_path: str, cfg: dict, out: dict, *, progress: bool = True) -> dict:
    """Run :func:`trained_study` for one experiment and write ``out['table']``,
    ``out['slopes']``, ``out['paths']`` (CSV) and ``out['field']`` (npz)."""
    res = trained_study(train_paths, dataset_path, cfg, progress=progress)
    write_csv(out["table"], res["table"])
    write_csv(out["slopes"], res["slopes"])
    write_csv(out["paths"], res["paths"])
    write_npz(out["field"], metadata={"limit": res["limit"]}, **res["field"])
    return res
