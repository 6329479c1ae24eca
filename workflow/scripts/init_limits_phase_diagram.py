"""Snakemake adapter: relative change over β × Hurst index with fGn weights, and the critical line (docs/maths.md §6)."""

import logging

from resnet_scaling.init_limits import phase_diagram
from resnet_scaling.io import write_csv
from resnet_scaling.job import start_job

start_job(snakemake)
paths, cells, line = phase_diagram(snakemake.params.cfg, snakemake.params.seed, progress=True)
write_csv(snakemake.output.paths, paths)
write_csv(snakemake.output.cells, cells)
write_csv(snakemake.output.line, line)
logging.info("%d paths, %d exploded; critical line:\n%s", len(paths), int(paths.exploded.sum()), line.to_string())
