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
from ..io import stable_seed, write_npz
from . import checkpoint, compiled
from .checkpoint import Checkpointing
from .optimizer import EnsembleOptimizer, finite_per_seed
from .resnet import ResNetEnsemble, resolve_device

log = logging.getLogger(__name__)

RUNNING, CONVERGED, STOPPED, DIVERGED, MAX_EPOCHS = 0, 1, 2, 3, 4
#: converged: epoch loss < ε; stopped: the plateau rule; diverged: a non-finite loss or
#: gradient, a training loss far above its initial value, or exploding weights (see
#: :func:`divergence_reasons`); max_epochs: ran out of epochs without either (not converged).
STATUS_NAMES = {RUNNING: "running", CONVERGED: "converged", STOPPED: "stopped", DIVERGED: "diverged",
                MAX_EPOCHS: "max_epochs"}

def with_defaults(exp_cfg: dict) -> dict:
    """The experiment's config with every optional key filled in: each default is read from the
    config schema (the one place defaults live), so that a trainer called outside the workflow
    behaves the same."""
    return {**experiment_defaults(), **exp_cfg}


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


@dataclass
class _Job:
    """The fixed parts of one training job: its settings, its data on the device, its batches."""

    experiment: str
    cfg: dict
    depth: int
    key: str
    seeds: list
    dev: torch.device
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    batch: int
    n_batches: int

    @property
    def S(self) -> int:
        return len(self.seeds)


def _job(experiment: str, cfg: dict, depth: int, data: dict, base_seed: int, device: str, torch_dtype) -> _Job:
    dev = resolve_device(device)
    tensors = {k: torch.as_tensor(data[k], dtype=torch_dtype, device=dev) for k in ("x_train", "y_train", "x_test", "y_test")}
    n_train = tensors["x_train"].shape[0]
    batch = cfg["batch_size"]
    if cfg["shuffle"] == "original-defect" and n_train % batch:
        raise ValueError(
            f"experiment {experiment!r}: shuffle 'original-defect' needs batch_size ({batch}) "
            f"to divide n_train ({n_train}), as the original reshape did"
        )
    return _Job(experiment, cfg, depth, run_key(experiment, base_seed), list(range(cfg["seeds"])), dev,
                batch=batch, n_batches=math.ceil(n_train / batch), **tensors)


def _initial_state(job: _Job) -> dict:
    """The bookkeeping of a job that has not trained yet (kept on the CPU, but the defect data)."""
    S = job.S
    state = {
        "epoch": 0,
        "status": torch.zeros(S, dtype=torch.int64),
        "reason": [""] * S,
        "best": torch.full((S,), math.inf, dtype=torch.float64),
        "bad_epochs": torch.zeros(S, dtype=torch.int64),
        "epochs": torch.zeros(S, dtype=torch.int64),
        "history": {"epoch_loss": [], "train_loss": [], "test_loss": []},  # per epoch, (S,) float64 tensors
        "wall_time_s": 0.0,
        "defect_data": None,
        "initial_loss": None,
    }
    if job.cfg["shuffle"] == "original-defect":
        dim = job.x_train.shape[1]
        joined = torch.cat([job.x_train, job.y_train], dim=1).reshape(job.n_batches, job.batch, 2 * dim)
        state["defect_data"] = joined.unsqueeze(0).repeat(S, 1, 1, 1)
    return state


def _checkpoint_payload(net: ResNetEnsemble, opt: EnsembleOptimizer, state: dict) -> dict:
    """What a checkpoint holds, tensors and plain values only (loadable with weights_only=True):
    each history as one (epochs, S) tensor."""
    history = {k: torch.stack(v) if v else torch.empty((0, len(state["reason"])), dtype=torch.float64)
               for k, v in state["history"].items()}
    return {"params": net.params, "optimizer": opt.state_dict(), "state": {**state, "history": history}}


def _restore(saved: dict, net: ResNetEnsemble, opt: EnsembleOptimizer, job: _Job) -> dict:
    """Load a checkpoint's parameters and optimiser state onto the device; its bookkeeping."""
    for name, value in saved["params"].items():
        net.params[name].copy_(value)  # onto the training device
    opt.load_state_dict(saved["optimizer"])  # moves the moments next to their parameters
    state = saved["state"]  # bookkeeping stays on the CPU
    state["history"] = {k: list(v.unbind(0)) for k, v in state["history"].items()}
    if state["defect_data"] is not None:
        state["defect_data"] = state["defect_data"].to(job.dev)
    log.info("resumed at epoch %d", state["epoch"])
    return state


def _mark_diverged(state: dict, diverged: torch.Tensor, reason: str, epoch: int) -> None:
    state["status"][diverged.cpu()] = DIVERGED
    for s in torch.nonzero(diverged).flatten().tolist():
        state["reason"][s] = reason
        state["epochs"][s] = epoch + 1


def _run_batches(job: _Job, net: ResNetEnsemble, opt: EnsembleOptimizer, state: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch of steps: the mean epoch loss (S,) on the CPU, and which seeds ran it to the end
    (a non-finite loss or gradient freezes a seed at once)."""
    epoch, S, dim = state["epoch"], job.S, job.x_train.shape[1]
    active = (state["status"] == RUNNING).to(job.dev)
    defect = state["defect_data"]
    if defect is not None:
        defective_shuffle_(defect, job.key, job.depth, job.seeds, epoch)
    else:
        perms = torch.as_tensor(epoch_permutations(job.key, job.depth, job.seeds, epoch, job.x_train.shape[0]),
                                device=job.dev)
    loss_sum = torch.zeros(S, dtype=torch.float64, device=job.dev)
    for j in range(job.n_batches):
        if defect is not None:
            xy = defect[:, j]
            xb, yb = xy[..., :dim], xy[..., dim:]
        else:
            idx = perms[:, j * job.batch : (j + 1) * job.batch]
            xb, yb = job.x_train[idx], job.y_train[idx]
        loss, grads = net.loss_and_grad(xb, yb)
        finite = torch.isfinite(loss)
        for g in grads.values():
            finite &= finite_per_seed(g)
        diverged = active & ~finite
        if bool(diverged.any()):
            _mark_diverged(state, diverged, f"non-finite loss or gradient at epoch {epoch + 1}", epoch)
            active = active & finite
        opt.step(net.params, grads, active)
        loss_sum += torch.where(active, loss, torch.zeros_like(loss)).double()
    return (loss_sum / job.n_batches).cpu(), active.cpu()


def _close_epoch(job: _Job, net: ResNetEnsemble, state: dict, epoch_loss: torch.Tensor, ran: torch.Tensor) -> None:
    """After an epoch's steps: the divergence checks, the histories and the stopping rule."""
    epoch, S, status = state["epoch"], job.S, state["status"]
    with torch.no_grad():
        train_loss = net.loss(job.x_train, job.y_train).double().cpu()
        test_loss = net.loss(job.x_test, job.y_test).double().cpu()
        max_weight = torch.stack(
            [t.detach().abs().transpose(0, 1).reshape(S, -1).amax(dim=1) for t in net.params.values()]
        ).amax(dim=0).double().cpu()
    reasons = divergence_reasons(train_loss, state["initial_loss"], max_weight, job.cfg, epoch)
    for s in torch.nonzero(ran).flatten().tolist():
        if reasons[s]:
            status[s], state["reason"][s], state["epochs"][s] = DIVERGED, reasons[s], epoch + 1
    nan = torch.full((S,), math.nan, dtype=torch.float64)
    for name, values in (("epoch_loss", epoch_loss), ("train_loss", train_loss), ("test_loss", test_loss)):
        state["history"][name].append(torch.where(ran, values, nan))
    _apply_stopping_rule(state, ran & (status == RUNNING), epoch_loss, job.cfg, epoch)
    state["epoch"] = epoch + 1
    log.info(
        "%s L=%d epoch %d: epoch loss %s | train %s | test %s | status %s",
        job.experiment, job.depth, epoch + 1,
        _fmt(state["history"]["epoch_loss"][-1]), _fmt(train_loss.numpy()), _fmt(test_loss.numpy()),
        ",".join(STATUS_NAMES[int(v)] for v in status),
    )


def _finished(state: dict, cfg: dict) -> bool:
    return state["epoch"] >= cfg["max_epochs"] or not bool((state["status"] == RUNNING).any())


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
    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    job = _job(experiment, cfg, depth, data, base_seed, device, torch_dtype)
    net = ResNetEnsemble.initialise(
        depth, job.x_train.shape[1], job.seeds, delta_type=cfg["delta"], init=cfg["init"], init_sd=cfg["init_sd"],
        activation=cfg["activation"], alpha=cfg["alpha"], key=job.key, dtype=torch_dtype, device=job.dev,
        depth_profile=cfg["init_depth_profile"], block=cfg["block"], hidden_width=cfg["hidden_width"],
        v_init=cfg["v_init"], bias=cfg["bias"], delta_init_sd=cfg["delta_init_sd"],
    )
    initial = net.to_numpy()
    engine_used = net.select_engine(engine)
    # without a bias, b stays the zero it was initialised to (docs/maths.md §1)
    trained = {name: p for name, p in net.params.items() if name != "b" or cfg["bias"]}
    opt = EnsembleOptimizer(trained, cfg["optimizer"], scaled_lr(cfg, depth), cfg["momentum"])
    checkpoints = Checkpointing(
        checkpoint_path, checkpoint.fingerprint("fc", experiment, cfg, depth, base_seed, dtype, data=data),
        cfg["checkpoint_every"], stop_after_epochs)
    saved = checkpoints.resume()
    state = _initial_state(job) if saved is None else _restore(saved, net, opt, job)
    if state.get("initial_loss") is None:
        with torch.no_grad():
            state["initial_loss"] = net.loss(job.x_train, job.y_train).double().cpu()
    bar = tqdm(total=cfg["max_epochs"], initial=state["epoch"], desc=f"{experiment} L={depth}",
               disable=not progress, file=sys.stderr, mininterval=1.0)
    while not _finished(state, cfg):
        started = time.perf_counter()
        epoch_loss, ran = _run_batches(job, net, opt, state)
        _close_epoch(job, net, state, epoch_loss, ran)
        state["wall_time_s"] += time.perf_counter() - started
        bar.update(1)
        if checkpoints.after_epoch(state["epoch"], _finished(state, cfg),
                                   lambda: _checkpoint_payload(net, opt, state)):
            bar.close()
            return None
    bar.close()
    return _result(job, net, state, initial, engine_used, base_seed, dtype)


def _result(job: _Job, net: ResNetEnsemble, state: dict, initial: dict, engine_used: str, base_seed: int,
            dtype: str) -> TrainResult:
    """The seeds still running have run out of epochs; everything a training output holds."""
    cfg, S, status = job.cfg, job.S, state["status"]
    for s in range(S):
        if status[s] == RUNNING:
            status[s] = MAX_EPOCHS
            state["reason"][s] = f"max_epochs ({cfg['max_epochs']}) reached"
            state["epochs"][s] = state["epoch"]
    histories = {k: (np.stack([t.numpy() for t in v], axis=1) if v else np.empty((S, 0)))
                 for k, v in state["history"].items()}
    return TrainResult(
        weights=net.to_numpy(),
        initial_weights=initial,
        seeds=np.array(job.seeds),
        epochs=state["epochs"].numpy().copy(),
        status=np.array([STATUS_NAMES[int(v)] for v in status]),
        stop_reason=list(state["reason"]),
        histories=histories,
        wall_time_s=state["wall_time_s"],
        metadata={
            "experiment": job.experiment,
            "config": cfg,
            "dataset": cfg["dataset"],
            "depth": job.depth,
            "base_seed": base_seed,
            "device": str(job.dev),
            "dtype": dtype,
            "engine": engine_used,
            "engine_build": compiled.build_info() if engine_used == "compiled" else {},
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
