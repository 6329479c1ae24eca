"""Mapped tensors → the paper's layer sequences A_k, b_k, δ_k, one :class:`TrainedWeights` per depth.

Every file is read and checked before anything is computed: each mapped tensor present, the
block indices of every role contiguous and equal, one shape for every block, finite weights
in every network that enters a fit, and at least three distinct depths per experiment. The
weights are converted to the column-vector convention of docs/maths.md §1 (``z = A h + b``):
a row-vector matrix (``x @ A``, stored (in, out)) is transposed, a row-vector convolution
kernel (k, k, in, out) becomes (out, in, k, k).
"""

from __future__ import annotations

import difflib
import glob
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..cnn.operator_norms import operator_norm
from ..config import MIN_FIT_DEPTHS
from ..scaling.exponents import usable
from ..scaling.weights import TrainedWeights, layer_norms, training_labels
from .maps import AnalyseError, Map, TensorRule
from .readers import read_checkpoint

#: Quantities built from b; left out of the tables when the map gives no b.
BIAS_QUANTITIES = ("b", "m", "m_abs")


@dataclass
class Sequence:
    """One role of one file: the layers (S, L, ...) and the checkpoint key of each block."""

    values: np.ndarray
    keys: list[str]
    blocks: list[int] | None  # block indices of a per-block pattern; None for a stacked array


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


def _is_numeric(x: np.ndarray) -> bool:
    return np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)


def _where(path, rule: TensorRule) -> str:
    return f"{path}: {rule.key} ({rule.text!r})"


def read_sequence(arrays: dict, rule: TensorRule, path, seed_axis: bool) -> Sequence:
    """The layers of one role, seed-major (S, L, ...), from per-block tensors or one stacked array.

    The block indices of A must be contiguous; those of b and δ must be A's (:func:`_check_blocks`).
    """
    where = _where(path, rule)
    if rule.pattern is None:
        if rule.text not in arrays:
            close = difflib.get_close_matches(rule.text, list(arrays), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise AnalyseError(f"{where}: the file has no tensor {rule.text!r}{hint}")
        value = np.asarray(arrays[rule.text])
        if not _is_numeric(value):
            raise AnalyseError(f"{where}: {rule.text!r} is not numeric ({value.dtype})")
        value = value.astype(np.float64)
        return Sequence(value if seed_axis else value[None], [rule.text], None)
    found: dict[int, str] = {}
    for key in arrays:
        match = rule.pattern.fullmatch(key)
        if match is None:
            continue
        try:
            block = int(match["block"])
        except (TypeError, ValueError):
            raise AnalyseError(f"{where}: the block group of {key!r} is {match['block']!r}, not an integer") from None
        if block in found:
            raise AnalyseError(f"{where}: {found[block]!r} and {key!r} both give block {block}")
        found[block] = key
    if not found:
        sample = ", ".join(repr(k) for k in list(arrays)[:4])
        raise AnalyseError(f"{where}: the regular expression matches none of the {len(arrays)} tensors "
                           f"of the file (they start {sample})")
    blocks = sorted(found)
    gap = sorted(set(range(blocks[0], blocks[-1] + 1)) - set(blocks))
    if gap and rule.role == "A":
        raise AnalyseError(f"{where}: the block indices {blocks[0]}..{blocks[-1]} have a gap: no block "
                           f"{', '.join(map(str, gap[:5]))}{' ...' if len(gap) > 5 else ''}")
    keys = [found[k] for k in blocks]
    tensors = [np.asarray(arrays[k]) for k in keys]
    for key, tensor in zip(keys, tensors):
        if not _is_numeric(tensor):
            raise AnalyseError(f"{where}: {key!r} is not numeric ({tensor.dtype})")
        if tensor.shape != tensors[0].shape:
            raise AnalyseError(f"{where}: inconsistent block shapes: {key!r} has shape {tuple(tensor.shape)} "
                               f"but {keys[0]!r} has {tuple(tensors[0].shape)}")
    values = np.stack(tensors, axis=1 if seed_axis else 0).astype(np.float64)
    return Sequence(values if seed_axis else values[None], keys, blocks)


def _to_column_layout(A: np.ndarray, layout: str, where: str) -> np.ndarray:
    """Per-layer matrices (out, in) or kernels (out, in, k, k), from either layout."""
    per_layer = A.ndim - 2
    if per_layer not in (2, 4):
        raise AnalyseError(f"{where}: blocks of shape {A.shape[2:]} are neither matrices nor 2-D convolution "
                           "kernels")
    if layout == "column":
        return A
    if per_layer == 2:
        return np.swapaxes(A, -1, -2)
    return np.moveaxis(A, (-4, -3, -2, -1), (-2, -1, -3, -4))  # (k, k, in, out) → (out, in, k, k)


def _check_blocks(rule: TensorRule, seq: Sequence, reference: Sequence, path) -> None:
    """Every role covers the blocks of A: a tensor missing for one block is named."""
    if seq.blocks is not None and reference.blocks is not None:
        missing = sorted(set(reference.blocks) - set(seq.blocks))
        extra = sorted(set(seq.blocks) - set(reference.blocks))
        if missing or extra:
            which = f"no tensor for block(s) {missing[:5]}" if missing else f"blocks {extra[:5]} that tensors.A lacks"
            raise AnalyseError(f"{_where(path, rule)}: {which} (tensors.A has blocks "
                               f"{reference.blocks[0]}..{reference.blocks[-1]})")
    if seq.values.shape[:2] != reference.values.shape[:2]:
        raise AnalyseError(f"{_where(path, rule)}: {seq.values.shape[1]} blocks (shape {seq.values.shape}) where "
                           f"tensors.A has {reference.values.shape[1]} (shape {reference.values.shape})")


def _delta(arrays: dict, m: Map, A: Sequence, path) -> tuple[np.ndarray, str, Sequence | None]:
    """δ as (S, L) and its kind: one value per network (shared), one per block (multi) or 1 (none)."""
    S, L = A.values.shape[:2]
    rule = m.tensors.get("delta")
    if rule is None:
        return np.ones((S, L)), "none", None
    seq = read_sequence(arrays, rule, path, m.seed_axis)
    where = _where(path, rule)
    values = seq.values
    if seq.blocks is not None:  # one tensor per block: each holds one number
        _check_blocks(rule, seq, A, path)
        if int(np.prod(values.shape[2:])) != 1:
            raise AnalyseError(f"{where}: each block's δ must be one number, got shape {values.shape[2:]}")
        delta, per_block = values.reshape(S, L), True
    elif values[0].size == 1:
        delta, per_block = np.repeat(values.reshape(S, 1), L, axis=1), False
    elif values.shape[1:] == (L,) or values.shape[1:] == (L, 1):
        delta, per_block = values.reshape(S, L), True
    else:
        raise AnalyseError(f"{where}: δ of shape {values.shape[1:]} is neither one number nor one per block "
                           f"({L} blocks)")
    kind = m.delta_kind or ("per_block" if per_block else "shared")
    if kind == "shared" and np.isfinite(delta).all() and np.ptp(delta, axis=1).max() > 0:
        raise AnalyseError(f"{where}: delta_kind is shared but δ differs between blocks")
    return delta, {"shared": "shared", "per_block": "multi"}[kind], seq


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


def read_network(path, m: Map) -> Network:
    """The mapped layer sequences of one file, checked and in the paper's convention."""
    path = Path(path)
    groups = _file_groups(path, m)
    arrays, meta = read_checkpoint(path, m.format, m.container)
    A = read_sequence(arrays, m.tensors["A"], path, m.seed_axis)
    where_A = _where(path, m.tensors["A"])
    if A.values.ndim < 3:
        raise AnalyseError(f"{where_A}: a stacked A needs a leading axis of blocks"
                           f"{' after the seed axis' if m.seed_axis else ''}; got shape {A.values.shape[1:]}")
    A.values = _to_column_layout(A.values, m.layout, where_A)
    S, L = A.values.shape[:2]
    if "b" in m.tensors:
        bseq = read_sequence(arrays, m.tensors["b"], path, m.seed_axis)
        _check_blocks(m.tensors["b"], bseq, A, path)
        b = bseq.values
    else:  # no bias: b and m are left out of the tables
        bseq, b = None, np.zeros((S, L, 1))
    delta, delta_type, dseq = _delta(arrays, m, A, path)
    if m.norm == "operator" and A.values.ndim == 6:
        if m.input_size is None:
            raise AnalyseError(f"{m.source}: input_size: required for the operator norm of the convolution "
                               f"kernels of tensors.A ({path})")
        if m.input_size % m.stride:
            raise AnalyseError(f"{m.source}: input_size: {m.input_size} is not a multiple of stride {m.stride}")

    seeds = None
    if m.seed_axis and m.seeds is not None:
        if m.seeds not in arrays:
            raise AnalyseError(f"{path}: seeds: the file has no array {m.seeds!r}")
        seeds = np.asarray(arrays[m.seeds]).reshape(-1)
        if len(seeds) != S or not np.issubdtype(seeds.dtype, np.integer):
            raise AnalyseError(f"{path}: seeds: {m.seeds!r} must hold {S} integers, got {seeds.dtype} {seeds.shape}")
    elif "seed" in groups:
        seeds = np.array([_integer(groups["seed"], "seed", path)])
    if m.status is not None:
        if m.status not in arrays:
            raise AnalyseError(f"{path}: status: the file has no array {m.status!r}")
        status = np.asarray(arrays[m.status]).astype(str).reshape(-1)
        if len(status) != S:
            raise AnalyseError(f"{path}: status: {m.status!r} has {len(status)} entries for {S} networks")
    else:
        status = np.full(S, "converged")

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
    labels = {"dataset": "", "activation": "", **labels, **m.labels, "delta": delta_type}

    included = np.isin(status, list(m.settings.include_status))
    for values, seq, rule in ((A.values, A, m.tensors["A"]), (b, bseq, m.tensors.get("b")),
                              (delta, dseq, m.tensors.get("delta"))):
        if seq is None:
            continue
        bad = ~np.isfinite(values.reshape(S, L, -1)).all(axis=2) & included[:, None]
        if bad.any():
            s, k = np.argwhere(bad)[0]
            key = seq.keys[k] if seq.blocks is not None else seq.keys[0]
            seed_text = f", seed {s}" if S > 1 else ""
            raise AnalyseError(f"{path}: {key!r} ({rule.key}, block {k}{seed_text}) has non-finite weights")
    return Network(str(path), experiment, depth, A.values, b, delta, delta_type, status, seeds, labels)


def expand_inputs(patterns) -> list[Path]:
    """Files named or matched by glob patterns, in order, each once; a pattern matching nothing is an error."""
    out: list[Path] = []
    for pattern in patterns:
        pattern = str(pattern)
        if Path(pattern).is_file():
            hits = [pattern]
        else:
            hits = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        if not hits:
            raise AnalyseError(f"{pattern}: no such file, and no file matches it as a glob pattern")
        out += [Path(h) for h in hits if Path(h) not in out]
    return out


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
                        f"{net.path}: tensors.{name}: blocks of shape {getattr(net, name).shape[1:]} but "
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
                f"{n1.path}: tensors.{name}: blocks of shape {s1} at depth {n1.depth}, but {n0.path} at depth "
                f"{n0.depth} has {s0}: the networks of experiment {experiment!r} must have one block shape "
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
