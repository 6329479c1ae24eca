"""Training throughput of the convolutional ResNet: our trainer against plain torch.nn and torch.optim.SGD.

In the same run, on the same images in the same order and from the same initial weights, it
trains one epoch with :func:`resnet_scaling.cnn.train.train_conv` (its random crop and flip
switched off, so that both see the same batches) and with a plain ``torch.nn`` network of the
same architecture (``nn.Conv2d`` blocks in an ``nn.Sequential``) and ``torch.optim.SGD``
(lr 0.1, momentum 0.9, weight decay 5e-4). It first checks that the two agree on the mean
loss of that epoch's steps, then prints images per second of process CPU time (one intra-op
thread unless told otherwise) and their ratio. Last line: ``ratio ours/plain: <ratio>``.

Usage: python benchmarks/conv_train_throughput.py [--depth 8] [--width 16] [--images 1024] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from resnet_scaling.cnn.model import block_geometry, build
from resnet_scaling.cnn.train import epoch_draws, normalise, seed_key, train_conv
from resnet_scaling.io import stable_seed


class PlainBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


def plain_network(depth: int, width: int) -> nn.Sequential:
    blocks = [PlainBlock(g.in_channels, g.channels, g.stride) for g in block_geometry(depth, width)]
    return nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.ReLU(), *blocks,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 * width, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    data = {"x_train": rng.integers(0, 256, (args.images, 3, 32, 32), dtype=np.uint8),
            "y_train": rng.integers(0, 10, args.images),
            "x_test": rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8), "y_test": rng.integers(0, 10, 8)}
    cfg = {"dataset": "bench", "depths": [args.depth] * 3, "width": args.width, "seeds": 1, "epochs": 1,
           "batch_size": args.batch, "augment": False}

    # warm-up of both code paths (first calls allocate and pick kernels)
    warm = {k: v[: args.batch] for k, v in data.items()}
    train_conv("warm", {**cfg, "batch_size": args.batch}, args.depth, warm, device="cpu", progress=False)

    # ours: one epoch of the trainer (evaluation on 8 test images included)
    start = time.process_time()
    ours = train_conv("bench", cfg, args.depth, data, device="cpu", progress=False)
    t_ours = time.process_time() - start

    # plain: the same initial weights, batches and hyperparameters
    key = seed_key("bench", 0, args.depth, 0)
    reference = build(args.depth, args.width, stable_seed(*key, "init"))
    net = plain_network(args.depth, args.width)
    net.load_state_dict(dict(zip(net.state_dict(), reference.state_dict().values())))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    order = torch.as_tensor(epoch_draws(key, 0, args.images, False)[0])
    x_all, y_all = torch.as_tensor(data["x_train"]), torch.as_tensor(data["y_train"])
    start = time.process_time()
    losses = []
    for i in range(0, args.images, args.batch):
        idx = order[i : i + args.batch]
        loss = F.cross_entropy(net(normalise(x_all[idx])), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()) * len(idx))
    t_plain = time.process_time() - start
    mean_plain = sum(losses) / args.images
    mean_ours = float(ours.histories["train_loss"][0, 0])
    if not np.isclose(mean_ours, mean_plain, rtol=1e-5):
        raise SystemExit(f"the two implementations disagree: mean loss {mean_ours} vs {mean_plain}")
    print(f"depth {args.depth}, width {args.width}, {args.images} images, batch {args.batch}, "
          f"{args.threads} thread(s); mean loss of the epoch's steps {mean_ours:.6f} (ours) vs {mean_plain:.6f} (plain)")
    print(f"ours: {args.images / t_ours:.1f} images/s; plain torch.nn + torch.optim.SGD: {args.images / t_plain:.1f} images/s")
    print(f"ratio ours/plain: {t_plain / t_ours:.2f}")


if __name__ == "__main__":
    main()
