"""Checks on the config that a JSON Schema cannot express, and the depth grid.

Every error is one sentence naming the key and the value, raised before any job runs.
"""

from __future__ import annotations

import math
from pathlib import Path


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key."""


def depth_grid(spec) -> list[int]:
    """Depths of an experiment: an explicit list, or unique(floor(base**n)) within [min, max]."""
    if isinstance(spec, (list, tuple)):
        return sorted({int(d) for d in spec})
    lo, hi, base = int(spec["min"]), int(spec["max"]), float(spec["base"])
    depths, n = set(), 0
    while True:
        value = math.floor(base**n + 1e-9)
        if value > hi:
            break
        if value >= lo:
            depths.add(value)
        n += 1
    return sorted(depths)


def check_config(config: dict) -> None:
    """Raise :class:`ConfigError` for the first value that cannot work."""
    datasets = config["datasets"]
    for name, spec in datasets.items():
        if spec["kind"] == "mnist":
            if "path" not in spec:
                raise ConfigError(f"datasets.{name}.path is required for kind 'mnist'")
            if not Path(spec["path"]).is_dir():
                raise ConfigError(f"datasets.{name}.path: MNIST folder {spec['path']!r} does not exist")
        if spec["kind"] == "digits" and spec["n_train"] + spec["n_test"] > 1797:
            raise ConfigError(
                f"datasets.{name}: n_train + n_test = {spec['n_train'] + spec['n_test']} exceeds "
                "the 1797 scikit-learn digits"
            )
    enabled = [n for n, e in config["experiments"].items() if e.get("enabled", True)]
    if not enabled:
        raise ConfigError("experiments: no experiment is enabled")
    for name, exp in config["experiments"].items():
        where = f"experiments.{name}"
        if exp["dataset"] not in datasets:
            raise ConfigError(
                f"{where}.dataset: {exp['dataset']!r} is not one of the datasets {sorted(datasets)}"
            )
        depths = exp["depths"]
        if isinstance(depths, dict) and depths["min"] > depths["max"]:
            raise ConfigError(f"{where}.depths: min {depths['min']} is larger than max {depths['max']}")
        if not depth_grid(depths):
            raise ConfigError(f"{where}.depths: the grid {depths} contains no depth")
        if exp.get("shuffle") == "original-defect":
            n_train, batch = datasets[exp["dataset"]]["n_train"], exp.get("batch_size", 32)
            if n_train % batch:
                raise ConfigError(
                    f"{where}.batch_size: {batch} must divide n_train = {n_train} for shuffle 'original-defect'"
                )
