"""The scaling stage (workflow/rules/scaling.smk): trained weights to exponents and regimes
(docs/maths.md §3); the scorecard that sets them beside the original study's is the verdict
stage's (:mod:`resnet_scaling.verdict`).

Inputs: the training outputs ``results/train/{exp}/depth_{depth}.npz``. Outputs:
``results/scaling/{exp}/`` (statistics, training outcome, paths, decomposition),
``results/exponents.csv``, ``results/regimes.csv`` and ``results/scaling_robustness.csv``;
its figures are drawn by :mod:`..plots.scaling` and :mod:`..plots.regimes`.

- :mod:`.weights`: the layer sequences and weight paths of trained networks (§1, §3);
- :mod:`.statistics`: per-network statistics whose log-log slopes are the exponents (§3);
- :mod:`.exponents`: the log-log fit, the exponents with their intervals, one verdict per
  population of networks (§3);
- :mod:`.regime_rule`: the regime rule with its thresholds, and how firm a verdict is (§3);
- :mod:`.outputs`: the non-affine share of each network's output on the test inputs (§2);
- :mod:`.plateau`: why ReLU networks with a per-layer δ stall on the plateau (the probe of the
  stalled band of docs/results.md, run by hand: ``python -m resnet_scaling.scaling.plateau``);
- :mod:`.robustness`: how much an exponent depends on the choices behind it;
- :mod:`.tables`: checked readers of the tables every later stage builds on.
"""
