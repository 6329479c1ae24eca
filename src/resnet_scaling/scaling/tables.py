"""Checked readers of the result tables every later stage builds on.

A table on disk is not trusted as it is: each reader checks its columns, that it is not
empty, that the numbers which must be finite are, and that it is complete (every
experiment has every (quantity, statistic) row, every network every statistic) and holds
what the config says it should (the experiments, and each experiment's depths × seeds). A problem
is one sentence naming the file, what is wrong and which file to delete so that the
workflow rebuilds it; nothing downstream is computed from a corrupt input.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .exponents import population_statuses, primary_rows
from .statistics import statistics_of
from .weights import quantities


class CorruptInputError(ValueError):
    """A result file that cannot be used; the message names it and how to recover."""


def corrupt_input(path, problem: str) -> CorruptInputError:
    """The error to raise for a result file with ``problem``: one sentence naming the file, what
    is wrong and that deleting it makes the workflow rebuild it."""
    return CorruptInputError(f"{path}: {problem}; delete {path} and rerun the workflow to rebuild it")


def read_csv_checked(
    path: str | os.PathLike,
    columns: Iterable[str],
    *,
    finite: Iterable[str] = (),
    not_null: Iterable[str] = (),
    allow_empty: bool = False,
) -> pd.DataFrame:
    """Read a CSV and check its columns, emptiness, finiteness and missing labels."""
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise CorruptInputError(f"{path}: missing; rerun the workflow to build it") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise corrupt_input(path, f"not a readable CSV table ({str(exc).splitlines()[0]})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise corrupt_input(path, f"lacks the columns {missing}")
    if table.empty and not allow_empty:
        raise corrupt_input(path, "has no rows")
    for column in not_null:
        if table[column].isna().any():
            raise corrupt_input(path, f"has {int(table[column].isna().sum())} row(s) without a value in {column!r} (truncated?)")
    for column in finite:
        values = pd.to_numeric(table[column], errors="coerce")
        if not np.isfinite(values).all():
            raise corrupt_input(path, f"has non-finite or non-numeric values in {column!r}")
    return table


def read_table(path: str | os.PathLike, *, allow_empty: bool = False) -> pd.DataFrame:
    """Any result table: readable, not empty (unless allowed), and not cut in its last line
    (a value missing in the last row of a column that every other row fills)."""
    table = read_csv_checked(path, (), allow_empty=allow_empty)
    if len(table) > 1:
        filled_before = table.iloc[:-1].notna().all()
        cut = [c for c in table.columns if filled_before[c] and pd.isna(table[c].iloc[-1])]
        if cut:
            raise corrupt_input(path, f"has its last line cut (no value in {cut[:3]})")
    return table


def read_json(path: str | os.PathLike):
    """A JSON result (a summary), with one clear error when it is missing or corrupt."""
    import json

    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise CorruptInputError(f"{path}: missing; rerun the workflow to build it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise corrupt_input(path, f"is not valid JSON ({exc})") from None


def expected_pairs(delta_type: str) -> set[tuple[str, str]]:
    """The (quantity, statistic) rows of one experiment (increments of a scalar δ are skipped)."""
    return {(q, s) for q in quantities(delta_type) for s in statistics_of(q, delta_type)}


def check_networks(path, table: pd.DataFrame, networks: Mapping | None) -> None:
    """The networks of a table are the ones the config trains: ``networks`` is
    ``{"experiment": name, "depths": [...], "seeds": S}`` (seeds 0..S−1 at every depth). A
    table cut at a depth boundary, or holding another experiment's rows, is refused."""
    if networks is None:
        return
    name = str(networks["experiment"])
    others = sorted(set(table["experiment"].astype(str)) - {name})
    if others:
        raise corrupt_input(path, f"holds rows of experiment(s) {others}, where only {name!r} belongs")
    want = {(int(d), s) for d in networks["depths"] for s in range(int(networks["seeds"]))}
    have = set(zip(table["depth"].astype(int), table["seed"].astype(int)))
    missing, extra = sorted(want - have), sorted(have - want)
    if missing or extra:
        depths = sorted({int(d) for d in networks["depths"]})
        which = (f"lacks {len(missing)} of them (first: depth {missing[0][0]}, seed {missing[0][1]})" if missing
                 else f"holds {len(extra)} network(s) it should not (first: depth {extra[0][0]}, seed {extra[0][1]})")
        raise corrupt_input(path, f"does not hold the networks the config trains for {name!r} ({len(depths)} depths "
                          f"{depths[0]}..{depths[-1]} x {int(networks['seeds'])} seeds): it {which}")


STATISTICS_COLUMNS = ("experiment", "delta", "depth", "seed", "status", "finite", "quantity", "statistic", "value")


def read_statistics(path: str | os.PathLike, networks: Mapping | None = None) -> pd.DataFrame:
    """``results/scaling/{exp}/statistics.csv``: every network has every statistic exactly once,
    and the networks are those of ``networks`` (:func:`check_networks`) when given."""
    table = read_csv_checked(path, STATISTICS_COLUMNS, finite=("depth", "seed"),
                             not_null=("experiment", "delta", "status", "quantity", "statistic"))
    want = expected_pairs(str(table["delta"].iloc[0]))
    networks_read = table.drop_duplicates(["depth", "seed"])
    have = set(zip(table["quantity"], table["statistic"]))
    if have != want or len(table) != len(networks_read) * len(want):
        raise corrupt_input(path, f"is incomplete: {len(table)} rows where {len(networks_read)} networks x {len(want)} "
                          "statistics were expected")
    check_networks(path, table, networks)
    return table


def read_training(path: str | os.PathLike, networks: Mapping | None = None) -> pd.DataFrame:
    """``results/scaling/{exp}/training.csv``: one row per network, the networks of
    ``networks`` (:func:`check_networks`) when given."""
    table = read_csv_checked(path, ("experiment", "depth", "seed", "status"), finite=("depth", "seed"),
                             not_null=("experiment", "status"))
    if table.duplicated(["experiment", "depth", "seed"]).any():
        raise corrupt_input(path, "has the same (experiment, depth, seed) twice")
    check_networks(path, table, networks)
    return table


EXPONENT_COLUMNS = ("experiment", "delta", "quantity", "statistic", "slope", "exponent", "ci_low", "ci_high",
                    "n_depths", "n_seeds", "n_excluded")


def read_exponents(path: str | os.PathLike, experiments: Sequence[str] | None = None) -> pd.DataFrame:
    """``results/exponents.csv``: every experiment (all of ``experiments`` if given) with every
    (quantity, statistic) row; exponents may be NaN only where nothing could be fitted."""
    table = read_csv_checked(path, EXPONENT_COLUMNS, finite=("n_depths", "n_seeds", "n_excluded"),
                             not_null=("experiment", "delta", "quantity", "statistic"))
    _check_experiments(path, table, experiments)
    keys = ["experiment", "population"] if "population" in table else ["experiment"]
    for key, part in table.groupby(keys, sort=False):
        exp = key[0] if isinstance(key, tuple) else key
        want = expected_pairs(str(part["delta"].iloc[0]))
        have = list(zip(part["quantity"], part["statistic"]))
        if set(have) != want or len(have) != len(want):
            raise corrupt_input(path, f"is incomplete: experiment {exp!r} has {len(have)} of its {len(want)} rows")
        fitted = part["n_depths"] >= 2
        if "evaluated" in part:  # a population with too few depths has no numbers
            fitted &= _flag(part["evaluated"])
        if not np.isfinite(part.loc[fitted, "exponent"]).all():
            raise corrupt_input(path, f"has a fitted exponent of experiment {exp!r} that is not a finite number")
    _check_primary(path, table)
    return table


def _flag(column: pd.Series) -> pd.Series:
    """A boolean column as written to CSV (True/False, or their strings)."""
    return column.astype(str).str.lower().isin(["true", "1"])


def _check_primary(path, table: pd.DataFrame) -> None:
    """Every experiment of a table with populations has exactly one primary population."""
    if "primary" not in table:
        return
    primary = table.loc[_flag(table["primary"])]
    count = primary.drop_duplicates(["experiment", "population"]).groupby("experiment").size()
    bad = sorted(set(table["experiment"]) - set(count[count == 1].index))
    if bad:
        raise corrupt_input(path, f"has not exactly one primary population for the experiments {bad}")


REGIME_COLUMNS = ("experiment", "regime", "exponent", "increment_ratio_slope", "quadratic_variation_slope",
                  "n_depths", "n_seeds", "n_usable", "n_excluded")
REGIMES = ("ODE", "SDE", "ODE (rough weights)", "neither", "undetermined", "no usable networks", "not evaluated")


def read_regimes(path: str | os.PathLike, experiments: Sequence[str] | None = None) -> pd.DataFrame:
    """``results/regimes.csv``: one row per experiment and population with a known regime,
    exactly one population of every experiment primary."""
    table = read_csv_checked(path, REGIME_COLUMNS, finite=("n_depths", "n_seeds", "n_usable", "n_excluded"),
                             not_null=("experiment", "regime"))
    if table.duplicated([c for c in ("experiment", "population") if c in table]).any():
        raise corrupt_input(path, "has an experiment (population) twice")
    unknown = sorted(set(table["regime"]) - set(REGIMES))
    if unknown:
        raise corrupt_input(path, f"has the unknown regimes {unknown}")
    _check_experiments(path, table, experiments)
    _check_primary(path, table)
    return table


def read_primary_population(path: str | os.PathLike, experiment: str) -> tuple[str, ...] | None:
    """The statuses of the networks the primary verdict of an experiment describes
    (``results/regimes.csv``: population of its primary row); None for a table without populations."""
    rows = primary_rows(read_regimes(path))
    rows = rows[rows["experiment"] == experiment]
    if rows.empty:
        raise corrupt_input(path, f"has no regime for experiment {experiment!r}")
    if "population" not in rows or not isinstance(rows["population"].iloc[0], str):
        return None
    return population_statuses(rows["population"].iloc[0])


def _check_experiments(path, table: pd.DataFrame, experiments: Sequence[str] | None) -> None:
    """The table holds exactly the experiments of the config (when they are given)."""
    if experiments is None:
        return
    missing = sorted(set(experiments) - set(table["experiment"]))
    if missing:
        raise corrupt_input(path, f"has no rows for the experiments {missing}")
    extra = sorted(set(table["experiment"]) - set(experiments))
    if extra:
        raise corrupt_input(path, f"has rows for the experiments {extra}, which the config does not run")


ROBUSTNESS_COLUMNS = ("experiment", "quantity", "statistic", "analysis", "variant", "exponent", "ci_low", "ci_high",
                      "n_depths", "n_networks")


def read_robustness(path: str | os.PathLike) -> pd.DataFrame:
    """``results/scaling_robustness.csv`` (empty when no experiment had usable networks)."""
    table = read_csv_checked(path, ROBUSTNESS_COLUMNS, finite=("n_depths", "n_networks"),
                             not_null=("experiment", "quantity", "statistic", "analysis", "variant"), allow_empty=True)
    if not set(table["analysis"]) <= {"window", "inclusion", "steps"}:
        raise corrupt_input(path, f"has unknown analyses {sorted(set(table['analysis']) - {'window', 'inclusion', 'steps'})}")
    return table
