"""Fitting limits to trained networks (docs/maths.md §4, "Trained networks"): per depth the
kernel estimates, the pathwise and the generative comparison; per experiment the tables and
the summary the note quotes."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from ..config import section_settings
from ..distances import wasserstein1
from ..io import stable_seed
from ..sde.coefficients import Tabulated
from ..sde.diffusions import MomentMatchedDiffusion, sample_diffusion, solve_mean_field_ode
from ..sde.ito import sample_ito_sde
from ..sde.ode import solve_linear_ode, solve_neural_ode
from ..sde.tensors import DTYPE, as_tensor
from ..sde.tensors import progress as progress_bar
from ..training.activations import get_activation
from .coefficients import CoefficientEstimate, KernelWeightPathLaw, coefficient_agreement, estimate_coefficients
from .network import network_outputs, network_states
from .pathwise import pathwise_coefficients
from .choice import choose_limit, estimate_beta, normalise_regime


@dataclass
class TrainedFit:
    """Everything fitted for one (experiment, depth): tables as lists of row dicts."""

    pathwise: list[dict]
    generative: list[dict]
    coefficients: list[dict]
    trajectories: list[dict]
    estimate: CoefficientEstimate | None = None  # the kernel estimates, without their residuals


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over samples and coordinates, per leading index: out (..., N, d)."""
    return (out - y).pow(2).mean(dim=(-1, -2))


def fit_trained_depth(
    w,
    x_test,
    y_test,
    limit: str,
    cfg: dict,
    *,
    labels: dict | None = None,
    seed: int = 0,
    trajectory_depth: bool = False,
) -> TrainedFit:
    """Fit and simulate the chosen limit for all seeds of one trained (experiment, depth).

    ``w``: a :class:`resnet_scaling.scaling.weights.TrainedWeights`; ``cfg`` the ``limits.fit``
    config, schema defaults filling what it omits (bandwidth, n_grid, steps, n_inputs, n_pathwise_inputs, draws, max_layers,
    n_trajectories). Non-finite seeds are left out.
    """
    cfg = section_settings("limits.fit", cfg)
    labels = dict(labels or {})
    act = get_activation(w.activation)
    keep = np.asarray(w.finite, bool)
    if not keep.any():
        raise ValueError(f"{w.experiment} depth {w.depth}: no seed has finite weights")
    A, b, delta = (as_tensor(a if keep.all() else a[keep]) for a in (w.A, w.b, w.delta))  # no copy of A when all are kept
    seeds = np.asarray(w.seeds)[keep]
    L = A.shape[1]
    x_all, y_all = as_tensor(x_test), as_tensor(y_test)
    n_in = min(int(cfg["n_inputs"]), len(x_all))
    x, y = x_all[:n_in], y_all[:n_in]
    n_pw = min(int(cfg["n_pathwise_inputs"]), n_in)
    base = {**labels, "depth": L, "limit": limit}
    need_cov = limit == "ito_sde" and act.curvature_at_0 != 0.0
    est = estimate_coefficients(A, b, delta, float(cfg["bandwidth"]), int(cfg["n_grid"]), with_row_cov=need_cov)
    n_tr = min(int(cfg["n_trajectories"]), n_pw) if trajectory_depth else 0
    pw_rows, pathwise = _pathwise_rows(limit, A, b, delta, act, x[:n_pw], est, cfg, seeds, base, n_figure=n_tr)
    n_gen = int(cfg["steps"])
    gen_seed = stable_seed("limits-generative", seed, labels.get("experiment", ""), L)
    variants, generative = _generative_variants(limit, A, b, delta, act, est, x, cfg, n_gen, gen_seed)
    traj_rows = []
    if trajectory_depth:  # the figure's network: first seed, first inputs
        h_figure = network_states(A[:1], b[:1], delta[:1], act, x[:n_tr])
        traj_rows = _trajectory_rows(h_figure, pathwise, generative, n_tr, n_gen, base)
    hL = network_outputs(A, b, delta, act, x)  # (S, n_in, d)
    return TrainedFit(pw_rows, _generative_rows(variants, hL, x, y, n_gen, base), _coefficient_rows(est, seeds, base),
                      traj_rows, replace(est, residuals=None, row_cov=None))


def _coefficient_rows(est, seeds, base: dict) -> list[dict]:
    """The estimated coefficients against t, per seed."""
    coef_rows = []
    for s in range(len(seeds)):
        for j, t in enumerate(est.ts.tolist()):
            for q, v in (
                ("drift_A_norm", est.A_bar[s, j].norm()),
                ("drift_b_norm", est.b_bar[s, j].norm()),
                ("delta_bar", est.delta_bar[s, j]),
                ("diffusion_trace", est.cov_trace[s, j]),
            ):
                coef_rows.append({**base, "seed": int(seeds[s]), "t": t, "quantity": q, "value": float(v)})
    return coef_rows


#: Layers × networks × inputs × width of the hidden states the pathwise comparison holds at
#: once (256 MB of float64): at L = 9100 with 8 networks of width 25, 18 inputs at a time.
PATHWISE_CHUNK_ELEMENTS = 2**25


def _pathwise_rows(limit, A, b, delta, act, x, est, cfg, seeds, base, *, n_figure: int = 0
                   ) -> tuple[list[dict], tuple | None]:
    """(a) The limit driven by the networks' own weights coarsened to N steps, against the
    networks' states on the inputs ``x``, a few inputs at a time (each input's paths are its
    own); also the solution drawn in the figure (first seed, ``n_figure`` first inputs)."""
    pw_rows = []
    if limit == "moment_matched":
        return pw_rows, None
    S, L, d = A.shape[:3]
    steps = [n for n in sorted({int(n) for n in cfg["pathwise_steps"]} | {L}) if n <= L]
    forms = ["q_dt", "realised"] if limit == "ito_sde" and act.curvature_at_0 != 0.0 else ["ode" if "ode" in limit else "q_dt"]
    traj_n = max([n for n in steps if n <= min(L, 128)] or [min(steps)])  # the one drawn in the figure
    per_chunk = max(n_figure, 1, PATHWISE_CHUNK_ELEMENTS // ((L + 1) * S * d))
    # the coefficients once per depth (block sums over L layers), the solves per chunk of inputs
    coefficients = {(n, form): pathwise_coefficients(limit, A, b, delta, act, n, est, "q_dt" if form == "ode" else form)
                    for n in steps for form in forms}
    counts = {n: len(coefficients[n, forms[0]].edges) - 1 for n in steps}
    errors: dict[tuple, list] = {key: [] for key in coefficients}
    motions, figure = [], None
    for lo in range(0, x.shape[0], per_chunk):
        xc = x[lo:lo + per_chunk]
        h = network_states(A, b, delta, act, xc)  # (L+1, S, chunk, d)
        motions.append(_max_gap(h, np.arange(L + 1), h[0]))  # size of the hidden-state path
        for (n, form), coefficient in coefficients.items():
            H = coefficient.solve(xc)
            errors[n, form].append(_max_gap(h, coefficient.edges, H))
            if lo == 0 and n == traj_n and form in ("ode", "q_dt"):
                figure = (H[:, :1, :n_figure].clone(), coefficient.edges)
            del H
        del h
    del coefficients
    motion = torch.cat(motions, dim=1)  # (S, n_pw)
    for n in steps:
        for form in forms:
            err = torch.cat(errors[n, form], dim=1)  # (S, n_pw): largest distance along the path
            rel = err / motion.clamp_min(1e-300)
            for s in range(len(seeds)):
                pw_rows.append({
                    **base, "seed": int(seeds[s]), "n_steps": counts[n], "form": form,
                    "measures": "taylor_remainder" if counts[n] == L else "coarsened",
                    "error": float(err[s].pow(2).mean().sqrt()),
                    "relative_error": float(rel[s].pow(2).mean().sqrt()),
                })
    return pw_rows, figure


def _max_gap(h: torch.Tensor, edges: np.ndarray, H: torch.Tensor, layers: int = 512) -> torch.Tensor:
    """max over j of |h[e_j] − H_j| per (network, input), (S, N): ``h`` (L+1, S, N, d), ``H``
    (len(edges), S, N, d) or one state (S, N, d) for every j. A few hundred layers at a time,
    so no temporary of the size of ``h`` is made."""
    gap = None
    for j in range(0, len(edges), layers):
        other = H[j:j + layers] if H.dim() == h.dim() else H
        part = (h[torch.as_tensor(edges[j:j + layers])] - other).norm(dim=-1).amax(0)
        gap = part if gap is None else torch.maximum(gap, part)
    return gap


def _generative_variants(limit, A, b, delta, act, est, x, cfg, n_gen: int, gen_seed: int) -> tuple[dict, torch.Tensor]:
    """(b) The limit with fresh noise and the estimated coefficients: outputs per variant
    (S or 1, R, n_in, d), and the trajectories of the variant ``limit`` (n+1, S or 1, R, n_in, d)."""
    S = A.shape[0]
    draws = int(cfg["draws"])
    variants: dict[str, torch.Tensor] = {}
    traj: dict[str, torch.Tensor] = {}
    ts_gen = torch.linspace(0, 1, n_gen + 1, dtype=DTYPE)
    if limit in ("linear_ode", "neural_ode", "ito_sde"):
        trend = solve_linear_ode(Tabulated(est.ts, est.A_bar.transpose(0, 1)), Tabulated(est.ts, est.b_bar.transpose(0, 1)),
                                 x, gain=act.slope_at_0, ts=ts_gen)
        if limit == "linear_ode":
            variants["limit"] = trend[-1].unsqueeze(1)
            traj["limit"] = trend.unsqueeze(2)
        elif limit == "neural_ode":
            Hn = solve_neural_ode(Tabulated(est.ts, est.A_mean.transpose(0, 1)), Tabulated(est.ts, est.b_mean.transpose(0, 1)),
                                  x, act, delta=Tabulated(est.ts, est.delta_bar.transpose(0, 1)), ts=ts_gen)
            variants["limit"] = Hn[-1].unsqueeze(1)
            traj["limit"] = Hn.unsqueeze(2)
        else:
            outs, trs = [], []
            for s in range(S):
                law = KernelWeightPathLaw(est, s)
                Hs = sample_ito_sde(law, x, act, n_gen, draws, stable_seed(gen_seed, s), delta=float(delta[s].mean()))
                outs.append(Hs[-1])
                trs.append(Hs)
            variants["limit"] = torch.stack(outs)  # (S, R, n_in, d)
            traj["limit"] = torch.stack(trs, 1)  # (n+1, S, R, n_in, d)
            variants["trend_only"] = trend[-1].unsqueeze(1)
            if S > 1:  # the seeds as draws of one law: common drift, pooled covariance
                law = KernelWeightPathLaw(est, range(S))
                Hp = sample_ito_sde(law, x, act, n_gen, draws * S, stable_seed(gen_seed, "pooled"),
                                    delta=float(delta.mean()), record_every=n_gen)
                variants["limit_pooled"] = Hp[-1].unsqueeze(0)
    else:
        mm = MomentMatchedDiffusion(A, b, delta, act, float(cfg["bandwidth"]),
                                    max_layers=int(cfg["max_layers"]))
        Hm = sample_diffusion(mm, x, n_gen, draws, gen_seed)  # (n+1, R, n_in, d), pooled over seeds
        variants["limit"] = Hm[-1].unsqueeze(0)
        traj["limit"] = Hm.unsqueeze(1)
        # the mean-field ODE of docs/maths.md §4(e): each network's window-mean field, no noise
        mean_field = [
            solve_mean_field_ode(MomentMatchedDiffusion(A[s:s + 1], b[s:s + 1], delta[s:s + 1], act,
                                                        float(cfg["bandwidth"])),
                                 x, n_gen, int(cfg["max_layers"]))[-1, 0]
            for s in range(S)
        ]
        variants["mean_field_ode"] = torch.stack(mean_field).unsqueeze(1)  # (S, 1, n_in, d)
    return variants, traj["limit"]


def _generative_rows(variants: dict, hL: torch.Tensor, x, y, n_gen: int, base: dict) -> list[dict]:
    """Each generative variant against the networks' outputs ``hL`` (S, n_in, d): per network,
    in law input by input, in Wasserstein-1 and in test loss."""
    S, n_in, d = hL.shape
    gen_rows = []
    net_pool = hL.reshape(-1, d)
    loss_net = _mse(hL, y)  # (S,)
    size = (hL - x).norm(dim=-1).pow(2).mean().sqrt()  # RMS size of the change h_L − x

    def spread(z: torch.Tensor) -> float:
        """RMS over inputs of the spread (root total variance) of samples z (n, n_in, d) at each input."""
        return float(z.var(0).sum(-1).mean().sqrt()) if z.shape[0] > 1 else float("nan")

    net_spread = spread(hL)
    for name, out in variants.items():
        # per network: the mean over draws against that network's own output
        per_net = (out.mean(1) - hL).norm(dim=-1).pow(2).mean(-1)  # (S,) mean square over inputs
        bias = per_net.mean().sqrt()
        ci_low, ci_high = _network_bootstrap(per_net.numpy(), float(size)) if out.shape[0] == S else (math.nan, math.nan)
        # per input, in law: mean and spread of all draws against those of the networks
        pooled = out.reshape(-1, n_in, d)
        mean_err = (pooled.mean(0) - hL.mean(0)).norm(dim=-1).pow(2).mean().sqrt()
        lim_spread = spread(pooled) if pooled.shape[0] > 1 else 0.0
        gen_rows.append({
            **base, "variant": name, "n_seeds": S, "draws": out.shape[1], "n_inputs": n_in, "steps": n_gen,
            "output_w1": wasserstein1(pooled.reshape(-1, d), net_pool),
            "output_rmse": float(bias), "relative_output_error": float(bias / size),
            "relative_output_error_ci_low": ci_low, "relative_output_error_ci_high": ci_high,
            "relative_mean_error": float(mean_err / size),
            # standard error of that difference of means, from the two spreads and sample sizes
            "relative_mean_error_se": float(math.sqrt(
                (net_spread**2 / S if np.isfinite(net_spread) else 0.0) + lim_spread**2 / max(pooled.shape[0], 1)) / size),
            "limit_spread": lim_spread, "network_spread": net_spread,
            "spread_ratio": lim_spread / net_spread if np.isfinite(net_spread) and net_spread > 0 else float("nan"),
            "test_loss_network": float(loss_net.mean()), "test_loss_limit": float(_mse(out, y).mean()),
        })

    return gen_rows


def _network_bootstrap(mean_squares: np.ndarray, size: float, resamples: int = 1000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the relative RMS error over networks, resampling the networks
    (NaN for a single network: nothing to resample)."""
    if len(mean_squares) < 2 or not size > 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = np.sqrt(mean_squares[rng.integers(0, len(mean_squares), (resamples, len(mean_squares)))].mean(1)) / size
    return float(np.quantile(draws, (1 - level) / 2)), float(np.quantile(draws, (1 + level) / 2))


def _trajectory_rows(h, pathwise, T, n_tr: int, n_gen: int, base: dict) -> list[dict]:
    """Trajectories of a few inputs (first seed): the network, the pathwise limit drawn in the
    figure and a few draws of the generative limit ``T`` (n+1, S or 1, R, n_in, d)."""
    L, d = h.shape[0] - 1, h.shape[-1]
    traj_rows = []
    coords = range(min(2, d))
    sub = np.unique(np.round(np.linspace(0, L, min(L, 200) + 1)).astype(int))
    for i in range(n_tr):
        for c in coords:
            for k in sub:
                traj_rows.append({**base, "input": i, "coordinate": c, "source": "network", "draw": 0,
                                  "t": k / L, "value": float(h[k, 0, i, c])})
            if pathwise is not None:
                H, edges = pathwise
                for j, e in enumerate(edges):
                    traj_rows.append({**base, "input": i, "coordinate": c, "source": "pathwise limit", "draw": 0,
                                      "t": e / L, "value": float(H[j, 0, i, c])})
            for r in range(min(T.shape[2], 3)):
                for j in range(0, n_gen + 1, max(1, n_gen // 100)):
                    traj_rows.append({**base, "input": i, "coordinate": c, "source": "generative limit", "draw": r,
                                      "t": j / n_gen, "value": float(T[j, 0, r, i, c])})
    return traj_rows


PATHWISE_COLUMNS = ["experiment", "regime", "depth", "limit", "seed", "n_steps", "form", "measures", "error", "relative_error"]


def fit_trained(
    train_paths: Sequence,
    dataset_path,
    regime: str,
    cfg: dict,
    *,
    beta: float = float("nan"),
    experiment: str = "",
    seed: int = 0,
    progress: bool = False,
    statuses: Sequence[str] | None = None,
) -> dict:
    """Fit the limit of an experiment's deepest networks (one training output per depth).

    Chooses the limit from ``regime`` (:func:`choose_limit`; β from the scaling stage or,
    if NaN, from these depths), then for every depth: kernel estimates, the pathwise
    comparison (a) and the generative one (b). With ``statuses`` (the population the scaling
    stage's verdict describes, e.g. converged) only those networks are fitted, and a depth
    without one is left out. Returns the tables ``pathwise``, ``generative``,
    ``coefficients``, ``trajectories``, ``agreement`` (DataFrames) and a ``summary`` dict.
    """
    import pandas as pd

    from ..io import read_npz
    from ..scaling.weights import load_training, select_seeds

    cfg = section_settings("limits.fit", cfg)
    if not len(train_paths):
        raise ValueError(f"{experiment}: no training outputs given")

    def population(path):
        w = load_training(path)
        return select_seeds(w, np.isin(w.status, list(statuses))) if statuses is not None else w

    # one depth in memory at a time (at L = 9100 one depth's weights are GBs in float64): a first
    # pass finds the depths that hold networks and, without β from the scaling stage, the RMS
    # layer norms β is estimated from
    depths, rms, w0 = {}, {}, None
    for path in train_paths:
        w = population(path)
        if len(w.seeds):
            depths[path] = w.depth
            if not np.isfinite(beta):
                rms[w.depth] = _rms_layer_norm(w)
            if w0 is None or w.depth > w0.depth:  # the deepest: its labels, not its weights
                w0 = select_seeds(w, np.zeros(len(w.seeds), bool))
        del w
    if w0 is None:
        raise ValueError(f"{experiment}: no network of status {'/'.join(statuses or [])} at the depths given")
    data, _ = read_npz(dataset_path)
    for key in ("x_test", "y_test"):
        if key not in data:
            raise ValueError(f"{dataset_path}: no array {key!r}")
    beta_used = beta if np.isfinite(beta) else estimate_beta(list(rms), list(rms.values()))
    limit = choose_limit(regime, w0.activation, w0.delta_type, beta_used, float(cfg["beta_min"]))
    labels = {"experiment": experiment or w0.experiment, "regime": normalise_regime(regime)}
    deepest, networks_by_depth = w0.depth, {}
    tables: dict[str, list] = {"pathwise": [], "generative": [], "coefficients": [], "trajectories": []}
    ests = {}
    for path in progress_bar(sorted(depths, key=depths.get), progress, f"limits {labels['experiment']}"):
        w = population(path)
        fit = fit_trained_depth(w, data["x_test"], data["y_test"], limit, cfg, labels=labels, seed=seed,
                                trajectory_depth=w.depth == deepest)
        for name in tables:
            tables[name] += getattr(fit, name)
        ests[w.depth] = fit.estimate
        networks_by_depth[int(w.depth)] = int(np.asarray(w.finite, bool).sum())
        del w, fit
    out = {k: pd.DataFrame(v) for k, v in tables.items()}
    if out["pathwise"].empty:  # moment-matched: compared in law only; keep the header
        out["pathwise"] = pd.DataFrame(columns=PATHWISE_COLUMNS)
    agreement = pd.DataFrame(coefficient_agreement(ests))
    agreement.insert(0, "experiment", labels["experiment"])
    out["agreement"] = agreement
    out["summary"] = summarise_fit(out, labels["experiment"], labels["regime"], limit, beta_used, w0)
    out["summary"]["population"] = "+".join(statuses) if statuses is not None else "all"
    out["summary"]["networks_by_depth"] = networks_by_depth
    return out


def _rms_layer_norm(w) -> float:
    """RMS over the finite networks and layers of the Frobenius norm of A_k (β's statistic)."""
    A = w.A[np.asarray(w.finite, bool)]
    return float(np.sqrt(np.mean(np.sum(np.square(A, dtype=np.float64), axis=(-1, -2))))) if len(A) else float("nan")


def summarise_fit(tables: dict, experiment: str, regime: str, limit: str, beta: float, w) -> dict:
    """The numbers the note quotes for one experiment, read from its tables (deepest depth).

    The generative variant quoted is ``limit_pooled`` when there is one (the seeds as draws of
    one law), else ``limit``."""
    L = int(w.depth)
    gen = tables["generative"]
    at_L = gen[gen.depth == L]
    variant = "limit_pooled" if (at_L.variant == "limit_pooled").any() else "limit"
    g = at_L[at_L.variant == variant].iloc[0]
    summary = {
        "experiment": experiment, "regime": regime, "limit": limit, "beta": beta, "activation": w.activation,
        "delta": w.delta_type, "depth": L, "depths": sorted(int(x) for x in gen.depth.unique()),
        "variant": variant, "stochastic": limit in ("ito_sde", "moment_matched"), "n_seeds": int(g.n_seeds),
    }
    for key in ("output_w1", "relative_output_error", "relative_mean_error", "relative_mean_error_se",
                "limit_spread", "network_spread", "spread_ratio", "test_loss_network", "test_loss_limit"):
        summary[key] = float(g[key])
    trend = at_L[at_L.variant == "trend_only"]
    if len(trend):
        summary["test_loss_trend_only"] = float(trend.test_loss_limit.iloc[0])
    mean_field = gen[gen.variant == "mean_field_ode"].sort_values("depth")
    if len(mean_field):  # §4(e): does each network approach its own mean-field ODE as L grows?
        summary["mean_field_relative_error_by_depth"] = dict(zip(mean_field.depth.astype(int).tolist(),
                                                                 mean_field.relative_output_error.astype(float).tolist()))
        summary["mean_field_relative_error_ci_by_depth"] = {
            int(r.depth): [float(r.relative_output_error_ci_low), float(r.relative_output_error_ci_high)]
            for r in mean_field.itertuples()}
        summary["mean_field_networks_by_depth"] = {int(r.depth): int(r.n_seeds) for r in mean_field.itertuples()}
        summary["network_spread_by_depth"] = dict(zip(mean_field.depth.astype(int).tolist(),
                                                      mean_field.network_spread.astype(float).tolist()))
        diffusion = gen[gen.variant == "limit"].sort_values("depth")
        summary["diffusion_spread_by_depth"] = dict(zip(diffusion.depth.astype(int).tolist(),
                                                        diffusion.limit_spread.astype(float).tolist()))
    pw = tables["pathwise"]
    if len(pw):
        p = pw[(pw.depth == L) & (pw.form != "realised")].groupby("n_steps").relative_error.mean()
        summary["pathwise_relative_error"] = {int(k): float(v) for k, v in p.items()}
        by_depth = pw[(pw.form != "realised") & (pw.measures == "taylor_remainder")].groupby("depth").error.mean()
        summary["taylor_remainder_by_depth"] = {int(k): float(v) for k, v in by_depth.items()}
    agr = tables["agreement"]
    shallow = agr[agr.depth == agr.depth.min()]
    summary["agreement_shallowest"] = {r.quantity: float(r.relative_difference) for r in shallow.itertuples()}
    return summary
