"""Snakemake adapter: slopes of the pathwise signatures, the limit verdict of every population,
and their figure (docs/maths.md §4, judging a trained network's limit)."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from resnet_scaling.limits.writers import write_pathwise  # noqa: E402
from resnet_scaling.plots import limits as figures  # noqa: E402

out = snakemake.output
params = snakemake.params
verdicts = write_pathwise(list(snakemake.input.signatures), snakemake.input.regimes, params.cfg, params.bootstrap,
                          params.include_status, {"networks": out.networks, "slopes": out.slopes,
                                                  "verdicts": out.verdicts})
logging.info("verdicts:\n%s", verdicts[["experiment", "population", "direction", "verdict"]].to_string())
figures.pathwise_figure(out.networks, out.slopes, out.verdicts, out.pdf, out.png, params.cfg)
