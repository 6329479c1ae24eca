"""Why ReLU networks with a per-layer δ stop on a plateau (docs/results.md: the stalled ReLU band).

A ReLU block adds δ_k relu(A_k h + b_k): a vector whose every coordinate has the sign of δ_k.
When every δ_k of a network is positive, every block only adds, so h_L − x ≥ 0 in every
coordinate and the loss cannot fall below the *non-negative floor* of the data

    F₊ = mean over samples and coordinates of min(y − x, 0)²,

the loss of the best map x ↦ x + g(x) with g ≥ 0 (taken pointwise, so no network reaches it).
Where F₊ exceeds ε such a network never converges: the stopping rule ends it on the plateau.

How the δ_k lose their signs: Adam's update is normalised per parameter, so its first steps
move every δ_k by about lr, while δ_k is drawn N(0, 1/L²) (the original study's law). Where
1/L is below lr the first steps set every sign, and at initialisation (A_k, b_k of size 1/L)
the gradients of all δ_k point the same way. A δ_k drawn with a standard deviation above lr
(``delta_init_sd``) keeps a share of negative layers.

:func:`probe` trains a few depths of an experiment under variants of its config for a few
epochs and reports, per network, its status and loss, the share of negative δ_k at
initialisation and at the end, whether its blocks only add on the test inputs, and the loss
history: the measurements of docs/results.md. ``python -m resnet_scaling.scaling.plateau --help``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Every probe variant: a name and the experiment keys it changes.
VARIANTS = {
    "original": {},
    "lr 3e-4": {"lr": 3e-4},
    "delta_init_sd 0.01": {"delta_init_sd": 0.01},
}


def nonnegative_floor(x: np.ndarray, y: np.ndarray) -> float:
    """F₊ = mean of min(y − x, 0)²: no network whose blocks only add (h_L ≥ x) has a smaller loss."""
    return float(np.mean(np.minimum(np.asarray(y) - np.asarray(x), 0.0) ** 2))


def delta_signs(delta: np.ndarray) -> dict[str, np.ndarray]:
    """Per seed of δ (S, L): the share of negative δ_k and of sign changes between consecutive layers."""
    delta = np.asarray(delta)
    negative = (delta < 0).mean(axis=1)
    changes = (np.sign(delta[:, 1:]) != np.sign(delta[:, :-1])).mean(axis=1) if delta.shape[1] > 1 else np.zeros(len(delta))
    return {"negative_share": negative, "sign_change_share": changes}


def only_adds(w, x: np.ndarray) -> np.ndarray:
    """(S,) whether h_L − x ≥ 0 in every coordinate of every input x (N, d) (to 1e-12)."""
    from .outputs import network_outputs

    out = network_outputs(w, x)
    return ((out - np.asarray(x, dtype=np.float64)) >= -1e-12).all(axis=(1, 2))


def probe(experiment: str, exp_cfg: dict, data: dict, depths: Sequence[int], variants: dict[str, dict],
          base_seed: int = 0, seeds: int | None = None, max_epochs: int | None = None) -> pd.DataFrame:
    """Train ``depths`` of one experiment under each variant (experiment keys changed) and report
    every network: status, epochs, final training loss, the share of negative δ_k at initialisation
    and at the end, whether it only adds on the test inputs, and its training-loss history."""
    from ..training.train import train_ensemble
    from .weights import TrainedWeights

    x_test = np.asarray(data["x_test"], dtype=np.float64)
    rows = []
    for name, change in variants.items():
        cfg = {**exp_cfg, **change, **({"seeds": seeds} if seeds else {}),
               **({"max_epochs": max_epochs} if max_epochs else {})}
        for depth in depths:
            result = train_ensemble(experiment, cfg, int(depth), data, base_seed=base_seed, progress=False)
            weights, initial = result.weights, result.initial_weights
            w = TrainedWeights(weights["A"], weights["b"], weights["delta"], result.seeds, result.status, experiment,
                               int(depth), cfg["delta"], cfg["activation"])
            final, start = delta_signs(weights["delta"]), delta_signs(initial["delta"])
            adds = only_adds(w, x_test)
            history = result.histories["train_loss"]
            for s in range(len(result.seeds)):
                rows.append({
                    "experiment": experiment, "variant": name, "depth": int(depth), "seed": int(result.seeds[s]),
                    "status": str(result.status[s]), "epochs": int(result.epochs[s]),
                    "train_loss": float(history[s][np.isfinite(history[s])][-1]),
                    "negative_delta_init": float(start["negative_share"][s]),
                    "negative_delta_final": float(final["negative_share"][s]),
                    "only_adds": bool(adds[s]),
                    "loss_history": " ".join(f"{v:.3g}" for v in history[s] if np.isfinite(v)),
                })
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    """Probe the plateau of one experiment of a config: ``python -m resnet_scaling.scaling.plateau``."""
    from ..config import load_configfiles
    from ..io import write_csv
    from ..training.data import make_dataset

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--configfile", nargs="+", required=True, help="config files, merged in order")
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--depths", type=int, nargs="+", required=True)
    parser.add_argument("--variant", choices=sorted(VARIANTS), nargs="+", default=["original"])
    parser.add_argument("--seeds", type=int, default=None, help="networks per depth (default: the experiment's)")
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--output", required=True, help="CSV of the networks")
    args = parser.parse_args(argv)
    config = load_configfiles(args.configfile)
    exp_cfg = config["experiments"][args.experiment]
    data = make_dataset(config["datasets"][exp_cfg["dataset"]], config["seed"])
    table = probe(args.experiment, exp_cfg, data, args.depths, {v: VARIANTS[v] for v in args.variant},
                  base_seed=config["seed"], seeds=args.seeds, max_epochs=args.max_epochs)
    write_csv(args.output, table)
    print(f"non-negative floor of the training data: {nonnegative_floor(data['x_train'], data['y_train']):.3g}")
    summary = table.groupby(["variant", "depth"]).agg(
        stalled=("status", lambda s: int((s == "stopped").sum())), networks=("status", "size"),
        loss=("train_loss", "median"), negative_init=("negative_delta_init", "mean"),
        negative_final=("negative_delta_final", "mean"), only_adds=("only_adds", "sum"))
    print(summary.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
