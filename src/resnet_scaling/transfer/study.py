"""The cells of the learning-rate transfer study, their check, and their training (docs/maths.md §9).

A *cell* is one parametrisation × block × dataset. Every cell trains, at every depth of the
study and every base learning rate 2^k of the grid, ``seeds`` networks for a fixed number of
steps with the project's trainer (:func:`..training.train.train_ensemble`, the compiled engine
where it applies). A parametrisation is a set of experiment keys: the residual scale (``delta``,
``alpha``), the initialisation and the learning-rate rule ``lr_depth_exponent`` γ, so that the
step is lr · L^γ (:func:`..training.train.scaled_lr`). All learning rates of one (cell, depth)
share the experiment name, so seed s has the same initial network at every learning rate: the
loss curves of one seed are paired.

Per depth the job also keeps the networks trained at the grid's best learning rate (for the
exponents and pathwise signatures at η*) and runs the depth coordinate check: the RMS change
of h_l, l = L/4, L/2, L, after ``coord_check.steps`` steps.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import ConfigError, check_experiment, load_schema, network_width, schema_error, section_settings
from ..io import write_csv
from .optimum import grid_optimum

#: Block names in cell names (no '-' inside a name part).
BLOCK_NAMES = {"one-matrix": "one_matrix", "two-matrix": "two_matrix"}
#: Experiment keys the study sets itself; a parametrisation may not set them.
STUDY_KEYS = ("dataset", "activation", "block", "hidden_width", "lr", "batch_size", "max_epochs", "stopping_rule",
              "epsilon", "seeds", "depths", "checkpoint_every", "enabled")
#: An ε the loss never reaches: every run takes the whole step budget.
NO_STOP = 1e-30
#: Layers at which the coordinate check measures h_l, as fractions of L.
COORD_FRACTIONS = (0.25, 0.5, 1.0)
#: Columns of the per-run table.
RUN_COLUMNS = ["cell", "parametrisation", "block", "dataset", "depth", "lr_log2", "lr_base", "lr", "seed", "status",
               "diverged", "train_loss", "test_loss", "reason", "steps", "engine", "cpu_s"]


def settings(spec: dict | None) -> dict:
    """The ``transfer`` section with every schema default filled in."""
    return section_settings("transfer", spec or {})


def lr_grid(spec: dict) -> np.ndarray:
    """The exponents k of the base learning rates 2^k (start to stop inclusive)."""
    g = spec["lr_log2"]
    n = int(math.floor((g["stop"] - g["start"]) / g["step"] + 1e-9)) + 1
    return np.round(g["start"] + g["step"] * np.arange(n), 10)


def cell_name(parametrisation: str, block: str, dataset: str) -> str:
    """``{parametrisation}-{block}-{dataset}`` with the block as one_matrix or two_matrix."""
    return f"{parametrisation}-{BLOCK_NAMES[block]}-{dataset}"


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return math.ceil(n_train / batch_size)


@functools.cache
def _experiment_schema() -> dict:
    return load_schema()["properties"]["experiments"]["additionalProperties"]


@dataclass(frozen=True)
class Cell:
    """One parametrisation × block × dataset, with the experiment config of its runs."""

    name: str
    parametrisation: str
    label: str
    block: str
    dataset: str
    experiment: dict  # without lr and max_epochs (set per run)
    lr_log2: tuple
    depths: tuple
    steps: int
    coord_steps: int
    coord_lr_log2: float
    coord_inputs: int

    def run_config(self, lr_log2: float, n_train: int) -> dict:
        """The experiment of one run: base lr 2^lr_log2 and the epochs of the step budget."""
        exp = dict(self.experiment)
        exp["lr"] = float(2.0**lr_log2)
        exp["max_epochs"] = self.steps // steps_per_epoch(n_train, exp["batch_size"])
        return exp

    @classmethod
    def from_dict(cls, values: dict) -> "Cell":
        """The cell of :func:`dataclasses.asdict` (a job's params)."""
        values = dict(values)
        values["lr_log2"], values["depths"] = tuple(values["lr_log2"]), tuple(values["depths"])
        values["experiment"] = dict(values["experiment"])
        return cls(**values)

    def labels(self) -> dict:
        return {"cell": self.name, "parametrisation": self.parametrisation, "block": self.block,
                "dataset": self.dataset}


def _experiment(spec: dict, entry: dict, block: str, dataset: str, where: str) -> dict:
    """The experiment keys of a parametrisation in one block and dataset, checked against the
    experiment schema (one sentence naming the key)."""
    owned = sorted(set(entry["set"]) & set(STUDY_KEYS))
    if owned:
        raise ConfigError(f"{where}.set.{owned[0]}: set by the study itself (transfer.{_owner(owned[0])}), "
                          "not by a parametrisation")
    exp = {**copy.deepcopy(spec["base"]), **copy.deepcopy(entry["set"]), "dataset": dataset,
           "activation": spec["activation"], "block": block, "hidden_width": spec["hidden_width"],
           "batch_size": spec["batch_size"], "seeds": spec["seeds"], "depths": list(spec["depths"]),
           "stopping_rule": "epsilon", "epsilon": NO_STOP, "checkpoint_every": 10**6, "lr": 1.0, "max_epochs": 1}
    message = schema_error(exp, _experiment_schema())
    if message:
        # the message names the key inside the experiment ("config.<key>: ...")
        raise ConfigError(f"{where}.set" + (message[len("config"):] if message.startswith("config") else "." + message)
                          + " (the trainer does not support it)")
    check_experiment(exp, f"{where}.set")
    del exp["lr"], exp["max_epochs"]
    return exp


def _owner(key: str) -> str:
    return {"lr": "lr_log2", "max_epochs": "steps", "stopping_rule": "steps", "epsilon": "steps",
            "checkpoint_every": "steps", "enabled": "enabled"}.get(key, key if key != "depths" else "depths")


def check_spec(spec: dict, datasets: dict) -> None:
    """Refuse, with one sentence naming the key, a study the trainer cannot run as asked: an
    unknown dataset, a parametrisation whose keys the trainer does not know or that sets what
    the study sets, an Adam ε that scales with depth (the trainer's is fixed), a step budget that
    is not a whole number of epochs, a coordinate check larger than the training set."""
    names = [p["name"] for p in spec["parametrisations"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"transfer.parametrisations: the names {names} repeat")
    if len(set(spec["datasets"])) != len(spec["datasets"]):
        raise ConfigError(f"transfer.datasets: the names {spec['datasets']} repeat")
    if len(lr_grid(spec)) < 3:
        raise ConfigError(f"transfer.lr_log2: {len(lr_grid(spec))} learning rates; η* needs at least 3")
    for i, name in enumerate(spec["datasets"]):
        if name not in datasets:
            raise ConfigError(f"transfer.datasets[{i}]: {name!r} is not one of the datasets {sorted(datasets)}")
        if "-" in name:
            raise ConfigError(f"transfer.datasets[{i}]: {name!r} contains '-', which separates the parts of a cell name")
        data = datasets[name]
        if data["kind"] == "cifar10":
            raise ConfigError(f"transfer.datasets[{i}]: {name!r} is CIFAR-10; the study trains fully connected networks")
        per_epoch = steps_per_epoch(data["n_train"], spec["batch_size"])
        if spec["steps"] % per_epoch:
            raise ConfigError(
                f"transfer.steps: {spec['steps']} is not a multiple of the {per_epoch} steps of one epoch of "
                f"{name!r} (n_train {data['n_train']}, batch_size {spec['batch_size']}); the trainer counts epochs"
            )
        if spec["coord_check"]["steps"] * spec["batch_size"] > data["n_train"]:
            raise ConfigError(
                f"transfer.coord_check.steps: {spec['coord_check']['steps']} steps of {spec['batch_size']} inputs "
                f"need more than the {data['n_train']} training inputs of {name!r}"
            )
        if spec["coord_check"]["n_inputs"] > data["n_test"]:
            raise ConfigError(f"transfer.coord_check.n_inputs: {spec['coord_check']['n_inputs']} is more than the "
                              f"{data['n_test']} test inputs of {name!r}")
    for i, entry in enumerate(spec["parametrisations"]):
        where = f"transfer.parametrisations[{i}] ({entry['name']})"
        if entry.get("adam_eps_depth_exponent", 0.0) != 0.0:
            raise ConfigError(
                f"{where}.adam_eps_depth_exponent: {entry['adam_eps_depth_exponent']} asks for Adam's ε ∝ "
                f"L^{entry['adam_eps_depth_exponent']}, but the trainer's ε is fixed (training/train.py ADAM_EPS); "
                "set 0 (docs/maths.md §9 says what this changes)"
            )
        if entry["set"].get("optimizer", spec["base"].get("optimizer", "adam")) not in ("adam", "sgd"):
            raise ConfigError(f"{where}.set.optimizer: the trainer has adam and sgd")
        for block in spec["blocks"]:
            for dataset in spec["datasets"]:
                _experiment(spec, entry, block, dataset, where)


def cells(spec: dict, datasets: dict) -> dict[str, Cell]:
    """Every cell of the study, by name (checked first)."""
    check_spec(spec, datasets)
    out = {}
    for entry in spec["parametrisations"]:
        for block in spec["blocks"]:
            for dataset in spec["datasets"]:
                name = cell_name(entry["name"], block, dataset)
                out[name] = Cell(
                    name=name, parametrisation=entry["name"], label=entry.get("label", entry["name"]), block=block,
                    dataset=dataset, experiment=_experiment(spec, entry, block, dataset, ""),
                    lr_log2=tuple(float(k) for k in lr_grid(spec)), depths=tuple(sorted(spec["depths"])),
                    steps=int(spec["steps"]), coord_steps=int(spec["coord_check"]["steps"]),
                    coord_lr_log2=float(spec["coord_check"]["lr_log2"]),
                    coord_inputs=int(spec["coord_check"]["n_inputs"]),
                )
    return out


def cell_width(cell: Cell, datasets: dict) -> int:
    """The widest layer of a cell's networks (the data width, or the two-matrix hidden width)."""
    d = network_width(datasets[cell.dataset])
    return max(d, cell.experiment.get("hidden_width") or 0)


# -- training ------------------------------------------------------------------------------


def _final(history: np.ndarray) -> np.ndarray:
    """The last epoch's value per seed (NaN where the seed did not run it)."""
    history = np.asarray(history, dtype=float)
    return history[:, -1] if history.shape[1] else np.full(history.shape[0], np.nan)


def run_rows(cell: Cell, result, depth: int, lr_log2: float, cpu_s: float) -> list[dict]:
    """The per-run rows of one trained ensemble: a diverged seed has no loss (NaN), never a number."""
    from ..training.train import scaled_lr

    cfg = result.metadata["config"]
    train, test = _final(result.histories["train_loss"]), _final(result.histories["test_loss"])
    rows = []
    for s, status in enumerate(result.status):
        diverged = status == "diverged" or not np.isfinite(train[s])
        rows.append({**cell.labels(), "depth": depth, "lr_log2": lr_log2, "lr_base": 2.0**lr_log2,
                     "lr": scaled_lr(cfg, depth), "seed": int(result.seeds[s]),
                     "status": "diverged" if diverged else str(status), "diverged": bool(diverged),
                     "train_loss": np.nan if diverged else float(train[s]),
                     "test_loss": np.nan if diverged else float(test[s]),
                     "reason": str(result.stop_reason[s]) if diverged else "",
                     "steps": cell.steps, "engine": result.metadata["engine"], "cpu_s": cpu_s / len(result.status)})
    return rows


def _hidden_states(weights: dict, cfg: dict, x: np.ndarray):
    """h_0..h_L (L+1, S, N, d) of the networks ``weights`` (seed-major, as on disk) on inputs x."""
    import torch

    from ..training.resnet import ResNetEnsemble

    net = ResNetEnsemble.from_numpy(weights["A"], weights["b"], weights["delta"], cfg["delta"], cfg["activation"],
                                    cfg["alpha"], V=weights.get("V"))
    with torch.no_grad():
        return net.trajectory(torch.as_tensor(x, dtype=torch.float64)).h.numpy()


def coordinate_check(cell: Cell, depth: int, data: dict, *, base_seed: int, engine: str, dtype: str,
                     device: str) -> list[dict]:
    """RMS over inputs, coordinates and seeds of h_l(after) − h_l(initial) at l = L/4, L/2, L, after
    ``coord_steps`` steps of the trainer at the base rate 2^coord_lr_log2 (the parametrisation's
    rule applied): the first coord_steps × batch_size training inputs, one epoch."""
    from ..training.train import train_ensemble

    n = cell.coord_steps * cell.experiment["batch_size"]
    subset = {"x_train": data["x_train"][:n], "y_train": data["y_train"][:n],
              "x_test": data["x_test"], "y_test": data["y_test"]}
    exp = cell.run_config(cell.coord_lr_log2, n)
    exp["max_epochs"] = 1
    result = train_ensemble(f"transfer-{cell.name}", exp, depth, subset, base_seed=base_seed, device=device,
                            dtype=dtype, engine=engine, progress=False)
    cfg = result.metadata["config"]
    x = np.asarray(data["x_test"][: cell.coord_inputs], dtype=np.float64)
    before = _hidden_states(result.initial_weights, cfg, x)
    after = _hidden_states(result.weights, cfg, x)
    keep = np.isfinite(after).all(axis=(0, 2, 3)) & (result.status != "diverged")
    rows = []
    for fraction in COORD_FRACTIONS:
        layer = max(1, int(round(fraction * depth)))
        change = (after[layer] - before[layer])[keep]
        rows.append({**cell.labels(), "depth": depth, "fraction": fraction, "layer": layer,
                     "lr_log2": cell.coord_lr_log2, "steps": cell.coord_steps,
                     "rms_change": float(np.sqrt(np.mean(change**2))) if keep.any() else np.nan,
                     "rms_h": float(np.sqrt(np.mean(before[layer][keep] ** 2))) if keep.any() else np.nan,
                     "n_networks": int(keep.sum())})
    return rows


def train_cell(cell: Cell, data: dict, out: str | Path, *, base_seed: int = 0, engine: str = "auto",
               dtype: str = "float32", device: str = "cpu", progress=None) -> dict:
    """Train every (depth, learning rate) of one cell and write into the folder ``out``:

    - ``runs.csv``: one row per (depth, learning rate, seed) with its final training and test loss
      (NaN where it diverged), status, reason and CPU seconds;
    - ``optimum/depth_{L}.npz``: the networks trained at the grid's best rate of that depth
      (:func:`.optimum.grid_optimum`), as the trainer writes them (with their initial weights);
    - ``coord_check.csv``: the depth coordinate check (:func:`coordinate_check`);
    - ``cost.csv``: CPU and wall seconds per depth.

    Returns the cost rows."""
    from ..training.train import save_result, train_ensemble

    out = Path(out)
    n_train = len(data["x_train"])
    rows, coords, cost = [], [], []
    for depth in cell.depths:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        results, losses = [], []
        for k in cell.lr_log2:
            c0 = time.process_time()
            result = train_ensemble(f"transfer-{cell.name}", cell.run_config(k, n_train), depth, data,
                                    base_seed=base_seed, device=device, dtype=dtype, engine=engine, progress=False)
            part = run_rows(cell, result, depth, k, time.process_time() - c0)
            rows += part
            results.append(result)
            losses.append([r["train_loss"] for r in part])
            if progress:
                progress(f"{cell.name} L={depth} lr=2^{k:g}: {[r['status'] for r in part]}")
        best = grid_optimum(np.asarray(losses, dtype=float), np.asarray(cell.lr_log2))
        if best is not None:
            save_result(out / "optimum" / f"depth_{depth}.npz", results[best])
        coords += coordinate_check(cell, depth, data, base_seed=base_seed, engine=engine, dtype=dtype, device=device)
        cost.append({**cell.labels(), "depth": depth, "runs": len(cell.lr_log2), "seeds": cell.experiment["seeds"],
                     "steps": cell.steps, "engine": results[0].metadata["engine"],
                     "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
                     "optimum_lr_log2": cell.lr_log2[best] if best is not None else np.nan})
    write_csv(out / "runs.csv", pd.DataFrame(rows, columns=RUN_COLUMNS))
    write_csv(out / "coord_check.csv", pd.DataFrame(coords))
    write_csv(out / "cost.csv", pd.DataFrame(cost))
    return {"rows": rows, "coords": coords, "cost": cost}


# -- what the rules of workflow/rules/transfer.smk ask -------------------------------------------


def workflow_cells(spec: dict, datasets: dict) -> tuple[dict[str, Cell], str | None]:
    """The cells of a config, or none and the reason when the study cannot run with it: a config
    that does not ask for the study is not refused for it (``enabled`` false: the reason is kept
    for the moment the target is asked for)."""
    try:
        return cells(spec, datasets), None
    except ConfigError as exc:
        if spec["enabled"]:
            raise
        return {}, str(exc)


def cell_folders(study: dict[str, Cell], problem: str | None) -> list[str]:
    """The training folders of every cell (the analysis' input); the reason, when there are none."""
    if problem:
        raise ConfigError(problem)
    return [f"results/transfer/train/{name}" for name in study]


def runtime_minutes(cell: Cell, datasets: dict, attempt: int = 1) -> int:
    """Minutes for one cell's job: three times a cost model in layers × steps × rates × seeds ×
    squared width (measured: 0.8e-7 to 3e-7 CPU-s per unit in the two-matrix block, less in the
    compiled one-matrix engine), ten minutes of start-up, doubled on every retry."""
    width = cell_width(cell, datasets)
    work = sum(cell.depths) * cell.steps * len(cell.lr_log2) * cell.experiment["seeds"]
    return int((10 + 3 * work * max(width, 10) ** 2 * 3e-7 / 60) * attempt)
