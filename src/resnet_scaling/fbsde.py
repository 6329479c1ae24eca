"""The backpropagation limit: backward equations and forward-backward systems (MATH.md §5).

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

from . import limits
from .activations import Activation, get_activation
from .io import stable_seed
from .plots import loglog_fit
from .resnet import ResNetEnsemble

DTYPE = torch.float64

#: Error quantities of a network against its limit (see :func:`compare`).
QUANTITIES = ("adjoint_sup", "grad_A_rms", "grad_b_rms", "grad_A_sup")


def _act(activation: str | Activation) -> Activation:
    return get_activation(activation) if isinstance(activation, str) else activation


def _t(a) -> torch.Tensor:
    return torch.as_tensor(a if isinstance(a, torch.Tensor) else np.asarray(a), dtype=DTYPE)


def expected_slope(case: str, quantity: str, activation: str | Activation, beta: float = 0.0, with_ito_term: bool = True) -> float:
    """Log-log slope in L of a network-versus-limit error (MATH.md §5, §7).

    ``neural_ode`` −1; ``linear_ode`` the §4(b) rate (−β when σ''(0) ≠ 0); ``diffusive`` −½,
    and 0 (a plateau) without the Itô term when σ''(0) ≠ 0. NaN for the sup-over-layers
    gradient error of the diffusive case, which carries a √log L factor (not asserted).
    """
    act = _act(activation)
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
    """The backward linear SDE of MATH.md §5 (diffusive), driven by the forward's increments.

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
            # r_j = Σ_i P^i (C_i ũ)_j, ũ = (H, 1): ½ ∂_H q(H)ᵀ P (MATH.md §5)
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
    """The forward-backward system of the diffusive regime on given increments (MATH.md §4(c), §5).

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


# ----------------------------------------------------------------------------------------
# the convergence study on synthetic weight paths
# ----------------------------------------------------------------------------------------
def _progress(it, enabled: bool, desc: str):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, mininterval=5.0)


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
    (L, quantity, with_ito_term) — RMS and median over paths — and, for the depths in
    ``keep``, the network and limit backprop objects (for figures).
    """
    case, n_paths = spec["case"], int(spec["n_paths"])
    depths = sorted(int(L) for L in spec["depths"])
    L_max = depths[-1]
    beta = float(spec.get("beta", 0.0)) if case == "linear_ode" else (0.5 if case == "diffusive" else 0.0)
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
    for L in _progress(depths, progress, f"fbsde {spec['name']}"):
        A, b, delta = _weights_at(spec, L, wp_max, seed, n_paths, dim)
        net = network_backprop(A, b, delta, spec["activation"], x, y)
        for ito, ref in refs.items():
            errs = compare(net, ref)
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


def fit_slopes(errors: pd.DataFrame, fit_min: dict | None = None) -> pd.DataFrame:
    """Log-log slopes of the errors in L per (case, quantity, with_ito_term), for the RMS and
    the median over paths, with 95 % intervals; ``fit_min`` maps a case name to the smallest
    depth of its fit window."""
    rows = []
    keys = ["case", "limit", "activation", "beta", "quantity", "with_ito_term"]
    for key, grp in errors.groupby(keys, sort=False):
        lo = (fit_min or {}).get(key[0], 0)
        g = grp[grp["L"] >= lo]
        for stat, col in (("rms", "error"), ("median", "error_median")):
            fit = loglog_fit(g["L"], g[col])
            rows.append(
                {
                    **dict(zip(keys, key)),
                    "statistic": stat,
                    "slope": fit.slope,
                    "ci_low": fit.ci_low,
                    "ci_high": fit.ci_high,
                    "stderr": fit.stderr,
                    "n_depths": fit.n,
                    "L_min": int(g["L"].min()),
                    "L_max": int(g["L"].max()),
                    "expected_slope": float(grp["expected_slope"].iloc[0]),
                }
            )
    return pd.DataFrame(rows)
