"""The Python half of lincore.Tensor: properties, autograd attributes, numpy interop, views,
indexing, arithmetic, the matrix product, reductions and printing, installed on the compiled
class (lincore._core.Tensor).

Why installed rather than subclassed: tensors made in C++ (every kernel's output) are instances
of the compiled class, and wrapping each in a Python subclass would cost a second object per
result. Storage, views, copies and the kernels are C++; the elementwise maths and reductions
here run on zero-copy numpy views of the same memory and wrap their results without copying.

One module per concern. Importing one registers its methods (registry.py); install() then sets
every registered method on the class, once, at `import lincore` (lincore/__init__.py, _install).
The modules are imported below in the order they register, which is the order the class's dict
lists the methods (and tests/data/make_stubs.py writes their stubs in _core.pyi):

    registry     the method registry; the compiled view/copy methods, saved before install()
    properties   dtype, shape, ndim, T, device, size, stride, ...; _wrap_dim
    grad         requires_grad, grad, grad_fn, is_leaf, backward, detach, data; _check_inplace
    conversion   numpy, __array__, item, tolist, to, float, double, long, bool
    views        view, reshape, flatten, transpose, clone, contiguous
    inplace      fill_, zero_, copy_, uniform_, normal_
    printing     repr and format
    indexing     t[key] (with its backward) and t[key] = value
    protocols    len, iter, bool, float, int, index, hash
    arithmetic   + - * / ** (reflected, in place), comparisons, add/sub/mul/div, -, +, abs
    linalg       @ and lincore.matmul
    reductions   sum, mean, max, min, argmax, argmin
    activations  sigmoid, tanh, softmax, log_softmax (lincore.nn.functional's)
"""

from __future__ import annotations

from .._creation import copy_array
from . import registry  # first: it saves the compiled view/copy methods

# The concern modules, in the order they register their methods (importing one registers them).
from . import properties, grad, conversion, views, inplace, printing  # noqa: F401
from . import indexing, protocols, arithmetic, linalg, reductions, activations  # noqa: F401
from .linalg import matmul


def install() -> None:
    """Attaches every registered method to lincore._core.Tensor (once, at import)."""
    for name, value in registry._methods.items():
        setattr(registry.Tensor, name, value)


__all__ = ["install", "matmul", "copy_array"]
