"""torch.compile(model, backend="lincore"): the TorchDynamo backend, registered through the
torch_dynamo_backends entry point (pyproject.toml). Imports torch.

Dynamo hands over an FX graph of torch functions (F.linear, F.relu, ..., the parameters as graph
inputs). torch's CapabilityBasedPartitioner groups the supported nodes into partitions; each
partition that is a chain (every node feeds the next, parameters come in as graph inputs) runs
as one lincore call: a LincoreChain holding torch layer shells (the layers the nodes are calls
of) and the FusedRun of lincore.optimize over them, so it is the same path, with the same checks
and fallbacks, as a swapped Sequential. The rest of the graph runs as torch runs it.

Training: the graph runs under torch's eager autograd, where the FusedRun's
torch.autograd.Function carries lincore's C++ backward of the whole chain. aot_autograd is not
used: it would trace through that backward into aten ops and take the chain apart again.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.operator_support import OperatorSupportBase

from .. import _core
from .run import FusedRun

_F = torch.nn.functional
_chain_forward = _core._dropin_chain_forward
_tnn = torch.nn


def _activation(make: Callable[..., Any]) -> Callable[..., Any]:
    """A shell maker for a one-input function: make(*the node's other arguments)."""
    return lambda node: (make(node), [])


def _linear(node: Any) -> Any:
    weight, bias = _arg(node, 1, "weight", None), _arg(node, 2, "bias", None)
    shell = _shell(_tnn.Linear)
    shell._parameters["bias"] = None
    return shell, [("weight", weight)] + ([("bias", bias)] if bias is not None else [])


def _layer_norm(node: Any) -> Any:
    args = list(node.args) + [None] * (5 - len(node.args))
    shape, weight, bias, eps = args[1], args[2], args[3], args[4]
    shape = node.kwargs.get("normalized_shape", shape)
    weight = node.kwargs.get("weight", weight)
    bias = node.kwargs.get("bias", bias)
    eps = node.kwargs.get("eps", 1e-5 if eps is None else eps)
    shell = _shell(_tnn.LayerNorm)
    shell.normalized_shape = tuple(shape)
    shell.eps = float(eps)
    shell.elementwise_affine = weight is not None
    shell._parameters["weight"] = None
    shell._parameters["bias"] = None
    params = [("weight", weight)] if weight is not None else []
    return shell, params + ([("bias", bias)] if bias is not None else [])


def _shell(cls: type) -> Any:
    """A module of class cls with no parameters yet (built without its __init__, which would
    draw random numbers for a Linear); LincoreChain gives it the graph's tensors per call."""
    shell = cls.__new__(cls)
    _tnn.Module.__init__(shell)
    return shell


def _arg(node: Any, i: int, name: str, default: Any) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _softmax(cls: type) -> Callable[..., Any]:
    def make(node: Any) -> Any:
        if _arg(node, 3, "dtype", None) is not None:
            return None
        return cls(dim=_arg(node, 1, "dim", None)), []

    return make


def _dropout(node: Any) -> Any:
    p, training = _arg(node, 1, "p", 0.5), _arg(node, 2, "training", True)
    if training and p > 0:
        return None  # its mask comes from torch's generator, in torch
    return _tnn.Identity(), []


def _flatten(node: Any) -> Any:
    return _tnn.Flatten(_arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1)), []


def _gelu(node: Any) -> Any:
    return _tnn.GELU(approximate=_arg(node, 1, "approximate", "none")), []


def _leaky(node: Any) -> Any:
    return _tnn.LeakyReLU(_arg(node, 1, "negative_slope", 0.01)), []


_FUNCTIONS: dict = {
    torch._C._nn.linear: _linear,
    _F.linear: _linear,
    _F.relu: _activation(lambda node: _tnn.ReLU()),
    torch.relu: _activation(lambda node: _tnn.ReLU()),
    _F.leaky_relu: _leaky,
    torch._C._nn.gelu: _gelu,
    _F.gelu: _gelu,
    torch.sigmoid: _activation(lambda node: _tnn.Sigmoid()),
    _F.sigmoid: _activation(lambda node: _tnn.Sigmoid()),
    torch.tanh: _activation(lambda node: _tnn.Tanh()),
    _F.tanh: _activation(lambda node: _tnn.Tanh()),
    _F.softmax: _softmax(_tnn.Softmax),
    _F.log_softmax: _softmax(_tnn.LogSoftmax),
    _F.layer_norm: _layer_norm,
    _F.dropout: _dropout,
    torch.flatten: _flatten,
}
# Where functions take their inplace flag: (position, keyword).
_INPLACE: dict = {
    _F.relu: (1, "inplace"),
    _F.leaky_relu: (2, "inplace"),
    _F.dropout: (3, "inplace"),
}
_METHODS: dict = {
    "flatten": _flatten,
    "relu": _activation(lambda node: _tnn.ReLU()),
    "sigmoid": _activation(lambda node: _tnn.Sigmoid()),
    "tanh": _activation(lambda node: _tnn.Tanh()),
    "softmax": _softmax(_tnn.Softmax),
    "log_softmax": _softmax(_tnn.LogSoftmax),
}


def shell_of(node: Any) -> Any:
    """(torch layer shell, [(parameter name, graph node)]) for a node lincore runs, else None."""
    if node.op == "call_function":
        make = _FUNCTIONS.get(node.target)
    elif node.op == "call_method":
        make = _METHODS.get(node.target)
    else:
        return None
    if make is None:
        return None
    inplace = _INPLACE.get(node.target)
    if inplace is not None and _arg(node, *inplace, False):
        return None  # an in-place op on its input: left to torch
    try:
        return make(node)
    except (TypeError, ValueError, IndexError):
        return None


class _Support(OperatorSupportBase):
    def is_node_supported(self, submodules: Any, node: Any) -> bool:
        return shell_of(node) is not None


class LincoreChain:
    """A chain of the graph's nodes run as one lincore call (FusedRun over layer shells whose
    parameters are the graph's inputs, set on every call: the same tensors, call after call,
    so the run's per-call check finds its lincore views current). A plain callable: the graph
    calls it through _core._dropin_chain_forward, which makes this call in C (dropin.cpp's
    chain_forward) and calls this method where it does not take the call."""

    def __init__(self, shells: list, data_index: int, param_indexes: list) -> None:
        self.shells = shells
        self.data_index = data_index
        self.param_indexes = param_indexes  # (shell index, name, input index)
        for i, name, _ in param_indexes:
            shells[i]._parameters[name] = None
        self.run: FusedRun | None = None
        # What the call in C reads, once the run is made: ([(a shell's _parameters, name,
        # input index)], the data input's index, the run).
        self.fast: tuple | None = None

    def __call__(self, *inputs: Any) -> Any:
        for i, name, j in self.param_indexes:
            self.shells[i]._parameters[name] = inputs[j]
        if self.run is None:
            self.run = FusedRun(self.shells)
            slots = [(self.shells[i]._parameters, name, j) for i, name, j in self.param_indexes]
            self.fast = (slots, self.data_index, self.run)
        return self.run(inputs[self.data_index])


def _chain(sub: Any) -> LincoreChain | None:
    """A LincoreChain for a fused partition's GraphModule when it is a chain, else None."""
    nodes = list(sub.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    body = [n for n in nodes if n.op in ("call_function", "call_method")]
    outputs = [n for n in nodes if n.op == "output"]
    if not body or len(outputs) != 1 or len(body) + len(placeholders) + 1 != len(nodes):
        return None
    out = outputs[0].args[0]
    if isinstance(out, (tuple, list)):
        if len(out) != 1:
            return None
        out = out[0]
    if out is not body[-1]:
        return None
    index = {n: i for i, n in enumerate(placeholders)}
    shells, param_indexes = [], []
    data: Any = None
    for k, node in enumerate(body):
        made = shell_of(node)
        if made is None:
            return None
        shell, params = made
        first = node.args[0] if node.args else None
        if k == 0:
            if first not in index:
                return None
            data = index[first]
        elif first is not body[k - 1] or len(body[k - 1].users) != 1:
            return None
        for name, p in params:
            if p not in index or index[p] == data:
                return None
            param_indexes.append((len(shells), name, index[p]))
        shells.append(shell)
    return LincoreChain(shells, data, param_indexes)


def backend(gm: Any, example_inputs: list) -> Callable[..., Any]:
    """The "lincore" backend: supported chains run as lincore calls, the rest as torch runs
    them."""
    partitioner = CapabilityBasedPartitioner(gm, _Support(), allows_single_node_partition=True)
    partitions = partitioner.propose_partitions()
    if not partitions:
        return _generated_forward(gm)
    fused = partitioner.fuse_partitions(partitions)
    for node in list(fused.graph.nodes):
        if node.op != "call_module":
            continue
        sub = fused.get_submodule(node.target)
        chain = _chain(sub) if isinstance(sub, torch.fx.GraphModule) else None
        if chain is not None:
            with fused.graph.inserting_before(node):
                call = fused.graph.call_function(_as_function(chain, node.target), node.args)
            node.replace_all_uses_with(call)
            fused.graph.erase_node(node)
            fused.delete_submodule(node.target)
    fused.recompile()
    return _generated_forward(fused)


def _generated_forward(gm: Any) -> Callable[..., Any]:
    """gm's generated forward. torch.fx makes a lazy GraphModule's code when it is first read;
    until then its forward is a stand-in that makes it and calls the module through
    Module.__call__ (about 2.5 us a call when that stand-in is what the graph keeps)."""
    gm.code  # noqa: B018
    return gm.forward


def _as_function(chain: LincoreChain, name: str) -> Callable[..., Any]:
    """The chain as a function (torch.fx's generated code names what it calls): the call in C,
    with no Python frame (functools.partial calls through C too)."""
    call: Any = functools.partial(_chain_forward, chain)
    call.__name__ = call.__qualname__ = f"lincore_{name}"
    call.__module__ = __name__
    return call


__all__ = ["backend", "LincoreChain"]
