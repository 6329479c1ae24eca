"""Snakemake adapter: the largest increment of the anchor's trained weights against depth, and its slope."""

import logging
from pathlib import Path

from resnet_scaling.scaling.exponents import FitSettings
from resnet_scaling.io import write_csv
from resnet_scaling.phase_diagram.study import anchor_slopes, anchor_statistics
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
settings = FitSettings.from_config(
    {"fit": snakemake.params.fit, "bootstrap": snakemake.params.bootstrap, "include_status": snakemake.params.include_status}
)
table = anchor_statistics(
    {name: sorted(Path(folder).glob("depth_*.npz")) for name, folder in zip(snakemake.params.anchors, snakemake.input)},
    snakemake.params.anchors,
)
slopes = anchor_slopes(table, settings)
write_csv(snakemake.output.statistics, table)
write_csv(snakemake.output.slopes, slopes)
for _, r in slopes[slopes["statistic"] == "max_increment"].iterrows():
    logging.info("%s %s %s: slope %.3f [%.3f, %.3f]", r["experiment"], r["stage"], r["weights"], r["slope"],
                 r["slope_ci_low"], r["slope_ci_high"])
