"""Snakemake adapter: train every depth and learning rate of one cell of the transfer study."""

import logging

# one line per run here, not the trainer's line per epoch (about 30,000 of them a cell)
logging.getLogger("resnet_scaling.training").setLevel(logging.WARNING)

from resnet_scaling.io import read_npz
from resnet_scaling.transfer.study import Cell, train_cell
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
cell = Cell.from_dict(snakemake.params.cell)
data, _ = read_npz(snakemake.input.data)
result = train_cell(cell, data, snakemake.output[0], base_seed=snakemake.params.seed, engine=snakemake.params.engine,
                    dtype=snakemake.params.dtype, device="cpu", progress=logging.info)
for row in result["cost"]:
    logging.info("%s L=%d: %d learning rates in %.1f CPU-s", cell.name, row["depth"], row["runs"], row["cpu_s"])
