"""Snakemake adapter: the note on how close each fitted limit is to its trained networks."""

import logging

from resnet_scaling.limits import write_note
from resnet_scaling.job import start_job

start_job(snakemake)
note = write_note(
    list(snakemake.input.summaries),
    snakemake.input.fits,
    snakemake.output.note,
    snakemake.output.table,
    close_threshold=snakemake.params.close_threshold,
    verdicts_path=snakemake.input.verdicts,
)
logging.info("\n%s", note)
