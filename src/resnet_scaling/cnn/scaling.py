"""Exponents, regime and scorecard of the convolutional experiments, by the code of the fully
connected ones (docs/maths.md §3): :func:`resnet_scaling.scaling.exponents.fit_experiment` on the
statistics of :func:`resnet_scaling.cnn.extract.statistics_table`.

Every network runs its full cosine schedule, so its status is ``max_epochs``; the networks
that enter the fits are the finite ones with that status (a non-finite loss makes a network
``diverged``). The regime rule reads the operator norms of one kernel sequence (the
experiment's ``regime_quantity``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import pandas as pd

from ..scaling.exponents import FitSettings, fit_experiment
from ..scaling.regime_rule import RegimeThresholds
from ..scaling.statistics import NORM_STATISTICS
from ..scaling.tables import check_networks, corrupt_input, read_csv_checked
from ..verdict.references import CONV_REFERENCES
from ..verdict.render import markdown_table
from ..verdict.score import score
from .extract import NORMS, ROLES, quantity_name

#: The status of a network that ran its schedule; the only one that enters the fits.
COMPLETED = ("max_epochs",)
LABELS = {"activation": "relu", "delta": "conv"}
COLUMNS = ("experiment", "dataset", "dataset_kind", "activation", "delta", "depth", "seed", "status", "finite",
           "quantity", "statistic", "value")


def labels(dataset: str) -> dict:
    """The columns that describe a convolutional experiment in its tables."""
    return {"dataset": dataset, "dataset_kind": "cifar10", **LABELS}


def read_conv_statistics(path: str | os.PathLike, networks: Mapping | None = None) -> pd.DataFrame:
    """``results/cifar/{exp}/statistics.csv``: every network has every statistic exactly once,
    and the networks are those the config trains (``networks``, :func:`..scaling.tables.check_networks`)."""
    table = read_csv_checked(path, COLUMNS, finite=("depth", "seed"), not_null=("experiment", "status", "quantity"))
    want = {(quantity_name(q, n), s) for q in ROLES for n in NORMS for s in NORM_STATISTICS}
    read = table.drop_duplicates(["depth", "seed"])
    if set(zip(table["quantity"], table["statistic"])) != want or len(table) != len(read) * len(want):
        raise corrupt_input(path, f"is incomplete: {len(table)} rows where {len(read)} networks x {len(want)} "
                          "statistics were expected")
    check_networks(path, table, networks)
    return table


def fit(statistics: pd.DataFrame, scaling: dict, fit_min_depth: int, regime_quantity: str) -> tuple[pd.DataFrame, dict]:
    """Exponents of every (kernel, norm, statistic) and the regime of one convolutional experiment.

    The bootstrap and the thresholds of the regime rule are those of the config's ``scaling``
    section; the depth window starts at ``fit_min_depth`` and has no upper end.
    """
    settings = dataclasses.replace(
        FitSettings.from_config(scaling), min_depth=fit_min_depth, max_depth=None, min_depth_by_statistic={},
        include_status=COMPLETED,
    )
    thresholds = dataclasses.replace(
        RegimeThresholds.from_config(scaling.get("regime")), quantity=regime_quantity, exponent_statistic="rms_norm"
    )
    return fit_experiment(statistics, settings, thresholds)


def fit_all(tables: list[pd.DataFrame], scaling: dict, experiments: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exponents and regimes of every convolutional experiment (one statistics table each)."""
    exponents, regimes = [], []
    for table in tables:
        cfg = experiments[str(table["experiment"].iloc[0])]
        exps, regime = fit(table, scaling, cfg["fit_min_depth"], cfg["regime_quantity"])
        exponents.append(exps)
        regimes.append(regime)
    return pd.concat(exponents, ignore_index=True), pd.DataFrame(regimes)


def scorecard_markdown(exponents: pd.DataFrame, regimes: pd.DataFrame, rounding: float = 0.05) -> str:
    """The readings of the original study's figures against our exponents and regimes."""
    scores = score(exponents, regimes, rounding, references=CONV_REFERENCES)
    rows = [["reference", "kind", "experiment", "reference value", "ours", "95 % interval / support", "verdict",
             "provenance"]]
    rows += [[r["description"], r["kind"], r["experiment"], r["reference_value"], r["ours"], r["interval"],
              r["verdict"], r["provenance"]] for _, r in scores.iterrows()]
    regime_rows = [["experiment", "regime (support)", "kernels", "exponent (rms) [95 %]", "increment-ratio slope",
                    "quadratic-variation slope", "depths × seeds", "excluded"]]
    for _, r in regimes.iterrows():
        regime_rows.append([
            r["experiment"], f"{r['regime']} ({r['support']:.0%})" if r["support"] == r["support"] else r["regime"],
            r["quantity"], f"{r['exponent']:.2f} [{r['exponent_ci_low']:.2f}, {r['exponent_ci_high']:.2f}]",
            f"{r['increment_ratio_slope']:+.2f}", f"{r['quadratic_variation_slope']:+.2f}",
            f"{r['n_depths']} × {r['n_seeds']}", r["excluded"] if isinstance(r["excluded"], str) and r["excluded"] else "none",
        ])
    n_agree = int(scores["agree"].sum()) if len(scores) else 0
    return "\n".join([
        "# Scorecard: the convolutional (CIFAR-10) experiment",
        "",
        f"{n_agree} of {len(scores)} rows agree with the reading of the shipped figures. Kernels: conv1 as A_k, "
        "conv2 as δ_k, operator norms by the FFT method. An exponent row agrees when the reading lies in our "
        f"95 % seed-bootstrap interval widened by {rounding:g} (the readings have one decimal).",
        "",
        markdown_table(rows),
        "",
        "## Regimes (docs/maths.md §3)",
        "",
        markdown_table(regime_rows),
        "",
    ])
