"""The checkpoint machinery both trainers share: bitwise-identical resumption after a real
kill, and no code run from a file planted where a checkpoint or a training output is read."""

import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

from resnet_scaling.cnn.train import train_conv
from resnet_scaling.io import job_log, read_npz
from resnet_scaling.training import checkpoint
from resnet_scaling.training.data import make_synthetic
from resnet_scaling.training.train import train_ensemble

FC_BASE = dict(dataset="synthetic", activation="tanh", delta="multi", init="xavier", init_sd=0.5,
               lr=0.01, batch_size=16, max_epochs=4, epsilon=1e-9, patience=100, seeds=3)
FC_DATA = make_synthetic(96, 32, dim=4, seed=0)
RNG = np.random.default_rng(0)
CONV_DATA = {"x_train": RNG.integers(0, 256, (48, 3, 32, 32), dtype=np.uint8), "y_train": RNG.integers(0, 10, 48),
             "x_test": RNG.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8), "y_test": RNG.integers(0, 10, 8)}
CONV_CFG = dict(dataset="c", depths=[8, 11, 12], width=2, seeds=2, epochs=3, batch_size=16)


def _kill_and_resume(tmp_path, module: str, cfg_path, experiment: str, depth: int):
    """Train to the end once; start the same job again, kill it (SIGKILL) after its first
    checkpoint, restart it to the end; both outputs, read back."""

    def command(out, ckpt):
        return [sys.executable, "-m", module, "--config", str(cfg_path), "--experiment", experiment,
                "--depth", str(depth), "--output", str(out), "--checkpoint", str(ckpt)]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command(tmp_path / "reference.npz", tmp_path / "ref.pt"), check=True, env=env, capture_output=True)
    ckpt = tmp_path / "killed.pt"
    proc = subprocess.Popen(command(tmp_path / "resumed.npz", ckpt), env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    # the checkpoint is written atomically: once it exists it is whole, so the kill comes at once
    assert proc.poll() is None, "the job finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not (tmp_path / "resumed.npz").exists()
    resumed = subprocess.run(command(tmp_path / "resumed.npz", ckpt), check=True, env=env, capture_output=True,
                             text=True)
    assert "resuming from" in resumed.stderr
    return read_npz(tmp_path / "reference.npz"), read_npz(tmp_path / "resumed.npz")


#: The default block on the compiled engine with Adam; a two-matrix block with a Brownian
#: initialisation, a fixed 1/L residual scale and full-batch SGD with lr ∝ L (per-layer engine).
FC_KILLED = {
    # no early stop (ε and the plateau rule out of reach), so the job runs long after its first checkpoint
    "adam": dict(n_train=256, options={"max_epochs": 200, "batch_size": 16, "epsilon": 1e-12, "patience": 1000}),
    "two-matrix-sgd": dict(n_train=128, options={
        "block": "two-matrix", "hidden_width": 7, "init_depth_profile": "brownian", "delta": "fixed", "alpha": 1.0,
        "optimizer": "sgd", "lr": 0.01, "lr_depth_exponent": 1.0, "batch_size": 128, "max_epochs": 150}),
}


@pytest.mark.parametrize("name", list(FC_KILLED))
def test_killed_fc_job_resumes_to_identical_weights(tmp_path, name):
    setup = FC_KILLED[name]
    config = {"seed": 0, "device": "cpu", "dtype": "float32",
              "datasets": {"synthetic": {"kind": "synthetic", "n_train": setup["n_train"], "n_test": 32, "dim": 6}},
              "experiments": {"exp": {**FC_BASE, **setup["options"], "checkpoint_every": 1, "depths": [12, 24, 48]}}}
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    (ref, _), (res, _) = _kill_and_resume(tmp_path, "resnet_scaling.training.train", cfg_path, "exp", 48)
    for key in ("A", "b", "delta", "train_loss", "test_loss", "epochs", *(("V",) if "V" in ref else ())):
        assert np.array_equal(ref[key], res[key], equal_nan=key.endswith("loss")), key


def test_killed_conv_job_resumes_to_identical_weights(tmp_path):
    from test_cifar_data import write_cifar

    folder = tmp_path / "cifar"
    folder.mkdir()
    write_cifar(folder, n_per_batch=16, n_test=8)
    config = {"seed": 0, "device": "cpu",
              "datasets": {"c": {"kind": "cifar10", "path": str(folder), "n_train": 80, "n_test": 8}},
              "experiments": {}, "conv_experiments": {"e": {**CONV_CFG, "seeds": 1, "epochs": 16}}}
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    (ref, meta), (res, _) = _kill_and_resume(tmp_path, "resnet_scaling.cnn.train", cfg_path, "e", 8)
    assert meta["depth"] == 8 and ref["train_loss"].shape == (1, 16)
    for key in ref:
        assert np.array_equal(ref[key], res[key]), key


# -- files planted where the trainers read ------------------------------------------------


class Planted:
    """An object whose unpickling creates ``marker``: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def _plant(path, marker, how: str) -> None:
    payload = {"fingerprint": "anything", "state": Planted(marker)}
    if how == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))


def _fc(ckpt):
    return train_ensemble("exp", FC_BASE, 6, FC_DATA, dtype="float64", device="cpu", progress=False,
                          checkpoint_path=ckpt)


def _conv(ckpt):
    return train_conv("e", CONV_CFG, 8, CONV_DATA, device="cpu", progress=False, checkpoint_path=ckpt)


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
@pytest.mark.parametrize("trainer", ["fc", "conv"])
def test_a_planted_checkpoint_runs_no_code_and_training_restarts(tmp_path, capfd, trainer, how):
    train, weights = {"fc": (_fc, lambda r: r.weights), "conv": (_conv, lambda r: r.params)}[trainer]
    ckpt, marker, log_file = tmp_path / "depth_6.pt", tmp_path / "code-ran", tmp_path / "job.log"
    _plant(ckpt, marker, how)
    saved_stderr = sys.stderr
    sys.stderr = job_log(log_file)  # as in a workflow job: the message reaches both the console and the log
    try:
        result = train(ckpt)
    finally:
        sys.stderr.close()
        sys.stderr = saved_stderr
    assert not marker.exists(), "unpickling the planted checkpoint ran its code"
    console = capfd.readouterr().err
    message = next(line for line in console.splitlines() if "was not loaded" in line)
    assert str(ckpt) in message and "would run" in message and "starts from scratch" in message
    assert message in log_file.read_text()
    fresh = train(None)
    assert all(np.array_equal(weights(result)[k], weights(fresh)[k]) for k in weights(fresh))
    assert isinstance(checkpoint.load(ckpt), dict)  # replaced by a checkpoint of its own, loadable safely


def test_a_planted_training_output_runs_no_code(tmp_path):
    marker = tmp_path / "code-ran"
    output = tmp_path / "results" / "train" / "exp" / "depth_6.npz"
    output.parent.mkdir(parents=True)
    np.savez(output, A=np.array([Planted(marker)], dtype=object))
    with pytest.raises(ValueError, match=str(output)):
        read_npz(output)
    output.write_bytes(pickle.dumps({"A": Planted(marker)}))
    with pytest.raises(ValueError, match=f"{output} is not a .npz archive"):
        read_npz(output)
    assert not marker.exists()


def test_what_the_trainers_store_loads_with_weights_only(tmp_path):
    """Every checkpoint the trainers write, mid-seed and between seeds, is tensors and plain values."""
    fc, conv = tmp_path / "fc.pt", tmp_path / "conv.pt"
    assert train_ensemble("exp", {**FC_BASE, "shuffle": "original-defect", "optimizer": "sgd", "momentum": 0.9},
                          6, FC_DATA, dtype="float64", progress=False, checkpoint_path=fc, stop_after_epochs=2) is None
    assert train_conv("e", CONV_CFG, 8, CONV_DATA, device="cpu", progress=False, checkpoint_path=conv,
                      stop_after_epochs=4) is None
    for path in (fc, conv):
        saved = torch.load(path, weights_only=True)
        assert saved["fingerprint"].startswith(f"[{checkpoint.CHECKPOINT_FORMAT}, ")
    assert len(torch.load(conv, weights_only=True)["state"]["finished"]) == 1


def test_an_unreadable_checkpoint_is_one_sentence_naming_it(tmp_path):
    ckpt = tmp_path / "ck.pt"
    ckpt.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match=f"cannot read checkpoint {ckpt}.*delete it to start over"):
        _fc(ckpt)
