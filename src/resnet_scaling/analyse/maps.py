"""The map: a small YAML file that says which tensors of a checkpoint play A_k, b_k and δ_k.

No user code: every key is a value or a regular expression. A tensor is named either by a
regular expression with a named group ``block`` (one tensor per residual block, e.g.
``blocks\\.(?P<block>\\d+)\\.fc\\.weight``; the group is the block index) or by an exact name
(one stacked array whose leading axis runs over the blocks, or a single scalar δ). The keys,
their defaults and meaning are in :func:`map_schema`; ``analysis`` takes the keys of the
workflow's ``scaling`` config section that the fits use (``fit``, ``bootstrap``, ``regime``,
``include_status``, ``detrend_window``), with one difference: by default every depth given
enters the fits. A map is checked whole before any file is read, and every error is one
sentence naming the map and the key.

Two residual blocks (docs/maths.md §1): the one-matrix block ``h + δ σ(A h + b)`` maps ``A``;
the two-matrix block ``h + δ V σ(W h + b)`` maps ``W`` and ``V`` instead, and is analysed, as
the phase-diagram stage analyses it (:func:`resnet_scaling.phase_diagram.study.anchor_sequences`),
through the pair Z_k = (V_k, W_k) side by side, which plays A_k (M_k = δ_k Z_k); V and W are
reported on their own as well. ``branch_scale`` is a multiplier the forward pass applies and
no tensor holds (``h + tanh(linear(h)) / L``): the δ_k of the analysis is the mapped δ_k (1
when unmapped) times it, so that M_k = δ_k A_k is the block's effective weight.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config import load_schema, schema_error, with_schema_defaults
from ..scaling.exponents import FitSettings
from ..scaling.regime_rule import RegimeThresholds

#: Roles of the mapped tensors, in the paper's notation h ← h + δ σ(A h + b) (docs/maths.md §1).
ROLES = ("A", "b", "delta")
#: Roles of the two-matrix block h ← h + δ V σ(W h + b), mapped instead of A.
TWO_MATRIX_ROLES = ("W", "V")
#: The forms of ``branch_scale`` besides a number: the multiplier as a function of the depth L.
BRANCH_SCALES = {"1/L": lambda L: 1.0 / L, "1/sqrt(L)": lambda L: float(L) ** -0.5}
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
                "type": "object", "additionalProperties": False,
                "properties": {role: name for role in (*ROLES, *TWO_MATRIX_ROLES)},
                "description": "A (one-matrix block h + δ σ(A h + b)), or W and V (two-matrix block "
                               "h + δ V σ(W h + b)); b and delta optional.",
            },
            "branch_scale": {"description": "A multiplier of the residual branch that lives in the forward pass, "
                                            "not in a tensor: 1/L, 1/sqrt(L) or a number. The analysis's δ_k is "
                                            "the mapped δ_k (1 when unmapped) times it."},
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
    branch_scale: str | float | None = None

    @property
    def two_matrix(self) -> bool:
        """Whether the blocks are h + δ V σ(W h + b) (W and V mapped instead of A)."""
        return "W" in self.tensors

    def scale(self, depth: int) -> float:
        """The ``branch_scale`` multiplier of a network of depth L (1 without one)."""
        if self.branch_scale is None:
            return 1.0
        if isinstance(self.branch_scale, str):
            return BRANCH_SCALES[self.branch_scale](depth)
        return float(self.branch_scale)

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


def parse_branch_scale(value, source: str) -> str | float:
    """``1/L``, ``1/sqrt(L)`` (spaces ignored) or a finite non-zero number; anything else is refused."""
    accepted = "accepted forms: 1/L, 1/sqrt(L), or a number such as 0.1"
    if isinstance(value, str):
        text = re.sub(r"\s+", "", value)
        if text in BRANCH_SCALES:
            return text
        try:
            value = float(text)
        except ValueError:
            raise AnalyseError(f"{source}: branch_scale: {value!r} is not a multiplier the analysis can read; "
                               f"{accepted}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value == 0:
        raise AnalyseError(f"{source}: branch_scale: {value!r} is not a finite non-zero multiplier; {accepted}")
    return float(value)


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
    given = cfg["tensors"]
    if "A" not in given and not {"W", "V"} & set(given):
        raise AnalyseError(f"{source}: tensors: the required key `A` is missing (or `W` and `V` for a two-matrix "
                           "block h + δ V σ(W h + b))")
    if {"W", "V"} & set(given):
        if "A" in given:
            raise AnalyseError(f"{source}: tensors.A: given with tensors.W/V; map A for the one-matrix block "
                               "h + δ σ(A h + b), or W and V for the two-matrix block h + δ V σ(W h + b)")
        missing = [r for r in TWO_MATRIX_ROLES if r not in given]
        if missing:
            raise AnalyseError(f"{source}: tensors.{missing[0]}: missing; the two-matrix block h + δ V σ(W h + b) "
                               "needs both W and V")
        if cfg["norm"] == "operator":
            raise AnalyseError(f"{source}: norm: operator is not defined for the pair Z_k = (V_k, W_k) of a "
                               "two-matrix block; use frobenius")
    branch_scale = parse_branch_scale(cfg["branch_scale"], source) if "branch_scale" in cfg else None
    tensors = {role: tensor_rule(role, text, source) for role, text in given.items()}
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
        branch_scale=branch_scale,
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
