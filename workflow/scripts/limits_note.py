"""Snakemake adapter: the note on how close each fitted limit is to its trained networks."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from resnet_scaling.limits import write_note  # noqa: E402

note = write_note(
    list(snakemake.input.summaries),
    snakemake.input.fits,
    snakemake.output.note,
    snakemake.output.table,
    close_threshold=snakemake.params.close_threshold,
    verdicts_path=snakemake.input.verdicts,
)
logging.info("\n%s", note)
