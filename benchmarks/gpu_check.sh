#!/usr/bin/env bash
# The GPU checks of the training engines, in one run of a few minutes on a CUDA machine
# (docs/design.md, "The FC engine on a GPU"):
#   1. CPU references: float64 gradients of the FC engine, a short float32 FC training, one
#      epoch of the convolutional ResNet (these run anywhere);
#   2. CUDA against CPU: float64 FC gradients to 1e-10 relative, for every δ type and tanh,
#      ReLU and softplus − log 2;
#   3. a short float32 FC training on CUDA against the CPU: loss curves to 1e-5 relative, the
#      same statuses and epochs;
#   4. resume of a GPU checkpoint: on the GPU to the same bits as an uninterrupted GPU run,
#      and on the CPU to the end;
#   5. mixed precision on the conv path: bfloat16 autocast against float32 on CUDA, and float32
#      on CUDA against the CPU;
#   6. throughput on the GPU: the FC engine's step beside the launch-bound cost model's
#      prediction (ATen operations per step × the measured time of one such operation), and
#      the conv engine's images/s with its achieved FLOP rate beside the 60 TFLOP/s docs/costs.md's
#      estimate assumes.
# Without CUDA it runs part 1 and stops there, saying so.
#
# Usage: benchmarks/gpu_check.sh [PYTHON]   (default: .venv/bin/python, else python3)
# Exit status: 0 every check passed; 1 a check failed; 2 no CUDA device (part 1 only).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PYTHON" - "$WORK" <<'PY'
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch

from resnet_scaling.cnn.train import train_conv
from resnet_scaling.training.data import make_synthetic
from resnet_scaling.training.resnet import DELTA_TYPES, ResNetEnsemble
from resnet_scaling.training.train import EnsembleOptimizer, train_ensemble

work = Path(sys.argv[1])
torch.set_num_threads(1)
failures: list[str] = []
started = time.perf_counter()


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    if not ok:
        failures.append(name)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double().cpu() - b.double().cpu()).norm() / b.double().cpu().norm().clamp(min=1e-300))


cuda = torch.cuda.is_available()
print(f"torch {torch.__version__}; CUDA: {torch.cuda.get_device_name(0) if cuda else 'not available'}", flush=True)

# -- 1. CPU references ------------------------------------------------------------------------
print("\n1. CPU references")
GRAD_CASES = list(itertools.product(DELTA_TYPES, ["tanh", "relu", "softplus0"]))


def fc_case(delta: str, act: str, device: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    net = ResNetEnsemble.initialise(40, 10, range(4), delta_type=delta, init="xavier", init_sd=1.0, activation=act,
                                    alpha=0.5, key="gpu_check", dtype=torch.float64, device=device)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(4, 32, 10, generator=gen, dtype=torch.float64).to(device)
    y = torch.randn(4, 32, 10, generator=gen, dtype=torch.float64).to(device)
    loss, grads = net.loss_and_grad(x, y)
    return loss.clone(), {name: g.clone() for name, g in grads.items()}


grad_reference = {case: fc_case(*case, "cpu") for case in GRAD_CASES}
print(f"   float64 FC gradients of {len(GRAD_CASES)} cases (L = 40, d = 10, 4 networks)")

FC_DATA = make_synthetic(512, 128, dim=10, seed=0)
FC_CFG = dict(dataset="synthetic", activation="tanh", delta="multi", init="xavier-depth", init_sd=1.0,
              optimizer="adam", lr=0.01, batch_size=32, max_epochs=6, epsilon=1e-9, patience=3,
              min_improvement=0.01, seeds=4, checkpoint_every=1)
FC_DEPTH = 32
fc_cpu = train_ensemble("gpu_check", FC_CFG, FC_DEPTH, FC_DATA, device="cpu", dtype="float32",
                        engine="per-layer", progress=False)
print(f"   float32 FC training, L = {FC_DEPTH}, {FC_CFG['max_epochs']} epochs: statuses {fc_cpu.status.tolist()}")

rng = np.random.default_rng(0)
CONV_DATA = {"x_train": rng.integers(0, 256, (512, 3, 32, 32), dtype=np.uint8), "y_train": rng.integers(0, 10, 512),
             "x_test": rng.integers(0, 256, (128, 3, 32, 32), dtype=np.uint8), "y_test": rng.integers(0, 10, 128)}
CONV_CFG = {"dataset": "gpu_check", "depths": [8], "width": 16, "seeds": 1, "epochs": 1, "batch_size": 128,
            "augment": False}
conv_cpu = train_conv("gpu_check", CONV_CFG, 8, CONV_DATA, device="cpu", progress=False)
print(f"   conv ResNet depth 8, width 16, one epoch of 512 images: train loss {conv_cpu.histories['train_loss'][0, 0]:.5f}")

if not cuda:
    print(f"\nCUDA is not available: the CPU references ran ({time.perf_counter() - started:.0f} s); checks 2-6 "
          "need a GPU and did not run.")
    sys.exit(1 if failures else 2)

# -- 2. float64 gradients, CUDA against CPU ------------------------------------------------
print("\n2. float64 FC gradients, CUDA against CPU")
for case in GRAD_CASES:
    loss, grads = fc_case(*case, "cuda")
    ref_loss, ref_grads = grad_reference[case]
    worst = max([relative(loss, ref_loss)] + [relative(grads[name], ref_grads[name]) for name in ref_grads])
    check(f"gradients {case[0]}/{case[1]}", worst < 1e-10, f"largest relative difference {worst:.1e} (bound 1e-10)")

# -- 3. short float32 training, CUDA against CPU -------------------------------------------
print("\n3. float32 FC training, CUDA against CPU")
fc_gpu = train_ensemble("gpu_check", FC_CFG, FC_DEPTH, FC_DATA, device="cuda", dtype="float32", progress=False)
curves = max(float(np.nanmax(np.abs(fc_gpu.histories[k] - fc_cpu.histories[k]) / np.abs(fc_cpu.histories[k])))
             for k in ("epoch_loss", "train_loss", "test_loss"))
check("loss curves", curves < 1e-5, f"largest relative difference {curves:.1e} (bound 1e-5), engine on CUDA: "
      f"{fc_gpu.metadata['engine']}")
check("statuses and epochs", list(fc_gpu.status) == list(fc_cpu.status) and np.array_equal(fc_gpu.epochs, fc_cpu.epochs),
      f"CUDA {fc_gpu.status.tolist()} {fc_gpu.epochs.tolist()}, CPU {fc_cpu.status.tolist()} {fc_cpu.epochs.tolist()}")

# -- 4. resume of a GPU checkpoint ----------------------------------------------------------
print("\n4. resume of a GPU checkpoint")
cfg = {**FC_CFG, "patience": 100}
full = train_ensemble("gpu_check", cfg, FC_DEPTH, FC_DATA, device="cuda", dtype="float32", progress=False)
for i, where in enumerate(("cuda", "cpu")):
    ckpt = work / f"resume_{i}.pt"
    assert train_ensemble("gpu_check", cfg, FC_DEPTH, FC_DATA, device="cuda", dtype="float32", checkpoint_path=ckpt,
                          progress=False, stop_after_epochs=3) is None
    resumed = train_ensemble("gpu_check", cfg, FC_DEPTH, FC_DATA, device=where, dtype="float32",
                             checkpoint_path=ckpt, progress=False)
    if where == "cuda":
        same = all(np.array_equal(full.weights[k], resumed.weights[k]) for k in full.weights)
        check("resumed on the GPU", same, "the same bits as the uninterrupted GPU run" if same else
              f"weights differ by up to {max(np.abs(full.weights[k] - resumed.weights[k]).max() for k in full.weights):.1e}")
    else:
        diff = float(np.nanmax(np.abs(resumed.histories["train_loss"] - full.histories["train_loss"])
                               / np.abs(full.histories["train_loss"])))
        check("resumed on the CPU", diff < 1e-5, f"finished; loss curve within {diff:.1e} of the GPU run (bound 1e-5)")

# -- 5. mixed precision on the conv path ----------------------------------------------------
print("\n5. conv ResNet on CUDA: float32 and bfloat16 autocast")
conv_gpu = train_conv("gpu_check", CONV_CFG, 8, CONV_DATA, device="cuda", progress=False)
conv_amp = train_conv("gpu_check", {**CONV_CFG, "mixed_precision": True}, 8, CONV_DATA, device="cuda", progress=False)
f32, amp, cpu = (r.histories["train_loss"][0, 0] for r in (conv_gpu, conv_amp, conv_cpu))
tf32 = torch.backends.cudnn.allow_tf32
check("float32 CUDA against CPU", abs(f32 - cpu) / cpu < 1e-2,
      f"train loss {f32:.5f} vs {cpu:.5f} (bound 1e-2 relative: cuDNN TF32 {'on' if tf32 else 'off'})")
check("bfloat16 autocast", bool(conv_amp.metadata["mixed_precision"]) and np.isfinite(amp) and abs(amp - f32) / f32 < 5e-2,
      f"mixed precision {conv_amp.metadata['mixed_precision']}, train loss {amp:.5f} vs float32 {f32:.5f} (bound 5e-2)")

# -- 6. throughput --------------------------------------------------------------------------
print("\n6. throughput on the GPU")


def fc_step(dim: int, depth: int, device: str, engine: str):
    net = ResNetEnsemble.initialise(depth, dim, range(8), delta_type="multi", init="xavier-depth", init_sd=0.01,
                                    activation="tanh", key="bench", device=device)
    net.select_engine(engine)
    opt = EnsembleOptimizer(net.params, "adam", 1e-3)
    x, y = torch.randn(8, 32, dim, device=device), torch.randn(8, 32, dim, device=device)
    active = torch.ones(8, dtype=torch.bool, device=device)

    def step():
        _, grads = net.loss_and_grad(x, y)
        opt.step(net.params, grads, active)

    return step


def seconds_per_call(fn, device: str, calls: int) -> float:
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls


def ops_per_step(dim: int, depth: int) -> int:
    """Top-level ATen operations of one step of the per-layer engine (the launches on a GPU)."""
    from torch.profiler import ProfilerActivity, profile

    step = fc_step(dim, depth, "cpu", "per-layer")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return sum(1 for e in prof.events() if e.name.startswith("aten::")
               and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))


# one small operation of the engine's size, back to back: the time a launch costs
z, h, a = (torch.randn(8, 32, 25, device="cuda"), torch.randn(8, 32, 25, device="cuda"),
           torch.randn(8, 25, 25, device="cuda"))
t_op = seconds_per_call(lambda: torch.baddbmm(z, h, a, out=z), "cuda", 2000)
print(f"   one batched (8 × 32 × 25)·(25 × 25) product back to back: {t_op * 1e6:.1f} µs per operation")
print(f"   {'d':>3} {'L':>5} {'ops/step':>8} {'GPU ms/step':>11} {'model ms':>9} {'GPU/model':>9} "
      f"{'CPU compiled ms':>15} {'GPU µs/(layer·net·step)':>24}")
for dim, depth in ((10, 100), (25, 100), (10, 1000), (25, 1000)):
    n_ops = ops_per_step(dim, depth)
    gpu = seconds_per_call(fc_step(dim, depth, "cuda", "auto"), "cuda", 20 if depth > 100 else 50)
    cpu = seconds_per_call(fc_step(dim, depth, "cpu", "auto"), "cpu", 5 if depth > 100 else 20)
    model = n_ops * t_op
    print(f"   {dim:>3} {depth:>5} {n_ops:>8} {gpu * 1e3:>11.2f} {model * 1e3:>9.2f} {gpu / model:>9.2f} "
          f"{cpu * 1e3:>15.2f} {gpu / (depth * 8) * 1e6:>24.2f}", flush=True)

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from resnet_scaling.cnn.model import build  # noqa: E402

images = torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8)
labels = torch.randint(0, 10, (128,))
for width in (16, 64):
    net = build(8, width, 0)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(net(images.float() / 255), labels).backward()
    flops_per_image = counter.get_total_flops() / 128
    data = {"x_train": np.repeat(CONV_DATA["x_train"], 4, axis=0), "y_train": np.repeat(CONV_DATA["y_train"], 4),
            "x_test": CONV_DATA["x_test"][:8], "y_test": CONV_DATA["y_test"][:8]}
    for amp in (False, True):
        cfg = {**CONV_CFG, "width": width, "mixed_precision": amp}
        train_conv("gpu_check", {**cfg, "epochs": 1}, 8, {**data, "x_train": data["x_train"][:256],
                                                          "y_train": data["y_train"][:256]}, device="cuda", progress=False)
        torch.cuda.synchronize()
        start = time.perf_counter()
        train_conv("gpu_check", cfg, 8, data, device="cuda", progress=False)
        torch.cuda.synchronize()
        rate = len(data["x_train"]) / (time.perf_counter() - start)
        print(f"   conv depth 8, width {width}, {'bfloat16' if amp else 'float32 '}: {rate:8.0f} images/s, "
              f"{rate * flops_per_image / 1e12:6.2f} TFLOP/s achieved (docs/costs.md's estimate assumes 60)", flush=True)

print(f"\n{len(failures)} check(s) failed{': ' + ', '.join(failures) if failures else ''}; "
      f"{time.perf_counter() - started:.0f} s")
sys.exit(1 if failures else 0)
PY
