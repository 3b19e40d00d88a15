"""Pickling for lincore.Tensor (installed on the compiled class at import): a tensor pickles as
(_rebuild_tensor, (safetensors bytes,)), so its values travel in the same safe, validated format
as lincore.save, and copy.copy / copy.deepcopy give independent copies the same way. A Python
subclass of Tensor comes back as that subclass, with its instance attributes (as in PyTorch).

Modules pickle through Module.__getstate__ / __setstate__ (nn/module.py) and Parameters through
Parameter.__reduce_ex__, both of which end up here for their tensors. Unpickling untrusted data
is unsafe whatever the tensors are made of: use lincore.load for weights from elsewhere.
"""

from __future__ import annotations

from typing import Any

from . import _core
from .serialization import _arrays, from_bytes, metadata_of, to_bytes

Tensor = _core.Tensor

_REQUIRES_GRAD = "lincore.requires_grad"


def _reduce_ex(self: Tensor, protocol: Any) -> tuple:
    # The view's values only (in C order), not the storage it may share: an unpickled tensor
    # owns its memory, as after clone().
    metadata = {_REQUIRES_GRAD: "true"} if self.requires_grad else None
    data = to_bytes(_arrays({"data": self}), metadata)
    cls = type(self)
    if cls is Tensor:
        return (_rebuild_tensor, (data,))
    # A Python subclass comes back as itself with its own attributes, as torch.Tensor's do; the
    # autograd state is not among them (requires_grad travels in the metadata, a graph and a
    # gradient are never pickled).
    state = dict(self.__dict__)
    return (_rebuild_subclass, (cls, data), state or None)


def _rebuild_tensor(data: bytes) -> Tensor:
    tensors = from_bytes(data, "<pickled lincore.Tensor>")
    if list(tensors) != ["data"]:
        raise ValueError(
            f"pickled lincore.Tensor: expected one tensor named 'data', found {list(tensors)}"
        )
    out = tensors["data"]
    if metadata_of(data).get(_REQUIRES_GRAD) == "true":
        out.requires_grad_(True)
    return out


def _rebuild_subclass(cls: type, data: bytes) -> Tensor:
    plain = _rebuild_tensor(data)
    # The compiled constructor, not cls.__init__, whose signature is the subclass's own.
    out = Tensor.__new__(cls)
    Tensor.__init__(out, plain)
    out.requires_grad_(plain.requires_grad)
    return out


def install() -> None:
    """Attaches __reduce_ex__ to lincore._core.Tensor (once, at import)."""
    Tensor.__reduce_ex__ = _reduce_ex  # type: ignore[method-assign, assignment]


__all__ = ["install"]
