"""Snakemake adapter: slopes of the pathwise signatures, the limit verdict of every population,
and their figure (docs/maths.md §4, judging a trained network's limit)."""

import logging

from resnet_scaling.limits.writers import write_pathwise
from resnet_scaling.plots import limits as figures
from resnet_scaling.job import start_job

start_job(snakemake)
out = snakemake.output
params = snakemake.params
verdicts = write_pathwise(list(snakemake.input.signatures), snakemake.input.regimes, params.cfg, params.bootstrap,
                          params.include_status, {"networks": out.networks, "slopes": out.slopes,
                                                  "verdicts": out.verdicts})
logging.info("verdicts:\n%s", verdicts[["experiment", "population", "direction", "verdict"]].to_string())
figures.pathwise_figure(out.networks, out.slopes, out.verdicts, out.pdf, out.png, params.cfg)
