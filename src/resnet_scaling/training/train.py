"""Training of a ResNet ensemble: per-seed Adam/SGD, the original stopping rule, atomic
checkpoints and bitwise-identical resumption.

All ``S`` seeds of one (experiment, depth) train together. Each seed is independent: its
own initialisation, its own shuffle (a permutation seeded by (experiment, depth, seed,
epoch), so no RNG state has to be carried between epochs), its own optimiser state and its
own stopping decision. A seed that stops or diverges is frozen while the others go on.
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import __version__
from ..config import experiment_defaults, with_schema_defaults
from ..io import atomic_path, stable_seed, write_npz
from .resnet import ResNetEnsemble, resolve_device

log = logging.getLogger(__name__)

RUNNING, CONVERGED, STOPPED, DIVERGED, MAX_EPOCHS = 0, 1, 2, 3, 4
#: converged: epoch loss < ε; stopped: the plateau rule; diverged: a non-finite loss or
#: gradient, a training loss far above its initial value, or exploding weights (see
#: :func:`divergence_reasons`); max_epochs: ran out of epochs without either (not converged).
STATUS_NAMES = {RUNNING: "running", CONVERGED: "converged", STOPPED: "stopped", DIVERGED: "diverged",
                MAX_EPOCHS: "max_epochs"}

#: Every optional key of an experiment with its default, read from the config schema (the
#: one place defaults live), so that a trainer called outside the workflow behaves the same.
EXPERIMENT_DEFAULTS = experiment_defaults()

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def with_defaults(exp_cfg: dict) -> dict:
    """The experiment's config with every optional key filled in."""
    return {**EXPERIMENT_DEFAULTS, **exp_cfg}


# -- optimisers ---------------------------------------------------------------------


def finite_per_seed(tensor: torch.Tensor) -> torch.Tensor:
    """(S,) whether every entry of each seed's slice (the seed is dim 1) is finite.

    The largest and smallest entries are finite exactly when all are (NaN propagates through
    both reductions): two reductions in place of a boolean copy of the whole tensor, which
    at large depth cost as much as the optimiser step.
    """
    dims = [d for d in range(tensor.dim()) if d != 1]
    return torch.isfinite(tensor.amax(dim=dims)) & torch.isfinite(tensor.amin(dim=dims))


def _seed_mask(active: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast an (S,) mask onto a parameter whose seed dimension is dim 1."""
    return active.view(1, -1, *([1] * (like.dim() - 2)))


class EnsembleOptimizer:
    """Adam or SGD (with momentum) over the stacked parameters, one multi-tensor kernel per step.

    The update is torch.optim's own kernels called directly — Adam is ``torch.optim.Adam(fused=True)``,
    SGD is ``torch.optim.SGD(foreach=True)``, bitwise (tests/test_train.py checks both) — because
    constructing a ``torch.optim`` optimizer imports TorchDynamo, about a second of CPU in every
    training job, more than a shallow network's whole training.

    Every seed's entries are updated elementwise, so seeds stay independent. Seeds outside
    ``active`` are frozen: their parameters and optimiser state are restored exactly after
    the step. All active seeds have taken the same number of steps, so Adam's single step
    counter serves them all.
    """

    def __init__(self, params: dict[str, torch.Tensor], kind: str, lr: float, momentum: float = 0.0):
        if kind not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {kind!r}; expected adam or sgd")
        self.kind, self.lr, self.momentum = kind, float(lr), float(momentum)
        self.names = list(params)
        tensors = [params[n] for n in self.names]
        self.device = tensors[0].device
        self.state: dict[str, list[torch.Tensor]] = {}
        if kind == "adam":
            self.state = {
                # torch.optim keeps the fused Adam step count as a float32 tensor beside its parameter
                "step": [torch.zeros((), dtype=torch.float32, device=t.device) for t in tensors],
                "exp_avg": [torch.zeros_like(t, memory_format=torch.preserve_format) for t in tensors],
                "exp_avg_sq": [torch.zeros_like(t, memory_format=torch.preserve_format) for t in tensors],
            }
        # SGD's momentum buffers are made from the first gradient, as torch.optim.SGD does

    def _state_tensors(self) -> list[torch.Tensor]:
        return [t for key, values in self.state.items() if key != "step" for t in values]

    def _update(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        if self.kind == "adam":
            torch._foreach_add_(self.state["step"], 1)
            torch._fused_adam_(
                params, grads, self.state["exp_avg"], self.state["exp_avg_sq"], [], self.state["step"],
                amsgrad=False, lr=self.lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], weight_decay=0.0,
                eps=ADAM_EPS, maximize=False, grad_scale=None, found_inf=None,
            )
            return
        if self.momentum != 0.0:
            if "momentum_buffer" not in self.state:
                self.state["momentum_buffer"] = [g.detach().clone() for g in grads]
            else:
                torch._foreach_mul_(self.state["momentum_buffer"], self.momentum)
                torch._foreach_add_(self.state["momentum_buffer"], grads, alpha=1.0)
            grads = self.state["momentum_buffer"]
        torch._foreach_add_(params, grads, alpha=-self.lr)

    def step(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], active: torch.Tensor) -> None:
        frozen_any = not bool(active.all())
        if frozen_any:
            if not bool(active.any()):
                return
            saved = [(t, t.clone()) for t in [params[n] for n in self.names] + self._state_tensors()]
        with torch.no_grad():
            self._update([params[n] for n in self.names], [grads[n] for n in self.names])
        if frozen_any:
            for tensor, before in saved:
                tensor.copy_(torch.where(_seed_mask(active, tensor), tensor, before))

    def state_dict(self) -> dict:
        return {"kind": self.kind, "state": {key: [t.clone() for t in values] for key, values in self.state.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore the optimiser state onto the parameters' device."""
        if state.get("kind") != self.kind:
            raise ValueError(f"optimizer state of kind {state.get('kind')!r} cannot resume a {self.kind!r} run")
        self.state = {key: [v.to(self.device) for v in values] for key, values in state["state"].items()}


# -- the training loop ----------------------------------------------------------------


@dataclass
class TrainResult:
    """Everything a training job writes: weights, histories, statuses and provenance."""

    weights: dict[str, np.ndarray]
    initial_weights: dict[str, np.ndarray]
    seeds: np.ndarray
    epochs: np.ndarray
    status: np.ndarray
    stop_reason: list[str]
    histories: dict[str, np.ndarray]
    wall_time_s: float
    metadata: dict = field(default_factory=dict)


def scaled_lr(cfg: dict, depth: int) -> float:
    """The step size lr · L^γ, γ = ``lr_depth_exponent`` (docs/maths.md §1: SGD with lr ∝ L and δ = 1/L)."""
    gamma = cfg["lr_depth_exponent"]
    return cfg["lr"] if gamma == 0 else cfg["lr"] * float(depth) ** gamma


def run_key(experiment: str, base_seed: int) -> str:
    """The string every random draw of an experiment is seeded from."""
    return f"{base_seed}/{experiment}"


def epoch_permutations(key: str, depth: int, seeds, epoch: int, n: int) -> np.ndarray:
    """One seeded permutation of range(n) per seed for this epoch (a correct shuffle)."""
    return np.stack(
        [np.random.default_rng(stable_seed(key, depth, s, "shuffle", epoch)).permutation(n) for s in seeds]
    )


def defective_shuffle_(data: torch.Tensor, key: str, depth: int, seeds, epoch: int) -> None:
    """Reproduce the released code's per-epoch shuffle defect, in place (docs/references.md).

    ``data`` is (S, n_batches, batch, features), one copy per seed. The original reshaped the
    training tensor into a view of batches and let NumPy's shuffle swap them with
    ``x[i], x[j] = x[j], x[i]``; on views the first assignment copies batch j into slot i
    and the second copies it back, so each swap duplicates batch j and destroys batch i.
    """
    n_batches = data.shape[1]
    for s_idx, s in enumerate(seeds):
        rng = np.random.default_rng(stable_seed(key, depth, s, "shuffle", epoch))
        for i in range(n_batches - 1, 0, -1):
            j = int(rng.integers(0, i + 1))
            if i != j:
                data[s_idx, i] = data[s_idx, j]


#: Version of the checkpoint layout; a checkpoint of another layout is not resumed (training restarts).
CHECKPOINT_FORMAT = 2


def _fingerprint(experiment: str, cfg: dict, depth: int, base_seed: int, dtype: str, data: dict) -> str:
    """What a checkpoint must match to be resumed: its layout, the run's settings and its training data."""
    import hashlib
    import json

    digest = hashlib.sha256()
    for key in ("x_train", "y_train"):
        digest.update(np.ascontiguousarray(data[key], dtype=np.float64).tobytes())
    return json.dumps([CHECKPOINT_FORMAT, experiment, cfg, depth, base_seed, dtype, digest.hexdigest()], sort_keys=True)


def train_ensemble(
    experiment: str,
    exp_cfg: dict,
    depth: int,
    data: dict[str, np.ndarray],
    *,
    base_seed: int = 0,
    device: str = "auto",
    dtype: str = "float32",
    engine: str = "auto",
    checkpoint_path: str | Path | None = None,
    progress: bool = True,
    stop_after_epochs: int | None = None,
) -> TrainResult | None:
    """Train all seeds of one (experiment, depth); resume from ``checkpoint_path`` if present.

    ``engine`` (:meth:`.resnet.ResNetEnsemble.select_engine`) decides how the steps are
    computed; the one used is in the metadata. Resumption is bitwise on the same engine.

    ``stop_after_epochs`` ends the call early (returning None) after that many epochs of
    this call, leaving a checkpoint; used to test resumption.
    """
    cfg = with_defaults(exp_cfg)
    dev = resolve_device(device)
    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    key = run_key(experiment, base_seed)
    seeds = list(range(cfg["seeds"]))
    S = len(seeds)
    x_train = torch.as_tensor(data["x_train"], dtype=torch_dtype, device=dev)
    y_train = torch.as_tensor(data["y_train"], dtype=torch_dtype, device=dev)
    x_test = torch.as_tensor(data["x_test"], dtype=torch_dtype, device=dev)
    y_test = torch.as_tensor(data["y_test"], dtype=torch_dtype, device=dev)
    n_train, dim = x_train.shape
    batch = cfg["batch_size"]
    n_batches = math.ceil(n_train / batch)
    if cfg["shuffle"] == "original-defect" and n_train % batch:
        raise ValueError(
            f"experiment {experiment!r}: shuffle 'original-defect' needs batch_size ({batch}) "
            f"to divide n_train ({n_train}), as the original reshape did"
        )

    net = ResNetEnsemble.initialise(
        depth, dim, seeds, delta_type=cfg["delta"], init=cfg["init"], init_sd=cfg["init_sd"],
        activation=cfg["activation"], alpha=cfg["alpha"], key=key, dtype=torch_dtype, device=dev,
        depth_profile=cfg["init_depth_profile"], block=cfg["block"], hidden_width=cfg["hidden_width"],
        v_init=cfg["v_init"], bias=cfg["bias"], delta_init_sd=cfg["delta_init_sd"],
    )
    initial = net.to_numpy()
    engine_used = net.select_engine(engine)
    # without a bias, b stays the zero it was initialised to (docs/maths.md §1)
    trained = {name: p for name, p in net.params.items() if name != "b" or cfg["bias"]}
    opt = EnsembleOptimizer(trained, cfg["optimizer"], scaled_lr(cfg, depth), cfg["momentum"])
    fingerprint = _fingerprint(experiment, cfg, depth, base_seed, dtype, data)
    state = {
        "epoch": 0,
        "status": torch.zeros(S, dtype=torch.int64),
        "reason": [""] * S,
        "best": torch.full((S,), math.inf, dtype=torch.float64),
        "bad_epochs": torch.zeros(S, dtype=torch.int64),
        "epochs": torch.zeros(S, dtype=torch.int64),
        "history": {"epoch_loss": [], "train_loss": [], "test_loss": []},
        "wall_time_s": 0.0,
        "defect_data": None,
        "initial_loss": None,
    }
    if cfg["shuffle"] == "original-defect":
        joined = torch.cat([x_train, y_train], dim=1).reshape(n_batches, batch, 2 * dim)
        state["defect_data"] = joined.unsqueeze(0).repeat(S, 1, 1, 1)

    ckpt = Path(checkpoint_path) if checkpoint_path else None
    if ckpt is not None and ckpt.exists():
        try:
            saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise ValueError(f"cannot read checkpoint {ckpt}: {exc}; delete it to start over") from exc
        if saved.get("fingerprint") != fingerprint:
            log.warning("checkpoint %s belongs to another configuration; starting from scratch", ckpt)
        else:
            for name, value in saved["params"].items():
                net.params[name].copy_(value)  # onto the training device
            opt.load_state_dict(saved["optimizer"])  # moves the moments next to their parameters
            state = saved["state"]  # bookkeeping stays on the CPU
            if state["defect_data"] is not None:
                state["defect_data"] = state["defect_data"].to(dev)
            log.info("resumed from %s at epoch %d", ckpt, state["epoch"])

    def save_checkpoint() -> None:
        if ckpt is None:
            return
        # through a Python file, a full disk is an OSError (io.DiskFullError), not an iostream error
        with atomic_path(ckpt, suffix=".pt.tmp") as tmp, open(tmp, "wb") as fh:
            torch.save({"fingerprint": fingerprint, "params": net.params, "optimizer": opt.state_dict(), "state": state}, fh)

    if state.get("initial_loss") is None:
        with torch.no_grad():
            state["initial_loss"] = net.loss(x_train, y_train).double().cpu()
    status = state["status"]
    bar = tqdm(
        total=cfg["max_epochs"], initial=state["epoch"], desc=f"{experiment} L={depth}",
        disable=not progress, file=sys.stderr, mininterval=1.0,
    )
    epochs_this_call = 0
    while state["epoch"] < cfg["max_epochs"] and bool((status == RUNNING).any()):
        epoch = state["epoch"]
        started = time.perf_counter()
        active = (status == RUNNING).to(dev)
        if state["defect_data"] is not None:
            defective_shuffle_(state["defect_data"], key, depth, seeds, epoch)
        else:
            perms = torch.as_tensor(epoch_permutations(key, depth, seeds, epoch, n_train), device=dev)
        loss_sum = torch.zeros(S, dtype=torch.float64, device=dev)
        for j in range(n_batches):
            if state["defect_data"] is not None:
                xy = state["defect_data"][:, j]
                xb, yb = xy[..., :dim], xy[..., dim:]
            else:
                idx = perms[:, j * batch : (j + 1) * batch]
                xb, yb = x_train[idx], y_train[idx]
            loss, grads = net.loss_and_grad(xb, yb)
            finite = torch.isfinite(loss)
            for g in grads.values():
                finite &= finite_per_seed(g)
            diverged = active & ~finite
            if bool(diverged.any()):
                status[diverged.cpu()] = DIVERGED
                for s in torch.nonzero(diverged).flatten().tolist():
                    state["reason"][s] = f"non-finite loss or gradient at epoch {epoch + 1}"
                    state["epochs"][s] = epoch + 1
                active = active & finite
            opt.step(net.params, grads, active)
            loss_sum += torch.where(active, loss, torch.zeros_like(loss)).double()
        epoch_loss = (loss_sum / n_batches).cpu()
        with torch.no_grad():
            train_loss = net.loss(x_train, y_train).double().cpu()
            test_loss = net.loss(x_test, y_test).double().cpu()
        ran = active.cpu()
        with torch.no_grad():
            max_weight = torch.stack(
                [t.detach().abs().transpose(0, 1).reshape(S, -1).amax(dim=1) for t in net.params.values()]
            ).amax(dim=0).double().cpu()
        reasons = divergence_reasons(train_loss, state["initial_loss"], max_weight, cfg, epoch)
        for s in torch.nonzero(ran).flatten().tolist():
            if reasons[s]:
                status[s], state["reason"][s], state["epochs"][s] = DIVERGED, reasons[s], epoch + 1
        nan = torch.full((S,), math.nan, dtype=torch.float64)
        state["history"]["epoch_loss"].append(torch.where(ran, epoch_loss, nan).numpy())
        state["history"]["train_loss"].append(torch.where(ran, train_loss, nan).numpy())
        state["history"]["test_loss"].append(torch.where(ran, test_loss, nan).numpy())
        _apply_stopping_rule(state, ran & (status == RUNNING), epoch_loss, cfg, epoch)
        state["epoch"] = epoch + 1
        state["wall_time_s"] += time.perf_counter() - started
        log.info(
            "%s L=%d epoch %d: epoch loss %s | train %s | test %s | status %s",
            experiment, depth, epoch + 1,
            _fmt(state["history"]["epoch_loss"][-1]), _fmt(train_loss.numpy()), _fmt(test_loss.numpy()),
            ",".join(STATUS_NAMES[int(v)] for v in status),
        )
        bar.update(1)
        epochs_this_call += 1
        last = state["epoch"] >= cfg["max_epochs"] or not bool((status == RUNNING).any())
        if state["epoch"] % cfg["checkpoint_every"] == 0 or last:
            save_checkpoint()
        if stop_after_epochs is not None and epochs_this_call >= stop_after_epochs and not last:
            save_checkpoint()
            bar.close()
            return None
    bar.close()
    for s in range(S):
        if status[s] == RUNNING:
            status[s] = MAX_EPOCHS
            state["reason"][s] = f"max_epochs ({cfg['max_epochs']}) reached"
            state["epochs"][s] = state["epoch"]
    histories = {k: (np.stack(v, axis=1) if v else np.empty((S, 0))) for k, v in state["history"].items()}
    return TrainResult(
        weights=net.to_numpy(),
        initial_weights=initial,
        seeds=np.array(seeds),
        epochs=state["epochs"].numpy().copy(),
        status=np.array([STATUS_NAMES[int(v)] for v in status]),
        stop_reason=list(state["reason"]),
        histories=histories,
        wall_time_s=state["wall_time_s"],
        metadata={
            "experiment": experiment,
            "config": cfg,
            "dataset": cfg["dataset"],
            "depth": depth,
            "base_seed": base_seed,
            "device": str(dev),
            "dtype": dtype,
            "engine": engine_used,
            "wall_time_s": state["wall_time_s"],
            "stop_reason": list(state["reason"]),
            "initial_loss": state["initial_loss"].tolist(),
            "versions": library_versions(),
        },
    )


def divergence_reasons(
    train_loss: torch.Tensor, initial_loss: torch.Tensor, max_weight: torch.Tensor, cfg: dict, epoch: int
) -> list[str]:
    """Per seed, why it counts as diverged after ``epoch`` ('' when it does not).

    A practitioner's criteria: a non-finite training loss, a training loss more than
    ``divergence_loss_factor`` times the loss of the initial network, or a weight entry
    (A, b or δ) larger in magnitude than ``divergence_max_weight``.
    """
    factor, bound = cfg["divergence_loss_factor"], cfg["divergence_max_weight"]
    reasons = []
    for loss, start, weight in zip(train_loss.tolist(), initial_loss.tolist(), max_weight.tolist()):
        if not math.isfinite(loss) or not math.isfinite(weight):
            reasons.append(f"non-finite training loss or weights at epoch {epoch + 1}")
        elif loss > factor * start:
            reasons.append(
                f"training loss {loss:.3g} above {factor:g} x its initial {start:.3g} at epoch {epoch + 1}"
            )
        elif weight > bound:
            reasons.append(f"weight entry of size {weight:.3g} above {bound:g} at epoch {epoch + 1}")
        else:
            reasons.append("")
    return reasons


def _apply_stopping_rule(state: dict, ran: torch.Tensor, epoch_loss: torch.Tensor, cfg: dict, epoch: int) -> None:
    """The rule per seed. ``original``: loss < ε, or ``patience`` epochs without a
    ``min_improvement`` relative gain (the plateau: status ``stopped``). ``epsilon``: only
    loss < ε ends training; a seed that never reaches it runs to ``max_epochs``."""
    status = state["status"]
    for s in torch.nonzero(ran).flatten().tolist():
        loss = float(epoch_loss[s])
        if loss < state["best"][s] * (1.0 - cfg["min_improvement"]):
            state["best"][s] = loss
            state["bad_epochs"][s] = 0
        else:
            state["bad_epochs"][s] += 1
        if loss < cfg["epsilon"]:
            status[s], state["reason"][s] = CONVERGED, f"epoch loss {loss:.3g} < epsilon {cfg['epsilon']}"
        elif cfg["stopping_rule"] == "original" and state["bad_epochs"][s] >= cfg["patience"]:
            status[s] = STOPPED
            state["reason"][s] = f"{cfg['patience']} epochs without {cfg['min_improvement']:.0%} improvement"
        if status[s] != RUNNING:
            state["epochs"][s] = epoch + 1


def _fmt(values: np.ndarray) -> str:
    return "[" + " ".join(f"{v:.3e}" for v in np.asarray(values, dtype=float)) + "]"


def library_versions() -> dict[str, str]:
    """Versions that decide the numbers: Python, torch, numpy, this package and its git commit."""
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "resnet_scaling": __version__, "git_commit": git_commit()}


def git_commit() -> str:
    """The commit of the checkout this package runs from ('unknown' outside a git checkout)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def save_result(path: str | Path, result: TrainResult) -> None:
    """Write a training output (docs/maths.md §1 convention, seed-major) atomically.

    Weights are stored in the precision they were trained in (exactly: float32 training
    gives float32 values), half the disk of float64 for the usual float32 runs; readers
    convert to float64.
    """
    stored = np.float32 if result.metadata.get("dtype") == "float32" else np.float64
    weights = {name: np.asarray(value, dtype=stored) for name, value in result.weights.items()}
    initial = {name: np.asarray(value, dtype=stored) for name, value in result.initial_weights.items()}
    arrays = {
        **weights, **{f"{name}_init": value for name, value in initial.items()},
        "seeds": result.seeds, "epochs": result.epochs, "status": result.status,
        **result.histories,
    }
    write_npz(path, metadata=result.metadata, **arrays)


def job_arguments(description: str, argv: list[str] | None = None) -> tuple[argparse.Namespace, dict]:
    """The command line of one training job (``--config --experiment --depth --output
    [--checkpoint]``) and its config file, validated with every schema default filled in."""
    import yaml

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True)
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--depth", type=int, required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return args, with_schema_defaults(yaml.safe_load(Path(args.config).read_text()))


def main(argv: list[str] | None = None) -> int:
    """Train one (experiment, depth) from a config file: ``python -m resnet_scaling.training.train``."""
    from .data import make_dataset

    args, config = job_arguments(main.__doc__, argv)
    exp_cfg = config["experiments"][args.experiment]
    data = make_dataset(config["datasets"][exp_cfg["dataset"]], config["seed"])
    result = train_ensemble(
        args.experiment, exp_cfg, args.depth, data, base_seed=config["seed"],
        device=config["device"], dtype=config["dtype"], engine=config["engine"],
        checkpoint_path=args.checkpoint, progress=False,
    )
    save_result(args.output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
