"""The mapped tensors of one checkpoint → layer sequences (S, L, ...) in the paper's convention.

Every mapped tensor must be present, the block indices of every role contiguous and equal, and
every block of one shape. The weights are converted to the column-vector convention of
docs/maths.md §1 (``z = A h + b``): a row-vector matrix (``x @ A``, stored (in, out)) is
transposed, a row-vector convolution kernel (k, k, in, out) becomes (out, in, k, k).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from .maps import AnalyseError, Map, TensorRule


@dataclass
class Sequence:
    """One role of one file: the layers (S, L, ...) and the checkpoint key of each block."""

    values: np.ndarray
    keys: list[str]
    blocks: list[int] | None  # block indices of a per-block pattern; None for a stacked array


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


def read_delta(arrays: dict, m: Map, A: Sequence, path) -> tuple[np.ndarray, str, Sequence | None]:
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


def read_weights(arrays: dict, m: Map, path) -> tuple[Sequence, dict, TensorRule]:
    """The sequence playing A in the column convention, the two matrices of a two-matrix block
    (else no parts) and the map's rule that names A's tensors in messages."""
    if m.two_matrix:
        A, parts = _two_matrix(arrays, m, path)
        return A, parts, m.tensors["W"]
    rule_A = m.tensors["A"]
    A = read_sequence(arrays, rule_A, path, m.seed_axis)
    where_A = _where(path, rule_A)
    if A.values.ndim < 3:
        raise AnalyseError(f"{where_A}: a stacked A needs a leading axis of blocks"
                           f"{' after the seed axis' if m.seed_axis else ''}; got shape {A.values.shape[1:]}")
    A.values = _to_column_layout(A.values, m.layout, where_A)
    return A, {}, rule_A


def read_bias(arrays: dict, m: Map, A: Sequence, path) -> tuple[Sequence | None, np.ndarray]:
    """b's sequence and its values (S, L, ...); without b in the map, no sequence and zeros
    (b and m are then left out of the tables)."""
    S, L = A.values.shape[:2]
    if "b" not in m.tensors:
        return None, np.zeros((S, L, 1))
    bseq = read_sequence(arrays, m.tensors["b"], path, m.seed_axis)
    _check_blocks(m.tensors["b"], bseq, A, path)
    return bseq, bseq.values
