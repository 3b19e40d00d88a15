"""Reverse-mode autograd: graph nodes named like PyTorch's (AddmmBackward0, ReluBackward0, ...)
and the engine that runs them. Nodes for heavy operations (Linear, activations, whole
Sequential stacks) call the C++ backward kernels; the rest compute on numpy views.

Gradients flow between nodes as numpy arrays; a leaf's .grad is a lincore tensor. Saved values
are released after backward unless retain_graph=True, so a second backward through the same
graph raises PyTorch's error.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Sequence

import numpy as np

from . import _core
from ._creation import wrap_array
from ._dtype import bfloat16
from ._grad_mode import is_grad_enabled, set_grad_enabled_flag

Tensor = _core.Tensor

_FREED = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you "
    "call .backward() or autograd.grad(). Specify retain_graph=True if you need to backward "
    "through the graph a second time or if you need to access saved tensors after calling "
    "backward."
)


# bfloat16 is inference-only in lincore: no op on it is recorded (csrc/nn/linear.cpp's
# kBf16InferenceOnly says the same for the layers).
_BF16 = bfloat16._code
BF16_NO_AUTOGRAD = (
    "bfloat16 tensors are inference-only in lincore: autograd cannot record an operation on "
    "them. Run it under `with lincore.no_grad():` (or lincore.inference_mode()), or call "
    "requires_grad_(False) on the tensors"
)


def as_array(t: Tensor) -> np.ndarray:
    return np.asarray(memoryview(t))


class Node:
    """A step of the recorded graph. `inputs` are the tensors the op read (None for ones that
    need no gradient); `backward_fn(grad) -> grads per input` runs with the saved values."""

    __slots__ = ("_inputs", "_edges", "_backward", "__weakref__")

    def __init__(self, inputs: Sequence[Any], backward_fn: Callable[[np.ndarray], Sequence[Any]]):
        # Edges are resolved when first needed (backward, next_functions), not per recorded op:
        # a tensor's grad_fn never changes once set, so the result is the same.
        self._inputs: Sequence[Any] | None = inputs
        self._edges: list | None = None
        self._backward: Callable[[np.ndarray], Sequence[Any]] | None = backward_fn

    @property
    def _next(self) -> list:
        if self._edges is None:
            self._edges = [edge_of(t) for t in self._inputs or ()]
            self._inputs = None
        return self._edges

    def name(self) -> str:
        return type(self).__name__

    @property
    def next_functions(self) -> tuple:
        return tuple((n, 0) for n in self._next)

    def apply(self, grad: np.ndarray) -> Sequence[Any]:
        if self._backward is None:
            raise RuntimeError(_FREED)
        return self._backward(grad)

    def release(self) -> None:
        self._backward = None

    def __repr__(self) -> str:
        return f"<{self.name()} object at {id(self):#x}>"


class SavedNode(Node):
    """A node whose backward is a method of its class over the values it saved (in one slot),
    instead of a closure made per recorded op: for the hot recorded calls (Linear, a Sequential
    run), where making the closure was a visible part of a batch-1 call."""

    # A subclass's __init__ sets _inputs, _saved, _edges (None) and _backward (None) itself:
    # a super().__init__ call is one more Python frame per recorded call.
    __slots__ = ("_saved",)

    def saved(self) -> tuple:
        """The saved values; PyTorch's error once backward has freed them."""
        if self._saved is None:
            raise RuntimeError(_FREED)
        return self._saved

    def release(self) -> None:
        self._saved = None


_accumulate_lock = threading.Lock()


def _new_accumulate_lock() -> None:
    # A fork while another thread held the lock would leave it held in the child for ever.
    global _accumulate_lock
    _accumulate_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_accumulate_lock)


class AccumulateGrad(Node):
    """The sink of a leaf tensor that requires grad: adds incoming gradients to its .grad."""

    __slots__ = ("variable",)

    def __init__(self, variable: Tensor):
        self.variable = variable
        self._inputs = None
        self._edges = []
        self._backward = None

    def accumulate(self, grad: Any) -> None:
        # Backward passes in several threads may reach one leaf at once (a shared model): the
        # check-then-adopt and the in-place add (numpy drops the GIL for it) must not interleave,
        # or a gradient is lost. One lock for all leaves: it is held for a few microseconds per
        # leaf and backward pass, and uncontended in a single-threaded program.
        with _accumulate_lock:
            self._accumulate(grad)

    def _accumulate(self, grad: Any) -> None:
        v = self.variable
        if (
            v._grad is None
            and isinstance(grad, Tensor)
            and grad._dtype_code == v._dtype_code
            and grad._shape == v._shape
            and grad.is_contiguous()
        ):
            # A fresh tensor from a C++ backward, delivered to this leaf alone: adopt it (its
            # shape and dtype are checked above, which is all the .grad setter checks).
            v._grad = grad
            return
        g = np.asarray(as_array(grad) if isinstance(grad, Tensor) else grad, dtype=v.dtype._np)
        if g.shape != tuple(v._shape):
            g = np.broadcast_to(g, v._shape)
        if v.grad is None:
            v.grad = wrap_array(np.array(g, copy=True))
        else:
            np.asarray(memoryview(v.grad))[...] += g


_node_classes: dict[tuple[str, type], type] = {}


def node_class(name: str, base: type = Node) -> type:
    """The subclass of `base` named `name` (created once), so that grad_fn prints like
    PyTorch's."""
    cls = _node_classes.get((name, base))
    if cls is None:
        cls = type(name, (base,), {"__slots__": ()})
        _node_classes[(name, base)] = cls
    return cls


# The hot checks below read a tensor's typed autograd fields directly (_requires_grad, grad_fn,
# _accumulate: csrc/bindings/record.h): the properties cost several times more, and every
# recorded op runs them per input.


def edge_of(t: Any) -> Node | None:
    """Where a gradient for t goes: its grad_fn, its AccumulateGrad, or nowhere."""
    if not isinstance(t, Tensor):
        return None
    if not t._requires_grad:
        return None
    fn = t.grad_fn
    if fn is not None:
        return fn
    acc = t._accumulate
    if acc is None:
        acc = t._accumulate = AccumulateGrad(t)
    return acc


def needs_grad(*tensors: Any) -> bool:
    """Whether an op on these inputs must be recorded."""
    if not is_grad_enabled():
        return False
    for t in tensors:
        if isinstance(t, Tensor) and t._requires_grad:
            return True
    return False


def record(
    out: Tensor,
    name: str,
    inputs: Sequence[Any],
    backward_fn: Callable[[np.ndarray], Sequence[Any]],
) -> Tensor:
    """Makes `out` the result of a recorded op: out.grad_fn = <name>(inputs, backward_fn)."""
    if out._dtype_code == _BF16 or any(
        isinstance(t, Tensor) and t._dtype_code == _BF16 for t in inputs
    ):
        raise RuntimeError(BF16_NO_AUTOGRAD)
    out._grad_fn = node_class(name)(inputs, backward_fn)
    out._requires_grad = True
    return out


def unbroadcast(grad: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Sums grad over the dimensions that broadcasting added or stretched to reach grad.shape."""
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


def run_backward(root: Tensor, gradient: Any = None, retain_graph: bool | None = None) -> None:
    """root.backward(gradient): accumulates d(root)/d(leaf) into every leaf's .grad."""
    if not root.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    if root._dtype_code == _BF16:  # a bf16 leaf that requires grad: nothing may flow into it
        raise RuntimeError(BF16_NO_AUTOGRAD)
    if gradient is None:
        if root.numel() != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        grad = np.ones(tuple(root._shape), dtype=root.dtype._np)
    else:
        grad = np.asarray(
            as_array(gradient) if isinstance(gradient, Tensor) else gradient, dtype=root.dtype._np
        )
        if grad.shape != tuple(root._shape):
            raise RuntimeError(
                f"Mismatch in shape: grad_output[0] has a shape of {list(grad.shape)} and "
                f"output[0] has a shape of {list(root._shape)}."
            )
    start = edge_of(root)
    assert start is not None
    # Topological order: a node runs once all the gradients flowing into it have arrived.
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(start, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for nxt in node._next:
            if nxt is not None and id(nxt) not in seen:
                stack.append((nxt, False))
    order.reverse()
    pending: dict[int, np.ndarray] = {id(start): grad}
    # The nodes run with grad mode off (what no_grad() does, without its object per call).
    was_enabled = is_grad_enabled()
    set_grad_enabled_flag(False)
    try:
        for node in order:
            g = pending.pop(id(node), None)
            if g is None:
                continue
            if isinstance(node, AccumulateGrad):
                node.accumulate(g)
                continue
            if isinstance(g, Tensor):
                g = as_array(g)
            grads = node.apply(g)
            if not retain_graph:
                node.release()
            for nxt, gi in zip(node._next, grads):
                if nxt is None or gi is None:
                    continue
                # Tensors from the C++ backward stay tensors (a leaf may adopt them as .grad);
                # everything else flows as numpy arrays.
                if isinstance(gi, Tensor) and not isinstance(nxt, AccumulateGrad):
                    gi = as_array(gi)
                prev = pending.get(id(nxt))
                if prev is None:
                    pending[id(nxt)] = gi
                else:
                    pending[id(nxt)] = (as_array(prev) if isinstance(prev, Tensor) else prev) + (
                        as_array(gi) if isinstance(gi, Tensor) else gi
                    )
    finally:
        set_grad_enabled_flag(was_enabled)
