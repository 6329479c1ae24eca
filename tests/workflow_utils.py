"""Run the workflow in a temporary copy of the repository (never in the checkout itself)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--configfile", "config/smoke.yaml"]
COPIED = ("Snakefile", "workflow", "profiles", "config", "src", "envs", "notebooks")


def copy_workflow(dest: Path) -> Path:
    """Copy what the workflow needs into ``dest`` (no results, logs or .snakemake)."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".snakemake")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def snakemake_bin() -> str:
    return str(Path(sys.executable).parent / "snakemake")


def run_snakemake(workdir: Path, *args: str, timeout: int = 1500, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run snakemake on the copy in ``workdir``, writing into ``workdir`` itself (``--directory``,
    instead of the run folder ``runs/<config>/`` a run started there would get), and return the
    completed process (never raises on failure)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [snakemake_bin(), "--directory", str(workdir), *args], cwd=workdir, capture_output=True, text=True,
        timeout=timeout, env=full_env,
    )
