"""nn.Softmax and nn.LogSoftmax: along one dim, in the C++ core (csrc/nn/softmax.h). With a dim
they run inside a compiled Sequential run; with dim=None (PyTorch's legacy implicit choice, which
depends on the input's rank and warns) they are called from Python like a user's module."""

from __future__ import annotations

from typing import Any

from .. import _core
from .functional import LOG_SOFTMAX_NODE, SOFTMAX_NODE, log_softmax, softmax
from .module import Module

# F.softmax's _stacklevel that points the warning at the module's caller, past forward and
# Module.__call__ (PyTorch's value too).
_MODULE_STACKLEVEL = 5


class _Softmax(Module):
    _log = False

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if "dim" not in self.__dict__:  # pickles of PyTorch's old modules lack it
            object.__setattr__(self, "dim", None)

    def forward(self, input: Any) -> Any:
        fn = log_softmax if self._log else softmax
        return fn(input, self.dim, _stacklevel=_MODULE_STACKLEVEL)

    # A property, so that a Softmax without a dim has no _step: the dim it takes then depends
    # on each input, and a Sequential calls it as a Python module.
    @property
    def _step(self) -> Any:
        if self.dim is None:
            raise AttributeError("_step")
        dim, log = int(self.dim), self._log
        return lambda name: _core.Step.softmax(name, dim, log)

    def _plan_node(self) -> str:
        return LOG_SOFTMAX_NODE if self._log else SOFTMAX_NODE

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_Softmax):
    """exp(x) / sum(exp(x)) along dim, so that each slice along dim sums to 1."""


class LogSoftmax(_Softmax):
    """log(softmax(x)) along dim, computed as x - logsumexp(x) (stable)."""

    _log = True
