"""nn.Dropout: in training mode zeroes elements with probability p (the mask from lincore's
generator: see lincore.manual_seed) and scales the rest by 1 / (1 - p); in eval mode the
identity. In a compiled Sequential run it is a dropout step in training mode and an identity
step in eval mode, so train() and eval() recompile the runs that hold it."""

from __future__ import annotations

from typing import Any

from .. import _core
from .functional import DROPOUT_NODE, check_dropout_p, dropout
from .module import Module


class Dropout(Module):
    _step_depends_on_mode = True

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        check_dropout_p(p)
        super().__init__()
        self.p = p
        self.inplace = inplace

    def forward(self, input: Any) -> Any:
        return dropout(input, self.p, self.training, self.inplace)

    def _active(self) -> bool:
        return bool(self.training) and self.p != 0

    def _step(self, name: str) -> Any:
        # In a run the result is a new tensor even when inplace: the same values, and the
        # run's input stays untouched.
        if self._active():
            return _core.Step.dropout(name, float(self.p))
        return _core.Step.identity(name)

    def _plan_node(self) -> str | None:
        return DROPOUT_NODE if self._active() else None

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
