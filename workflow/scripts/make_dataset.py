"""Snakemake adapter: build one dataset of the config (docs/maths.md §2)."""

import logging

from resnet_scaling.training.data import make_dataset
from resnet_scaling.io import write_npz
from resnet_scaling.job import start_job

start_job(snakemake)
# The files are the rule's inputs, fetched (where the entry downloads them) by a local rule.
data = make_dataset(snakemake.params.spec, snakemake.params.seed, fetch=False)
logging.info("dataset %s: %s", snakemake.wildcards.dataset, {k: v.shape for k, v in data.items()})
write_npz(snakemake.output[0], metadata={"spec": snakemake.params.spec, "seed": snakemake.params.seed}, **data)
