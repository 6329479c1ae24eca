"""`resnet-scaling analyse` on networks built here with known exponents (docs/maths.md §3).

Smooth weights A_k = L^{-β} f(k/L) have RMS-norm exponent β and increment-ratio slope −1;
a shared δ = c L^{-α} has max-norm exponent α exactly; i.i.d. (Brownian-increment) weights of
size L^{-1/2} have exponent 1/2 and flat increment ratio and quadratic variation.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from resnet_scaling.analyse import AnalyseError, analyse, load_map
from resnet_scaling.analyse.maps import parse_map
from resnet_scaling.analyse.networks import read_network
from resnet_scaling.analyse.readers import read_checkpoint
from resnet_scaling.cli import main
from resnet_scaling.cnn.operator_norms import operator_norm

ROOT = Path(__file__).resolve().parents[1]
MAPS = ROOT / "examples" / "maps"
FAST = {"bootstrap": {"resamples": 200}}


def row(exponents: pd.DataFrame, quantity: str, statistic: str, population: str | None = None) -> pd.Series:
    """The fit of one quantity and statistic: of the primary population, or of the one named."""
    if "population" in exponents:
        exponents = exponents[exponents["population"] == population] if population else exponents[exponents["primary"]]
    hit = exponents[(exponents["quantity"] == quantity) & (exponents["statistic"] == statistic)]
    assert len(hit) == 1, (quantity, statistic)
    return hit.iloc[0]


def example_map(name: str, **changes):
    raw = yaml.safe_load((MAPS / name).read_text())
    raw.update(changes)
    return parse_map(raw, str(MAPS / name))


# -- networks with known exponents ---------------------------------------------------------


def smooth(L: int, beta: float, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A_k = L^{-β} f(k/L), b_k = L^{-β} g(k/L) for smooth f, g drawn once per seed (same at every depth)."""
    rng = np.random.default_rng(seed)
    C0, C1, C2 = rng.normal(size=(3, d, d)) / math.sqrt(d)
    c0, c1 = rng.normal(size=(2, d))
    t = np.arange(L)[:, None, None] / L
    A = L**-beta * (C0 + np.cos(2 * np.pi * t) * C1 + t * C2)
    b = L**-beta * (c0 + np.sin(2 * np.pi * t[:, :, 0]) * c1)
    return A, b


def brownian(L: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Increments of a Brownian path on a grid of L steps: i.i.d. N(0, 1/L) entries."""
    rng = np.random.default_rng(1000 + seed)
    return rng.normal(size=(L, d, d)) / math.sqrt(L), rng.normal(size=(L, d)) / math.sqrt(L)


def shared_delta(L: int, alpha: float, seed: int) -> float:
    return float(np.exp(0.1 * np.random.default_rng(500 + seed).normal()) * L**-alpha)


DEPTHS = (8, 16, 32, 64, 128)
SEEDS = range(3)


def write_stacked(folder: Path, beta: float, alpha: float, layout: str) -> None:
    """run_L{L}_seed{s}.npz with A (L, d, d) in the given layout, b (L, d) and a shared δ."""
    folder.mkdir(parents=True, exist_ok=True)
    for L in DEPTHS:
        for s in SEEDS:
            A, b = smooth(L, beta, 6, s)
            stored = np.swapaxes(A, 1, 2) if layout == "row" else A
            np.savez(folder / f"run_L{L}_seed{s}.npz", A=stored.astype(np.float32), b=b.astype(np.float32),
                     delta=np.float32(shared_delta(L, alpha, s)))


@pytest.mark.parametrize("layout", ["row", "column"])
def test_smooth_stacked_npz_recovers_known_exponents_and_ode(tmp_path, layout):
    beta, alpha = 0.3, 0.7
    write_stacked(tmp_path / "runs", beta, alpha, layout)
    # 3 seeds whose δ = c_s L^{-α} differ in c_s: a quadratic-variation interval about 0.7 wide,
    # which the default max_ci_width (0.5) would call undetermined
    m = example_map("stacked_npz.yaml", layout=layout, analysis={**FAST, "regime": {"max_ci_width": 1.0}})
    exponents, regimes = analyse([str(tmp_path / "runs" / "run_L*_seed*.npz")], m, tmp_path / "out")
    # A shared δ = c_s L^{-α} stored in float32: its max norm is exactly that, so the slope is −α
    assert row(exponents, "delta", "max_norm")["exponent"] == pytest.approx(alpha, abs=1e-6)
    for quantity, known in (("A", beta), ("b", beta), ("M", alpha + beta)):
        fit = row(exponents, quantity, "rms_norm")
        assert fit["exponent"] == pytest.approx(known, abs=0.01), quantity
        assert fit["ci_low"] - 0.01 <= known <= fit["ci_high"] + 0.01, quantity
        assert fit["n_depths"] == len(DEPTHS) and fit["n_seeds"] == len(SEEDS)
    assert row(exponents, "M", "increment_ratio")["slope"] == pytest.approx(-1.0, abs=0.03)
    assert row(exponents, "M", "quadratic_variation")["slope"] == pytest.approx(-1 - 2 * (alpha + beta), abs=0.05)
    reg = regimes.iloc[0]
    assert (reg["experiment"], reg["regime"], reg["delta"]) == ("stacked", "ODE", "shared")
    assert reg["support"] > 0.9
    for name in ("exponents.csv", "regimes.csv", "statistics.csv", "networks.csv", "report.md", "report.html",
                 "figures/scaling_max_norm.png", "figures/scaling_hypothesis.png", "figures/scaling_summary.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name


def test_row_layout_is_converted_to_the_papers_column_convention(tmp_path):
    write_stacked(tmp_path, 0.3, 0.7, "row")
    net = read_network(tmp_path / "run_L8_seed1.npz", example_map("stacked_npz.yaml"))
    A, b = smooth(8, 0.3, 6, 1)
    np.testing.assert_array_equal(net.A[0], A.astype(np.float32))  # A_k, not its transpose
    np.testing.assert_array_equal(net.b[0], b.astype(np.float32))
    assert net.delta.shape == (1, 8) and np.ptp(net.delta) == 0 and net.delta_type == "shared"
    assert (net.experiment, net.depth, int(net.seeds[0])) == ("stacked", 8, 1)


@pytest.mark.slow
def test_brownian_state_dicts_are_an_sde_with_exponent_one_half(tmp_path):
    depths, seeds, d = (16, 32, 64, 128, 256), range(4), 8
    for L in depths:
        for s in seeds:
            A, b = brownian(L, d, s + 10 * L)
            state = {f"blocks.{k}.fc.weight": torch.tensor(A[k]) for k in range(L)}
            state.update({f"blocks.{k}.fc.bias": torch.tensor(b[k]) for k in range(L)})
            torch.save(state, tmp_path / f"net_{L}_{s}.pt")
    m = parse_map({"name": "brownian", "tensors": {"A": r"blocks\.(?P<block>\d+)\.fc\.weight",
                                                   "b": r"blocks\.(?P<block>\d+)\.fc\.bias"}, "analysis": FAST})
    exponents, regimes = analyse([str(tmp_path / "*.pt")], m, tmp_path / "out")
    fit = row(exponents, "M", "rms_norm")  # δ absent: M = A
    assert fit["ci_low"] <= 0.5 <= fit["ci_high"] and fit["exponent"] == pytest.approx(0.5, abs=0.03)
    ratio = row(exponents, "M", "increment_ratio")
    assert ratio["slope_ci_low"] <= 0.0 <= ratio["slope_ci_high"] and abs(ratio["slope"]) < 0.05
    assert abs(row(exponents, "M", "quadratic_variation")["slope"]) < 0.05
    assert regimes.iloc[0]["regime"] == "SDE" and regimes.iloc[0]["delta"] == "none"
    assert set(exponents["quantity"]) == {"A", "b", "M", "m"}  # δ = 1 is not a quantity


# -- an nn.ModuleList MLP ResNet and a torchvision-style ResNet ----------------------------


class Block(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.linear = nn.Linear(d, d)
        self.delta = nn.Parameter(torch.tensor(1.0))

    def forward(self, h):
        return h + self.delta * torch.tanh(self.linear(h))


class MLPResNet(nn.Module):
    def __init__(self, d: int, depth: int):
        super().__init__()
        self.blocks = nn.ModuleList(Block(d) for _ in range(depth))
        self.head = nn.Linear(d, 1)

    def forward(self, h):
        for block in self.blocks:
            h = block(h)
        return self.head(h)


@pytest.mark.slow
def test_modulelist_mlp_resnet_with_per_block_delta(tmp_path):
    beta, alpha, d = 0.4, 0.6, 5
    for L in DEPTHS:
        for s in SEEDS:
            model = MLPResNet(d, L)
            A, b = smooth(L, beta, d, s)
            delta = L**-alpha * (1.5 + np.sin(2 * np.pi * np.arange(L) / L))  # δ_k = L^{-α} h(k/L)
            with torch.no_grad():
                for k, block in enumerate(model.blocks):
                    block.linear.weight.copy_(torch.tensor(A[k]))  # nn.Linear computes W h: W = A_k
                    block.linear.bias.copy_(torch.tensor(b[k]))
                    block.delta.fill_(float(delta[k]))
            assert torch.isfinite(model(torch.randn(4, d))).all()
            torch.save(model.state_dict(), tmp_path / f"mlp_L{L}_seed{s}.pt")
    m = example_map("mlp_modulelist.yaml", analysis=FAST)
    exponents, regimes = analyse([str(tmp_path / "mlp_L*_seed*.pt")], m, tmp_path / "out")
    for quantity, known in (("A", beta), ("delta", alpha), ("M", alpha + beta), ("M_abs", alpha + beta)):
        fit = row(exponents, quantity, "rms_norm")
        assert fit["exponent"] == pytest.approx(known, abs=0.015), quantity
    assert row(exponents, "delta", "increment_ratio")["slope"] == pytest.approx(-1.0, abs=0.05)
    reg = regimes.iloc[0]
    assert (reg["delta"], reg["activation"], reg["regime"]) == ("multi", "tanh", "ODE")


class BasicBlock(nn.Module):
    """The torchvision BasicBlock: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut x)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    def __init__(self, blocks_layer2: int, width: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(BasicBlock(width, width))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, 2),
                                    *[BasicBlock(2 * width, 2 * width) for _ in range(blocks_layer2 - 1)])
        self.fc = nn.Linear(2 * width, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(torch.relu(self.bn1(self.conv1(x)))))
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.slow
def test_torchvision_style_resnet_with_operator_norms(tmp_path):
    depths, seeds = (4, 8, 16, 32), range(3)
    for L in depths:
        for s in seeds:
            torch.manual_seed(100 * L + s)
            model = ResNet(L)
            with torch.no_grad():
                for block in list(model.layer2)[1:]:  # i.i.d. kernels of size L^{-1/2}
                    block.conv1.weight.normal_(0.0, L**-0.5)
            assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
            torch.save(model.state_dict(), tmp_path / f"resnet_L{L}_seed{s}.pt")
    m = example_map("torchvision_resnet.yaml", analysis=FAST)
    exponents, regimes = analyse([str(tmp_path / "resnet_L*_seed*.pt")], m, tmp_path / "out")
    fit = row(exponents, "A", "rms_norm")
    assert fit["ci_low"] - 0.02 <= 0.5 <= fit["ci_high"] + 0.02 and fit["exponent"] == pytest.approx(0.5, abs=0.06)
    assert set(exponents["quantity"]) == {"A", "M"}  # no bias mapped, δ = 1
    # the max norm is the operator norm of the convolution on 16 x 16 inputs, not the Frobenius norm
    state = torch.load(tmp_path / "resnet_L4_seed0.pt", weights_only=True)
    kernels = [state[f"layer2.{k}.conv1.weight"].numpy() for k in (1, 2, 3)]
    statistics = pd.read_csv(tmp_path / "out" / "statistics.csv")
    value = statistics.query("depth == 4 and seed == 0 and quantity == 'A' and statistic == 'max_norm'")["value"]
    assert value.item() == pytest.approx(max(operator_norm(k, 16) for k in kernels), rel=1e-9)
    assert value.item() < max(np.linalg.norm(k) for k in kernels)
    assert regimes.iloc[0]["dataset"] == "cifar10"


@pytest.mark.slow
def test_seed_axis_files_with_metadata_and_a_diverged_seed(tmp_path):
    """This workflow's training outputs: all seeds of a depth in one file, statuses, metadata, the
    initial weights beside the trained ones (not mapped); a diverged seed with non-finite weights
    is carried as excluded, as the workflow does."""
    from resnet_scaling.io import write_npz

    beta, alpha = 0.3, 0.7
    for L in DEPTHS:
        A, b = (np.stack(x) for x in zip(*(smooth(L, beta, 4, s) for s in range(4))))
        delta = np.array([[shared_delta(L, alpha, s)] * L for s in range(4)])
        A[3, L // 2] = np.nan
        write_npz(tmp_path / "results" / "train" / "toy" / f"depth_{L}.npz",
                  metadata={"experiment": "toy", "depth": L, "dataset": "synthetic",
                            "config": {"delta": "shared", "activation": "tanh", "dataset": "synthetic"}},
                  A=A, b=b, delta=delta, A_init=np.zeros_like(A), b_init=np.zeros_like(b),
                  delta_init=np.ones_like(delta), seeds=np.array([0, 1, 2, 7]),
                  status=np.array(["converged", "stopped", "max_epochs", "diverged"]))
    m = example_map("workflow_outputs.yaml", analysis={**FAST, "include_status": ["converged", "stopped"]})
    exponents, regimes = analyse([str(tmp_path / "results" / "train" / "*" / "depth_*.npz")], m, tmp_path / "out")
    fit = row(exponents, "A", "rms_norm", "converged+stopped")
    assert fit["exponent"] == pytest.approx(beta, abs=0.01)
    assert (fit["n_seeds"], fit["n_excluded"], fit["excluded"]) == (2, 2 * len(DEPTHS), "diverged:5; max_epochs:5")
    # the converged and the stopped seed are two populations: the converged one gives the verdict
    primary = row(exponents, "A", "rms_norm")
    assert (primary["population"], primary["n_seeds"]) == ("converged", 1)
    assert primary["exponent"] == pytest.approx(beta, abs=0.01)
    assert list(regimes["population"]) == ["converged", "converged+stopped"] and regimes["primary"].tolist() == [True, False]
    reg = regimes.iloc[0]
    assert (reg["experiment"], reg["dataset"], reg["activation"], reg["delta"]) == ("toy", "synthetic", "tanh", "shared")
    networks = pd.read_csv(tmp_path / "out" / "networks.csv")
    assert sorted(set(networks["seed"])) == [0, 1, 2, 7] and len(networks) == 4 * len(DEPTHS)
    # the same NaN in a seed that would enter the fits is refused
    m = example_map("workflow_outputs.yaml", analysis={**FAST, "include_status": ["converged", "diverged"]})
    with pytest.raises(AnalyseError, match=r"depth_\d+\.npz: 'A' \(tensors\.A, block \d+, seed 3\) has non-finite"):
        analyse([str(tmp_path / "results" / "train" / "*" / "depth_*.npz")], m, tmp_path / "out2")


def test_the_documented_example_map_is_valid():
    section = (ROOT / "docs" / "analyse.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    m = parse_map(yaml.safe_load(block), "docs/analyse.md")
    assert m.tensors["A"].pattern.fullmatch("blocks.12.linear.weight")["block"] == "12"
    assert m.files.search("runs/mlp_L64_seed3.pt").groupdict() == {"depth": "64", "seed": "3"}


# -- formats ---------------------------------------------------------------------------------


def write_safetensors(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """The safetensors layout: u64 header length, JSON header (dtype, shape, byte offsets), data."""
    header, blobs, offset = {}, [], 0
    for name, value in arrays.items():
        raw = np.ascontiguousarray(value, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


@pytest.mark.slow
def test_safetensors_files_hold_the_same_networks_as_npz(tmp_path):
    beta = 0.3
    write_stacked(tmp_path / "npz", beta, 0.7, "column")
    (tmp_path / "st").mkdir()
    npz_map = example_map("stacked_npz.yaml", layout="column", analysis=FAST)
    st_map = example_map("stacked_npz.yaml", layout="column", analysis=FAST,
                         files=r"run_L(?P<depth>\d+)_seed(?P<seed>\d+)\.safetensors$")
    for path in sorted((tmp_path / "npz").glob("*.npz")):
        target = tmp_path / "st" / path.name.replace(".npz", ".safetensors")
        with np.load(path) as data:
            write_safetensors(target, {k: data[k] for k in data.files})
        a, b = read_network(path, npz_map), read_network(target, st_map)
        for name in ("A", "b", "delta"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    exponents, _ = analyse([str(tmp_path / "st" / "*.safetensors")], st_map, tmp_path / "out")
    assert row(exponents, "A", "rms_norm")["exponent"] == pytest.approx(beta, abs=0.01)


def test_safetensors_package_files_are_read(tmp_path):
    numpy_io = pytest.importorskip("safetensors.numpy")
    A = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    numpy_io.save_file({"A": A}, str(tmp_path / "x.safetensors"))
    arrays, _ = read_checkpoint(tmp_path / "x.safetensors")
    np.testing.assert_array_equal(arrays["A"], A)


def test_bfloat16_weights_are_read_exactly(tmp_path):
    values = np.array([1.5, -2.25, 0.0078125], dtype=np.float32)  # exactly representable in bfloat16
    torch.save({"w": torch.tensor(values).to(torch.bfloat16)}, tmp_path / "x.pt")
    np.testing.assert_array_equal(read_checkpoint(tmp_path / "x.pt")[0]["w"], values)
    high_halves = (values.view(np.uint32) >> 16).astype("<u2").tobytes()  # bfloat16 = top 16 bits of float32
    header = json.dumps({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    (tmp_path / "x.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + high_halves)
    np.testing.assert_array_equal(read_checkpoint(tmp_path / "x.safetensors")[0]["w"], values)
    (tmp_path / "x.h5").write_bytes(b"")
    with pytest.raises(AnalyseError, match=r"x\.h5: unknown file type '\.h5'; set `format` in the map"):
        read_checkpoint(tmp_path / "x.h5")


def test_a_pickled_module_is_refused_with_the_state_dict_hint(tmp_path):
    torch.save(MLPResNet(3, 2), tmp_path / "model.pt")
    with pytest.raises(AnalyseError, match=r"model\.pt.*state_dict\(\)"):
        read_checkpoint(tmp_path / "model.pt")


def test_a_state_dict_inside_a_saved_dict_is_found_by_container(tmp_path):
    model = MLPResNet(3, 4)
    torch.save({"epoch": 3, "model": model.state_dict()}, tmp_path / "mlp_L4_seed0.pt")
    net = read_network(tmp_path / "mlp_L4_seed0.pt", example_map("mlp_modulelist.yaml", container="model"))
    np.testing.assert_array_equal(net.A[0, 2], model.blocks[2].linear.weight.detach().numpy())
    with pytest.raises(AnalyseError, match=r"mlp_L4_seed0\.pt: container: no entry 'state'"):
        read_network(tmp_path / "mlp_L4_seed0.pt", example_map("mlp_modulelist.yaml", container="state"))


# -- bad input: one error naming the file and the key, before any computation ---------------


def mlp_files(folder: Path, depths=(4, 8, 16), break_it=None) -> None:
    """mlp_L{L}_seed0.pt state_dicts; ``break_it(state, L)`` edits the one of depth 8."""
    folder.mkdir(parents=True, exist_ok=True)
    for L in depths:
        state = MLPResNet(3, L).state_dict()
        if break_it is not None and L == 8:
            break_it(state)
        torch.save(state, folder / f"mlp_L{L}_seed0.pt")


def _drop(key):
    return lambda state: state.pop(key)


def _set(key, value):
    return lambda state: state.__setitem__(key, value)


BAD_INPUT = {
    "missing mapped tensor": (_drop("blocks.3.linear.bias"), r"mlp_L8_seed0\.pt: tensors\.b .*no tensor for block.*3"),
    "inconsistent block shapes": (_set("blocks.2.linear.weight", torch.zeros(3, 4)),
                                  r"mlp_L8_seed0\.pt: tensors\.A .*inconsistent block shapes: 'blocks\.2\.linear\.weight'"),
    "gap in the block indices": (lambda s: [s.pop(k) for k in [k for k in s if k.startswith("blocks.5.")]],
                                 r"mlp_L8_seed0\.pt: tensors\.A .*gap: no block 5"),
    "non-finite weights": (_set("blocks.6.linear.weight", torch.full((3, 3), float("nan"))),
                           r"mlp_L8_seed0\.pt: 'blocks\.6\.linear\.weight' \(tensors\.A, block 6\) has non-finite"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_refused_naming_file_and_key_before_any_output(tmp_path, case):
    edit, message = BAD_INPUT[case]
    mlp_files(tmp_path / "in", break_it=edit)
    with pytest.raises(AnalyseError, match=message):
        analyse([str(tmp_path / "in" / "*.pt")], example_map("mlp_modulelist.yaml"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fewer_than_three_depths_are_refused(tmp_path):
    mlp_files(tmp_path, depths=(4, 8))
    (tmp_path / "mlp_L4_seed1.pt").write_bytes((tmp_path / "mlp_L4_seed0.pt").read_bytes())
    with pytest.raises(AnalyseError, match=r"experiment 'mlp_resnet': networks at 2 distinct depth\(s\) \[4, 8\]"):
        analyse([str(tmp_path / "*.pt")], example_map("mlp_modulelist.yaml"), tmp_path / "out")


def test_a_fit_window_with_fewer_than_three_depths_is_refused(tmp_path):
    mlp_files(tmp_path, depths=(4, 8, 16))
    m = example_map("mlp_modulelist.yaml", analysis={"fit": {"min_depth": 8}})
    with pytest.raises(AnalyseError, match=r"analysis\.fit\.min_depth / max_depth: selects 2 depth\(s\) \[8, 16\]"):
        analyse([str(tmp_path / "*.pt")], m, tmp_path / "out")


def test_a_regular_expression_that_matches_nothing_is_refused(tmp_path):
    mlp_files(tmp_path)
    tensors = {**yaml.safe_load((MAPS / "mlp_modulelist.yaml").read_text())["tensors"],
               "A": r"layers\.(?P<block>\d+)\.weight"}
    m = example_map("mlp_modulelist.yaml", tensors=tensors)
    with pytest.raises(AnalyseError, match=r"mlp_L16_seed0\.pt: tensors\.A .*matches none of the"):
        analyse([str(tmp_path / "*.pt")], m, tmp_path / "out")
    with pytest.raises(AnalyseError, match=r"nothing_here/\*\.pt: no such file, and no file matches"):
        analyse([str(tmp_path / "nothing_here" / "*.pt")], m, tmp_path / "out")
    with pytest.raises(AnalyseError, match=r"does not match the map's files pattern"):
        analyse([str(tmp_path / "*.pt")], example_map("mlp_modulelist.yaml", files=r"resnet_L(?P<depth>\d+)"),
                tmp_path / "out")


def test_a_missing_stacked_array_and_the_same_seed_twice_are_refused(tmp_path):
    write_stacked(tmp_path / "a", 0.3, 0.7, "row")
    m = example_map("stacked_npz.yaml", tensors={"A": "A", "b": "bias"})
    with pytest.raises(AnalyseError, match=r"run_L\d+_seed0\.npz: tensors\.b \('bias'\): the file has no tensor 'bias'"):
        analyse([str(tmp_path / "a" / "*.npz")], m, tmp_path / "out")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "run_L8_seed0.npz").write_bytes((tmp_path / "a" / "run_L8_seed0.npz").read_bytes())
    with pytest.raises(AnalyseError, match=r"b/run_L8_seed0\.npz: seed 0 of experiment 'stacked' at depth 8 is also "
                                           r"in .*a/run_L8_seed0\.npz"):
        analyse([str(tmp_path / "a" / "*.npz"), str(tmp_path / "b" / "*.npz")], example_map("stacked_npz.yaml"),
                tmp_path / "out")
    # without seed numbers the files of one depth are its seeds, in file order
    m = example_map("stacked_npz.yaml", files=r"run_L(?P<depth>\d+)_seed\d+\.npz$", analysis=FAST)
    exponents, _ = analyse([str(tmp_path / "a" / "*.npz")], m, tmp_path / "out")
    assert int(row(exponents, "A", "rms_norm")["n_seeds"]) == len(SEEDS)


@pytest.mark.parametrize("raw, message", [
    ({"tensors": {"A": "A"}, "layuot": "row"}, r"map: unknown key `layuot`; did you mean `layout`\?"),
    ({"tensors": {"b": "b"}}, r"tensors: the required key `A` is missing"),
    ({"tensors": {"A": "A"}, "layout": "rows"}, r"layout: 'rows' is not allowed; choose one of column, row"),
    ({"tensors": {"A": r"x\.(?P<block>\d+"}}, r"tensors\.A: .* is not a regular expression"),
    ({"tensors": {"A": "A"}, "files": r"(?P<layer>\d+)"}, r"files: unknown named group\(s\) \['layer'\]"),
    ({"tensors": {"A": "A"}, "analysis": {"fit": {"min_dpth": 4}}}, r"analysis\.fit: unknown key `min_dpth`"),
    ({"tensors": {"A": "A"}, "delta_kind": "shared"}, r"delta_kind: given but tensors\.delta is not mapped"),
])
def test_bad_maps_are_refused_naming_the_key(raw, message):
    with pytest.raises(AnalyseError, match=r"^my\.yaml: " + message):
        parse_map(raw, "my.yaml")


def test_every_shipped_example_map_is_valid():
    names = sorted(p.name for p in MAPS.glob("*.yaml"))
    assert names == ["mlp_modulelist.yaml", "stacked_npz.yaml", "torchvision_resnet.yaml", "workflow_outputs.yaml"]
    for name in names:
        assert load_map(MAPS / name).tensors["A"]


# -- the command line ----------------------------------------------------------------------


def test_cli_main_writes_the_report_and_prints_the_regime(tmp_path, capsys):
    write_stacked(tmp_path / "runs", 0.3, 0.7, "row")
    map_path = tmp_path / "map.yaml"
    map_path.write_text((MAPS / "stacked_npz.yaml").read_text() + "analysis: {bootstrap: {resamples: 100}}\n")
    assert main(["analyse", str(tmp_path / "runs" / "*.npz"), "--map", str(map_path), "--out",
                 str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^stacked \[converged networks: 15 converged; primary verdict\]: [\w ()]+ \(support \d+%\); "
                     r"exponent of M \(rms_norm\) (0\.9|1\.0)\d\d \[", printed, re.M)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| stacked |" in report and "figures/scaling_max_norm.png" in report


def test_cli_bad_input_is_one_line_and_exit_status_2(tmp_path, capsys):
    mlp_files(tmp_path, break_it=_drop("blocks.3.linear.bias"))
    code = main(["analyse", str(tmp_path / "*.pt"), "--map", str(MAPS / "mlp_modulelist.yaml"), "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "mlp_L8_seed0.pt" in err and "tensors.b" in err


def test_installed_entry_point_runs(tmp_path):
    entry = Path(sys.executable).parent / "resnet-scaling"
    command = [str(entry)] if entry.exists() else [sys.executable, "-m", "resnet_scaling.cli"]
    help_text = subprocess.run([*command, "analyse", "--help"], capture_output=True, text=True, timeout=120)
    assert help_text.returncode == 0 and "example (" in help_text.stdout and "--map" in help_text.stdout
    proc = subprocess.run([*command, "analyse", str(tmp_path / "missing.pt"), "--map",
                           str(MAPS / "mlp_modulelist.yaml"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"resnet-scaling analyse: error: {tmp_path / 'missing.pt'}: no such file, and no file matches it as a "
        "glob pattern"]


# -- the workflow's own outputs --------------------------------------------------------------


@pytest.mark.workflow
def test_cli_exponents_equal_the_workflows_on_the_smoke_run(smoke_run, tmp_path):
    from resnet_scaling.config import with_schema_defaults

    config = with_schema_defaults(yaml.safe_load((smoke_run / "config" / "smoke.yaml").read_text()))
    raw = yaml.safe_load((MAPS / "workflow_outputs.yaml").read_text())
    raw["analysis"] = {k: config["scaling"][k] for k in ("detrend_window", "include_status", "fit", "bootstrap",
                                                         "regime")}
    map_path = tmp_path / "map.yaml"
    map_path.write_text(yaml.safe_dump(raw))
    assert main(["analyse", str(smoke_run / "results" / "train" / "*" / "depth_*.npz"), "--map", str(map_path),
                 "--out", str(tmp_path / "out")]) == 0
    keys = ["experiment", "quantity", "statistic"]
    ours = pd.read_csv(tmp_path / "out" / "exponents.csv").sort_values(keys, ignore_index=True)
    theirs = pd.read_csv(smoke_run / "results" / "exponents.csv").sort_values(keys, ignore_index=True)
    pd.testing.assert_frame_equal(ours[keys], theirs[keys])
    for column in ("exponent", "ci_low", "ci_high", "slope", "n_depths", "n_seeds", "n_excluded"):
        np.testing.assert_allclose(ours[column], theirs[column], rtol=1e-9, atol=1e-12, err_msg=column)
    regimes = pd.read_csv(tmp_path / "out" / "regimes.csv").set_index("experiment")
    workflow = pd.read_csv(smoke_run / "results" / "regimes.csv").set_index("experiment")
    assert regimes["regime"].to_dict() == workflow["regime"].to_dict()


# -- a bad --out, mixed widths, corrupt files, plain text, threads, which L ------------------


def test_an_out_that_is_a_file_is_refused_before_any_file_is_read(tmp_path, monkeypatch, capsys):
    import resnet_scaling.analyse.report as report

    mlp_files(tmp_path / "in")
    (tmp_path / "taken").write_text("a file")
    monkeypatch.setattr(report, "expand_inputs", lambda paths: pytest.fail("the inputs were read first"))
    for out, message in ((tmp_path / "taken", f"--out: {tmp_path / 'taken'} is a file, not a folder"),
                         (tmp_path / "taken" / "sub", f"--out: {tmp_path / 'taken'} is a file, so the folder")):
        code = main(["analyse", str(tmp_path / "in" / "*.pt"), "--map", str(MAPS / "mlp_modulelist.yaml"),
                     "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"resnet-scaling analyse: error: {message}"), err
        assert len(err.strip().splitlines()) == 1


def test_networks_of_two_widths_in_one_experiment_are_refused(tmp_path):
    """Width 4 at two depths and width 5 at a third: each depth is consistent, the experiment is not."""
    folder = tmp_path / "in"
    folder.mkdir()
    for L, d in ((4, 4), (8, 4), (16, 5)):
        torch.save(MLPResNet(d, L).state_dict(), folder / f"mlp_L{L}_seed0.pt")
    with pytest.raises(AnalyseError) as info:
        analyse([str(folder / "*.pt")], example_map("mlp_modulelist.yaml"), tmp_path / "out")
    assert str(info.value) == (
        f"{folder / 'mlp_L16_seed0.pt'}: tensors.A: blocks of shape (5, 5) at depth 16, but "
        f"{folder / 'mlp_L4_seed0.pt'} at depth 4 has (4, 4): the networks of experiment 'mlp_resnet' must have "
        "one block shape (one width) at every depth")
    assert not (tmp_path / "out").exists()


def _corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes(np.random.default_rng(0).bytes(len(data)) if how == "random bytes" else data[: len(data) // 2])


@pytest.mark.parametrize("how", ["random bytes", "truncated"])
def test_random_bytes_and_truncated_files_are_diagnosed_as_what_they_are(tmp_path, how):
    torch.save(MLPResNet(3, 4).state_dict(), tmp_path / "net.pt")
    torch.save(MLPResNet(3, 4).state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    write_stacked(tmp_path / "npz", 0.3, 0.7, "row")
    write_safetensors(tmp_path / "net.safetensors", {k: v.numpy() for k, v in MLPResNet(3, 4).state_dict().items()})
    expected = {
        "net.pt": {"random bytes": "is not a PyTorch file: neither the zip archive of torch.save nor a pickle",
                   "truncated": "is truncated or damaged (an incomplete zip archive"},
        "legacy.pt": {"random bytes": "is not a PyTorch file", "truncated": "is truncated or damaged"},
        "npz/run_L8_seed0.npz": {"random bytes": "is not a .npz archive", "truncated": "corrupt or truncated"},
        "net.safetensors": {"random bytes": "is truncated or not a .safetensors file", "truncated": "is truncated"},
    }
    for name, messages in expected.items():
        _corrupt(tmp_path / name, how)
        with pytest.raises(AnalyseError) as info:
            read_checkpoint(tmp_path / name)
        message = str(info.value)
        assert message.startswith(f"{tmp_path / name}: ") and messages[how] in message, (name, message)
        assert "pickled" not in message and "Errno" not in message, (name, message)


def test_a_pickled_module_is_refused_in_plain_text(tmp_path, capsys):
    """torch colours part of its refusal with ANSI escape codes; the command prints plain text."""
    for L in (4, 8, 16):
        torch.save(MLPResNet(3, L), tmp_path / f"mlp_L{L}_seed0.pt")
    code = main(["analyse", str(tmp_path / "*.pt"), "--map", str(MAPS / "mlp_modulelist.yaml"), "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "holds pickled Python objects" in err and "MLPResNet" in err
    assert "\x1b" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_command_sets_its_thread_count(tmp_path):
    write_stacked(tmp_path / "runs", 0.3, 0.7, "row")
    map_path = tmp_path / "map.yaml"
    map_path.write_text((MAPS / "stacked_npz.yaml").read_text() + "analysis: {bootstrap: {resamples: 20}}\n")
    before = torch.get_num_threads()
    try:
        for argv, threads in (([], 1), (["--threads", "2"], 2)):
            torch.set_num_threads(3)
            assert main(["analyse", str(tmp_path / "runs" / "*.npz"), "--map", str(map_path), "--out",
                         str(tmp_path / "out"), *argv]) == 0
            assert torch.get_num_threads() == threads
            assert os.environ["OMP_NUM_THREADS"] == str(threads)
    finally:
        torch.set_num_threads(before)
        os.environ["OMP_NUM_THREADS"] = "1"


@pytest.mark.slow
def test_the_l_of_a_torchvision_stage_is_said(tmp_path, capsys):
    """A stage of n blocks with block 0 left out maps n − 1 blocks; with the example map L is
    the n of the file name, and the report and the command say so."""
    for L in (4, 8, 16):
        torch.manual_seed(L)
        torch.save(ResNet(L).state_dict(), tmp_path / f"resnet_L{L}_seed0.pt")
    map_path = tmp_path / "map.yaml"
    map_path.write_text((MAPS / "torchvision_resnet.yaml").read_text() + "analysis: {bootstrap: {resamples: 20}}\n")
    assert main(["analyse", str(tmp_path / "*.pt"), "--map", str(map_path), "--out", str(tmp_path / "out")]) == 0
    note = ("L is the depth in the file names, not the number of mapped blocks (L = 4 with 3 blocks, L = 8 with 7 "
            "blocks, L = 16 with 15 blocks)")
    assert note in capsys.readouterr().out
    assert note in (tmp_path / "out" / "report.md").read_text()
    networks = pd.read_csv(tmp_path / "out" / "networks.csv")
    assert (networks["blocks"] == networks["depth"] - 1).all()
    text = (MAPS / "torchvision_resnet.yaml").read_text()
    assert "n - 1 blocks" in text and "L = n" in text


# -- each network once, and every glob ends ---------------------------------------------------


def test_files_reached_through_two_paths_count_once(tmp_path):
    """The same files through a symlinked folder, a hard link and a second glob: the seeds of each
    depth are the 3 files written, not 6, and the fit is the one of the files read once."""
    beta = 0.3
    write_stacked(tmp_path / "runs", beta, 0.7, "row")
    (tmp_path / "alias").symlink_to(tmp_path / "runs", target_is_directory=True)
    os.link(tmp_path / "runs" / "run_L8_seed0.npz", tmp_path / "run_L8_seed0_link.npz")
    m = example_map("stacked_npz.yaml", files=r"run_L(?P<depth>\d+)_seed\d+(_link)?\.npz$", analysis=FAST)
    once, _ = analyse([str(tmp_path / "runs" / "*.npz")], m, tmp_path / "once")
    twice, _ = analyse([str(tmp_path / "runs" / "*.npz"), str(tmp_path / "alias" / "*.npz"),
                        str(tmp_path / "**" / "*.npz")], m, tmp_path / "twice")
    for exponents in (once, twice):
        fit = row(exponents, "A", "rms_norm")
        assert (fit["n_depths"], fit["n_seeds"]) == (len(DEPTHS), len(SEEDS))
        assert fit["exponent"] == pytest.approx(beta, abs=0.01)
    for column in ("exponent", "ci_low", "ci_high"):
        assert row(twice, "M", "rms_norm")[column] == row(once, "M", "rms_norm")[column]
    assert len(pd.read_csv(tmp_path / "twice" / "networks.csv")) == len(DEPTHS) * len(SEEDS)


def test_a_glob_over_a_symlink_loop_ends_and_a_file_limit_stops_it(tmp_path, monkeypatch):
    import resnet_scaling.analyse.files as discovery

    write_stacked(tmp_path / "runs", 0.3, 0.7, "row")
    (tmp_path / "runs" / "loop").symlink_to(tmp_path / "runs", target_is_directory=True)
    (tmp_path / "runs" / "again").symlink_to(tmp_path / "runs", target_is_directory=True)
    (tmp_path / "runs" / "up").symlink_to(tmp_path, target_is_directory=True)
    files = discovery.expand_inputs([str(tmp_path / "**" / "*.npz")])
    assert len(files) == len(DEPTHS) * len(SEEDS)
    assert len({f.name for f in files}) == len(files)
    monkeypatch.setattr(discovery, "MAX_FILES", 10)
    with pytest.raises(AnalyseError, match=r"\*\*/\*\.npz: matches more than 10 files"):
        discovery.expand_inputs([str(tmp_path / "**" / "*.npz")])
    assert discovery.glob_files(str(tmp_path / "runs" / "run_L8_*.npz")) == [
        str(tmp_path / "runs" / f"run_L8_seed{s}.npz") for s in SEEDS]


@pytest.mark.parametrize("case", ["zero header", "header beyond the file", "data beyond the file",
                                  "bytes after the data"])
def test_a_safetensors_header_is_checked_before_the_data_is_read(tmp_path, case):
    """A 2 GB file (sparse: no disk used) is refused from its first bytes, without reading it."""
    import tracemalloc

    big = 2 * 1024**3
    header = json.dumps({"A": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as fh:
        if case == "header beyond the file":
            fh.write(struct.pack("<Q", 4 * big))
        elif case == "data beyond the file":
            wide = json.dumps({"A": {"dtype": "F32", "shape": [big], "data_offsets": [0, 4 * big]}}).encode()
            fh.write(struct.pack("<Q", len(wide)) + wide)
        elif case == "bytes after the data":
            fh.write(struct.pack("<Q", len(header)) + header + bytes(16))
        fh.truncate(big if case != "data beyond the file" else 1024)
    expected = {"zero header": "is not a .safetensors file (its header is not JSON",
                "header beyond the file": "is truncated or not a .safetensors file",
                "data beyond the file": "is truncated (its tensors need",
                "bytes after the data": "bytes after the last tensor"}[case]
    tracemalloc.start()
    try:
        with pytest.raises(AnalyseError) as info:
            read_checkpoint(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)
    assert peak < 10 * 1024**2


def test_all_zero_and_constant_networks_are_named_and_left_out(tmp_path, capsys):
    """Seed 1 at L = 16 all zero, seed 2 at L = 32 tied (one block repeated): each is named in one
    sentence and left out; the fit uses the others, which still give β, with 2 networks at those depths."""
    beta = 0.3
    write_stacked(tmp_path, beta, 0.7, "row")
    with np.load(tmp_path / "run_L16_seed1.npz") as data:
        np.savez(tmp_path / "run_L16_seed1.npz", A=np.zeros_like(data["A"]), b=data["b"], delta=data["delta"])
    with np.load(tmp_path / "run_L32_seed2.npz") as data:
        A, b = np.repeat(data["A"][:1], 32, axis=0), np.repeat(data["b"][:1], 32, axis=0)
        np.savez(tmp_path / "run_L32_seed2.npz", A=A, b=b, delta=data["delta"])
    map_path = tmp_path / "map.yaml"
    map_path.write_text((MAPS / "stacked_npz.yaml").read_text() + "analysis: {bootstrap: {resamples: 200}}\n")
    assert main(["analyse", str(tmp_path / "run_*.npz"), "--map", str(map_path), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'run_L16_seed1.npz'}: every weight of the mapped blocks is zero" in err
    assert f"{tmp_path / 'run_L32_seed2.npz'}: every block has the same weights (a constant network" in err
    exponents = pd.read_csv(tmp_path / "out" / "exponents.csv")
    fit = row(exponents, "A", "rms_norm")
    assert fit["exponent"] == pytest.approx(beta, abs=0.01)
    assert (fit["n_excluded"], fit["excluded"]) == (2, "all-zero:1; constant:1")
    networks = pd.read_csv(tmp_path / "out" / "networks.csv").set_index(["depth", "seed"])
    assert networks.loc[(16, 1), "status"] == "all-zero" and networks.loc[(32, 2), "status"] == "constant"
    statistics = pd.read_csv(tmp_path / "out" / "statistics.csv")
    used = statistics[statistics["status"] == "converged"].drop_duplicates(["depth", "seed"]).groupby("depth").size()
    assert used.to_dict() == {8: 3, 16: 2, 32: 2, 64: 3, 128: 3}
    assert "Few networks per depth" in err and "L = 16: 2, L = 32: 2" in err


# -- what the analysis cannot know --------------------------------------------------------


class ScaledBlock(nn.Module):
    """h + tanh(linear(h)) / L: the multiplier lives in forward(), in no tensor."""

    def __init__(self, d: int, depth: int):
        super().__init__()
        self.linear = nn.Linear(d, d)
        self.depth = depth

    def forward(self, h):
        return h + torch.tanh(self.linear(h)) / self.depth


def scaled_networks(folder: Path, depths=DEPTHS, d: int = 5) -> None:
    """Smooth weights of exponent 0 (A_k = f(k/L)) in blocks that divide by L in forward()."""
    folder.mkdir(parents=True, exist_ok=True)
    for L in depths:
        for s in SEEDS:
            blocks = nn.ModuleList(ScaledBlock(d, L) for _ in range(L))
            A, b = smooth(L, 0.0, d, s)
            with torch.no_grad():
                for k, block in enumerate(blocks):
                    block.linear.weight.copy_(torch.tensor(A[k]))
                    block.linear.bias.copy_(torch.tensor(b[k]))
            torch.save(blocks.state_dict(), folder / f"net_L{L}_seed{s}.pt")


SCALED_MAP = {"name": "scaled", "files": r"net_L(?P<depth>\d+)_seed(?P<seed>\d+)\.pt$", "analysis": FAST,
              "tensors": {"A": r"(?P<block>\d+)\.linear\.weight", "b": r"(?P<block>\d+)\.linear\.bias"}}


@pytest.mark.parametrize("scale, known", [("1/L", 1.0), ("1/sqrt(L)", 0.5), (0.1, 0.0), (None, 0.0)])
def test_a_branch_scale_in_the_forward_pass_enters_m(tmp_path, scale, known):
    """M_k = A_k/L for A_k = f(k/L): exponent 1 exactly; L^{-1/2}: 1/2; a constant leaves it 0."""
    scaled_networks(tmp_path / "in")
    raw = {**SCALED_MAP, **({"branch_scale": scale} if scale is not None else {})}
    exponents, regimes = analyse([str(tmp_path / "in" / "*.pt")], parse_map(raw, "scaled.yaml"), tmp_path / "out")
    fit = row(exponents, "M", "rms_norm")
    assert fit["exponent"] == pytest.approx(known, abs=0.01)
    assert fit["ci_low"] - 0.01 <= known <= fit["ci_high"] + 0.01
    assert row(exponents, "A", "rms_norm")["exponent"] == pytest.approx(0.0, abs=0.01)
    assert "delta" not in set(exponents["quantity"])  # known, not trained: no quantity of its own
    assert regimes.iloc[0]["delta"] == ("none" if scale is None else "fixed")


def test_a_branch_scale_multiplies_a_mapped_delta():
    m = parse_map({"tensors": {"A": "A", "delta": "delta"}, "branch_scale": "1 / sqrt(L)"}, "my.yaml")
    assert m.scale(16) == pytest.approx(0.25) and m.branch_scale == "1/sqrt(L)"


@pytest.mark.parametrize("value", ["1/L^2", "L", "exp(-L)", 0, True, ".nan"])
def test_a_branch_scale_that_cannot_be_read_is_refused_naming_the_key(value):
    with pytest.raises(AnalyseError, match=r"^my\.yaml: branch_scale: .*accepted forms: 1/L, 1/sqrt\(L\), or a number"):
        parse_map({"tensors": {"A": "A"}, "branch_scale": value}, "my.yaml")


class TwoMatrixBlock(nn.Module):
    """h + V σ(W h + b) / L with W = fc1 (m, d), V = fc2 (d, m)."""

    def __init__(self, d: int, m: int, depth: int):
        super().__init__()
        self.fc1 = nn.Linear(d, m)
        self.fc2 = nn.Linear(m, d, bias=False)
        self.depth = depth

    def forward(self, h):
        return h + self.fc2(torch.tanh(self.fc1(h))) / self.depth


TWO_MATRIX_MAP = {"name": "two", "files": r"two_L(?P<depth>\d+)_seed(?P<seed>\d+)\.pt$", "branch_scale": "1/L",
                  "analysis": FAST, "tensors": {"W": r"(?P<block>\d+)\.fc1\.weight",
                                                "V": r"(?P<block>\d+)\.fc2\.weight",
                                                "b": r"(?P<block>\d+)\.fc1\.bias"}}


def test_two_matrix_blocks_are_analysed_through_the_pair_v_w(tmp_path):
    """W_k = L^{-0.2} f(k/L), V_k = L^{-0.6} g(k/L): W and V have exponents 0.2 and 0.6; the
    analysis's A is Z_k = (V_k, W_k), ‖Z_k‖² = ‖V_k‖² + ‖W_k‖², and M = Z/L."""
    d, width = 3, 5
    for L in DEPTHS:
        for s in SEEDS:
            blocks = nn.ModuleList(TwoMatrixBlock(d, width, L) for _ in range(L))
            W, b = smooth(L, 0.2, width, s)
            V, _ = smooth(L, 0.6, width, s + 50)
            with torch.no_grad():
                for k, block in enumerate(blocks):
                    block.fc1.weight.copy_(torch.tensor(W[k][:, :d]))
                    block.fc1.bias.copy_(torch.tensor(b[k]))
                    block.fc2.weight.copy_(torch.tensor(V[k][:d, :]))
            assert blocks[0](torch.randn(2, d)).shape == (2, d)
            torch.save(blocks.state_dict(), tmp_path / f"two_L{L}_seed{s}.pt")
    exponents, regimes = analyse([str(tmp_path / "two_*.pt")], parse_map(TWO_MATRIX_MAP, "two.yaml"), tmp_path / "out")
    assert row(exponents, "W", "rms_norm")["exponent"] == pytest.approx(0.2, abs=0.015)
    assert row(exponents, "V", "rms_norm")["exponent"] == pytest.approx(0.6, abs=0.015)
    state = torch.load(tmp_path / "two_L8_seed1.pt", weights_only=True)
    Z = [math.sqrt(float(state[f"{k}.fc1.weight"].double().square().sum()
                         + state[f"{k}.fc2.weight"].double().square().sum())) for k in range(8)]
    statistics = pd.read_csv(tmp_path / "out" / "statistics.csv")
    one = statistics.query("depth == 8 and seed == 1 and statistic == 'max_norm'").set_index("quantity")["value"]
    assert one["A"] == pytest.approx(max(Z), rel=1e-12) and one["M"] == pytest.approx(max(Z) / 8, rel=1e-12)
    m_fit = row(exponents, "M", "rms_norm")
    assert 1.2 - 0.02 <= m_fit["exponent"] <= 1.6 + 0.02  # between 1 + 0.2 and 1 + 0.6: a sum of both
    assert "pair Z_k = (V_k, W_k)" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("tensors, message", [
    ({"W": "W"}, r"tensors\.V: missing; the two-matrix block"),
    ({"A": "A", "W": "W", "V": "V"}, r"tensors\.A: given with tensors\.W/V"),
])
def test_two_matrix_maps_are_checked(tensors, message):
    with pytest.raises(AnalyseError, match=r"^my\.yaml: " + message):
        parse_map({"tensors": tensors}, "my.yaml")
    with pytest.raises(AnalyseError, match=r"^my\.yaml: norm: operator is not defined for the pair"):
        parse_map({"tensors": {"W": "W", "V": "V"}, "norm": "operator"}, "my.yaml")


def test_two_matrix_blocks_of_shapes_that_do_not_fit_are_refused(tmp_path):
    np.savez(tmp_path / "two_L4_seed0.npz", W=np.ones((4, 5, 3)), V=np.ones((4, 5, 3)))
    m = parse_map({"tensors": {"W": "W", "V": "V"}}, "my.yaml")
    with pytest.raises(AnalyseError, match=r"two_L4_seed0\.npz: tensors\.V \('V'\): blocks of shape \(5, 3\) do not "
                                           r"fit W's \(5, 3\): h \+ V σ\(W h \+ b\) needs V of shape \(3, 5\)"):
        read_network(tmp_path / "two_L4_seed0.npz", m)


def init_networks(folder: Path, init, depths=(4, 8, 16, 32), d: int = 16) -> None:
    """mlp_L{L}_seed0.pt state_dicts of MLPResNet(d, L) whose weights are ``init(weight, L, k)``."""
    folder.mkdir(parents=True, exist_ok=True)
    for L in depths:
        torch.manual_seed(L)
        model = MLPResNet(d, L)
        with torch.no_grad():
            for k, block in enumerate(model.blocks):
                init(block.linear.weight, L, k)
        torch.save(model.state_dict(), folder / f"mlp_L{L}_seed0.pt")


def test_untrained_looking_weights_thin_fits_and_a_missing_status_are_warned(tmp_path, capsys):
    """PyTorch's default init left as it is, at 4 depths with one network each: three warnings
    (no status, one network per depth, untrained weights), on stderr and in the report."""
    init_networks(tmp_path / "in", lambda w, L, k: None)
    map_path = tmp_path / "map.yaml"
    map_path.write_text((MAPS / "mlp_modulelist.yaml").read_text() + "analysis: {bootstrap: {resamples: 50}}\n")
    assert main(["analyse", str(tmp_path / "in" / "*.pt"), "--map", str(map_path), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("resnet-scaling analyse: warning: ")]
    assert len(warnings) == 3, err
    assert "No training status: the map has no `status`, so all 4 networks are assumed converged" in warnings[0]
    assert ("Weights that look untrained: 4 of the 4 networks of experiment 'mlp_resnet'" in warnings[1]
            and "PyTorch's default init U(±1/√fan_in) of nn.Linear/nn.Conv2d at fan-in 16" in warnings[1])
    assert "fewer than 3 networks at 4 of its 4 depths" in warnings[2]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Warnings" in report and "Weights that look untrained" in report
    assert (tmp_path / "out" / "warnings.txt").read_text().count("\n") == 3


@pytest.mark.parametrize("init, law", [
    (lambda w, L, k: nn.init.xavier_normal_(w), "Xavier/Glorot normal"),
    (lambda w, L, k: nn.init.kaiming_normal_(w), "He/Kaiming normal"),
    (lambda w, L, k: w.add_(0.1 * torch.randn_like(w)), None),  # moved away from the law: as if trained
    (lambda w, L, k: w.copy_(torch.tensor(smooth(L, 0.0, 16, 0)[0][k] / 4)), None),  # smooth in depth
])
def test_weights_close_to_an_initialisation_law_are_recognised(tmp_path, init, law):
    from resnet_scaling.analyse.networks import untrained

    init_networks(tmp_path, init, depths=(8,))
    found = untrained(read_network(tmp_path / "mlp_L8_seed0.pt", example_map("mlp_modulelist.yaml")))[0]
    assert (found is None) if law is None else (found is not None and found.startswith(law)), found


def test_each_verdict_names_its_population(tmp_path, capsys):
    """Converged and plateau-stopped networks are two populations: each printed line says which."""
    from resnet_scaling.io import write_npz

    for L in DEPTHS:
        A, b = (np.stack(x) for x in zip(*(smooth(L, 0.3, 4, s) for s in range(4))))
        delta = np.array([[shared_delta(L, 0.7, s)] * L for s in range(4)])
        write_npz(tmp_path / "results" / "train" / "toy" / f"depth_{L}.npz",
                  metadata={"experiment": "toy", "depth": L, "config": {"delta": "shared", "activation": "tanh"}},
                  A=A, b=b, delta=delta, seeds=np.arange(4),
                  status=np.array(["converged", "converged", "stopped", "stopped"]))
    raw = yaml.safe_load((MAPS / "workflow_outputs.yaml").read_text())
    raw["analysis"] = {**FAST, "include_status": ["converged", "stopped"], "fit": {"min_depth": 8}}
    map_path = tmp_path / "map.yaml"
    map_path.write_text(yaml.safe_dump(raw))
    assert main(["analyse", str(tmp_path / "results" / "train" / "*" / "depth_*.npz"), "--map", str(map_path),
                 "--out", str(tmp_path / "out")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("toy ")]
    assert [line.split("]")[0] for line in lines] == [
        "toy [converged networks: 10 converged; primary verdict",
        "toy [converged+stopped networks: 10 converged, 10 stopped; secondary verdict"]
    assert "5 depths x 2 seeds" in lines[0] and "5 depths x 4 seeds" in lines[1]


def test_the_example_script_trains_saves_and_analyses(tmp_path):
    """examples/train_mlp_resnets.py end to end on tiny sizes: checkpoints where the documented
    glob finds them, and the command's verdict, warnings and report."""
    script = ROOT / "examples" / "train_mlp_resnets.py"
    proc = subprocess.run([sys.executable, str(script), "--depths", "4", "8", "16", "--seeds", "2", "--steps", "20",
                           "--samples", "32"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    written = sorted(p.name for p in (tmp_path / "checkpoints").glob("mlp_L*_seed*.pt"))
    assert written == sorted(f"mlp_L{L}_seed{s}.pt" for L in (4, 8, 16) for s in range(2))
    assert re.search(r"^mlp_resnet \[converged networks: 6 converged; primary verdict\]: ", proc.stdout, re.M)
    assert "warning: No training status" in proc.stderr and "warning: Few depths" in proc.stderr
    assert (tmp_path / "runs" / "analysis" / "report.html").stat().st_size > 0
    for doc in ("README.md", "docs/analyse.md"):
        section = (ROOT / doc).read_text()
        assert ".venv/bin/python examples/train_mlp_resnets.py" in section, doc
        assert "resnet-scaling analyse 'checkpoints/mlp_L*_seed*.pt' --map examples/maps/mlp_modulelist.yaml" in section, doc
