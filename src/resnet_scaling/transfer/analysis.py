"""The tables of the transfer study from its trained cells (docs/maths.md §9).

- the per-run table (every cell, depth, learning rate and seed; a diverged run has no loss);
- η*(L) per cell with its interval, and per cell the slope of log η* on log L
  (:mod:`.optimum`);
- the coordinate check and its slopes in L (the project's one log-log fit);
- at η*, the one-matrix networks' exponents and regime by the scaling stage's statistics and
  rule (:func:`..scaling.statistics.experiment_statistics`, :func:`..scaling.exponents.fit_experiment`)
  and their pathwise limit (:func:`..limits.signatures.chunked_signatures`,
  :func:`..limits.signature_fits.signature_slopes`, :func:`..limits.signature_fits.signature_verdict`).
  The two-matrix block is read by neither (they take the one-matrix block h + δ σ(A h + b)), so
  its cells say "not evaluated" with the reason;
- ``transfer.csv``: one row per cell, the study's answer; and the cost.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import section_settings
from ..io import read_npz, stable_seed
from ..limits.signature_fits import SignatureRule, signature_slopes, signature_verdict
from ..limits.signatures import chunked_signatures
from ..scaling.exponents import FitSettings, fit_experiment, loglog_fit
from ..scaling.regime_rule import RegimeThresholds
from ..scaling.statistics import experiment_statistics
from ..scaling.weights import from_training
from .optimum import transfer_fit, transfer_verdict
from .study import Cell

#: Why the two-matrix block gets no regime or pathwise verdict.
TWO_MATRIX_NOTE = ("not evaluated: the scaling statistics and the pathwise signatures read the one-matrix block "
                   "h + δ σ(A h + b)")


def read_cells(folders: dict[str, str | Path]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The per-run, coordinate-check and cost tables of every cell folder (cell name -> folder)."""
    runs, coords, cost = [], [], []
    for name, folder in folders.items():
        folder = Path(folder)
        for frame, file in ((runs, "runs.csv"), (coords, "coord_check.csv"), (cost, "cost.csv")):
            table = pd.read_csv(folder / file, keep_default_na=True)
            if "reason" in table:
                table["reason"] = table["reason"].astype(object).fillna("")
            if table.empty or set(table["cell"]) != {name}:
                raise ValueError(f"{folder / file}: expected the rows of cell {name!r}; delete {folder} and rerun")
            frame.append(table)
    return (pd.concat(runs, ignore_index=True), pd.concat(coords, ignore_index=True),
            pd.concat(cost, ignore_index=True))


def loss_tables(runs: pd.DataFrame) -> dict[int, np.ndarray]:
    """depth -> (learning rates × seeds) final training losses of one cell (NaN: diverged)."""
    out = {}
    for depth, part in runs.groupby("depth"):
        wide = part.pivot_table(index="lr_log2", columns="seed", values="train_loss", dropna=False, aggfunc="first")
        out[int(depth)] = wide.sort_index().to_numpy(dtype=float)
    return out


def optimum_tables(runs: pd.DataFrame, cells: dict[str, Cell], bootstrap: dict, tol: float
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """η*(L) per cell and depth, and one slope record per cell."""
    per_depth, slopes = [], []
    for name, part in runs.groupby("cell", sort=False):
        cell = cells[name]
        x = np.sort(part["lr_log2"].unique())
        table, record = transfer_fit(loss_tables(part), x, resamples=bootstrap["resamples"],
                                     seed=stable_seed("transfer", bootstrap["seed"], name), level=bootstrap["level"])
        gamma = float(cell.experiment.get("lr_depth_exponent", 0.0))
        for column, value in reversed(list(cell.labels().items())):
            table.insert(0, column, value)
        per_depth.append(table)
        slopes.append({**cell.labels(), "label": cell.label, "lr_depth_exponent": gamma, **record,
                       "effective_slope": record["slope"] + gamma,
                       "transfer": transfer_verdict(record["slope"], record["ci_low"], record["ci_high"], tol)})
    return pd.concat(per_depth, ignore_index=True), pd.DataFrame(slopes)


def coord_slopes(coords: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Log-log slope in L of the RMS change of h_l at each layer fraction, per cell."""
    rows = []
    for (cell, fraction), part in coords.groupby(["cell", "fraction"], sort=False):
        fit = loglog_fit(part["depth"], part["rms_change"], level)
        first = part.iloc[0]
        rows.append({"cell": cell, "parametrisation": first["parametrisation"], "block": first["block"],
                     "dataset": first["dataset"], "fraction": fraction, "slope": fit.slope, "ci_low": fit.ci_low,
                     "ci_high": fit.ci_high, "n_depths": fit.n})
    return pd.DataFrame(rows)


def _optimum_networks(folder: Path, depths) -> list[tuple]:
    """(arrays, meta) of the networks at the grid optimum of each depth that has them."""
    out = []
    for depth in depths:
        path = folder / "optimum" / f"depth_{depth}.npz"
        if path.exists():
            out.append(read_npz(path))
    return out


def limits_at_optimum(cell: Cell, folder: Path, data: dict, scaling: dict, pathwise: dict, include_status,
                      window_fraction: float) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Regime (scaling stage) and pathwise verdict of a one-matrix cell's networks at η*(L).

    Returns the record (regime and pathwise columns), the exponents table and the pathwise slopes."""
    if cell.block != "one-matrix":
        return {"regime": TWO_MATRIX_NOTE, "pathwise": TWO_MATRIX_NOTE}, pd.DataFrame(), pd.DataFrame()
    loaded = _optimum_networks(folder, cell.depths)
    if not loaded:
        return {"regime": "not evaluated: every learning rate diverged", "pathwise": "not evaluated"}, \
            pd.DataFrame(), pd.DataFrame()
    networks = [from_training({k: v for k, v in a.items() if not k.endswith("_init")}, m) for a, m in loaded]
    settings = dataclasses.replace(FitSettings.from_config(scaling), include_status=tuple(include_status))
    statistics, _ = experiment_statistics(networks, window_fraction)
    thresholds = RegimeThresholds.from_config(scaling["regime"])
    exponents, regime = fit_experiment(statistics, settings, thresholds)
    exponents.insert(0, "cell", cell.name)
    record = {"regime": regime["regime"], "regime_support": regime.get("support", np.nan),
              "regime_note": regime.get("undetermined_because", "") or regime.get("note", ""),
              "exponent": regime.get("exponent", np.nan), "exponent_ci_low": regime.get("exponent_ci_low", np.nan),
              "exponent_ci_high": regime.get("exponent_ci_high", np.nan),
              "increment_ratio_slope": regime.get("increment_ratio_slope", np.nan),
              "quadratic_variation_slope": regime.get("quadratic_variation_slope", np.nan)}
    # pathwise signatures on the first test inputs
    n = int(pathwise["n_inputs"])
    x, y = np.asarray(data["x_test"][:n], np.float64), np.asarray(data["y_test"][:n], np.float64)
    rows = []
    for (arrays, meta), w in zip(loaded, networks):
        keep = np.flatnonzero(np.asarray(w.finite, bool) & np.isin(w.status, list(include_status)))
        if not len(keep):
            continue
        S, L = w.A.shape[:2]
        initial = (np.asarray(arrays["A_init"], np.float64)[keep], np.asarray(arrays["b_init"], np.float64)[keep],
                   np.asarray(arrays["delta_init"], np.float64).reshape(S, L)[keep])
        for r in chunked_signatures(w.A[keep], w.b[keep], w.delta[keep], w.activation, x, y, pathwise["blocks"],
                                    initial):
            i = keep[r.pop("i")]
            rows.append({"depth": int(w.depth), "seed": int(w.seeds[i]), "status": str(w.status[i]), **r})
    signatures = pd.DataFrame(rows, columns=["depth", "seed", "status", "quantity", "n_blocks", "value"])
    slopes = signature_slopes(signatures, min_depth=int(pathwise["min_depth"]),
                              min_layers_per_block=int(pathwise["min_layers_per_block"]),
                              resamples=settings.resamples, seed=stable_seed("transfer", "pathwise", cell.name),
                              level=settings.level) if len(signatures) else pd.DataFrame()
    rule = SignatureRule.from_config(pathwise)
    forward = signature_verdict(slopes, rule, "forward")
    backward = signature_verdict(slopes, rule, "backward")
    record.update(pathwise=forward["verdict"], pathwise_reason=forward["reason"],
                  pathwise_backward=backward["verdict"])
    if len(slopes):
        slopes.insert(0, "cell", cell.name)
    return record, exponents, slopes


#: Columns of transfer.csv, in order.
TRANSFER_COLUMNS = ["parametrisation", "label", "block", "dataset", "slope", "ci_low", "ci_high", "transfer",
                    "lr_depth_exponent", "effective_slope", "n_depths", "n_at_edge", "depths", "note", "regime",
                    "regime_support", "exponent", "exponent_ci_low", "exponent_ci_high", "pathwise",
                    "pathwise_backward", "pathwise_reason", "coord_slope_L4", "coord_slope_L2", "coord_slope_L",
                    "regime_note", "cell"]


def analyse(folders: dict[str, str | Path], cells: dict[str, Cell], data: dict[str, dict], config: dict
            ) -> dict[str, pd.DataFrame]:
    """Every table of the study from the trained cell folders.

    ``config`` holds the sections ``transfer``, ``scaling`` and ``limits`` (schema defaults filled
    in where missing); ``data``: dataset name -> arrays (x_test, y_test for the pathwise inputs)."""
    spec = section_settings("transfer", config.get("transfer", {}))
    scaling = section_settings("scaling", config.get("scaling", {}))
    pathwise = section_settings("limits", config.get("limits", {}))["pathwise"]
    runs, coords, cost = read_cells(folders)
    per_depth, slopes = optimum_tables(runs, cells, spec["bootstrap"], spec["transfer_tol"])
    coord = coord_slopes(coords, spec["bootstrap"]["level"])
    records, exponents, pathwise_slopes = [], [], []
    for name, folder in folders.items():
        record, exps, pws = limits_at_optimum(cells[name], Path(folder), data[cells[name].dataset], scaling,
                                              pathwise, spec["include_status"], scaling["detrend_window"])
        record["cell"] = name
        for fraction, column in ((0.25, "coord_slope_L4"), (0.5, "coord_slope_L2"), (1.0, "coord_slope_L")):
            hit = coord[(coord["cell"] == name) & np.isclose(coord["fraction"], fraction)]
            record[column] = float(hit["slope"].iloc[0]) if len(hit) else np.nan
        records.append(record)
        exponents.append(exps)
        pathwise_slopes.append(pws)
    summary = slopes.merge(pd.DataFrame(records), on="cell", how="left")
    summary = summary[[c for c in TRANSFER_COLUMNS if c in summary]]
    total = {"cell": "total", "cpu_s": cost["cpu_s"].sum(), "wall_s": cost["wall_s"].sum(),
             "runs": int(cost["runs"].sum()), "cpu_minutes": cost["cpu_s"].sum() / 60}
    cost_table = pd.concat([cost, pd.DataFrame([total])], ignore_index=True)
    return {"runs": runs, "optimum": per_depth, "transfer": summary, "coord_check": coords, "coord_slopes": coord,
            "exponents": pd.concat(exponents, ignore_index=True) if any(len(e) for e in exponents) else pd.DataFrame(),
            "pathwise": (pd.concat(pathwise_slopes, ignore_index=True) if any(len(p) for p in pathwise_slopes)
                         else pd.DataFrame()),
            "cost": cost_table}


def cost_line(cost: pd.DataFrame) -> str:
    """One sentence: the measured cost of the study's training (the ``total`` row of the cost table)."""
    total = cost[cost["cell"] == "total"].iloc[0]
    cells = cost[cost["cell"] != "total"]
    return (f"cost: {total['cpu_s'] / 60:.1f} CPU-minutes of training ({int(total['runs'])} runs of "
            f"{int(cells['seeds'].iloc[0])} seeds and {int(cells['steps'].iloc[0])} steps in "
            f"{cells['cell'].nunique()} cells), {total['wall_s'] / 60:.1f} minutes of job wall time")
