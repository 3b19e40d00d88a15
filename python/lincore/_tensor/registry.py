"""The registry the other modules of lincore._tensor add their methods to, and the compiled
view/copy methods saved before those methods replace them.

_methods maps each attribute name to what install() sets on lincore._core.Tensor, in the order
the modules register them (lincore._tensor imports them in that order), which is the order the
class's dict lists them in (and tests/data/make_stubs.py their stubs). A module registers a
function with @_method (a method) or @_property (a read-only property), or by assigning
_methods[name] directly.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import _core

Tensor = _core.Tensor

# The compiled view/copy methods, kept before install() replaces them with the recording versions
# (views.py). Code that must not record, or records its own node, calls these.
_cpp_clone = Tensor.clone
_cpp_contiguous = Tensor.contiguous
_cpp_transpose = Tensor.transpose
_cpp_flatten = Tensor.flatten

_methods: dict[str, Any] = {}


def _method(fn: Callable[..., Any]) -> Callable[..., Any]:
    # Functions named after builtins (sum, max, ...) are defined as tensor_<name> so that they
    # do not shadow the builtins in their module.
    _methods[fn.__name__.removeprefix("tensor_")] = fn
    return fn


def _property(fn: Callable[..., Any]) -> property:
    p = property(fn, doc=fn.__doc__)
    _methods[fn.__name__] = p
    return p
