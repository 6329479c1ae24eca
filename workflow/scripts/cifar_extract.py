"""Snakemake adapter: operator and Frobenius norms of the conv1 (A) and conv2 (δ) kernels of every block."""

import logging

from resnet_scaling.cnn.extract import extract
from resnet_scaling.io import write_csv
from resnet_scaling.job import start_job

start_job(snakemake)
layers, training = extract(snakemake.input[0])
write_csv(snakemake.output.layers, layers)
write_csv(snakemake.output.training, training)
logging.info("%d layer rows, %d networks", len(layers), len(training))
