"""lincore: a compiled C++ engine for dense Linear layers, with PyTorch's Python API.

import lincore
import lincore.nn as nn
model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
y = model(lincore.randn(16, 8))
"""

from . import _core
from . import _tensor as _tensor_methods
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
from ._dtype import Size, bool_, dtype, float32, float64, int64
from ._grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from ._printing import get_printoptions, set_printoptions
from ._tensor import matmul

_tensor_methods.install()

from . import nn  # noqa: E402  (nn needs the Tensor methods installed)
from . import optim  # noqa: E402

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
]

# Pickling, DLPack, safetensors files and PyTorch conversion (after nn: they use its modules).
from . import _interop, _pickle  # noqa: E402
from ._interop import from_dlpack, from_torch  # noqa: E402
from .serialization import load, save  # noqa: E402

_pickle.install()
_interop.install()

__all__ += ["from_dlpack", "from_torch", "load", "save"]
