"""No stale or silently refitted result on a finished smoke run: a change to what made a
result (code, config values) reruns it and nothing else, a damaged table or a misplaced
training file is refused naming the file to delete, and deleting it recovers."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from workflow_utils import SMOKE, run_snakemake

# Each test reruns part of the DAG on its own copy of the session's smoke run: the full tier.
pytestmark = [pytest.mark.workflow, pytest.mark.slow]
TANH = "tanh_shared_synthetic"


@pytest.fixture()
def run(smoke_run, tmp_path):
    """A copy of the finished smoke run (results, metadata and code, modification times kept)."""
    return shutil.copytree(smoke_run, tmp_path / "run", symlinks=True,
                           ignore=shutil.ignore_patterns("locks", "__pycache__"))


def planned(work, *args: str) -> dict[str, int]:
    """Jobs per rule of a dry run (empty when there is nothing to be done)."""
    proc = run_snakemake(work, *args, "-n", "--cores", "1", *SMOKE)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    jobs: dict[str, int] = {}
    for name in re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):$", proc.stdout, re.M):
        jobs[name] = jobs.get(name, 0) + 1
    assert jobs or "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]
    return jobs


def failure(work, *targets: str) -> str:
    """The output of a run of ``targets`` that must fail (the failed job's log included)."""
    proc = run_snakemake(work, *targets, "--cores", "1", *SMOKE)
    assert proc.returncode != 0, proc.stdout[-3000:]
    return proc.stdout + proc.stderr


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_a_statistics_table_cut_at_a_depth_boundary_is_refused_and_rebuilt(run):
    """Cut just before the first row of depth 32 the table is complete network by network;
    the fits would take 3 depths. The config's depths x seeds refuse it; deleting it recovers
    the same exponents."""
    path = run / "results" / "scaling" / TANH / "statistics.csv"
    exponents = (run / "results" / "exponents.csv").read_bytes()
    table = pd.read_csv(path)
    table[table["depth"] < 32].to_csv(path, index=False)
    out = failure(run, "results/exponents.csv")
    relative = f"results/scaling/{TANH}/statistics.csv"
    assert f"{relative}: does not hold the networks the config trains for '{TANH}'" in out
    assert f"delete {relative} and rerun the workflow to rebuild it" in out
    path.unlink()
    proc = run_snakemake(run, "results/exponents.csv", "--cores", "1", *SMOKE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "results" / "exponents.csv").read_bytes() == exponents


def test_a_deleted_regimes_table_is_rebuilt(run):
    """results/regimes.csv is the checkpoint's second output: once deleted it is planned again."""
    (run / "results" / "regimes.csv").unlink()
    assert planned(run).get("scaling_exponents") == 1


def test_a_training_output_copied_over_another_is_named_and_recovers(run):
    folder = run / "results" / "train" / TANH
    shutil.copyfile(folder / "depth_8.npz", folder / "depth_16.npz")
    out = failure(run, f"results/scaling/{TANH}/statistics.csv")
    relative = f"results/train/{TANH}/depth_16.npz"
    assert (f"{relative} holds experiment '{TANH}' at depth 8, not experiment '{TANH}' at depth 16 as its name "
            f"says (copied or moved?); delete {relative} and rerun") in out
    (folder / "depth_16.npz").unlink()
    jobs = planned(run, f"results/scaling/{TANH}/statistics.csv")
    assert jobs == {"train": 1, "scaling_statistics": 1}


def test_a_code_change_reruns_what_it_made_and_nothing_else(run):
    """SYNTHETIC_STEPS makes the synthetic data: the data, every training job and what follows
    them rerun; a figure's module reruns its figures only; comments and docstrings nothing."""
    data_py = run / "src" / "resnet_scaling" / "training" / "data.py"
    edit(data_py, "SYNTHETIC_STEPS = 100", "SYNTHETIC_STEPS = 50")
    jobs = planned(run)
    assert jobs["data"] == 1 and jobs["train"] == 8 and jobs["scaling_exponents"] == 1
    edit(data_py, "SYNTHETIC_STEPS = 50", "SYNTHETIC_STEPS = 100")
    plots = run / "src" / "resnet_scaling" / "plots" / "scaling.py"
    edit(plots, '"""', '"""A reworded docstring; ')
    plots.write_text("# a comment\n" + plots.read_text())
    assert planned(run) == {}
    edit(plots, "\nimport", "\nimport math  # noqa: F401\nimport")
    jobs = planned(run)
    assert "train" not in jobs and "data" not in jobs and jobs.get("scaling_figures") == 1, jobs


def test_the_same_config_in_another_key_order_reruns_nothing(run):
    """A YAML re-dump with every mapping's keys in reverse order (the experiments' too)."""
    def reverse(node):
        if isinstance(node, dict):
            return {k: reverse(node[k]) for k in reversed(list(node))}
        return [reverse(v) for v in node] if isinstance(node, list) else node

    config = yaml.safe_load((run / "config" / "smoke.yaml").read_text())
    shuffled = reverse(config)
    shuffled["experiments"] = {name: shuffled["experiments"][name] for name in config["experiments"]}
    (run / "config" / "smoke.yaml").write_text(yaml.safe_dump(shuffled, sort_keys=False))
    assert list(yaml.safe_load((run / "config" / "smoke.yaml").read_text())["datasets"]["synthetic"]) == [
        "dim", "n_test", "n_train", "kind"]
    assert planned(run) == {}


def _mark_incomplete(work, output: str) -> None:
    """What a killed job leaves: Snakemake's marker of an output it started (its file layout:
    .snakemake/incomplete/<urlsafe base64 of the path>), older than the next invocation."""
    marker = work / ".snakemake" / "incomplete" / base64.urlsafe_b64encode(output.encode()).decode()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"external_jobid": None}))
    then = time.time() - 60
    os.utime(marker, (then, then))


def test_outputs_of_killed_jobs_after_the_checkpoint_are_rerun(run):
    """rerun-incomplete covers the jobs planned after the scaling checkpoint (a killed limit
    fit) as it covers those before it (a killed training job, which checks the marker layout)."""
    _mark_incomplete(run, f"figures/limits_error_{TANH}.png")
    _mark_incomplete(run, "results/limits/convergence.csv")
    jobs = planned(run)
    assert jobs.get("limits_fit") == 1 and jobs.get("limits_convergence") == 1, jobs
    assert "train" not in jobs and "scaling_exponents" not in jobs, jobs
    _mark_incomplete(run, f"results/train/{TANH}/depth_8.npz")
    assert planned(run, f"results/train/{TANH}/depth_8.npz") == {"train": 1}


def test_a_notebook_refuses_a_damaged_table_in_one_plain_sentence(run):
    path = run / "results" / "exponents.csv"
    path.write_bytes(np.random.default_rng(0).bytes(3000))
    out = failure(run, "results/notebooks/overview.csv", "--allowed-rules", "notebook_overview",
                  "--rerun-triggers", "mtime")
    assert re.search(r"^CorruptInputError: results/exponents.csv: not a readable CSV table .*; delete "
                     r"results/exponents.csv and rerun the workflow to rebuild it$", out, re.M), out[-3000:]
    assert "\x1b[" not in out
