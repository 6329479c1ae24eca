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
import fnmatch
import hashlib
import math
import os
import re
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
    parts: dict = field(default_factory=dict)  # two-matrix block: W (S, L, m, d) and V (S, L, d, m)
    warnings: list = field(default_factory=list)  # sentences about this file, each naming it


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


def _two_matrix(arrays: dict, m: Map, path) -> tuple[Sequence, dict]:
    """Z_k = (V_k, W_k) side by side (the phase-diagram stage's quantity for this block,
    :func:`resnet_scaling.phase_diagram.study.anchor_sequences`) as the sequence playing A,
    and W (S, L, m, d), V (S, L, d, m) in the column convention."""
    from ..phase_diagram.study import anchor_sequences

    seqs = {}
    for role in ("W", "V"):
        rule = m.tensors[role]
        seq = read_sequence(arrays, rule, path, m.seed_axis)
        if seq.values.ndim < 3:
            raise AnalyseError(f"{_where(path, rule)}: a stacked {role} needs a leading axis of blocks"
                               f"{' after the seed axis' if m.seed_axis else ''}; got shape {seq.values.shape[1:]}")
        seq.values = _to_column_layout(seq.values, m.layout, _where(path, rule))
        seqs[role] = seq
    W, V = seqs["W"], seqs["V"]
    _check_blocks(m.tensors["V"], V, W, path)
    w_shape, v_shape = W.values.shape[2:], V.values.shape[2:]
    if v_shape[:2] != w_shape[1::-1] or v_shape[2:] != w_shape[2:]:
        raise AnalyseError(f"{_where(path, m.tensors['V'])}: blocks of shape {v_shape} do not fit W's {w_shape}: "
                           f"h + V σ(W h + b) needs V of shape {(w_shape[1], w_shape[0], *w_shape[2:])}")
    Z = anchor_sequences({"V": V.values, "A": W.values})["Z"]
    return Sequence(Z, W.keys, W.blocks), {"W": W, "V": V}


def degenerate(A: np.ndarray, b: np.ndarray, delta: np.ndarray) -> list[str | None]:
    """Per network (axis 0): ``"all-zero"`` when every effective weight δ_k A_k is zero,
    ``"constant"`` when every block has the same A_k, b_k and δ_k (at least two blocks), else
    None. Such a network has no scaling to measure: its norms (all-zero) or its increments
    (constant) are 0, whose logarithm no fit can take."""
    out: list[str | None] = []
    for s in range(A.shape[0]):
        if not np.any(A[s]) or not np.any(delta[s]):
            out.append("all-zero")
        elif A.shape[1] > 1 and all(np.array_equal(X[s], np.broadcast_to(X[s, :1], X[s].shape))
                                    for X in (A, b, delta)):
            out.append("constant")
        else:
            out.append(None)
    return out


DEGENERATE_TEXT = {
    "all-zero": "every weight of the mapped blocks is zero (an all-zero network: no norm to fit)",
    "constant": "every block has the same weights (a constant network: no increments to fit)",
}


def read_network(path, m: Map) -> Network:
    """The mapped layer sequences of one file, checked and in the paper's convention.

    An all-zero or constant network (:func:`degenerate`) gets that as its status, which no fit
    admits, and a sentence naming the file; the others' statistics are fitted as usual."""
    path = Path(path)
    groups = _file_groups(path, m)
    arrays, meta = read_checkpoint(path, m.format, m.container)
    parts: dict[str, Sequence] = {}
    if m.two_matrix:
        A, parts = _two_matrix(arrays, m, path)
        rule_A = m.tensors["W"]
    else:
        rule_A = m.tensors["A"]
        A = read_sequence(arrays, rule_A, path, m.seed_axis)
        where_A = _where(path, rule_A)
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
    if m.branch_scale is not None:  # the forward pass's multiplier: δ_k of the analysis includes it
        delta = delta * m.scale(depth)
        if delta_type == "none":
            delta_type = "fixed"  # known, not trained: δ is no quantity of its own
    labels = {"dataset": "", "activation": "", **labels, **m.labels, "delta": delta_type}

    included = np.isin(status, list(m.settings.include_status))
    checks = [(A.values, A, rule_A), (b, bseq, m.tensors.get("b")), (delta, dseq, m.tensors.get("delta"))]
    checks += [(seq.values, seq, m.tensors[role]) for role, seq in parts.items()]
    for values, seq, rule in checks:
        if seq is None:
            continue
        bad = ~np.isfinite(values.reshape(S, L, -1)).all(axis=2) & included[:, None]
        if bad.any():
            s, k = np.argwhere(bad)[0]
            key = seq.keys[k] if seq.blocks is not None else seq.keys[0]
            seed_text = f", seed {s}" if S > 1 else ""
            raise AnalyseError(f"{path}: {key!r} ({rule.key}, block {k}{seed_text}) has non-finite weights")

    warnings = []
    kinds = degenerate(A.values, b, delta)
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
    return Network(str(path), experiment, depth, A.values, b, delta, delta_type, status, seeds, labels,
                   parts={role: seq.values for role, seq in parts.items()}, warnings=warnings)


#: Initialisation laws that a network's weights are compared with (:func:`initialisation_law`):
#: name, shape of the law (normal or uniform) and variance as a function of fan-in f and fan-out o.
INIT_LAWS = (
    ("PyTorch's default init U(±1/√fan_in) of nn.Linear/nn.Conv2d", "uniform", lambda f, o: 1 / (3 * f)),
    ("Xavier/Glorot uniform U(±√(6/(fan_in + fan_out)))", "uniform", lambda f, o: 2 / (f + o)),
    ("Xavier/Glorot normal N(0, 2/(fan_in + fan_out))", "normal", lambda f, o: 2 / (f + o)),
    ("LeCun normal N(0, 1/fan_in)", "normal", lambda f, o: 1 / f),
    ("He/Kaiming normal N(0, 2/fan_in)", "normal", lambda f, o: 2 / f),
    ("He/Kaiming uniform U(±√(6/fan_in))", "uniform", lambda f, o: 2 / f),
    ("this workflow's xavier init N(0, 1/fan_in²)", "normal", lambda f, o: 1 / f**2),
    ("the standard normal N(0, 1)", "normal", lambda f, o: 1.0),
)
#: Fewer entries than this per network (all blocks together) cannot tell a law from training.
UNTRAINED_MIN_ENTRIES = 500
#: How many standard errors each test of :func:`initialisation_law` allows.
UNTRAINED_Z = 4.0
#: The criterion in words, for the warnings and the report.
UNTRAINED_CRITERION = (
    f"the entries of all its blocks together (at least {UNTRAINED_MIN_ENTRIES}) are consistent with i.i.d. "
    "draws from a known initialisation law at their fan-in: mean 0, mean square equal to the law's "
    "variance, the law's shape (every entry within the bound of a uniform law; the kurtosis 3 of a normal "
    f"one) and no correlation between consecutive blocks, each within {UNTRAINED_Z:g} standard errors")


def initialisation_law(X: np.ndarray) -> str | None:
    """The name of the first law of :data:`INIT_LAWS` whose i.i.d. draws the weights X (L, out,
    in[, k, k]) of one network are consistent with (:data:`UNTRAINED_CRITERION`), else None.

    With n entries x and the law's variance v, the tests are |mean x| ≤ z √(v/n),
    |mean x²/v − 1| ≤ z √(c/n) (c = Var x²/v² = 2 for a normal law, 4/5 for a uniform one),
    max |x| ≤ √(3v) (uniform) or |mean x⁴/(mean x²)² − 3| ≤ z √(24/n) (normal), and the
    correlation Σ_k ⟨X_k, X_{k+1}⟩ / (Σ_k ‖X_k‖² Σ_k ‖X_{k+1}‖²)^{1/2} of consecutive blocks
    within z / √(n − n/L), with z = :data:`UNTRAINED_Z`. Trained weights leave a law in
    their variance or shape, and weights smooth in depth are correlated between blocks.
    """
    x = X.reshape(-1)
    n = x.size
    if n < UNTRAINED_MIN_ENTRIES or X.ndim < 3 or not np.isfinite(x).all():
        return None
    fan_in, fan_out = int(np.prod(X.shape[2:])), int(X.shape[1] * np.prod(X.shape[3:]))
    z = UNTRAINED_Z
    m2 = float(np.mean(x * x))
    if m2 == 0:
        return None
    m4 = float(np.mean(x**4))
    if X.shape[0] > 1:
        flat = X.reshape(X.shape[0], -1)
        a, c = flat[:-1].reshape(-1), flat[1:].reshape(-1)
        correlation = abs(float(a @ c)) / math.sqrt(float(a @ a) * float(c @ c))
        if correlation > z / math.sqrt(a.size):
            return None
    for name, shape, variance in INIT_LAWS:
        v = variance(fan_in, fan_out)
        if abs(float(np.mean(x))) > z * math.sqrt(v / n):
            continue
        if abs(m2 / v - 1) > z * math.sqrt((2.0 if shape == "normal" else 0.8) / n):
            continue
        if shape == "uniform" and float(np.abs(x).max()) > math.sqrt(3 * v) * (1 + 1e-6):
            continue
        if shape == "normal" and abs(m4 / m2**2 - 3) > z * math.sqrt(24 / n):
            continue
        return f"{name} at fan-in {fan_in}"
    return None


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


#: The most files the inputs of one analysis may name or match (after duplicates are removed);
#: past it the command stops and asks for narrower patterns.
MAX_FILES = 10_000
#: The most directories one glob pattern may search (each entered once, whatever path leads to it).
MAX_DIRECTORIES = 100_000
_MAGIC = re.compile(r"[*?[]")


def _identity(path: str) -> tuple:
    """What makes two paths the same file: the device and inode it lives at (one file reached
    through a symlinked folder, a hard link or two patterns), or where a file system gives no
    inode, the SHA-256 of its content."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.abspath(path))
    if st.st_ino:
        return ("inode", st.st_dev, st.st_ino)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return ("content", st.st_size, digest.hexdigest())


def glob_files(pattern: str) -> list[str]:
    """The files a glob pattern matches, as :func:`glob.glob` with ``recursive=True`` finds them
    (``*``, ``?``, ``[...]`` within a name, ``**`` for any number of folders, names starting with
    a dot only when the pattern's part does), sorted, except that each folder is searched once
    for each part of the pattern whatever path leads to it: a symlink loop (a folder linking to
    itself or to a parent) ends instead of recursing forever. Stops with an error past
    :data:`MAX_FILES` files or :data:`MAX_DIRECTORIES` folders."""
    absolute = pattern.startswith(os.sep)
    parts = [p for p in pattern.split(os.sep) if p not in ("", ".")]
    root_parts = []
    while parts and len(parts) > 1 and not _MAGIC.search(parts[0]) and parts[0] != "**":
        root_parts.append(parts.pop(0))
    root = os.path.join(os.sep if absolute else "", *root_parts) if (absolute or root_parts) else ""
    if not parts:
        return [root] if os.path.isfile(root) else []
    found: list[str] = []
    seen: set[tuple] = set()
    directories = 0

    def listing(folder: str) -> list[os.DirEntry]:
        nonlocal directories
        directories += 1
        if directories > MAX_DIRECTORIES:
            raise AnalyseError(f"{pattern}: searches more than {MAX_DIRECTORIES} folders; name the checkpoints "
                               "with a narrower pattern")
        try:
            with os.scandir(folder or ".") as entries:
                return sorted(entries, key=lambda e: e.name)
        except OSError:
            return []

    def is_dir(entry: os.DirEntry) -> bool:
        try:
            return entry.is_dir()  # follows symlinks, as glob does; loops end in visit()
        except OSError:
            return False

    def visit(folder: str, i: int) -> None:
        try:
            st = os.stat(folder or ".")
        except OSError:
            return
        key = (st.st_dev, st.st_ino, i) if st.st_ino else (os.path.realpath(folder or "."), i)
        if key in seen:
            return
        seen.add(key)
        part, last = parts[i], i == len(parts) - 1
        if part == "**":
            if last:  # 'x/**' matches the files at any depth below x
                for entry in listing(folder):
                    if not entry.name.startswith("."):
                        if is_dir(entry):
                            visit(os.path.join(folder, entry.name), i)
                        else:
                            add(os.path.join(folder, entry.name))
                return
            visit(folder, i + 1)
            for entry in listing(folder):
                if not entry.name.startswith(".") and is_dir(entry):
                    visit(os.path.join(folder, entry.name), i)
            return
        if not _MAGIC.search(part):
            path = os.path.join(folder, part)
            if last:
                if os.path.isfile(path):
                    add(path)
            elif os.path.isdir(path):
                visit(path, i + 1)
            return
        for entry in listing(folder):
            if entry.name.startswith(".") and not part.startswith("."):
                continue
            if not fnmatch.fnmatchcase(entry.name, part):
                continue
            if last:
                if os.path.isfile(os.path.join(folder, entry.name)):
                    add(os.path.join(folder, entry.name))
            elif is_dir(entry):
                visit(os.path.join(folder, entry.name), i + 1)

    def add(path: str) -> None:
        found.append(path)
        if len(found) > MAX_FILES:
            raise AnalyseError(f"{pattern}: matches more than {MAX_FILES} files (the most one analysis reads); "
                               "name the checkpoints with a narrower pattern")

    visit(root, 0)
    return sorted(set(found))


def expand_inputs(patterns) -> list[Path]:
    """Files named or matched by glob patterns (:func:`glob_files`), in order, each file once.

    Two paths to one file (a symlinked folder, a hard link, two patterns matching the same
    files) are one file, by its identity (:func:`_identity`), not by the text of the path: the
    first path found stands for it. A pattern matching nothing is an error, as are more than
    :data:`MAX_FILES` files in all."""
    out: list[Path] = []
    identities: set[tuple] = set()
    for pattern in patterns:
        pattern = str(pattern)
        hits = [pattern] if Path(pattern).is_file() else glob_files(pattern)
        if not hits:
            raise AnalyseError(f"{pattern}: no such file, and no file matches it as a glob pattern")
        for hit in hits:
            identity = _identity(hit)
            if identity not in identities:
                identities.add(identity)
                out.append(Path(hit))
        if len(out) > MAX_FILES:
            raise AnalyseError(f"{pattern}: the inputs name more than {MAX_FILES} files (the most one analysis "
                               "reads); analyse fewer at a time")
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
