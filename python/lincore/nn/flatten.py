"""nn.Flatten: merges the dims start_dim..end_dim into one (a view when strides allow)."""

from __future__ import annotations

from typing import Any

from .. import _core
from .._creation import as_tensor
from .module import Module


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Any) -> Any:
        x = input if isinstance(input, _core.Tensor) else as_tensor(input)
        return x.flatten(self.start_dim, self.end_dim)

    def _step(self, name: str) -> Any:
        return _core.Step.flatten(name, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
