"""Snakemake adapter: build one dataset of the config (docs/maths.md §2)."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from resnet_scaling.training.data import make_dataset  # noqa: E402
from resnet_scaling.io import write_npz  # noqa: E402

# The files are the rule's inputs, fetched (where the entry downloads them) by a local rule.
data = make_dataset(snakemake.params.spec, snakemake.params.seed, fetch=False)
logging.info("dataset %s: %s", snakemake.wildcards.dataset, {k: v.shape for k, v in data.items()})
write_npz(snakemake.output[0], metadata={"spec": snakemake.params.spec, "seed": snakemake.params.seed}, **data)
