"""Snakemake adapter: train every depth of one cell of the phase diagram (or of the anchor)."""

import logging
import sys
from pathlib import Path

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "a")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.training.data import make_dataset  # noqa: E402
from resnet_scaling.phase_diagram.study import train_cell  # noqa: E402

torch.set_num_threads(snakemake.threads)
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
