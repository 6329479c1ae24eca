"""Outputs of the limits rules, written atomically."""

from __future__ import annotations

import json
from typing import Sequence

import pandas as pd

from ..io import write_csv, write_json, write_text
from ..scaling.tables import corrupt_input, read_csv_checked, read_json, read_table
from .convergence import convergence_fits, convergence_table
from .note import limits_note
from .choice import read_beta, read_population, read_regime
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


def write_note(summary_paths: Sequence, fits_path, note_path, table_path, close_threshold: float = 0.1,
               verdicts_path=None) -> str:
    """Collect the experiments' summaries into ``summary.csv`` and the Markdown note; the limit
    verdict of each experiment is the pathwise one (``pathwise_verdicts.csv``) where given."""
    summaries = [read_json(p) for p in summary_paths]
    fits = read_table(fits_path) if fits_path else None
    verdicts = read_pathwise_verdicts(verdicts_path) if verdicts_path else None
    if verdicts is not None:
        for s in summaries:
            s.update(pathwise_verdict_fields(verdicts, s["experiment"], s.get("population")))
    note = limits_note(summaries, fits, close_threshold=close_threshold)
    flat = [{k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in s.items()} for s in summaries]
    write_csv(table_path, pd.DataFrame(flat))
    write_text(note_path, note)
    return note


def read_pathwise_verdicts(path) -> pd.DataFrame:
    """``results/limits/pathwise_verdicts.csv``: a forward and a backward verdict per experiment and
    population, checked."""
    from .signature_fits import VERDICTS

    table = read_csv_checked(path, ("experiment", "population", "primary", "direction", "verdict", "reason"),
                             not_null=("experiment", "population", "direction", "verdict"))
    unknown = sorted(set(table["verdict"]) - set(VERDICTS))
    if unknown:
        raise corrupt_input(path, f"has the unknown verdicts {unknown}")
    if table.duplicated(["experiment", "population", "direction"]).any():
        raise corrupt_input(path, "has an experiment, population and direction twice")
    return table


def pathwise_verdict_fields(verdicts: pd.DataFrame, experiment: str, population: str | None = None) -> dict:
    """The forward and backward pathwise verdicts of an experiment's population (the primary one
    when ``population`` is None or absent) as summary fields."""
    rows = verdicts[verdicts["experiment"] == experiment]
    chosen = rows[rows["population"] == population] if population is not None else rows.iloc[0:0]
    if chosen.empty:
        chosen = rows[rows["primary"].astype(str) == "True"]
    out = {}
    for r in chosen.itertuples():
        key = "pathwise" if r.direction == "forward" else "pathwise_adjoint"
        out[f"{key}_verdict"], out[f"{key}_reason"] = str(r.verdict), str(r.reason)
        out[f"{key}_sensitivity"] = "" if pd.isna(r.sensitivity) else str(r.sensitivity)
        out[f"{key}_population"] = str(r.population)
    return out


#: The columns every row of ``results/limits/summary.csv`` has; the others depend on the limit.
SUMMARY_COLUMNS = ("experiment", "regime", "limit")


def read_summary(path) -> pd.DataFrame:
    """``results/limits/summary.csv``, one row per analysed experiment, checked. Its columns
    differ between limits (a column of the ODE's is empty in an SDE's row), so only the
    columns every row has must be filled."""
    table = read_csv_checked(path, SUMMARY_COLUMNS, not_null=SUMMARY_COLUMNS)
    if table["experiment"].duplicated().any():
        raise corrupt_input(path, "has an experiment twice")
    return table


def write_signatures(train_paths: Sequence, dataset_path, cfg: dict, out_csv, *, experiment: str) -> pd.DataFrame:
    """Measure the pathwise signatures of every network of one experiment on the first
    ``cfg['n_inputs']`` test inputs of its dataset (:func:`.signatures.experiment_signatures`) and
    write them atomically."""
    from ..io import read_npz
    from .signatures import experiment_signatures

    data, _ = read_npz(dataset_path)
    for key in ("x_test", "y_test"):
        if key not in data:
            raise corrupt_input(dataset_path, f"has no array {key!r}")
    n = int(cfg["n_inputs"])
    table = experiment_signatures(train_paths, data["x_test"][:n], data["y_test"][:n], cfg["blocks"],
                                  experiment=experiment, progress=True)
    if table.empty:
        raise ValueError(f"{experiment}: no network with finite weights to measure")
    write_csv(out_csv, table)
    return table


def _populations(regimes: pd.DataFrame, experiment: str, include_status) -> list[tuple[str, bool]]:
    """(population label, primary) of every scaling verdict of an experiment; one population of the
    included statuses where the table has no populations."""
    rows = regimes[regimes["experiment"] == experiment]
    if rows.empty:
        raise ValueError(f"no regime for experiment {experiment!r}")
    if "population" not in rows or not rows["population"].map(lambda v: isinstance(v, str)).all():
        return [("+".join(include_status), True)]
    return [(str(r.population), str(r.primary).lower() == "true") for r in rows.itertuples()]


def write_pathwise(signature_paths: Sequence, regimes_csv, cfg: dict, bootstrap: dict, include_status,
                   outputs: dict) -> pd.DataFrame:
    """Collect the experiments' signatures (``outputs['networks']``), fit their slopes per population
    (``outputs['slopes']``) and give each population its forward and backward verdict
    (``outputs['verdicts']``). Returns the verdicts."""
    from ..scaling.tables import read_regimes
    from .signature_fits import SLOPE_COLUMNS, VERDICT_COLUMNS, SignatureRule, signature_slopes, signature_verdict

    columns = ("experiment", "depth", "seed", "status", "quantity", "n_blocks", "value")
    networks = pd.concat([read_csv_checked(p, columns, not_null=columns[:6]) for p in signature_paths],
                         ignore_index=True)
    regimes = read_regimes(regimes_csv)
    rule = SignatureRule.from_config(cfg)
    slopes, verdicts = [], []
    for experiment, of_exp in networks.groupby("experiment", sort=False):
        for label, primary in _populations(regimes, experiment, include_status):
            members = of_exp[of_exp["status"].isin(label.split("+"))]
            fits = signature_slopes(members, min_depth=int(cfg["min_depth"]),
                                    min_layers_per_block=int(cfg["min_layers_per_block"]),
                                    resamples=int(bootstrap["resamples"]), seed=int(bootstrap["seed"]),
                                    level=float(bootstrap["level"]))
            labels = {"experiment": experiment, "population": label, "primary": primary}
            if len(fits):
                slopes.append(fits.assign(**labels))
            for direction in ("forward", "backward"):
                verdicts.append({**labels, **signature_verdict(fits, rule, direction)})
    slope_table = pd.concat(slopes, ignore_index=True) if slopes else pd.DataFrame()
    slope_table = slope_table.reindex(columns=SLOPE_COLUMNS)
    verdict_table = pd.DataFrame(verdicts).reindex(columns=VERDICT_COLUMNS)
    write_csv(outputs["networks"], networks)
    write_csv(outputs["slopes"], slope_table)
    write_csv(outputs["verdicts"], verdict_table)
    return verdict_table
