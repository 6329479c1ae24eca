"""Snakemake adapter: the largest increment of the anchor's trained weights against depth, and its slope."""

import logging
import sys
from pathlib import Path

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "a")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from resnet_scaling.scaling.exponents import FitSettings  # noqa: E402
from resnet_scaling.io import write_csv  # noqa: E402
from resnet_scaling.phase_diagram.study import anchor_slopes, anchor_statistics  # noqa: E402

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
