"""The reference values of the original study, as data: what the scorecard compares with.

Every reference has a *kind*: a ``measurement`` the paper reports, a ``plotting-constant``
written into the released plotting code, a ``figure-reading`` of a shipped figure, or a
``claim`` of the paper's text tested under a training choice this workflow names. The
β = 0.2, 0.5 and 0.4 of Cohen, Cont, Rossier & Xu (ICML 2021) for fully connected networks
are plotting constants: the ``factor=`` of an assumed L^f rescaling in the hypothesis
figures of ``plots_fully_connected.py`` in ``instadeepai/scaling-resnets``, not fitted
values. A row against a plotting constant is therefore *consistent* or *inconsistent* with
it, never a disagreement with a measurement.

This module holds data only; :mod:`.score` scores against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CODE = "instadeepai/scaling-resnets"
PLOTS = f"{CODE}, plots_fully_connected.py"
#: Kinds of reference value, and the words of a verdict against each.
VERDICT_WORDS = {
    "measurement": ("agree", "disagree"),
    "plotting-constant": ("consistent with the plotting constant", "differs from the plotting constant"),
    "figure-reading": ("agrees with the figure reading", "differs from the figure reading"),
    "claim": ("the claim holds under this training choice", "the claim does not hold under this training choice"),
}


@dataclass(frozen=True)
class Reference:
    """One published value: an exponent (``value``) or a regime reading (``regime``)."""

    key: str
    activation: str
    delta: str
    dataset_kinds: tuple[str, ...]
    description: str
    provenance: str
    kind: str = "measurement"
    quantity: str = ""
    statistic: str = ""
    value: float = math.nan
    regime: str = ""


REFERENCES: tuple[Reference, ...] = (
    Reference(
        key="tanh-shared-synthetic-beta",
        activation="tanh", delta="shared", dataset_kinds=("synthetic",),
        description="β of A (max norm), tanh, shared δ, synthetic data",
        quantity="A", statistic="max_norm", value=0.2, kind="plotting-constant",
        provenance=f"{PLOTS}, hypothesis_tanh_shared_delta (line 81): run_regression(..., factor=0.2)",
    ),
    Reference(
        key="relu-multi-synthetic-beta",
        activation="relu", delta="multi", dataset_kinds=("synthetic",),
        description="β of |δ_k|A_k (max norm), ReLU, per-layer δ, synthetic data",
        quantity="M_abs", statistic="max_norm", value=0.5, kind="plotting-constant",
        provenance=f"{PLOTS}, hypothesis_relu_delta_scalar: regression_delta_times_AorB(path_toy, ..., factor=0.5)",
    ),
    Reference(
        key="relu-multi-mnist-beta",
        activation="relu", delta="multi", dataset_kinds=("mnist", "digits"),
        description="β of |δ_k|A_k (max norm), ReLU, per-layer δ, MNIST",
        quantity="M_abs", statistic="max_norm", value=0.4, kind="plotting-constant",
        provenance=f"{PLOTS}, hypothesis_relu_delta_scalar: regression_delta_times_AorB(path_mnist, ..., factor=0.4)",
    ),
    Reference(
        key="tanh-shared-regime",
        activation="tanh", delta="shared", dataset_kinds=("synthetic", "mnist", "digits"),
        description="regime, tanh, shared δ: smooth weights (ODE-type)",
        regime="ODE", kind="figure-reading",
        provenance="Cohen et al. (ICML 2021), abstract (alternative ODE limits for smooth activations); "
        f"{PLOTS}, scaling_tanh_shared_delta and hypothesis_tanh_shared_delta (the code that draws the tanh / "
        "shared δ figures; the figures themselves are not released: the repository's figs/ holds the CIFAR-10 "
        "images only)",
    ),
    Reference(
        key="relu-multi-regime",
        activation="relu", delta="multi", dataset_kinds=("synthetic", "mnist", "digits"),
        description="regime, ReLU, per-layer δ: rough, Brownian-like weights (SDE-type)",
        regime="SDE", kind="figure-reading",
        provenance="Cohen et al. (ICML 2021), abstract (SDE limits); "
        f"{CODE}, plots_fully_connected.py, individual_delta_relu_scaling_delta (the rough δ_k at L = 9100)",
    ),
    Reference(
        key="tanh-diffusive-regime",
        activation="tanh", delta="fixed", dataset_kinds=("synthetic", "mnist", "digits"),
        description="regime, SDE-type shape: tanh, δ = L^-1/2 fixed, O(1) i.i.d. initial layers, Adam "
                    "(the training choice under which the phase diagram finds it)",
        regime="SDE", kind="claim",
        provenance="Cohen et al. (ICML 2021), abstract (SDE limits of trained networks); no fully connected run of "
        f"{CODE} trains this choice: it is the SDE cell of the training-side phase diagram (regimes study)",
    ),
)

CIFAR_FIGS = f"{CODE}, figs/cifar-{{}}-scaling-max_norm.png"
CIFAR_HYP = f"{CODE}, figs/cifar-{{}}-hyp-pink_sssq-orange_beta_increment.png"
#: Readings of the shipped figures of the convolutional (CIFAR-10) experiment: conv1 kernels
#: as A_k, conv2 kernels as δ_k, operator norms; the regime stage of ``conv_experiments``.
CONV_REFERENCES: tuple[Reference, ...] = (
    *(
        Reference(
            key=f"cifar-{q}-{stat}", activation="relu", delta="conv", dataset_kinds=("cifar10",),
            description=f"CIFAR-10 ResNet, {what} of {conv} kernels ({words})",
            quantity=q, statistic=stat, value=value, kind="figure-reading",
            provenance=(CIFAR_FIGS if stat == "max_norm" else CIFAR_HYP).format(name),
        )
        for q, conv, name in (("A", "conv1", "A"), ("delta", "conv2", "delta"))
        for stat, what, words, value in (
            ("max_norm", "β" if q == "A" else "α", "max operator norm", 0.0 if q == "A" else 0.1),
            ("root_sum_squares", "exponent", "root sum of squares; slope 0.0", 0.0),
            ("max_increment", "exponent", "max increment; slope 0.0", 0.0),
        )
    ),
    Reference(
        key="cifar-regime", activation="relu", delta="conv", dataset_kinds=("cifar10",),
        description="regime, CIFAR-10 ResNet: neither an ODE nor an SDE", regime="neither", kind="figure-reading",
        provenance=CIFAR_HYP.format("A") + " and " + CIFAR_HYP.format("delta").removeprefix(f"{CODE}, "),
    ),
)

#: Values of the convolutional (CIFAR-10) experiment, scored by its own stage (``conv_experiments``).
NOT_RUN = (
    ("CIFAR-10 ResNet, β of conv1 kernels (max operator norm)", "0.0", f"{CODE}, figs/cifar-A-scaling-max_norm.png"),
    ("CIFAR-10 ResNet, α of conv2 kernels (max operator norm)", "0.1", f"{CODE}, figs/cifar-delta-scaling-max_norm.png"),
    ("CIFAR-10 ResNet, regime", "neither",
     f"{CODE}, figs/cifar-A-hyp-pink_sssq-orange_beta_increment.png (increment and root-sum-of-squares slopes 0.0)"),
)


#: Said of a reference measured on MNIST and scored on the offline digits.
STAND_IN = "; scored on the offline digits, which stand in for MNIST"


#: What the data of an experiment are, where they are not what the reference was measured on.
DATA_WORDS = {"digits": "digits (the 1,024 scikit-learn 8×8 digits standing in for MNIST)"}
