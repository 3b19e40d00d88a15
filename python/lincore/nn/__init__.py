"""lincore.nn: layers and containers with torch.nn's names and behaviour."""

from . import functional
from .activation import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from .container import Sequential
from .flatten import Flatten
from .linear import Identity, Linear
from .module import Module
from .parameter import Parameter

__all__ = [
    "GELU", "Flatten", "Identity", "LeakyReLU", "Linear", "Module", "Parameter", "ReLU",
    "Sequential", "Sigmoid", "Tanh", "functional",
]
