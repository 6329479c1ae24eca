"""Snakemake adapter: exponents with seed-bootstrap intervals and the regime of every experiment."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "a")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from resnet_scaling.scaling.exponents import FitSettings, fit_all  # noqa: E402
from resnet_scaling.scaling.regime_rule import RegimeThresholds  # noqa: E402
from resnet_scaling.io import write_csv  # noqa: E402
from resnet_scaling.scaling.tables import read_statistics  # noqa: E402

settings = FitSettings.from_config(
    {"fit": snakemake.params.fit, "bootstrap": snakemake.params.bootstrap, "include_status": snakemake.params.include_status,
     "population": snakemake.params.population}
)
exponents, regimes = fit_all(
    [read_statistics(path, networks) for path, networks in zip(snakemake.input, snakemake.params.networks, strict=True)],
    settings,
    RegimeThresholds.from_config(snakemake.params.regime),
)
write_csv(snakemake.output.exponents, exponents)
write_csv(snakemake.output.regimes, regimes)
for _, r in regimes.iterrows():
    logging.info("%s: %s (support %.2f), exponent %.3f [%.3f, %.3f] %s", r["experiment"], r["regime"],
                 r["support"], r["exponent"], r["exponent_ci_low"], r["exponent_ci_high"], r["note"])
