"""Every config writes in its own folder: two configs never share one whatever their files are
called, two runs in one checkout share no file, leave the committed galleries alone and leave
`git status` clean; a run in the repository itself or in a gallery is refused."""

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from resnet_scaling.runs import (RUN_DIR_ENV, RunDirectoryError, check_run_directory, chosen_run_directory, describe_run,
                                 resolve_data_paths, run_directory, run_name, script_environment,
                                 ALLOCATOR_ENVIRONMENT)
from resnet_scaling.runs import main as runs_main
from workflow_utils import ROOT, copy_workflow, snakemake_bin


def _write(path: Path, values: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def test_run_name_joins_the_config_stems_and_a_digest_of_the_merged_values(tmp_path):
    root = tmp_path / "repo"
    paper = _write(root / "config" / "paper.yaml", {"seed": 0, "dtype": "float32", "experiments": {"a": {"lr": 1}}})
    overlay = _write(root / "config" / "overlays" / "fc_cpu.yaml", {"device": "cpu"})
    name = run_name([paper], None)
    assert re.fullmatch(r"paper-[0-9a-f]{8}", name)
    assert re.fullmatch(r"paper\+fc_cpu-[0-9a-f]{8}", run_name([paper, overlay], []))
    assert run_directory([paper, overlay], None, root) == root.resolve() / "runs" / run_name([paper, overlay], None)
    # the digest is that of the merged values: an overlay that changes nothing changes nothing
    same = _write(root / "config" / "overlays" / "same.yaml", {"seed": 0})
    assert run_name([paper, same], None).split("-")[1] == name.split("-")[1]
    # the order of keys means nothing; the files' paths mean nothing
    reordered = _write(tmp_path / "elsewhere" / "paper.yaml", {"experiments": {"a": {"lr": 1}}, "dtype": "float32", "seed": 0})
    assert run_name([reordered], None) == name
    # --config values make another config, whatever their order
    one = run_name([paper], ["seed=1", "dtype=float64"])
    assert one.startswith("paper-") and one != name
    assert one == run_name([paper], ["dtype=float64", "seed=1"])
    assert one != run_name([paper], ["seed=2", "dtype=float64"])
    assert run_name([paper], ["seed=0"]) == name  # a value it already had
    with pytest.raises(ValueError):
        run_name([], None)


def test_two_config_files_of_one_name_never_share_a_folder(tmp_path):
    """config/alt/smoke.yaml and config/smoke.yaml (both inside the repository) are two configs."""
    root = tmp_path / "repo"
    smoke = _write(root / "config" / "smoke.yaml", {"seed": 0})
    alt = _write(root / "config" / "alt" / "smoke.yaml", {"seed": 1})
    assert run_directory([smoke], None, root) != run_directory([alt], None, root)
    assert run_directory([smoke], None, root).parent == run_directory([alt], None, root).parent == root.resolve() / "runs"


def test_the_command_line_prints_the_folder_the_workflow_uses(tmp_path, capsys):
    root = tmp_path / "repo"
    smoke = _write(root / "config" / "smoke.yaml", {"seed": 0})
    assert runs_main(["--root", str(root), str(smoke), "--config", "seed=3"]) == 0
    assert capsys.readouterr().out.strip() == f"runs/{run_name([smoke], ['seed=3'])}"
    # the default config's folder, which `make gallery` and README name through this command
    assert runs_main([str(ROOT / "config" / "config.yaml")]) == 0
    assert capsys.readouterr().out.strip() == str(run_directory([ROOT / "config" / "config.yaml"], None, ROOT)
                                                   .relative_to(ROOT))


def test_the_run_folder_follows_the_run_its_job_belongs_to(tmp_path):
    root, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    config = root / "smoke.yaml"
    config.write_text("seed: 1\n")
    args = dict(configfiles=[config], overrides=None, root=root)
    started_here = chosen_run_directory(**args, main=True, directory_given=False, cwd=root, environ={})
    assert started_here == run_directory([config], None, root)
    assert chosen_run_directory(**args, main=True, directory_given=True, cwd=root, environ={}) == root.resolve()
    assert chosen_run_directory(**args, main=True, directory_given=False, cwd=elsewhere, environ={}) == elsewhere
    job = dict(main=False, directory_given=False, cwd=root, environ={RUN_DIR_ENV: str(started_here)})
    assert chosen_run_directory(**args, **job) == started_here
    # the main process never takes the folder of an earlier run from its environment
    assert chosen_run_directory(**args, main=True, directory_given=False, cwd=elsewhere,
                                environ={RUN_DIR_ENV: str(started_here)}) == elsewhere


def test_a_run_in_the_repository_or_a_gallery_is_refused(tmp_path):
    root = tmp_path / "repo"
    (root / "figures" / "paper").mkdir(parents=True)
    (root / "figures" / "provenance.json").write_text("{}")  # a committed gallery
    for folder in (root, root / "figures", root / "figures" / "paper", root / "figures" / "mnist"):
        with pytest.raises(RunDirectoryError, match=f"refusing to run in {re.escape(str(folder))}: .*--directory"):
            check_run_directory(folder, root)
    check_run_directory(root / "runs" / "smoke-0123abcd", root)
    check_run_directory(tmp_path / "elsewhere", root)
    check_run_directory(tmp_path / "copy", tmp_path / "copy")  # a bare copy of the workflow: no git, no galleries
    (tmp_path / "copy" / "figures").mkdir(parents=True)  # a run's own figures in a bare copy
    check_run_directory(tmp_path / "copy", tmp_path / "copy")


@pytest.mark.parametrize("where", [".", "figures/paper"])
def test_snakemake_refuses_the_repository_and_the_galleries_before_any_job(tmp_path, where):
    """`snakemake --directory` at the repository's root or at a gallery: one sentence, a non-zero
    exit, nothing written; from the root without --directory the run goes to its own folder."""
    work = copy_workflow(tmp_path / "checkout")
    (work / "figures" / "paper").mkdir(parents=True)
    (work / "figures" / "paper" / "table.csv").write_text("a,b\n1,2\n")
    (work / "figures" / "provenance.json").write_text("{}\n")  # committed galleries, as in a checkout
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    before = _digests(work)
    proc = subprocess.run([snakemake_bin(), "-n", "--directory", str(work / where), "--configfile", "config/smoke.yaml"],
                          cwd=work, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode != 0
    sentence = next(line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("refusing to run in"))
    assert str((work / where).resolve()) in sentence and "--directory" in sentence
    assert _digests(work) == before and sorted(p.name for p in work.iterdir()) == sorted(before_names(before))
    if where == ".":
        ok = subprocess.run([snakemake_bin(), "-n", "--configfile", "config/smoke.yaml"], cwd=work,
                            capture_output=True, text=True, timeout=600, env=env)
        assert ok.returncode == 0, ok.stderr[-3000:]
        assert [p.name for p in (work / "runs").iterdir()] == [run_name([work / "config" / "smoke.yaml"], None)]


def before_names(digests: dict) -> set[str]:
    return {name.split("/")[0] for name in digests}


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
    run_a = run_directory([work / "config" / "smoke.yaml"], None, work)
    before = _digests(run_a)
    assert {"results/train/tanh_shared_synthetic/depth_4.npz", "figures/limits_convergence.png"} <= set(before)
    assert any(name.startswith(".snakemake/") for name in before)

    other = run("config/smoke_seed1.yaml", *targets)
    assert other.returncode == 0, other.stderr[-4000:]
    run_b = run_directory([work / "config" / "smoke_seed1.yaml"], None, work)
    assert (run_b / targets[0]).is_file() and (run_b / targets[1]).is_file()

    assert _digests(run_a) == before, "the second config changed a file of the first"
    assert _digests(work / "figures") == galleries, "a run changed the committed galleries"
    assert sorted(p.name for p in (work / "runs").iterdir()) == sorted([run_a.name, run_b.name])
    # nothing else in the checkout: every output lies in an ignored run folder
    assert _git(work, "status", "--porcelain", "--untracked-files=all") == ""
    again = run("config/smoke.yaml", "-n", *targets)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_jobs_find_the_package_and_the_tools_beside_the_interpreter_first():
    env = script_environment("/repo/src", "/venv/bin/python",
                             {"PYTHONPATH": "/mine", "PATH": "/usr/bin", "MALLOC_MMAP_THRESHOLD_": "1"})
    assert env == {"PYTHONPATH": os.pathsep.join(["/repo/src", "/mine"]),
                   "PATH": os.pathsep.join(["/venv/bin", "/usr/bin"]),
                   "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20)}  # the caller's threshold stays
    bare = script_environment("/repo/src", "/venv/bin/python", {})
    assert bare == {"PYTHONPATH": "/repo/src", "PATH": "/venv/bin", **ALLOCATOR_ENVIRONMENT}
    assert int(bare["MALLOC_MMAP_THRESHOLD_"]) == 64 * 2**20
