"""A committed gallery of one finished run: its figures, its small tables and its cost.

A run of a config in its own working directory (for example the paper-scale run) leaves
figures under ``figures/`` and tables under ``results/`` there; :func:`export_gallery`
copies the figures (PNG and PDF) and the small tables into one folder of the repository,
gathers the per-network training summaries into ``training.csv`` and writes ``cost.csv`` (per rule: jobs, wall seconds, CPU seconds, peak memory) from the
run's ``benchmarks/output/`` files. The large intermediate results stay behind.

    python -m resnet_scaling.gallery RUN_DIR DEST [--time-report TIME_V_FILE --time-label LABEL]...
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path
from typing import Sequence

import pandas as pd

from .io import write_csv, write_text
from .scaling.tables import read_training

#: The small tables a gallery carries, relative to the run's ``results/``; in the gallery a
#: table in a subfolder is named ``{folder}_{name}``, or as given here.
TABLES = (
    "exponents.csv",
    "regimes.csv",
    "scorecard.md",
    "scaling_robustness.csv",
    "limits/summary.csv",
    "limits/note.md",
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


def export_gallery(run_dir: str | Path, dest: str | Path, time_reports: Sequence[str | Path] = (),
                   time_labels: Sequence[str] = ()) -> list[Path]:
    """Copy the run's figures and small tables into ``dest`` and write its cost; returns the files.

    ``time_reports``: GNU ``time -v`` reports of the run's invocations (e.g. training and
    analysis), each described by the matching entry of ``time_labels`` ("Whole run" if none)."""
    run_dir, dest = Path(run_dir), Path(dest)
    figures = sorted((run_dir / "figures").glob("*.p[dn][fg]"))
    if not figures:
        raise FileNotFoundError(f"{run_dir / 'figures'}: no figures; is {run_dir} a finished run?")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in figures:
        if (dest / path.name).resolve() != path.resolve():  # a run's own figures/ folder is its gallery
            shutil.copy2(path, dest / path.name)
        written.append(dest / path.name)
    for name in (*TABLES, *TABLE_NAMES):
        source = run_dir / "results" / name
        if source.exists():
            target = dest / TABLE_NAMES.get(name, name.replace("/", "_"))
            shutil.copy2(source, target)
            written.append(target)
    for source in sorted((run_dir / "results" / "fbsde").glob("*/slopes.csv")):  # backward comparison per experiment
        target = dest / f"fbsde_slopes_{source.parent.name}.csv"
        shutil.copy2(source, target)
        written.append(target)
    training = sorted((run_dir / "results" / "scaling").glob("*/training.csv"))
    if training:  # per network: status, epochs, why it stopped, final losses
        write_csv(dest / "training.csv", pd.concat([read_training(p) for p in training], ignore_index=True))
        written.append(dest / "training.csv")
    cost = benchmark_summary(run_dir)
    write_csv(dest / "cost.csv", cost)
    written.append(dest / "cost.csv")
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
    write_text(dest / "cost.md", "\n".join(lines) + "\n")
    written.append(dest / "cost.md")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Copy a finished run's figures, small tables and cost into a gallery folder.")
    parser.add_argument("run_dir")
    parser.add_argument("dest")
    parser.add_argument("--time-report", action="append", default=[],
                        help="output of /usr/bin/time -v for the run (repeat for several invocations)")
    parser.add_argument("--time-label", action="append", default=[], help="what each time report covers")
    args = parser.parse_args(argv)
    for path in export_gallery(args.run_dir, args.dest, args.time_report, args.time_label):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
