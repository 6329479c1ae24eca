"""Snakemake adapter of the verdict stage: our exponents and regimes beside the reference values
(Markdown and HTML), how the training of every experiment ended against the affine floor of its
data, and the pathwise limit test of the same networks beside each regime."""

import logging

import pandas as pd

from resnet_scaling.io import write_text
from resnet_scaling.limits.writers import read_pathwise_verdicts
from resnet_scaling.scaling.exponents import primary_rows
from resnet_scaling.scaling.regime_rule import RegimeThresholds
from resnet_scaling.scaling.tables import read_exponents, read_regimes, read_robustness, read_training
from resnet_scaling.training.data import dataset_affine_floor
from resnet_scaling.verdict.render import render_html, render_markdown
from resnet_scaling.verdict.score import score, training_outcome
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
params = snakemake.params
exponents = read_exponents(snakemake.input.exponents, params.experiments)
regimes = read_regimes(snakemake.input.regimes, params.experiments)
robustness = read_robustness(snakemake.input.robustness)
floors = {path: dataset_affine_floor(path) for path in snakemake.input.data}
training = pd.concat([read_training(path, networks) for path, networks in
                      zip(snakemake.input.training, params.networks, strict=True)], ignore_index=True)
primary = primary_rows(regimes)
populations = {r["experiment"]: r["population"] for _, r in primary.iterrows() if isinstance(r.get("population"), str)}
outcome = training_outcome(training, params.epsilons, {exp: floors[params.datasets[exp]] for exp in params.experiments},
                           populations)
pathwise = read_pathwise_verdicts(snakemake.input.pathwise)
scores = score(exponents, regimes, rounding=params.rounding, robustness=robustness,
               thresholds=RegimeThresholds.from_config(params.regime), pathwise=pathwise)
context = (tuple(params.include_status), robustness, outcome, params.non_affine_threshold)
write_text(snakemake.output.markdown, render_markdown(scores, exponents, regimes, *context))
write_text(snakemake.output.html, render_html(scores, exponents, regimes, *context))
logging.info("%d of %d scorecard rows agree; affine floors %s", int(scores["agree"].sum()), len(scores), floors)
