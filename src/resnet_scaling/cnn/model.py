"""The convolutional ResNet of the original study's CIFAR-10 experiment (docs/references.md).

A 3×3 stem convolution (``width`` channels) with ReLU, four stages of BasicBlocks without
batch normalisation with ``width`` × 1, 2, 4, 8 channels and strides 1, 2, 2, 2, global
average pooling and a linear layer. A block is

    x ↦ relu(conv2(relu(conv1 x)) + shortcut x),

with the identity as shortcut, or a strided 1×1 convolution where the block changes the
shape. Convolutions have no bias. In the paper's roles conv1 is A_k and conv2 is δ_k; no
other δ enters. Depth L = n1 + n2 + n3 + n4 blocks, from the original table
:data:`STAGE_BLOCKS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: Blocks per stage (n1, n2, n3, n4) of every depth of the original study.
STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    8: (2, 2, 2, 2), 11: (2, 3, 4, 2), 12: (2, 3, 5, 2), 14: (3, 3, 5, 3), 16: (3, 4, 6, 3),
    18: (3, 4, 8, 3), 20: (3, 4, 10, 3), 24: (3, 4, 14, 3), 28: (3, 4, 18, 3), 33: (3, 4, 23, 3),
    42: (3, 8, 28, 3), 50: (3, 8, 36, 3), 65: (3, 8, 51, 3), 80: (4, 12, 60, 4),
    100: (4, 18, 74, 4), 121: (4, 31, 82, 4),
}
STAGE_STRIDES = (1, 2, 2, 2)
IMAGE_SIZE = 32
N_CLASSES = 10


def stage_blocks(depth: int) -> tuple[int, int, int, int]:
    """(n1, n2, n3, n4) of a depth of the original table."""
    if depth not in STAGE_BLOCKS:
        raise ValueError(f"depth {depth} is not in the table of the convolutional ResNet: {sorted(STAGE_BLOCKS)}")
    return STAGE_BLOCKS[depth]


@dataclass(frozen=True)
class BlockGeometry:
    """Where block k sits: its stage, its channels, the input size and stride of conv1.

    conv2 always sees ``size`` × ``size`` inputs with stride 1; conv1 sees ``in_size`` × ``in_size``.
    """

    k: int
    stage: int
    in_channels: int
    channels: int
    in_size: int
    stride: int

    @property
    def size(self) -> int:
        return self.in_size // self.stride


def block_geometry(depth: int, width: int) -> list[BlockGeometry]:
    """The geometry of every block of a network, in order k = 0..L−1."""
    blocks, k, channels, size = [], 0, width, IMAGE_SIZE
    for stage, (n, stride) in enumerate(zip(stage_blocks(depth), STAGE_STRIDES)):
        out = width * 2**stage
        for i in range(n):
            s = stride if i == 0 else 1
            blocks.append(BlockGeometry(k, stage, channels, out, size, s))
            k, channels, size = k + 1, out, size // s
    return blocks


class PointwiseProjection(nn.Conv2d):
    """The strided 1×1 convolution of a projection shortcut, computed as a matrix product of
    the strided input.

    The same parameter, initialisation and state-dict key as ``nn.Conv2d(in, out, 1, stride)``
    and the same map. It does not go through oneDNN: its JIT kernel for the weight gradient of
    1×1 convolutions (``jit_avx2_1x1_convolution_bwd_weights``, torch 2.13.0) hangs or aborts
    the process on some CPUs when the layer has few channels.
    """

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__(in_channels, channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride[0]
        return torch.einsum("oi,bihw->bohw", self.weight[:, :, 0, 0], x[:, :, ::s, ::s])


class BasicBlock(nn.Module):
    """relu(conv2(relu(conv1 x)) + shortcut x), no batch normalisation."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.shortcut = (
            PointwiseProjection(in_channels, channels, stride)
            if stride != 1 or in_channels != channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class ConvResNet(nn.Module):
    """The CIFAR-10 ResNet of a depth of :data:`STAGE_BLOCKS`; ``blocks`` holds the L blocks in order."""

    def __init__(self, depth: int, width: int = 64):
        super().__init__()
        self.depth, self.width = depth, width
        self.stem = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.blocks = nn.ModuleList(
            BasicBlock(g.in_channels, g.channels, g.stride) for g in block_geometry(depth, width)
        )
        self.linear = nn.Linear(width * 8, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.stem(x))
        for block in self.blocks:
            out = block(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)  # the 4 × 4 average pool of the original
        return self.linear(out)


def build(depth: int, width: int, seed: int) -> ConvResNet:
    """A network initialised by PyTorch's default rules from a generator seeded by ``seed``
    alone, on the CPU: the same weights whatever the device it is then moved to."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ConvResNet(depth, width)
