"""The time loop of every solver, written once: a scheme's step applied on a grid, states recorded.

A solver binds its equation and scheme into ``advance(k, y) -> y``, the state after step k
(k = 0 … n−1 forward; n−1 … 0 backward, for the adjoints of docs/maths.md §5). States are
tensors or tuples of tensors.
"""

from __future__ import annotations

from typing import Callable, Iterator, TypeVar

import torch

from .tensors import progress as _progress

Y = TypeVar("Y")


def iterate(
    advance: Callable[[int, Y], Y],
    y0: Y,
    n_steps: int,
    *,
    record_every: int = 1,
    reverse: bool = False,
    progress: bool = False,
    desc: str = "steps",
) -> Iterator[tuple[int, Y]]:
    """Yield ``(j, y)`` at the start and after every ``record_every``-th step.

    Forward, ``j`` counts recorded states (0, 1, …, n/record_every); backward the state
    after step k is yielded as ``j = k`` (``record_every`` must then be 1).
    """
    if n_steps % record_every:
        raise ValueError(f"record_every={record_every} must divide the {n_steps} steps")
    if reverse and record_every != 1:
        raise ValueError("a backward loop records every step")
    y = y0
    if reverse:
        yield n_steps, y
        for k in _progress(range(n_steps - 1, -1, -1), progress, desc):
            y = advance(k, y)
            yield k, y
        return
    yield 0, y
    for k in _progress(range(n_steps), progress, desc):
        y = advance(k, y)
        if (k + 1) % record_every == 0:
            yield (k + 1) // record_every, y


def integrate(
    advance: Callable[[int, torch.Tensor], torch.Tensor],
    y0: torch.Tensor,
    n_steps: int,
    *,
    record_every: int = 1,
    reverse: bool = False,
    progress: bool = False,
    desc: str = "steps",
) -> torch.Tensor:
    """The recorded states of :func:`iterate` stacked, (n/record_every + 1, *y0.shape)."""
    out = torch.empty((n_steps // record_every + 1, *y0.shape), dtype=y0.dtype)
    for j, y in iterate(advance, y0, n_steps, record_every=record_every, reverse=reverse, progress=progress, desc=desc):
        out[j] = y
    return out


def final(advance: Callable[[int, Y], Y], y0: Y, n_steps: int, **kw) -> Y:
    """The state after the last step of :func:`iterate` (nothing stored on the way)."""
    y = y0
    for _, y in iterate(advance, y0, n_steps, record_every=n_steps if not kw.get("reverse") else 1, **kw):
        pass
    return y
