"""Snakemake adapter: the pathwise signatures of every trained network of one experiment
(docs/maths.md §4, judging a trained network's limit)."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.limits.writers import write_signatures  # noqa: E402

torch.set_num_threads(snakemake.threads)
table = write_signatures(list(snakemake.input.train), snakemake.input.dataset, snakemake.params.cfg,
                         snakemake.output.table, experiment=snakemake.wildcards.exp)
logging.info("%d rows from %d networks", len(table), table[["depth", "seed"]].drop_duplicates().shape[0])
