"""How much an exponent depends on the choices behind it (docs: scaling robustness).

For each experiment and quantity, the norm exponents of ``exponents.csv`` are refitted

- over sliding windows of consecutive depths (``window``): the local slope against depth,
  which shows whether the decay flattens at large depth, for each population of networks
  (converged; the original rule's) and for the statistics of the regime rule too;
- by which networks enter the fit (``inclusion``): converged only; + stopped on the
  plateau; + out of epochs;
- with the max norm and with the RMS norm (``statistic`` column of every row);
- against the number of optimiser steps each network took (``steps``): the exponent of the
  step count itself against depth, and of the statistic per step. Trained weights are
  mostly the optimiser's displacement from a tiny initialisation, so a statistic that
  follows the step count carries the training schedule, not only the depth.

Every fit is the one log-log fit of :mod:`resnet_scaling.scaling.exponents` with its seed-bootstrap
interval. The ``primary`` column marks the sequence the original study took its statistics on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..io import stable_seed
from .exponents import FitSettings, SeedGrid, fit_grid, population_label, population_masks, usable
from .regime_rule import RegimeThresholds
from .weights import primary_quantity

#: Network sets of the inclusion analysis, from the strictest.
INCLUSION_RULES = {
    "converged only": ("converged",),
    "+ stopped on the plateau": ("converged", "stopped"),
    "+ out of epochs": ("converged", "stopped", "max_epochs"),
}
#: Norm statistics whose exponents are examined.
NORM_STATISTICS = ("max_norm", "rms_norm")

COLUMNS = ["experiment", "quantity", "primary", "statistic", "analysis", "variant", "population", "depth_low",
           "depth_high", "depth_centre", "exponent", "ci_low", "ci_high", "n_depths", "n_networks"]


def _fit_rows(part: pd.DataFrame, networks: pd.DataFrame, settings: FitSettings, window: tuple[float, float],
              key: str) -> dict:
    """One fit of ``part`` (rows depth, seed, value) over the networks and depth window given."""
    grid = SeedGrid.build(networks, settings.resamples, stable_seed("robustness", settings.seed, key))
    fit = fit_grid(grid, grid.values(part), window, settings.level)
    row = fit.row()
    low, high = row["min_depth"], row["max_depth"]
    return {
        "depth_low": low, "depth_high": high,
        "depth_centre": float(np.sqrt(low * high)) if np.isfinite(low) else np.nan,
        "exponent": row["exponent"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
        "n_depths": row["n_depths"], "n_networks": row["n_points"],
    }


def experiment_robustness(
    statistics: pd.DataFrame,
    training: pd.DataFrame,
    steps_per_epoch: int,
    settings: FitSettings,
    window_depths: int,
    thresholds: RegimeThresholds | None = None,
) -> pd.DataFrame:
    """The robustness table of one experiment (tidy, columns :data:`COLUMNS`).

    ``statistics``: the experiment's statistics table; ``training``: its training table
    (epochs per network); ``steps_per_epoch``: optimiser steps per epoch;
    ``window_depths``: consecutive depths per sliding window. The sliding windows are fitted
    for every population of :func:`resnet_scaling.scaling.exponents.population_masks` over its own
    depths (``population`` column), for the norms of every quantity and for the three
    statistics the regime rule of ``thresholds`` reads, so that the rule can be applied window
    by window.
    """
    thresholds = thresholds or RegimeThresholds()
    experiment = str(statistics["experiment"].iloc[0])
    primary = primary_quantity(str(statistics["delta"].iloc[0])) if "delta" in statistics else "A"
    networks = statistics.drop_duplicates(["depth", "seed"])[["depth", "seed", "status", "finite"]]
    accepted = networks[usable(networks, settings.include_status)]
    original = population_label(settings.include_status)
    low, high = settings.window("max_norm")
    steps = training.assign(value=training["epochs"] * steps_per_epoch)[["depth", "seed", "value"]]
    regime_pairs = {(thresholds.quantity, s) for s in (thresholds.exponent_statistic, "increment_ratio",
                                                       "quadratic_variation")}
    pairs = list(zip(statistics["quantity"], statistics["statistic"]))
    wanted = statistics[statistics["statistic"].isin(NORM_STATISTICS) | pd.Series(
        [p in regime_pairs for p in pairs], index=statistics.index)]
    rows = []

    def add(quantity, statistic, analysis, variant, part, nets, window, population=original):
        key = f"{experiment}/{quantity}/{statistic}/{analysis}/{variant}"
        key += "" if population == original else f"/{population}"
        fit = _fit_rows(part, nets, settings, window, key) if len(nets) else {
            "depth_low": np.nan, "depth_high": np.nan, "depth_centre": np.nan, "exponent": np.nan,
            "ci_low": np.nan, "ci_high": np.nan, "n_depths": 0, "n_networks": 0}
        rows.append({"experiment": experiment, "quantity": quantity, "primary": quantity in (primary, "steps"),
                     "statistic": statistic, "analysis": analysis, "variant": variant, "population": population,
                     **fit})

    populations = [(population_label(statuses), networks[mask]) for statuses, mask, _ in
                   population_masks(networks, settings) if mask.any()]
    for (quantity, statistic), part in wanted.groupby(["quantity", "statistic"], sort=True):
        part = part[["depth", "seed", "value"]]
        for label, members in populations:
            window_low, window_high = settings.window(statistic)
            depths = np.sort(members["depth"].unique())
            depths = depths[(depths >= window_low) & (depths <= window_high)]
            for start in range(0, max(len(depths) - window_depths + 1, 0)):
                lo, hi = depths[start], depths[start + window_depths - 1]
                add(quantity, statistic, "window", f"depths {lo}..{hi}", part, members, (lo, hi), label)
        if statistic not in NORM_STATISTICS:
            continue
        for variant, statuses in INCLUSION_RULES.items():
            nets = networks[usable(networks, statuses)]
            add(quantity, statistic, "inclusion", variant, part, nets, (low, high), population_label(statuses))
        per_step = part.merge(steps, on=["depth", "seed"], suffixes=("", "_steps"))
        per_step = per_step.assign(value=per_step["value"] / per_step["value_steps"])[["depth", "seed", "value"]]
        add(quantity, statistic, "steps", "statistic per optimiser step", per_step, accepted, (low, high))
    add("steps", "optimiser_steps", "steps", "optimiser steps", steps, accepted, (low, high))
    return pd.DataFrame(rows, columns=COLUMNS)


def robustness_table(
    statistics: Sequence[pd.DataFrame],
    training: Sequence[pd.DataFrame],
    steps_per_epoch: dict[str, int],
    settings: FitSettings,
    window_depths: int,
    thresholds: RegimeThresholds | None = None,
) -> pd.DataFrame:
    """``results/scaling_robustness.csv`` for all experiments with usable networks."""
    frames = []
    for stats, train in zip(statistics, training):
        experiment = str(stats["experiment"].iloc[0])
        frames.append(experiment_robustness(stats, train, steps_per_epoch[experiment], settings, window_depths,
                                            thresholds))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
