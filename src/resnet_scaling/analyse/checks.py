"""Weights with nothing to fit: networks whose blocks are all zero or all alike
(:func:`degenerate`), and weights consistent with i.i.d. draws from a known initialisation law,
as if never trained (:func:`initialisation_law`)."""

from __future__ import annotations

import math

import numpy as np


def degenerate(A: np.ndarray, b: np.ndarray, delta: np.ndarray) -> list[str | None]:
    """Per network (axis 0): ``"all-zero"`` when every effective weight δ_k A_k is zero,
    ``"constant"`` when every block has the same A_k, b_k and δ_k (at least two blocks), else
    None. Such a network has no scaling to measure: its norms (all-zero) or its increments
    (constant) are 0, whose logarithm no fit can take."""
    out: list[str | None] = []
    for s in range(A.shape[0]):
        if not np.any(A[s]) or not np.any(delta[s]):
            out.append("all-zero")
        elif A.shape[1] > 1 and all(np.array_equal(X[s], np.broadcast_to(X[s, :1], X[s].shape))
                                    for X in (A, b, delta)):
            out.append("constant")
        else:
            out.append(None)
    return out


DEGENERATE_TEXT = {
    "all-zero": "every weight of the mapped blocks is zero (an all-zero network: no norm to fit)",
    "constant": "every block has the same weights (a constant network: no increments to fit)",
}


#: Initialisation laws that a network's weights are compared with (:func:`initialisation_law`):
#: name, shape of the law (normal or uniform) and variance as a function of fan-in f and fan-out o.
INIT_LAWS = (
    ("PyTorch's default init U(±1/√fan_in) of nn.Linear/nn.Conv2d", "uniform", lambda f, o: 1 / (3 * f)),
    ("Xavier/Glorot uniform U(±√(6/(fan_in + fan_out)))", "uniform", lambda f, o: 2 / (f + o)),
    ("Xavier/Glorot normal N(0, 2/(fan_in + fan_out))", "normal", lambda f, o: 2 / (f + o)),
    ("LeCun normal N(0, 1/fan_in)", "normal", lambda f, o: 1 / f),
    ("He/Kaiming normal N(0, 2/fan_in)", "normal", lambda f, o: 2 / f),
    ("He/Kaiming uniform U(±√(6/fan_in))", "uniform", lambda f, o: 2 / f),
    ("this workflow's xavier init N(0, 1/fan_in²)", "normal", lambda f, o: 1 / f**2),
    ("the standard normal N(0, 1)", "normal", lambda f, o: 1.0),
)
#: Fewer entries than this per network (all blocks together) cannot tell a law from training.
UNTRAINED_MIN_ENTRIES = 500
#: How many standard errors each test of :func:`initialisation_law` allows.
UNTRAINED_Z = 4.0
#: The criterion in words, for the warnings and the report.
UNTRAINED_CRITERION = (
    f"the entries of all its blocks together (at least {UNTRAINED_MIN_ENTRIES}) are consistent with i.i.d. "
    "draws from a known initialisation law at their fan-in: mean 0, mean square equal to the law's "
    "variance, the law's shape (every entry within the bound of a uniform law; the kurtosis 3 of a normal "
    f"one) and no correlation between consecutive blocks, each within {UNTRAINED_Z:g} standard errors")


def initialisation_law(X: np.ndarray) -> str | None:
    """The name of the first law of :data:`INIT_LAWS` whose i.i.d. draws the weights X (L, out,
    in[, k, k]) of one network are consistent with (:data:`UNTRAINED_CRITERION`), else None.

    With n entries x and the law's variance v, the tests are |mean x| ≤ z √(v/n),
    |mean x²/v − 1| ≤ z √(c/n) (c = Var x²/v² = 2 for a normal law, 4/5 for a uniform one),
    max |x| ≤ √(3v) (uniform) or |mean x⁴/(mean x²)² − 3| ≤ z √(24/n) (normal), and the
    correlation Σ_k ⟨X_k, X_{k+1}⟩ / (Σ_k ‖X_k‖² Σ_k ‖X_{k+1}‖²)^{1/2} of consecutive blocks
    within z / √(n − n/L), with z = :data:`UNTRAINED_Z`. Trained weights leave a law in
    their variance or shape, and weights smooth in depth are correlated between blocks.
    """
    x = X.reshape(-1)
    n = x.size
    if n < UNTRAINED_MIN_ENTRIES or X.ndim < 3 or not np.isfinite(x).all():
        return None
    fan_in, fan_out = int(np.prod(X.shape[2:])), int(X.shape[1] * np.prod(X.shape[3:]))
    z = UNTRAINED_Z
    m2 = float(np.mean(x * x))
    if m2 == 0:
        return None
    m4 = float(np.mean(x**4))
    if X.shape[0] > 1:
        flat = X.reshape(X.shape[0], -1)
        a, c = flat[:-1].reshape(-1), flat[1:].reshape(-1)
        correlation = abs(float(a @ c)) / math.sqrt(float(a @ a) * float(c @ c))
        if correlation > z / math.sqrt(a.size):
            return None
    for name, shape, variance in INIT_LAWS:
        v = variance(fan_in, fan_out)
        if abs(float(np.mean(x))) > z * math.sqrt(v / n):
            continue
        if abs(m2 / v - 1) > z * math.sqrt((2.0 if shape == "normal" else 0.8) / n):
            continue
        if shape == "uniform" and float(np.abs(x).max()) > math.sqrt(3 * v) * (1 + 1e-6):
            continue
        if shape == "normal" and abs(m4 / m2**2 - 3) > z * math.sqrt(24 / n):
            continue
        return f"{name} at fan-in {fan_in}"
    return None
