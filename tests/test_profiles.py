"""The SLURM profile without a cluster: a dry run, the smoke DAG end to end through the real
``snakemake-executor-plugin-slurm`` against the stand-in scheduler commands of
``tests/slurm_standins``, and the consistency of the profile with the workflow's rules."""

from __future__ import annotations

import pytest
import yte

from slurm_helpers import (
    SLURM_PROFILE,
    STANDINS,
    clean_env,
    compare_trees,
    parse_dry_run,
    read_calls,
    rule_texts,
    rules_after_checkpoint,
    run_snakemake,
)
from resnet_scaling.config import depth_grid, load_configfiles, network_width
from resnet_scaling.training import resources
from workflow_utils import copy_workflow

pytestmark = pytest.mark.workflow

SMOKE = ["--configfile", "config/smoke.yaml"]
PAPER = ["--configfile", "config/paper.yaml"]
PROFILE = ["--workflow-profile", "workflow/profiles/slurm"]
TRAINING_RULES = {"train", "cifar_train"}
# The smoke DAG trains fully connected networks only, which go to CPU nodes: the stand-in run
# places its training on the GPU partition from the command line, so that the plugin's GPU
# flags are exercised too (as a site that wants the FC jobs on GPUs would).
ON_GPUS = ["--set-resources", "train:gpu=1", "train:cpus_per_gpu=2", "train:slurm_partition=a100"]
# Site settings for the stand-in run: names unlike the defaults, so the flags prove they were read.
SITE = {
    "RESNET_SCALING_SLURM_ACCOUNT": "resnet_lab",
    "RESNET_SCALING_GPU_PARTITION": "a100",
    "RESNET_SCALING_CPU_PARTITION": "short",
}


def load_profile() -> dict:
    with open(SLURM_PROFILE / "config.yaml") as fh:
        return yte.process_yaml(fh, require_use_yte=True)


def remote(jobs) -> list:
    """The jobs Snakemake hands to the executor: not local rules, not rules without an action."""
    submitted = {name for name, rule in rule_texts().items() if rule.submitted}
    return [job for job in jobs if job.rule in submitted]


def dry_run(work, env, forcerun=None, config=SMOKE, extra=(), output=False):
    """The jobs of a dry run: every job (``--forceall``), or with ``forcerun`` those rules';
    with ``output`` also the console output."""
    force = ["--forceall"] if forcerun is None else ["--forcerun", *forcerun]
    # --cores only lifts the dry run's cap on threads (a cluster run has none)
    proc = run_snakemake(["-n", *force, "--cores", "1024", *PROFILE, *extra, *config], work, env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-5000:]
    jobs = parse_dry_run(proc.stdout)
    assert jobs, proc.stdout[-3000:]
    return (jobs, proc.stdout) if output else jobs


def on_gpu(job) -> bool:
    return job.resources.get("gpu", "0") not in ("0", "")


@pytest.fixture(scope="module")
def work_copy(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("profile_dry"))


@pytest.fixture(scope="module")
def site_dry_run(work_copy, smoke_run):
    """The DAG as the slurm profile sees it with the site variables set: the expected resources.

    A fresh directory shows the jobs up to the checkpoint; the completed local smoke run,
    with every later rule forced, shows the rest.
    """
    env = clean_env(**SITE)
    return dry_run(work_copy, env) + dry_run(smoke_run, env, forcerun=rules_after_checkpoint())


@pytest.fixture(scope="module")
def standin_run(tmp_path_factory):
    """The smoke config through the real SLURM executor plugin, with stand-in sbatch & co."""
    work = copy_workflow(tmp_path_factory.mktemp("standin"))
    state = tmp_path_factory.mktemp("standin_state")
    env = clean_env(
        **SITE,
        PATH=f"{STANDINS}:{clean_env()['PATH']}",
        STANDIN_SLURM_DIR=str(state),
        STANDIN_SLURM_PARTITIONS="short,a100",
        STANDIN_SLURM_ACCOUNTS="resnet_lab",
        OMP_NUM_THREADS="1",
    )
    # No retries: every job is submitted once, with its first-attempt resources, and a
    # failing job fails the test at once instead of three times.
    args = [*PROFILE, *ON_GPUS, *SMOKE, "--retries", "0", "--slurm-init-seconds-before-status-checks", "1"]
    proc = run_snakemake(args, work, env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-8000:]
    return work, read_calls(state), proc.stdout


@pytest.fixture(scope="module")
def local_run(smoke_run):
    """The session's local run of the smoke config (conftest.py), the reference of the cluster run."""
    return smoke_run


def sbatch_calls(calls) -> dict[str, dict]:
    """The sbatch calls keyed by the plugin's ``--comment`` (rule_<rule>[_wildcards_<values>])."""
    out = {}
    for call in calls:
        if call["command"] == "sbatch":
            comment = call["options"]["--comment"]
            assert comment not in out, f"job submitted twice: {comment}"
            out[comment] = call
    return out


def comment_of(job) -> str:
    return f"rule_{job.rule}_wildcards_{job.wildcard_str}" if job.wildcards else f"rule_{job.rule}"


# -- (1) the dry run ----------------------------------------------------------------------


def test_dry_run_defaults_fully_connected_training_to_cpu_nodes(work_copy):
    """Without site variables: every job of the smoke DAG (fully connected training only, device
    auto) on the default partition without a GPU."""
    jobs = remote(dry_run(work_copy, clean_env()))
    assert {job.rule for job in jobs} >= {"data", "train"}
    for job in jobs:
        res = job.resources
        assert int(res["mem_mb"]) > 0 and int(res["runtime"]) > 0, (job.rule, res)
        assert res.get("slurm_account", "") == "", (job.rule, res)
        assert res.get("slurm_partition", "") == "" and not on_gpu(job), (job.rule, res)


def test_an_experiment_on_cuda_goes_to_the_gpu_partition_and_says_it_has_no_measured_cost(work_copy):
    """A per-experiment device: cuda puts that experiment's training on partition gpu with one
    GPU and the default runtime (the cost model measured the CPU engine), said once on the
    console; the other experiment keeps the config's device, a CPU node and the cost model."""
    (work_copy / "config" / "smoke_cuda.yaml").write_text(
        "experiments:\n  tanh_shared_synthetic: {device: cuda}\n")
    jobs, out = dry_run(work_copy, clean_env(), config=[*SMOKE, "config/smoke_cuda.yaml"], output=True)
    train = [job for job in jobs if job.rule == "train"]
    assert train
    for job in train:
        res = job.resources
        if job.wildcards["exp"] == "tanh_shared_synthetic":
            assert res["slurm_partition"] == "gpu" and res["gpu"] == "1" and int(res["cpus_per_gpu"]) >= 1
            assert int(res["runtime"]) == resources.DEFAULT_TRAIN_MINUTES
        else:
            assert res["slurm_partition"] == "" and res["gpu"] == "0", res
            assert int(res["runtime"]) < resources.DEFAULT_TRAIN_MINUTES
    said = [line for line in out.splitlines() if line.startswith("training time of ")]
    assert len(said) == 1 and "tanh_shared_synthetic" in said[0] and "on a GPU" in said[0], said
    assert f"default {resources.DEFAULT_TRAIN_MINUTES} minutes" in said[0]


def test_dry_run_reads_site_variables(site_dry_run):
    for job in remote(site_dry_run):
        assert job.resources["slurm_account"] == SITE["RESNET_SCALING_SLURM_ACCOUNT"]
        expected = "RESNET_SCALING_GPU_PARTITION" if on_gpu(job) else "RESNET_SCALING_CPU_PARTITION"
        assert job.resources["slurm_partition"] == SITE[expected], (job.rule, job.resources)


def test_training_resources_grow_with_depth(site_dry_run):
    """Memory and time requests of training never shrink as depth grows (per experiment)."""
    by_exp: dict[str, list] = {}
    for job in site_dry_run:
        if job.rule == "train":
            by_exp.setdefault(job.wildcards["exp"], []).append(job)
    assert by_exp
    for exp, jobs in by_exp.items():
        jobs.sort(key=lambda j: int(j.wildcards["depth"]))
        for key in ("mem_mb", "runtime"):
            values = [int(j.resources[key]) for j in jobs]
            assert values == sorted(values), (exp, key, values)


@pytest.fixture(scope="module")
def paper_dry_run(work_copy):
    """Every job of the paper config as the slurm profile sees it, without site variables."""
    return dry_run(work_copy, clean_env(), config=PAPER, output=True)


def expected_runtime(config: dict, job) -> int:
    """The request of a training job by the cost model (training/resources.py), first attempt."""
    depth = int(job.wildcards["depth"])
    if job.rule == "cifar_train":
        exp = config["conv_experiments"][job.wildcards["cexp"]]
        seconds = resources.conv_epoch_seconds(depth=depth, seeds=exp["seeds"], width=exp["width"],
                                               n_train=config["datasets"][exp["dataset"]]["n_train"], on_gpu=True)
        return resources.train_runtime_minutes(seconds, exp["epochs"])
    exp = config["experiments"][job.wildcards["exp"]]
    data = config["datasets"][exp["dataset"]]
    width = network_width(data)
    assert resources.fc_unmeasured(width=width, activation=exp["activation"], block=exp["block"],
                                   engine=config["engine"], dtype=config["dtype"], batch_size=exp["batch_size"],
                                   on_gpu=False) is None, job.wildcards
    seconds = resources.fc_epoch_seconds(depth=depth, seeds=exp["seeds"], width=width, activation=exp["activation"],
                                         batch_size=exp["batch_size"], n_train=data["n_train"], n_test=data["n_test"])
    return resources.train_runtime_minutes(seconds, exp["max_epochs"])


def test_paper_training_requests_follow_the_cost_model_within_a_day(paper_dry_run, work_copy):
    """On the paper config every training job asks at most 24 h, as the cost model says; the
    fully connected jobs ask for no GPU (the default CPU partition), the convolutional ones for
    one on partition gpu; every experiment of the paper config is measured, so nothing is said."""
    jobs, out = paper_dry_run
    config = load_configfiles([work_copy / "config" / "paper.yaml"])
    train = [job for job in jobs if job.rule in TRAINING_RULES]
    fc = [job for job in train if job.rule == "train"]
    enabled = [exp for exp in config["experiments"].values() if exp["enabled"]]
    conv = [exp for exp in config["conv_experiments"].values() if exp["enabled"]]
    assert len(fc) == sum(len(depth_grid(exp["depths"])) for exp in enabled) >= 44 * 4
    assert len(train) == len(fc) + sum(len(exp["depths"]) for exp in conv)
    for job in train:
        res = job.resources
        assert 0 < int(res["runtime"]) <= 24 * 60, (job.wildcards, res)
        assert int(res["runtime"]) == expected_runtime(config, job), (job.wildcards, res)
        if job.rule == "train":
            assert res["gpu"] == "0" and res["slurm_partition"] == "", (job.wildcards, res)
        else:
            assert res["gpu"] == "1" and res["slurm_partition"] == "gpu", (job.wildcards, res)
    runtime = {(job.wildcards.get("exp"), int(job.wildcards["depth"])): int(job.resources["runtime"]) for job in fc}
    assert runtime[("tanh_shared_synthetic", 9100)] < 4 * 60  # was 9,110 minutes
    assert runtime[("tanh_shared_mnist", 9100)] == 24 * 60  # 200 epochs on 60,000 images: the cap
    assert "training time of" not in out


def test_paper_training_memory_covers_measured_peaks(paper_dry_run):
    """The memory model of a training job (common.smk) against peaks measured on CPU in
    float32 (the benchmark files of the paper run): at least the peak, and the deepest MNIST
    network (d = 25, 60,000 images) within one node, not the whole dataset's trajectories."""
    jobs, _ = paper_dry_run
    mem = {(job.wildcards["exp"], int(job.wildcards["depth"])): int(job.resources["mem_mb"])
           for job in jobs if job.rule == "train"}
    measured_peaks = {("relu_multi_synthetic", 9100): 1386, ("tanh_shared_synthetic", 9100): 1168,
                      ("relu_multi_synthetic", 6319): 985, ("tanh_shared_synthetic", 2116): 566}
    for key, peak in measured_peaks.items():
        assert peak <= mem[key] <= 2 * peak, (key, mem[key], peak)
    assert mem[("relu_multi_mnist", 9100)] > mem[("relu_multi_synthetic", 9100)]
    assert max(mem.values()) <= 8000, max(mem.values())


# -- (2) the stand-in run through the real plugin -----------------------------------------


@pytest.mark.slow
def test_every_remote_job_submitted_once_with_its_resources(standin_run, site_dry_run):
    """Each non-local job of the DAG got exactly one sbatch whose flags carry its resources."""
    work, calls, _ = standin_run
    submitted = sbatch_calls(calls)
    expected = {comment_of(job): job for job in remote(site_dry_run)}
    assert set(submitted) == set(expected)
    for comment, job in expected.items():
        opts = submitted[comment]["options"]
        res = job.resources
        assert opts["--mem"] == res["mem_mb"], comment
        assert opts["-t"] == res["runtime"], comment
        assert opts["-A"] == SITE["RESNET_SCALING_SLURM_ACCOUNT"], comment
        assert opts["--output"].startswith(f"{work}/logs/slurm/rule_{job.rule}/"), comment
        assert opts["-D"] == str(work)
        if job.rule == "train":  # placed on the GPU partition by ON_GPUS
            assert opts["-p"] == SITE["RESNET_SCALING_GPU_PARTITION"], comment
            assert opts["--gpus"] == "1" and opts["--cpus-per-gpu"] == res["cpus_per_gpu"], comment
            assert "--ntasks" not in opts, comment
        else:
            assert opts["-p"] == SITE["RESNET_SCALING_CPU_PARTITION"], comment
            assert "--gpus" not in opts and "--gres" not in opts, comment
            assert opts["--cpus-per-task"] == str(job.threads) and opts["--ntasks"] == "1", comment


@pytest.mark.slow
def test_job_steps_request_the_gpu(standin_run):
    """Inside each job the plugin's jobstep runs the rule under srun; GPU jobs ask srun for the GPU."""
    _, calls, _ = standin_run
    steps = [c for c in calls if c["command"] == "srun"]
    assert len(steps) == len(sbatch_calls(calls))
    gpu_steps = [c for c in steps if "--gpus" in c["options"]]
    n_gpu_jobs = sum(1 for c in sbatch_calls(calls).values() if "--gpus" in c["options"])
    assert len(gpu_steps) == n_gpu_jobs > 0
    assert all(c["options"]["--gpus"] == "1" for c in gpu_steps)


@pytest.mark.slow
def test_status_was_queried_and_accounts_validated(standin_run):
    _, calls, _ = standin_run
    commands = {c["command"] for c in calls}
    assert "sacct" in commands or "squeue" in commands
    assert "sacctmgr" in commands  # the given account is checked before the first submission


@pytest.mark.slow
def test_outputs_equal_a_local_run(standin_run, local_run):
    work, _, _ = standin_run
    problems = compare_trees(local_run, work)
    assert not problems, "\n".join(problems)


# -- (3) the profile against the workflow ----------------------------------------------


def test_profile_names_only_existing_rules(work_copy):
    proc = run_snakemake(["--list-rules", *SMOKE], work_copy, clean_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    rules = set(proc.stdout.split())
    profile = load_profile()
    for key in ("set-resources", "set-threads", "set-resource-scopes"):
        named = set(profile.get(key) or {})
        assert named <= rules, f"{key} names unknown rules: {sorted(named - rules)}"
    assert "train" in profile["set-resources"]


def test_profile_is_self_contained():
    """A --workflow-profile replaces the default profile: its own defaults and run settings."""
    profile = load_profile()
    assert profile["executor"] == "slurm"
    assert {"mem_mb", "runtime"} <= set(profile["default-resources"])
    assert profile["slurm-logdir"] == "logs/slurm"
    assert profile["rerun-incomplete"] is True and profile["retries"] >= 1
