"""The convergence study of backpropagation on synthetic weight paths with known limits
(docs/maths.md §5, §7): errors against depth, their slopes and the rates predicted."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..config import section_settings
from ..io import stable_seed
from ..limits.convergence import RATE_NEURAL_ODE, rate_linear_ode
from ..limits.network import unit_inputs
from ..limits.synthetic import WeightPaths, block_sums, synthetic_weight_paths
from ..sde.ito import ITO_ADJOINT
from ..sde.tensors import DTYPE, as_activation, as_tensor
from ..training.activations import Activation
from .backprop import LimitBackprop, network_backprop
from .compare import compare, roughness, slope_columns
from .ode import half_grid, ode_backprop
from .paths import path_rows, subsample
from .sde import solve_fbsde


#: Network-only quantities of the synthetic study: :func:`roughness` of M_k and of ∂ℓ/∂M_k.
ROUGHNESS = ("weight_roughness", "gradient_roughness")


def limit_rate(case: str, quantity: str, activation: str | Activation, beta: float = 0.0, with_ito_term: bool = True) -> float:
    """Log-log slope in L of a network-versus-limit error (docs/maths.md §5, §7).

    ``neural_ode`` −1; ``linear_ode`` the §4(b) rate (−β when σ''(0) ≠ 0); ``diffusive`` −½,
    and 0 (a plateau) without the Itô term when σ''(0) ≠ 0. NaN for the sup-over-layers
    gradient error of the diffusive case, which carries a √log L factor (not asserted).
    :func:`roughness` of the weights and gradients: −1 (smooth) in the ODE cases; in the
    diffusive case 0 for the weights (increments of a Brownian path) and −1/2 for the
    gradients (a continuous, Brownian-like path).
    """
    act = as_activation(activation)
    if quantity in ROUGHNESS:
        if case != "diffusive":
            return -1.0
        return 0.0 if quantity == "weight_roughness" else -0.5
    if case == "neural_ode":
        return RATE_NEURAL_ODE
    if case == "linear_ode":
        return rate_linear_ode(beta, act.curvature_at_0)
    if case == "diffusive":
        if not with_ito_term and act.curvature_at_0 != 0.0:
            return 0.0
        return math.nan if quantity == "grad_A_sup" else -ITO_ADJOINT.strong_order
    raise ValueError(f"unknown case {case!r}; expected neural_ode, linear_ode or diffusive")


def _study_inputs(n_inputs: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm inputs and targets shared by every path (N, d) each."""
    x = unit_inputs(n_inputs, dim, stable_seed("fbsde-inputs", seed))
    y = unit_inputs(n_inputs, dim, stable_seed("fbsde-targets", seed))
    return x, y


def _limit_for_case(spec: dict, wp_max: WeightPaths, x, y, with_ito_term: bool) -> LimitBackprop:
    """The reference solution of a synthetic case on a grid ``ref_factor`` × the deepest L."""
    case, act = spec["case"], as_activation(spec["activation"])
    if case == "diffusive":
        return solve_fbsde(
            wp_max.dWA_fine, wp_max.dWb_fine, x, y, act, with_ito_term, row_cov=wp_max.law.row_cov(0.0)
        )
    n = int(spec["ref_factor"]) * max(spec["depths"])
    ts = half_grid(n)
    A_half = wp_max.limit_A.on_grid(ts)
    b_half = wp_max.limit_b.on_grid(ts)
    return ode_backprop(case, A_half, b_half, x, y, act)


def _weights_at(spec: dict, L: int, wp_max: WeightPaths, seed: int, n_paths: int, dim: int):
    """Weights of depth L: block sums of the fine path (diffusive) or the case's own sampling."""
    if spec["case"] == "diffusive":
        return block_sums(wp_max.dWA_fine, L), block_sums(wp_max.dWb_fine, L), torch.ones(L, dtype=DTYPE)
    wp = synthetic_weight_paths(spec["case"], L, n_paths, dim, seed, beta=spec["beta"])
    return wp.A, wp.b, wp.delta


def case_settings(spec: dict) -> dict:
    """A synthetic case with the schema's defaults filled in (``fbsde.convergence.cases``)."""
    return section_settings("fbsde.convergence.cases[]", spec)


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
    spec = case_settings(spec)
    case, n_paths = spec["case"], int(spec["n_paths"])
    depths = sorted(int(L) for L in spec["depths"])
    L_max = depths[-1]
    beta = float(spec["beta"]) if case == "linear_ode" else (0.5 if case == "diffusive" else 0.0)
    x, y = _study_inputs(n_inputs, dim, seed)
    if case == "diffusive":
        wp_max = synthetic_weight_paths(
            case, L_max, n_paths, dim, seed, n_fine=int(spec["ref_factor"]) * L_max
        )
        itos = [bool(v) for v in spec["with_ito_term"]]
    else:
        wp_max = synthetic_weight_paths(case, L_max, n_paths, dim, seed, beta=spec["beta"])
        itos = [True]
    refs = {ito: _limit_for_case(spec, wp_max, x, y, ito) for ito in itos}
    rows, kept = [], {}
    for L in tqdm(depths, desc=f"fbsde {spec['name']}", disable=not progress, mininterval=5.0):
        A, b, delta = _weights_at(spec, L, wp_max, seed, n_paths, dim)
        net = network_backprop(A, b, delta, spec["activation"], x, y)
        rough = {
            "weight_roughness": roughness(as_tensor(A) * as_tensor(delta).reshape(-1, 1, 1)),
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
                        "expected_slope": limit_rate(case, quantity, spec["activation"], beta, ito),
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
        g = grp[grp["L"] >= (fit_min or {}).get(key[0], 0)]
        for stat, col in (("rms", "error"), ("median", "error_median")):
            rows.append(
                {
                    **dict(zip(keys, key)),
                    "statistic": stat,
                    **slope_columns(g["L"], g[col]),
                    "L_min": int(g["L"].min()),
                    "L_max": int(g["L"].max()),
                    "expected_slope": float(grp["expected_slope"].iloc[0]),
                }
            )
    return pd.DataFrame(rows)


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
            paths.append(path_rows(net.p, ts, n_figure_paths, 1, case=spec["name"], source="network", label=f"network, L = {L}"))
        for ito, ref in extra["refs"].items():
            r = subsample(ref.n_steps, max_points)
            ts = np.arange(0, ref.n_steps + 1, r) / ref.n_steps
            label = "limit" if ito else "limit without the σ''(0) term"
            paths.append(path_rows(ref.p[::r], ts, n_figure_paths, 1, case=spec["name"], source="limit", label=label))
        L = max(spec["depths"])
        A, net = extra["networks"][L]
        _, _, G, _ = extra["refs"][True].on_layers(L)
        delta = net.delta[:, 0]
        field = {
            "weights": (as_tensor(A)[0] * delta[:, None, None]).numpy(),
            "network": net.grad_M[:, 0].numpy(),
            "limit": G[:, 0].numpy(),
        }
    errors = pd.concat(frames, ignore_index=True)
    fit_min = {spec["name"]: int(case_settings(spec)["fit_min"]) for spec in cases}
    return ConvergenceResult(errors, fit_slopes(errors, fit_min), pd.concat(paths, ignore_index=True) if paths else pd.DataFrame(), field)


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
        if spec["case"] == "diffusive" and int(case_settings(spec)["ref_factor"]) < 16:
            raise ValueError(f"{where}: the diffusive reference needs ref_factor >= 16 (docs/maths.md §4(c))")
