"""lincore.optim: optimizers with torch.optim's names, defaults, update rules and state_dict
format (Optimizer, SGD, Adam, AdamW)."""

from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Adam", "AdamW", "Optimizer", "SGD"]
