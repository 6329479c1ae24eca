"""Snakemake adapter: operator and Frobenius norms of the conv1 (A) and conv2 (δ) kernels of every block."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.cnn.extract import extract  # noqa: E402
from resnet_scaling.io import write_csv  # noqa: E402

torch.set_num_threads(snakemake.threads)
layers, training = extract(snakemake.input[0])
write_csv(snakemake.output.layers, layers)
write_csv(snakemake.output.training, training)
logging.info("%d layer rows, %d networks", len(layers), len(training))
