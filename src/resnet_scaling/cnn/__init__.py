"""Convolutional residual networks: operator norms of convolutions (docs/references.md, the
convolutional experiment)."""
