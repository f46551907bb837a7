"""homlearn: microstructure unit-cell simulations at scale and neural surrogates of their homogenized response."""

__version__ = "0.1.0"
