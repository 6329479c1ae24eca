"""Checks on the config that a JSON Schema cannot express, and the depth grid.

Every error is one sentence naming the key and the value, raised before any job runs.
"""

from __future__ import annotations

import collections.abc
import copy
import difflib
import functools
import math
from pathlib import Path

from .dataset_files import missing_source, url_problem

#: The JSON Schema of the config (defaults live there and only there). It ships inside the
#: package; the workflow validates its config against this same file (workflow/rules/common.smk).
SCHEMA_PATH = Path(__file__).resolve().with_name("config.schema.yaml")
#: Fewest depths a log-log fit against depth is allowed to rest on.
MIN_FIT_DEPTHS = 3
#: Width of the random feature map that embeds image datasets (docs/maths.md §2).
FEATURE_DIM = 25


#: Initialisations of V that fit each residual block (docs/maths.md §1): the two-matrix block
#: draws V by the law of ``init`` or sets it to zero; the one-matrix block has no V.
V_INITS = {"one-matrix": ("law",), "two-matrix": ("law", "zero")}


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key."""


def check_experiment(exp: dict, where: str) -> None:
    """Cross-key checks of one experiment (schema-valid): its initialisation fits its block."""
    block = exp.get("block", "one-matrix")
    v_init = exp.get("v_init", "law")
    if v_init not in V_INITS[block]:
        raise ConfigError(
            f"{where}.v_init: {v_init!r} does not fit the {block} block; choose one of "
            f"{', '.join(V_INITS[block])} (V_k exists only in the two-matrix block h + δ V σ(W h + b))"
        )


def experiment_device(config: dict, exp: dict) -> str:
    """The training device of one experiment (fully connected or convolutional) of a validated
    config: its own ``device`` where it sets one, else the config's (the schema's rule)."""
    return exp["device"] if "device" in exp else config["device"]


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


def network_width(dataset: dict) -> int:
    """Width d of the fully connected networks trained on a ``datasets:`` entry: the
    synthetic and nonlinear data's ``dim``, the feature map's width for images."""
    return dataset["dim"] if dataset["kind"] in ("synthetic", "nonlinear") else FEATURE_DIM


def check_config(config: dict) -> None:
    """Raise :class:`ConfigError` for the first value that cannot work.

    The analysis selections are resolved on a copy with the schema defaults filled in.
    """
    datasets = config["datasets"]
    for name, spec in datasets.items():
        if spec["kind"] in ("mnist", "cifar10"):
            label = {"mnist": "MNIST", "cifar10": "CIFAR-10"}[spec["kind"]]
            if "path" not in spec:
                raise ConfigError(f"datasets.{name}.path is required for kind {spec['kind']!r}")
            if spec.get("download"):
                if not spec.get("urls"):
                    raise ConfigError(f"datasets.{name}.urls: download is true but no archive is given")
                if url_problem(spec):
                    raise ConfigError(f"datasets.{name}.urls: {url_problem(spec)}")
            elif not Path(spec["path"]).is_dir():
                raise ConfigError(
                    f"datasets.{name}.path: {label} folder {spec['path']!r} does not exist "
                    "(put the files there, or set download: true to fetch the archives of urls)"
                )
            elif missing_source(spec):
                raise ConfigError(
                    f"datasets.{name}.path: {label} file {missing_source(spec)} is not in {spec['path']!r} "
                    "(put it there, or set download: true to fetch the archives of urls)"
                )
        if spec["kind"] == "digits" and spec["n_train"] + spec["n_test"] > 1797:
            raise ConfigError(
                f"datasets.{name}: n_train + n_test = {spec['n_train'] + spec['n_test']} exceeds "
                "the 1797 scikit-learn digits"
            )
    enabled = [n for n, e in config["experiments"].items() if e.get("enabled", True)]
    enabled += [n for n, e in (config.get("conv_experiments") or {}).items() if e.get("enabled", True)]
    if not enabled:
        raise ConfigError("experiments: no experiment is enabled")
    for name, exp in config["experiments"].items():
        where = f"experiments.{name}"
        if exp["dataset"] not in datasets:
            raise ConfigError(
                f"{where}.dataset: {exp['dataset']!r} is not one of the datasets {sorted(datasets)}"
            )
        if datasets[exp["dataset"]]["kind"] == "cifar10":
            raise ConfigError(f"{where}.dataset: {exp['dataset']!r} holds images; it serves conv_experiments only")
        depths = exp["depths"]
        if isinstance(depths, dict) and depths["min"] > depths["max"]:
            raise ConfigError(f"{where}.depths: min {depths['min']} is larger than max {depths['max']}")
        grid = depth_grid(depths)
        if len(grid) < MIN_FIT_DEPTHS:
            raise ConfigError(
                f"{where}.depths: the grid {grid} has {len(grid)} depth(s); an exponent needs at least {MIN_FIT_DEPTHS}"
            )
        check_experiment(exp, where)
        if exp.get("block", "one-matrix") != "one-matrix":
            raise ConfigError(
                f"{where}.block: {exp['block']!r} networks are trained by the training-side phase diagram only "
                "(the scaling stage reads the one-matrix block h + δ σ(A h + b))"
            )
        n_train, batch = datasets[exp["dataset"]]["n_train"], exp.get("batch_size", 32)
        if batch > n_train:
            raise ConfigError(f"{where}.batch_size: {batch} is larger than n_train = {n_train} of dataset {exp['dataset']!r}")
        if exp.get("shuffle") == "original-defect":
            if n_train % batch:
                raise ConfigError(
                    f"{where}.batch_size: {batch} must divide n_train = {n_train} for shuffle 'original-defect'"
                )
    for name, exp in (config.get("conv_experiments") or {}).items():
        where = f"conv_experiments.{name}"
        spec = datasets.get(exp["dataset"])
        if spec is None or spec["kind"] != "cifar10":
            cifar = sorted(n for n, d in datasets.items() if d["kind"] == "cifar10")
            raise ConfigError(f"{where}.dataset: {exp['dataset']!r} is not a dataset of kind cifar10 ({cifar})")
        if len(set(exp["depths"])) < MIN_FIT_DEPTHS:
            raise ConfigError(f"{where}.depths: {exp['depths']} has fewer than {MIN_FIT_DEPTHS} depths")
        if exp.get("batch_size", 128) > spec["n_train"]:
            raise ConfigError(f"{where}.batch_size: {exp.get('batch_size', 128)} is larger than n_train = {spec['n_train']}")
        fit_min = exp.get("fit_min_depth", 8)
        if sum(d >= fit_min for d in set(exp["depths"])) < MIN_FIT_DEPTHS:
            raise ConfigError(f"{where}.fit_min_depth: {fit_min} leaves fewer than {MIN_FIT_DEPTHS} depths to fit")
    check_selections(with_schema_defaults(copy.deepcopy(config)))


# -- schema errors in one or two lines ----------------------------------------------------


@functools.lru_cache(maxsize=8)
def _read_schema(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The config schema as a dict: read once per file, on first use (never at import time),
    and handed out as a copy, so that defaults filled into a config share nothing with it."""
    return copy.deepcopy(_read_schema(Path(path).resolve()))


def _key_path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "config"


def _specific(error):
    """The most specific error of a oneOf/anyOf: the branch whose type matches the value."""
    while error.context:
        same_type = [e for e in error.context if e.validator != "type"]
        if not same_type:  # the value has the type of no branch
            break
        error = max(same_type, key=lambda e: len(e.absolute_path))
    return error


def describe_schema_error(error) -> str:
    """One sentence naming the key, what is wrong and what is allowed."""
    error = _specific(error)
    where = _key_path(error.absolute_path)
    value, rule = error.instance, error.validator
    if rule == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = [k for k in value if k not in allowed] if isinstance(value, dict) else []
        key = unknown[0] if unknown else "?"
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"allowed keys: {', '.join(allowed)}"
        if not allowed:  # free-form mapping whose values failed their own schema
            return f"{where}.{key}: {error.message.splitlines()[0][:200]}"
        return f"{where}: unknown key `{key}`; {hint}"
    if rule == "enum":
        return f"{where}: {value!r} is not allowed; choose one of {', '.join(map(str, error.validator_value))}"
    if rule == "required":
        missing = [k for k in error.validator_value if k not in value]
        return f"{where}: the required key `{missing[0] if missing else '?'}` is missing"
    if rule == "type":
        return f"{where}: {value!r} is not of type {error.validator_value}"
    bounds = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    if rule in bounds:
        return f"{where}: {value!r} must be {bounds[rule]} {error.validator_value}"
    if rule in ("oneOf", "anyOf"):
        described = error.schema.get("description", "")
        return f"{where}: {value!r} has none of the allowed forms" + (f" ({described})" if described else "")
    return f"{where}: {error.message.splitlines()[0][:200]}"


def schema_error(config: dict, schema: dict | None = None) -> str | None:
    """The first schema violation of ``config`` as one sentence, or None if it is valid."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema or load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    return describe_schema_error(errors[0]) if errors else None


def with_schema_defaults(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config`` and fill in every schema default, in place (as Snakemake's validate does)."""
    from jsonschema import Draft202012Validator, validators

    message = schema_error(config, schema)
    if message:
        raise ConfigError(message)
    base = Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        for name, sub in properties.items():
            if "default" in sub and isinstance(instance, dict):
                instance.setdefault(name, sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    filler = validators.extend(base, {"properties": set_defaults})
    for _ in filler(schema or load_schema()).iter_errors(config):
        pass
    return config


def load_configfiles(paths) -> dict:
    """Config files merged in order as Snakemake merges ``--configfile`` files, validated and
    with every schema default filled in."""
    import yaml

    config: dict = {}
    for path in paths:
        merge_config(config, yaml.safe_load(Path(path).read_text()) or {})
    return with_schema_defaults(config)


def merge_config(config: dict, overwrite: dict) -> dict:
    """Merge ``overwrite`` into ``config`` in place, mapping by mapping, as Snakemake merges
    its config files (``snakemake.utils.update_config``): a later file's value replaces an
    earlier one, except that two mappings merge key by key."""

    def merge(into, values):
        for key, value in values.items():
            if not isinstance(into, collections.abc.Mapping):
                into = {}
            into[key] = merge(into.get(key, {}), value) if isinstance(value, collections.abc.Mapping) else value
        return into

    merge(config, overwrite)
    return config


def section_schema(section: str, schema: dict | None = None) -> dict:
    """The sub-schema of a dotted config section such as ``limits.fit``; ``name[]`` stands for
    one item of the list ``name`` (``fbsde.convergence.cases[]``)."""
    node = schema or load_schema()
    for part in section.split("."):
        try:
            node = node["properties"][part.removesuffix("[]")]
            if part.endswith("[]"):
                node = node["items"]
        except KeyError:
            raise KeyError(f"the config schema has no section {section!r}") from None
    return node


def section_settings(section: str, values: dict | None = None, schema: dict | None = None) -> dict:
    """A config section with every default of the schema filled in: the one accessor through
    which library code reads its settings, so that a call outside the workflow (a test, a
    notebook) behaves as the workflow does. ``values`` is not modified."""
    filled = copy.deepcopy(values) if values is not None else {}
    sub = section_schema(section, schema)
    message = schema_error(filled, sub)
    if message:  # the message starts with the key path inside the section ("config" for its root)
        raise ConfigError(section + (message[len("config"):] if message.startswith("config") else "." + message))
    return with_schema_defaults(filled, sub)


def experiment_defaults(schema: dict | None = None) -> dict:
    """The default of every optional key of an experiment, from the schema."""
    properties = (schema or load_schema())["properties"]["experiments"]["additionalProperties"]["properties"]
    return {key: spec["default"] for key, spec in properties.items() if "default" in spec}


def conv_experiment_defaults(schema: dict | None = None) -> dict:
    """The default of every optional key of a convolutional experiment, from the schema."""
    properties = (schema or load_schema())["properties"]["conv_experiments"]["additionalProperties"]["properties"]
    return {key: spec["default"] for key, spec in properties.items() if "default" in spec}


# -- which depths each analysis step uses -----------------------------------------------


def analysis_selections(config: dict, exp: str) -> dict[str, list[int]]:
    """The depths every analysis selection of one experiment resolves to (validated config).

    Keys name the config key that makes the selection: ``scaling.fit`` (every exponent fit),
    ``scaling.fit.min_depth_by_statistic.<statistic>``, ``scaling.decomposition``,
    ``scaling.paths``, ``limits.fit`` and ``fbsde.trained`` (its slopes against depth).
    """
    grid = depth_grid(config["experiments"][exp]["depths"])
    scaling = config["scaling"]
    fit = scaling["fit"]
    high = fit["max_depth"] if fit["max_depth"] is not None else math.inf
    out = {"scaling.fit": [d for d in grid if fit["min_depth"] <= d <= high]}
    for statistic, low in fit["min_depth_by_statistic"].items():
        out[f"scaling.fit.min_depth_by_statistic.{statistic}"] = [d for d in grid if low <= d <= high]
    decomposition = scaling["decomposition"]
    low = max(decomposition["min_depth"], decomposition["n_cells"])
    out["scaling.decomposition"] = [d for d in grid if d >= low]
    out["scaling.paths"] = grid[-scaling["paths"]["n_depths"]:] if scaling["paths"]["n_depths"] <= len(grid) else []
    n_limits = config["limits"]["fit"]["n_depths"]
    out["limits.fit"] = grid[-n_limits:] if n_limits <= len(grid) else []
    out["fbsde.trained"] = [d for d in grid if d >= config["fbsde"]["trained"]["min_fit_depth"]]
    return out


#: The fewest depths each selection needs, and the key that sets it.
SELECTION_NEEDS = {
    "scaling.fit": (MIN_FIT_DEPTHS, "min_depth / max_depth"),
    "scaling.decomposition": (1, "min_depth / n_cells"),
    "scaling.paths": (1, "n_depths"),
    "limits.fit": (1, "n_depths"),
    "fbsde.trained": (MIN_FIT_DEPTHS, "min_fit_depth"),
}


def check_selections(config: dict) -> None:
    """Refuse an analysis selection that resolves to fewer depths than it needs."""
    for exp, spec in config["experiments"].items():
        if not spec.get("enabled", True):
            continue
        grid = depth_grid(spec["depths"])
        for name, depths in analysis_selections(config, exp).items():
            if name.startswith("scaling.fit.min_depth_by_statistic."):
                need, key = MIN_FIT_DEPTHS, name.rsplit(".", 2)[-1]
                section = "scaling.fit.min_depth_by_statistic"
            else:
                need, key = SELECTION_NEEDS[name]
                section = name
            if name in ("scaling.paths", "limits.fit") and not depths:
                raise ConfigError(
                    f"{section}.{key}: asks for more depths than experiment {exp!r} trains ({len(grid)}: {grid})"
                )
            if len(depths) < need:
                raise ConfigError(
                    f"{section}.{key}: selects {len(depths)} depth(s) {depths} of experiment {exp!r} "
                    f"(grid {grid[0]}..{grid[-1]}, {len(grid)} depths); at least {need} needed"
                )
            if name == "scaling.fit" and len(depths) < config["scaling"]["robustness"]["window_depths"]:
                raise ConfigError(
                    f"scaling.robustness.window_depths: {config['scaling']['robustness']['window_depths']} is "
                    f"more than the {len(depths)} depths {depths} that scaling.fit selects of experiment {exp!r}"
                )
