"""Optimizer: the base class of lincore.optim, with torch.optim's parameter groups, per-parameter
state, zero_grad, state_dict / load_state_dict in PyTorch's format, and PyTorch's repr.

Subclasses read and write parameters, gradients and state through zero-copy numpy views taken
inside step() and dropped before it returns: releasing a writable view is how lincore learns
that a parameter changed (and drops its cached packed weights)."""

from __future__ import annotations

import copy
import numbers
import warnings
from collections import defaultdict
from itertools import chain
from typing import Any, Callable, Dict, Iterable, List, Mapping, Tuple

import numpy as np

from .. import _core
from .._creation import tensor as _new_tensor
from .._grad_mode import enable_grad, no_grad

Tensor = _core.Tensor

# (global index, parameter, gradient) for each parameter of a group that has a gradient.
ParamsWithGrads = List[Tuple[int, Tensor, Tensor]]


class _RequiredParameter:
    """The default of a hyper-parameter that every parameter group must set itself."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


def _typename(obj: Any) -> str:
    """torch.typename's spelling: 'int', 'lincore.nn.parameter.Parameter'."""
    cls = type(obj)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def check_real(name: str, value: Any) -> None:
    """A hyper-parameter must be a real number (bools are not); raised before any comparison."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, but got {_typename(value)}")


class Optimizer:
    """Base class of all optimizers.

    params: an iterable of Tensors, of (name, Tensor) pairs, or of dicts that each define a
    parameter group ({"params": [...], "lr": ...}); defaults: the hyper-parameters a group gets
    when it does not set them."""

    def __init__(self, params: Iterable[Any], defaults: Dict[str, Any]) -> None:
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                f"dicts, but got {_typename(params)}"
            )
        self.state: defaultdict[Any, Dict[str, Any]] = defaultdict(dict)
        self.param_groups: List[Dict[str, Any]] = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    # -- hyper-parameters (subclasses check their own) ----------------------------------------
    def _check_hyperparameters(self, group: Mapping[str, Any]) -> None:
        """Raises ValueError/TypeError for an invalid hyper-parameter value in group."""

    # -- pickling, and what load_state_dict installs -------------------------------------------
    def __getstate__(self) -> Dict[str, Any]:
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        format_string = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            format_string += "\n"
            format_string += f"Parameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    format_string += f"    {key}: {group[key]}\n"
        format_string += ")"
        return format_string

    # -- groups -------------------------------------------------------------------------------
    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Adds a parameter group (a dict with "params" and optional hyper-parameters).

        Everything is checked before the group is added; the optimizer keeps a copy of the
        dict (torch keeps the dict itself), so a rejected group leaves both untouched."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        if "params" not in param_group:
            raise KeyError("param_group must have a 'params' entry")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)

        tensors: List[Any] = []
        names: List[Any] = []
        for param in params:
            if isinstance(param, tuple):
                if len(param) != 2:
                    raise ValueError(
                        f"named parameters must be (name, tensor) pairs, but got a tuple of "
                        f"length {len(param)}"
                    )
                names.append(param[0])
                tensors.append(param[1])
            else:
                tensors.append(param)
        group["params"] = tensors
        if names:
            if len(names) != len(tensors):
                raise ValueError(
                    "all optimizer params should be with/without names. Some param names are "
                    "missing"
                )
            group["param_names"] = names

        for param in tensors:
            if not isinstance(param, Tensor):
                raise TypeError(
                    "optimizer can only optimize Tensors, but one of the params is "
                    + _typename(param)
                )
            if not (getattr(param, "is_leaf", True) or getattr(param, "retains_grad", False)):
                raise ValueError("can't optimize a non-leaf Tensor")

        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(
                    "parameter group didn't specify a value of required optimization "
                    f"parameter {name}"
                )
            group.setdefault(name, default)
        self._check_hyperparameters(group)

        for other in self.param_groups:
            if ("param_names" in group) != ("param_names" in other):
                current = "with names" if "param_names" in group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {current} to the optimizer"
                )
        ids = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in ids for p in tensors):
            raise ValueError("some parameters appear in more than one parameter group")
        if len({id(p) for p in tensors}) != len(tensors):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; "
                "in future, this will cause an error; "
                "see github.com/pytorch/pytorch/issues/40967 for more information",
                stacklevel=3,
            )
        self.param_groups.append(group)

    # -- gradients ------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Sets every parameter's .grad to None (default), or zeroes it in place."""
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if getattr(grad, "grad_fn", None) is not None:
                        # torch detaches the gradient in place; lincore has no detach_().
                        grad = grad.detach()
                        p.grad = grad
                    elif grad.requires_grad:
                        grad.requires_grad_(False)
                    grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Performs one optimization step; closure, if given, re-evaluates and returns the loss."""
        raise NotImplementedError

    def _run_step(self, closure: Callable[[], Any] | None, update: Callable[[], None]) -> Any:
        """torch's order: the closure under grad mode, then the update under no_grad."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            update()
        return loss

    def _params_with_grads(self) -> List[Tuple[Dict[str, Any], ParamsWithGrads]]:
        """Every group with its parameters that have a gradient, all checked up front, so that
        a bad gradient is reported before any parameter changes."""
        out = []
        index = 0
        for group in self.param_groups:
            found: ParamsWithGrads = []
            for p in group["params"]:
                grad = p.grad
                if grad is not None:
                    _check_grad(index, p, grad)
                    found.append((index, p, grad))
                index += 1
            out.append((group, found))
        return out

    def _check_state_tensor(self, index: int, param: Tensor, key: str) -> None:
        """The state entry key of param must be a tensor of param's shape and dtype."""
        value = self.state.get(param, {}).get(key)
        if not isinstance(value, Tensor):
            raise RuntimeError(
                f"the optimizer state of parameter {index} has no tensor '{key}' "
                f"(got {_typename(value)})"
            )
        if tuple(value.shape) != tuple(param.shape) or value.dtype is not param.dtype:
            raise RuntimeError(
                f"the optimizer state '{key}' of parameter {index} has shape "
                f"{list(value.shape)} and dtype {value.dtype}, but the parameter has shape "
                f"{list(param.shape)} and dtype {param.dtype}"
            )

    # -- state_dict -------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}, PyTorch's
        format. As in torch, the state tensors are the optimizer's own (not copies)."""
        param_mappings: Dict[int, int] = {}
        start_index = 0

        def pack_group(group: Dict[str, Any]) -> Dict[str, Any]:
            nonlocal start_index
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start_index):
                param_mappings.setdefault(id(p), i)
            packed["params"] = [param_mappings[id(p)] for p in group["params"]]
            start_index += len(packed["params"])
            return packed

        param_groups = [pack_group(g) for g in self.param_groups]
        packed_state = {
            (param_mappings[id(k)] if isinstance(k, Tensor) else k): v
            for k, v in self.state.items()
        }
        return {"state": packed_state, "param_groups": param_groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Loads a state_dict() (lincore's or torch's: tensors of other libraries and numpy
        arrays become lincore tensors). Values are deep-copied, and floating point state is cast
        to its parameter's dtype (except "step"). Everything is checked before anything
        changes; on error the optimizer is left as it was."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        for key in ("state", "param_groups"):
            if key not in state_dict:
                raise KeyError(f"the optimizer state_dict has no '{key}' entry")
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of "
                "optimizer's group"
            )
        id_map = dict(
            zip(
                chain.from_iterable(g["params"] for g in saved_groups),
                chain.from_iterable(g["params"] for g in groups),
            )
        )

        state: defaultdict[Any, Dict[str, Any]] = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = _cast(param, v)
            else:
                state[k] = copy.deepcopy(v)

        param_groups = []
        for group, new_group in zip(groups, saved_groups):
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            param_groups.append(new_group)
        for group in param_groups:
            for name, default in self.defaults.items():
                if default is not required:
                    group.setdefault(name, default)
            self._check_hyperparameters(group)
        self.__setstate__({"state": state, "param_groups": param_groups})


def _check_grad(index: int, param: Tensor, grad: Any) -> None:
    if not isinstance(grad, Tensor):
        raise TypeError(
            f"the .grad of parameter {index} must be a lincore.Tensor or None, but got "
            f"{_typename(grad)}"
        )
    if not param.dtype.is_floating_point:
        raise RuntimeError(
            f"optimizers can only update floating point parameters, but parameter {index} has "
            f"dtype {param.dtype}"
        )
    if grad.dtype is not param.dtype:
        raise RuntimeError(
            f"the gradient of parameter {index} has dtype {grad.dtype}, but the parameter has "
            f"dtype {param.dtype}; they must be the same"
        )
    if tuple(grad.shape) != tuple(param.shape):
        raise RuntimeError(
            f"the gradient of parameter {index} has shape {list(grad.shape)}, but the "
            f"parameter has shape {list(param.shape)}"
        )
    if not param._writable:
        raise RuntimeError(
            f"parameter {index} borrows a read-only buffer and cannot be updated in place"
        )


def _cast(param: Tensor, value: Any, key: Any = None) -> Any:
    """A deep copy of value with every tensor a lincore tensor; torch's rule for dtypes: state
    of a floating point parameter takes its dtype, except "step"."""
    if (
        isinstance(value, Tensor)
        or isinstance(value, np.ndarray)
        or (hasattr(value, "__array__") and not isinstance(value, (str, bytes, np.generic)))
    ):
        t = value.detach() if isinstance(value, Tensor) else _new_tensor(np.asarray(value))
        if key != "step" and param.dtype.is_floating_point:
            return t.to(param.dtype, copy=True)
        return t.clone()
    if isinstance(value, dict):
        return {k: _cast(param, v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(param, v) for v in value)
    return copy.deepcopy(value)


# -- the elementwise arithmetic of the updates ----------------------------------------------------
# torch's CPU kernels compute `add(x, y, alpha)`, `lerp` and `addcmul` with a fused multiply-add in
# their vectorized loops (one rounding for a*b + c); numpy has none, so lincore rounds twice.


def fma(a: Any, b: Any, c: Any, dt: Any) -> Any:
    """a*b + c in the parameter's dtype dt. PyTorch fuses this into one FMA (one rounding);
    here it is a multiply and an add in dt (two roundings, at most 1 ulp apart), which keeps the
    update to two passes over memory instead of a float64 round trip."""
    out = np.multiply(a, b, dtype=dt)
    out += c
    return out
