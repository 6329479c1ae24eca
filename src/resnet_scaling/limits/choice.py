"""The choice of the limit to fit to a trained experiment (:func:`choose_limit`), made from the
regime and β the scaling stage found for it (docs/maths.md §3, §4)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..scaling.exponents import loglog_fit, primary_rows
from ..training.activations import get_activation


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
    - SDE with σ C² at 0, δ constant per network (none, fixed, shared) and β > ``beta_min``
      (A_k → 0, so the pre-activations vanish): the Itô SDE of §4(c), an expansion of σ at 0.
    - otherwise (ReLU, per-layer δ, neither, undetermined, and the SDE with O(1) A_k and
      δ = L^{-1/2}, whose pre-activations stay O(1), §4(g)): the moment-matched diffusion of
      §4(d), compared in law only — descriptive where the regime is ``neither``.
    """
    act = get_activation(activation)
    regime = normalise_regime(regime)
    small_arguments = act.smooth and act.value_at_0 == 0.0 and np.isfinite(beta) and beta > beta_min
    if regime == "ODE":
        return "linear_ode" if small_arguments else "neural_ode"
    if regime == "SDE" and small_arguments and delta_type in ("none", "fixed", "shared"):
        return "ito_sde"
    return "moment_matched"


def read_regime(regimes_csv, experiment: str) -> str:
    """The regime the scaling stage found for an experiment's primary population (``regimes.csv``:
    experiment, regime)."""
    from ..scaling.tables import corrupt_input, read_regimes

    table = primary_rows(read_regimes(regimes_csv))
    row = table[table["experiment"] == experiment]
    if row.empty:
        raise corrupt_input(regimes_csv, f"has no regime for experiment {experiment!r}")
    return normalise_regime(row["regime"].iloc[0])


def read_population(regimes_csv, experiment: str) -> tuple[str, ...] | None:
    """The statuses of the networks the primary verdict of an experiment describes
    (:func:`resnet_scaling.scaling.tables.read_primary_population`)."""
    from ..scaling.tables import read_primary_population

    return read_primary_population(regimes_csv, experiment)


def fit_depths(regimes_csv, training_csv, experiment: str, grid: Sequence[int], n_depths: int) -> list[int]:
    """The depths of the limit fit: the deepest ``n_depths`` of ``grid`` that hold a network of the
    population the primary verdict describes (``training.csv``: depth, status per network); the
    deepest of the grid when the table has no populations or none holds one."""
    from ..scaling.tables import read_training

    statuses = read_population(regimes_csv, experiment)
    grid = sorted(int(d) for d in grid)
    if statuses is None:
        return grid[-n_depths:]
    training = read_training(training_csv)
    held = set(training.loc[training["status"].isin(statuses), "depth"].astype(int))
    return [d for d in grid if d in held][-n_depths:] or grid[-n_depths:]


def read_beta(exponents_csv, experiment: str, statistic: str = "rms_norm") -> float:
    """β = the exponent of the layer norms of A in the primary population (``exponents.csv``: experiment, quantity,
    statistic, exponent); NaN when the table has no such row."""
    from ..scaling.tables import read_exponents

    table = primary_rows(read_exponents(exponents_csv))
    row = table[(table.experiment == experiment) & (table.quantity == "A") & (table.statistic == statistic)]
    return float(row["exponent"].iloc[0]) if len(row) else float("nan")


def estimate_beta(depths: Sequence[int], rms_layer_norms: Sequence[float]) -> float:
    """β from the RMS layer norm of A across depths (−OLS slope in log L); NaN for one depth."""
    if len(depths) < 2:
        return float("nan")
    return float(-loglog_fit(np.asarray(depths, float), np.asarray(rms_layer_norms, float)).slope)
