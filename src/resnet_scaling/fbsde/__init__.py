"""The backpropagation limit: backward equations and forward-backward systems (docs/maths.md §5).

The fbsde stage (workflow/rules/fbsde.smk). Inputs: the ``fbsde`` section of the config, the
trained networks (``results/train/``) and their datasets. Outputs: ``results/fbsde/`` (the
convergence study on synthetic weights with its slopes, and per experiment the comparison
with the backward limit, its slopes, adjoint paths and gradient field).

The network's adjoint ``p_k = ∂ℓ/∂h_k`` and per-layer gradients come from the engine's
explicit discrete adjoint; their limits ``P_t`` solve the adjoint of the forward limit:
RK4 backward on the grid of the forward RK4 solution (ODE regimes), or the exact discrete
adjoint of the forward Euler–Maruyama scheme (diffusive regime).

- :mod:`.backprop`: containers and the network's backprop;
- :mod:`.ode`, :mod:`.sde`: the limit systems; :mod:`.compare`: errors and roughness;
- :mod:`.synthetic`: the convergence study on synthetic weights; :mod:`.trained`: trained
  networks against the limits of their smoothed weights;
- :mod:`.paths`, :mod:`.writers`: tables for the figures and the rule outputs.
"""

from .backprop import LimitBackprop, NetworkBackprop, network_backprop
from .compare import compare, roughness, slope_columns
from .ode import half_grid, ode_backprop, solve_adjoint_ode
from .sde import solve_fbsde
from .synthetic import (
    ROUGHNESS,
    ConvergenceResult,
    check_cases,
    convergence_study,
    fit_slopes,
    limit_rate,
    run_case,
)
from .trained import TRAINED_LIMITS, TrainedComparison, compare_trained, trained_limit, trained_slopes, trained_study
from .writers import write_adjoint_convergence, write_trained

__all__ = [
    "ROUGHNESS", "TRAINED_LIMITS", "ConvergenceResult", "LimitBackprop", "NetworkBackprop", "TrainedComparison",
    "check_cases", "compare", "compare_trained", "convergence_study", "fit_slopes", "half_grid", "limit_rate",
    "network_backprop", "ode_backprop", "roughness", "run_case", "slope_columns", "solve_adjoint_ode", "solve_fbsde",
    "trained_limit", "trained_slopes", "trained_study", "write_adjoint_convergence", "write_trained",
]
