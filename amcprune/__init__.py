"""amcprune: quantized, pruned neural networks for automatic modulation classification."""

__version__ = "0.1.0"
