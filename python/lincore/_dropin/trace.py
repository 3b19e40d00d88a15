"""Custom modules in lincore.optimize: a module whose forward chains supported layers (self.fc1,
F.relu, self.fc2, ...) is traced with torch.fx, each chain of two or more supported steps becomes
one lincore run (FusedRun), and the module's class becomes a subclass of its own whose forward is
the traced graph with those runs in it. Its children, parameters and attributes stay as they
were. A forward that torch.fx cannot trace (data-dependent control flow, ...) is left as it is:
its Sequentials are still swapped. Imports torch.
"""

from __future__ import annotations

from typing import Any

import torch

from .dynamo import shell_of
from .run import FusedRun

_tnn = torch.nn


class _ChildrenAsLeaves(torch.fx.Tracer):
    """Every child module is a leaf: a call of it is one node (its own forward, swapped or not,
    runs it)."""

    def is_leaf_module(self, m: Any, module_qualified_name: str) -> bool:
        return True


class Traced:
    """A traced module's forward and what it was made from (the children, each Dropout's mode):
    made again when they change."""

    def __init__(self, module: Any, options: dict, why_not_fused: Any) -> None:
        self.options = options
        self.why_not_fused = why_not_fused
        self.retrace(module)

    def retrace(self, module: Any) -> None:
        # The module's own forward is traced, not the swapped one.
        swapped = type(module)
        original = swapped.__dict__.get("_lincore_original", swapped)
        module.__class__ = original
        try:
            graph = _ChildrenAsLeaves().trace(module)
        finally:
            module.__class__ = swapped
        self.fused: list = []
        self.not_fused: list = []
        quantize = self.options.get("quantize")
        runs = _fuse_chains(graph, module, self.why_not_fused, quantize, self.fused, self.not_fused)
        code = graph.python_code(root_module="self")
        namespace = dict(code.globals)
        exec(code.src, namespace)  # noqa: S102 (torch.fx's own generated code)
        self.forward = namespace["forward"]
        self.runs = runs
        self.held = tuple(module._modules.values())
        self.modes = [(m, m.training) for m in self.held if type(m) is _tnn.Dropout]

    def stale(self, module: Any) -> bool:
        if tuple(module._modules.values()) != self.held:
            return True
        return any(m.training is not mode for m, mode in self.modes)


def _leaf(m: Any) -> bool:
    """Whether m is not itself run by lincore (a swapped Sequential, a traced module)."""
    return "_lincore_runner" not in m.__dict__ and "_lincore_traced" not in m.__dict__


def _step_of(node: Any, root: Any, why_not_fused: Any, quantize: Any) -> tuple[Any, str | None]:
    """(the torch layer a node runs, or None; why it is not fused, for the report)."""
    if node.op == "call_module":
        m = root.get_submodule(node.target)
        if not _leaf(m):
            return None, None  # a Sequential or module that lincore runs on its own
        why = why_not_fused(m, quantize)
        return (m, None) if why is None else (None, why)
    made = shell_of(node)
    if made is not None and not made[1]:  # an activation function; parameters come as modules
        return made[0], None
    return None, None


def _fuse_chains(
    graph: Any, root: Any, why_not_fused: Any, quantize: Any, fused: list, not_fused: list
) -> list:
    """Replaces each chain of two or more supported steps (each the only user of the one before)
    in graph with a call of one FusedRun; returns the runs."""
    chains: list = []
    chain: list = []
    for node in graph.nodes:
        layer, why = _step_of(node, root, why_not_fused, quantize)
        if layer is not None and chain:
            prev = chain[-1][0]
            joins = node.args[:1] == (prev,) and len(prev.users) == 1
            if not (joins and len(node.all_input_nodes) == 1):
                chains.append(chain)
                chain = []
        if layer is not None and len(node.all_input_nodes) == 1:
            chain.append((node, layer))
            continue
        if chain:
            chains.append(chain)
            chain = []
        if why is not None:
            not_fused.append((node.target, why))
    if chain:
        chains.append(chain)
    runs = []
    for chain in chains:
        if len(chain) < 2:
            continue
        run = FusedRun([layer for _, layer in chain], quantize)
        first, last = chain[0][0], chain[-1][0]
        with graph.inserting_before(first):
            call = graph.call_function(_as_function(run), (first.args[0],))
        last.replace_all_uses_with(call)
        for node, _ in reversed(chain):
            graph.erase_node(node)
        runs.append(run)
        fused.append([str(n.target) if n.op == "call_module" else n.name for n, _ in chain])
    graph.lint()
    return runs


def _as_function(run: FusedRun) -> Any:
    """The run as a function (torch.fx's generated code names what it calls)."""

    def lincore_run(x: Any) -> Any:
        return run(x)

    lincore_run.__name__ = lincore_run.__qualname__ = f"lincore_run_{run.key}"
    return lincore_run


_classes: dict = {}


def traced_class(cls: type) -> type:
    """cls's subclass for traced instances (one per class, same name)."""
    sub = _classes.get(cls)
    if sub is None:

        def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
            traced = self.__dict__["_lincore_traced"]
            if torch._C._get_tracing_state() is not None:
                return cls.forward(self, *args, **kwargs)  # torch.jit.trace records torch's ops
            if traced.stale(self):
                try:
                    traced.retrace(self)
                except Exception:  # the changed module no longer traces: its own forward
                    return cls.forward(self, *args, **kwargs)
            return traced.forward(self, *args, **kwargs)

        def __reduce_ex__(self: Any, protocol: Any) -> Any:
            from .swap import _reoptimize

            plain = cls.__new__(cls)
            state = self.__dict__
            plain.__dict__.update({k: v for k, v in state.items() if k != "_lincore_traced"})
            return (_reoptimize, (plain, self.__dict__["_lincore_traced"].options))

        sub = type(
            cls.__name__,
            (cls,),
            {
                "forward": forward,
                "__reduce_ex__": __reduce_ex__,
                "_lincore_original": cls,
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
            },
        )
        _classes[cls] = sub
    return sub


def swap_traced(module: Any, options: dict, why_not_fused: Any) -> str | None:
    """Traces module and swaps its class when a chain was fused; else why not (nothing
    changed)."""
    try:
        traced = Traced(module, options, why_not_fused)
    except Exception as e:  # noqa: BLE001 (any tracing failure leaves the module as it is)
        return f"torch.fx cannot trace its forward ({type(e).__name__}: {e})"
    if not traced.runs:
        return "its forward has no chain of two or more supported layers"
    module.__class__ = traced_class(type(module))
    object.__setattr__(module, "_lincore_traced", traced)
    return None
