"""The ONNX ops lincore runs. For each, a builder checks the node at load time and returns an Op:
`run`, a function of the input values (numpy arrays or lincore tensors) giving a tuple of
outputs, the static Info of its outputs, and, for the ops that are lincore layers (Gemm or
MatMul with a constant weight, the activations, softmax, Flatten, ...), `layers`: the lincore.nn
modules that compute it from its first input, so that a chain of them becomes one native run.
`run` is used for every node that is not part of such a chain (and is how onnx's backend node
tests, whose weights are inputs, run)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import _core, nn
from .._creation import as_tensor, tensor
from .._interop import _linear
from .._tensor import matmul
from ..nn import functional as F
from ..nn.parameter import Parameter
from ._graph import ML_DOMAIN, Graph, Info, Node
from ._proto import NUMPY_TYPES, Attrs, type_name

_Tensor = _core.Tensor
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class Op:
    __slots__ = ("run", "out", "layers")

    def __init__(self, run: Callable, out: list, layers: list | None = None) -> None:
        self.run, self.out, self.layers = run, out, layers


def _np(v: Any) -> Any:
    return v if isinstance(v, np.ndarray) else np.asarray(v)


def _lc(v: Any) -> Any:
    return v if isinstance(v, _Tensor) else as_tensor(np.asarray(v))


def _count(node: Node, lo: int, hi: int, outs: int = 1) -> None:
    n = len(node.inputs)
    while n and not node.inputs[n - 1]:  # trailing optional inputs left out
        n -= 1
    if not lo <= n <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        raise ValueError(f"{node.where}: expected {want} inputs, got {n}")
    for i in range(lo):
        if not node.inputs[i]:
            raise ValueError(f"{node.where}: input {i} is required but left out")
    if len(node.outputs) < 1 or len([o for o in node.outputs if o]) > outs:
        raise ValueError(f"{node.where}: expected at most {outs} outputs, got {len(node.outputs)}")


def _info(g: Graph, name: str) -> Info:
    return g.info.get(name) or Info()


def _float_input(g: Graph, node: Node, name: str) -> np.dtype | None:
    d = _info(g, name).dtype
    if d is not None and d not in _FLOATS:
        raise ValueError(
            f"{node.where}: input {name!r} is {d}; lincore runs this op on float32 or float64"
        )
    return d


def _axis(node: Node, axis: int, rank: int | None, extra: int = 0) -> int | None:
    """axis normalised to [0, rank + extra) when the rank is known (ValueError when outside)."""
    if rank is None:
        return None
    if not -rank <= axis < max(rank + extra, 1):
        raise ValueError(f"{node.where}: axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _param(arr: np.ndarray) -> Parameter:
    # A copy in lincore's own storage: a tensor over numpy's memory could be written behind the
    # pack cache's back, so its weights would be packed again on every call.
    return Parameter(tensor(arr), requires_grad=False)


def linear_layer(weight: np.ndarray, bias: np.ndarray | None) -> nn.Linear:
    """A lincore Linear holding copies of weight (N, K) and bias (N,)."""
    return _linear(_param(weight), None if bias is None else _param(bias))


# --- dense ops -------------------------------------------------------------------------------


def _gemm(g: Graph, node: Node) -> Op:
    _count(node, 2, 3)
    a = node.attrs
    alpha = float(a.get("alpha", "FLOAT", 1.0))
    beta = float(a.get("beta", "FLOAT", 1.0))
    trans_a = int(a.get("transA", "INT", 0))
    trans_b = int(a.get("transB", "INT", 0))
    x, bname = node.inputs[0], node.inputs[1]
    cname = node.inputs[2] if len(node.inputs) > 2 else ""
    dt = _float_input(g, node, x)
    _float_input(g, node, bname)
    b, c = g.const(bname), g.const(cname)
    binfo = _info(g, bname)
    n_out = None
    if binfo.shape is not None and len(binfo.shape) == 2:
        n_out = binfo.shape[0 if trans_b else 1]
    ainfo = _info(g, x)
    m = None if ainfo.shape is None or len(ainfo.shape) != 2 else ainfo.shape[1 if trans_a else 0]
    out = [Info(dt or binfo.dtype, (m, n_out))]

    def run(av: Any, bv: Any, cv: Any = None) -> tuple:
        an, bn = _np(av), _np(bv)
        if an.ndim != 2 or bn.ndim != 2:
            raise ValueError(
                f"{node.where}: Gemm takes 2-D A and B, got shapes {an.shape} and {bn.shape}"
            )
        if trans_a:
            an = an.T
        w = bn if trans_b else bn.T
        y = np.asarray(_core.linear(_lc(an), _lc(w)))
        if alpha != 1.0:
            y = y * y.dtype.type(alpha)
        if cv is not None and beta != 0.0:
            cn = _np(cv).astype(y.dtype, copy=False)
            y = y + (cn if beta == 1.0 else cn * y.dtype.type(beta))
        return (y,)

    layers = None
    if (
        b is not None
        and b.ndim == 2
        and b.dtype in _FLOATS
        and not trans_a
        and cname in ("", *g.consts)
    ):
        if dt is not None and dt != b.dtype:
            raise ValueError(f"{node.where}: input {x!r} is {dt} but the weight is {b.dtype}")
        w = b if trans_b else b.T
        n = w.shape[0]
        bias = None
        if c is not None and beta != 0.0:
            if c.size in (1, n) and (c.ndim <= 1 or c.shape[-1] == c.size) and c.ndim <= 2:
                bias = np.broadcast_to(c.reshape(-1), (n,)).astype(b.dtype) * b.dtype.type(beta)
        if c is None or beta == 0.0 or bias is not None:
            w = w * b.dtype.type(alpha) if alpha != 1.0 else w
            layers = [linear_layer(w, bias)]
    return Op(run, out, layers)


def _linear_node(g: Graph, node: Node) -> Op:
    """MatMul + Add folded by _graph.fuse_matmul_add, or MatMul by a constant matrix."""
    _count(node, 1, 1)
    w = node.attrs.get("weight", "TENSOR")
    bias = node.attrs.get("bias", "TENSOR")
    dt = _float_input(g, node, node.inputs[0])
    if dt is not None and dt != w.dtype:
        raise ValueError(
            f"{node.where}: input {node.inputs[0]!r} is {dt} but the weight is {w.dtype}"
        )
    layer = linear_layer(w, bias)
    shape = _info(g, node.inputs[0]).shape
    out = [Info(w.dtype, None if shape is None else (*shape[:-1], w.shape[0]))]
    return Op(lambda x: (layer(_lc(x)),), out, [layer])


def _matmul(g: Graph, node: Node) -> Op:
    _count(node, 2, 2)
    x, wname = node.inputs
    w = g.const(wname)
    dt = _float_input(g, node, x)
    _float_input(g, node, wname)
    if w is not None and w.ndim == 2 and w.dtype in _FLOATS:
        fused = Node("lincore.Linear", "", node.name, [x], node.outputs, None)
        fused.attrs = Attrs(node.where, values={"weight": w.T.copy(), "bias": None})
        return _linear_node(g, fused)

    def run(av: Any, bv: Any) -> tuple:
        try:
            return (matmul(_lc(av), _lc(bv)),)
        except RuntimeError as e:
            raise ValueError(f"{node.where}: {e}") from None

    return Op(run, [Info(dt)])


# --- activations, softmax --------------------------------------------------------------------

_ACT = _core.ACTIVATIONS


def _activation(code: Any, slope: Any, layer: Callable[[Node], Any]) -> Callable:
    """The builder of an activation node. code and slope: the kernel's activation code and
    LeakyReLU slope, or functions of the node giving them; layer(node): its lincore module."""

    def build(g: Graph, node: Node) -> Op:
        _count(node, 1, 1)
        x = node.inputs[0]
        dt = _float_input(g, node, x)
        s = slope(node) if callable(slope) else slope
        c = code(node) if callable(code) else code
        run = lambda v: (_core.activation(_lc(v), c, s),)  # noqa: E731
        return Op(run, [Info(dt, _info(g, x).shape)], [layer(node)])

    return build


def _leaky_slope(node: Node) -> float:
    return float(node.attrs.get("alpha", "FLOAT", 0.01))


def _gelu_code(node: Node) -> int:
    approx = node.attrs.get("approximate", "STRING", "none")
    if approx not in ("none", "tanh"):
        raise ValueError(f"{node.where}: approximate must be 'none' or 'tanh', got {approx!r}")
    return _ACT["gelu"] if approx == "none" else _ACT["gelu_tanh"]


def _softmax(log: bool) -> Callable:
    module = nn.LogSoftmax if log else nn.Softmax
    fn = F.log_softmax if log else F.softmax

    def build(g: Graph, node: Node) -> Op:
        _count(node, 1, 1)
        x = node.inputs[0]
        dt = _float_input(g, node, x)
        info = _info(g, x)
        legacy = g.opsets[""] < 13  # before 13: softmax over the dims from axis on, as a 2-D
        axis = int(node.attrs.get("axis", "INT", 1 if legacy else -1))
        ax = _axis(node, axis, info.rank)

        def run(v: Any) -> tuple:
            t = _lc(v)
            r = t.dim()
            a = _axis(node, axis, r)
            if not legacy or a == r - 1:
                return (fn(t, a),)
            shape = list(t.shape)
            rows = int(np.prod(shape[:a], dtype=np.int64))
            flat = fn(t.reshape(rows, -1), 1)
            return (flat.reshape(*shape),)

        layers = None
        if not legacy:
            layers = [module(dim=axis)]
        elif ax is not None and ax == info.rank - 1:
            layers = [module(dim=-1)]
        return Op(run, [Info(dt, info.shape)], layers)

    return build


# --- shape and type ops ----------------------------------------------------------------------


def _flatten(g: Graph, node: Node) -> Op:
    _count(node, 1, 1)
    x = node.inputs[0]
    info = _info(g, x)
    axis = int(node.attrs.get("axis", "INT", 1))
    ax = _axis(node, axis, info.rank, extra=1)

    def run(v: Any) -> tuple:
        a = _np(v)
        k = _axis(node, axis, a.ndim, extra=1)
        rows = int(np.prod(a.shape[:k], dtype=np.int64))
        return (a.reshape(rows, int(np.prod(a.shape[k:], dtype=np.int64))),)

    layers = None
    shape = None
    if ax is not None:
        lead, tail = info.shape[:ax], info.shape[ax:]
        shape = (
            _prod(lead),
            _prod(tail),
        )
        if ax == 1 and info.rank >= 2:
            layers = [nn.Flatten(1, -1)] if info.rank > 2 else [nn.Identity()]
    return Op(run, [Info(info.dtype, shape)], layers)


def _prod(dims: tuple) -> int | None:
    if any(d is None for d in dims):
        return None
    return int(np.prod(dims, dtype=np.int64))


def _identity(g: Graph, node: Node) -> Op:
    _count(node, 1, 1)
    info = _info(g, node.inputs[0])
    layers = [nn.Identity()] if info.dtype is None or info.dtype in _FLOATS else None
    return Op(lambda v: (v,), [info], layers)


def _dropout(g: Graph, node: Node) -> Op:
    _count(node, 1, 3, outs=2)
    x = node.inputs[0]
    info = _info(g, x)
    training = node.inputs[2] if len(node.inputs) > 2 else ""
    if training:
        t = g.const(training)
        if t is None or bool(np.any(t)):
            raise ValueError(
                f"{node.where}: lincore runs Dropout for inference only (training_mode must be "
                "a constant False or left out)"
            )
    if int(node.attrs.get("is_test", "INT", 1)) == 0 and g.opsets[""] < 7:
        raise ValueError(f"{node.where}: lincore runs Dropout for inference only (is_test=0)")
    wants_mask = len(node.outputs) > 1 and node.outputs[1]

    def run(v: Any, *_: Any) -> tuple:
        if wants_mask:
            return (v, np.ones(_np(v).shape, np.bool_))
        return (v,)

    out = [info, Info(np.dtype(np.bool_), info.shape)]
    simple = not wants_mask and (info.dtype is None or info.dtype in _FLOATS)
    return Op(run, out, [nn.Identity()] if simple else None)


def _cast(g: Graph, node: Node) -> Op:
    _count(node, 1, 1)
    to = int(node.attrs.need("to", "INT"))
    dt = NUMPY_TYPES.get(to)
    if dt is None or to == 8:  # 8: STRING
        raise ValueError(f"{node.where}: lincore does not cast to {type_name(to)}")
    info = _info(g, node.inputs[0])

    def run(v: Any) -> tuple:
        a = _np(v)
        return (a if a.dtype == dt else a.astype(dt),)

    layers = [nn.Identity()] if info.dtype == dt and dt in _FLOATS else None
    return Op(run, [Info(dt, info.shape)], layers)


def _reshape(g: Graph, node: Node) -> Op:
    _count(node, 2, 2)
    x, sname = node.inputs
    allowzero = int(node.attrs.get("allowzero", "INT", 0))
    info = _info(g, x)
    target = g.const(sname)
    if target is not None and (target.dtype != np.int64 or target.ndim != 1):
        raise ValueError(f"{node.where}: shape must be a 1-D INT64 tensor, got {target.dtype}")

    def run(v: Any, s: Any) -> tuple:
        a = _np(v)
        shape = [int(d) for d in _np(s).ravel()]
        if not allowzero:
            shape = [a.shape[i] if d == 0 and i < a.ndim else d for i, d in enumerate(shape)]
        try:
            return (a.reshape(shape),)
        except ValueError as e:
            raise ValueError(
                f"{node.where}: cannot reshape a tensor of shape {list(a.shape)} to {shape} ({e})"
            ) from None

    layers, shape = None, None
    if target is not None and (allowzero or 0 not in target):
        fixed = [int(d) for d in target]  # no 0 to copy from the input: one numpy call

        def run(v: Any, s: Any = None) -> tuple:  # noqa: F811
            a = _np(v)
            try:
                return (a.reshape(fixed),)
            except ValueError as e:
                raise ValueError(
                    f"{node.where}: cannot reshape a tensor of shape {list(a.shape)} to {fixed} "
                    f"({e})"
                ) from None

    if target is not None:
        t = [int(d) for d in target]
        shape = tuple(None if d in (0, -1) else d for d in t)
        lead = info.shape[0] if info.shape else None
        batch = len(t) == 2 and (t[0] == -1 or (t[0] == 0 and not allowzero))
        if batch and info.shape is not None and len(info.shape) >= 2 and info.dtype in _FLOATS:
            width = _prod(info.shape[1:])
            if width is not None and width == t[1]:
                layers = [nn.Flatten(1, -1)] if len(info.shape) > 2 else [nn.Identity()]
                shape = (lead, width)
    return Op(run, [Info(info.dtype, shape)], layers)


# --- elementwise ------------------------------------------------------------------------------


def _binary(fn: Callable) -> Callable:
    def build(g: Graph, node: Node) -> Op:
        _count(node, 2, 2)
        a, b = (_info(g, n) for n in node.inputs)
        if a.dtype is not None and b.dtype is not None and a.dtype != b.dtype:
            raise ValueError(
                f"{node.where}: inputs must have the same type, got {a.dtype} and {b.dtype}"
            )

        def run(x: Any, y: Any) -> tuple:
            xa, ya = _np(x), _np(y)
            try:
                return (np.asarray(fn(xa, ya)).astype(xa.dtype, copy=False),)
            except ValueError as e:
                raise ValueError(f"{node.where}: {e}") from None

        shape = a.shape if a.shape is not None and a.shape == b.shape else None
        return Op(run, [Info(a.dtype or b.dtype, shape)])

    return build


def _concat(g: Graph, node: Node) -> Op:
    if not node.inputs:
        raise ValueError(f"{node.where}: expected at least 1 input")
    axis = int(node.attrs.need("axis", "INT"))
    if not all(node.inputs):
        raise ValueError(f"{node.where}: an input is left out")

    def run(*vs: Any) -> tuple:
        arrs = [_np(v) for v in vs]
        try:
            return (np.concatenate(arrs, axis=_axis(node, axis, arrs[0].ndim)),)
        except ValueError as e:
            raise ValueError(f"{node.where}: {e}") from None

    return Op(run, [Info(_info(g, node.inputs[0]).dtype)])


def _argmax(g: Graph, node: Node) -> Op:
    _count(node, 1, 1)
    axis = int(node.attrs.get("axis", "INT", 0))
    keep = int(node.attrs.get("keepdims", "INT", 1))
    last = int(node.attrs.get("select_last_index", "INT", 0))

    def run(v: Any) -> tuple:
        a = _np(v)
        k = _axis(node, axis, a.ndim)
        if last:
            flipped = np.argmax(np.flip(a, k), axis=k, keepdims=bool(keep))
            return ((a.shape[k] - 1 - flipped).astype(np.int64, copy=False),)
        return (np.argmax(a, axis=k, keepdims=bool(keep)).astype(np.int64, copy=False),)

    return Op(run, [Info(np.dtype(np.int64))])


def _array_feature_extractor(g: Graph, node: Node) -> Op:
    _count(node, 2, 2)

    def run(v: Any, i: Any) -> tuple:
        a, idx = _np(v), _np(i).ravel()
        if a.ndim == 0 or idx.dtype.kind not in "iu":
            raise ValueError(f"{node.where}: expected a tensor and integer indices")
        try:  # take checks the range ("raise" mode), and negative indices are refused first
            if idx.size and idx.min() < 0:
                raise IndexError("negative index")
            out = a.take(idx, axis=-1)
        except IndexError as e:
            raise ValueError(f"{node.where}: index out of range [0, {a.shape[-1]}): {e}") from None
        return (out.reshape(1, -1) if a.ndim == 1 else out,)

    return Op(run, [Info(_info(g, node.inputs[0]).dtype)])


def _zipmap(g: Graph, node: Node) -> Op:
    _count(node, 1, 1)
    a = node.attrs
    labels = a.get("classlabels_int64s", "INTS")
    if labels is None:
        labels = a.get("classlabels_strings", "STRINGS")
    if labels is None:
        raise ValueError(f"{node.where}: needs classlabels_int64s or classlabels_strings")

    def run(v: Any) -> tuple:
        arr = _np(v)
        if arr.ndim != 2 or arr.shape[1] != len(labels):
            raise ValueError(
                f"{node.where}: expected a (N, {len(labels)}) input, got {list(arr.shape)}"
            )
        return ([dict(zip(labels, row)) for row in arr.tolist()],)

    return Op(run, [Info()])


def _label(g: Graph, node: Node) -> Op:
    """_graph.fuse_label_lookup's node: class labels at the arg-max, shape (N,)."""
    _count(node, 1, 1)
    classes = node.attrs.get("classes", "TENSOR")
    axis = int(node.attrs.get("axis", "INT"))

    def run(v: Any) -> tuple:
        a = _np(v)
        idx = np.argmax(a, axis=_axis(node, axis, a.ndim)).ravel()
        try:
            return (classes.take(idx),)
        except IndexError as e:
            raise ValueError(f"{node.where}: class index out of range: {e}") from None

    return Op(run, [Info(classes.dtype, (None,))])


# (domain, op) -> builder. The error for any other op lists these.
BUILDERS: dict[tuple[str, str], Callable[[Graph, Node], Op]] = {
    ("", "Gemm"): _gemm,
    ("", "MatMul"): _matmul,
    ("", "lincore.Linear"): _linear_node,
    ("", "lincore.Label"): _label,
    ("", "Relu"): _activation(_ACT["relu"], 0.01, lambda n: nn.ReLU()),
    ("", "LeakyRelu"): _activation(
        _ACT["leaky_relu"], _leaky_slope, lambda n: nn.LeakyReLU(_leaky_slope(n))
    ),
    ("", "Sigmoid"): _activation(_ACT["sigmoid"], 0.01, lambda n: nn.Sigmoid()),
    ("", "Tanh"): _activation(_ACT["tanh"], 0.01, lambda n: nn.Tanh()),
    ("", "Gelu"): _activation(
        _gelu_code,
        0.01,
        lambda n: nn.GELU("none" if _gelu_code(n) == _ACT["gelu"] else "tanh"),
    ),
    ("", "Softmax"): _softmax(False),
    ("", "LogSoftmax"): _softmax(True),
    ("", "Flatten"): _flatten,
    ("", "Identity"): _identity,
    ("", "Dropout"): _dropout,
    ("", "Cast"): _cast,
    ("", "Reshape"): _reshape,
    ("", "Add"): _binary(np.add),
    ("", "Sub"): _binary(np.subtract),
    ("", "Mul"): _binary(np.multiply),
    ("", "Div"): _binary(np.divide),
    ("", "Concat"): _concat,
    ("", "ArgMax"): _argmax,
    (ML_DOMAIN, "ArrayFeatureExtractor"): _array_feature_extractor,
    (ML_DOMAIN, "ZipMap"): _zipmap,
}


def build(g: Graph, node: Node) -> Op:
    builder = BUILDERS.get((node.domain, node.op))
    if builder is None:
        dom = f" in domain {node.domain!r}" if node.domain else ""
        known = sorted({op for _, op in BUILDERS if not op.startswith("lincore.")})
        raise ValueError(
            f"lincore.onnx: {node.where}{dom} uses op {node.op!r}, which lincore does not run. "
            f"Supported ops: {', '.join(known)}"
        )
    if node.domain == ML_DOMAIN and g.opsets.get(ML_DOMAIN) is None:
        raise ValueError(f"{node.where}: the model does not import the {ML_DOMAIN} opset")
    return builder(g, node)
