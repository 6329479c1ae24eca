"""The map: a small YAML file that says which tensors of a checkpoint play A_k, b_k and δ_k.

No user code: every key is a value or a regular expression. A tensor is named either by a
regular expression with a named group ``block`` (one tensor per residual block, e.g.
``blocks\\.(?P<block>\\d+)\\.fc\\.weight``; the group is the block index) or by an exact name
(one stacked array whose leading axis runs over the blocks, or a single scalar δ). The keys,
their defaults and meaning are in :data:`MAP_SCHEMA`; ``analysis`` takes the keys of the
workflow's ``scaling`` config section that the fits use (``fit``, ``bootstrap``, ``regime``,
``include_status``, ``detrend_window``), with one difference: by default every depth given
enters the fits. A map is checked whole before any file is read, and every error is one
sentence naming the map and the key.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config import load_schema, schema_error, with_schema_defaults
from ..scaling.exponents import FitSettings
from ..scaling.regime_rule import RegimeThresholds

#: Roles of the mapped tensors, in the paper's notation h ← h + δ σ(A h + b) (docs/maths.md §1).
ROLES = ("A", "b", "delta")
#: Named groups a ``files`` pattern may have.
FILE_GROUPS = ("experiment", "depth", "seed")
#: The ``scaling`` config keys the fits use; the rest (decomposition, paths, ...) belong to other stages.
ANALYSIS_KEYS = ("detrend_window", "include_status", "population", "fit", "bootstrap", "regime")


class AnalyseError(ValueError):
    """Input the analysis cannot use; the message names the file (or map) and the key."""


def _analysis_schema() -> dict:
    """The workflow's ``scaling`` schema restricted to the fit keys; every depth enters by default."""
    scaling = copy.deepcopy(load_schema()["properties"]["scaling"])
    scaling["properties"] = {k: v for k, v in scaling["properties"].items() if k in ANALYSIS_KEYS}
    fit = scaling["properties"]["fit"]["properties"]
    fit["min_depth"]["default"] = 1
    fit["min_depth_by_statistic"]["default"] = {}
    return scaling


def map_schema() -> dict:
    """JSON Schema of a map (defaults filled in by :func:`parse_map`)."""
    name = {"type": "string", "minLength": 1}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["tensors"],
        "properties": {
            "name": {**name, "description": "Experiment name in the tables (default: the map's file name)."},
            "files": {**name, "description": "Regular expression searched in each file's path; named groups "
                                             "experiment, depth, seed."},
            "format": {"enum": ["auto", "npz", "torch", "safetensors"], "default": "auto"},
            "container": {**name, "description": "Dotted key of the state_dict inside a saved dict, e.g. model."},
            "layout": {"enum": ["column", "row"], "default": "column",
                       "description": "column: y = A x (nn.Linear (out, in), Conv2d (out, in, k, k)); "
                                      "row: y = x A (A stored (in, out), kernels (k, k, in, out))."},
            "tensors": {
                "type": "object", "additionalProperties": False, "required": ["A"],
                "properties": {role: name for role in ROLES},
            },
            "delta_kind": {"enum": ["shared", "per_block"],
                           "description": "How δ is parametrised (default: shared if one value, else per_block)."},
            "seed_axis": {"type": "boolean", "default": False,
                          "description": "Every array has a leading axis of seeds (several networks per file)."},
            "seeds": {**name, "description": "Array of the seed numbers (with seed_axis)."},
            "status": {**name, "description": "Array of training statuses (default: every network converged)."},
            "from_metadata": {"type": "boolean", "default": False,
                              "description": "Experiment, depth, δ type and labels from the metadata of this "
                                             "workflow's training outputs (results/train/)."},
            "norm": {"enum": ["frobenius", "operator"], "default": "frobenius"},
            "input_size": {"type": "integer", "minimum": 1,
                           "description": "Spatial size n of the inputs of convolutions (norm: operator)."},
            "stride": {"type": "integer", "minimum": 1, "default": 1},
            "labels": {"type": "object", "additionalProperties": False,
                       "properties": {"activation": {"type": "string"}, "dataset": {"type": "string"}}},
            "analysis": _analysis_schema(),
        },
    }


@dataclass(frozen=True)
class TensorRule:
    """How one role is found: per block by a pattern with a ``block`` group, or one named tensor."""

    role: str
    text: str
    pattern: re.Pattern | None

    @property
    def key(self) -> str:
        return f"tensors.{self.role}"


@dataclass(frozen=True)
class Map:
    """A validated map, defaults filled in."""

    source: str
    name: str
    files: re.Pattern | None
    format: str
    container: tuple[str, ...]
    layout: str
    tensors: dict[str, TensorRule]
    delta_kind: str | None
    seed_axis: bool
    seeds: str | None
    status: str | None
    from_metadata: bool
    norm: str
    input_size: int | None
    stride: int
    labels: dict
    analysis: dict

    @property
    def settings(self) -> FitSettings:
        return FitSettings.from_config(self.analysis)

    @property
    def thresholds(self) -> RegimeThresholds:
        return RegimeThresholds.from_config(self.analysis["regime"])

    @property
    def window_fraction(self) -> float:
        return float(self.analysis["detrend_window"])


def _compile(text: str, where: str) -> re.Pattern:
    try:
        return re.compile(text)
    except re.error as exc:
        raise AnalyseError(f"{where}: {text!r} is not a regular expression ({exc})") from None


def tensor_rule(role: str, text: str, source: str) -> TensorRule:
    """A per-block pattern when ``text`` has a ``(?P<block>...)`` group, else an exact tensor name."""
    if "(?P<block>" not in text:
        return TensorRule(role, text, None)
    return TensorRule(role, text, _compile(text, f"{source}: tensors.{role}"))


def parse_map(raw, source: str = "map") -> Map:
    """Validate a map given as a dict (as read from YAML) and fill in its defaults."""
    if not isinstance(raw, dict):
        raise AnalyseError(f"{source}: a map is a YAML mapping with at least the key `tensors`")
    raw = copy.deepcopy(raw)
    raw.setdefault("analysis", {})
    schema = map_schema()
    message = schema_error(raw, schema)
    if message:
        message = re.sub(r"^config\b", "map", message)
        raise AnalyseError(f"{source}: {message}")
    cfg = with_schema_defaults(raw, schema)
    files = _compile(cfg["files"], f"{source}: files") if "files" in cfg else None
    if files is not None:
        unknown = sorted(set(files.groupindex) - set(FILE_GROUPS))
        if unknown:
            raise AnalyseError(f"{source}: files: unknown named group(s) {unknown}; allowed: {', '.join(FILE_GROUPS)}")
        if cfg["seed_axis"] and "seed" in files.groupindex:
            raise AnalyseError(f"{source}: files: a `seed` group and seed_axis: true both give the seeds; use one")
    if "seeds" in cfg and not cfg["seed_axis"]:
        raise AnalyseError(f"{source}: seeds: an array of seeds needs seed_axis: true")
    if "delta_kind" in cfg and "delta" not in cfg["tensors"]:
        raise AnalyseError(f"{source}: delta_kind: given but tensors.delta is not mapped (δ = 1)")
    tensors = {role: tensor_rule(role, text, source) for role, text in cfg["tensors"].items()}
    analysis = cfg["analysis"]
    try:
        FitSettings.from_config(analysis), RegimeThresholds.from_config(analysis["regime"])
    except (TypeError, ValueError) as exc:
        raise AnalyseError(f"{source}: analysis: {exc}") from None
    return Map(
        source=source,
        name=cfg.get("name") or Path(source).stem,
        files=files,
        format=cfg["format"],
        container=tuple(cfg["container"].split(".")) if "container" in cfg else (),
        layout=cfg["layout"],
        tensors=tensors,
        delta_kind=cfg.get("delta_kind"),
        seed_axis=cfg["seed_axis"],
        seeds=cfg.get("seeds"),
        status=cfg.get("status"),
        from_metadata=cfg["from_metadata"],
        norm=cfg["norm"],
        input_size=cfg.get("input_size"),
        stride=cfg["stride"],
        labels=dict(cfg.get("labels") or {}),
        analysis=analysis,
    )


def load_map(path) -> Map:
    """Read and validate a map file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise AnalyseError(f"{path}: map file not found") from None
    except yaml.YAMLError as exc:
        raise AnalyseError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_map(raw, str(path))
