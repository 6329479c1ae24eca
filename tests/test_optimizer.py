"""The ensemble optimiser: bitwise torch.optim, state round trips, frozen seeds, and the
per-seed finiteness check the trainer's divergence rule relies on."""

import math

import pytest
import torch

from resnet_scaling.training.optimizer import EnsembleOptimizer, finite_per_seed


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "kind, make_reference",
    [
        ("adam", lambda tensors: torch.optim.Adam(tensors, lr=0.01, fused=True)),
        ("sgd", lambda tensors: torch.optim.SGD(tensors, lr=0.01, momentum=0.9, foreach=True)),
    ],
)
def test_optimizer_is_bitwise_torch_optim(kind, make_reference, dtype):
    """The direct kernel calls give exactly torch.optim's numbers, step after step."""
    gen = torch.Generator().manual_seed(0)
    params = {
        "A": torch.randn(3, 2, 4, 4, generator=gen, dtype=dtype),
        "b": torch.randn(3, 2, 4, generator=gen, dtype=dtype),
        "c": torch.randn(1, 2, generator=gen, dtype=dtype),
    }
    reference = {name: value.clone().requires_grad_(True) for name, value in params.items()}
    opt = EnsembleOptimizer(params, kind, lr=0.01, momentum=0.9)
    torch_opt = make_reference(list(reference.values()))
    for _ in range(6):
        grads = {name: torch.randn(value.shape, generator=gen, dtype=dtype) for name, value in params.items()}
        opt.step(params, grads, torch.tensor([True, True]))
        for name, tensor in reference.items():
            tensor.grad = grads[name].clone()
        torch_opt.step()
    for name in params:
        assert torch.equal(params[name], reference[name].detach()), name


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_optimizer_state_round_trips(kind):
    """A restored optimiser continues exactly as the one it was saved from."""
    gen = torch.Generator().manual_seed(1)
    shape = (3, 2, 2, 2)
    grads = [torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(4)]
    params = {"A": torch.randn(shape, generator=gen, dtype=torch.float64)}
    twin = {"A": params["A"].clone()}
    opt = EnsembleOptimizer(params, kind, lr=0.05, momentum=0.9)
    for g in grads[:2]:
        opt.step(params, {"A": g}, torch.tensor([True, True]))
    twin["A"].copy_(params["A"])
    restored = EnsembleOptimizer(twin, kind, lr=0.05, momentum=0.9)
    restored.load_state_dict(opt.state_dict())
    for g in grads[2:]:
        opt.step(params, {"A": g}, torch.tensor([True, True]))
        restored.step(twin, {"A": g}, torch.tensor([True, True]))
    assert torch.equal(params["A"], twin["A"])
    with pytest.raises(ValueError, match="cannot resume"):
        EnsembleOptimizer(twin, "sgd" if kind == "adam" else "adam", lr=0.05).load_state_dict(opt.state_dict())


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_frozen_seeds_keep_parameters_and_state(kind):
    params = {"A": torch.ones(2, 3, 2, 2, dtype=torch.float64)}
    opt = EnsembleOptimizer(params, kind, lr=0.1, momentum=0.9)
    before = params["A"].clone()
    opt.step(params, {"A": torch.ones_like(before)}, torch.tensor([True, True, True]))
    state_before = [t.clone() for t in opt._state_tensors()]
    mid = params["A"].clone()
    opt.step(params, {"A": torch.ones_like(before)}, torch.tensor([True, False, True]))
    assert torch.equal(params["A"][:, 1], mid[:, 1])
    assert not torch.equal(params["A"][:, 0], mid[:, 0])
    for old, new in zip(state_before, opt._state_tensors()):
        assert torch.equal(old[:, 1], new[:, 1]) and not torch.equal(old[:, 0], new[:, 0])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_finite_per_seed_finds_every_non_finite_entry(bad):
    gen = torch.Generator().manual_seed(2)
    for shape in [(5, 3, 2, 2), (5, 3, 2), (1, 3)]:
        tensor = torch.randn(shape, generator=gen)
        assert finite_per_seed(tensor).tolist() == [True, True, True]
        index = (shape[0] - 1, 1, *([0] * (len(shape) - 2)))
        tensor[index] = bad
        assert finite_per_seed(tensor).tolist() == [True, False, True]
