"""Snakemake adapter: the note of the init_limits stage, every comparison with theory in numbers."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import pandas as pd  # noqa: E402

from resnet_scaling.init_limits import note_markdown, summarise  # noqa: E402
from resnet_scaling.io import write_json, write_text  # noqa: E402

inp = snakemake.input
summary = summarise(
    pd.read_csv(inp.w1), pd.read_csv(inp.gbm), pd.read_csv(inp.correlation),
    pd.read_csv(inp.relative_change), pd.read_csv(inp.line), pd.read_csv(inp.kernel_errors),
    pd.read_csv(inp.kernel_paths), slope_tolerance=snakemake.params.slope_tolerance,
)
write_json(snakemake.output.summary, summary)
write_text(snakemake.output.note, note_markdown(summary))
logging.info("%d of %d comparisons agree", summary["checks_agreeing"], summary["checks"])
