"""Opt-in: the smoke DAG through the slurm profile on a real single-node Slurm (Debian's
slurmctld, slurmd and munge), with a fake GPU in partition ``gpu``.

Runs only with ``RESNET_SCALING_REAL_SLURM=1``, as root, with the daemons on PATH
(``.ci/install_slurm.sh`` installs them) and no ``/etc/slurm/slurm.conf`` (a real cluster's
configuration is never touched). The fixture writes the configuration into a temporary
folder, links it into ``/etc/slurm`` (the plugin's jobstep drops ``SLURM_CONF`` before its
nested ``srun``), starts the daemons as plain background processes and always stops them,
removing the links. Without accounting, the plugin polls job states with ``squeue``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from resnet_scaling.io import read_npz
from slurm_helpers import clean_env, parse_dry_run, rule_texts, rules_after_checkpoint, run_snakemake
from workflow_utils import copy_workflow

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")
ETC = Path("/etc/slurm")
LINKED = ("slurm.conf", "gres.conf")


def skip_reason() -> str | None:
    if os.environ.get("RESNET_SCALING_REAL_SLURM") != "1":
        return "set RESNET_SCALING_REAL_SLURM=1 to start a real single-node Slurm"
    if os.geteuid() != 0:
        return "needs root to start slurmd and munged"
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        return f"not on PATH: {', '.join(missing)} (see .ci/install_slurm.sh)"
    if (ETC / "slurm.conf").exists() or (ETC / "slurm.conf").is_symlink():
        return "/etc/slurm/slurm.conf exists: refusing to touch an existing Slurm"
    return None


def render_config(state: Path, host: str) -> dict[str, str]:
    mem_mb = int(0.9 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20)
    slurm_conf = f"""\
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={state}/state
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/run/slurmctld.pid
SlurmdPidFile={state}/run/slurmd.pid
SlurmctldLogFile={state}/log/slurmctld.log
SlurmdLogFile={state}/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=3600
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={mem_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL Default=NO MaxTime=INFINITE State=UP
"""
    # A fake GPU: slurmd needs a device file; the job sees CUDA_VISIBLE_DEVICES=0.
    gres_conf = f"AutoDetect=off\nNodeName={host} Name=gpu File=/dev/null\n"
    return {"slurm.conf": slurm_conf, "gres.conf": gres_conf}


def daemon_logs(state: Path) -> str:
    out = []
    for log in sorted((state / "log").glob("*.log")):
        out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
    return "\n".join(out)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def read_pid(path: Path, deadline: float) -> int:
    while time.time() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text().split()[0])
        time.sleep(0.1)
    raise RuntimeError(f"{path.name} never appeared")


@pytest.fixture(scope="session")
def real_slurm(tmp_path_factory):
    """A running single-node Slurm for this pytest session; torn down whatever happens."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log", "run"):
        (state / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    created_etc = not ETC.exists()
    ETC.mkdir(parents=True, exist_ok=True)
    started: list[tuple[str, int]] = []  # (name, pid), in start order
    links: list[Path] = []
    try:
        for name, text in render_config(state, host).items():
            (state / name).write_text(text)
            link = ETC / name
            link.symlink_to(state / name)
            links.append(link)
        deadline = time.time() + 30
        munge_pid = Path("/run/munge/munged.pid")
        if not (munge_pid.exists() and pid_alive(int(munge_pid.read_text().split()[0]))):
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            for d in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
                Path(d).mkdir(parents=True, exist_ok=True)
                shutil.chown(d, "munge", "munge")
            munge_pid.unlink(missing_ok=True)
            subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True, timeout=30)
            started.append(("munged", read_pid(munge_pid, deadline)))
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon], check=True, timeout=30)
            try:
                started.append((daemon, read_pid(state / "run" / f"{daemon}.pid", deadline)))
            except RuntimeError as exc:
                raise RuntimeError(f"{daemon} did not start: {exc}\n{daemon_logs(state)}") from None
        while True:
            proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10)
            if "idle" in proc.stdout:
                break
            if time.time() > deadline:
                raise RuntimeError(f"the node never became idle: {proc.stdout}{proc.stderr}\n{daemon_logs(state)}")
            time.sleep(0.2)
        yield state
    finally:
        if started:
            subprocess.run(["scancel", "--user=root"], capture_output=True, timeout=30)
        for name, pid in reversed(started):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            stop = time.time() + 10
            while pid_alive(pid) and time.time() < stop:
                time.sleep(0.1)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        for link in links:
            link.unlink(missing_ok=True)
        if created_etc:
            shutil.rmtree(ETC, ignore_errors=True)


def job_records() -> list[dict[str, str]]:
    """Every job of the run, as scontrol's key=value fields (MinJobAge=3600: the controller keeps
    every finished job however long the run takes on a loaded machine; a MinJobAge of a few
    seconds would send the executor plugin to sacct, which this cluster has no accounting for)."""
    ids = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i"], capture_output=True, text=True,
                         check=True, timeout=30).stdout.split()
    records = []
    for job_id in ids:
        line = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True,
                              check=True, timeout=30).stdout
        records.append(dict(field.split("=", 1) for field in line.split() if "=" in field))
    return records


def test_smoke_dag_on_real_slurm(real_slurm, tmp_path):
    work = copy_workflow(tmp_path / "work")
    env = clean_env(OMP_NUM_THREADS="1")
    # The smoke DAG's fully connected training goes to CPU nodes by default; placed on the GPU
    # partition here from the command line, so that real Slurm takes the plugin's GPU request.
    profile = ["--workflow-profile", "workflow/profiles/slurm", "--set-resources", "train:gpu=1",
               "train:cpus_per_gpu=2", "train:slurm_partition=gpu", "--configfile", "config/smoke.yaml"]
    dry = run_snakemake(["-n", "--cores", "1024", *profile], work, env, timeout=300)
    assert dry.returncode == 0, dry.stdout[-3000:]
    submitted = {name for name, rule in rule_texts().items() if rule.submitted}
    expected = {f"{j.rule}:{j.wildcard_str}" for j in parse_dry_run(dry.stdout) if j.rule in submitted}

    start = time.time()
    proc = run_snakemake([*profile, "--slurm-status-command", "squeue",
                          "--slurm-init-seconds-before-status-checks", "1"], work, env, timeout=900)
    elapsed = time.time() - start
    assert proc.returncode == 0, f"{proc.stdout[-8000:]}\n{daemon_logs(real_slurm)}"

    jobs = job_records()
    seen = set()
    for job in jobs:
        rule, _, wildcards = job["Comment"].removeprefix("rule_").partition("_wildcards_")
        seen.add(f"{rule}:{wildcards}")
        assert job["JobState"] == "COMPLETED", job
        if rule == "train":
            assert job["Partition"] == "gpu" and "gpu:1" in job.get("TresPerJob", ""), job
        else:
            assert job["Partition"] == "cpu" and "gpu" not in job.get("TresPerJob", ""), job
    # the jobs after the checkpoint: a dry run of the finished folder with those rules forced
    after = run_snakemake(["-n", "--forcerun", *rules_after_checkpoint(), "--cores", "1024", *profile], work, env,
                          timeout=300)
    assert after.returncode == 0, after.stdout[-3000:]
    expected |= {f"{j.rule}:{j.wildcard_str}" for j in parse_dry_run(after.stdout) if j.rule in submitted}
    assert seen == expected
    for target in expected:
        if target.startswith("train:"):
            exp, depth = target.split(":")[1].rsplit("_", 1)
            arrays, meta = read_npz(work / "results" / "train" / exp / f"depth_{depth}.npz")
            assert arrays["A"].shape[1] == int(depth) and meta["depth"] == int(depth)
    print(f"smoke DAG on real Slurm: {len(jobs)} jobs in {elapsed:.0f} s")
