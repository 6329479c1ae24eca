"""The training-side phase diagram: which training choices put the trained weights in the ODE,
SDE or neither regime (docs/maths.md §8).

A *cell* is one choice of activation × initialisation along depth × residual scale ×
optimiser. Each cell is an experiment of the usual kind (the trainer of
:mod:`..training.train`), trained at every depth of the study, then classified by the
statistics of :mod:`..scaling.statistics`, the exponents and the regime rule of
:mod:`..scaling.exponents` — the code path of the scaling stage.

The anchor (:func:`anchor_statistics`, :func:`anchor_slopes`) repeats the setting of Marion et al. (2024, Fig. 1):
the two-matrix block ``h + V σ(W h)/L``, a smooth initialisation and SGD with lr ∝ L, where
the largest increment max_k ‖Z_{k+1} − Z_k‖ of the trained weights Z_k = (V_k, W_k) should
decrease like L^{-1}.
"""

from __future__ import annotations

import copy
import functools
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import MIN_FIT_DEPTHS, ConfigError, load_schema, schema_error
from ..io import stable_seed
from ..scaling.exponents import FitSettings, RegimeThresholds, SeedGrid, fit_experiment, fit_grid
from ..scaling.statistics import experiment_statistics, sequence_statistics
from ..scaling.weights import TrainedWeights, load_training

#: The three axes of the grid, in the order of a cell's name (after the activation).
AXES = ("initialisation", "residual_scale", "optimizer")
#: Columns that identify a cell in every table of the study.
CELL_COLUMNS = ("cell", "activation", *AXES)
#: The name of the dataset every cell trains on (the study's own dataset spec).
DATASET = "regimes"
ANCHOR = "anchor"


def cell_name(activation: str, *entries: str) -> str:
    """``{activation}-{initialisation}-{residual_scale}-{optimizer}``: a file and wildcard name."""
    return "-".join((activation, *entries))


@functools.cache
def _experiment_schema() -> dict:
    return load_schema()["properties"]["experiments"]["additionalProperties"]


def _validated(exp: dict, where: str) -> dict:
    """The experiment checked against the schema of an experiment (one sentence on error)."""
    message = schema_error(exp, _experiment_schema())
    if message:
        raise ConfigError(f"{where}: {message}")
    return exp


def cells(spec: dict) -> dict[str, dict]:
    """Every cell of the ``regimes`` config section: name -> labels and the experiment config.

    The experiment is ``base`` with the cell's activation, then the ``set`` of the chosen
    initialisation, residual scale and optimiser on top (later axes win), checked against
    the experiment schema.
    """
    out = {}
    axes = [spec["initialisations"], spec["residual_scales"], spec["optimizers"]]
    for activation in spec["activations"]:
        for entries in itertools.product(*axes):
            name = cell_name(activation, *(e["name"] for e in entries))
            exp = {**copy.deepcopy(spec["base"]), "dataset": DATASET, "activation": activation,
                   "depths": list(spec["depths"]), "seeds": spec["seeds"]}
            for entry in entries:
                exp.update(copy.deepcopy(entry.get("set", {})))
            out[name] = {
                "activation": activation,
                **{axis: e["name"] for axis, e in zip(AXES, entries)},
                **{f"{axis}_label": e.get("label", e["name"]) for axis, e in zip(AXES, entries)},
                "experiment": _validated(exp, f"regimes cell {name}"),
            }
    return out


def anchor_experiments(spec: dict) -> dict[str, dict]:
    """The anchor's experiments, one per initialisation profile: name -> experiment config."""
    anchor = spec["anchor"]
    out = {}
    for profile in anchor["init_depth_profiles"]:
        exp = {**copy.deepcopy(anchor["set"]), "dataset": ANCHOR, "init_depth_profile": profile,
               "block": "two-matrix", "depths": list(anchor["depths"]), "seeds": anchor["seeds"]}
        out[f"{ANCHOR}-{profile}"] = _validated(exp, f"regimes.anchor ({profile})")
    return out


def check_spec(spec: dict, fit: FitSettings) -> None:
    """Refuse a study whose cells cannot be named or fitted (one sentence naming the key)."""
    for axis in ("initialisations", "residual_scales", "optimizers"):
        names = [e["name"] for e in spec[axis]]
        if len(set(names)) != len(names):
            raise ConfigError(f"regimes.{axis}: the names {names} repeat")
    low, high = fit.window("rms_norm")
    for where, depths in (("regimes.depths", spec["depths"]), ("regimes.anchor.depths", spec["anchor"]["depths"])):
        inside = [d for d in depths if low <= d <= high]
        if len(inside) < MIN_FIT_DEPTHS:
            raise ConfigError(
                f"{where}: {len(inside)} of the depths {sorted(depths)} lie in the fit window "
                f"[{low}, {high}] of scaling.fit; at least {MIN_FIT_DEPTHS} needed"
            )
    cells(spec)
    anchor_experiments(spec)


# -- classification: the scaling stage's statistics, exponents and regime rule -------------


def classify_cell(
    networks: list[TrainedWeights],
    labels: dict,
    settings: FitSettings,
    thresholds: RegimeThresholds,
    window_fraction: float = 0.1,
) -> tuple[pd.DataFrame, dict]:
    """Exponents of one cell and its regime record, by the functions of the scaling stage."""
    statistics, training = experiment_statistics(networks, window_fraction)
    exponents, regime = fit_experiment(statistics, settings, thresholds)
    cell_labels = {c: labels[c] for c in CELL_COLUMNS}
    for column, value in reversed(cell_labels.items()):
        exponents.insert(0, column, value)
    final = training.groupby("depth")["train_loss"].median()
    regime = {
        **cell_labels,
        **{f"{a}_label": labels[f"{a}_label"] for a in AXES},
        **regime,
        "median_train_loss_deepest": float(final.iloc[-1]) if len(final) else np.nan,
        "statuses": "; ".join(f"{k}:{v}" for k, v in sorted(training["status"].value_counts().items())),
    }
    return exponents, regime


def train_cell(
    name: str,
    exp: dict,
    data: dict[str, np.ndarray],
    outputs: list[str | Path],
    checkpoints: list[str | Path],
    *,
    base_seed: int = 0,
    device: str = "auto",
    dtype: str = "float32",
    engine: str = "auto",
) -> list[str]:
    """Train every depth of one cell (or anchor experiment) and write one output per depth.

    A depth whose checkpoint holds a finished run is read back, not retrained (resumption is
    bitwise, :func:`..training.train.train_ensemble`); each checkpoint is removed once all depths
    are written.
    """
    from ..training.train import save_result, train_ensemble

    summary = []
    for depth, output, checkpoint in zip(exp["depths"], outputs, checkpoints):
        Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
        result = train_ensemble(name, exp, int(depth), data, base_seed=base_seed, device=device, dtype=dtype,
                                engine=engine, checkpoint_path=checkpoint, progress=False)
        save_result(output, result)
        summary.append(f"L={depth}: {result.status.tolist()} in {result.wall_time_s:.1f} s")
    for checkpoint in checkpoints:
        Path(checkpoint).unlink(missing_ok=True)
    return summary


def load_cell(paths: list[str | Path]) -> list[TrainedWeights]:
    """The trained networks of one cell (one file per depth), initial weights left unread."""
    return [load_training(path) for path in paths]


def phase_diagram(
    files: dict[str, list[str | Path]],
    cell_specs: dict[str, dict],
    settings: FitSettings,
    thresholds: RegimeThresholds,
    window_fraction: float = 0.1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One regime row per cell (the tidy phase diagram) and the exponents of every cell."""
    regimes, exponents = [], []
    for name, paths in files.items():
        labels = {"cell": name, **cell_specs[name]}
        table, regime = classify_cell(load_cell(paths), labels, settings, thresholds, window_fraction)
        exponents.append(table)
        regimes.append(regime)
    return pd.DataFrame(regimes), pd.concat(exponents, ignore_index=True)


# -- the Marion et al. anchor --------------------------------------------------------------


def anchor_sequences(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Layer sequences (S, L, ...) of a two-matrix network: V, W and Z = (V, W) side by side."""
    V = np.asarray(arrays["V"], dtype=np.float64)
    W = np.asarray(arrays["A"], dtype=np.float64)
    S, L = W.shape[:2]
    Z = np.concatenate([V.reshape(S, L, -1), W.reshape(S, L, -1)], axis=2)
    return {"V": V, "W": W, "Z": Z}


ANCHOR_STATISTICS = ("max_increment", "max_norm", "increment_ratio")


def anchor_statistics(files: dict[str, list[str | Path]]) -> pd.DataFrame:
    """Tidy table: one row per (profile, depth, seed, stage, weights, statistic) of the anchor
    networks; stage is ``trained``, ``initial`` or ``update`` (trained − initial, what training
    added); ``files`` maps an anchor experiment to its outputs."""
    from ..io import read_npz

    rows = []
    for experiment, paths in files.items():
        for path in paths:
            arrays, meta = read_npz(path)
            status = np.asarray(arrays["status"]).astype(str)
            stages = {
                "trained": {k: arrays[k] for k in ("V", "A")},
                "initial": {k: arrays[f"{k}_init"] for k in ("V", "A")},
                "update": {k: np.asarray(arrays[k], float) - arrays[f"{k}_init"] for k in ("V", "A")},
            }
            for stage, weights_of_stage in stages.items():
                sequences = anchor_sequences(weights_of_stage)
                for weights, X in sequences.items():
                    for statistic, value in sequence_statistics(X, statistics=ANCHOR_STATISTICS).items():
                        rows.append(pd.DataFrame({
                            "experiment": experiment,
                            "init_depth_profile": meta["config"]["init_depth_profile"],
                            "stage": stage, "depth": int(meta["depth"]), "seed": arrays["seeds"],
                            "status": status, "finite": np.isfinite(value), "weights": weights,
                            "statistic": statistic, "value": value,
                        }))
    return pd.concat(rows, ignore_index=True)


def anchor_slopes(table: pd.DataFrame, settings: FitSettings) -> pd.DataFrame:
    """Log-log slope in L of every anchor statistic with its seed-bootstrap interval (:func:`fit_grid`)."""
    rows = []
    keys = ["experiment", "init_depth_profile", "stage", "weights", "statistic"]
    for key, part in table.groupby(keys, sort=False):
        networks = part.drop_duplicates(["depth", "seed"])
        keep = networks["finite"] & networks["status"].isin(settings.include_status)
        grid = SeedGrid.build(networks.loc[keep], settings.resamples,
                              stable_seed("bootstrap", settings.seed, *map(str, key)))
        fit = fit_grid(grid, grid.values(part), (-np.inf, np.inf), settings.level)
        row = {k: v for k, v in fit.row().items() if k not in ("exponent", "ci_low", "ci_high")}
        rows.append({**dict(zip(keys, key)), **row, "n_excluded": int((~keep).sum())})
    return pd.DataFrame(rows)
