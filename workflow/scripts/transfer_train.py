"""Snakemake adapter: train every depth and learning rate of one cell of the transfer study."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "a")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
# one line per run here, not the trainer's line per epoch (about 30,000 of them a cell)
logging.getLogger("resnet_scaling.training").setLevel(logging.WARNING)

import torch  # noqa: E402

from resnet_scaling.io import read_npz  # noqa: E402
from resnet_scaling.transfer.study import Cell, train_cell  # noqa: E402

torch.set_num_threads(snakemake.threads)
cell = Cell.from_dict(snakemake.params.cell)
data, _ = read_npz(snakemake.input.data)
result = train_cell(cell, data, snakemake.output[0], base_seed=snakemake.params.seed, engine=snakemake.params.engine,
                    dtype=snakemake.params.dtype, device="cpu", progress=logging.info)
for row in result["cost"]:
    logging.info("%s L=%d: %d learning rates in %.1f CPU-s", cell.name, row["depth"], row["runs"], row["cpu_s"])
