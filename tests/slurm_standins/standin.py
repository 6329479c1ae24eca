"""Stand-ins for the SLURM client commands, for testing the real executor plugin without a cluster.

Each command (``sbatch``, ``squeue``, ``sacct``, ``sinfo``, ``srun``, ``scancel``,
``sacctmgr``, ``scontrol``, ``sshare``) is a two-line shell script next to this file that
calls ``python3 standin.py <command> ARGS``. Every call is appended as one JSON line to
``$STANDIN_SLURM_DIR/calls.jsonl`` (command, argv, parsed options, working directory).

``sbatch`` runs the job at once, on this machine, before it returns: the ``--wrap`` command
(or the script) runs under ``/bin/sh`` in the ``-D`` directory with the variables SLURM puts
into a job's environment, its output goes to the ``--output`` file, and the ``-t`` limit is
enforced. The job's final state (COMPLETED, FAILED or TIMEOUT) is what ``squeue`` and
``sacct`` report afterwards. ``srun`` drops its options and runs the command in place.

Options a stand-in does not know make it fail with a message, so a new flag of the plugin
shows up in the tests instead of being silently ignored.

Environment (all optional except the state folder; the names must not start with SLURM_,
because the plugin's jobstep removes those before its nested ``srun``):
    STANDIN_SLURM_DIR         folder for calls.jsonl and the job states (required)
    STANDIN_SLURM_PARTITIONS  partitions that sinfo lists, default first (default "cpu,gpu")
    STANDIN_SLURM_ACCOUNTS    accounts of the user for sacctmgr/sshare (default: none)
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

# Options that take a value, per command (long options may also come as --opt=value).
VALUE_OPTIONS = {
    "sbatch": {
        "-A", "--account", "-p", "--partition", "-t", "--time", "-D", "--chdir", "-J",
        "--job-name", "-o", "--output", "-e", "--error", "--comment", "--mem",
        "--mem-per-cpu", "-n", "--ntasks", "-c", "--cpus-per-task", "--cpus-per-gpu",
        "--gpus", "-G", "--gres", "-C", "--constraint", "--qos", "-q", "-N", "--nodes",
        "--wrap", "--export", "--ntasks-per-gpu", "--ntasks-per-node", "--exclude",
        "--reservation", "--clusters", "-M", "--array", "-a",
    },
    "srun": {
        "-n", "--ntasks", "-c", "--cpus-per-task", "--cpus-per-gpu", "--gpus", "-G",
        "--cpu-bind", "-N", "--nodes", "--mem", "--mem-per-cpu", "-J", "--job-name",
        "--jobid", "--gres", "--ntasks-per-gpu",
    },
}
FLAG_OPTIONS = {
    "sbatch": {"--parsable", "--requeue", "--no-requeue", "-H", "--hold"},
    "srun": {"--exclusive", "--overlap"},
}
FINISHED = {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"}


def state_dir() -> Path:
    try:
        return Path(os.environ["STANDIN_SLURM_DIR"])
    except KeyError:
        sys.exit("slurm stand-in: STANDIN_SLURM_DIR is not set")


@contextmanager
def locked(path: Path):
    """An exclusive lock on a file (the job counter and the call log are shared by processes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def parse(command: str, argv: list[str]) -> tuple[dict, list[str]]:
    """Split sbatch's or srun's argv into options (name -> value or True) and the rest.

    The first argument that is not an option ends the options: what follows is the batch
    script (sbatch) or the command to run (srun).
    """
    values, flags = VALUE_OPTIONS[command], FLAG_OPTIONS[command]
    options: dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            return options, argv[i:]
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            if name not in values:
                sys.exit(f"{command} stand-in: unknown option {name}")
            options[name] = value
        elif arg in flags:
            options[arg] = True
        elif arg in values:
            if i + 1 >= len(argv):
                sys.exit(f"{command} stand-in: option {arg} needs a value")
            options[arg] = argv[i + 1]
            i += 1
        elif arg[:2] in values and not arg.startswith("--"):
            options[arg[:2]] = arg[2:]  # short option with its value attached, e.g. -n1
        else:
            sys.exit(f"{command} stand-in: unknown option {arg}")
        i += 1
    return options, []


def record(command: str, argv: list[str], options: dict, **extra) -> None:
    entry = {"command": command, "argv": argv, "options": options, "cwd": os.getcwd(), **extra}
    with locked(state_dir() / "calls.jsonl") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()


def minutes(limit: str) -> float:
    """A SLURM time limit ([D-]HH:MM:SS, MM:SS, MM, D-HH, ...) in minutes."""
    days = 0
    if "-" in limit:
        d, limit = limit.split("-", 1)
        days = int(d)
        parts = [int(p) for p in limit.split(":")] + [0, 0]
        h, m, s = parts[:3]
    else:
        parts = [int(p) for p in limit.split(":")]
        h, m, s = {1: (0, parts[0], 0), 2: (0, *parts), 3: tuple(parts)}[len(parts)]
    return days * 1440 + h * 60 + m + s / 60


def option(options: dict, *names, default=None):
    for name in names:
        if name in options:
            return options[name]
    return default


def next_job_id() -> int:
    with locked(state_dir() / "job_counter") as fh:
        fh.seek(0)
        text = fh.read().strip()
        job_id = int(text) + 1 if text else 1
        fh.seek(0)
        fh.truncate()
        fh.write(str(job_id))
        fh.flush()
    return job_id


def job_dir(job_id) -> Path:
    return state_dir() / "jobs" / str(job_id)


def write_job(job_id: int, **fields) -> None:
    path = job_dir(job_id) / "job.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(fields)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def all_jobs() -> list[dict]:
    root = state_dir() / "jobs"
    jobs = [json.loads(p.read_text()) for p in root.glob("*/job.json")] if root.exists() else []
    return sorted(jobs, key=lambda j: j["id"])


def sbatch(argv: list[str]) -> int:
    options, rest = parse("sbatch", argv)
    if "--wrap" in options:
        script = f"#!/bin/sh\n{options['--wrap']}\n"
    elif rest:
        script = sys.stdin.read() if rest[0] in ("-", "/dev/stdin") else Path(rest[0]).read_text()
    else:
        sys.exit("sbatch stand-in: neither --wrap nor a script")
    job_id = next_job_id()
    record("sbatch", argv, options, job_id=job_id)
    workdir = Path(option(options, "-D", "--chdir", default=os.getcwd()))
    name = option(options, "-J", "--job-name", default="wrap")
    partition = option(options, "-p", "--partition", default="cpu")
    gpus = option(options, "--gpus", "-G")
    output = option(options, "-o", "--output", default="slurm-%j.out")
    output = workdir / output.replace("%j", str(job_id)).replace("%x", name)
    job_dir(job_id).mkdir(parents=True, exist_ok=True)
    script_path = job_dir(job_id) / "script.sh"
    script_path.write_text(script)

    # The variables SLURM sets in a batch job that the plugin and its jobstep read.
    env = dict(os.environ) if option(options, "--export", default="ALL") == "ALL" else {}
    env.update(
        SLURM_JOB_ID=str(job_id), SLURM_JOBID=str(job_id), SLURM_JOB_NAME=name,
        SLURM_JOB_PARTITION=partition, SLURM_SUBMIT_DIR=os.getcwd(), SLURM_NNODES="1",
        SLURM_JOB_NUM_NODES="1", SLURM_CLUSTER_NAME="standin", SLURMD_NODENAME="localhost",
    )
    for opt, var in (("--cpus-per-task", "SLURM_CPUS_PER_TASK"), ("--cpus-per-gpu", "SLURM_CPUS_PER_GPU"),
                     ("--mem", "SLURM_MEM_PER_NODE"), ("--ntasks", "SLURM_NTASKS")):
        if opt in options:
            env[var] = str(options[opt])
    if gpus:
        env["SLURM_GPUS"] = env["SLURM_GPUS_ON_NODE"] = str(gpus)
    if "-A" in options or "--account" in options:
        env["SLURM_JOB_ACCOUNT"] = str(option(options, "-A", "--account"))
    limit = option(options, "-t", "--time")
    timeout = minutes(limit) * 60 if limit else None

    write_job(job_id, id=job_id, name=name, partition=partition, state="RUNNING",
              account=option(options, "-A", "--account", default=""), start=time.time())
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w") as log:
        # Its own process group, so that the time limit ends the whole job as SLURM does.
        job = subprocess.Popen(["/bin/sh", str(script_path)], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = job.wait(timeout=timeout)
            state = "COMPLETED" if rc == 0 else "FAILED"
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
            rc, state = 1, "TIMEOUT"
    write_job(job_id, state=state, exit_code=rc, end=time.time())
    print(job_id if options.get("--parsable") else f"Submitted batch job {job_id}")
    return 0


def srun(argv: list[str]) -> int:
    options, rest = parse("srun", argv)
    record("srun", argv, options)
    if not rest:
        sys.exit("srun stand-in: no command")
    os.execvp(rest[0], rest)


def job_field(job: dict, field: str) -> str:
    key = field.split("%")[0].lower()
    values = {
        "jobidraw": job["id"], "jobid": job["id"], "state": job["state"], "jobname": job["name"],
        "partition": job["partition"], "account": job.get("account", ""), "nodelist": "localhost",
        "exitcode": f"{job.get('exit_code', 0)}:0",
        "reason": "None" if job["state"] == "COMPLETED" else job["state"].capitalize(),
    }
    if key not in values:
        sys.exit(f"stand-in: unknown field {field}")
    return str(values[key])


def select_jobs(options: dict) -> list[dict]:
    jobs = all_jobs()
    name = option(options, "--name", "-n")
    if isinstance(name, str):
        jobs = [j for j in jobs if j["name"] in name.split(",")]
    ids = option(options, "-j", "--jobs")
    if isinstance(ids, str):
        wanted = {i.split(".")[0] for i in ids.split(",")}
        jobs = [j for j in jobs if str(j["id"]) in wanted]
    return jobs


QUERY_OPTIONS = {
    # command: (options that take a value, flags)
    "squeue": ({"--format", "-o", "--name", "-n", "-j", "--jobs", "--states", "-t", "-u", "--user"},
               {"--noheader", "-h", "--me", "-a", "--all"}),
    "sacct": ({"--format", "-o", "--name", "-j", "--jobs", "--starttime", "-S", "--endtime", "-E",
               "--clusters", "-M", "-u", "--user", "-s", "--state"},
              {"-X", "--allocations", "--parsable2", "-P", "--noheader", "-n", "-a", "--allusers"}),
    "scancel": ({"-u", "--user", "-n", "--name", "--clusters", "-M"}, set()),
}


def query_options(command: str, argv: list[str]) -> tuple[dict, list[str]]:
    """Options of squeue, sacct and scancel: --opt=value, --opt value, bundled short flags.

    Anything unknown fails as the real command does (exit 1), e.g. the plugin's
    ``sacct -nu USER -o Account%256 | tail -1``, whose ``-1`` real sacct rejects too.
    """
    takes_value, flags = QUERY_OPTIONS[command]
    options: dict[str, object] = {}
    positional: list[str] = []

    def fail(what):
        print(f"{command}: invalid option -- {what!r}", file=sys.stderr)
        sys.exit(1)

    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            if name not in takes_value:
                fail(name)
            options[name] = value
        elif arg in takes_value:
            if i + 1 >= len(argv):
                fail(arg)
            options[arg] = argv[i + 1]
            i += 1
        elif arg in flags:
            options[arg] = True
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 2:
            # bundled short flags such as -nu USER: the last one may take the next value
            for ch in arg[1:-1]:
                if f"-{ch}" not in flags:
                    fail(ch)
                options[f"-{ch}"] = True
            last = f"-{arg[-1]}"
            if last in takes_value and i + 1 < len(argv):
                options[last] = argv[i + 1]
                i += 1
            elif last in flags:
                options[last] = True
            else:
                fail(arg[-1])
        elif arg.startswith("-"):
            fail(arg.lstrip("-"))
        elif command == "scancel":
            positional.append(arg)
        else:
            fail(arg)
        i += 1
    return options, positional


def squeue(argv: list[str]) -> int:
    options, _ = query_options("squeue", argv)
    record("squeue", argv, options)
    fmt = str(option(options, "--format", "-o", default="%i|%T"))
    jobs = select_jobs(options)
    codes = {"i": "id", "T": "state", "j": "name", "P": "partition"}
    if not option(options, "--noheader", "-h"):
        print(re.sub(r"%(\w)", lambda m: codes[m.group(1)].upper(), fmt))
    for job in jobs:
        print(re.sub(r"%(\w)", lambda m: str(job[codes[m.group(1)]]), fmt))
    return 0


def sacct(argv: list[str]) -> int:
    record("sacct", argv, {})
    options, _ = query_options("sacct", argv)
    fmt = str(option(options, "--format", "-o", default="JobIdRaw,State"))
    fields = fmt.split(",")
    jobs = select_jobs(options)
    sep = "|" if option(options, "--parsable2", "-P") else " "
    if not option(options, "--noheader", "-n"):
        print(sep.join(f.split("%")[0] for f in fields))
    for job in jobs:
        print(sep.join(job_field(job, f) for f in fields))
    return 0


def sinfo(argv: list[str]) -> int:
    record("sinfo", argv, {})
    names = os.environ.get("STANDIN_SLURM_PARTITIONS", "cpu,gpu").split(",")
    fmt = argv[argv.index("-o") + 1] if "-o" in argv else "%P"
    if "-h" not in argv and "--noheader" not in argv:
        print({"%P": "PARTITION", "%t": "STATE"}.get(fmt, fmt))
    for k, name in enumerate(names):
        print({"%P": name + ("*" if k == 0 else ""), "%t": "idle"}.get(fmt, name))
    return 0


def accounts() -> list[str]:
    return [a for a in os.environ.get("STANDIN_SLURM_ACCOUNTS", "").split(",") if a]


def sacctmgr(argv: list[str]) -> int:
    record("sacctmgr", argv, {})
    if "list" in argv or "show" in argv:
        for account in accounts():
            print(account)
        return 0
    sys.exit(f"sacctmgr stand-in: unsupported call {argv}")


def sshare(argv: list[str]) -> int:
    record("sshare", argv, {})
    for account in accounts():
        print(account)
    return 0


def scontrol(argv: list[str]) -> int:
    record("scontrol", argv, {})
    if argv[:2] == ["show", "config"]:
        print("Configuration data as of stand-in\nClusterName             = standin\n"
              "MinJobAge               = 300 sec\nSLURM_VERSION           = 22.05.8")
        return 0
    sys.exit(f"scontrol stand-in: unsupported call {argv}")


def scancel(argv: list[str]) -> int:
    options, ids = query_options("scancel", argv)
    record("scancel", argv, options)
    for job in all_jobs():
        if (str(job["id"]) in ids or not ids) and job["state"] not in FINISHED:
            write_job(job["id"], state="CANCELLED")
    return 0


COMMANDS = {f.__name__: f for f in (sbatch, srun, squeue, sacct, sinfo, sacctmgr, sshare, scontrol, scancel)}

if __name__ == "__main__":
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
