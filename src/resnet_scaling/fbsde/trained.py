"""Trained networks against the limit systems of their kernel-smoothed weights (docs/maths.md §5),
trained and at initialisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..io import read_npz
from ..training.activations import get_activation
from ..scaling.weights import TrainedWeights, effective_weights, from_training, included, initial_weights
from ..sde.smoothing import kernel_smooth
from ..sde.tensors import as_tensor
from .backprop import LimitBackprop, NetworkBackprop, network_backprop
from .compare import compare, roughness, slope_columns
from .ode import half_grid, ode_backprop
from .sde import solve_fbsde
from .paths import path_rows


#: Limit systems fitted to a trained network (see :func:`trained_limit`).
TRAINED_LIMITS = ("neural_ode", "linear_ode", "diffusive")


def trained_limit(
    kind: str, A, b, delta, activation: str, x, target, *, bandwidth: float, ref_factor: int = 1, loss_scale: float = 1.0,
    shared: "SharedAverages | None" = None,
) -> LimitBackprop:
    """The limit system of S networks with weights A (S, L, d, d), b (S, L, d), δ (S, L).

    ``neural_ode``: ``dH/dt = δ̂_t σ(Â_t H + b̂_t)`` with Â, b̂ the kernel-smoothed A_k, b_k and
    δ̂ the kernel-smoothed L δ_k (docs/maths.md §4(a); for δ of one sign). ``linear_ode``:
    ``dH/dt = σ'(0)(Ā_t H + b̄_t)`` with Ā, b̄ the kernel-smoothed L M_k, L m_k, the drifts of
    the weight paths (docs/maths.md §4(b), trained networks). Solved with its adjoint on
    ``ref_factor × L`` RK4 steps. The smoothing bandwidth is at least 1/L, so that every
    window holds layers (:mod:`resnet_scaling.sde.smoothing`).
    ``diffusive``: the forward-backward system of the diffusive regime (docs/maths.md §4(c), §5)
    driven by the network's own increments M_k, m_k, one step per layer, with the realised
    squares in its σ''(0) terms: an expansion of σ at 0, so its distance to the network is the
    Taylor remainder, which vanishes as L grows only when the pre-activations do (§4(c) against
    §4(g)). Not smoothed; with σ''(0) ≠ 0 it needs δ ≡ 1.

    ``shared``: the smoothed A_k, b_k of one chunk of networks, made once for both ODE limits
    where every network's δ_k is one constant (:class:`SharedAverages`).
    """
    A, b, delta = as_tensor(A), as_tensor(b), as_tensor(delta)
    L = A.shape[1]
    if kind == "diffusive":
        act = get_activation(activation)
        if act.curvature_at_0 != 0.0 and not bool((delta == 1).all()):
            raise ValueError(f"the diffusive system of {activation} (σ''(0) ≠ 0) on its own increments needs δ ≡ 1")
        M, m = effective_weights(A, b, delta)
        return solve_fbsde(M, m, x, target, act, row_cov=None, loss_scale=loss_scale)
    bandwidth = max(float(bandwidth), 1.0 / L)
    ts = half_grid(ref_factor * L)
    constant = shared is not None and bool((delta == delta[:, :1]).all())
    if kind == "neural_ode":
        A_half, b_half, _ = shared.take(A, b, ts, bandwidth) if constant else (
            kernel_smooth(A, ts, bandwidth), kernel_smooth(b, ts, bandwidth), False)
        return ode_backprop(kind, A_half, b_half, x, target, activation,
                            delta_half=kernel_smooth(L * delta, ts, bandwidth), loss_scale=loss_scale)
    if kind == "linear_ode" and constant:
        # the smoother is a normalised average: the smoothed L M_k = L δ A_k is L δ times the smoothed A_k
        A_half, b_half, last = shared.take(A, b, ts, bandwidth)
        scale = (L * delta[:, 0]).view(1, -1, 1, 1)
        A_half = A_half.mul_(scale) if last else A_half * scale  # in place once no other limit reads it
        b_half = b_half.mul_(scale[..., 0]) if last else b_half * scale[..., 0]
        return ode_backprop(kind, A_half, b_half, x, target, activation, loss_scale=loss_scale)
    if kind == "linear_ode":
        M, m = effective_weights(A, b, delta)
        M_half = kernel_smooth(M.mul_(L), ts, bandwidth)  # M is a fresh product: scaled in place
        del M
        return ode_backprop(kind, M_half, kernel_smooth(L * m, ts, bandwidth), x, target, activation,
                            loss_scale=loss_scale)
    raise ValueError(f"unknown trained limit {kind!r}; expected one of {TRAINED_LIMITS}")


class SharedAverages:
    """The kernel-smoothed A_k, b_k of one chunk of networks, made at the first of ``users`` ODE
    limits that asks and handed over (no reference kept) at the last."""

    def __init__(self, users: int):
        self.users, self.values = users, None

    def take(self, A, b, ts, bandwidth: float):
        """(A_half, b_half, last): ``last`` when no other limit will read them."""
        if self.values is None:
            self.values = (kernel_smooth(A, ts, bandwidth), kernel_smooth(b, ts, bandwidth))
        A_half, b_half = self.values
        self.users -= 1
        if self.users <= 0:
            self.values = None
        return A_half, b_half, self.users <= 0


@dataclass
class TrainedComparison:
    """One (experiment, depth, state) compared with its limits: a tidy table and what the
    ``figure`` function of :func:`compare_trained` drew from the first chunk of networks."""

    table: pd.DataFrame
    figure: Any = None


def compare_trained(
    w: TrainedWeights,
    x,
    y,
    *,
    state: str,
    kinds: Sequence[str] = TRAINED_LIMITS,
    bandwidth: float = 0.1,
    ref_factor: int = 1,
    figure: Callable[[NetworkBackprop, dict[str, LimitBackprop], np.ndarray], Any] | None = None,
) -> TrainedComparison | None:
    """Adjoint and per-layer gradient errors of the networks of one training output against
    each limit system of :func:`trained_limit`, and the :func:`roughness` of their effective
    weights M_k and of their gradient fields ∂ℓ/∂M_k.

    ``x``, ``y`` (N, d): inputs and targets; the loss is ½ Σ_n |h_L − y|² (proportional to the
    training MSE). Networks that diverged or have non-finite weights are left out; None when
    none is left. ``state`` labels the rows (``trained`` or ``init``). ``figure(network,
    limits, M)``, given the backprops of the first chunk of networks and the weights M_k of
    the first included seed (1, L, d, d), returns what a figure draws; it is called once, so
    no chunk's backprops outlive it.
    """
    keep = np.flatnonzero(included(w))
    if not len(keep):
        return None
    labels = {"experiment": w.experiment, "dataset": w.dataset, "activation": w.activation, "delta": w.delta_type, "depth": w.depth}
    frames, first = [], None
    # a few networks at a time: the states, adjoints and tabulated coefficients of every network
    # at once take GBs at L = 9100 (d = 25); each network's numbers do not depend on the others
    for chunk in np.array_split(keep, -(-len(keep) // _networks_per_chunk(w, len(x)))):
        A, b, delta = w.A[chunk], w.b[chunk], w.delta[chunk]
        net = network_backprop(A, b, delta, w.activation, x, y)
        M, _ = effective_weights(A, b, delta)
        seeds = w.seeds[chunk]
        # the limits of every chunk but the figure's are compared and dropped one at a time
        draw = figure is not None and first is None
        M_first = M[:1].copy() if draw else None

        def rows(limit: str, values: dict[str, np.ndarray]) -> None:
            for quantity, v in values.items():
                frames.append(pd.DataFrame({**labels, "seed": seeds, "state": state, "limit": limit, "quantity": quantity, "value": v}))

        rows("network", {"weight_roughness": roughness(M), "gradient_roughness": roughness(net.grad_M.transpose(0, 1))})
        del M
        lims, shared = {}, SharedAverages(sum(kind in ("neural_ode", "linear_ode") for kind in kinds))
        for kind in kinds:
            lim = trained_limit(kind, A, b, delta, w.activation, x, y, bandwidth=bandwidth, ref_factor=ref_factor,
                                shared=shared)
            rows(kind, compare(net, lim))
            if draw:
                lims[kind] = lim
            del lim
        if draw:
            first = figure(net, lims, M_first)
        del net, lims, M_first
    table = pd.concat(frames, ignore_index=True)
    # rows in the order of one call on all networks: per (limit, quantity), the seeds in order
    order = {name: i for i, name in enumerate(dict.fromkeys(zip(table["limit"], table["quantity"])))}
    table = table.iloc[np.lexsort((table.index, [order[k] for k in zip(table["limit"], table["quantity"])]))]
    return TrainedComparison(table.reset_index(drop=True), first)


#: Half-grid times (2L + 1) × networks × max(d, inputs) × d held at once by
#: :func:`compare_trained` (128 MB of float64 per array; a comparison holds about a dozen such
#: arrays: the limits' coefficients on the half grid, states, adjoints and pre-activations). At
#: L = 9100, d = 25 that is one network at a time: with two, the paper run's comparison of all
#: 44 depths of one experiment peaked at 3.3–3.5 GB, with one at 2.5–2.7 GB.
CHUNK_ELEMENTS = 2**24


def _networks_per_chunk(w: TrainedWeights, n_inputs: int) -> int:
    S, L, d = w.A.shape[0], w.A.shape[1], w.A.shape[-1]
    return max(1, min(S, CHUNK_ELEMENTS // max(1, (2 * L + 1) * d * max(d, n_inputs))))


def trained_slopes(table: pd.DataFrame, min_depth: int = 0) -> pd.DataFrame:
    """Log-log slopes in depth of the median over seeds of every (state, limit, quantity)."""
    rows = []
    keys = ["experiment", "state", "limit", "quantity"]
    med = table[table["depth"] >= min_depth].groupby(keys + ["depth"], sort=False)["value"].median().reset_index()
    for key, grp in med.groupby(keys, sort=False):
        deepest = grp.loc[grp["depth"].idxmax()]
        rows.append(
            {
                **dict(zip(keys, key)),
                **slope_columns(grp["depth"], grp["value"]),
                "depth_min": int(grp["depth"].min()),
                "depth_max": int(deepest["depth"]),
                "value_at_depth_max": float(deepest["value"]),
            }
        )
    return pd.DataFrame(rows)


def _states(path) -> Iterator[tuple[str, TrainedWeights]]:
    """The trained networks of a training output, then the same networks at initialisation (all
    finite ones kept), one at a time: each is GBs of float64 at L = 9100, so the initial weights
    are read only once the trained ones are dropped."""
    arrays, meta = read_npz(path, exclude=initial_weights)
    trained = from_training(arrays, meta)
    for key in ("A", "b"):
        del arrays[key]
    yield "trained", trained
    del trained
    init, _ = read_npz(path, exclude=lambda key: not initial_weights(key))
    if all(k in init for k in ("A_init", "b_init", "delta_init")):
        S = init["A_init"].shape[0]
        yield "init", from_training({**arrays, "A": init.pop("A_init"), "b": init.pop("b_init"),
                                     "delta": init.pop("delta_init"), "status": np.full(S, "converged")}, meta)


def _figure_data(network: NetworkBackprop, limits: dict[str, LimitBackprop], weights: np.ndarray, state: str,
                 kinds: Sequence[str], n_fig: int) -> tuple[list, dict]:
    """Adjoint paths (network and limits, ``n_fig`` inputs) and the gradient field of the first
    included seed of one comparison: what the figures draw of the deepest network. The paths
    are kept as arrays, (source, label, adjoint (T, 1, n_fig, d), times), and made rows by
    :func:`_path_frames` only for the deepest depth (as rows they take hundreds of MB)."""
    L = network.depth
    first = lambda p: p[:, :1, :n_fig].clone()  # noqa: E731  (a copy: a view would keep every seed's adjoint)
    paths = [("network", f"network, L = {L}", first(network.p), np.arange(L + 1) / L)]
    for kind, lim in limits.items():
        paths.append((kind, f"limit {kind}", first(lim.p), np.arange(lim.n_steps + 1) / lim.n_steps))
    _, _, G, _ = limits[kinds[0]].on_layers(L)
    field = {  # copies: a view would keep all seeds' arrays alive
        f"{state}_weights": np.array(weights[0]),
        f"{state}_network": network.grad_M[:, 0].numpy().copy(),
        f"{state}_limit": G[:, 0].numpy().copy(),
    }
    return paths, field


def _path_frames(state: str, paths: list, n_fig: int) -> list[pd.DataFrame]:
    """The tidy rows of the adjoint paths kept by :func:`_figure_data`."""
    return [path_rows(values, ts, 1, n_fig, state=state, source=source, label=label)
            for source, label, values, ts in paths]


def trained_study(train_paths: Sequence[str], dataset_path: str, cfg: dict, *, progress: bool = False) -> dict:
    """Compare every depth of one experiment with its limit systems, trained and at init.

    ``cfg``: ``n_inputs`` (test inputs used), ``limits`` (kinds of :data:`TRAINED_LIMITS`, the
    first drawn in the figures), ``bandwidth``, ``ref_factor``, ``min_fit_depth``,
    ``n_figure_inputs``. Returns the tidy ``table``, the ``slopes`` against depth, tidy
    adjoint ``paths`` of the deepest network's first included seed (network and limits, a few
    inputs) and its gradient ``field`` per state (weights M_k, network ∂ℓ/∂M_k, limit G)."""
    data, _ = read_npz(dataset_path)
    n = int(cfg.get("n_inputs", 32))
    x, y = data["x_test"][:n], data["y_test"][:n]
    kinds = list(cfg.get("limits", TRAINED_LIMITS))
    n_fig = int(cfg.get("n_figure_inputs", 3))
    tables, deepest = [], {}
    # one depth in memory at a time: at the paper scale all depths together take many GB; of the
    # deepest network so far only its figure data are kept (its limit coefficients take GBs)
    for path in tqdm(train_paths, desc="fbsde trained", disable=not progress, mininterval=5.0):
        for state, w in _states(path):
            figure = None
            if state not in deepest or w.depth > deepest[state][0]:
                figure = lambda net, lims, M, state=state: _figure_data(net, lims, M, state, kinds, n_fig)  # noqa: E731
            res = compare_trained(w, x, y, state=state, kinds=kinds, bandwidth=float(cfg.get("bandwidth", 0.1)),
                                  ref_factor=int(cfg.get("ref_factor", 1)), figure=figure)
            if res is not None:
                tables.append(res.table)
                if res.figure is not None:
                    deepest[state] = (w.depth, *res.figure)
            del res, w  # before the next state is made
    if not tables:
        raise ValueError(f"no network with finite weights and an accepted status in {list(train_paths)}")
    table = pd.concat(tables, ignore_index=True)
    paths, field = [], {}
    for state, (_, state_paths, state_field) in deepest.items():
        paths += _path_frames(state, state_paths, n_fig)
        field.update(state_field)
    paths = pd.concat(paths, ignore_index=True)
    # per input, the coordinate where the trained network's adjoint is largest
    net = paths[(paths["source"] == "network") & (paths["state"] == paths["state"].iloc[0])]
    coord = net.assign(size=net["value"].abs()).groupby("input")["size"].idxmax().map(net["coord"])
    paths = paths[paths["coord"] == paths["input"].map(coord)]
    return {
        "table": table,
        "slopes": trained_slopes(table, int(cfg.get("min_fit_depth", 0))),
        "paths": paths,
        "field": field,
        "limit": kinds[0],
    }
