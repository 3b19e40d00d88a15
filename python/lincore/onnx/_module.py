"""lincore.onnx.load: an ONNX graph as a lincore module. Runs of lincore layers (a dense chain:
Gemm, MatMul + Add, activations, softmax, Flatten, Identity, Dropout, same-type Cast, batch
Reshape) become one nn.Sequential each, which runs natively as one call; the ops around them
(scikit-learn's ArgMax, ArrayFeatureExtractor, ZipMap, Concat, ...) run as numpy steps."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core, nn
from .._creation import from_numpy_dtype, wrap_array
from ..nn.module import Module
from . import _graph, _ops
from ._proto import read_model

_Tensor = _core.Tensor


def load(model: Any) -> OnnxModule:
    """The ONNX model at `model` (a path, bytes or an onnx.ModelProto) as a lincore module.

    Call it with the graph's inputs (numpy arrays or lincore tensors, positionally in the order
    of `input_names` or by name); it returns the graph's output, or a tuple of them when the
    graph has several (`output_names`). Numeric outputs are lincore tensors, string tensors numpy
    arrays, and ZipMap's output a list of dicts, as onnxruntime gives it.

    An op lincore does not run, or a malformed or hostile file (truncated, cyclic, pointing to
    external data, wrongly typed, ...) is a ValueError here, at load time."""
    return OnnxModule(read_model(model))


class _Chain:
    """A run of fused layers while it is being built: its input value and its last output."""

    __slots__ = ("input", "tail", "layers", "names")

    def __init__(self, input: str) -> None:
        self.input, self.tail, self.layers, self.names = input, input, [], []


class OnnxModule(Module):
    """An ONNX graph run by lincore (see lincore.onnx.load). `chains` holds the nn.Sequential
    of each dense chain; `input_names` and `output_names` are the graph's."""

    def __init__(self, proto: Any) -> None:
        super().__init__()
        g = _graph.Graph(proto)
        _graph.fuse_matmul_add(g)
        _graph.fuse_erf_gelu(g)
        steps, chains = _plan(g)
        self.chains = _Chains(chains)
        object.__setattr__(self, "input_names", tuple(g.inputs))
        object.__setattr__(self, "output_names", tuple(g.outputs))
        object.__setattr__(self, "_steps", steps)
        needed = {n for _, ins, _ in steps for n in ins} | set(g.outputs)
        consts = {k: v for k, v in g.consts.items() if k in needed}
        object.__setattr__(self, "_consts", consts)
        # The common case, a graph that is one dense chain from its input to its output, is one
        # call of that chain's Sequential (which is one native plan call).
        only = None
        if len(steps) == 1 and len(g.inputs) == 1 and len(g.outputs) == 1:
            fn, ins, outs = steps[0]
            if isinstance(fn, nn.Sequential) and ins == [g.inputs[0]] and outs == g.outputs:
                only = fn
        object.__setattr__(self, "_only", only)
        self.eval()

    def forward(self, *inputs: Any, **named: Any) -> Any:
        only = self._only
        if only is not None and len(inputs) == 1 and not named:
            return only(inputs[0])
        return self._run(self._bind(inputs, named))

    def _bind(self, inputs: tuple, named: dict) -> dict:
        names = self.input_names
        if len(inputs) > len(names):
            raise TypeError(
                f"forward() takes {len(names)} inputs ({', '.join(names)}), but {len(inputs)} "
                "were given"
            )
        env = dict(self._consts)
        env.update(zip(names, inputs))
        for k, v in named.items():
            if k not in names:
                raise TypeError(f"forward() got an unexpected input {k!r}; inputs: {names}")
            if k in env and k not in self._consts:
                raise TypeError(f"forward() got input {k!r} twice")
            env[k] = v
        missing = [n for n in names[len(inputs) :] if n not in named]
        if missing:
            raise TypeError(f"forward() is missing inputs: {', '.join(missing)}")
        return env

    def _run(self, env: dict) -> Any:
        for fn, ins, outs in self._steps:
            if isinstance(fn, nn.Sequential):
                got = (fn(env[ins[0]]),)
            else:
                got = fn(*[env[n] if n else None for n in ins])
            for name, value in zip(outs, got):
                if name:
                    env[name] = value
        result = tuple(_output(env[n]) for n in self.output_names)
        return result[0] if len(result) == 1 else result

    def extra_repr(self) -> str:
        return f"inputs={list(self.input_names)}, outputs={list(self.output_names)}"


class _Chains(Module):
    """The dense chains' Sequentials, as children named chain0, chain1, ... (so that
    parameters(), state_dict() and printing see them)."""

    def __init__(self, chains: list) -> None:
        super().__init__()
        for i, c in enumerate(chains):
            self.add_module(f"chain{i}", c)

    def forward(self, *args: Any) -> Any:
        raise RuntimeError("the chains of an OnnxModule run as part of it")


def _output(v: Any) -> Any:
    """A numeric numpy result as a lincore tensor over a copy (it may be a view of a constant
    or of an input); anything else (strings, ZipMap's dicts, tensors) as it is."""
    if isinstance(v, np.ndarray) and from_numpy_dtype(v.dtype) is not None:
        return wrap_array(np.array(v, order="C", copy=True))
    return v


def _plan(g: _graph.Graph) -> tuple[list, list]:
    """The steps (fn, input names, output names) in dependency order, each an nn.Sequential of
    a dense chain or an op's run, and the chains' Sequentials."""
    entries: list = []  # _Chain or (fn, ins, outs)
    open_chains: dict[str, _Chain] = {}  # a chain's tail value -> the chain, while extendable
    for node in g.nodes:
        op = _ops.build(g, node)
        for name, info in zip(node.outputs, op.out):
            if name:
                g.info[name] = info
        if op.layers is None:
            entries.append((op.run, node.inputs, node.outputs))
            continue
        chain = open_chains.pop(node.inputs[0], None)
        if chain is None:
            chain = _Chain(node.inputs[0])
            entries.append(chain)
        chain.layers.extend(op.layers)
        chain.names.append(node.where)
        chain.tail = node.outputs[0]
        if g.only_use(chain.tail) is not None:
            open_chains[chain.tail] = chain
    steps, chains = [], []
    for e in entries:
        if isinstance(e, _Chain):
            seq = nn.Sequential(*e.layers)
            seq.eval()
            chains.append(seq)
            steps.append((seq, [e.input], [e.tail]))
        else:
            steps.append(e)
    return steps, chains
