"""The convergence study: networks on synthetic weights against their known limits, and the
log-log slopes of the errors beside the rates docs/maths.md §4 and §7 predict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..config import section_settings
from ..distances import ks_min_pvalue, wasserstein1
from ..io import stable_seed
from ..scaling.exponents import loglog_fit
from ..sde.diffusions import MomentMatchedDiffusion, sample_diffusion
from ..sde.ito import ITO_EULER_MARUYAMA, ito_step
from ..sde.loop import iterate
from ..sde.ode import half_grid, solve_on_half_grid
from ..sde.schemes import EULER
from ..sde.tensors import DTYPE, path_inputs
from ..sde.tensors import progress as progress_bar
from ..training.activations import get_activation
from .network import network_states, unit_inputs
from .synthetic import SYNTHETIC_DEFAULTS, diffusive_law, fine_increment_chunks, synthetic_weight_paths

if TYPE_CHECKING:
    import pandas as pd


#: Expected log-log slopes of the sup-error in L (docs/maths.md §4, §7): the network is the
#: Euler scheme of its neural ODE and the Euler–Maruyama scheme of its Itô SDE.
RATE_NEURAL_ODE = -EULER.strong_order
RATE_DIFFUSIVE = -ITO_EULER_MARUYAMA.strong_order


def rate_linear_ode(beta: float, curvature_at_0: float) -> float:
    """Slope of the §4(b) error: −β when σ''(0) ≠ 0, −min(2β, 1) when σ''(0) = 0."""
    return -beta if curvature_at_0 != 0 else -min(2 * beta, 1.0)


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
    for L in progress_bar(sorted(depths), progress, f"{case} {activation} β={beta}"):
        wp = synthetic_weight_paths(case, L, n_paths, dim, seed, beta=beta)
        h = network_states(wp.A, wp.b, wp.delta, act, x)
        # the limit's coefficients at every evaluation time of the L RK4 steps at once, then one loop
        ts = half_grid(L)
        H = solve_on_half_grid(case, wp.limit_A.on_grid(ts), wp.limit_b.on_grid(ts), x, act)
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
    x = unit_inputs(1, dim, seed)
    C = law.row_cov(0.0)
    P, d = n_paths, dim
    WA = torch.zeros(L_max + 1, P, d, d, dtype=DTYPE)  # weight paths on the grid of L_max
    Wb = torch.zeros(L_max + 1, P, d, dtype=DTYPE)
    refs = {flag: torch.empty(L_max + 1, P, 1, d, dtype=DTYPE) for flag in (True, False)}
    dt = 1.0 / n_fine
    fine = ((dWA[:, j], dWb[:, j]) for _, dWA, dWb in fine_increment_chunks(law, n_fine, P, seed, chunk)
            for j in range(dWA.shape[1]))

    def advance(n: int, state: tuple) -> tuple:
        """One fine step of both references (with and without the Itô term) and of the weight paths."""
        h_ito, h_plain, accA, accb = state
        dA, db = next(fine)
        return ito_step(h_ito, dA, db, dt, act, True, C), ito_step(h_plain, dA, db, dt, act, False, C), accA + dA, accb + db

    h0 = path_inputs(x, P, d).clone()
    state = (h0, h0.clone(), torch.zeros(P, d, d, dtype=DTYPE), torch.zeros(P, d, dtype=DTYPE))
    for m, (h_ito, h_plain, accA, accb) in iterate(advance, state, n_fine, record_every=refine, progress=progress,
                                                   desc="diffusive reference"):
        WA[m], Wb[m] = accA, accb
        refs[True][m], refs[False][m] = h_ito, h_plain
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
    for L in progress_bar(sorted(depths), progress, "generic"):
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


def predicted_slope(case: str, activation: str, beta: float, with_ito_term) -> float:
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

    ``cfg`` is the ``limits.convergence`` config section (schema defaults fill what it omits): ``depths``, ``dim``, ``seed``,
    ``ode`` {n_paths, n_inputs, linear: {activation: [β, …]}}, ``diffusive`` {activation,
    n_paths, refine, max_depth}, ``generic`` {depths, n_paths, reference_paths,
    reference_steps, steps, bandwidth, max_layers}.
    """
    import pandas as pd

    cfg = section_settings("limits.convergence", cfg)
    depths = sorted(int(L) for L in cfg["depths"])
    dim, seed = int(cfg["dim"]), int(cfg["seed"])
    ode, diff, gen = cfg["ode"], cfg["diffusive"], cfg["generic"]
    rows: list[dict] = []
    kw = dict(n_paths=int(ode["n_paths"]), n_inputs=int(ode["n_inputs"]), dim=dim, seed=seed, progress=progress)
    rows += ode_convergence("neural_ode", depths, ode["activation"], **kw)
    for activation, betas in ode["linear"].items():
        for beta in betas:
            rows += ode_convergence("linear_ode", depths, activation, beta=float(beta), **kw)
    rows += diffusive_convergence(
        [L for L in depths if L <= int(diff["max_depth"])],
        diff["activation"],
        n_paths=int(diff["n_paths"]),
        dim=dim,
        seed=seed,
        refine=int(diff["refine"]),
        progress=progress,
    )
    if gen["depths"]:
        rows += generic_convergence(
            [int(L) for L in gen["depths"]],
            n_paths=int(gen["n_paths"]),
            dim=dim,
            seed=seed,
            reference_paths=int(gen["reference_paths"]),
            reference_steps=int(gen["reference_steps"]),
            steps=int(gen["steps"]),
            bandwidth=float(gen["bandwidth"]),
            max_layers=int(gen["max_layers"]),
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

    rows = []
    for key, g in df.groupby(_variant_keys(df), sort=False, dropna=False):
        case, activation, beta, ito = key
        expected = predicted_slope(case, activation, beta, ito == True)  # noqa: E712
        if not np.isfinite(expected):
            continue
        g = g[g["L"] >= fit_min_depth(case, activation, beta)]
        for stat in ("error", "error_median"):
            fit = loglog_fit(g["L"], g[stat])
            rows.append({
                "case": case, "activation": activation, "beta": beta, "with_ito_term": ito, "statistic": stat,
                "slope": fit.slope, "stderr": fit.stderr, "ci_low": fit.ci_low, "ci_high": fit.ci_high,
                "expected": expected, "L_min": int(g["L"].min()), "L_max": int(g["L"].max()), "n_depths": len(g),
            })
    return pd.DataFrame(rows)
