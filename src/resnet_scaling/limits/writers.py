"""Outputs of the limits rules, written atomically."""

from __future__ import annotations

import json
from typing import Sequence

import pandas as pd

from ..io import write_csv, write_json, write_text
from ..scaling.tables import _fail, read_csv_checked, read_json, read_table
from .convergence import convergence_fits, convergence_table
from .note import limits_note
from .regime import read_beta, read_population, read_regime
from .trained import fit_trained


def write_limit_convergence(cfg: dict, table_path, fits_path, progress: bool = True) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Run the convergence study of ``cfg`` and write its table and slope fits atomically."""
    table = convergence_table(cfg, progress=progress)
    fits = convergence_fits(table)
    write_csv(table_path, table)
    write_csv(fits_path, fits)
    return table, fits


def write_fit(
    train_paths: Sequence,
    dataset_path,
    regimes_csv,
    exponents_csv,
    cfg: dict,
    outputs: dict,
    *,
    experiment: str,
    seed: int = 0,
    exponent_statistic: str = "rms_norm",
) -> dict:
    """Fit one experiment (:func:`fit_trained`) with its regime, β and population from the scaling
    stage (the networks its primary verdict describes), and write the tables named in
    ``outputs`` (pathwise, generative, coefficients, trajectories, agreement, summary) atomically."""
    regime = read_regime(regimes_csv, experiment)
    beta = read_beta(exponents_csv, experiment, exponent_statistic) if exponents_csv else float("nan")
    out = fit_trained(train_paths, dataset_path, regime, cfg, beta=beta, experiment=experiment, seed=seed, progress=True,
                      statuses=read_population(regimes_csv, experiment))
    for name in ("pathwise", "generative", "coefficients", "trajectories", "agreement"):
        write_csv(outputs[name], out[name])
    write_json(outputs["summary"], out["summary"])
    return out["summary"]


def write_note(summary_paths: Sequence, fits_path, note_path, table_path, close_threshold: float = 0.1) -> str:
    """Collect the experiments' summaries into ``summary.csv`` and the Markdown note."""
    summaries = [read_json(p) for p in summary_paths]
    fits = read_table(fits_path) if fits_path else None
    note = limits_note(summaries, fits, close_threshold=close_threshold)
    flat = [{k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in s.items()} for s in summaries]
    write_csv(table_path, pd.DataFrame(flat))
    write_text(note_path, note)
    return note


#: The columns every row of ``results/limits/summary.csv`` has; the others depend on the limit.
SUMMARY_COLUMNS = ("experiment", "regime", "limit")


def read_summary(path) -> pd.DataFrame:
    """``results/limits/summary.csv``, one row per analysed experiment, checked. Its columns
    differ between limits (a column of the ODE's is empty in an SDE's row), so only the
    columns every row has must be filled."""
    table = read_csv_checked(path, SUMMARY_COLUMNS, not_null=SUMMARY_COLUMNS)
    if table["experiment"].duplicated().any():
        raise _fail(path, "has an experiment twice")
    return table
