"""The convolutional trainer: schedule, augmentation, seeds, and bitwise-identical
resumption after an interruption in process (after a real kill: test_checkpoint.py)."""


import numpy as np
import pytest
import torch

from resnet_scaling.cnn.train import (
    PAD,
    augment_batch,
    cosine_lr,
    epoch_draws,
    save_conv_result,
    train_conv,
)
from resnet_scaling.io import read_npz

RNG = np.random.default_rng(0)
DATA = {"x_train": RNG.integers(0, 256, (48, 3, 32, 32), dtype=np.uint8), "y_train": RNG.integers(0, 10, 48),
        "x_test": RNG.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8), "y_test": RNG.integers(0, 10, 8)}
CFG = dict(dataset="c", depths=[8, 11, 12], width=2, seeds=2, epochs=3, batch_size=16)


def _train(ckpt=None, stop=None, **overrides):
    return train_conv("e", {**CFG, **overrides}, 8, DATA, device="cpu", progress=False,
                      checkpoint_path=ckpt, stop_after_epochs=stop)


def test_cosine_schedule_is_torchs_cosine_annealing():
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7)
    for epoch in range(7):
        assert opt.param_groups[0]["lr"] == pytest.approx(cosine_lr(0.1, epoch, 7), rel=1e-12)
        opt.step()
        sched.step()


def test_crop_and_flip_are_slices_of_the_padded_image():
    images = torch.as_tensor(RNG.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8))
    offsets = torch.tensor([[PAD, PAD], [0, 8], [3, 1]])
    flips = torch.tensor([False, False, True])
    out = augment_batch(images, offsets, flips)
    padded = torch.nn.functional.pad(images, (PAD,) * 4)
    assert torch.equal(out[0], images[0])
    assert torch.equal(out[1], padded[1, :, 0:32, 8:40])
    assert torch.equal(out[2], padded[2, :, 3:35, 1:33].flip(-1))
    order, offs, fl = epoch_draws(("k",), 0, 1000, True)
    assert sorted(order) == list(range(1000)) and offs.min() == 0 and offs.max() == 2 * PAD
    assert 0.4 < fl.mean() < 0.6
    assert not np.array_equal(order, epoch_draws(("k",), 1, 1000, True)[0])


def test_training_lowers_the_loss_and_seeds_differ():
    result = _train(epochs=4, augment=False, lr=0.05)
    loss = result.histories["train_loss"]
    assert loss.shape == (2, 4) and np.all(loss[:, -1] < loss[:, 0])
    assert list(result.status) == ["max_epochs"] * 2 and list(result.epochs) == [4, 4]
    k = result.params["blocks.0.conv1.weight"]
    assert k.shape == (2, 2, 2, 3, 3) and not np.array_equal(k[0], k[1])
    again = _train(epochs=4, augment=False, lr=0.05)
    assert all(np.array_equal(result.params[n], again.params[n]) for n in result.params)


@pytest.mark.parametrize("stop", [1, 4])  # inside the first seed; inside the second
def test_resume_in_process_is_bitwise_identical(tmp_path, stop):
    reference = _train()
    ckpt = tmp_path / "c.pt"
    assert _train(ckpt, stop=stop) is None and ckpt.exists()
    resumed = _train(ckpt)
    for name in reference.params:
        assert np.array_equal(reference.params[name], resumed.params[name]), name
    for name in reference.histories:
        assert np.array_equal(reference.histories[name], resumed.histories[name]), name


def test_checkpoint_of_another_configuration_is_not_resumed(tmp_path):
    ckpt = tmp_path / "c.pt"
    _train(ckpt, stop=1)
    other = _train(ckpt, lr=0.05)
    fresh = _train(lr=0.05)
    assert all(np.array_equal(other.params[n], fresh.params[n]) for n in fresh.params)


def test_output_file_holds_every_parameter_seed_major(tmp_path):
    result = _train(epochs=1)
    save_conv_result(tmp_path / "out.npz", result)
    arrays, meta = read_npz(tmp_path / "out.npz")
    assert arrays["param:blocks.7.conv2.weight"].shape == (2, 16, 16, 3, 3)
    assert arrays["param:blocks.7.conv2.weight"].dtype == np.float32
    assert list(arrays["status"]) == ["max_epochs"] * 2 and meta["config"]["lr"] == 0.1


def test_mixed_precision_applies_on_cuda_only():
    plain, mixed = _train(epochs=1), _train(epochs=1, mixed_precision=True)
    assert plain.metadata["mixed_precision"] is False and mixed.metadata["mixed_precision"] is False
    assert all(np.array_equal(plain.params[n], mixed.params[n]) for n in plain.params)
