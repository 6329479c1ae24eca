"""Scaling exponents with uncertainty, one verdict per population (docs/maths.md §3).

Exponent = −(OLS slope of log statistic on log L) over the depths of a fit window, every
(depth, seed) network one point. Uncertainty, besides the OLS standard error, comes from a
bootstrap over seeds: within each depth the seeds are resampled with replacement and the
slope refitted. With few seeds per depth the plain resample underestimates the variance of
a depth mean by (n−1)/n, so each resampled log value is moved away from its depth mean by
√(n/(n−1)) (the "modified residuals" of Davison & Hinkley, *Bootstrap Methods*, §2.3). The
95 % interval is the slope ± the bootstrap standard error times the Student quantile with
the Welch–Satterthwaite degrees of freedom of that error (the depths' variances are unequal
and each rests on n−1 seeds). With 4 seeds per depth a plain percentile interval covers
about 92 % on a log-linear model; this one 95 % there and 94 % on the RMS norm of i.i.d.
weights (1000 replications each; checked in ``tests/test_exponents.py``).

The same resampled seeds serve every statistic of an experiment, so each bootstrap draw is
a joint draw of all slopes: the regime rule applied draw by draw says how often the data
support the regime found on the point estimates (``support``). The rule itself, with its
thresholds, is :mod:`.regime_rule`.

One verdict per population (:func:`fit_populations`): where the networks the original rule
admits (``include_status``: converged and stopped on the plateau) split into those of the
primary statuses (converged) and others, the two sets are fitted separately. A population is
evaluated when it has ``min_depths`` depths in every fit window of the regime rule; the
primary verdict comes from the primary set where it is evaluated, else from the original
rule's set, and an experiment with no evaluated population is ``not evaluated``, its numbers
left blank (NaN) and its note saying why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..config import section_settings
from ..io import stable_seed
from .regime_rule import NO_USABLE_NETWORKS, NOT_EVALUATED, RegimeThresholds, depth_gap_cut, regime_of

#: Columns that describe an experiment and are carried from the statistics table.
LABEL_COLUMNS = ("experiment", "dataset", "dataset_kind", "activation", "delta", "shuffle")


#: The schema's defaults of the ``scaling`` section: the dataclasses below take theirs from it.
_SCALING_DEFAULTS = section_settings("scaling", {})
_FIT, _BOOTSTRAP, _POPULATION = (_SCALING_DEFAULTS[key] for key in ("fit", "bootstrap", "population"))


@dataclass(frozen=True)
class FitSettings:
    """Fit window (depths in [min_depth, max_depth], per-statistic overrides of min_depth),
    bootstrap size, level and seed, which network statuses enter the fits (the original rule),
    and the primary population with the depths a population needs. Defaults: the schema's
    ``scaling`` section."""

    min_depth: int = _FIT["min_depth"]
    max_depth: int | None = _FIT["max_depth"]
    min_depth_by_statistic: dict = field(default_factory=lambda: dict(_FIT["min_depth_by_statistic"]))
    resamples: int = _BOOTSTRAP["resamples"]
    level: float = _BOOTSTRAP["level"]
    seed: int = _BOOTSTRAP["seed"]
    include_status: tuple = tuple(_SCALING_DEFAULTS["include_status"])
    primary_status: tuple = tuple(_POPULATION["primary_status"])
    min_population_depths: int = _POPULATION["min_depths"]

    @classmethod
    def from_config(cls, cfg: dict | None) -> "FitSettings":
        """From the ``scaling`` config section, schema defaults filling what it omits."""
        cfg = section_settings("scaling", cfg or {})
        fit, boot = cfg["fit"], cfg["bootstrap"]
        return cls(
            min_depth=int(fit["min_depth"]),
            max_depth=fit["max_depth"],
            min_depth_by_statistic=dict(fit["min_depth_by_statistic"]),
            resamples=int(boot["resamples"]),
            level=float(boot["level"]),
            seed=int(boot["seed"]),
            include_status=tuple(cfg["include_status"]),
            primary_status=tuple(cfg["population"]["primary_status"]),
            min_population_depths=int(cfg["population"]["min_depths"]),
        )

    def window(self, statistic: str) -> tuple[int, float]:
        low = int(self.min_depth_by_statistic.get(statistic, self.min_depth))
        return low, float("inf") if self.max_depth is None else float(self.max_depth)


def weighted_slopes(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS slope and intercept of y on x over the points with weight 1, batched over leading axes.

    ``x`` broadcasts against ``y`` and ``w`` (0/1) on the last axis; NaN where fewer than two
    distinct x remain.
    """
    y = np.where(w > 0, y, 0.0)
    n = w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = (w * x).sum(axis=-1) / n
        ym = (w * y).sum(axis=-1) / n
        xc = x - xm[..., None]
        sxx = (w * xc * xc).sum(axis=-1)
        slope = (w * xc * (y - ym[..., None])).sum(axis=-1) / sxx
        slope = np.where(sxx > 1e-12, slope, np.nan)
    return slope, ym - slope * xm


def ols_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Slope, intercept and the slope's standard error of an OLS fit (NaN when not estimable)."""
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        return np.nan, np.nan, np.nan
    slope, intercept = weighted_slopes(x, y, np.ones_like(x))
    if n < 3:
        return float(slope), float(intercept), np.nan
    resid = y - intercept - slope * x
    stderr = np.sqrt((resid @ resid) / (n - 2) / ((x - x.mean()) @ (x - x.mean())))
    return float(slope), float(intercept), float(stderr)


@dataclass(frozen=True)
class LogLogFit:
    """The OLS fit log y = intercept + slope · log x: the slope's standard error and t-interval
    (NaN with fewer than three points) and ``n``, the points used."""

    slope: float
    intercept: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int

    def label(self, name: str = "slope") -> str:
        """The slope with its interval, as a figure legend quotes it."""
        return f"{name} {self.slope:+.2f} [{self.ci_low:+.2f}, {self.ci_high:+.2f}]"

    def line(self, x) -> np.ndarray:
        """The fitted power law at ``x``."""
        return np.exp(self.intercept) * np.asarray(x, dtype=float) ** self.slope


def loglog_fit(x, y, level: float = 0.95) -> LogLogFit:
    """:func:`ols_fit` of log y on log x over the points where both are finite and positive,
    with the slope's t-interval at ``level``: the one log-log fit of the tables and the figures
    alike (docs/maths.md §3, §7)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[keep]), np.log(y[keep])
    slope, intercept, stderr = ols_fit(lx, ly)
    half = sps.t.ppf((1 + level) / 2, len(lx) - 2) * stderr if len(lx) > 2 else np.nan
    return LogLogFit(slope, intercept, stderr, slope - half, slope + half, len(lx))


@dataclass
class SeedGrid:
    """The included networks of one experiment on a (depth, seed slot) grid, and the bootstrap
    draws of seed slots shared by all statistics."""

    depths: np.ndarray  # (D,)
    seeds: list[np.ndarray]  # per depth, the included seeds in slot order
    draws: np.ndarray  # (B, D, S_max) slot indices, resampled within each depth
    slots: np.ndarray  # (D, S_max) whether a slot holds a seed (depths differ in their seeds)

    @classmethod
    def build(cls, networks: pd.DataFrame, resamples: int, seed: int) -> "SeedGrid":
        by_depth, by_seed = networks["depth"].to_numpy(), networks["seed"].to_numpy()
        order = np.lexsort((by_seed, by_depth))  # by depth, then seed: each depth's seeds sorted, in one pass
        by_depth, by_seed = by_depth[order], by_seed[order]
        depths = np.unique(by_depth)
        starts, stops = np.searchsorted(by_depth, depths, "left"), np.searchsorted(by_depth, depths, "right")
        seeds = [by_seed[a:z] for a, z in zip(starts, stops)]
        s_max = max((len(s) for s in seeds), default=0)
        rng = np.random.default_rng(seed)
        draws = np.zeros((resamples, len(depths), s_max), dtype=int)
        for i, s in enumerate(seeds):
            draws[:, i, : len(s)] = rng.integers(0, len(s), size=(resamples, len(s)))
        slots = np.arange(s_max)[None, :] < np.array([len(s) for s in seeds], dtype=int)[:, None]
        return cls(depths, seeds, draws, slots)

    def values(self, table: pd.DataFrame) -> np.ndarray:
        """(D, S_max) grid of ``value`` from rows with columns depth, seed, value; NaN where absent."""
        grid = np.full((len(self.depths), self.draws.shape[2]), np.nan)
        lookup = dict(zip(zip(table["depth"].to_numpy(), table["seed"].to_numpy()), table["value"].to_numpy()))
        for i, (L, seeds) in enumerate(zip(self.depths, self.seeds)):
            grid[i, : len(seeds)] = [lookup.get((L, s), np.nan) for s in seeds]
        return grid


@dataclass
class Fit:
    """One log-log fit: point estimate, OLS standard error, bootstrap interval and draws."""

    slope: float
    intercept: float
    stderr: float
    slope_ci_low: float
    slope_ci_high: float
    ci_method: str
    min_depth: float
    max_depth: float
    n_depths: int
    n_seeds: int
    n_points: int
    draws: np.ndarray  # (B,) bootstrap slopes

    def row(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "draws"}
        out["exponent"] = -self.slope
        out["ci_low"], out["ci_high"] = -self.slope_ci_high, -self.slope_ci_low
        return out


def fit_grid(grid: SeedGrid, values: np.ndarray, window: tuple[float, float], level: float = 0.95) -> Fit:
    """Fit log value on log depth over the depths in ``window`` with the seed bootstrap."""
    if values.size == 0:  # no network at all: nothing to fit
        values = np.full((len(grid.depths), 1), np.nan)
        grid = SeedGrid(grid.depths, grid.seeds, np.zeros((grid.draws.shape[0], len(grid.depths), 1), dtype=int),
                        np.zeros((len(grid.depths), 1), dtype=bool))
    logy = np.full(values.shape, np.nan)
    positive = np.isfinite(values) & (values > 0)
    logy[positive] = np.log(values[positive])
    in_window = (grid.depths >= window[0]) & (grid.depths <= window[1])
    present = positive & in_window[:, None]
    x = np.broadcast_to(np.log(grid.depths.astype(float))[:, None], values.shape)
    used_depths = grid.depths[present.any(axis=1)]
    n_points = int(present.sum())
    slope, intercept, stderr = ols_fit(x[present], logy[present])

    # Seed bootstrap: slot draws → resampled values, modified-residual correction per depth.
    B = grid.draws.shape[0]
    rows = np.arange(values.shape[0])[None, :, None]
    yb = logy[rows, grid.draws]
    wb = present[rows, grid.draws] & grid.slots[None]
    count = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.where(present, logy, 0.0).sum(axis=1) / count, np.nan)
        inflate = np.where(count > 1, np.sqrt(count / np.maximum(count - 1, 1)), 1.0)
    yb = mean[None, :, None] + inflate[None, :, None] * (yb - mean[None, :, None])
    draws, _ = weighted_slopes(
        x.reshape(1, -1), yb.reshape(B, -1), wb.reshape(B, -1).astype(float)
    )
    used = present.any(axis=1)
    dof = _welch_dof(x[:, 0], logy, present, count, mean)
    quantile = sps.t.ppf(0.5 + level / 2, max(dof, 1.0))
    if dof > 0 and np.isfinite(draws).sum() > 1 and np.isfinite(slope):
        half, method = quantile * np.nanstd(draws, ddof=1), "seed-bootstrap"
    elif np.isfinite(stderr):  # one seed per depth: nothing to resample
        half, method = sps.t.ppf(0.5 + level / 2, n_points - 2) * stderr, "ols-t"
    else:
        half, method = np.nan, "none"
    ci = (slope - half, slope + half)
    return Fit(
        slope=slope,
        intercept=intercept,
        stderr=stderr,
        slope_ci_low=float(ci[0]),
        slope_ci_high=float(ci[1]),
        ci_method=method,
        min_depth=float(used_depths.min()) if len(used_depths) else np.nan,
        max_depth=float(used_depths.max()) if len(used_depths) else np.nan,
        n_depths=len(used_depths),
        n_seeds=int(count[used].max()) if len(used_depths) else 0,
        n_points=n_points,
        draws=draws,
    )


def _welch_dof(x: np.ndarray, logy: np.ndarray, present: np.ndarray, count: np.ndarray, mean: np.ndarray) -> float:
    """Welch–Satterthwaite degrees of freedom of the slope's variance Σ_i c_i² s_i²/n_i.

    The slope is Σ_i c_i ȳ_i with c_i = n_i (x_i − x̄)/S_xx; each depth's variance s_i² has
    n_i − 1 degrees of freedom, and a few noisy depths can dominate the sum.
    """
    multi = count > 1
    if not multi.any():
        return 0.0
    n = count.astype(float)
    xbar = (n * x).sum() / n.sum()
    sxx = (n * (x - xbar) ** 2).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(present, (logy - mean[:, None]) ** 2, 0.0).sum(axis=1) / (n - 1)
        a = np.where(multi, (n * (x - xbar) / sxx) ** 2 * var / n, 0.0)
        denominator = np.where(multi, a**2 / (n - 1), 0.0).sum()
    return float(a.sum() ** 2 / denominator) if denominator > 0 else float((n[multi] - 1).sum())


def usable(networks: pd.DataFrame, include) -> pd.Series:
    """Mask of the networks (rows with status, finite) that may enter a fit."""
    return networks["finite"].astype(bool) & networks["status"].isin(include)


def _excluded(networks: pd.DataFrame, include: tuple) -> tuple[pd.Series, str]:
    """Mask of included networks and a 'status:count' summary of the excluded ones."""
    keep = usable(networks, include)
    wrong_status = ~networks["status"].isin(include)
    reasons = networks["status"].where(wrong_status, "non-finite").loc[~keep]
    summary = "; ".join(f"{k}:{v}" for k, v in sorted(reasons.value_counts().items()))
    return keep, summary


def fit_experiment(
    statistics: pd.DataFrame, settings: FitSettings, thresholds: RegimeThresholds
) -> tuple[pd.DataFrame, dict]:
    """Exponents of every (quantity, statistic) of one experiment, and its regime with evidence.

    ``statistics`` is the tidy table of :func:`resnet_scaling.scaling.statistics.experiment_statistics`
    for one experiment. Returns the exponents table and the regime record (a dict).
    """
    experiment = str(statistics["experiment"].iloc[0])
    labels = {c: statistics[c].iloc[0] for c in LABEL_COLUMNS if c in statistics}
    networks = statistics.drop_duplicates(["depth", "seed"])[["depth", "seed", "status", "finite"]]
    keep, excluded = _excluded(networks, settings.include_status)
    n_excluded = int((~keep).sum())
    grid = SeedGrid.build(
        networks.loc[keep], settings.resamples, stable_seed("bootstrap", settings.seed, experiment)
    )
    rows, fits = [], {}
    for (quantity, statistic), part in statistics.groupby(["quantity", "statistic"], sort=False):
        fit = fit_grid(grid, grid.values(part), settings.window(statistic), settings.level)
        fits[quantity, statistic] = fit
        rows.append({**labels, "quantity": quantity, "statistic": statistic, **fit.row(),
                     "n_excluded": n_excluded, "excluded": excluded})
    table = pd.DataFrame(rows)
    regime = regime_of(fits, thresholds)
    n_usable = int(keep.sum())
    note = ""
    if n_usable == 0:
        regime["regime"] = NO_USABLE_NETWORKS
        note = (f"all {len(networks)} networks excluded ({excluded}); accepted statuses: "
                f"{', '.join(settings.include_status)}")
    regime = {**labels, **regime, "n_usable": n_usable, "n_excluded": n_excluded, "excluded": excluded,
              "note": note}
    return table, regime


def exponents_of(exponents: pd.DataFrame, experiment: str, statistic: str = "rms_norm") -> dict[str, float]:
    """Exponent of every quantity of one experiment's primary population by ``statistic`` (0
    where it could not be fitted)."""
    exponents = primary_rows(exponents)
    part = exponents[(exponents["experiment"] == experiment) & (exponents["statistic"] == statistic)]
    if part.empty:
        raise ValueError(f"exponents table has no {statistic!r} rows for experiment {experiment!r}")
    return {q: float(e) if np.isfinite(e) else 0.0 for q, e in zip(part["quantity"], part["exponent"])}


def population_label(statuses) -> str:
    """The name of a population: its statuses joined by '+' ('converged', 'converged+stopped')."""
    return "+".join(statuses)


def population_statuses(label: str) -> tuple[str, ...]:
    """The statuses of a population from its name (:func:`population_label`)."""
    return tuple(label.split("+"))


def _members(networks: pd.DataFrame, mask: pd.Series) -> str:
    """'status:count' of the networks of a population, in the order of their first appearance."""
    counts = networks.loc[mask, "status"].value_counts(sort=False)
    return "; ".join(f"{k}:{v}" for k, v in counts.items())


def regime_depths(networks: pd.DataFrame, settings: FitSettings, thresholds: RegimeThresholds) -> int:
    """The fewest depths of the given networks in the fit window of any of the three statistics
    the regime rule reads."""
    depths = np.unique(networks["depth"].to_numpy())
    counts = []
    for statistic in (thresholds.exponent_statistic, "increment_ratio", "quadratic_variation"):
        low, high = settings.window(statistic)
        counts.append(int(((depths >= low) & (depths <= high)).sum()))
    return min(counts)


#: Columns of a fit that a population without enough depths leaves blank.
_FIT_NUMBERS = ("slope", "intercept", "stderr", "slope_ci_low", "slope_ci_high", "exponent", "ci_low", "ci_high")
_REGIME_NUMBERS = ("support", "exponent", "exponent_ci_low", "exponent_ci_high", "increment_ratio_slope",
                   "increment_ratio_ci_low", "increment_ratio_ci_high", "quadratic_variation_slope",
                   "quadratic_variation_ci_low", "quadratic_variation_ci_high")


def population_masks(networks: pd.DataFrame, settings: FitSettings) -> list[tuple[tuple, pd.Series, bool]]:
    """The populations of an experiment's networks (rows with status, finite): (statuses, mask,
    whether it is the original rule's set), the primary statuses' set first. One population when
    both rules admit the same networks, named by what its members are."""
    original, wanted = tuple(settings.include_status), tuple(settings.primary_status)
    in_original, in_primary = usable(networks, original), usable(networks, wanted)
    if in_primary.any() and not in_primary.equals(in_original):
        return [(wanted, in_primary, False), (original, in_original, True)]
    same = bool(in_primary.any()) and set(networks.loc[in_original, "status"]) <= set(wanted)
    return [(wanted if same else original, in_original, True)]


def fit_populations(
    statistics: pd.DataFrame, settings: FitSettings, thresholds: RegimeThresholds
) -> tuple[pd.DataFrame, list[dict]]:
    """Exponents and regime of each population of one experiment, the primary one flagged.

    The original rule's networks (``settings.include_status``) and those of
    ``settings.primary_status`` are one population when they are the same networks, else two,
    each fitted by :func:`fit_experiment`. Every row carries ``population`` (its statuses),
    ``primary``, ``original_rule``, ``members`` (networks per status), ``evaluated`` and a
    ``population_note``; a population with fewer than ``settings.min_population_depths`` depths
    in a fit window of the regime rule is not evaluated: no numbers, a note saying why.
    """
    networks = statistics.drop_duplicates(["depth", "seed"])[["depth", "seed", "status", "finite"]]
    fitted = []
    for statuses, mask, is_original in population_masks(networks, settings):
        own = replace(settings, include_status=statuses)
        cut, gap_note = depth_gap_cut(networks.loc[mask, "depth"], thresholds.max_depth_gap,
                                      settings.min_population_depths, population_label(statuses))
        if cut is not None:
            own = replace(own, max_depth=cut if settings.max_depth is None else min(cut, int(settings.max_depth)))
        table, regime = fit_experiment(statistics, own, thresholds)
        n_depths = regime_depths(networks.loc[mask & (networks["depth"] <= (cut or np.inf))], settings, thresholds)
        enough = regime["regime"] == NO_USABLE_NETWORKS or n_depths >= settings.min_population_depths
        fitted.append([statuses, mask, is_original, table, regime, n_depths, enough, gap_note])
    evaluated = [f for f in fitted if f[6]]
    chosen = (evaluated or fitted[-1:])[0]
    frames, regimes = [], []
    for entry in fitted:
        statuses, mask, is_original, table, regime, n_depths, enough, gap_note = entry
        label = population_label(statuses)
        note = gap_note
        if not enough:
            short = (f"{label} networks at {n_depths} depth{'s' * (n_depths != 1)} of the regime rule's fit window "
                     f"(at least {settings.min_population_depths} needed)")
            note = "; ".join(filter(None, [note, short]))
            table = table.assign(**{c: np.nan for c in _FIT_NUMBERS})
            regime = {**regime, **{c: np.nan for c in _REGIME_NUMBERS}, "regime": NOT_EVALUATED}
            if not evaluated:
                note += "; no population of the experiment has enough depths"
        extra = {"population": label, "primary": entry is chosen, "original_rule": is_original,
                 "members": _members(networks, mask), "evaluated": bool(enough), "population_note": note}
        frames.append(table.assign(**extra))
        regimes.append({**regime, **extra, "population_depths": n_depths})
    order = sorted(range(len(regimes)), key=lambda i: not regimes[i]["primary"])
    return pd.concat([frames[i] for i in order], ignore_index=True), [regimes[i] for i in order]


def primary_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the primary population of every experiment (a table without populations is
    all primary)."""
    if "primary" not in table:
        return table
    return table[table["primary"].astype(str).str.lower().isin(["true", "1"])]


def fit_all(
    tables: list[pd.DataFrame], settings: FitSettings, thresholds: RegimeThresholds
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``exponents.csv`` and ``regimes.csv`` for all experiments (one statistics table each),
    one block of rows per population (:func:`fit_populations`), the primary one first."""
    exponents, regimes = [], []
    for table in tables:
        exp_table, populations = fit_populations(table, settings, thresholds)
        exponents.append(exp_table)
        regimes.extend(populations)
    return pd.concat(exponents, ignore_index=True), pd.DataFrame(regimes)
