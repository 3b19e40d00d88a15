"""lincore.optimize and lincore.restore: lincore's speed inside a torch model, with nothing else
changed. Imports torch (this module is imported only by the functions that need it).

What changes is the class of each torch.nn.Sequential in the model: it becomes lincore's
subclass of it (still named Sequential, still an nn.Sequential), whose forward runs every maximal
run of supported layers as one lincore call (run.FusedRun) and everything else as torch does.
The children, their parameters (torch's own nn.Parameters), names, hooks, state_dict, train/eval
and repr are untouched: code that reaches into model[0].weight sees what it saw before.
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import _core
from .run import GLOBAL_HOOKS as _GLOBAL_HOOKS
from .run import FusedRun
from .trace import swap_traced

_tnn = torch.nn
_tracing_state = torch._C._get_tracing_state
_dicts_unchanged = _core._dicts_unchanged
_container_forward = _core._dropin_container_forward
_Tensor = torch.Tensor
_is_compiling = torch.compiler.is_compiling
# The layers a run fuses (exact types: a subclass may override forward).
FUSABLE = (
    _tnn.Linear,
    _tnn.ReLU,
    _tnn.LeakyReLU,
    _tnn.Sigmoid,
    _tnn.Tanh,
    _tnn.GELU,
    _tnn.Identity,
    _tnn.Flatten,
    _tnn.Dropout,
    _tnn.Softmax,
    _tnn.LogSoftmax,
    _tnn.LayerNorm,
)
_FUSABLE_NAMES = ", ".join(t.__name__ for t in FUSABLE)


def why_not_fused(m: Any, quantize: str | None = None) -> str | None:
    """Why lincore does not fuse module m into a run (None: it does), runs quantized to int8
    when quantize is "int8"."""
    if type(m) not in FUSABLE:
        return f"{type(m).__name__} is not a layer lincore runs (it runs: {_FUSABLE_NAMES})"
    if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks:
        return "it has hooks, which run with torch's own forward"
    if type(m) is _tnn.Dropout and m.training and m.p > 0:
        return "a Dropout in training mode draws its mask from torch's generator"
    if type(m) in (_tnn.Softmax, _tnn.LogSoftmax) and m.dim is None:
        return (
            f"a {type(m).__name__} without dim takes its dim from the input's dimensions "
            "(deprecated by torch)"
        )
    for name, p in m._parameters.items():
        if p is None:
            continue
        if p.dtype not in (torch.float32, torch.float64):
            return f"its {name} is {p.dtype} (lincore runs float32 and float64)"
        if not p.is_cpu or p.layout is not torch.strided:
            return f"its {name} is on {p.device} (lincore runs dense CPU tensors)"
        if quantize is not None and type(m) is _tnn.Linear and p.dtype is not torch.float32:
            return f"its {name} is {p.dtype} (quantize='int8' quantizes float32 layers)"
    return None


def _quantize_option(quantize: Any) -> str | None:
    """quantize as optimize takes it: None, or "int8" for 'int8', 'qint8' or torch.qint8."""
    if quantize is None or quantize is torch.qint8 or quantize in ("int8", "qint8"):
        return None if quantize is None else "int8"
    raise ValueError(
        f"lincore.optimize: quantize must be None or 'int8' (torch.qint8), but got {quantize!r}"
    )


def _spliced(m: Any) -> bool:
    """Whether a child Sequential's layers join its parent's runs (a plain one, no hooks)."""
    return type(m) in (_tnn.Sequential, Sequential) and not (
        m._forward_hooks or m._forward_pre_hooks
    )


def _children(container: Any, prefix: str, watch: list) -> list:
    """(qualified name, module) of container's children, with the children of plain nested
    Sequentials spliced in, so that a run can cross their boundaries; appends to watch each
    _modules dict read, with what it held."""
    watch.append((container._modules, tuple(container._modules.values())))
    out = []
    for name, m in container._modules.items():
        qual = f"{prefix}.{name}" if prefix else name
        if _spliced(m):
            out.extend(_children(m, qual, watch))
        else:
            out.append((qual, m))
    return out


class Runner:
    """The forward of one swapped Sequential: its segments (FusedRuns and torch modules), rebuilt
    when the structure or a Dropout's mode changes."""

    def __init__(self, container: Any, options: dict) -> None:
        self.container = container
        self.options = options
        self.watch: list = []  # (a _modules dict, its values when the segments were made)
        self.modes: list = []  # (a Dropout, its training flag then): a training one splits runs
        self.segments: list = []
        self.fused: list = []  # the layers' qualified names, per run
        self.not_fused: list = []  # (qualified name, why)
        self._segment()

    def stale(self) -> bool:
        """Whether the container changed since the segments were made (in C: the checks must
        cost a fraction of a small model's call)."""
        if not _dicts_unchanged(self.watch):
            return True
        for m, mode in self.modes:
            if m.training is not mode:
                return True
        return False

    def _segment(self) -> None:
        watch: list = []
        children = _children(self.container, "", watch)
        segments: list = []
        run: list = []
        names: list = []
        fused: list = []
        not_fused: list = []
        quantize = self.options.get("quantize")
        for qual, m in children:
            why = why_not_fused(m, quantize)
            if why is None:
                run.append(m)
                names.append(qual)
                continue
            if run:
                segments.append(FusedRun(run, quantize))
                fused.append(names)
                run, names = [], []
            segments.append(m)
            not_fused.append((qual, why))
        if run:
            segments.append(FusedRun(run, quantize))
            fused.append(names)
        self.watch = watch
        self.modes = [(m, m.training) for _, m in children if type(m) is _tnn.Dropout]
        self.segments, self.fused, self.not_fused = segments, fused, not_fused
        only_run = len(segments) == 1 and isinstance(segments[0], FusedRun)
        self.single = segments[0] if only_run else None
        # What the container's call in C reads (csrc/bindings/dropin.cpp, container_forward).
        self.fast = None
        if self.single is not None and not self.modes:
            self.fast = (self.watch, self.single, _tracing_state)

    def __call__(self, x: Any) -> Any:
        if not _dicts_unchanged(self.watch) or (self.modes and self.stale()):
            self._segment()
        for segment in self.segments:
            x = segment(x)
        return x


class Sequential(_tnn.Sequential):
    """torch.nn.Sequential run by lincore: every maximal run of supported layers is one lincore
    call (lincore.optimize swaps a model's Sequentials to this class; lincore.restore swaps them
    back)."""

    _lincore_swapped = True  # from_torch converts it as the nn.Sequential it is

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # The whole call in C when the container is one run (dropin.cpp's container_forward
        # makes this method's checks below); TorchDynamo must see the Python path instead.
        if len(args) == 1 and not kwargs and not _is_compiling():
            y = _container_forward(self, args[0])
            if y is not NotImplemented:
                return y
        # torch's Module.__call__ costs a microsecond and a half before it reaches forward, as
        # much as the rest of a swapped batch-1 call: skipped when it has nothing to do here (no
        # hooks on this module or global ones, no torch.compile'd call, one positional input).
        if (
            self._forward_hooks
            or self._forward_pre_hooks
            or self._backward_hooks
            or self._backward_pre_hooks
            or self._compiled_call_impl is not None
            or kwargs
            or len(args) != 1
            or type(args[0]) is not _Tensor  # a subclass, a torch.fx Proxy: torch's own call
            or any(_GLOBAL_HOOKS)
            or _tracing_state() is not None
            or _is_compiling()
        ):
            return _tnn.Module.__call__(self, *args, **kwargs)
        runner = self.__dict__.get("_lincore_runner")
        if runner is None:
            return self.forward(args[0])
        # Runner.__call__, inlined for the common one-run case.
        if runner.single is not None and not runner.modes and _dicts_unchanged(runner.watch):
            return runner.single(args[0])
        return runner(args[0])

    def forward(self, input: Any) -> Any:
        runner = self.__dict__.get("_lincore_runner")
        if runner is None:
            runner = Runner(self, {})
            object.__setattr__(self, "_lincore_runner", runner)
        if _tracing_state() is not None:
            return _tnn.Sequential.forward(self, input)  # torch.jit.trace records torch's ops
        if _is_compiling():
            # Under torch.compile each run is one custom op of the graph (run.py).
            x = input
            for segment in runner.segments:
                x = segment.traced(x) if isinstance(segment, FusedRun) else segment(x)
            return x
        return runner(input)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Pickled (and deep-copied) as the plain torch module, swapped again when loaded: the
        # runner holds lincore views of this process's memory, never worth saving.
        runner = self.__dict__.get("_lincore_runner")
        return (_reoptimize, (_plain(self), runner.options if runner else {}))


# Per optimized model, the custom modules torch.fx could not trace, and why (for its report).
_untraced: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _custom(m: Any) -> bool:
    """Whether m is a user's module with children, whose forward torch.fx may trace (not one of
    torch's own, not already swapped)."""
    cls = type(m)
    return (
        bool(m._modules)
        and not cls.__module__.startswith("torch.")
        and "_lincore_original" not in cls.__dict__
        and cls is not Sequential
    )


def _plain(m: Any) -> Any:
    """A shallow copy of swapped module m as its original torch class."""
    plain = _tnn.Sequential.__new__(_tnn.Sequential)
    plain.__dict__.update({k: v for k, v in m.__dict__.items() if k != "_lincore_runner"})
    return plain


def _reoptimize(plain: Any, options: dict) -> Any:
    return optimize(plain, inplace=True, **options)


# -- the public entry points ----------------------------------------------------------------------


@dataclass
class OptimizeReport:
    """What lincore.optimize swapped in a model: per swapped Sequential (by qualified name), the
    runs it fuses (each a list of layer names) and the layers it leaves to torch, with why."""

    containers: dict = field(default_factory=dict)
    untraced: dict = field(default_factory=dict)  # custom modules torch.fx could not trace: why

    @property
    def fused(self) -> list:
        return [run for info in self.containers.values() for run in info["fused"]]

    @property
    def not_fused(self) -> list:
        return [item for info in self.containers.values() for item in info["not_fused"]]

    def __str__(self) -> str:
        lines = []
        for name, info in self.containers.items():
            lines.append(f"{name or '<model>'}: {info['kind']} run by lincore")
            for run in info["fused"]:
                lines.append(f"  fused into one lincore call: {', '.join(run)}")
            for qual, why in info["not_fused"]:
                lines.append(f"  left to torch: {qual} ({why})")
        for name, why in self.untraced.items():
            lines.append(f"{name or '<model>'}: left as it is ({why})")
        return "\n".join(lines) if lines else "nothing swapped: no Sequential, no traceable chain"


def optimize(
    model: Any, *, inplace: bool = False, verbose: bool = False, quantize: Any = None
) -> Any:
    """lincore.optimize (its docstring is in lincore/_dropin/__init__.py)."""
    if not isinstance(model, _tnn.Module):
        raise TypeError(
            f"lincore.optimize: expected a torch.nn.Module, but got {type(model).__name__}"
        )
    if not isinstance(inplace, bool):
        raise TypeError(f"lincore.optimize: inplace must be a bool, but got {inplace!r}")
    if not isinstance(verbose, bool):
        raise TypeError(f"lincore.optimize: verbose must be a bool, but got {verbose!r}")
    quantize = _quantize_option(quantize)
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if not t.is_cpu:
            raise ValueError(
                f"lincore.optimize: {name or 'a tensor'} is on {t.device}; lincore runs models "
                "on the CPU (move the model with .cpu() first)"
            )
    if not inplace:
        model = copy.deepcopy(model)
    options = {"verbose": False, "quantize": quantize}
    untraced = {}
    modules = list(model.named_modules())
    try:
        for _, m in modules:
            if type(m) is _tnn.Sequential:
                runner = Runner(m, options)  # first: a weight it cannot quantize raises here
                m.__class__ = Sequential
                object.__setattr__(m, "_lincore_runner", runner)
        # Custom modules after every Sequential, innermost first: a child that lincore runs on
        # its own is then known as such when its parent is traced.
        for name, m in reversed(modules):
            if _custom(m):
                why = swap_traced(m, options, why_not_fused)
                if why is not None:
                    untraced[name] = why
    except Exception:
        restore(model)  # inplace: the model as it was
        raise
    _untraced[model] = untraced
    if verbose:
        print(report(model))
    return model


def report(model: Any) -> OptimizeReport:
    """What lincore.optimize swapped in model (see OptimizeReport)."""
    out = OptimizeReport()
    for name, m in model.named_modules():
        runner = m.__dict__.get("_lincore_runner") if isinstance(m, Sequential) else None
        traced = m.__dict__.get("_lincore_traced")
        if runner is not None:
            if runner.stale():
                runner._segment()
            out.containers[name] = {
                "kind": "Sequential",
                "fused": runner.fused,
                "not_fused": runner.not_fused,
            }
        elif traced is not None:
            if traced.stale(m):
                traced.retrace(m)
            out.containers[name] = {
                "kind": f"{type(m).__name__} (traced with torch.fx)",
                "fused": traced.fused,
                "not_fused": traced.not_fused,
            }
    out.untraced = dict(_untraced.get(model, {}))
    return out


def restore(model: Any) -> Any:
    """model with every Sequential that lincore.optimize swapped back to torch.nn.Sequential (in
    place; returned for convenience)."""
    if not isinstance(model, _tnn.Module):
        raise TypeError(
            f"lincore.restore: expected a torch.nn.Module, but got {type(model).__name__}"
        )
    for _, m in model.named_modules():
        if type(m) is Sequential:
            m.__dict__.pop("_lincore_runner", None)
            m.__class__ = _tnn.Sequential
        elif "_lincore_original" in type(m).__dict__:
            m.__dict__.pop("_lincore_traced", None)
            m.__class__ = type(m)._lincore_original
    _untraced.pop(model, None)
    return model
