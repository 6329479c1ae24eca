"""The convolutional ResNet: the original depth table, the block, and the geometry of its convolutions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resnet_scaling.cnn.model import (
    STAGE_BLOCKS,
    ConvResNet,
    PointwiseProjection,
    block_geometry,
    build,
    stage_blocks,
)


def test_depth_table_sums_to_the_depth():
    assert sorted(STAGE_BLOCKS) == [8, 11, 12, 14, 16, 18, 20, 24, 28, 33, 42, 50, 65, 80, 100, 121]
    for depth, blocks in STAGE_BLOCKS.items():
        assert sum(blocks) == depth
    assert stage_blocks(8) == (2, 2, 2, 2) and stage_blocks(121) == (4, 31, 82, 4)
    with pytest.raises(ValueError, match="not in the table"):
        stage_blocks(9)


def test_geometry_of_every_block():
    geo = block_geometry(11, 4)  # (2, 3, 4, 2)
    assert len(geo) == 11 and [g.stage for g in geo] == [0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3]
    firsts = [g for g in geo if g.k in (0, 2, 5, 9)]
    assert [(g.in_channels, g.channels, g.in_size, g.stride) for g in firsts] == [
        (4, 4, 32, 1), (4, 8, 32, 2), (8, 16, 16, 2), (16, 32, 8, 2)]
    assert geo[-1].size == 4 and geo[3].in_size == 16 and geo[3].stride == 1


def test_forward_is_the_blocks_of_the_reference_without_normalisation():
    torch.manual_seed(0)
    net = ConvResNet(8, 4).double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    h = F.relu(F.conv2d(x, net.stem.weight, padding=1))
    for block, g in zip(net.blocks, block_geometry(8, 4)):
        inner = F.relu(F.conv2d(h, block.conv1.weight, stride=g.stride, padding=1))
        short = h if block.shortcut is None else F.conv2d(h, block.shortcut.weight, stride=g.stride)
        assert (block.shortcut is None) == (g.stride == 1 and g.in_channels == g.channels)
        h = F.relu(F.conv2d(inner, block.conv2.weight, padding=1) + short)
    logits = net.linear(F.avg_pool2d(h, 4).flatten(1))
    torch.testing.assert_close(net(x), logits, rtol=1e-12, atol=1e-12)
    assert all(m.bias is None for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_initialisation_depends_on_the_seed_only():
    a, b, c = build(8, 4, seed=1), build(8, 4, seed=1), build(8, 4, seed=2)
    torch.manual_seed(123)  # the global generator plays no part
    d = build(8, 4, seed=1)
    for (name, p), q, r, t in zip(a.named_parameters(), b.parameters(), c.parameters(), d.parameters()):
        assert torch.equal(p, q) and torch.equal(p, t), name
        assert not torch.equal(p, r), name
    assert np.isclose(sum(p.numel() for p in a.parameters()), sum(p.numel() for p in c.parameters()))


@pytest.mark.parametrize("stride", [1, 2])
def test_projection_shortcut_is_the_strided_1x1_convolution_with_its_gradients(stride):
    torch.manual_seed(3)
    reference = torch.nn.Conv2d(2, 4, 1, stride=stride, bias=False)
    torch.manual_seed(3)
    projection = PointwiseProjection(2, 4, stride)
    assert torch.equal(projection.weight, reference.weight)  # same draws, same key
    assert list(projection.state_dict()) == ["weight"]
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    w = reference.weight.detach().double().requires_grad_()
    out = torch.einsum("oi,bihw->bohw", w[:, :, 0, 0], x[:, :, ::stride, ::stride])
    expected = F.conv2d(x, w, stride=stride)
    torch.testing.assert_close(out, expected, rtol=1e-14, atol=1e-14)
    g = torch.randn_like(expected)
    got = torch.autograd.grad((projection.double()(x) * g).sum(), (x, projection.weight))
    want = torch.autograd.grad((expected * g).sum(), (x, w))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
