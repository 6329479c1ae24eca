"""Checkpoint files → one :class:`TrainedWeights` per depth, in the paper's convention.

Every file is read and checked before anything is computed: each mapped tensor present, the
block indices of every role contiguous and equal, one shape for every block (:mod:`.tensors`),
finite weights in every network that enters a fit, and at least three distinct depths per
experiment. The files come from :mod:`.files`; weights with nothing to fit or never trained
are told by :mod:`.checks`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..cnn.operator_norms import operator_norm
from ..config import MIN_FIT_DEPTHS
from ..scaling.exponents import usable
from ..scaling.weights import TrainedWeights, layer_norms, training_labels
from .checks import DEGENERATE_TEXT, degenerate, initialisation_law
from .maps import AnalyseError, Map
from .readers import read_checkpoint
from .tensors import read_bias, read_delta, read_weights

#: Quantities built from b; left out of the tables when the map gives no b.
BIAS_QUANTITIES = ("b", "m", "m_abs")


@dataclass
class Network:
    """The networks of one file (one, or several seeds along a seed axis), paper's convention."""

    path: str
    experiment: str
    depth: int
    A: np.ndarray  # (S, L, ...)
    b: np.ndarray  # (S, L, ...)
    delta: np.ndarray  # (S, L)
    delta_type: str
    status: np.ndarray  # (S,)
    seeds: np.ndarray | None  # None: numbered by file order within the depth
    labels: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)  # two-matrix block: W (S, L, m, d) and V (S, L, d, m)
    warnings: list = field(default_factory=list)  # sentences about this file, each naming it


def _file_groups(path: Path, m: Map) -> dict:
    if m.files is None:
        return {}
    match = m.files.search(path.as_posix())
    if match is None:
        raise AnalyseError(f"{path}: the path does not match the map's files pattern {m.files.pattern!r}")
    return {k: v for k, v in match.groupdict().items() if v is not None}


def _metadata(meta: dict, key: str, path) -> object:
    if key not in meta:
        raise AnalyseError(f"{path}: from_metadata: the file has no metadata entry {key!r} "
                           "(only this workflow's training outputs carry it)")
    return meta[key]


def _integer(text, what: str, path) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise AnalyseError(f"{path}: files: the {what} group matched {text!r}, not an integer") from None


def _check_operator_norm(m: Map, A: np.ndarray, path) -> None:
    """The operator norm of convolution kernels needs their input size, a multiple of the stride."""
    if m.norm == "operator" and A.ndim == 6:
        if m.input_size is None:
            raise AnalyseError(f"{m.source}: input_size: required for the operator norm of the convolution "
                               f"kernels of tensors.A ({path})")
        if m.input_size % m.stride:
            raise AnalyseError(f"{m.source}: input_size: {m.input_size} is not a multiple of stride {m.stride}")


def _seeds(arrays: dict, m: Map, groups: dict, S: int, path) -> np.ndarray | None:
    """The seed of each network: from the map's seeds array (a seed axis), from the file name's
    seed group, or None (numbered by file order within the depth)."""
    seeds = None
    if m.seed_axis and m.seeds is not None:
        if m.seeds not in arrays:
            raise AnalyseError(f"{path}: seeds: the file has no array {m.seeds!r}")
        seeds = np.asarray(arrays[m.seeds]).reshape(-1)
        if len(seeds) != S or not np.issubdtype(seeds.dtype, np.integer):
            raise AnalyseError(f"{path}: seeds: {m.seeds!r} must hold {S} integers, got {seeds.dtype} {seeds.shape}")
    elif "seed" in groups:
        seeds = np.array([_integer(groups["seed"], "seed", path)])
    return seeds


def _status(arrays: dict, m: Map, S: int, path) -> np.ndarray:
    """The final status of each network: the map's status array, or converged."""
    if m.status is None:
        return np.full(S, "converged")
    if m.status not in arrays:
        raise AnalyseError(f"{path}: status: the file has no array {m.status!r}")
    status = np.asarray(arrays[m.status]).astype(str).reshape(-1)
    if len(status) != S:
        raise AnalyseError(f"{path}: status: {m.status!r} has {len(status)} entries for {S} networks")
    return status


def _experiment_and_depth(meta: dict, groups: dict, m: Map, L: int, delta_type: str,
                          path) -> tuple[str, int, str, dict]:
    """Experiment, depth, δ type and labels: from the file's metadata (``from_metadata``) or the
    map's name and the number of blocks, the file name's groups overriding both."""
    labels = {}
    if m.from_metadata:
        experiment = str(_metadata(meta, "experiment", path))
        depth = int(_metadata(meta, "depth", path))
        try:
            described = training_labels(meta)
        except ValueError as exc:
            raise AnalyseError(f"{path}: from_metadata: {exc} (only this workflow's training outputs "
                               "carry it)") from None
        delta_type = described["delta_type"]
        labels = {k: described[k] for k in ("dataset", "activation")}
    else:
        experiment, depth = m.name, L
    if "experiment" in groups:
        experiment = groups["experiment"]
    if "depth" in groups:
        depth = _integer(groups["depth"], "depth", path)
    return experiment, depth, delta_type, labels


def _check_finite(checks: list, included: np.ndarray, S: int, L: int, path) -> None:
    """Finite weights in every block of every network that enters a fit: ``checks`` holds
    (values, sequence, rule) per role, a role without a sequence unchecked."""
    for values, seq, rule in checks:
        if seq is None:
            continue
        bad = ~np.isfinite(values.reshape(S, L, -1)).all(axis=2) & included[:, None]
        if bad.any():
            s, k = np.argwhere(bad)[0]
            key = seq.keys[k] if seq.blocks is not None else seq.keys[0]
            seed_text = f", seed {s}" if S > 1 else ""
            raise AnalyseError(f"{path}: {key!r} ({rule.key}, block {k}{seed_text}) has non-finite weights")


def _mark_degenerate(A: np.ndarray, b: np.ndarray, delta: np.ndarray, status: np.ndarray,
                     seeds: np.ndarray | None, path) -> tuple[np.ndarray, list[str]]:
    """The status with all-zero and constant networks (:func:`degenerate`) marked as such, and a
    sentence per kind naming the file (and the seeds, for several networks in one file)."""
    S = A.shape[0]
    warnings = []
    kinds = degenerate(A, b, delta)
    for kind in ("all-zero", "constant"):
        which = [s for s in range(S) if kinds[s] == kind]
        if not which:
            continue
        status = status.copy()
        status[which] = kind
        named = (f"seed{'s' * (len(which) > 1)} {', '.join(str(seeds[s] if seeds is not None else s) for s in which)}"
                 if S > 1 else "")
        warnings.append(f"{path}: {named + ': ' if named else ''}{DEGENERATE_TEXT[kind]}; left out of the fits "
                        f"(status {kind!r}).")
    return status, warnings


def read_network(path, m: Map) -> Network:
    """The mapped layer sequences of one file, checked and in the paper's convention.

    An all-zero or constant network (:func:`degenerate`) gets that as its status, which no fit
    admits, and a sentence naming the file; the others' statistics are fitted as usual."""
    path = Path(path)
    groups = _file_groups(path, m)
    arrays, meta = read_checkpoint(path, m.format, m.container)
    A, parts, rule_A = read_weights(arrays, m, path)
    S, L = A.values.shape[:2]
    bseq, b = read_bias(arrays, m, A, path)
    delta, delta_type, dseq = read_delta(arrays, m, A, path)
    _check_operator_norm(m, A.values, path)
    seeds = _seeds(arrays, m, groups, S, path)
    status = _status(arrays, m, S, path)
    experiment, depth, delta_type, labels = _experiment_and_depth(meta, groups, m, L, delta_type, path)
    if m.branch_scale is not None:  # the forward pass's multiplier: δ_k of the analysis includes it
        delta = delta * m.scale(depth)
        if delta_type == "none":
            delta_type = "fixed"  # known, not trained: δ is no quantity of its own
    labels = {"dataset": "", "activation": "", **labels, **m.labels, "delta": delta_type}

    included = np.isin(status, list(m.settings.include_status))
    checks = [(A.values, A, rule_A), (b, bseq, m.tensors.get("b")), (delta, dseq, m.tensors.get("delta"))]
    checks += [(seq.values, seq, m.tensors[role]) for role, seq in parts.items()]
    _check_finite(checks, included, S, L, path)
    status, warnings = _mark_degenerate(A.values, b, delta, status, seeds, path)
    return Network(str(path), experiment, depth, A.values, b, delta, delta_type, status, seeds, labels,
                   parts={role: seq.values for role, seq in parts.items()}, warnings=warnings)


def untrained(net: Network) -> list[str | None]:
    """Per network of a file: why its weights look untrained (:func:`initialisation_law` of A, or
    of both W and V for the two-matrix block), or None."""
    out = []
    for s in range(net.A.shape[0]):
        if net.parts:
            laws = {role: initialisation_law(X[s]) for role, X in net.parts.items()}
            out.append("; ".join(f"{role}: {law}" for role, law in laws.items()) if all(laws.values()) else None)
        else:
            out.append(initialisation_law(net.A[s]))
    return out


def _role(name: str, m: Map) -> str:
    """The map key of a role in messages: W/V stand for the A of a two-matrix block."""
    return "W/V" if name == "A" and m.two_matrix else name


def assemble(networks: list[Network], m: Map) -> dict[str, list[TrainedWeights]]:
    """One :class:`TrainedWeights` per (experiment, depth), the files of a depth as its seeds."""
    by_cell: dict[tuple[str, int], list[Network]] = defaultdict(list)
    for net in networks:
        by_cell[net.experiment, net.depth].append(net)
    out: dict[str, list[TrainedWeights]] = defaultdict(list)
    for (experiment, depth), nets in sorted(by_cell.items()):
        first = nets[0]
        for net in nets[1:]:
            for name in ("A", "b"):
                if getattr(net, name).shape[1:] != getattr(first, name).shape[1:]:
                    raise AnalyseError(
                        f"{net.path}: tensors.{_role(name, m)}: blocks of shape {getattr(net, name).shape[1:]} but "
                        f"{first.path} at the same depth {depth} has {getattr(first, name).shape[1:]}")
        explicit = [n.seeds is not None for n in nets]
        if any(explicit) and not all(explicit):
            raise AnalyseError(f"{nets[explicit.index(False)].path}: no seed number, while {first.path} at the "
                               f"same depth has one")
        if all(explicit):
            seeds = np.concatenate([n.seeds for n in nets]).astype(int)
            values, counts = np.unique(seeds, return_counts=True)
            if (counts > 1).any():
                twice = int(values[counts > 1][0])
                where = [n.path for n in nets if twice in n.seeds]
                raise AnalyseError(f"{where[-1]}: seed {twice} of experiment {experiment!r} at depth {depth} "
                                   f"is also in {where[0]}")
        else:
            seeds = np.arange(sum(n.A.shape[0] for n in nets))
        out[experiment].append(TrainedWeights(
            A=np.concatenate([n.A for n in nets]),
            b=np.concatenate([n.b for n in nets]),
            delta=np.concatenate([n.delta for n in nets]),
            seeds=seeds,
            status=np.concatenate([n.status for n in nets]),
            experiment=experiment,
            depth=depth,
            delta_type=first.delta_type,
            activation=first.labels["activation"],
            dataset=first.labels["dataset"],
        ))
    for experiment, ws in out.items():
        _check_experiment(experiment, ws, [n for n in networks if n.experiment == experiment], m)
    return dict(out)


def _check_experiment(experiment: str, ws: list[TrainedWeights], nets: list[Network], m: Map) -> None:
    """One δ type and one block shape (one width) per experiment, and at least three depths
    in every fit window."""
    types = {n.delta_type: n.path for n in nets}
    if len(types) > 1:
        (t0, p0), (t1, p1) = list(types.items())[:2]
        raise AnalyseError(f"{p1}: tensors.delta: δ is {t1} here but {t0} in {p0} (experiment {experiment!r})")
    for name in ("A", "b"):
        shapes: dict[tuple, Network] = {}
        for net in sorted(nets, key=lambda n: n.depth):
            shapes.setdefault(getattr(net, name).shape[2:], net)
        if len(shapes) > 1:
            (s0, n0), (s1, n1) = list(shapes.items())[:2]
            raise AnalyseError(
                f"{n1.path}: tensors.{_role(name, m)}: blocks of shape {s1} at depth {n1.depth}, but {n0.path} "
                f"at depth {n0.depth} has {s0}: the networks of experiment {experiment!r} must have one block shape "
                "(one width) at every depth")
    depths = sorted(w.depth for w in ws)
    if len(depths) < MIN_FIT_DEPTHS:
        raise AnalyseError(f"experiment {experiment!r}: networks at {len(depths)} distinct depth(s) {depths} "
                           f"(files {', '.join(n.path for n in nets[:3])}{' ...' if len(nets) > 3 else ''}); "
                           f"an exponent needs at least {MIN_FIT_DEPTHS}")
    settings = m.settings
    with_usable = [w.depth for w in ws if usable_count(w, settings.include_status)]
    windows = {"analysis.fit.min_depth / max_depth": settings.window("")}
    windows.update({f"analysis.fit.min_depth_by_statistic.{s}": settings.window(s)
                    for s in settings.min_depth_by_statistic})
    for key, (low, high) in windows.items():
        inside = [d for d in with_usable if low <= d <= high]
        if len(inside) < MIN_FIT_DEPTHS:
            raise AnalyseError(f"{m.source}: {key}: selects {len(inside)} depth(s) {inside} with usable networks "
                               f"of experiment {experiment!r} (depths {depths}); at least {MIN_FIT_DEPTHS} needed")


def usable_count(w: TrainedWeights, include_status) -> int:
    """How many networks of one depth may enter a fit (the rule of the exponent fits)."""
    return int(usable(pd.DataFrame({"finite": w.finite, "status": w.status}), include_status).sum())


def layer_norm_function(m: Map):
    """The norm of every layer: Frobenius, or for ``norm: operator`` the spectral norm of
    matrices and the FFT operator norm of convolutions on ``input_size`` inputs
    (:mod:`resnet_scaling.cnn.operator_norms`); vectors and scalars keep their Euclidean norm."""
    if m.norm == "frobenius":
        return layer_norms

    def norm(X: np.ndarray) -> np.ndarray:
        per_layer = X.ndim - 2
        if per_layer == 2:
            return np.linalg.norm(X, ord=2, axis=(-2, -1))
        if per_layer == 4:
            out = np.empty(X.shape[:2])
            for s, k in np.ndindex(*X.shape[:2]):
                out[s, k] = operator_norm(X[s, k], m.input_size, m.stride)
            return out
        return layer_norms(X)

    return norm
