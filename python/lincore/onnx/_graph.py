"""An ONNX graph as lincore runs it: nodes in dependency order, constants as numpy arrays, what
is known statically of each value (element type, shape), and the two rewrites that turn
exporters' spelled-out layers back into lincore layers (MatMul + Add -> Linear, the Erf form of
GELU -> Gelu). All checks that can fail on a hostile file happen here, at load time."""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import onnx

from ._proto import NUMPY_TYPES, Attrs, tensor_to_array, type_name

DEFAULT_DOMAINS = ("", "ai.onnx")
ML_DOMAIN = "ai.onnx.ml"


class Node:
    """One op: its type, inputs and outputs (value names; "" for an absent optional one) and
    attributes. `where` names it in messages."""

    __slots__ = ("op", "domain", "name", "inputs", "outputs", "attrs", "where")

    def __init__(
        self, op: str, domain: str, name: str, inputs: Any, outputs: Any, attrs: Any
    ) -> None:
        self.op, self.domain, self.name = op, domain, name
        self.inputs, self.outputs, self.attrs = list(inputs), list(outputs), attrs
        self.where = f"node {name!r} ({op})" if name else f"node ({op}) -> {self.outputs}"


class Info:
    """What is known of a value before running: numpy dtype and shape (None where unknown;
    a shape's dims are ints or None)."""

    __slots__ = ("dtype", "shape")

    def __init__(self, dtype: Any = None, shape: Any = None) -> None:
        self.dtype = dtype
        self.shape = None if shape is None else tuple(shape)

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)


class Graph:
    """A parsed graph: inputs (names and Info), outputs, constants, topologically sorted nodes,
    the opset of each domain, and consumer counts."""

    def __init__(self, proto: onnx.ModelProto) -> None:
        g = proto.graph
        self.opsets: dict[str, int] = {}
        for o in proto.opset_import:
            dom = "" if o.domain in DEFAULT_DOMAINS else o.domain
            self.opsets[dom] = int(o.version)
        if "" not in self.opsets:
            self.opsets[""] = 1 if not proto.opset_import else 0
        if len(g.sparse_initializer):
            raise ValueError("graph has sparse initializers, which lincore does not read")
        self.consts: dict[str, np.ndarray] = {}
        for t in g.initializer:
            self.consts[t.name] = tensor_to_array(t, "initializer")
        self.inputs: list[str] = []
        self.info: dict[str, Info] = {}
        for vi in g.input:
            if vi.name in self.consts:  # IR < 4: initializers are listed as inputs too
                continue
            self.inputs.append(vi.name)
            self.info[vi.name] = _value_info(vi, "graph input")
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"graph inputs have repeated names: {self.inputs}")
        for name, arr in self.consts.items():
            self.info[name] = Info(arr.dtype, arr.shape)
        self.outputs = [o.name for o in g.output]
        if not self.outputs:
            raise ValueError("graph has no outputs")
        nodes = []
        for n in g.node:
            node = Node(
                n.op_type,
                n.domain if n.domain not in DEFAULT_DOMAINS else "",
                n.name or "",
                n.input,
                n.output,
                None,
            )
            node.attrs = Attrs(node.where, n.attribute)
            if node.op == "Constant" and node.domain == "":
                self._constant(node, n)
                continue
            nodes.append(node)
        self.nodes = _toposort(nodes, set(self.inputs) | set(self.consts))
        known = set(self.inputs) | set(self.consts) | {o for n in self.nodes for o in n.outputs}
        for o in self.outputs:
            if o not in known:
                raise ValueError(f"graph output {o!r} is not produced by any node or input")
        self.count_consumers()

    def _constant(self, node: Node, proto: onnx.NodeProto) -> None:
        if len(node.outputs) != 1:
            raise ValueError(f"{node.where}: expected 1 output, got {len(node.outputs)}")
        a = node.attrs
        names = a.names()
        if len(names) != 1:
            raise ValueError(f"{node.where}: expected one value attribute, got {sorted(names)}")
        (key,) = names
        if key == "value":
            arr = tensor_to_array(a.get("value", "TENSOR"), node.where)
        elif key == "value_float":
            arr = np.array(a.get(key, "FLOAT"), np.float32)
        elif key == "value_floats":
            arr = np.array(a.get(key, "FLOATS"), np.float32)
        elif key == "value_int":
            arr = np.array(a.get(key, "INT"), np.int64)
        elif key == "value_ints":
            arr = np.array(a.get(key, "INTS"), np.int64)
        else:
            raise ValueError(f"{node.where}: attribute {key!r} is not supported by lincore")
        if node.outputs[0] in self.consts:
            raise ValueError(f"{node.where}: value {node.outputs[0]!r} is defined twice")
        self.consts[node.outputs[0]] = arr
        self.info[node.outputs[0]] = Info(arr.dtype, arr.shape)

    def count_consumers(self) -> None:
        """Indexes of who reads and who writes each value (kept current by the rewrites)."""
        counts: dict[str, int] = {}
        readers: dict[str, Node] = {}
        self.producer: dict[str, Node] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    counts[i] = counts.get(i, 0) + 1
                    readers[i] = n
            for o in n.outputs:
                self.producer[o] = n
        for o in self.outputs:
            counts[o] = counts.get(o, 0) + 1  # a graph output is a use that a fusion must keep
        self.consumers = counts
        self._reader = readers

    def only_use(self, name: str) -> Node | None:
        """The one node that reads `name`, when exactly one does and it is no graph output."""
        if self.consumers.get(name, 0) != 1 or name in self.outputs:
            return None
        return self._reader.get(name)

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name) if name else None


def _value_info(vi: onnx.ValueInfoProto, what: str) -> Info:
    t = vi.type
    if t.WhichOneof("value") != "tensor_type":
        raise ValueError(f"{what} {vi.name!r} is a {t.WhichOneof('value')}; lincore takes tensors")
    elem = t.tensor_type.elem_type
    dtype = NUMPY_TYPES.get(elem)
    if dtype is None:
        raise ValueError(
            f"{what} {vi.name!r} has element type {type_name(elem)}; lincore takes FLOAT, "
            "DOUBLE, INT64, INT32, INT8, UINT8, BOOL or STRING inputs"
        )
    if not t.tensor_type.HasField("shape"):
        return Info(dtype, None)
    dims = [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in t.tensor_type.shape.dim
    ]
    return Info(dtype, dims)


def _toposort(nodes: list[Node], available: set[str]) -> list[Node]:
    """Kahn's algorithm; a value produced twice, an input nothing produces, or a cycle is a
    ValueError naming the node."""
    producer: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for o in n.outputs:
            if not o:
                continue
            if o in producer or o in available:
                raise ValueError(f"{n.where}: value {o!r} is defined twice")
            producer[o] = i
    waiting = [0] * len(nodes)
    users: list[list[int]] = [[] for _ in nodes]
    for i, n in enumerate(nodes):
        for name in n.inputs:
            if not name or name in available:
                continue
            p = producer.get(name)
            if p is None:
                raise ValueError(f"{n.where}: input {name!r} is not produced by any node")
            waiting[i] += 1
            users[p].append(i)
    # A heap of positions: among the nodes that are ready, the file's order is kept.
    ready = [i for i in range(len(nodes)) if waiting[i] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(nodes[i])
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(nodes):
        stuck = next(nodes[i] for i in range(len(nodes)) if waiting[i])
        raise ValueError(f"graph has a cycle: {stuck.where} depends on its own output")
    return order


# --- rewrites -----------------------------------------------------------------------------------


def _scalar(arr: np.ndarray | None) -> float | None:
    if arr is None or arr.size != 1 or arr.dtype.kind != "f":
        return None
    return float(arr.ravel()[0])


def _other(node: Node, name: str) -> str | None:
    """For a binary node reading `name`, the name of its other input."""
    if len(node.inputs) != 2 or name not in node.inputs:
        return None
    a, b = node.inputs
    return b if a == name else a


def fuse_matmul_add(g: Graph) -> None:
    """MatMul(x, W) + b with W a constant (K, N) matrix and b a constant that broadcasts as a
    bias ((N,), (1, N), a scalar) becomes one Linear node (op "lincore.Linear")."""
    out = []
    dropped: set[int] = set()
    for n in g.nodes:
        if id(n) in dropped:
            continue
        w = (
            g.const(n.inputs[1])
            if n.op == "MatMul" and n.domain == "" and len(n.inputs) == 2
            else None
        )
        add = g.only_use(n.outputs[0]) if w is not None and w.ndim == 2 else None
        if add is not None and add.op == "Add" and add.domain == "":
            bname = _other(add, n.outputs[0])
            b = g.const(bname)
            nfeat = w.shape[1]
            if (
                b is not None
                and b.dtype == w.dtype
                and b.size in (1, nfeat)
                and (b.ndim <= 1 or (b.ndim == 2 and b.shape[-1] == b.size))
            ):
                bias = np.broadcast_to(b.reshape(-1), (nfeat,)).copy()
                node = Node("lincore.Linear", "", n.name, [n.inputs[0]], add.outputs, None)
                node.attrs = Attrs(node.where, values={"weight": w.T.copy(), "bias": bias})
                out.append(node)
                dropped.add(id(add))
                continue
        out.append(n)
    g.nodes = out
    g.count_consumers()


_SQRT2 = float(np.sqrt(2.0))


def fuse_erf_gelu(g: Graph) -> None:
    """The GELU that exporters spell out before opset 20: y = x * 0.5 * (1 + erf(x / sqrt 2))
    in any order of the two products (Div by sqrt 2 or Mul by 1/sqrt 2), becomes one Gelu node."""
    out = []
    dropped: set[int] = set()
    for n in g.nodes:
        if id(n) in dropped:
            continue
        chain = _match_erf_gelu(g, n)
        if chain is None:
            out.append(n)
            continue
        x, last, members = chain
        node = Node("Gelu", "", n.name, [x], last.outputs, None)
        node.attrs = Attrs(node.where, values={"approximate": "none"})
        out.append(node)
        dropped.update(id(m) for m in members[1:])
    g.nodes = [m for m in out if id(m) not in dropped]
    g.count_consumers()


def _match_erf_gelu(g: Graph, n: Node) -> tuple | None:
    if n.domain or n.op not in ("Div", "Mul") or len(n.inputs) != 2:
        return None
    x, c = n.inputs
    k = _scalar(g.const(c))
    if k is None or not np.isclose(k, _SQRT2 if n.op == "Div" else 1 / _SQRT2, rtol=1e-6):
        return None
    erf = g.only_use(n.outputs[0])
    if erf is None or erf.op != "Erf":
        return None
    add = g.only_use(erf.outputs[0])
    if add is None or add.op != "Add" or _scalar(g.const(_other(add, erf.outputs[0]) or "")) != 1:
        return None
    # The products: x * (1 + erf) then * 0.5, or (x * 0.5) * (1 + erf), or x * ((1 + erf) * 0.5)
    p1 = g.only_use(add.outputs[0])
    if p1 is None or p1.op != "Mul":
        return None
    other = _other(p1, add.outputs[0])
    if other == x:  # x * (1 + erf), then * 0.5
        p2 = g.only_use(p1.outputs[0])
        if p2 is None or p2.op != "Mul" or _scalar(g.const(_other(p2, p1.outputs[0]) or "")) != 0.5:
            return None
        return x, p2, [n, erf, add, p1, p2]
    if _scalar(g.const(other or "")) == 0.5:  # (1 + erf) * 0.5, then * x
        p2 = g.only_use(p1.outputs[0])
        if p2 is None or p2.op != "Mul" or _other(p2, p1.outputs[0]) != x:
            return None
        return x, p2, [n, erf, add, p1, p2]
    # (x * 0.5) * (1 + erf): `other` is the output of Mul(x, 0.5), used only here.
    half = g.producer.get(other or "")
    if (
        half is None
        or half.op != "Mul"
        or _other(half, x) is None
        or _scalar(g.const(_other(half, x) or "")) != 0.5
        or g.consumers.get(other) != 1
        or other in g.outputs
    ):
        return None
    # `half` comes before `p1` in the order; fold it in by dropping it too (it is only read here).
    return x, p1, [n, erf, add, p1, half]


def fuse_label_lookup(g: Graph) -> None:
    """scikit-learn converters' label tail, ArgMax -> ArrayFeatureExtractor(classes) ->
    Reshape([-1]) -> Cast / Identity ..., becomes one node (op "lincore.Label") that looks the
    arg-max up in the class labels, cast once at load: one numpy step where there were four."""
    out, dropped = [], set()
    for n in g.nodes:
        if id(n) in dropped:
            continue
        found = _match_label(g, n) if n.op == "ArgMax" and n.domain == "" else None
        if found is None:
            out.append(n)
            continue
        classes, last, members = found
        node = Node("lincore.Label", "", n.name, [n.inputs[0]], last.outputs, None)
        axis = n.attrs.get("axis", "INT", 0)
        node.attrs = Attrs(node.where, values={"classes": classes, "axis": axis})
        out.append(node)
        dropped.update(id(m) for m in members[1:])
    g.nodes = [m for m in out if id(m) not in dropped]
    g.count_consumers()


def _match_label(g: Graph, argmax: Node) -> tuple | None:
    from ._proto import NUMPY_TYPES

    if argmax.attrs.get("select_last_index", "INT", 0) or len(argmax.inputs) != 1:
        return None
    afe = g.only_use(argmax.outputs[0])
    if afe is None or afe.op != "ArrayFeatureExtractor" or afe.domain != ML_DOMAIN:
        return None
    if len(afe.inputs) != 2 or afe.inputs[1] != argmax.outputs[0]:
        return None
    classes = g.const(afe.inputs[0])
    reshape = g.only_use(afe.outputs[0])
    if classes is None or classes.ndim != 1 or reshape is None or reshape.op != "Reshape":
        return None
    shape = g.const(reshape.inputs[1]) if len(reshape.inputs) == 2 else None
    if shape is None or shape.tolist() != [-1]:
        return None
    members, last = [argmax, afe, reshape], reshape
    while True:  # the Casts (to a numeric type) and Identities that follow, applied to classes
        nxt = g.only_use(last.outputs[0])
        if nxt is None or nxt.domain or nxt.op not in ("Cast", "Identity") or len(nxt.inputs) != 1:
            break
        if nxt.op == "Cast":
            to = nxt.attrs.get("to", "INT")
            dt = NUMPY_TYPES.get(to) if to is not None else None
            if dt is None or dt.kind == "O" or classes.dtype.kind == "O":
                break
            classes = classes.astype(dt)
        members.append(nxt)
        last = nxt
    return classes, last, members
