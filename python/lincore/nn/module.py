"""nn.Module: the base class of layers and models, with PyTorch's registration of parameters
and submodules, iteration, state_dict/load_state_dict and repr."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, NamedTuple

import numpy as np

from .. import _core
from .._creation import as_tensor
from .parameter import Parameter

_plan_tokens = itertools.count(1)
# The last token handed out, by any module: while it stays the same, no module anywhere has
# changed, and a Sequential can use its compiled plan without rebuilding its key (which reads
# every child's token: most of a small model's call overhead).
_last_token = [0]


def new_plan_token() -> int:
    token = next(_plan_tokens)
    _last_token[0] = token
    return token


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class for all lincore modules; subclass it and define forward()."""

    training: bool
    # Whether the layer's compiled step (_step) depends on the train/eval mode (Dropout): then
    # train() and eval() mark it changed, so that Sequential plans holding it are rebuilt.
    _step_depends_on_mode = False

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_plan_token", new_plan_token())

    # -- attribute registration --------------------------------------------------------------
    # Parameters and submodules live in _parameters / _modules (what traversal and state_dict
    # read) and are mirrored into the instance __dict__, so that `layer.weight` is an ordinary
    # attribute lookup: going through __getattr__ costs ~0.7 us per access, more than a whole
    # small Linear call.
    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        modules = self.__dict__.get("_modules")
        if params is None or modules is None:
            raise AttributeError("cannot assign attributes before Module.__init__() call")
        if isinstance(value, Parameter):
            modules.pop(name, None)
            params[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__module__}.{type(value).__name__}' as "
                    f"parameter '{name}' (lincore.nn.Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            params.pop(name, None)
            modules[name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__module__}.{type(value).__name__}' as child "
                    f"module '{name}' (lincore.nn.Module or None expected)"
                )
            modules[name] = None
        object.__setattr__(self, name, value)
        self._changed()

    def _changed(self) -> None:
        """Marks the module as changed: a compiled Sequential plan holding it is rebuilt."""
        object.__setattr__(self, "_plan_token", new_plan_token())

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)
        self._changed()

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._modules))

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"parameter name must be a non-empty string without '.', got {name!r}")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(lincore.nn.Parameter or None required)"
            )
        self._modules.pop(name, None)
        self._parameters[name] = param
        object.__setattr__(self, name, param)
        self._changed()

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(
                f"{type(module).__module__}.{type(module).__name__} is not a Module subclass"
            )
        if not isinstance(name, str):
            raise TypeError(f"module name should be a string. Got {type(name).__name__}")
        if "." in name or name == "":
            raise KeyError(
                f'module name can\'t contain ".", got: {name}'
                if name
                else 'module name can\'t be empty string ""'
            )
        self._parameters.pop(name, None)
        self._modules[name] = module
        object.__setattr__(self, name, module)
        self._changed()

    register_module = add_module

    # -- calling -----------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- traversal ---------------------------------------------------------------------------
    def named_modules(
        self, memo: set[int] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        mods = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse
            else iter([(prefix, self)])
        )
        for mod_prefix, m in mods:
            for name, p in m._parameters.items():
                if p is None or (remove_duplicate and id(p) in seen):
                    continue
                seen.add(id(p))
                yield mod_prefix + ("." if mod_prefix else "") + name, p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    # -- modes -------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            changed = m.training != mode
            object.__setattr__(m, "training", mode)
            if changed and m._step_depends_on_mode:
                m._changed()
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def apply(self, fn: Callable[[Module], None]) -> Module:
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- state -------------------------------------------------------------------------------
    def state_dict(self, *, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """Parameters by dotted name ("0.weight"); the tensors share memory with the model."""
        out: OrderedDict = OrderedDict()
        for name, p in self.named_parameters(prefix=prefix.rstrip("."), remove_duplicate=False):
            out[name] = p if keep_vars else p.detach()
        # State a layer keeps outside parameters (a quantized Linear's int8 codes and scales).
        for name, m in self.named_modules(prefix=prefix.rstrip(".")):
            if hasattr(m, "_state_arrays"):
                out.update(m._state_arrays(name + "." if name else ""))
        return out

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> IncompatibleKeys:
        """Copies values (lincore tensors or numpy arrays) into the parameters. Every problem
        is reported in one RuntimeError, and on error no parameter is changed."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        own: dict[str, Any] = dict(self.named_parameters(remove_duplicate=False))
        # Layers with state outside parameters (a quantized Linear): their keys, by module.
        extra = {name: m for name, m in self.named_modules() if hasattr(m, "_state_arrays")}
        extra_keys = {
            k: name for name, m in extra.items() for k in m._state_keys(name + "." if name else "")
        }
        missing = [k for k in [*own, *extra_keys] if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own and k not in extra_keys]
        errors: list[str] = []
        staged: list[tuple[Parameter, Any]] = []
        rebuilt: list[tuple[Any, Any]] = []
        for name, m in extra.items():
            pre = name + "." if name else ""
            if any(k in state_dict for k in m._state_keys(pre)):
                try:
                    rebuilt.append((m, m._rebuild_from_state(state_dict, pre)))
                except (TypeError, ValueError, KeyError) as e:
                    errors.append(f"While loading {name or type(m).__name__}: {e}")
        for key, param in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            src = _as_source(value)
            if src is None:
                errors.append(
                    f'While copying the parameter named "{key}", expected lincore.Tensor or '
                    f"numpy array from checkpoint but received {type(value)}"
                )
                continue
            if tuple(src.shape) != tuple(param.shape):
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {src.shape} from "
                    f"checkpoint, the shape in current model is {param.shape}."
                )
                continue
            staged.append((param, src))
        if strict:
            if unexpected:
                errors.insert(
                    0,
                    "Unexpected key(s) in state_dict: {}. ".format(
                        ", ".join(f'"{k}"' for k in unexpected)
                    ),
                )
            if missing:
                errors.insert(
                    0,
                    "Missing key(s) in state_dict: {}. ".format(
                        ", ".join(f'"{k}"' for k in missing)
                    ),
                )
        if errors:
            raise RuntimeError(
                "Error(s) in loading state_dict for {}:\n\t{}".format(
                    type(self).__name__, "\n\t".join(errors)
                )
            )
        # Forwards that overlap the copy compute again, from one set of weights
        # (csrc/bindings/load_guard.h).
        with _core.parameter_load():
            for param, src in staged:
                param._copy_from(src)
            for m, state in rebuilt:
                m._set_state(state)
        return IncompatibleKeys(missing, unexpected)

    # -- dtype -------------------------------------------------------------------------------
    def to(self, dtype: Any) -> Module:
        """Converts every floating point parameter to dtype, in place (requires_grad kept, as
        PyTorch keeps it). Layers without parameters of their own (a quantized Linear) are left
        as they are, as PyTorch leaves them."""
        from .._dtype import dtype as _dtype

        if isinstance(dtype, _dtype) and not dtype.is_floating_point:
            raise TypeError(
                "nn.Module.to only accepts floating point or complex dtypes, but got desired "
                f"dtype={dtype}"
            )
        for m in self.modules():
            for name, p in list(m._parameters.items()):
                if p is not None and p.dtype is not dtype and p.dtype.is_floating_point:
                    setattr(m, name, Parameter(p.detach().to(dtype), p.requires_grad))
        return self

    def float(self) -> Module:
        from .._dtype import float32

        return self.to(float32)

    def double(self) -> Module:
        from .._dtype import float64

        return self.to(float64)

    def bfloat16(self) -> Module:
        """self.to(lincore.bfloat16): bf16 Linear layers, for inference (docs/quantization.md).
        The parameters keep requires_grad, as PyTorch's do; run the model under
        lincore.no_grad() (or call requires_grad_(False) on them)."""
        from .._dtype import bfloat16

        return self.to(bfloat16)

    # -- pickling and PyTorch ----------------------------------------------------------------
    # The native (pybind11) objects a module holds are caches: a Linear's packed weights, a
    # Sequential's compiled plan. They cannot be pickled and need not be: __getstate__ leaves
    # them out and __setstate__ rebuilds each empty (the compiled plan is rebuilt on the next
    # forward). Tensors pickle in the safetensors format (see lincore/_pickle.py).
    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        caches: dict[str, type] = {}
        for name, value in self.__dict__.items():
            if name == "_plan":
                continue
            if type(value).__module__ == _core.__name__ and not isinstance(value, _core.Tensor):
                caches[name] = type(value)
            else:
                state[name] = value
        state["_native_caches"] = caches
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        caches = state.pop("_native_caches", {})
        self.__dict__.update(state)
        # Parameters a class keeps in typed fields (Linear's weight and bias) are not in
        # __dict__: set them again through their descriptors.
        for name, param in self._parameters.items():
            object.__setattr__(self, name, param)
        for name, cls in caches.items():
            object.__setattr__(self, name, cls())
        # Plan tokens come from a per-process counter: take a fresh one, so that a token saved
        # in another process never matches one handed out here.
        object.__setattr__(self, "_plan_token", new_plan_token())

    if TYPE_CHECKING:
        # Module.to_torch is lincore/_interop.py's to_torch, installed at import: the conversion
        # needs every layer class, which all import this module.
        def to_torch(self) -> Any:
            """The equivalent torch.nn module, with copies of the weights (imports torch)."""

    # -- repr --------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = []
        for key, module in self._modules.items():
            child_lines.append("(" + key + "): " + _addindent(repr(module), 2))
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"


def _as_source(value: Any) -> Any:
    """A state_dict value as a tensor: lincore tensors, numpy arrays and anything with
    __array__ (a torch tensor) are accepted; None for anything else."""
    try:
        if isinstance(value, (_core.Tensor, np.ndarray)):
            return as_tensor(value)
        if hasattr(value, "__array__"):
            if hasattr(value, "detach"):
                value = value.detach()
            return as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError):
        pass
    return None


def _addindent(s: str, spaces: int) -> str:
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])
