"""Snakemake adapter: train every depth of one cell of the phase diagram (or of the anchor)."""

import logging
from pathlib import Path

from resnet_scaling.training.data import make_dataset
from resnet_scaling.phase_diagram.study import train_cell
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
exp = snakemake.params.experiment
folder, checkpoints = Path(snakemake.output[0]), Path(snakemake.params.checkpoints)
folder.mkdir(parents=True, exist_ok=True)
summary = train_cell(
    snakemake.wildcards.cell,
    exp,
    make_dataset(snakemake.params.dataset, snakemake.params.seed),
    [folder / f"depth_{depth}.npz" for depth in exp["depths"]],
    [checkpoints / f"depth_{depth}.pt" for depth in exp["depths"]],
    base_seed=snakemake.params.seed,
    device=snakemake.params.device,
    dtype=snakemake.params.dtype,
    engine=snakemake.params.engine,
)
for line in summary:
    logging.info("%s %s", snakemake.wildcards.cell, line)
