"""Helpers shared by the SLURM and lint tests: Snakemake runs, the rules as written, dry-run
parsing and the comparison of two runs' outputs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SLURM_PROFILE = ROOT / "workflow" / "profiles" / "slurm"
STANDINS = ROOT / "tests" / "slurm_standins"
# Variables of the slurm profile; tests set them explicitly or remove them.
PROFILE_ENV = ("RESNET_SCALING_SLURM_ACCOUNT", "RESNET_SCALING_GPU_PARTITION", "RESNET_SCALING_CPU_PARTITION")
# Metadata that legitimately differs between two runs of the same job.
VOLATILE_KEYS = re.compile(r"time|wall|date|host|node|elapsed|seconds|duration|created|path", re.I)


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without the profile's variables, plus ``extra``; the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_ENV}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def run_snakemake(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """``python -m snakemake ARGS`` in ``cwd``, writing into ``cwd`` (``--directory``); the whole
    process group is killed at ``timeout``.

    The SLURM plugin can wait forever on a broken status command and ignores SIGTERM while
    jobs run (see shared research notes), hence the group kill.
    """
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(cwd), *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"snakemake {' '.join(args)} timed out after {timeout} s:\n{out[-6000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


ACTIONS = ("script", "shell", "run", "notebook", "wrapper", "cwl", "template_engine")


@dataclass
class RuleText:
    """A rule as written (Snakefile or a rule file formatted by snakefmt): directive -> body."""

    name: str
    file: Path
    directives: dict[str, str] = field(default_factory=dict)

    local: bool = False

    @property
    def runs_something(self) -> bool:
        return any(a in self.directives for a in ACTIONS)

    @property
    def submitted(self) -> bool:
        """Whether a cluster executor submits this rule's jobs (not local, not action-less)."""
        return self.runs_something and not self.local


def rule_texts(root: Path = ROOT) -> dict[str, RuleText]:
    """Every rule of the Snakefile and workflow/rules/*.smk, read from the text.

    snakefmt's layout makes this reliable: ``rule NAME:`` at column 0 (or nested one level
    under an ``if``), its directives four spaces deeper, their bodies deeper still.
    """
    rules: dict[str, RuleText] = {}
    declared_local: set[str] = set()
    for path in [root / "Snakefile", *sorted((root / "workflow" / "rules").glob("*.smk"))]:
        current, indent, key, listing = None, 0, None, False
        for line in path.read_text().splitlines():
            listed = re.match(r"^\s*localrules:(.*)$", line)
            if listed or (listing and line.startswith((" ", "\t"))):
                declared_local.update(re.findall(r"\w+", listed.group(1) if listed else line.split("#")[0]))
                current, listing = None, True
                continue
            listing = False
            head = re.match(r"^(\s*)(?:rule|checkpoint) (\w+):", line)
            if head:
                current = RuleText(head.group(2), path)
                indent, key = len(head.group(1)) + 4, None
                rules[current.name] = current
                continue
            if current is None or not line.strip() or line.lstrip().startswith("#"):
                continue
            lead = len(line) - len(line.lstrip())
            if lead < indent:
                current = None
                continue
            item = re.match(r"^\s*(\w+):(.*)$", line) if lead == indent else None
            if item:
                key = item.group(1)
                current.directives[key] = item.group(2).strip()
            elif key is not None:
                current.directives[key] += "\n" + line.strip()
    for rule in rules.values():
        rule.local = rule.name in declared_local or rule.directives.get("localrule") == "True"
    return rules


@dataclass
class DryRunJob:
    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)
    resources: dict[str, str] = field(default_factory=dict)
    threads: int = 1

    @property
    def wildcard_str(self) -> str:
        """The wildcard part of the plugin's ``--comment`` (values joined by ``_``)."""
        return "_".join(self.wildcards.values()).replace("/", "_")


def _pairs(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"(\w+)=([^,]*)(?:,\s*|$)", text)}


#: Rules up to the checkpoint `scaling_exponents`: a dry run of a fresh directory plans
#: only these; what follows depends on which experiments have usable networks.
UP_TO_CHECKPOINT = {"all", "data", "train", "scaling_statistics", "scaling_exponents"}
#: Rules outside the smoke DAG: the paper-scale notebook (it runs only where the committed
#: gallery is), the convolutional stage (the smoke config has no conv_experiments) and the
#: opt-in training-side phase diagram (regimes.enabled is false).
NOT_IN_SMOKE = {"notebook_paper_scale", "cifar_train", "cifar_extract", "cifar_statistics", "cifar_exponents",
                "cifar_figure", "phase_diagram_train", "phase_diagram_classify", "phase_diagram_anchor", "phase_diagram_figures",
                "phase_diagram", "transfer_train", "transfer_analyse", "transfer_figures", "transfer"}


def rules_after_checkpoint() -> list[str]:
    """The smoke DAG's rules after the checkpoint: forcing them in a finished run's folder
    makes a dry run list the jobs a fresh folder cannot plan yet."""
    return sorted(set(rule_texts()) - UP_TO_CHECKPOINT - NOT_IN_SMOKE)


def parse_dry_run(output: str) -> list[DryRunJob]:
    """The jobs of a ``snakemake -n`` listing: rule, wildcards, resources, threads.

    (A dry run prints local rules as ``rule`` too; whether a rule is local comes from
    :func:`rule_texts`.)
    """
    jobs: list[DryRunJob] = []
    for line in output.splitlines():
        head = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line)
        if head:
            jobs.append(DryRunJob(rule=head.group(1)))
            continue
        item = re.match(r"^    (\w+): (.*)$", line)
        if not item or not jobs:
            continue
        key, value = item.groups()
        if key == "wildcards":
            jobs[-1].wildcards = _pairs(value)
        elif key == "resources":
            jobs[-1].resources = _pairs(value)
        elif key == "threads":
            jobs[-1].threads = int(value)
    return jobs


def read_calls(state_dir: Path) -> list[dict]:
    path = state_dir / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _strip_volatile(obj):
    if isinstance(obj, dict):
        return {k: _strip_volatile(v) for k, v in obj.items() if not VOLATILE_KEYS.search(str(k))}
    if isinstance(obj, list):
        return [_strip_volatile(v) for v in obj]
    return obj


def _frame_without_volatile(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    return frame[[c for c in frame.columns if not VOLATILE_KEYS.search(str(c))]]


def compare_trees(reference: Path, other: Path, parts=("results", "figures")) -> list[str]:
    """Differences between two runs' outputs; empty when they agree.

    Arrays (``.npz``) must be bitwise equal and tables (``.csv``, ``.tsv``) and JSON equal,
    apart from timing and host metadata. Binary files without a stable encoding (figures,
    checkpoints) must exist in both and be non-empty.
    """
    from resnet_scaling.io import read_npz

    problems = []
    for part in parts:
        ref_files = {p.relative_to(reference) for p in (reference / part).rglob("*") if p.is_file()}
        other_files = {p.relative_to(other) for p in (other / part).rglob("*") if p.is_file()}
        if ref_files != other_files:
            problems.append(f"{part}: only in reference {sorted(map(str, ref_files - other_files))}, "
                            f"only in other {sorted(map(str, other_files - ref_files))}")
        for rel in sorted(ref_files & other_files):
            a, b = reference / rel, other / rel
            if a.suffix == ".npz":
                (xa, ma), (xb, mb) = read_npz(a), read_npz(b)
                if set(xa) != set(xb):
                    problems.append(f"{rel}: arrays {sorted(xa)} vs {sorted(xb)}")
                bad = [k for k in set(xa) & set(xb) if not np.array_equal(xa[k], xb[k], equal_nan=xa[k].dtype.kind == "f")]
                if bad:
                    problems.append(f"{rel}: arrays differ: {sorted(bad)}")
                if _strip_volatile(ma) != _strip_volatile(mb):
                    problems.append(f"{rel}: metadata differs")
            elif a.suffix in (".csv", ".tsv"):
                if rel.parts[0] == "benchmarks":
                    continue
                try:
                    pd.testing.assert_frame_equal(_frame_without_volatile(a), _frame_without_volatile(b))
                except AssertionError as exc:
                    problems.append(f"{rel}: {exc}")
            elif a.suffix == ".json":
                if _strip_volatile(json.loads(a.read_text())) != _strip_volatile(json.loads(b.read_text())):
                    problems.append(f"{rel}: JSON differs")
            elif a.suffix in (".txt", ".yaml", ".tex", ".md"):
                if a.read_bytes() != b.read_bytes():
                    problems.append(f"{rel}: text differs")
            elif a.stat().st_size == 0 or b.stat().st_size == 0:
                problems.append(f"{rel}: empty")
    return problems
