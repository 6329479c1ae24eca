"""A committed gallery of one finished run: its figures, its small tables and its cost.

A run of a config in its own working directory (for example the paper-scale run) leaves
figures under ``figures/`` and tables under ``results/`` there; :func:`export_gallery`
copies the figures (PNG and PDF) and the small tables into one folder of the repository,
gathers the per-network training summaries into ``training.csv`` and writes ``cost.csv`` (per rule: jobs, wall seconds, CPU seconds, peak memory) from the
run's ``benchmarks/output/`` files. The large intermediate results stay behind.

    python -m resnet_scaling.gallery RUN_DIR DEST [--time-report TIME_V_FILE --time-label LABEL]...
        [--carry EXPERIMENT... --configfile CONFIG...]

``--carry`` keeps experiments of the gallery already in DEST that the run did not retrain
(their trained weights gone): their committed rows are converted to the current tables and
scored beside the run's, and the scorecard says which rows were re-derived how.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
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
                   time_labels: Sequence[str] = (), carry: Sequence[str] = (), config: dict | None = None) -> list[Path]:
    """Copy the run's figures and small tables into ``dest`` and write its cost; returns the files.

    ``time_reports``: GNU ``time -v`` reports of the run's invocations (e.g. training and
    analysis), each described by the matching entry of ``time_labels`` ("Whole run" if none).
    ``carry``: experiments of the gallery already in ``dest`` that the run did not train; their
    committed rows are kept, converted to the current tables (:func:`carried_tables`), and
    scored with the run's by the current scorecard; ``config`` is the run's (validated) config."""
    run_dir, dest = Path(run_dir), Path(dest)
    figures = sorted((run_dir / "figures").glob("*.p[dn][fg]"))
    if not figures:
        raise FileNotFoundError(f"{run_dir / 'figures'}: no figures; is {run_dir} a finished run?")
    carried, committed_note = None, ""
    if carry:
        if config is None:
            raise ValueError("carrying experiments needs the run's config (--configfile)")
        scaling = config["scaling"]
        carried = carried_tables(dest, carry, scaling["include_status"], scaling["population"]["primary_status"],
                                 scaling["population"]["min_depths"],
                                 (scaling["fit"]["min_depth"], scaling["fit"]["max_depth"] or float("inf")))
        committed_note = (dest / "limits_note.md").read_text() if (dest / "limits_note.md").exists() else ""
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
    if carried is not None:
        rescore_with_carried(run_dir, dest, carried, committed_note, config)
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


# -- experiments carried over from a committed gallery ---------------------------------------

#: What the scorecard of a gallery with carried experiments says about them.
CARRIED_NOTE = (
    "{experiments}: carried over from the committed gallery of an earlier run of the same config, whose trained "
    "weights were not kept, and scored here by the current code from its committed tables: their exponents, "
    "regime and windows are that run's fits of the original rule's networks (converged + stopped on the plateau); "
    "where their networks split, the converged networks' exponents of the max and RMS norms are that run's "
    "inclusion fits (scaling_robustness.csv, 'converged only'), while the converged networks' regime and "
    "sliding windows, which need the per-network statistics, are not evaluated; the non-affine shares were not "
    "measured; their limit fits took every finite network.")


def _members(training: pd.DataFrame, statuses) -> str:
    part = training[training["status"].isin(list(statuses))]
    return "; ".join(f"{k}:{v}" for k, v in part["status"].value_counts(sort=False).items())


def carried_tables(gallery: str | Path, experiments: Sequence[str], include_status: Sequence[str],
                   primary_status: Sequence[str], min_depths: int, window: tuple[float, float]) -> dict[str, pd.DataFrame]:
    """The rows of ``experiments`` in a committed gallery written before populations, in the
    current shapes (:data:`CARRIED_NOTE` says what is and is not re-derived).

    The committed fits are the original rule's population. Where that population splits and
    the primary statuses' networks have ``min_depths`` depths in ``window``, a primary population
    is added whose norm exponents are the committed 'converged only' inclusion fits and whose
    regime is not evaluated. Returns exponents, regimes, robustness, training and limits
    (the limit summaries, JSON columns parsed) for those experiments.
    """
    import json

    from .scaling.exponents import NOT_EVALUATED, population_label
    from .scaling.robustness import INCLUSION_RULES

    gallery = Path(gallery)
    keep = lambda t: t[t["experiment"].isin(list(experiments))].reset_index(drop=True)
    exponents = keep(pd.read_csv(gallery / "exponents.csv"))
    regimes = keep(pd.read_csv(gallery / "regimes.csv"))
    robustness = keep(pd.read_csv(gallery / "scaling_robustness.csv"))
    training = keep(read_training(gallery / "training.csv"))
    limits = keep(pd.read_csv(gallery / "limits_summary.csv"))
    missing = sorted(set(experiments) - set(regimes["experiment"]))
    if missing or "population" in regimes:
        raise ValueError(f"{gallery}: " + (f"has no rows for {missing}" if missing else "already has populations"))
    original = population_label(include_status)
    inclusion = {variant: population_label(statuses) for variant, statuses in INCLUSION_RULES.items()}
    robustness["population"] = [inclusion.get(v, original) if a == "inclusion" else original
                                for a, v in zip(robustness["analysis"], robustness["variant"])]
    exponent_rows, regime_rows = [exponents.iloc[:0]], []
    for _, reg in regimes.iterrows():
        exp = reg["experiment"]
        nets = training[training["experiment"] == exp]
        split = nets["status"].isin(list(primary_status)).any() and nets["status"].isin(
            [s for s in include_status if s not in primary_status]).any()
        held = nets.loc[nets["status"].isin(list(primary_status)), "depth"].unique()
        enough = split and int(((held >= window[0]) & (held <= window[1])).sum()) >= min_depths
        label = original if not (set(nets.loc[nets["status"].isin(list(include_status)), "status"])
                                 <= set(primary_status)) else population_label(primary_status)
        base = {"original_rule": True, "evaluated": True, "population_note": "",
                "members": _members(nets, include_status)}
        regime_rows.append({**reg.to_dict(), **base, "population": label, "primary": not enough,
                            "population_depths": reg["n_depths"]})
        exponent_rows.append(exponents[exponents["experiment"] == exp].assign(
            **base, population=label, primary=not enough))
        if enough:
            converged = population_label(primary_status)
            fits = robustness[(robustness["experiment"] == exp) & (robustness["analysis"] == "inclusion")
                              & (robustness["population"] == converged)].set_index(["quantity", "statistic"])
            rows = exponents[exponents["experiment"] == exp].copy()
            for column in ("slope", "intercept", "stderr", "slope_ci_low", "slope_ci_high", "exponent", "ci_low",
                           "ci_high", "n_depths", "n_points"):
                rows[column] = np.nan
            for i, r in rows.iterrows():
                if (r["quantity"], r["statistic"]) in fits.index:
                    f = fits.loc[(r["quantity"], r["statistic"])]
                    rows.loc[i, ["exponent", "ci_low", "ci_high", "n_depths", "n_points"]] = [
                        f["exponent"], f["ci_low"], f["ci_high"], f["n_depths"], f["n_networks"]]
                    rows.loc[i, ["slope", "slope_ci_low", "slope_ci_high"]] = [-f["exponent"], -f["ci_high"], -f["ci_low"]]
            rows["n_depths"] = rows["n_depths"].fillna(0)
            note = ("the converged networks' regime needs their per-network statistics, which the committed "
                    "tables of this carried experiment do not hold")
            common = {"population": converged, "primary": True, "original_rule": False, "evaluated": True,
                      "members": _members(nets, primary_status), "population_note": note}
            exponent_rows.append(rows.assign(**common))
            regime_rows.append({**reg.to_dict(), **common, "regime": NOT_EVALUATED, "support": np.nan,
                                "population_depths": int(len(held)),
                                **{c: np.nan for c in reg.index if c.startswith(("exponent", "increment_ratio",
                                                                                 "quadratic_variation"))
                                   and c != "exponent_statistic"}})
    regimes_out = pd.DataFrame(regime_rows)
    regimes_out = regimes_out.sort_values("primary", ascending=False, kind="stable")
    regimes_out = regimes_out.set_index("experiment").loc[list(dict.fromkeys(regimes["experiment"]))].reset_index()
    summaries = {}
    for _, r in limits.iterrows():
        summary = {}
        for key, value in r.items():
            if isinstance(value, str) and value[:1] in "{[":
                value = json.loads(value)
            summary[key] = value.item() if hasattr(value, "item") else value
        summary["population"] = "all"
        summaries[r["experiment"]] = summary
    return {"exponents": pd.concat(exponent_rows, ignore_index=True), "regimes": regimes_out,
            "robustness": robustness, "training": training, "limits": summaries}


def _note_sections(note: str, experiments: Sequence[str]) -> str:
    """The '### experiment' sections of a limits note for the given experiments."""
    blocks = re.split(r"(?m)^(?=### )", note)
    return "".join(b for b in blocks if b.startswith("### ") and b[4:].split("\n", 1)[0].strip() in experiments)


def rescore_with_carried(run_dir: str | Path, dest: str | Path, carried: dict, committed_note: str,
                         config: dict) -> Path:
    """Merge the carried experiments' rows (:func:`carried_tables`) into the gallery ``dest``
    exported from ``run_dir`` and score them all with the current scorecard; returns its path."""
    import json

    from .scaling.exponents import RegimeThresholds, primary_rows
    from .scaling.scorecard import render_markdown, score, training_outcome
    from .scaling.tables import read_exponents, read_json, read_regimes, read_robustness
    from .training.data import dataset_affine_floor

    run_dir, dest = Path(run_dir), Path(dest)
    results = run_dir / "results"
    exponents = pd.concat([read_exponents(results / "exponents.csv"), carried["exponents"]], ignore_index=True)
    regimes = pd.concat([read_regimes(results / "regimes.csv"), carried["regimes"]], ignore_index=True)
    robustness = pd.concat([read_robustness(results / "scaling_robustness.csv"), carried["robustness"]],
                           ignore_index=True)
    training = pd.concat([read_training(dest / "training.csv"), carried["training"]], ignore_index=True)
    summaries = {p.parent.name: read_json(p) for p in sorted((results / "limits").glob("*/summary.json"))}
    summaries.update(carried["limits"])
    for name, table in (("exponents.csv", exponents), ("regimes.csv", regimes),
                        ("scaling_robustness.csv", robustness), ("training.csv", training)):
        write_csv(dest / name, table)
    flat = [{k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in s.items()} for s in summaries.values()]
    write_csv(dest / "limits_summary.csv", pd.DataFrame(flat))
    note_path = dest / "limits_note.md"
    carried_names = list(dict.fromkeys(carried["regimes"]["experiment"]))
    if note_path.exists():
        write_text(note_path, note_path.read_text().rstrip("\n") + "\n\n" + _note_sections(committed_note, carried_names))
    scaling = config["scaling"]
    experiments = config["experiments"]
    floors = {exp: dataset_affine_floor(results / "data" / f"{experiments[exp]['dataset']}.npz")
              for exp in regimes["experiment"].unique()}
    populations = {r["experiment"]: r["population"] for _, r in primary_rows(regimes).iterrows()}
    outcome = training_outcome(training, {exp: experiments[exp]["epsilon"] for exp in floors}, floors, populations)
    scores = score(exponents, regimes, scaling["scorecard"]["rounding"], robustness,
                   thresholds=RegimeThresholds.from_config(scaling["regime"]), limits=summaries)
    note = CARRIED_NOTE.format(experiments=", ".join(carried_names))
    text = render_markdown(scores, exponents, regimes, tuple(scaling["include_status"]), robustness, outcome,
                           scaling["scorecard"]["non_affine_threshold"], notes=[note])
    write_text(dest / "scorecard.md", text)
    return dest / "scorecard.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Copy a finished run's figures, small tables and cost into a gallery folder.")
    parser.add_argument("run_dir")
    parser.add_argument("dest")
    parser.add_argument("--time-report", action="append", default=[],
                        help="output of /usr/bin/time -v for the run (repeat for several invocations)")
    parser.add_argument("--time-label", action="append", default=[], help="what each time report covers")
    parser.add_argument("--carry", action="append", default=[],
                        help="an experiment of the committed gallery in DEST that the run did not train (repeat)")
    parser.add_argument("--configfile", nargs="+", default=[], help="the run's config files (needed with --carry)")
    args = parser.parse_args(argv)
    config = None
    if args.configfile:
        from .config import load_configfiles

        config = load_configfiles(args.configfile)
    for path in export_gallery(args.run_dir, args.dest, args.time_report, args.time_label, args.carry, config):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
