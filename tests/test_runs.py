"""Every config writes in its own folder: two runs in one checkout share no file, leave the
committed galleries alone and leave `git status` clean."""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from resnet_scaling.runs import describe_run, resolve_data_paths, run_directory, run_name
from workflow_utils import ROOT, copy_workflow, snakemake_bin


def test_run_name_joins_the_config_stems_and_hashes_config_values(tmp_path):
    root = tmp_path / "repo"
    (root / "config" / "overlays").mkdir(parents=True)
    paper, overlay = root / "config" / "paper.yaml", root / "config" / "overlays" / "fc_cpu.yaml"
    assert run_name([paper], None, root) == "paper"
    assert run_name([paper, overlay], [], root) == "paper+fc_cpu"
    assert run_directory([paper, overlay], None, root) == root.resolve() / "runs" / "paper+fc_cpu"
    # --config values make another config, whatever their order
    one = run_name([paper], ["seed=1", "dtype=float64"], root)
    assert one.startswith("paper+") and one != "paper"
    assert one == run_name([paper], ["dtype=float64", "seed=1"], root)
    assert one != run_name([paper], ["seed=2", "dtype=float64"], root)
    # a file of the same name outside the repository is another config
    outside = tmp_path / "elsewhere" / "paper.yaml"
    assert run_name([outside], None, root).startswith("paper-")
    with pytest.raises(ValueError):
        run_name([], None, root)


def test_the_report_names_the_config_files_relative_to_the_repository(tmp_path):
    root = tmp_path / "repo"
    run = describe_run([root / "config" / "paper.yaml", root / "config" / "overlays" / "fc_cpu.yaml"],
                       ["seed=1"], root, root / "runs" / "x")
    assert run == {"configfiles": ["config/paper.yaml", "config/overlays/fc_cpu.yaml"],
                   "config_values": ["seed=1"], "directory": "runs/x"}


def test_relative_data_paths_are_relative_to_the_repository(tmp_path):
    config = {"datasets": {"mnist": {"kind": "mnist", "path": "../datasets/mnist"},
                           "abs": {"kind": "cifar10", "path": "/data/cifar"},
                           "synthetic": {"kind": "synthetic"}}}
    resolve_data_paths(config, tmp_path / "repo")
    assert config["datasets"]["mnist"]["path"] == str((tmp_path / "repo").resolve() / "../datasets/mnist")
    assert config["datasets"]["abs"]["path"] == "/data/cifar"
    assert "path" not in config["datasets"]["synthetic"]


def _digests(folder: Path) -> dict[str, tuple[str, int]]:
    """Content hash and modification time of every file under ``folder``."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _git(work: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=work, capture_output=True, text=True, check=True).stdout


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_two_configs_in_one_checkout_touch_neither_each_other_nor_the_galleries(tmp_path):
    """Two smoke-sized configs run from the root of one checkout (no --directory): each writes
    only under its runs/ folder, the committed galleries keep their bytes and `git status` stays
    clean; the first run is still complete afterwards."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    work = copy_workflow(tmp_path / "checkout")
    shutil.copy2(ROOT / ".gitignore", work / ".gitignore")
    shutil.copytree(ROOT / "figures", work / "figures")
    second = yaml.safe_load((work / "config" / "smoke.yaml").read_text())
    second["seed"] = 1
    (work / "config" / "smoke_seed1.yaml").write_text(yaml.safe_dump(second))
    _git(work, "init", "-q")
    _git(work, "add", "-A")
    _git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "checkout")
    galleries = _digests(work / "figures")

    # a training job and a figure with its table: results/, figures/, logs/, benchmarks/, .snakemake/
    targets = ["results/train/tanh_shared_synthetic/depth_4.npz", "figures/limits_convergence.png"]

    def run(config: str, *extra: str) -> subprocess.CompletedProcess:
        """snakemake EXTRA --configfile CONFIG from the checkout's root (the config file last:
        --configfile takes every word after it)."""
        return subprocess.run([snakemake_bin(), *extra, "--cores", "2", "--configfile", config], cwd=work,
                              capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})

    first = run("config/smoke.yaml", *targets)
    assert first.returncode == 0, first.stderr[-4000:]
    run_a = work / "runs" / "smoke"
    before = _digests(run_a)
    assert {"results/train/tanh_shared_synthetic/depth_4.npz", "figures/limits_convergence.png"} <= set(before)
    assert any(name.startswith(".snakemake/") for name in before)

    other = run("config/smoke_seed1.yaml", *targets)
    assert other.returncode == 0, other.stderr[-4000:]
    run_b = work / "runs" / "smoke_seed1"
    assert (run_b / targets[0]).is_file() and (run_b / targets[1]).is_file()

    assert _digests(run_a) == before, "the second config changed a file of the first"
    assert _digests(work / "figures") == galleries, "a run changed the committed galleries"
    assert sorted(p.name for p in (work / "runs").iterdir()) == ["smoke", "smoke_seed1"]
    # nothing else in the checkout: every output lies in an ignored run folder
    assert _git(work, "status", "--porcelain", "--untracked-files=all") == ""
    again = run("config/smoke.yaml", "-n", *targets)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
