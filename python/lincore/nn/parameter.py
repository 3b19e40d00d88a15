"""nn.Parameter: a tensor that a Module registers as one of its learnable parameters."""

from __future__ import annotations

from typing import Any

from .. import _core
from .._creation import empty


class Parameter(_core.Tensor):
    """A Tensor that is a module parameter; shares memory with the tensor it is made from."""

    _prints_as_tensor = True  # "tensor(...)" in its repr, as torch; subclasses print their name

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = empty(0)
        elif not isinstance(data, _core.Tensor):
            raise TypeError(
                f"Parameter(): expected a lincore.Tensor as data, but got {type(data).__name__}"
            )
        super().__init__(data)
        self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (Parameter, (_core.Tensor(self).clone(), self.requires_grad))
