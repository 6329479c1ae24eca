"""Snakemake adapter: the note of the init_limits stage, every comparison with theory in numbers."""

import logging

from resnet_scaling.init_limits import note_markdown, summarise
from resnet_scaling.io import write_json, write_text
from resnet_scaling.scaling.tables import read_table
from resnet_scaling.job import start_job

start_job(snakemake)
inp = snakemake.input
summary = summarise(
    read_table(inp.w1), read_table(inp.gbm), read_table(inp.correlation),
    read_table(inp.relative_change), read_table(inp.line), read_table(inp.kernel_errors),
    read_table(inp.kernel_paths), slope_tolerance=snakemake.params.slope_tolerance,
)
write_json(snakemake.output.summary, summary)
write_text(snakemake.output.note, note_markdown(summary))
logging.info("%d of %d comparisons agree", summary["checks_agreeing"], summary["checks"])
