"""Snakemake adapter: layer sequences, weight paths and per-layer table of one (experiment, depth)."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "a", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from resnet_scaling.weights import extract  # noqa: E402

w = extract(snakemake.input[0], snakemake.output.weights, snakemake.output.layers)
logging.info("%s L=%d: %d seeds, statuses %s", w.experiment, w.depth, len(w.seeds), w.status.tolist())
