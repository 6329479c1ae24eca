"""Training of the CIFAR-10 ResNet: SGD with momentum and weight decay, a cosine schedule,
random crops and flips, atomic checkpoints and bitwise-identical resumption on the CPU.

The seeds of one (experiment, depth) train one after the other in the same job. Every
random draw is seeded from (experiment, depth, seed, purpose[, epoch]): the initial weights,
the epoch's order of the images and its crop offsets and flips. The learning rate of epoch e
is the closed form of the cosine schedule, lr · (1 + cos(π e / E)) / 2, so nothing but the
weights and the momentum buffers has to be carried from one epoch to the next: a checkpoint
after any epoch resumes to the same numbers as an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import __version__
from ..config import conv_experiment_defaults
from ..io import stable_seed, write_npz
from ..training import checkpoint
from ..training.checkpoint import Checkpointing
from ..training.resnet import resolve_device
from .model import ConvResNet, build

log = logging.getLogger(__name__)

#: CIFAR-10 channel means and standard deviations of the training images (the usual constants).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
PAD = 4


def with_defaults(cfg: dict) -> dict:
    """The experiment's config with every optional key filled in, the defaults read from the schema."""
    return {**conv_experiment_defaults(), **cfg}


def cosine_lr(lr: float, epoch: int, epochs: int) -> float:
    """Learning rate of an epoch: PyTorch's CosineAnnealingLR with T_max = epochs, in closed form."""
    return 0.5 * lr * (1.0 + math.cos(math.pi * epoch / epochs))


def seed_key(experiment: str, base_seed: int, depth: int, seed: int) -> tuple:
    return (base_seed, experiment, "conv", depth, seed)


def epoch_draws(key: tuple, epoch: int, n: int, augment: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The epoch's order of the n images, crop offsets (n, 2) in 0..2·PAD and flips (n,)."""
    rng = np.random.default_rng(stable_seed(*key, "epoch", epoch))
    order = rng.permutation(n)
    if not augment:
        return order, np.full((n, 2), PAD), np.zeros(n, dtype=bool)
    return order, rng.integers(0, 2 * PAD + 1, size=(n, 2)), rng.random(n) < 0.5


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) → float, scaled to [0, 1] and standardised per channel."""
    mean = torch.tensor(MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def augment_batch(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Random crop with zero padding PAD (offset (dy, dx) into the padded image) and horizontal
    flip, for a uint8 batch (B, 3, H, W); vectorised, on the batch's device."""
    B, _, H, W = images.shape
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    ar_h = torch.arange(H, device=images.device)
    ar_w = torch.arange(W, device=images.device)
    rows = offsets[:, 0:1] + ar_h  # (B, H)
    cols = torch.where(flips[:, None], offsets[:, 1:2] + (W - 1 - ar_w), offsets[:, 1:2] + ar_w)  # (B, W)
    b = torch.arange(B, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, H, W, 3)
    return out.permute(0, 3, 1, 2)


@torch.no_grad()
def evaluate(net: ConvResNet, images: torch.Tensor, labels: torch.Tensor, batch: int, autocast) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a set, in batches."""
    net.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(images), batch):
        x = normalise(images[start : start + batch])
        y = labels[start : start + batch]
        with autocast():
            logits = net(x)
        total_loss += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        correct += int((logits.argmax(dim=1) == y).sum())
    net.train()
    return total_loss / len(images), correct / len(images)


@dataclass
class ConvResult:
    """All seeds of one (experiment, depth): final parameters, histories and provenance."""

    params: dict[str, np.ndarray]  # name -> (S, ...) float32
    seeds: np.ndarray
    status: np.ndarray
    epochs: np.ndarray
    histories: dict[str, np.ndarray]  # name -> (S, E)
    metadata: dict = field(default_factory=dict)


HISTORIES = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def train_conv(
    experiment: str,
    exp_cfg: dict,
    depth: int,
    data: dict[str, np.ndarray],
    *,
    base_seed: int = 0,
    device: str = "auto",
    checkpoint_path: str | Path | None = None,
    progress: bool = True,
    stop_after_epochs: int | None = None,
) -> ConvResult | None:
    """Train every seed of one (experiment, depth); resume from ``checkpoint_path`` if present.

    ``stop_after_epochs`` ends the call (returning None) after that many epochs of this
    call, leaving a checkpoint; used to test resumption.
    """
    cfg = with_defaults(exp_cfg)
    dev = resolve_device(device)
    amp = bool(cfg["mixed_precision"]) and dev.type == "cuda"
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else (lambda: torch.autocast("cpu", enabled=False))
    tensors = (torch.as_tensor(data["x_train"], device=dev), torch.as_tensor(data["y_train"], dtype=torch.int64, device=dev),
               torch.as_tensor(data["x_test"], device=dev), torch.as_tensor(data["y_test"], dtype=torch.int64, device=dev))
    epochs = cfg["epochs"]
    seeds = list(range(cfg["seeds"]))
    checkpoints = Checkpointing(
        checkpoint_path, checkpoint.fingerprint("conv", experiment, cfg, depth, base_seed, data=data),
        cfg["checkpoint_every"], stop_after_epochs)
    saved = checkpoints.resume()
    state = saved["state"] if saved is not None else {
        "seed_index": 0, "epoch": 0, "finished": [], "history": {h: [] for h in HISTORIES},
        "model": None, "optimizer": None, "wall_time_s": 0.0, "status": "running"}
    while state["seed_index"] < len(seeds):
        s = seeds[state["seed_index"]]
        key = seed_key(experiment, base_seed, depth, s)
        net = build(depth, cfg["width"], stable_seed(*key, "init")).to(dev)
        opt = torch.optim.SGD(net.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                              weight_decay=cfg["weight_decay"])
        if state["model"] is not None:
            net.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        bar = tqdm(total=epochs, initial=state["epoch"], desc=f"{experiment} L={depth} seed {s}",
                   disable=not progress, file=sys.stderr, mininterval=1.0)
        while state["epoch"] < epochs and state["status"] == "running":
            epoch, started = state["epoch"], time.perf_counter()
            train_loss, train_acc = _train_epoch(net, opt, cfg, key, epoch, tensors[:2], autocast)
            test_loss, test_acc = evaluate(net, *tensors[2:], 4 * cfg["batch_size"], autocast)
            for name, value in zip(HISTORIES, (train_loss, train_acc, test_loss, test_acc)):
                state["history"][name].append(value)
            state["epoch"] = epoch + 1
            state["wall_time_s"] += time.perf_counter() - started
            if not math.isfinite(train_loss):
                state["status"] = "diverged"
            log.info("%s L=%d seed %d epoch %d: train loss %.4f acc %.3f | test loss %.4f acc %.3f",
                     experiment, depth, s, epoch + 1, train_loss, train_acc, test_loss, test_acc)
            bar.update(1)
            last = state["epoch"] >= epochs or state["status"] != "running"
            state["model"] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            state["optimizer"] = _to_cpu(opt.state_dict())
            if last:
                _finish_seed(state, s)
            if checkpoints.after_epoch(state["epoch"], state["seed_index"] >= len(seeds),
                                       lambda: {"state": state}, due=last):
                bar.close()
                return None
            if last:
                break
        bar.close()
    return _result(state, cfg, experiment, depth, base_seed, dev, amp)


def _train_epoch(net: ConvResNet, opt, cfg: dict, key: tuple, epoch: int, train: tuple, autocast) -> tuple[float, float]:
    """One epoch of SGD steps at the epoch's cosine learning rate: mean training loss and accuracy."""
    x_train, y_train = train
    n, batch, dev = len(x_train), cfg["batch_size"], x_train.device
    for group in opt.param_groups:
        group["lr"] = cosine_lr(cfg["lr"], epoch, cfg["epochs"])
    order, offsets, flips = (torch.as_tensor(a, device=dev) for a in epoch_draws(key, epoch, n, cfg["augment"]))
    loss_sum, correct = torch.zeros((), dtype=torch.float64, device=dev), torch.zeros((), dtype=torch.int64, device=dev)
    for start in range(0, n, batch):
        idx = order[start : start + batch]
        x = x_train[idx]
        x = normalise(augment_batch(x, offsets[idx], flips[idx]) if cfg["augment"] else x)
        y = y_train[idx]
        with autocast():
            logits = net(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach().double() * len(idx)
        correct += (logits.detach().argmax(dim=1) == y).sum()
    return float(loss_sum) / n, int(correct) / n


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def _finish_seed(state: dict, seed: int) -> None:
    """Move the current seed's weights and histories to the finished list; the next seed starts."""
    status = "max_epochs" if state["status"] == "running" else state["status"]
    state["finished"].append({"seed": seed, "status": status, "epochs": state["epoch"],
                              "params": {k: v.float() for k, v in state["model"].items()},
                              "history": state["history"]})
    state.update(seed_index=state["seed_index"] + 1, epoch=0, model=None, optimizer=None, status="running",
                 history={h: [] for h in HISTORIES})


def _result(state: dict, cfg: dict, experiment: str, depth: int, base_seed: int, dev, amp: bool) -> ConvResult:
    done = state["finished"]
    longest = max(len(d["history"]["train_loss"]) for d in done)
    pad = lambda h: np.pad(np.asarray(h, dtype=float), (0, longest - len(h)), constant_values=np.nan)
    return ConvResult(
        params={name: np.stack([d["params"][name].numpy() for d in done]) for name in done[0]["params"]},
        seeds=np.array([d["seed"] for d in done]),
        status=np.array([d["status"] for d in done]),
        epochs=np.array([d["epochs"] for d in done]),
        histories={h: np.stack([pad(d["history"][h]) for d in done]) for h in HISTORIES},
        metadata={
            "experiment": experiment, "depth": depth, "config": cfg, "seed": base_seed, "model": "conv",
            "device": str(dev), "mixed_precision": amp, "wall_time_s": state["wall_time_s"],
            "versions": {"resnet_scaling": __version__, "torch": torch.__version__, "numpy": np.__version__,
                         "python": platform.python_version()},
        },
    )


def save_conv_result(path: str | Path, result: ConvResult) -> None:
    """Write every parameter (seed-major, float32), statuses and histories atomically."""
    write_npz(path, metadata=result.metadata, seeds=result.seeds, status=result.status, epochs=result.epochs,
              **{f"param:{k}": v for k, v in result.params.items()}, **result.histories)


def main(argv: list[str] | None = None) -> int:
    """Train one (experiment, depth) of ``conv_experiments``: ``python -m resnet_scaling.cnn.train``."""
    from ..training.data import make_dataset
    from ..training.train import job_arguments

    args, config = job_arguments(main.__doc__, argv)
    exp_cfg = config["conv_experiments"][args.experiment]
    data = make_dataset(config["datasets"][exp_cfg["dataset"]], config["seed"])
    result = train_conv(args.experiment, exp_cfg, args.depth, data, base_seed=config["seed"],
                        device=config["device"], checkpoint_path=args.checkpoint, progress=False)
    save_conv_result(args.output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
