"""Snakemake adapter: relative change over β × Hurst index with fGn weights, and the critical line (docs/maths.md §6)."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.init_limits import phase_diagram  # noqa: E402
from resnet_scaling.io import write_csv  # noqa: E402

torch.set_num_threads(snakemake.threads)
paths, cells, line = phase_diagram(snakemake.params.cfg, snakemake.params.seed, progress=True)
write_csv(snakemake.output.paths, paths)
write_csv(snakemake.output.cells, cells)
write_csv(snakemake.output.line, line)
logging.info("%d paths, %d exploded; critical line:\n%s", len(paths), int(paths.exploded.sum()), line.to_string())
