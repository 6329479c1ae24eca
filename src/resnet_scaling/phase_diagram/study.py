"""The training-side phase diagram: which training choices put the trained weights in the ODE,
SDE or neither regime (docs/maths.md §8).

A *cell* is one choice of activation × initialisation along depth × residual scale ×
optimiser. Each cell is an experiment of the usual kind (the trainer of
:mod:`..training.train`), trained at every depth of the study, then classified by the
statistics of :mod:`..scaling.statistics`, the exponents of :mod:`..scaling.exponents` and the
regime rule of :mod:`..scaling.regime_rule` — the code path of the scaling stage.

The anchor (:func:`anchor_statistics`, :func:`anchor_slopes`) repeats the setting of Marion et al.
(2024, Fig. 1) — the two-matrix block ``h + V σ(W h)/L`` with GELU, V₀ = 0 and one Gaussian W₀
for every layer, full-batch gradient descent with lr ∝ L — where the largest increment
max_k ‖Z_{k+1} − Z_k‖ of the trained weights Z_k = (V_k, W_k) should decrease like L^{-1}; and
labelled variations of it (``regimes.anchor.settings``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import MIN_FIT_DEPTHS, ConfigError, check_experiment, load_schema, schema_error
from ..io import stable_seed
from ..scaling.exponents import FitSettings, SeedGrid, fit_experiment, fit_grid
from ..scaling.regime_rule import RegimeThresholds
from ..scaling.statistics import experiment_statistics, sequence_statistics
from ..scaling.weights import TrainedWeights, effective_weights, from_training

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
    check_experiment(exp, where)
    return exp


def cells(spec: dict) -> dict[str, dict]:
    """Every cell of the ``regimes`` config section: name -> labels and the experiment config.

    The experiment is ``base`` with the cell's activation, then the ``set`` of the chosen
    initialisation, residual scale and optimiser on top (later axes win), checked against
    the experiment schema; a cell named in ``refine`` has its depths and seeds from there.
    """
    out = {}
    axes = [spec["initialisations"], spec["residual_scales"], spec["optimizers"]]
    for activation in spec["activations"]:
        for entries in itertools.product(*axes):
            name = cell_name(activation, *(e["name"] for e in entries))
            refined = spec.get("refine", {}).get(name, {})
            exp = {**copy.deepcopy(spec["base"]), "dataset": DATASET, "activation": activation,
                   "depths": sorted(refined.get("depths", spec["depths"])), "seeds": refined.get("seeds", spec["seeds"])}
            for entry in entries:
                exp.update(copy.deepcopy(entry.get("set", {})))
            out[name] = {
                "activation": activation,
                **{axis: e["name"] for axis, e in zip(AXES, entries)},
                **{f"{axis}_label": e.get("label", e["name"]) for axis, e in zip(AXES, entries)},
                "experiment": _validated(exp, f"regimes cell {name}"),
            }
    return out


def anchor_name(setting: str, profile: str) -> str:
    """``anchor-{setting}-{profile}``: the experiment of one anchor setting and initialisation profile."""
    return f"{ANCHOR}-{setting}-{profile}"


def anchor_experiments(spec: dict) -> dict[str, dict]:
    """The anchor's experiments, one per (setting, initialisation profile): name -> experiment
    config, whose ``dataset`` names the setting's dataset (:func:`anchor_dataset`)."""
    out = {}
    for i, setting in enumerate(spec["anchor"]["settings"]):
        for profile in setting["init_depth_profiles"]:
            exp = {**copy.deepcopy(setting["set"]), "dataset": f"{ANCHOR}-{setting['name']}",
                   "init_depth_profile": profile, "block": "two-matrix", "depths": list(setting["depths"]),
                   "seeds": setting["seeds"]}
            where = f"regimes.anchor.settings[{i}] ({setting['name']}, {profile})"
            out[anchor_name(setting["name"], profile)] = _validated(exp, where)
    return out


def anchor_labels(spec: dict) -> dict[str, dict]:
    """Per anchor experiment: its setting's name and label and its initialisation profile."""
    return {
        anchor_name(setting["name"], profile): {"setting": setting["name"],
                                                "setting_label": setting.get("label", setting["name"]),
                                                "init_depth_profile": profile}
        for setting in spec["anchor"]["settings"] for profile in setting["init_depth_profiles"]
    }


def anchor_dataset(spec: dict, experiment: str) -> dict:
    """The dataset spec an anchor experiment trains on (its setting's)."""
    settings = {f"{ANCHOR}-{s['name']}": s for s in spec["anchor"]["settings"]}
    return settings[anchor_experiments(spec)[experiment]["dataset"]]["dataset"]


def check_spec(spec: dict, fit: FitSettings) -> None:
    """Refuse a study whose cells cannot be named or fitted (one sentence naming the key)."""
    axes = ("initialisations", "residual_scales", "optimizers")
    for axis in axes:
        names = [e["name"] for e in spec[axis]]
        if len(set(names)) != len(names):
            raise ConfigError(f"regimes.{axis}: the names {names} repeat")
    grid = [cell_name(a, *names) for a in spec["activations"]
            for names in itertools.product(*([e["name"] for e in spec[axis]] for axis in axes))]
    for name in spec.get("refine", {}):
        if name not in grid:
            close = difflib.get_close_matches(name, grid, n=1, cutoff=0.6)
            raise ConfigError(f"regimes.refine: {name!r} is not a cell of the grid; "
                              + (f"did you mean {close[0]!r}?" if close else f"cells are named like {grid[0]!r}"))
    names = [s["name"] for s in spec["anchor"]["settings"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"regimes.anchor.settings: the names {names} repeat")
    grids = [("regimes.depths", spec["depths"]),
             *((f"regimes.refine.{name}.depths", r["depths"]) for name, r in spec.get("refine", {}).items() if "depths" in r),
             *((f"regimes.anchor.settings[{i}].depths", s["depths"]) for i, s in enumerate(spec["anchor"]["settings"]))]
    low, high = fit.window("rms_norm")
    for where, depths in grids:
        inside = [d for d in depths if low <= d <= high]
        if len(inside) < MIN_FIT_DEPTHS:
            raise ConfigError(
                f"{where}: {len(inside)} of the depths {sorted(depths)} lie in the fit window "
                f"[{low}, {high}] of scaling.fit; at least {MIN_FIT_DEPTHS} needed"
            )
    cells(spec)
    anchor_experiments(spec)


# -- classification: the scaling stage's statistics, exponents and regime rule -------------


#: Columns of a cell's regime record repeated for its update (trained − initial), prefixed ``update_``.
UPDATE_COLUMNS = ("regime", "support", "exponent", "exponent_ci_low", "exponent_ci_high", "increment_ratio_slope",
                  "increment_ratio_ci_low", "increment_ratio_ci_high", "quadratic_variation_slope",
                  "quadratic_variation_ci_low", "quadratic_variation_ci_high")


def classify_cell(
    networks: list[TrainedWeights],
    labels: dict,
    settings: FitSettings,
    thresholds: RegimeThresholds,
    window_fraction: float = 0.1,
    updates: list[TrainedWeights] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Exponents of one cell and its regime record, by the functions of the scaling stage.

    With ``updates`` (:func:`update_weights` of the same networks) the same fit of what training
    added is reported beside it: its rows in the exponents table have ``weights`` ``update``,
    its regime-rule slopes the columns ``update_*`` of the record. A cell whose trained weights
    keep the shape of their initialisation while the update has another shows it there."""
    statistics, training = experiment_statistics(networks, window_fraction)
    exponents, regime = fit_experiment(statistics, settings, thresholds)
    exponents.insert(0, "weights", "trained")
    update_record = {}
    if updates is not None:
        update_statistics, _ = experiment_statistics(updates, window_fraction)
        update_exponents, update_regime = fit_experiment(update_statistics, settings, thresholds)
        update_exponents.insert(0, "weights", "update")
        exponents = pd.concat([exponents, update_exponents], ignore_index=True)
        update_record = {f"update_{c}": update_regime.get(c, np.nan) for c in UPDATE_COLUMNS}
    cell_labels = {c: labels[c] for c in CELL_COLUMNS}
    for column, value in reversed(cell_labels.items()):
        exponents.insert(0, column, value)
    final = training.groupby("depth")["train_loss"].median()
    regime = {
        **cell_labels,
        **{f"{a}_label": labels[f"{a}_label"] for a in AXES},
        **regime,
        **update_record,
        "depths": " ".join(str(int(d)) for d in sorted(training["depth"].unique())),
        "median_train_loss_deepest": float(final.iloc[-1]) if len(final) else np.nan,
        "statuses": "; ".join(f"{k}:{v}" for k, v in sorted(training["status"].value_counts().items())),
    }
    return exponents, regime


def update_weights(w: TrainedWeights, initial: TrainedWeights) -> TrainedWeights:
    """What training added to the effective weights, M − M₀ and m − m₀ (docs/maths.md §8), as
    networks with δ ≡ 1 so that their M is that update; statuses and losses are the trained ones."""
    M, m = effective_weights(w.A, w.b, w.delta)
    M0, m0 = effective_weights(initial.A, initial.b, initial.delta)
    return dataclasses.replace(w, A=M - M0, b=m - m0, delta=np.ones_like(w.delta), delta_type="none")


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


def load_cell(paths: list[str | Path]) -> tuple[list[TrainedWeights], list[TrainedWeights]]:
    """The trained networks of one cell (one file per depth) and their updates (:func:`update_weights`)."""
    from ..io import read_npz

    trained, updates = [], []
    for path in paths:
        arrays, meta = read_npz(path)
        missing = [k for k in ("A_init", "b_init", "delta_init") if k not in arrays]
        if missing:
            raise ValueError(f"{path}: no initial weights {missing}; delete it so that the cell is trained again")
        w = from_training(arrays, meta)
        initial = from_training({**arrays, "A": arrays["A_init"], "b": arrays["b_init"],
                                 "delta": arrays["delta_init"]}, meta)
        trained.append(w)
        updates.append(update_weights(w, initial))
    return trained, updates


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
        trained, updates = load_cell(paths)
        table, regime = classify_cell(trained, labels, settings, thresholds, window_fraction, updates)
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


def anchor_statistics(files: dict[str, list[str | Path]], labels: dict[str, dict] | None = None) -> pd.DataFrame:
    """Tidy table: one row per (experiment, depth, seed, stage, weights, statistic) of the anchor
    networks; stage is ``trained``, ``initial`` or ``update`` (trained − initial, what training
    added); ``files`` maps an anchor experiment to its outputs, ``labels`` (:func:`anchor_labels`)
    to its setting."""
    from ..io import read_npz

    rows = []
    for experiment, paths in files.items():
        label = (labels or {}).get(experiment, {})
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
                            "setting": label.get("setting", ""),
                            "setting_label": label.get("setting_label", ""),
                            "init_depth_profile": meta["config"]["init_depth_profile"],
                            "stage": stage, "depth": int(meta["depth"]), "seed": arrays["seeds"],
                            "status": status, "finite": np.isfinite(value), "weights": weights,
                            "statistic": statistic, "value": value,
                        }))
    return pd.concat(rows, ignore_index=True)


def anchor_slopes(table: pd.DataFrame, settings: FitSettings) -> pd.DataFrame:
    """Log-log slope in L of every anchor statistic with its seed-bootstrap interval (:func:`fit_grid`).

    A statistic that is zero for every network (the increments of V₀ = 0 and of a tied W₀) has
    no slope: NaN, with ``note`` saying so."""
    rows = []
    keys = ["experiment", "setting", "init_depth_profile", "stage", "weights", "statistic"]
    for key, part in table.groupby(keys, sort=False):
        networks = part.drop_duplicates(["depth", "seed"])
        keep = networks["finite"] & networks["status"].isin(settings.include_status)
        grid = SeedGrid.build(networks.loc[keep], settings.resamples,
                              stable_seed("bootstrap", settings.seed, *map(str, key)))
        zero = bool((part.loc[part["finite"], "value"] == 0).all())
        fit = fit_grid(grid, grid.values(part), (-np.inf, np.inf), settings.level)
        row = {k: v for k, v in fit.row().items() if k not in ("exponent", "ci_low", "ci_high")}
        rows.append({**dict(zip(keys, key)), **row, "n_excluded": int((~keep).sum()),
                     "note": "zero for every network: no slope" if zero else ""})
    return pd.DataFrame(rows)
