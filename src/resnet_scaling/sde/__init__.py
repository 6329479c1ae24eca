"""The solver core (docs/maths.md §4, §5): schemes with their orders, one time loop, the
limit equations of the network, laws of weight paths and state-dependent diffusions.

- :mod:`.schemes`, :mod:`.registry`: steps (RK4, Euler, Euler–Maruyama) and their orders;
- :mod:`.loop`: the time loop every solver runs;
- :mod:`.coefficients`: coefficients as functions of t, tabulated, or per step;
- :mod:`.ode`: the neural and linear ODEs (§4(a), (b));
- :mod:`.ito`: the Itô SDE (§4(c)) and its adjoint (§5), pathwise and generative;
- :mod:`.laws`: laws of weight paths; :mod:`.diffusions`: diffusions (§4(d), (e));
- :mod:`.smoothing`: the Epanechnikov smoother of layer sequences (one empty-window rule);
- :mod:`.torchsde_check`: the same SDE through torchsde.
"""

from .coefficients import PerStep, Tabulated
from .diffusions import (
    DiffusionModel,
    MomentMatchedDiffusion,
    RandomSignReluLaw,
    relu_gaussian_moments,
    sample_diffusion,
    solve_mean_field_ode,
)
from .ito import (
    compact_row_cov,
    ito_adjoint_step,
    ito_q,
    ito_step,
    sample_ito_sde,
    solve_ito_adjoint,
    solve_ito_sde,
)
from .laws import GaussianWeightPathLaw, WeightPathLaw, gaussian_increments
from .loop import final, integrate, iterate
from .ode import solve_linear_ode, solve_neural_ode, solve_ode
from .registry import SCHEMES, get_scheme
from .schemes import Scheme, euler_maruyama_step, euler_step, rk4_step
from .tensors import DTYPE
from .torchsde_check import torchsde_ito_solve

__all__ = [
    "DTYPE", "SCHEMES", "DiffusionModel", "GaussianWeightPathLaw", "MomentMatchedDiffusion", "PerStep",
    "RandomSignReluLaw", "Scheme", "Tabulated", "WeightPathLaw", "compact_row_cov", "euler_maruyama_step",
    "euler_step", "final", "gaussian_increments", "get_scheme", "integrate", "ito_adjoint_step", "ito_q", "ito_step",
    "iterate", "relu_gaussian_moments", "rk4_step", "sample_diffusion", "sample_ito_sde", "solve_ito_adjoint",
    "solve_ito_sde", "solve_linear_ode", "solve_mean_field_ode", "solve_neural_ode", "solve_ode", "torchsde_ito_solve",
]
