"""lincore.onnx.load: an ONNX graph as a lincore module. Runs of lincore layers (a dense chain:
Gemm, MatMul + Add, activations, softmax, Flatten, Identity, Dropout, same-type Cast, batch
Reshape) become one nn.Sequential each, which runs natively as one call; the ops around them
(scikit-learn's ArgMax, ArrayFeatureExtractor, ZipMap, Concat, ...) run as numpy steps, except
in the common classifier graph (the chain, its arg-max's labels, ZipMap), which is one C++ call
(_core.ChainRun)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core, nn
from .._creation import as_tensor, wrap_array
from ..nn.module import Module, _last_token
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
        _graph.fuse_label_lookup(g)
        steps, chains = _plan(g)
        classifier = _classifier(steps, g)
        steps = _compose(steps, g)
        self.chains = _Chains(chains)
        object.__setattr__(self, "input_names", tuple(g.inputs))
        object.__setattr__(self, "output_names", tuple(g.outputs))
        object.__setattr__(self, "_steps", steps)
        needed = {n for _, ins, _ in steps for n in ([ins] if isinstance(ins, str) else ins)}
        needed |= set(g.outputs)
        consts = {k: v for k, v in g.consts.items() if k in needed}
        for v in consts.values():
            v.setflags(write=False)  # so that an output that is a constant or a view is copied
        object.__setattr__(self, "_consts", consts)
        # The common case, a graph that is one dense chain from its input to its output, is one
        # call of that chain's plan, straight from C++ (_core.ChainRun); so is the common
        # classifier (a chain to the probabilities, then their labels and maybe ZipMap's dicts).
        # The run gives NotImplemented when the chain is no longer one native run (a member
        # replaced by a Python module): the steps then run.
        only_of = None  # the run's arguments (what a copy rebuilds it from)
        if len(steps) == 1 and len(g.inputs) == 1 and len(g.outputs) == 1:
            fn, ins, outs = steps[0]
            if isinstance(fn, nn.Sequential) and ins == g.inputs[0] and outs == g.outputs[0]:
                only_of = (fn, g.inputs[0])
        if classifier is not None:
            seq, classes, keys, codes = classifier
            only_of = (seq, g.inputs[0], classes, keys, codes)
        object.__setattr__(self, "_only_of", only_of)
        object.__setattr__(self, "_only", None if only_of is None else _chain_run(*only_of))
        self.eval()

    def __call__(self, *inputs: Any, **named: Any) -> Any:
        # Module.__call__ calls forward; this is forward with the one-call graphs taken first,
        # a Python frame less (0.1 us of a 2 us call).
        only = self._only
        if only is not None and len(inputs) == 1 and not named:
            out = only(inputs[0])
            if out is not NotImplemented:
                return out
        return self._run(self._bind(inputs, named))

    forward = __call__

    # The run is native (Module.__getstate__ would rebuild it empty): a copy makes its own,
    # over the copy's chain.
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_native_caches"].pop("_only", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        of = self.__dict__.get("_only_of")
        object.__setattr__(self, "_only", None if of is None else _chain_run(*of))

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
            if outs.__class__ is str:  # a unary step (see _compose): one value in, one out
                env[outs] = fn(env[ins])
                continue
            got = fn(*[env[n] if n else None for n in ins])
            for name, value in zip(outs, got):
                if name:
                    env[name] = value
        inputs = [env[n] for n in self.input_names]
        result = tuple(_output(env[n], inputs) for n in self.output_names)
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


def _output(v: Any, inputs: list) -> Any:
    """A numeric numpy result as a lincore tensor: over its memory when numpy computed it fresh
    for this call, else over a copy (a view, or an input or constant passed through; constants
    are read-only, which wrap_array copies); anything else (strings, ZipMap's dicts, tensors) as
    it is."""
    if v.__class__ is not np.ndarray or v.dtype not in _TENSOR_DTYPES:
        return v
    if v.base is None and v.flags.c_contiguous and not any(v is x for x in inputs):
        return _core._from_buffer(v)  # fresh: numpy's allocation is aligned and writeable
    return wrap_array(np.array(v, order="C", copy=True))


# The numpy dtypes a lincore tensor holds (the others stay numpy arrays).
_TENSOR_DTYPES = frozenset(np.dtype(t) for t in (np.float32, np.float64, np.int64, np.bool_))


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


def _chain_run(seq: nn.Sequential, input_name: str, *classifier: Any) -> Any:
    """seq's native run as one C++ call, with a classifier's (classes, ZipMap keys, output
    codes) after it when given; it asks seq for its current plan whenever a module changed."""
    return _core.ChainRun(
        lambda: seq._current_plan().only, _last_token, as_tensor, input_name, *classifier
    )


# _core.ChainRun's codes for what each graph output is.
_PROBABILITIES, _LABELS, _ZIPMAP = 0, 1, 2


def _classifier(steps: list, g: _graph.Graph) -> tuple | None:
    """(chain, classes, ZipMap's keys or None, output codes) when the graph is the common
    classifier that scikit-learn's converters write: one 2-D float input, a dense chain from it
    to the probabilities P, then only the label lookup of P's arg-max along its last axis
    (_graph.fuse_label_lookup's node, with int64 or string labels) and at most one ZipMap of P,
    each graph output one of those. Else None (the steps run one by one)."""
    info = g.info.get(g.inputs[0]) if len(g.inputs) == 1 else None
    if info is None or info.rank != 2 or info.dtype not in _FLOAT_DTYPES or not steps:
        return None
    seq, ins, outs = steps[0]
    if not isinstance(seq, nn.Sequential) or ins != [g.inputs[0]]:
        return None
    probs = outs[0]
    width = (g.info[probs].shape or (None, None))[-1]
    codes = {probs: _PROBABILITIES}
    classes = keys = None
    for _, _ins, outs in steps[1:]:
        node = g.producer.get(outs[0])
        if node is None or node.inputs != [probs] or len(node.outputs) != 1:
            return None
        if node.op == "lincore.Label" and classes is None:
            classes = node.attrs.get("classes", "TENSOR")
            ok = classes.dtype == np.int64 or all(isinstance(c, str) for c in classes)
            if not ok or node.attrs.get("axis", "INT") not in (1, -1):
                return None
            codes[node.outputs[0]] = _LABELS
        elif node.op == "ZipMap" and node.domain == _graph.ML_DOMAIN and keys is None:
            keys = node.attrs.get("classlabels_int64s", "INTS")
            if keys is None:
                keys = node.attrs.get("classlabels_strings", "STRINGS")
            codes[node.outputs[0]] = _ZIPMAP
        else:
            return None
    if classes is None or any(o not in codes for o in g.outputs):
        return None
    if keys is not None and len(keys) != len(classes):
        return None
    if width is not None and width != len(classes):
        return None
    return seq, classes, None if keys is None else list(keys), [codes[o] for o in g.outputs]


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _compose(steps: list, g: _graph.Graph) -> list:
    """The steps with their constant inputs bound, and runs of unary steps (one value in, one
    used value out: a chain's Sequential, ArgMax, Reshape by a constant shape, Cast, ...)
    merged into one step each, so that a call does one dict read and write per run instead of
    per node. A unary step is (fn, input name, output name); any other (fn, inputs, outputs)."""
    out: list = []
    producer_of: dict[str, int] = {}  # a unary step's output -> its index in `out`
    for fn, ins, outs in steps:
        unary = _unary(fn, ins, outs, g)
        if unary is None:
            out.append((fn, ins, outs))
            continue
        f, src, dst = unary
        k = producer_of.pop(src, None)
        if k is not None and g.only_use(src) is not None:
            first, first_src, _ = out[k]
            out[k] = (_then(first, f), first_src, dst)
            producer_of[dst] = k
            continue
        out.append((f, src, dst))
        producer_of[dst] = len(out) - 1
    return out


def _unary(fn: Any, ins: list, outs: list, g: _graph.Graph) -> tuple | None:
    if isinstance(fn, nn.Sequential):  # (a chain over a constant input reads it from env)
        return fn, ins[0], outs[0]
    live = [o for o in outs if o]
    runtime = [i for i, n in enumerate(ins) if n and n not in g.consts]
    if len(live) != 1 or len(runtime) != 1 or outs.index(live[0]) != 0:
        return None
    pos = runtime[0]
    args = [g.consts.get(n) if n else None for n in ins]
    if len(args) == 1:
        return (lambda v: fn(v)[0]), ins[pos], live[0]

    def f(v: Any) -> Any:
        a = list(args)
        a[pos] = v
        return fn(*a)[0]

    return f, ins[pos], live[0]


def _then(f: Any, h: Any) -> Any:
    return lambda v: h(f(v))
