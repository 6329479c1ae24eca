"""A committed gallery of one finished run: its figures, its small tables, its cost and its pedigree.

A run of a config in its own working directory (for example the paper-scale run) leaves
figures under ``figures/`` and tables under ``results/`` there; :func:`export_gallery`
copies the figures (PNG and PDF) and the small tables into one folder of the repository,
gathers the per-network training summaries into ``training.csv``, writes ``cost.csv`` (per
rule: jobs, wall seconds, CPU seconds, peak memory) from the run's ``benchmarks/output/``
files, and ``provenance.json``: the run folder, its config (files, ``--config`` values and
the digest of the resolved values) and its code (git commit and the code digest of every
rule), from the run's own record (:mod:`resnet_scaling.pedigree`). The large intermediate
results stay behind.

    python -m resnet_scaling.gallery RUN_DIR DEST [--time-report TIME_V_FILE --time-label LABEL]... [--replace]

A gallery is one complete run of one config made by one code version, never a mix. Before
anything is written the export refuses, in one sentence, a run that is incomplete or was made
by more than one code version, and a run of another config or made by other code than the
gallery's ``provenance.json`` records (``--replace``: the run replaces the gallery whole).
The new gallery is built in a sibling folder and swapped in: a failure leaves the old one as
it was, and files the run does not make do not survive it. Subfolders of a gallery (the
galleries ``figures/paper/`` and ``figures/mnist/`` inside ``figures/``) are not its content
and are kept as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import pandas as pd

from .io import _umask, write_csv, write_text
from .findings import FINDINGS, findings_markdown
from .pedigree import GALLERY_RECORD, Refused, check_gallery, check_run
from .scaling.tables import read_training

#: The small tables a gallery holds, relative to the run's ``results/``; in the gallery a
#: table in a subfolder is named ``{folder}_{name}``, or as given here.
TABLES = (
    "exponents.csv",
    "regimes.csv",
    "scorecard.md",
    "scaling_robustness.csv",
    "limits/summary.csv",
    "limits/note.md",
    "limits/pathwise.csv",
    "limits/pathwise_slopes.csv",
    "limits/pathwise_verdicts.csv",
    "fbsde/convergence_slopes.csv",
    "init/note.md",
    "regimes/anchor_slopes.csv",
)
#: Tables named after the figure they are drawn from, beside it in the gallery.
TABLE_NAMES = {"regimes/phase_diagram.csv": "training_phase_diagram.csv"}


def benchmark_summary(run_dir: str | Path) -> pd.DataFrame:
    """Per rule: number of jobs, summed wall and CPU seconds, peak resident memory (MB)."""
    rows = []
    root = Path(run_dir) / "benchmarks" / "output"
    for path in sorted(root.rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        if frame.empty:
            continue
        last = frame.iloc[-1]
        # benchmarks/output/<stage>/<name>[/<exp>].tsv belongs to rule <stage>_<name>; train/<exp>/... to train
        parts = path.relative_to(root).parts
        rule = "train" if parts[0] == "train" else f"{parts[0]}_{parts[1].removesuffix('.tsv')}"
        rows.append({"rule": rule, "wall_s": float(last["s"]), "cpu_s": float(last["cpu_time"]),
                     "max_rss_mb": float(last["max_rss"])})
    table = pd.DataFrame(rows, columns=["rule", "wall_s", "cpu_s", "max_rss_mb"])
    return (
        table.groupby("rule", as_index=False)
        .agg(jobs=("wall_s", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"), max_rss_mb=("max_rss_mb", "max"))
        .sort_values("cpu_s", ascending=False, ignore_index=True)
    )


def time_report(path: str | Path) -> dict[str, float]:
    """Wall time, CPU time (user + system, children included) and peak memory of a whole run,
    from the report of GNU ``/usr/bin/time -v``."""
    text = Path(path).read_text()

    def field(label: str) -> str:
        match = re.search(rf"{re.escape(label)}: (.+)", text)
        if not match:
            raise ValueError(f"{path}: no '{label}' line; is it the output of /usr/bin/time -v?")
        return match.group(1).strip()

    parts = [float(p) for p in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    return {"wall_s": wall, "cpu_s": cpu, "max_rss_mb": float(field("Maximum resident set size (kbytes)")) / 1024}


def _link_or_copy(source: str, target: str) -> None:
    """Hard-link a kept file into the new gallery (same bytes and times), or copy it."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _cost_markdown(cost: pd.DataFrame, time_reports: Sequence[str | Path], time_labels: Sequence[str]) -> str:
    lines = ["# Cost of the run", "", "Per rule, from the benchmark files of the jobs that declare one:", "",
             "| rule | jobs | wall s | CPU s | peak memory MB |", "|---|---|---|---|---|"]
    lines += [f"| {r.rule} | {r.jobs} | {r.wall_s:.0f} | {r.cpu_s:.0f} | {r.max_rss_mb:.0f} |" for r in cost.itertuples()]
    labels = list(time_labels) or ["Whole run"] * len(time_reports)
    if len(labels) != len(time_reports):
        raise ValueError(f"{len(time_reports)} time reports but {len(labels)} labels")
    for path, label in zip(time_reports, labels):
        total = time_report(path)
        lines += ["", f"{label} (GNU time): wall {total['wall_s'] / 60:.1f} min, CPU {total['cpu_s'] / 60:.1f} min, "
                      f"peak memory of one process {total['max_rss_mb']:.0f} MB."]
    return "\n".join(lines) + "\n"


def _write_content(run_dir: Path, folder: Path, figures: list[Path], cost: pd.DataFrame, cost_text: str) -> list[str]:
    """Write the gallery's generated files into the empty ``folder``; returns their names."""
    names = []
    for path in figures:
        shutil.copy2(path, folder / path.name)
        names.append(path.name)
    for name in (*TABLES, *TABLE_NAMES):
        source = run_dir / "results" / name
        if source.exists():
            target = TABLE_NAMES.get(name, name.replace("/", "_"))
            shutil.copy2(source, folder / target)
            names.append(target)
    for source in sorted((run_dir / "results" / "fbsde").glob("*/slopes.csv")):  # backward comparison per experiment
        target = f"fbsde_slopes_{source.parent.name}.csv"
        shutil.copy2(source, folder / target)
        names.append(target)
    for source in sorted((run_dir / "results" / "transfer").glob("*.[ct][sx][vt]")):  # the transfer study's tables
        shutil.copy2(source, folder / source.name)
        names.append(source.name)
    training = sorted((run_dir / "results" / "scaling").glob("*/training.csv"))
    if training:  # per network: status, epochs, why it stopped, final losses
        write_csv(folder / "training.csv", pd.concat([read_training(p) for p in training], ignore_index=True))
        names.append("training.csv")
    write_csv(folder / "cost.csv", cost)
    write_text(folder / "cost.md", cost_text)
    return [*names, "cost.csv", "cost.md"]


def export_gallery(run_dir: str | Path, dest: str | Path, time_reports: Sequence[str | Path] = (),
                   time_labels: Sequence[str] = (), replace: bool = False, target: str = "all") -> list[Path]:
    """Replace the gallery ``dest`` by the run's figures, small tables, cost and pedigree;
    returns the files written.

    ``time_reports``: GNU ``time -v`` reports of the run's invocations (e.g. training and
    analysis), each described by the matching entry of ``time_labels`` ("Whole run" if none).
    Raises :class:`~resnet_scaling.pedigree.Refused` (one sentence, nothing written) for an
    incomplete run, one made by more than one code version, or one of another config or other
    code than the gallery's record, unless ``replace``. The gallery is built beside ``dest`` and
    renamed onto it; its subfolders (other galleries) are kept. ``target``: the final target the run
    built (``all``, or an opt-in study such as ``transfer``)."""
    run_dir, dest = Path(run_dir), Path(dest)
    pedigree = check_run(run_dir, target)
    figures = sorted((run_dir / "figures").glob("*.p[dn][fg]"))
    if not figures:
        raise Refused(f"{run_dir / 'figures'}: no figures; is {run_dir} a finished run?")
    kept = sorted(p for p in dest.iterdir() if p.is_dir()) if dest.is_dir() else []
    generated = sorted(p.name for p in dest.iterdir() if not p.is_dir()) if dest.is_dir() else []
    check_gallery(dest, pedigree, generated, replace)
    cost = benchmark_summary(run_dir)
    cost_text = _cost_markdown(cost, time_reports, time_labels)  # a bad time report fails here, before writing

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))
    try:
        os.chmod(staging, 0o777 & ~_umask())
        names = _write_content(run_dir, staging, figures, cost, cost_text)
        findings = (staging / "transfer.csv").exists() or all((staging / name).exists()
                                                               for name in ("regimes.csv", "exponents.csv"))
        record = {**pedigree, "files": sorted(names + [GALLERY_RECORD] + [FINDINGS] * findings)}
        write_text(staging / GALLERY_RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")
        if findings:  # read from the tables just written, with the record's provenance
            write_text(staging / FINDINGS, findings_markdown(staging, title=Path(dest).as_posix()))
        for folder in kept:
            shutil.copytree(folder, staging / folder.name, symlinks=True, copy_function=_link_or_copy)
        _swap(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [dest / name for name in record["files"]]


def _swap(staging: Path, dest: Path) -> None:
    """Put ``staging`` where ``dest`` is: two renames, the old gallery back in place if the second fails."""
    if not dest.exists():
        os.rename(staging, dest)
        return
    old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
    os.rmdir(old)
    os.rename(dest, old)
    try:
        os.rename(staging, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Replace a gallery folder by a finished run's figures, small tables, "
                                                 "cost and provenance.")
    parser.add_argument("run_dir")
    parser.add_argument("dest")
    parser.add_argument("--time-report", action="append", default=[],
                        help="output of /usr/bin/time -v for the run (repeat for several invocations)")
    parser.add_argument("--time-label", action="append", default=[], help="what each time report covers")
    parser.add_argument("--replace", action="store_true",
                        help="the run replaces the gallery whole, though another config or other code made it")
    parser.add_argument("--target", default="all",
                        help="the final target the run built: all (default) or an opt-in study such as transfer")
    args = parser.parse_args(argv)
    try:
        written = export_gallery(args.run_dir, args.dest, args.time_report, args.time_label, args.replace,
                                 args.target)
    except (Refused, ValueError, FileNotFoundError) as exc:
        print(f"gallery: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
