"""Limits of the hidden state (docs/maths.md §4, rates in §7): networks on synthetic weights
against their known limits, and limit equations fitted to trained networks.

The limits stage (workflow/rules/limits.smk). Inputs: the ``limits`` section of the config,
the trained networks (``results/train/``), their datasets and the regimes and exponents of
the scaling stage. Outputs: ``results/limits/`` (the convergence study with its fitted rates
and note, and per experiment the fitted coefficients and the pathwise and generative
comparisons).

- :mod:`.network`: inputs and the hidden states of the discrete network;
- :mod:`.synthetic`: synthetic weight paths with known limits;
- :mod:`.convergence`: the convergence study and its predicted rates;
- :mod:`.coefficients`: kernel estimates of drift and covariance of trained weights;
- :mod:`.choice`: which limit an experiment gets; :mod:`.pathwise`: limits driven by the
  network's own weights; :mod:`.trained`: the fits of trained networks;
- :mod:`.note`, :mod:`.writers`: the note and the rule outputs.

The solvers are in :mod:`resnet_scaling.sde`.
"""

from .coefficients import CoefficientEstimate, KernelWeightPathLaw, coefficient_agreement, estimate_coefficients
from .convergence import (
    RATE_DIFFUSIVE,
    RATE_NEURAL_ODE,
    convergence_fits,
    convergence_table,
    diffusive_convergence,
    fit_min_depth,
    generic_convergence,
    ode_convergence,
    predicted_slope,
    rate_linear_ode,
)
from .network import network_outputs, network_states, unit_inputs
from .note import limits_note
from .pathwise import PathwiseCoefficients, block_edges, pathwise_coefficients
from .choice import LIMITS, choose_limit, estimate_beta, fit_depths, normalise_regime, read_beta, read_population, read_regime
from .synthetic import (
    CASES,
    SYNTHETIC_DEFAULTS,
    SmoothPath,
    WeightPaths,
    block_sums,
    diffusive_law,
    fine_increment_chunks,
    synthetic_weight_paths,
)
from .trained import PATHWISE_COLUMNS, TrainedFit, fit_trained, fit_trained_depth, summarise_fit
from .writers import read_summary, write_fit, write_limit_convergence, write_note

__all__ = [
    "CASES", "LIMITS", "PATHWISE_COLUMNS", "RATE_DIFFUSIVE", "RATE_NEURAL_ODE", "SYNTHETIC_DEFAULTS",
    "CoefficientEstimate", "KernelWeightPathLaw", "SmoothPath", "TrainedFit", "WeightPaths", "block_edges",
    "block_sums", "choose_limit", "coefficient_agreement", "convergence_fits", "convergence_table",
    "diffusive_convergence", "diffusive_law", "estimate_beta", "estimate_coefficients", "fine_increment_chunks", "fit_depths",
    "fit_min_depth", "fit_trained", "fit_trained_depth", "generic_convergence", "limits_note", "network_outputs", "network_states",
    "normalise_regime", "ode_convergence", "pathwise_coefficients", "PathwiseCoefficients", "predicted_slope", "rate_linear_ode", "read_beta",
    "read_population", "read_regime", "read_summary", "summarise_fit", "synthetic_weight_paths", "unit_inputs", "write_fit", "write_limit_convergence",
    "write_note",
]
