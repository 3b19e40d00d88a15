"""nn.Sequential. Its forward hands runs of built-in layers (Linear, activations, Flatten,
Identity, Softmax, LogSoftmax, LayerNorm, Dropout) to the C++ core as one call each; any other
module (a user's Python Module) is called in between. The compiled plan is cached and rebuilt
when any member changes."""

from __future__ import annotations

import numbers
from collections import OrderedDict
from typing import Any, Iterator

from .. import _core
from .._autograd import SavedNode, node_class
from .._creation import as_tensor, wrap_array
from .activation import _Activation
from .functional import _ACTIVATION_NODES
from .linear import Linear
from .module import Module, _last_token
from .normalization import LayerNorm

_Tensor = _core.Tensor


class StackBackward(SavedNode):
    """The node of a compiled run of layers, recorded as one: its backward is one C++ call over
    the whole run. Subclassed per PyTorch name (that of the run's last op)."""

    __slots__ = ()

    def __init__(self, plan: Any, x: Any, params: list, tape: Any, need: list) -> None:
        self._inputs = [x, *params]
        self._saved = (plan, x, tape, need)
        self._edges = None
        self._backward = None

    def apply(self, grad: Any) -> tuple:
        plan, x, tape, need = self.saved()
        dx, grads = plan.backward(tape, wrap_array(grad), x.requires_grad, need)
        return (dx, *[t for pair in grads for t in pair])


def _plan_node(module: Any) -> str | None:
    """The node name of a softmax, LayerNorm or Dropout step's output (None for a step that
    computes nothing, as a Dropout in eval mode)."""
    node = getattr(module, "_plan_node", None)
    return node() if node is not None else None


def _compile(run: list) -> Any:
    """A C++ plan for a run of built-in layers ((name, module) pairs), with what autograd needs
    to know about it: the Linear parameters in order and the node class for the run's output,
    per output dims 1, 2, 3+ (PyTorch names it after the run's last op)."""
    layers = [module for _, module in run]
    params = [p for m in layers if isinstance(m, (Linear, LayerNorm)) for p in (m.weight, m.bias)]
    compute = [m for m in layers if isinstance(m, (Linear, _Activation)) or _plan_node(m)]
    last = compute[-1] if compute else None
    if isinstance(last, _Activation):
        names = [_ACTIVATION_NODES[last._code]] * 3
    elif isinstance(last, Linear):
        names = _core.LINEAR_NODE_NAMES[last.bias is not None]
    elif last is not None:
        names = [_plan_node(last)] * 3
    else:
        names = ["ViewBackward0"] * 3
    nodes = tuple(node_class(name, StackBackward) for name in names)
    return _core.SequentialPlan([module._step(name) for name, module in run], params, nodes)


class _CachedPlan:
    """A Sequential's compiled plan: the members' tokens it was built for (key), its segments,
    the change token seen when it was last checked, and the plan itself when the whole stack is
    one compiled run (`only`, the common case that forward takes straight)."""

    __slots__ = ("key", "segments", "token", "only")

    def __init__(self, key: tuple, segments: list, token: int, only: Any) -> None:
        self.key, self.segments, self.token, self.only = key, segments, token, only


class Sequential(Module):
    """Sequential(*modules) or Sequential(OrderedDict(name=module)): applies them in order."""

    def __init__(self, *args: Any) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for key, module in args[0].items():
                self.add_module(key, module)
        else:
            for idx, module in enumerate(args):
                self.add_module(str(idx), module)

    # -- container protocol ------------------------------------------------------------------
    def _index(self, idx: Any) -> int:
        if isinstance(idx, bool) or not isinstance(idx, numbers.Integral):
            raise TypeError(
                f"Sequential indices must be integers or slices, not {type(idx).__name__}"
            )
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range")
        return int(idx) % n

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[self._index(idx)]

    def __setitem__(self, idx: Any, module: Module) -> None:
        key = list(self._modules.keys())[self._index(idx)]
        self.add_module(key, module)

    def __delitem__(self, idx: Any) -> None:
        keys = list(self._modules.keys())
        doomed = keys[idx] if isinstance(idx, slice) else [keys[self._index(idx)]]
        # PyTorch renumbers the remaining modules so that indices stay 0..n-1.
        self._renumber([m for k, m in self._modules.items() if k not in doomed])

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Any) -> Sequential:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise AssertionError(f"module should be of type: {Module}")
        n = len(self)
        if not -n <= index <= n:
            raise IndexError(f"Index out of range: {index}")
        index = index % (n + 1) if index < 0 else index
        items = list(self._modules.values())
        items.insert(index, module)
        self._renumber(items)
        return self

    def _renumber(self, modules: list) -> None:
        for key in list(self._modules):
            delattr(self, key)
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    # -- forward -----------------------------------------------------------------------------
    def _plan_key(self) -> tuple:
        return (self._plan_token,) + tuple(m._plan_token for m in self._modules.values())

    def _build_plan(self) -> list:
        """Segments: a compiled C++ plan for each run of built-in layers, or a Python module."""
        segments: list = []
        run: list = []
        for key, module in self._modules.items():
            # Only lincore's own layer classes run natively: a user's subclass of Linear may
            # override forward, and a nested Sequential runs its own plan; both are called like
            # any other Python module.
            if type(module).__module__.startswith("lincore.nn.") and hasattr(module, "_step"):
                run.append((f"{key}: {module!r}", module))
                continue
            if run:
                segments.append(_compile(run))
                run = []
            segments.append(module)
        if run:
            segments.append(_compile(run))
        return segments

    def forward(self, input: Any) -> Any:
        # A small model's call is a few microseconds, and each Python frame or lookup is a tenth
        # of one: the common case, a stack that is one native run, is this plan check and one
        # call of the plan (which keeps to the load rule itself).
        cached = self.__dict__.get("_plan")
        if cached is None or cached.token != _last_token[0]:
            cached = self._current_plan()
        only = cached.only
        if only is not None:
            return only(input if isinstance(input, _Tensor) else as_tensor(input))
        # Several segments: one set of weights for the whole stack (csrc/bindings/load_guard.h).
        return _core.consistent(lambda: self._run_segments(input))

    def _current_plan(self) -> _CachedPlan:
        """The cached plan, rebuilt when a member changed, and its token refreshed when only
        some other module did."""
        # The token is read before the key: a change made while the key is read then shows as a
        # newer token on the next call, never as a stale plan filed under the current token.
        token = _last_token[0]
        key = self._plan_key()
        cached = self.__dict__.get("_plan")
        if cached is None or cached.key != key:
            segments = self._build_plan()
            only = (
                segments[0]
                if len(segments) == 1 and isinstance(segments[0], _core.SequentialPlan)
                else None
            )
            cached = _CachedPlan(key, segments, token, only)
        else:
            cached = _CachedPlan(key, cached.segments, token, cached.only)
        object.__setattr__(self, "_plan", cached)
        return cached

    def _run_segments(self, input: Any) -> Any:
        x = input
        for segment in self._current_plan().segments:
            if isinstance(segment, _core.SequentialPlan):
                x = segment(x if isinstance(x, _Tensor) else as_tensor(x))
            else:
                x = segment(x)
        return x
