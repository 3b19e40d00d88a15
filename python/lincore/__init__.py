"""lincore: a compiled C++ engine for dense Linear layers, with PyTorch's Python API.

import lincore
import lincore.nn as nn
model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
y = model(lincore.randn(16, 8))
"""

from . import _core, _interop, _pickle, _tensor, nn, optim
from ._core import cpu_capability, get_num_threads, initial_seed, manual_seed, set_num_threads
from ._core import supported_cpu_capabilities
from ._core import Tensor
from ._creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    from_numpy,
    full,
    full_like,
    ones,
    ones_like,
    rand,
    rand_like,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from ._dropin import optimize, optimize_report, restore
from ._functions import (
    add,
    div,
    flatten,
    log_softmax,
    mean,
    mul,
    reshape,
    sigmoid,
    softmax,
    sub,
    sum,
    tanh,
    transpose,
)
from ._dtype import Size, bfloat16, bool_, dtype, float32, float64, int64
from ._grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from ._interop import from_dlpack, from_torch
from ._printing import get_printoptions, set_printoptions
from ._tensor import matmul
from .serialization import load, save
from .sklearn import from_sklearn
from .quantization import quantize_dynamic

# PyTorch's aliases.
float = float32
double = float64
long = int64
bool = bool_

__version__ = _core.__version__  # pyproject.toml's version, compiled in

__all__ = [
    "Size",
    "Tensor",
    "arange",
    "as_tensor",
    "bfloat16",
    "bool",
    "cpu_capability",
    "double",
    "dtype",
    "empty",
    "empty_like",
    "enable_grad",
    "float",
    "float32",
    "float64",
    "from_numpy",
    "full",
    "full_like",
    "get_num_threads",
    "get_printoptions",
    "inference_mode",
    "initial_seed",
    "int64",
    "is_grad_enabled",
    "long",
    "manual_seed",
    "matmul",
    "nn",
    "no_grad",
    "ones",
    "optim",
    "ones_like",
    "rand",
    "rand_like",
    "randn",
    "randn_like",
    "set_grad_enabled",
    "set_num_threads",
    "set_printoptions",
    "supported_cpu_capabilities",
    "tensor",
    "zeros",
    "zeros_like",
    "from_dlpack",
    "from_sklearn",
    "from_torch",
    "load",
    "optimize",
    "optimize_report",
    "restore",
    "save",
    "add",
    "sub",
    "mul",
    "div",
    "sum",
    "mean",
    "reshape",
    "flatten",
    "transpose",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "quantize_dynamic",
]


def __getattr__(name: str) -> object:
    # lincore.onnx needs the onnx package; it is imported on first use (`lincore.onnx.load`
    # after a plain `import lincore`), never by `import lincore`.
    if name == "onnx":
        import importlib

        return importlib.import_module(".onnx", __name__)
    raise AttributeError(f"module 'lincore' has no attribute {name!r}")


def _install() -> None:
    """Attaches lincore's Python methods to classes defined elsewhere: the compiled
    lincore._core.Tensor, and nn.Module (to_torch). This is the one step of `import lincore` that
    changes a class after its definition. It runs once, after every import above, in this order
    (the order in which lincore._core.Tensor's dict lists what each attaches, and
    tests/data/make_stubs.py their stubs):

    1. _tensor.install(): the PyTorch-like Tensor methods (see lincore/_tensor/__init__.py). The
       compiled view/copy methods they replace were saved when lincore._tensor was imported.
    2. _pickle.install(): Tensor.__reduce_ex__ (pickling in the safetensors format).
    3. _interop.install(): Tensor.__dlpack__ / __dlpack_device__, and nn.Module.to_torch.

    Nothing imported above calls a Tensor method while it is imported, so all of this can wait
    until they all are.
    """
    _tensor.install()
    _pickle.install()
    _interop.install()


_install()
