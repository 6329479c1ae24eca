"""Convolutional residual networks (docs/references.md, the convolutional experiment): the
CIFAR-10 ResNet and its trainer, operator norms of convolutions, and the kernels of trained
networks in the paper's roles with their statistics.

The CIFAR-10 stage (workflow/rules/cifar.smk, opt-in through ``conv_experiments``). Inputs:
the config's ``conv_experiments`` and the CIFAR-10 files (:mod:`..training.data`). Outputs:
``results/cifar/`` (trained networks, per-layer kernel norms, statistics, and the exponents,
regimes and scorecard of docs/maths.md §3, fitted by :mod:`..scaling`).
"""
