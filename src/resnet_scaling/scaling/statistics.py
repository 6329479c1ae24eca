"""Per-network statistics of layer sequences, whose log-log slopes in L are the exponents (docs/maths.md §3).

For a layer sequence X_0..X_{L-1} (Frobenius norms) and its path W_k = Σ_{j<k} X_j:

    max_norm             max_k ‖X_k‖
    rms_norm             (Σ_k ‖X_k‖² / L)^{1/2}             the unbiased exponent estimator
    root_sum_squares     (Σ_k ‖X_k‖²)^{1/2}
    max_increment        max_k ‖X_{k+1} − X_k‖
    increment_ratio      max_increment / max_norm
    quadratic_variation  Σ_k ‖X_{k+1} − X_k‖²
    cumulative_sum       ‖W_L‖ = ‖Σ_k X_k‖
    detrended_cumsum     max_k ‖W_k − mean(W_{k−h..k+h})‖,  h = min(w, k, L−k),  w = round(0.1 L)

Their slopes in L under the two hypotheses of the original study are in
:data:`EXPECTED_SLOPES`: H1, smooth weights X_k = L^{-β} f(k/L); H2, diffusive weights,
i.i.d.-like X_k of size L^{-1/2} (increments of a Brownian path). The max statistics carry
a √(2 log L) bias under H2 (docs/maths.md §3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from ..running_sums import cumulative_sum
from .weights import TrainedWeights, layer_norms, quantity_sequences, weight_path

#: A norm of every layer of a sequence X (S, L, ...) → (S, L); Frobenius unless told otherwise.
LayerNorm = Callable[[np.ndarray], np.ndarray]

STATISTICS = (
    "max_norm",
    "rms_norm",
    "root_sum_squares",
    "max_increment",
    "increment_ratio",
    "quadratic_variation",
    "cumulative_sum",
    "detrended_cumsum",
)
#: Statistics built from increments X_{k+1} − X_k: identically 0 for a δ that is one scalar.
INCREMENT_STATISTICS = ("max_increment", "increment_ratio", "quadratic_variation")

#: Slope in L of each statistic: H1 as a function of β, H2 a number (docs/maths.md §3).
EXPECTED_SLOPES = {
    "max_norm": (lambda beta: -beta, -0.5),
    "rms_norm": (lambda beta: -beta, -0.5),
    "root_sum_squares": (lambda beta: 0.5 - beta, 0.0),
    "max_increment": (lambda beta: -beta - 1.0, -0.5),
    "increment_ratio": (lambda beta: -1.0, 0.0),
    "quadratic_variation": (lambda beta: -1.0 - 2.0 * beta, 0.0),
    "cumulative_sum": (lambda beta: 1.0 - beta, 0.0),
    "detrended_cumsum": (lambda beta: 1.0 - beta, 0.0),
}


def expected_slope(statistic: str, hypothesis: str, beta: float = 0.5) -> float:
    """The slope of ``statistic`` in L under ``hypothesis`` ``"H1"`` (smooth, exponent β) or ``"H2"`` (diffusive)."""
    smooth, diffusive = EXPECTED_SLOPES[statistic]
    if hypothesis == "H1":
        return float(smooth(beta))
    if hypothesis == "H2":
        return float(diffusive)
    raise ValueError(f"unknown hypothesis {hypothesis!r}; expected 'H1' or 'H2'")


def statistics_of(quantity: str, delta_type: str, statistics: Sequence[str] = STATISTICS) -> list[str]:
    """The statistics taken on a quantity: increments of δ only when δ is per layer (for a
    scalar δ they are identically 0)."""
    return [s for s in statistics
            if not (quantity == "delta" and delta_type != "multi" and s in INCREMENT_STATISTICS)]


def detrend_window(depth: int, fraction: float) -> int:
    """Half-width w of the moving average: ``fraction`` of the depth, at least one layer."""
    return max(1, int(round(fraction * depth)))


def moving_average(W: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of a path W (S, n, ...) along axis 1, half-width min(window, k, n−1−k).

    The window shrinks symmetrically at the ends, so the two end points are their own average
    and a linear path is its own moving average.
    """
    n = W.shape[1]
    prefix = np.zeros((W.shape[0], n + 1, *W.shape[2:]), dtype=W.dtype)
    cumulative_sum(W, 1, prefix[:, 1:])
    k = np.arange(n)
    h = np.minimum(np.minimum(k, n - 1 - k), window)
    total = np.empty(W.shape, dtype=np.result_type(W.dtype, np.float64))
    # the interior, where the half-width is the whole window, from two slices (no gathered copies:
    # at the paper's depths a path is hundreds of MB); the shrinking ends index by index
    inner = np.flatnonzero(h == window)
    if len(inner):
        a, z = int(inner[0]), int(inner[-1]) + 1
        np.subtract(prefix[:, a + window + 1 : z + window + 1], prefix[:, a - window : z - window], out=total[:, a:z])
    ends = np.flatnonzero(h != window)
    total[:, ends] = prefix[:, ends + h[ends] + 1] - prefix[:, ends - h[ends]]
    del prefix
    total /= (2 * h + 1).reshape(-1, *([1] * (W.ndim - 2)))
    return total


#: The statistics that need only the norms of the layers and of their increments.
NORM_STATISTICS = STATISTICS[:6]


def norm_statistics(norms: np.ndarray, increments: np.ndarray, defined: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The statistics of :data:`NORM_STATISTICS` from layer norms (S, L) and increment norms (S, L−1).

    ``defined`` (L−1,) marks the increments that exist: in the convolutional ResNet only those
    between consecutive kernels of one shape (within a stage); the others are left out of the
    maximum and the sum.
    """
    S, L = norms.shape
    sumsq = (norms**2).sum(axis=1)
    out: dict[str, np.ndarray] = {}
    out["max_norm"] = norms.max(axis=1)
    out["rms_norm"] = np.sqrt(sumsq / L)
    out["root_sum_squares"] = np.sqrt(sumsq)
    if defined is not None:
        increments = increments[:, np.asarray(defined, dtype=bool)]
    if increments.shape[1]:
        out["max_increment"] = increments.max(axis=1)
        out["quadratic_variation"] = (increments**2).sum(axis=1)
    else:
        out["max_increment"] = out["quadratic_variation"] = np.zeros(S)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["increment_ratio"] = out["max_increment"] / out["max_norm"]
    return out


def sequence_statistics(
    X: np.ndarray, window_fraction: float = 0.1, statistics: Sequence[str] = STATISTICS,
    norm: LayerNorm = layer_norms,
) -> dict[str, np.ndarray]:
    """Every requested statistic of the layer sequences X (S, L, ...), one (S,) array each.

    ``norm`` measures every layer, increment and partial sum (an operator norm for convolution
    kernels, :mod:`resnet_scaling.analyse.networks`)."""
    unknown = sorted(set(statistics) - set(STATISTICS))
    if unknown:
        raise ValueError(f"unknown statistics {unknown}; expected some of {list(STATISTICS)}")
    L = X.shape[1]
    out = norm_statistics(norm(X), norm(np.diff(X, axis=1)) if L > 1 else np.zeros((X.shape[0], 0)))
    if "cumulative_sum" in statistics or "detrended_cumsum" in statistics:
        W = weight_path(X)
        out["cumulative_sum"] = norm(W[:, -1:])[:, 0]
        residual = moving_average(W, detrend_window(L, window_fraction))
        np.subtract(W, residual, out=residual)  # W − its moving average, in the average's memory
        out["detrended_cumsum"] = norm(residual).max(axis=1)
    return {name: out[name] for name in statistics}


def network_statistics(
    w: TrainedWeights,
    window_fraction: float = 0.1,
    statistics: Sequence[str] = STATISTICS,
    labels: dict | None = None,
    norm: LayerNorm = layer_norms,
) -> pd.DataFrame:
    """Tidy table of every statistic of every quantity of every seed of one (experiment, depth).

    Increment statistics of δ are left out unless δ is per-layer (they are identically 0).
    ``labels`` (e.g. dataset, activation, delta) become constant columns.
    """
    finite = w.finite
    frames = []
    for quantity, X in quantity_sequences(w).items():
        wanted = statistics_of(quantity, w.delta_type, statistics)
        with np.errstate(over="ignore", invalid="ignore"):
            values = sequence_statistics(X, window_fraction, wanted, norm)
        for statistic, value in values.items():
            frames.append(
                pd.DataFrame(
                    {
                        "seed": w.seeds,
                        "status": w.status,
                        "finite": finite,
                        "quantity": quantity,
                        "statistic": statistic,
                        "value": value,
                    }
                )
            )
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "depth", w.depth)
    for position, (key, value) in enumerate({"experiment": w.experiment, **(labels or {})}.items()):
        table.insert(position, key, value)
    return table


def training_table(w: TrainedWeights, x_test: np.ndarray | None = None) -> pd.DataFrame:
    """One row per seed: status, epochs and the final losses recorded by the trainer; with the
    test inputs ``x_test``, the non-affine share of each network's output on them
    (:func:`resnet_scaling.scaling.outputs.network_non_affine_share`)."""
    table = pd.DataFrame({"experiment": w.experiment, "depth": w.depth, "seed": w.seeds, "status": w.status})
    table["epochs"] = w.epochs if w.epochs is not None else np.nan
    table["stop_reason"] = w.stop_reason if w.stop_reason is not None else ""
    for name, value in w.losses.items():
        table[name] = value
    if x_test is not None:
        from .outputs import network_non_affine_share

        table["non_affine_share"] = network_non_affine_share(w, x_test)
    return table


def experiment_statistics(
    networks: Iterable[TrainedWeights],
    window_fraction: float = 0.1,
    statistics: Sequence[str] = STATISTICS,
    labels: dict | None = None,
    norm: LayerNorm = layer_norms,
    x_test: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Statistics and training summary of all depths of one experiment (each network read once);
    with ``x_test`` the summary gives each network's non-affine share on those inputs."""
    stats, training = [], []
    for w in networks:
        stats.append(network_statistics(w, window_fraction, statistics, labels, norm))
        training.append(training_table(w, x_test))
    if not stats:
        raise ValueError("no trained networks given")
    stats_table = pd.concat(stats, ignore_index=True).sort_values(
        ["depth", "quantity", "statistic", "seed"], kind="stable", ignore_index=True
    )
    training_summary = pd.concat(training, ignore_index=True).sort_values(["depth", "seed"], ignore_index=True)
    return stats_table, training_summary

