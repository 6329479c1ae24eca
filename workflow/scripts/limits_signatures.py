"""Snakemake adapter: the pathwise signatures of every trained network of one experiment
(docs/maths.md §4, judging a trained network's limit)."""

import logging

from resnet_scaling.limits.writers import write_signatures
from resnet_scaling.job import start_job

start_job(snakemake)
table = write_signatures(list(snakemake.input.train), snakemake.input.dataset, snakemake.params.cfg,
                         snakemake.output.table, experiment=snakemake.wildcards.exp)
logging.info("%d rows from %d networks", len(table), table[["depth", "seed"]].drop_duplicates().shape[0])
