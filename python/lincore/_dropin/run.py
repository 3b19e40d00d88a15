"""A run of supported torch layers executed as one lincore call: the unit lincore.optimize puts
in a torch model. Imports torch (this module is imported only by the functions that need it).

A FusedRun holds the model's own torch modules and a lincore Sequential of the same layers whose
parameters view the torch parameters' memory (no copy). Its call goes through lincore's one
forward path for a native run (nn.Sequential.forward, the compiled SequentialPlan), torch
tensors in and out through DLPack in C (no copy). Before each call it checks that lincore can run
it (a torch tensor on the CPU, the run's float dtype, no hooks on the fused layers) and that the
lincore views are current (each torch parameter's identity, data pointer and version counter);
anything else runs the original torch modules, so a swapped model never fails where the original
would not. The whole call, checks included, is one C function (csrc/bindings/dropin.cpp:
run_forward, and container_forward for a container that is one run): under torch.no_grad the
plan's forward; when autograd must record it, torch's C Function.apply of _RunFunction, whose
forward is C too (record_forward). It hands every case it does not take back to the Python path
here.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

import torch

from .. import _core
from .._dtype import float32, float64
from .._grad_mode import no_grad as _lincore_no_grad
from .._interop import shared_module_from_torch
from ..nn.container import Sequential as _LincoreSequential
from ..nn.linear import Linear as _LincoreLinear
from ..nn.normalization import LayerNorm as _LincoreLayerNorm
from ..nn.quantized import DynamicQuantizedLinear as _QuantizedLinear

_TorchTensor = torch.Tensor
_strided = torch.strided
_to_dlpack = torch._C._to_dlpack
_from_dlpack = torch._C._from_dlpack
_torch_grad_enabled = torch.is_grad_enabled
_torch_threads = torch.get_num_threads
_functorch_active = torch._C._are_functorch_transforms_active
_params_current = _core._torch_params_current
_dropin_forward = _core._dropin_forward
_record_backward = _core._dropin_record_backward
_recorded_inputs = _core._dropin_recorded_inputs
# torch's own descriptors, which the C check calls directly (csrc/bindings/dropin.cpp).
_TENSOR_VERSION = torch._C.TensorBase.__dict__["_version"]
_TENSOR_DATA_PTR = torch._C.TensorBase.__dict__["data_ptr"]
_DTYPE_CODES = {torch.float32: float32._code, torch.float64: float64._code}
GLOBAL_HOOKS = (
    torch.nn.modules.module._global_forward_hooks,
    torch.nn.modules.module._global_forward_pre_hooks,
    torch.nn.modules.module._global_backward_hooks,
    torch.nn.modules.module._global_backward_pre_hooks,
)


# The runs by key, for the custom op that stands for a run in a torch.compile'd graph.
_RUNS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_keys = itertools.count(1)


class FusedRun:
    """A maximal run of supported layers of one torch model, run as one lincore call."""

    def __init__(self, modules: list, quantize: str | None = None) -> None:
        self.modules = modules
        # "int8": the Linear layers run as lincore's dynamically quantized ones (int8 copies of
        # the torch weights, made again whenever those change); inference only.
        self.quantize = quantize
        self.key = next(_keys)
        _RUNS[self.key] = self
        self._build()

    # -- what the lincore side holds -----------------------------------------------------------
    def _build(self) -> None:
        lincore_modules = [shared_module_from_torch(torch, m) for m in self.modules]
        layers = lincore_modules
        if self.quantize is not None:
            layers = [
                _QuantizedLinear.from_float(m) if type(m) is _LincoreLinear else m
                for m in lincore_modules
            ]
        self.lincore = _LincoreSequential(*layers)
        # The compiled plan of the run (every layer optimize fuses compiles into one, see
        # swap.py's why_not_fused), whose forward the C call runs.
        with _lincore_no_grad():
            plan = self.lincore._current_plan().only
        # The torch parameters in the order of the lincore plan's params ((weight, bias) per
        # Linear and LayerNorm, None where absent), with the lincore view of each.
        plan_params: list = []
        views: list = []
        for lm in lincore_modules:
            for p in lm.parameters():
                p._requires_grad = False  # the views never record: _RunFunction does
        # Where each parameter is read from on every call: replacing one (model[0].weight = ...,
        # load_state_dict(assign=True)) rebuilds the run.
        self.slots = []
        for tm, lm in zip(self.modules, lincore_modules):
            if isinstance(lm, (_LincoreLinear, _LincoreLayerNorm)):
                for name in ("weight", "bias"):
                    p = tm._parameters.get(name)
                    plan_params.append(p)
                    if p is not None:
                        views.append(getattr(lm, name))
                        self.slots.append((tm._parameters, name, p))
        self.params = [p for p in plan_params if p is not None]
        self.state = [
            self.slots,
            [p._version for p in self.params],
            [p.data_ptr() for p in self.params],
            views,
            _TENSOR_VERSION,
            _TENSOR_DATA_PTR,
            # A parameter written in place: its view's version is bumped (lincore repacks it),
            # or, for a quantized run, whose int8 copies cannot follow, the run is rebuilt.
            self.quantize is not None,
        ]
        dtypes = {p.dtype for p in self.params}
        # The input dtype the run takes: its parameters' (None: either float dtype, for a run
        # without parameters).
        self.dtype = next(iter(dtypes)) if len(dtypes) == 1 else None
        self.hook_dicts = [
            d
            for m in self.modules
            for d in (
                m._forward_hooks,
                m._forward_pre_hooks,
                m._backward_hooks,
                m._backward_pre_hooks,
            )
        ] + list(GLOBAL_HOOKS)
        # What the call in C reads (csrc/bindings/dropin.cpp, enum Fast); None: torch runs every
        # call (parameters of two dtypes, or layers that are not one plan).
        self.fast = None
        if plan is not None and len(dtypes) <= 1:
            self.fast = (
                plan,
                self.state,
                self.hook_dicts,
                None if self.dtype is None else _DTYPE_CODES[self.dtype],
                _TorchTensor,
                _to_dlpack,
                _from_dlpack,
                _torch_grad_enabled,
                _torch_threads,
                _functorch_active,
                self.params,
                _function_apply if self.quantize is None else None,
                self.modules,
            )

    # -- calling -------------------------------------------------------------------------------
    def __call__(self, x: Any) -> Any:
        if self.fast is not None:
            y = _dropin_forward(self.fast, x)
            if y is not NotImplemented:
                return y
        # A torch parameter replaced (model[0].weight = ...) or moved since the views were made:
        # they are made again, and the call is the C path's again.
        if not _params_current(self.state) and self._rebuilt():
            return self(x)
        return self.torch_forward(x)

    def _rebuilt(self) -> bool:
        try:
            self._build()
        except TypeError:  # a parameter lincore cannot view (moved to another device, ...)
            return False
        return _params_current(self.state)

    def runnable(self, x: Any) -> bool:
        """Whether lincore would run this call (the compile path's backward asks)."""
        if self.fast is None and not _params_current(self.state):
            self._rebuilt()
        return (
            self.fast is not None
            and type(x) is _TorchTensor
            and x.is_cpu
            and x.layout is _strided
            and not any(self.hook_dicts)
            and x.dtype in ((torch.float32, torch.float64) if self.dtype is None else (self.dtype,))
            and (_params_current(self.state) or self._rebuilt())
        )

    def torch_forward(self, x: Any) -> Any:
        """The original modules, as torch runs them."""
        for m in self.modules:
            x = m(x)
        return x

    def output_shape(self, shape: Any) -> list:
        """The shape of the run's output for an input of this shape."""
        shape = list(shape)
        for m in self.modules:
            if type(m) is torch.nn.Linear:
                shape = shape[:-1] + [m.weight.shape[0]]
            elif type(m) is torch.nn.Flatten and shape:
                start, end = m.start_dim % len(shape), m.end_dim % len(shape)
                merged = 1
                for s in shape[start : end + 1]:
                    merged *= s
                shape = shape[:start] + [merged] + shape[end + 1 :]
        return shape

    def traced(self, x: Any) -> Any:
        """The run as one op of a torch.compile'd graph (torch.ops.lincore.fused_run)."""
        return torch.ops.lincore.fused_run(x, self.params, self.key)


# -- a run inside a torch.compile'd graph ---------------------------------------------------------
# TorchDynamo cannot trace into lincore's C calls; a custom op stands for the whole run, so that
# torch.compile(lincore.optimize(model), fullgraph=True) keeps one graph. Its backward recomputes
# the run's recorded forward (a custom op's outputs are tensors only: the tape cannot cross).


@torch.library.custom_op("lincore::fused_run", mutates_args=())
def _fused_run(x: torch.Tensor, params: list[torch.Tensor], key: int) -> torch.Tensor:
    run = _RUNS[key]
    with torch.no_grad():
        y = run(x)
    return y if y.data_ptr() != x.data_ptr() else y.clone()  # never an alias of the input


@_fused_run.register_fake
def _(x: torch.Tensor, params: list[torch.Tensor], key: int) -> torch.Tensor:
    return x.new_empty(_RUNS[key].output_shape(x.shape))


@torch.library.custom_op("lincore::fused_run_backward", mutates_args=())
def _fused_run_backward(
    x: torch.Tensor, params: list[torch.Tensor], key: int, dy: torch.Tensor
) -> list[torch.Tensor]:
    run = _RUNS[key]
    xr = x.detach().requires_grad_()
    ps = [p.detach().requires_grad_() for p in params]
    with torch.enable_grad():
        if run.runnable(xr):
            y = _RunFunction.apply(run.fast, _to_dlpack(xr), xr, *ps)
        else:  # as torch would, on these tensors
            stack = torch.nn.Sequential(*run.modules)
            names = [n for n, _ in stack.named_parameters()]
            y = torch.func.functional_call(stack, dict(zip(names, ps)), (xr,))
    grads = torch.autograd.grad(y, [xr, *ps], dy, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, [x, *params])]


@_fused_run_backward.register_fake
def _(x: torch.Tensor, params: list[torch.Tensor], key: int, dy: torch.Tensor) -> list:
    return [torch.empty_like(x)] + [torch.empty_like(p) for p in params]


def _setup_context(ctx: Any, inputs: tuple, output: Any) -> None:
    x, params, key = inputs
    ctx.save_for_backward(x, *params)
    ctx.key = key


def _backward(ctx: Any, dy: Any) -> tuple:
    x, *params = ctx.saved_tensors
    grads = torch.ops.lincore.fused_run_backward(x, params, ctx.key, dy)
    return grads[0], list(grads[1:]), None


_fused_run.register_autograd(_backward, setup_context=_setup_context)


class _RunFunction(torch.autograd.Function):
    """A FusedRun under autograd: forward (in C: dropin.cpp's record_forward) records lincore's
    tape of the run, backward is lincore's C++ backward of the whole run in one call
    (record_backward), or, under backward(create_graph=True), torch's differentiable one.
    Applied as apply(run.fast, torch._C._to_dlpack(x), x, *run.params)."""

    forward = staticmethod(_core._dropin_record)

    @staticmethod
    def backward(ctx: Any, dy: Any) -> Any:
        if _torch_grad_enabled():  # backward(create_graph=True): a differentiable one
            return _differentiable_backward(ctx, dy)
        return _record_backward(ctx.lincore, dy.contiguous(), ctx.needs_input_grad[2])


def _differentiable_backward(ctx: Any, dy: Any) -> tuple:
    """The run's backward as a graph torch can differentiate again (a gradient penalty, a
    Hessian-vector product): the run's torch modules recomputed on the recorded x and
    parameters, differentiated by torch with create_graph. lincore's C++ backward gives
    gradients, not a graph."""
    modules, x, params = _recorded_inputs(ctx.lincore)
    needs = ctx.needs_input_grad[2:]
    stack = torch.nn.Sequential(*modules)
    names = [name for name, _ in stack.named_parameters()]
    y = torch.func.functional_call(stack, dict(zip(names, params)), (x,))
    wanted = [t for t, need in zip((x, *params), needs) if need]
    grads = iter(torch.autograd.grad(y, wanted, dy, create_graph=True, allow_unused=True))
    return (None, None, *[next(grads) if need else None for need in needs])


# torch's C entry point of Function.apply (torch._C._FunctionBase.apply), bound to the class.
_function_apply = super(torch.autograd.Function, _RunFunction).apply
