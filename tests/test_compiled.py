"""The compiled FC engine: gradients against float64 autograd, its tanh against the exact
value, agreement with the per-layer engine, and the choice of engine with its fallback."""

import hashlib
import itertools
import json
import shutil

import numpy as np
import pytest
import torch

from resnet_scaling.training import compiled
from resnet_scaling.training.data import make_synthetic
from resnet_scaling.training.resnet import DELTA_TYPES, ResNetEnsemble
from resnet_scaling.training.train import train_ensemble

pytestmark = pytest.mark.skipif(compiled.library() is None, reason="the compiled engine cannot be built here")


def _net(delta, act, depth=9, dim=5, seeds=3, dtype=torch.float64, sd=1.0):
    return ResNetEnsemble.initialise(depth, dim, list(range(seeds)), delta_type=delta, init="xavier", init_sd=sd,
                                     activation=act, alpha=0.5, key="test", dtype=dtype)


def _data(seeds, n, dim, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(seeds, n, dim, generator=gen, dtype=dtype), torch.randn(seeds, n, dim, generator=gen, dtype=dtype))


# Batches below, at and above one chunk of samples (16 doubles); widths of 1 to 4 vectors of
# 4 doubles (∂ℓ/∂A by outer products) with and without a remainder, and of 5 (by lane sums).
@pytest.mark.parametrize("delta,act,n,dim", [
    *[(delta, act, 7, 5) for delta, act in itertools.product(DELTA_TYPES, ["tanh", "relu"])],
    ("multi", "tanh", 16, 3), ("shared", "relu", 40, 11), ("multi", "relu", 33, 8), ("fixed", "tanh", 1, 1),
    ("multi", "tanh", 20, 16), ("shared", "tanh", 9, 20),
])
def test_compiled_gradients_equal_autograd(delta, act, n, dim):
    net = _net(delta, act, dim=dim)
    assert net.select_engine("auto") == "compiled"
    x, y = _data(3, n, dim)
    loss, grads = net.loss_and_grad(x, y)

    leaves = {k: v.clone().requires_grad_(True) for k, v in net.params.items()}
    reference = ResNetEnsemble(leaves, delta, act, alpha=0.5)
    ref_loss = reference.loss(x, y)
    ref_loss.sum().backward()
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-13, atol=0)
    assert set(grads) == set(leaves)
    for name, leaf in leaves.items():
        rel = (grads[name] - leaf.grad).norm() / leaf.grad.norm()
        assert rel < 1e-10, f"{name}: relative error {rel:.2e}"
    with torch.no_grad():  # the evaluation pass
        torch.testing.assert_close(net.forward(x), reference.forward(x).detach(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("dim", [10, 25, 40])
def test_float32_step_agrees_with_the_per_layer_engine(act, dim):
    """Same float32 weights and batch: loss and gradients to float32 rounding (a different
    order of summation, a tanh within 1.33 ulp instead of 1); d = 40 takes ∂ℓ/∂A by lane sums."""
    compiled_net = _net("multi", act, depth=64, dim=dim, seeds=4, dtype=torch.float32, sd=0.5)
    per_layer = ResNetEnsemble({k: v.clone() for k, v in compiled_net.params.items()}, "multi", act, alpha=0.5)
    assert compiled_net.select_engine("auto") == "compiled" and per_layer.engine == "per-layer"
    x, y = _data(4, 32, dim, dtype=torch.float32)
    loss, grads = compiled_net.loss_and_grad(x, y)
    ref_loss, ref_grads = per_layer.loss_and_grad(x, y)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=0)
    for name in grads:
        rel = (grads[name] - ref_grads[name]).norm() / ref_grads[name].norm()
        assert rel < 1e-5, f"{name}: relative difference {rel:.2e}"
    with torch.no_grad():
        torch.testing.assert_close(compiled_net.loss(x, y), per_layer.loss(x, y), rtol=1e-5, atol=0)


def test_float32_tanh_is_within_ulps_of_the_exact_value():
    """σ = tanh of the compiled float32 engine: h_1 = 0 + 1 · tanh(0 · 0 + b) for one-layer,
    one-unit networks whose biases b are the arguments."""
    lib = compiled.library()
    values = torch.cat([
        torch.linspace(-20, 20, 400_001),
        torch.logspace(-30, 1.5, 20_001),
        -torch.logspace(-30, 1.5, 20_001),
        torch.tensor([0.0, -0.0, 0.625, -0.625, 0.62499994, 88.0, 1e30, -1e30, float("inf"), float("-inf"), float("nan")]),
    ]).to(torch.float32)
    S = values.numel()
    out = compiled.forward(lib, torch.zeros(1, S, 1, 1), values.view(1, S, 1), torch.ones(1, S),
                           torch.zeros(S, 1, 1), "tanh").flatten()
    exact = torch.tanh(values.double())
    finite = torch.isfinite(values)
    ulp = torch.finfo(torch.float32).eps * torch.exp2(torch.floor(torch.log2(exact.abs().clamp(min=2.0**-126))))
    error = ((out.double() - exact).abs() / ulp)[finite]
    assert float(error.max()) <= 1.5
    assert torch.isnan(out[-1]) and out[-3] == 1.0 and out[-2] == -1.0


def test_engine_choice_covers_the_paper_grid_and_falls_back_otherwise(monkeypatch):
    for delta, act in itertools.product(DELTA_TYPES, ["tanh", "relu"]):
        assert _net(delta, act).select_engine("auto") == "compiled"
    for act in ("identity", "softplus0"):  # activations without compiled kernels
        assert _net("shared", act).select_engine("auto") == "per-layer"
    two = ResNetEnsemble.initialise(4, 3, [0], delta_type="multi", activation="tanh", block="two-matrix",
                                    hidden_width=5, dtype=torch.float64)
    assert two.select_engine("auto") == "per-layer"
    net = _net("multi", "tanh")
    assert net.select_engine("per-layer") == "per-layer"
    with pytest.raises(ValueError, match="unknown engine 'fast'"):
        net.select_engine("fast")
    monkeypatch.setattr(compiled, "_state", {"lib": None, "reason": "no compiler"})
    assert _net("multi", "tanh").select_engine("auto") == "per-layer"


DATA = make_synthetic(96, 32, dim=4, seed=0)
BASE = dict(dataset="synthetic", activation="tanh", delta="multi", init="xavier", init_sd=0.5,
            lr=0.01, batch_size=16, max_epochs=3, epsilon=1e-9, patience=100, seeds=2)


def test_a_failed_build_is_one_line_and_training_goes_on(monkeypatch, tmp_path, capfd):
    monkeypatch.setattr(compiled, "_state", {})
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    result = train_ensemble("exp", BASE, 5, DATA, dtype="float64", progress=False)
    assert result.metadata["engine"] == "per-layer" and list(result.status) == ["max_epochs"] * 2
    notes = _console_notes(capfd)
    assert len(notes) == 1, notes
    assert "compiled FC engine unavailable" in notes[0] and "no-such-compiler" in notes[0]


def _console_notes(capfd) -> list[str]:
    """The engine's lines on stderr (pytest captures both the process's stderr and sys.stderr,
    to each of which the console line is written: one line, twice)."""
    return list(dict.fromkeys(line for line in capfd.readouterr().err.splitlines() if "compiled FC engine" in line))


# -- a damaged library heals ------------------------------------------------------------


@pytest.fixture
def cache_copy(tmp_path, monkeypatch):
    """A private copy of the built library's folder (no compile: a damaged library only needs
    relinking), made the extension cache of a fresh process state; its library file."""
    built = compiled.build_directory()
    assert (built / compiled.RECORD).is_file()
    folder = tmp_path / "ext" / built.name
    shutil.copytree(built, folder, ignore=shutil.ignore_patterns("*.lock", "lock"))
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setattr(compiled, "_state", {})
    return folder / f"{built.name}.so"




@pytest.mark.parametrize("damage", ["truncated", "empty", "altered"])
def test_a_damaged_library_is_rebuilt_and_loads(cache_copy, capfd, damage):
    whole = cache_copy.read_bytes()
    record = json.loads((cache_copy.parent / compiled.RECORD).read_text())
    assert record == {"file": cache_copy.name, "size": len(whole), "sha256": hashlib.sha256(whole).hexdigest()}
    damaged = {"truncated": whole[:1000], "empty": b"", "altered": whole[:-1] + bytes([whole[-1] ^ 1])}[damage]
    cache_copy.write_bytes(damaged)
    lib = compiled.library()
    assert lib is not None and lib.rs_fc_instruction_set() in (0, 1)
    rebuilt = json.loads((cache_copy.parent / compiled.RECORD).read_text())
    assert (cache_copy.parent / rebuilt["file"]).stat().st_size == rebuilt["size"] > 1000
    notes = _console_notes(capfd)
    assert len(notes) == 1 and str(cache_copy) in notes[0] and "rebuilt and loads" in notes[0], notes
    assert compiled.library() is lib and _console_notes(capfd) == []  # once per process
    assert _net("multi", "tanh").select_engine("auto") == "compiled"


def test_a_damaged_library_that_cannot_be_rebuilt_falls_back_saying_why(cache_copy, capfd, monkeypatch, tmp_path):
    cache_copy.write_bytes(cache_copy.read_bytes()[:1000])
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    assert compiled.library() is None
    notes = _console_notes(capfd)
    assert len(notes) == 1 and str(cache_copy) in notes[0], notes
    assert "could not be rebuilt" in notes[0] and "no-such-compiler" in notes[0] and "per-layer" in notes[0]
    assert _net("multi", "tanh").select_engine("auto") == "per-layer"


def test_a_full_disk_during_the_link_says_so(cache_copy, capfd, monkeypatch):
    import torch.utils.cpp_extension

    cache_copy.write_bytes(b"")

    def full_disk(*args, **kwargs):
        raise RuntimeError("Error building extension 'x': [1/1] c++ fc_engine.o -shared -o x.so\nFAILED: x.so\n"
                           "/usr/bin/ld: final link failed: No space left on device\n"
                           "collect2: error: ld returned 1 exit status\nninja: build stopped: subcommand failed.")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", full_disk)
    assert compiled.library() is None
    notes = _console_notes(capfd)
    assert len(notes) == 1 and "no space left on the device" in notes[0] and "collect2" not in notes[0], notes
    assert "empty" in notes[0] or "0 bytes" in notes[0]
    assert compiled._one_line(OSError(28, "No space left on device")).startswith("no space left on the device")


@pytest.mark.parametrize("engine", ["auto", "per-layer"])
def test_resume_is_bitwise_on_each_engine(tmp_path, engine):
    cfg = {**BASE, "max_epochs": 5, "checkpoint_every": 2, "activation": "relu"}
    full = train_ensemble("exp", cfg, 6, DATA, engine=engine, progress=False)
    assert full.metadata["engine"] == ("compiled" if engine == "auto" else "per-layer")
    ckpt = tmp_path / "ck.pt"
    assert train_ensemble("exp", cfg, 6, DATA, engine=engine, checkpoint_path=ckpt, progress=False,
                          stop_after_epochs=3) is None
    resumed = train_ensemble("exp", cfg, 6, DATA, engine=engine, checkpoint_path=ckpt, progress=False)
    for key in full.weights:
        assert np.array_equal(full.weights[key], resumed.weights[key]), key
    np.testing.assert_array_equal(full.histories["epoch_loss"], resumed.histories["epoch_loss"])


@pytest.mark.parametrize("options", [
    dict(activation="tanh", delta="shared", optimizer="adam", lr=0.01),
    dict(activation="relu", delta="multi", optimizer="adam", lr=0.01),
    dict(activation="tanh", delta="fixed", optimizer="sgd", lr=0.05, momentum=0.9),
    dict(activation="relu", delta="none", optimizer="sgd", lr=0.002),
])
def test_float32_training_agrees_with_the_per_layer_engine(options):
    """A whole float32 run on either engine: loss curves to 1e-5, the same statuses and epochs."""
    cfg = {**BASE, **options, "max_epochs": 30, "patience": 4, "min_improvement": 0.01, "seeds": 3}
    data = make_synthetic(256, 64, dim=10, seed=3)
    runs = {engine: train_ensemble("exp", cfg, 24, data, engine=engine, progress=False)
            for engine in ("auto", "per-layer")}
    ours, reference = runs["auto"], runs["per-layer"]
    assert ours.metadata["engine"] == "compiled"
    assert list(ours.status) == list(reference.status) and np.array_equal(ours.epochs, reference.epochs)
    for key in ("epoch_loss", "train_loss", "test_loss"):
        np.testing.assert_allclose(ours.histories[key], reference.histories[key], rtol=1e-5, equal_nan=True)


def test_engine_compiled_fails_instead_of_falling_back(monkeypatch):
    import pytest

    from resnet_scaling.training import compiled
    from resnet_scaling.training.resnet import ResNetEnsemble

    net = ResNetEnsemble.initialise(8, 3, [0, 1], delta_type="shared", init="xavier-depth", init_sd=0.01,
                                    activation="gelu")
    with pytest.raises(RuntimeError, match="engine: compiled was asked for, but the compiled engine cannot run "
                                           r"\(activation 'gelu'\)"):
        net.select_engine("compiled")
    monkeypatch.setitem(compiled._state, "lib", None)
    monkeypatch.setitem(compiled._state, "reason", "no C++ compiler found")
    tanh = ResNetEnsemble.initialise(8, 3, [0, 1], delta_type="shared", init="xavier-depth", init_sd=0.01,
                                     activation="tanh")
    with pytest.raises(RuntimeError, match="unavailable here: no C\\+\\+ compiler found"):
        tanh.select_engine("compiled")
    assert tanh.select_engine("auto") == "per-layer"


def test_training_outputs_record_the_engine_its_instruction_set_and_compiler():
    from resnet_scaling.training import compiled

    if compiled.library() is None:
        import pytest

        pytest.skip(f"no compiled engine here: {compiled.unavailable_reason()}")
    info = compiled.build_info()
    assert info["instruction_set"] in ("avx2", "base") and info["compiler"]
