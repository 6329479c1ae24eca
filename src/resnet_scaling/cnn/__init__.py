"""Convolutional residual networks (docs/references.md, the convolutional experiment): the
CIFAR-10 ResNet and its trainer, operator norms of convolutions, and the kernels of trained
networks in the paper's roles with their statistics."""
