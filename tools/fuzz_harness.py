#!/usr/bin/env python3
"""lincore fuzz harness: tensor construction from arbitrary Python objects, and the safetensors
file loader. Any Python exception is fine; a crash or a hang is a bug.

THE command (from the repository root; --seconds is per target):

    python3 tools/fuzz_harness.py --seconds 60 --target all --seed 1 --out /tmp/lincore-fuzz

  --target tensor   lincore.tensor / as_tensor / from_numpy on generated Python objects: nested
                    lists/tuples of random depth (ragged too) of ints of any size, floats (NaN,
                    Inf, subnormal, any bit pattern), bools, None, str, bytes, complex, Fraction,
                    Decimal, numpy scalars and arrays of every dtype, byte order and layout,
                    lincore tensors and views, dicts, sets, objects with __array__ (which raise,
                    lie, or return junk), list/tuple subclasses whose __len__ / __getitem__ /
                    __iter__ raise or lie or mutate the list, self-referential lists, very deep
                    nesting; each success is then printed, converted and run through a Linear.
  --target load     lincore.load on safetensors bytes: valid files written by lincore.save (and
                    safetensors itself) mutated bytewise (flips, inserts, deletes, splices,
                    truncation, header-length corruption) and structurally (the header JSON's
                    dtypes, shapes, offsets, names, metadata and the lincore.order list).
  --target onnx     lincore.onnx.load on ONNX bytes (needs the onnx package): valid models built
                    with onnx.helper (Gemm and MatMul+Add MLPs, softmax, a scikit-learn-style
                    classifier with ZipMap) mutated bytewise and structurally (dims, element
                    types, raw data, external data, attribute types, op types, node inputs and
                    outputs rewired into cycles or dangling names); each model that loads is run.
  --target all      all of them, one after the other (the default; onnx only where the onnx
                    package is installed).

How it works: the parent process never imports lincore. It runs the fuzzing loop in a child
process and watches it: the child writes the index of each input to a shared progress file
before running it; when the child dies by a signal (segfault, abort, ...), exits abnormally, or
makes no progress for --timeout seconds (a hang: the parent dumps the child's Python stack with
SIGUSR1 and kills it), the parent writes a reproducer for that input into --out, replays the
input alone in a fresh process to confirm it, restarts fuzzing after it, and at the end exits 1
with a message. Input i of a run is a pure function of (target, --seed, i, the --skip list), so
a run is reproducible, and any single input can be replayed:

    python3 tools/fuzz_harness.py --replay tensor:SEED:INDEX     (or load:SEED:INDEX)
    python3 tools/fuzz_harness.py --replay-file OUT/<reproducer>.pickle|.safetensors|.onnx

--skip LABEL (repeatable) leaves out one kind of input (a generator label such as self-ref,
or an array layout such as huge-broadcast), e.g. while a reported bug awaits its fix; after a
crash or hang the run itself goes on without that input's label.

Reproducers: <target>-<crash|hang>-seed<S>-i<I>.{txt (report, stack, replay outcome),
repr.txt, pickle (tensor inputs) or safetensors (load inputs)}. The child runs under an address
space limit (--memory-mb) so that a runaway allocation is a MemoryError, not the OOM killer.

Contract checks ("violations", recorded in OUT/violations-<target>.jsonl and counted in the
summary; they fail the run only with --strict): the loader raising anything but ValueError for
bad bytes, lincore.load and the reference parser safetensors.numpy.load disagreeing, a loaded
file not surviving save/load bitwise, tensor() raising something other than ValueError,
TypeError, RuntimeError, OverflowError, IndexError, MemoryError or an exception raised by the
input object itself, a built tensor whose printing / conversion / Linear fails, or a Linear on a
strided tensor differing from the same call on a contiguous copy.

Without --seed a random seed is drawn and printed. Exit status: 0 no crash or hang, 1 crash or
hang (or, with --strict, a violation), 2 bad arguments.

Engines: --engine random (default; plain seeded random generation and mutation, no extra
dependency, what CI runs) or --engine atheris (coverage-guided libFuzzer over the same
generators and runners, when `pip install atheris` works; libFuzzer stops at its first crash or
timeout and leaves a crash-*/timeout-* file in --out, replayed with
`--engine atheris --target T --replay-file OUT/timeout-...`).

CI runs it for a short time through tests/test_fuzz_smoke.py.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import io
import json
import math
import mmap
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from fractions import Fraction
from decimal import Decimal

TARGETS = ("tensor", "load", "onnx")
# The targets whose inputs are file bytes, and the suffix of their reproducer files.
FILE_SUFFIX = {"load": ".safetensors", "onnx": ".onnx"}
HERE = os.path.abspath(__file__)
PROGRESS = struct.Struct("<qd64s")  # current input index, heartbeat time, generator label


# =============================================================================================
# Deterministic randomness: a random.Random per input, or bytes from libFuzzer (atheris).
# =============================================================================================


class Rand:
    """The few draws the generators need, over random.Random."""

    def __init__(self, key: str) -> None:
        self.r = random.Random(key)

    def random(self) -> float:
        return self.r.random()

    def randint(self, a: int, b: int) -> int:
        return self.r.randint(a, b)

    def choice(self, seq):
        return seq[self.randint(0, len(seq) - 1)]

    def bits(self, k: int) -> int:
        return self.r.getrandbits(k) if k > 0 else 0

    def randbytes(self, n: int) -> bytes:
        return self.r.randbytes(n)

    def chance(self, p: float) -> bool:
        return self.random() < p

    def pick(self, weighted: dict):
        """A key of weighted (key -> weight); the first key when the source is exhausted."""
        total = sum(weighted.values())
        x = self.random() * total
        for k, w in weighted.items():
            if x < w:
                return k
            x -= w
        return next(iter(weighted))


class BytesRand(Rand):
    """The same draws consumed from a libFuzzer input (atheris.FuzzedDataProvider); all zero
    (the first choice everywhere: short, simple inputs) once the bytes run out."""

    def __init__(self, data: bytes) -> None:
        import atheris

        self.fdp = atheris.FuzzedDataProvider(data)

    def random(self) -> float:
        return self.fdp.ConsumeProbability()

    def randint(self, a: int, b: int) -> int:
        return self.fdp.ConsumeIntInRange(a, b) if b > a else a

    def bits(self, k: int) -> int:
        return self.fdp.ConsumeUInt((k + 7) // 8) & ((1 << k) - 1) if k > 0 else 0

    def randbytes(self, n: int) -> bytes:
        b = self.fdp.ConsumeBytes(n)
        return b + bytes(n - len(b))


def input_rand(target: str, seed: int, index: int) -> Rand:
    return Rand(f"lincore-fuzz:{target}:{seed}:{index}")


# =============================================================================================
# Inputs for lincore.tensor / as_tensor / from_numpy
# =============================================================================================


class FuzzError(Exception):
    """Raised on purpose by the fuzzer's own objects: propagating it is fine."""


class LyingList(list):
    """A list whose protocol methods misbehave in one way (mode)."""

    def __init__(self, items, mode: str, delta: int = 1) -> None:
        super().__init__(items)
        self.mode, self.delta, self.calls = mode, delta, 0

    def __len__(self):
        self.calls += 1
        if self.mode == "len-raises":
            raise FuzzError("__len__ raised")
        if self.mode == "len-lies":
            return list.__len__(self) + self.delta
        if self.mode == "len-not-int":
            return "3"
        if self.mode == "len-grows":
            list.append(self, list.__getitem__(self, 0) if list.__len__(self) else 0)
        if self.mode == "len-flaky" and self.calls % 2 == 0:
            return list.__len__(self) + 1
        return list.__len__(self)

    def __getitem__(self, i):
        if self.mode == "getitem-raises":
            raise FuzzError("__getitem__ raised")
        if self.mode == "getitem-clears":
            out = list.__getitem__(self, i)
            list.clear(self)
            return out
        if self.mode == "getitem-junk":
            return "junk"
        return list.__getitem__(self, i)

    def __iter__(self):
        if self.mode == "iter-raises":
            raise FuzzError("__iter__ raised")
        if self.mode == "iter-short":
            return iter(list(list.__iter__(self))[:-1])
        if self.mode == "iter-long":
            return iter(list(list.__iter__(self)) + [1.0])
        return list.__iter__(self)

    def __repr__(self):
        return f"LyingList({list.__repr__(self)}, mode={self.mode!r})"

    def __reduce__(self):
        return (LyingList, (list(list.__iter__(self)), self.mode, self.delta))


class LyingTuple(tuple):
    def __new__(cls, items, mode: str):
        t = super().__new__(cls, items)
        t.mode = mode
        return t

    def __len__(self):
        if self.mode == "len-raises":
            raise FuzzError("__len__ raised")
        if self.mode == "len-lies":
            return tuple.__len__(self) + 2
        return tuple.__len__(self)

    def __getitem__(self, i):
        if self.mode == "getitem-raises":
            raise FuzzError("__getitem__ raised")
        return tuple.__getitem__(self, i)

    def __repr__(self):
        return f"LyingTuple({tuple.__repr__(self)}, mode={self.mode!r})"

    def __reduce__(self):
        return (LyingTuple, (tuple(tuple.__iter__(self)), self.mode))


class ArrayLike:
    """An object with __array__ that returns `payload` (or misbehaves, per mode)."""

    def __init__(self, payload, mode: str) -> None:
        self.payload, self.mode = payload, mode

    def __array__(self, dtype=None, copy=None):
        import numpy as np

        if self.mode == "raises":
            raise FuzzError("__array__ raised")
        if self.mode == "returns-self":
            return self
        if self.mode == "returns-junk":
            return self.payload
        if self.mode == "object-with-self":
            out = np.empty(2, dtype=object)
            out[0], out[1] = self, 1
            return out
        return np.asarray(self.payload) if dtype is None else np.asarray(self.payload, dtype)

    def __len__(self):
        if self.mode == "len-raises":
            raise FuzzError("__len__ raised")
        return 3

    def __repr__(self):
        return f"ArrayLike(mode={self.mode!r}, payload={safe_repr(self.payload, 200)})"


class OldArrayLike:
    """__array__ with the old one-argument signature."""

    def __init__(self, payload) -> None:
        self.payload = payload

    def __array__(self):
        import numpy as np

        return np.asarray(self.payload)

    def __repr__(self):
        return f"OldArrayLike({safe_repr(self.payload, 200)})"


class BadNumber:
    """Registered as numbers.Real; its conversions raise or return junk."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __float__(self):
        if self.mode == "float-raises":
            raise FuzzError("__float__ raised")
        return "not a float"  # type: ignore[return-value]

    def __repr__(self):
        return f"BadNumber({self.mode!r})"


class BigInt(int):
    """An int subclass (numbers.Integral) with a misbehaving __int__."""

    def __int__(self):
        raise FuzzError("__int__ raised")

    def __index__(self):
        raise FuzzError("__index__ raised")


class Opaque:
    def __repr__(self):
        return "Opaque()"


def _register_numbers() -> None:
    import numbers

    numbers.Real.register(BadNumber)


_register_numbers()

INT_EDGES = [
    0,
    1,
    -1,
    2,
    127,
    128,
    255,
    256,
    2**31 - 1,
    2**31,
    2**32,
    2**53,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64 - 1,
    2**64,
    -(2**64),
    10**38,
    10**308,
    10**309,
    2**1024,
    -(2**1100),
]
FLOAT_EDGES = [
    0.0,
    -0.0,
    math.nan,
    -math.nan,
    math.inf,
    -math.inf,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    3.4028234663852886e38,
    3.4028235677973366e38,
    1.401298464324817e-45,
    7e-46,
    1.1754943508222875e-38,
    0.1,
    0.5,
    -1.0,
    1e-300,
    2.0**63,
    2.0**64,
]
NP_DTYPES = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "longdouble",
    "complex64",
    "complex128",
    "clongdouble",
    "U3",
    "S3",
    "O",
    "M8[s]",
    "m8[ns]",
    "V4",
    "struct",
]


def gen_int(r: Rand) -> int:
    if r.chance(0.3):
        return r.choice(INT_EDGES) + r.randint(-1, 1)
    v = r.bits(r.choice([1, 4, 8, 16, 31, 53, 62, 63, 64, 65, 100, 200]))
    return -v if r.chance(0.5) else v


def gen_float(r: Rand) -> float:
    x = r.random()
    if x < 0.3:
        return r.choice(FLOAT_EDGES)
    if x < 0.5:  # any bit pattern: NaN payloads, subnormals, huge
        return struct.unpack("<d", struct.pack("<Q", r.bits(64)))[0]
    return (r.random() - 0.5) * 10.0 ** r.randint(-30, 30)


def np_dtype(name: str):
    import numpy as np

    if name == "struct":
        return np.dtype([("a", "<i4"), ("b", "<f8")])
    return np.dtype(name)


def gen_np_values(r: Rand, shape: tuple, dt):
    """A C-contiguous numpy array of any dtype holding varied values."""
    import numpy as np

    rng = np.random.default_rng(r.bits(64))
    n = math.prod(shape)
    kind = dt.kind
    if kind == "b":
        out = rng.integers(0, 2, n).astype(bool)
    elif kind in "iu":
        info = np.iinfo(dt)
        raw = rng.integers(0, 2**63 - 1, n, endpoint=True, dtype=np.uint64)
        if info.bits < 64:
            out = (raw % (1 << info.bits)).astype(np.uint64).astype(dt.newbyteorder("="))
        else:
            out = raw.astype(dt.newbyteorder("="))
            if kind == "u" and n:
                out[rng.random(n) < 0.2] = np.uint64(2**64 - 1)
    elif kind in "fc":
        with np.errstate(all="ignore"):
            base = rng.standard_normal(n) * 10.0 ** rng.integers(-40, 40, n)
            specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, 1e308, 1e-40])
            pick = rng.random(n) < 0.2
            base[pick] = rng.choice(specials, int(pick.sum()))
            out = base.astype(dt.newbyteorder("="))
            if kind == "c":
                out = out + 1j * out[::-1]
    elif kind in "US":
        out = np.array([str(v) for v in rng.integers(0, 10**4, n)], dtype=dt)
    elif kind == "O":
        pool = [1, 2.5, True, None, "s", [1, 2], 2**70, math.nan]
        out = np.empty(n, dtype=object)
        for i in range(n):
            out[i] = pool[int(rng.integers(0, len(pool)))]
    elif kind in "mM":
        out = rng.integers(-(10**9), 10**9, n).astype(dt)
    else:
        out = np.frombuffer(rng.bytes(n * dt.itemsize), dtype=dt) if n else np.zeros(0, dt)
    return out.reshape(shape).astype(dt, order="C")  # (ascontiguousarray makes 0-d 1-d)


def gen_shape(r: Rand, max_dims: int = 4, max_side: int = 5) -> tuple:
    return tuple(
        r.randint(0, max_side) if r.chance(0.85) else r.choice([0, 1])
        for _ in range(r.randint(0, max_dims))
    )


def gen_np_array(r: Rand):
    """A numpy array of random dtype, byte order, shape and layout (views included)."""
    import numpy as np

    dt = np_dtype(r.choice(NP_DTYPES))
    if dt.kind in "biufcmM" and dt.itemsize > 1 and r.chance(0.3):
        dt = dt.newbyteorder(r.choice([">", "<"]))
    layouts = {
        "c": 3,
        "f": 1,
        "slice": 2,
        "transpose": 1,
        "broadcast": 1,
        "misaligned": 1,
        "readonly": 1,
        "huge-broadcast": 0.2,
        "zero-d": 0.5,
        "many-dims": 0.3,
        "big": 0.1,
        "masked": 0.1,
        "windows": 0.5,
    }
    layout = r.pick({k: v for k, v in layouts.items() if k not in _SKIP})
    if layout == "zero-d":
        return gen_np_values(r, (), dt)
    if layout == "many-dims":
        shape = tuple(r.randint(1, 2) for _ in range(r.randint(5, 40)))
        if math.prod(shape) > 4096:
            shape = tuple(1 for _ in shape)
        return gen_np_values(r, shape, dt)
    if layout == "big":
        return gen_np_values(r, (r.randint(1, 3000), r.randint(1, 300)), dt)
    shape = gen_shape(r)
    if layout == "windows" and shape:
        # Overlapping views (several elements at one address).
        window = tuple(r.randint(1, s) if s else 0 for s in shape)
        base = gen_np_values(r, tuple(s + w - 1 if s else 0 for s, w in zip(shape, window)), dt)
        return np.lib.stride_tricks.sliding_window_view(base, window)
    if layout == "slice" and shape:
        steps = [r.choice([1, 2, 3, -1, -2, -3]) for _ in shape]
        big = gen_np_values(r, tuple(s * abs(k) + 2 for s, k in zip(shape, steps)), dt)
        key = tuple(
            slice(1, 1 + s * k, k) if k > 0 else slice(s * -k, 0, k) if s else slice(0, 0)
            for s, k in zip(shape, steps)
        )
        return big[key]
    if layout == "transpose" and len(shape) > 1:
        perm = list(range(len(shape)))
        for i in range(len(perm) - 1, 0, -1):
            j = r.randint(0, i)
            perm[i], perm[j] = perm[j], perm[i]
        return gen_np_values(r, shape, dt).transpose(perm)
    if layout == "broadcast":
        small = tuple(1 if r.chance(0.5) else s for s in shape)
        lead = tuple(r.randint(0, 3) for _ in range(r.randint(0, 2)))
        return np.broadcast_to(gen_np_values(r, small, dt), lead + shape)
    if layout == "huge-broadcast":
        # Far beyond memory (or int64): tensor() must refuse (MemoryError / ValueError).
        dims = [r.choice([3 * 2**20, 2**33, 2**40]) for _ in range(r.randint(1, 3))]
        one = gen_np_values(r, (1,), dt).reshape(())
        try:
            return np.broadcast_to(one, dims)
        except ValueError:  # numpy's own limit (the byte count must fit in intp)
            return np.broadcast_to(one, (2**33, 2**20))
    if layout == "misaligned" and dt.itemsize > 1 and not dt.hasobject:
        n = math.prod(shape)
        buf = bytearray(n * dt.itemsize + 1)
        out = np.frombuffer(buf, dtype=dt, count=n, offset=1).reshape(shape)
        out[...] = gen_np_values(r, shape, dt)
        return out
    arr = gen_np_values(r, shape, dt)
    if layout == "f":
        return np.asfortranarray(arr)
    if layout == "readonly":
        arr.flags.writeable = False
    if layout == "masked" and dt.kind in "biuf":
        return np.ma.masked_array(arr, mask=np.zeros(arr.shape, bool))
    return arr


def gen_np_scalar(r: Rand):
    dt = np_dtype(r.choice(NP_DTYPES[:-1]))
    arr = gen_np_values(r, (1,), dt)
    return arr[0]


def gen_lincore_tensor(r: Rand):
    import numpy as np
    import lincore

    shape = gen_shape(r, 3, 4)
    dt = r.choice([np.float32, np.float64, np.int64, np.bool_])
    t = lincore.tensor(gen_np_values(r, shape, np.dtype(dt)))
    x = r.random()
    if x < 0.2 and t.dim() >= 2:
        t = t.transpose(0, t.dim() - 1)
    elif x < 0.4 and t.dim() >= 1 and t.shape[0] > 1:
        t = t[::2]
    elif x < 0.5 and t.dim() >= 1 and t.shape[0] >= 1:
        t = t[0]
    elif x < 0.55 and dt in (np.float32, np.float64):
        t.requires_grad_(True)
    return t


def gen_leaf(r: Rand, depth: int = 0):
    """Any leaf, numbers most often."""
    kind = r.pick(
        {
            "int": 6,
            "float": 6,
            "bool": 3,
            "np-scalar": 2,
            "tensor": 0.7,
            "np-array": 0.5,
            "fraction": 0.3,
            "decimal": 0.2,
            "complex": 0.2,
            "none": 0.3,
            "str": 0.3,
            "bytes": 0.2,
            "opaque": 0.1,
            "dict": 0.1,
            "set": 0.1,
            "bad-number": 0.1,
            "bigint-sub": 0.1,
            "int-sub": 0.1,
            "float-sub": 0.1,
            "ellipsis": 0.05,
            "array-like": 0.2,
            "range": 0.1,
        }
    )
    if kind == "int":
        return gen_int(r)
    if kind == "float":
        return gen_float(r)
    if kind == "bool":
        return r.chance(0.5)
    if kind == "np-scalar":
        return gen_np_scalar(r)
    if kind == "tensor":
        return gen_lincore_tensor(r)
    if kind == "np-array":
        return gen_np_array(r)
    if kind == "fraction":
        return Fraction(gen_int(r), r.choice([1, 3, 7, 2**80]))
    if kind == "decimal":
        return Decimal(r.choice(["1.5", "nan", "-inf", "1e400", "3"]))
    if kind == "complex":
        return complex(gen_float(r), gen_float(r))
    if kind == "none":
        return None
    if kind == "str":
        return r.choice(["", "1", "1.5", "nan", "abc", "\ud800", "\x00"])
    if kind == "bytes":
        return r.choice([b"", b"1", bytearray(b"12"), memoryview(b"abc")])
    if kind == "opaque":
        return Opaque()
    if kind == "dict":
        return {"a": 1}
    if kind == "set":
        return {1, 2}
    if kind == "bad-number":
        return BadNumber(r.choice(["float-raises", "float-junk"]))
    if kind == "bigint-sub":
        return BigInt(gen_int(r))
    if kind == "int-sub":
        return type("IntSub", (int,), {})(gen_int(r))
    if kind == "float-sub":
        return type("FloatSub", (float,), {})(gen_float(r))
    if kind == "ellipsis":
        return Ellipsis
    if kind == "range":
        return range(r.randint(0, 4))
    return ArrayLike(gen_np_array(r), "ok")


def gen_numeric_leaf(r: Rand):
    return r.pick({"int": 1, "float": 1, "bool": 1})


def gen_rectangular(r: Rand, numeric_only: bool):
    """(nested lists/tuples of a random shape, the shape, the flat leaves)."""
    shape = gen_shape(r, r.choice([1, 2, 3, 4, 6]), r.choice([1, 3, 5, 9]))
    if 0 in shape:
        shape = shape[: shape.index(0) + 1]
    n = math.prod(shape)
    if numeric_only:
        kinds = [k for k in ("int", "float", "bool") if r.chance(0.6)] or ["float"]
        leaf = {
            "int": lambda: gen_int(r),
            "float": lambda: gen_float(r),
            "bool": lambda: r.chance(0.5),
        }
        flat = [leaf[r.choice(kinds)]() for _ in range(n)]
    else:
        flat = [gen_leaf(r) for _ in range(n)]
    seq = [list if r.chance(0.7) else tuple for _ in shape]

    def build(lo: int, d: int):
        if d == len(shape):
            return flat[lo]
        step = math.prod(shape[d + 1 :])
        return seq[d](build(lo + i * step, d + 1) for i in range(shape[d]))

    return build(0, 0), shape, flat


def gen_tree(r: Rand, depth: int, budget: list):
    """An arbitrary nesting of lists/tuples/odd sequences with random leaves (mostly ragged)."""
    budget[0] -= 1
    if depth > 6 or budget[0] <= 0 or r.chance(0.35):
        return gen_leaf(r, depth)
    n = r.choice([0, 1, 1, 2, 2, 3, 4])
    items = [gen_tree(r, depth + 1, budget) for _ in range(n)]
    k = r.pick({"list": 6, "tuple": 3, "lying-list": 0.6, "lying-tuple": 0.3, "array": 0.3})
    if k == "list":
        return items
    if k == "tuple":
        return tuple(items)
    if k == "lying-list":
        return LyingList(items, r.choice(LYING_MODES), r.choice([-5, -1, 1, 2, 2**62]))
    if k == "lying-tuple":
        return LyingTuple(items, r.choice(["len-raises", "len-lies", "getitem-raises"]))
    return ArrayLike(items, r.choice(ARRAY_MODES))


LYING_MODES = [
    "len-raises",
    "len-lies",
    "len-not-int",
    "len-grows",
    "len-flaky",
    "getitem-raises",
    "getitem-clears",
    "getitem-junk",
    "iter-raises",
    "iter-short",
    "iter-long",
]
ARRAY_MODES = ["ok", "raises", "returns-self", "returns-junk", "object-with-self", "len-raises"]


def gen_self_referential(r: Rand):
    x = r.randint(0, 3)
    a: list = [] if x == 0 else [gen_int(r)]
    if x <= 1:
        a.append(a)
        return a
    if x == 2:  # a cycle two levels deep, with a rectangular-looking first path
        b = [a, a]
        a.clear()
        a.extend([b, b])
        return a
    a.insert(0, a)  # the first element is the list itself: the shape probe follows it
    return a


def gen_deep(r: Rand):
    depth = r.choice([30, 64, 65, 100, 1000, 5000, 20000])
    x = r.choice([1, 1.5, True, [], None])
    for _ in range(depth):
        x = [x]
    return x


_SKIP: frozenset = frozenset()  # --skip, also for the array layouts above


def gen_tensor_input(r: Rand, skip: frozenset = frozenset()):
    """(label, object) for the tensor target. skip: generator labels (or array layouts, e.g.
    huge-broadcast) not to produce."""
    global _SKIP
    _SKIP = skip
    labels = {
        "nested-numeric": 8,
        "nested-any": 4,
        "tree": 5,
        "leaf": 3,
        "np-array": 6,
        "tensor": 1,
        "array-like": 2,
        "lying": 2,
        "list-of-arrays": 1,
        "list-of-tensors": 1,
        "self-ref": 0.3,
        "deep": 0.3,
        "buffer": 0.5,
        "junk": 0.5,
    }
    labels = {k: v for k, v in labels.items() if k not in skip} or {"leaf": 1}
    label = r.pick(labels)
    if label == "nested-numeric":
        obj, _, _ = gen_rectangular(r, numeric_only=True)
        if r.chance(0.15):
            obj = mutate_structure(r, obj)
    elif label == "nested-any":
        obj, _, _ = gen_rectangular(r, numeric_only=False)
    elif label == "tree":
        obj = gen_tree(r, 0, [40])
    elif label == "leaf":
        obj = gen_leaf(r)
    elif label == "np-array":
        obj = gen_np_array(r)
    elif label == "tensor":
        obj = gen_lincore_tensor(r)
    elif label == "array-like":
        payload = gen_np_array(r) if r.chance(0.7) else gen_tree(r, 0, [10])
        obj = OldArrayLike(payload) if r.chance(0.2) else ArrayLike(payload, r.choice(ARRAY_MODES))
    elif label == "lying":
        inner, _, _ = gen_rectangular(r, numeric_only=True)
        items = list(inner) if isinstance(inner, (list, tuple)) else [inner]
        obj = LyingList(items, r.choice(LYING_MODES), r.choice([-5, -1, 1, 2, 2**62, 2**63]))
        if r.chance(0.5):
            obj = [obj, LyingList(list(items), r.choice(LYING_MODES))]
    elif label == "list-of-arrays":
        shape = gen_shape(r, 3, 3)
        import numpy as np

        obj = [
            gen_np_values(
                r,
                shape if r.chance(0.8) else gen_shape(r, 3, 3),
                np.dtype(
                    r.choice(["float32", "float64", "int64", "int32", "bool", "complex64", "O"])
                ),
            )
            for _ in range(r.randint(0, 4))
        ]
    elif label == "list-of-tensors":
        obj = [gen_lincore_tensor(r) for _ in range(r.randint(0, 4))]
    elif label == "self-ref":
        obj = gen_self_referential(r)
    elif label == "deep":
        obj = gen_deep(r)
    elif label == "buffer":
        import array

        obj = r.choice(
            [
                memoryview(b"\x00" * 8),
                bytearray(8),
                array.array("d", [1.0, 2.0]),
                memoryview(bytes(16)).cast("d"),
                memoryview(bytes(24)).cast("q", (3, 1)),
            ]
        )
    else:
        obj = r.choice(
            [
                None,
                "1.0",
                b"\x01",
                object.__new__(Opaque),
                {"x": [1]},
                {1.0},
                iter([1, 2]),
                (x for x in [1.0]),
                collections.deque([1, 2]),
                range(3),
                type,
                print,
                1 + 2j,
                Decimal("nan"),
                Fraction(1, 3),
                frozenset(),
            ]
        )
    return label, obj


def mutate_structure(r: Rand, obj):
    """obj with one sub-list made ragged, or a leaf made a list, or a list made a leaf."""
    if not isinstance(obj, (list, tuple)) or not obj:
        return obj
    obj = _thaw(obj)
    node = obj
    while isinstance(node[0], list) and node[0] and r.chance(0.6):
        node = (
            node[r.randint(0, len(node) - 1)]
            if all(isinstance(c, list) and c for c in node)
            else node[0]
        )
    j = r.randint(0, len(node) - 1)
    op = r.choice(["append", "pop", "wrap", "number", "empty", "none"])
    if op == "append":
        node.append(node[j])
    elif op == "pop":
        node.pop(j)
    elif op == "wrap":
        node[j] = [node[j]]
    elif op == "number":
        node[j] = 7
    elif op == "empty":
        node[j] = []
    else:
        node[j] = None
    return obj


def _thaw(obj):
    return [_thaw(c) for c in obj] if isinstance(obj, (list, tuple)) else obj


# =============================================================================================
# Inputs for lincore.load
# =============================================================================================

_SEED_FILES: list[bytes] | None = None


def seed_files() -> list[bytes]:
    """Valid safetensors files, built deterministically: lincore.save of several state dicts
    (dtypes, 0-d, empty, many keys, unicode names, a model) and two written by safetensors
    itself (dtypes lincore lacks, no metadata)."""
    global _SEED_FILES
    if _SEED_FILES is not None:
        return _SEED_FILES
    import numpy as np
    import safetensors.numpy
    import lincore
    import lincore.nn as nn

    rng = np.random.default_rng(0)

    def saved(obj) -> bytes:
        f = io.BytesIO()
        lincore.save(obj, f)
        return f.getvalue()

    files = [
        saved(
            {
                "weight": rng.standard_normal((3, 4)).astype(np.float32),
                "bias": rng.standard_normal(4).astype(np.float32),
            }
        ),
        saved(
            {
                "f64": rng.standard_normal((2, 2, 2)),
                "i64": np.arange(-2, 3, dtype=np.int64),
                "mask": rng.random((3, 3)) < 0.5,
                "scalar": np.array(2.5, np.float32),
                "empty": np.zeros((0, 3), np.float32),
            }
        ),
        saved({f"layer.{i}.w\u00e9": np.full((i % 3 + 1,), i, np.float32) for i in range(12)}),
        saved({}),
    ]
    lincore.manual_seed(0)
    files.append(saved(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))))
    files.append(
        safetensors.numpy.save(
            {
                "h": np.ones((2, 3), np.float16),
                "i": np.arange(4, dtype=np.int32),
                "u": np.arange(3, dtype=np.uint8),
            }
        )
    )
    files.append(
        safetensors.numpy.save(
            {"b": np.zeros(2, np.float32), "a": np.ones(1)},
            metadata={"lincore.order": '["b", "a", "c"]'},
        )
    )
    _SEED_FILES = files
    return files


def split_file(data: bytes):
    """(header dict or None, data section) of safetensors bytes."""
    if len(data) < 8:
        return None, b""
    n = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8 : 8 + n])
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, data[8 + n :]
    return (header if isinstance(header, dict) else None), data[8 + n :]


DTYPE_NAMES = [
    "F32",
    "F64",
    "I64",
    "BOOL",
    "F16",
    "BF16",
    "I8",
    "U8",
    "I16",
    "U16",
    "I32",
    "U32",
    "U64",
    "F8_E4M3",
    "F8_E5M2",
    "C64",
    "f32",
    "",
    "F32 ",
    "bool",
]


def gen_json_value(r: Rand, depth: int = 0):
    x = r.randint(0, 9)
    if x == 0:
        return None
    if x == 1:
        return r.chance(0.5)
    if x == 2:
        return gen_int(r)
    if x == 3:
        return gen_float(r) if r.chance(0.5) else 1.5
    if x == 4:
        return r.choice(["", "F32", "x" * r.randint(0, 300), "\ud800", "\u00e9", "[1, 2]"])
    if x in (5, 6) and depth < 3:
        return [gen_json_value(r, depth + 1) for _ in range(r.randint(0, 3))]
    if x == 7 and depth < 3:
        return {str(gen_int(r)): gen_json_value(r, depth + 1) for _ in range(r.randint(0, 2))}
    return gen_int(r)


def mutate_header(r: Rand, header: dict) -> dict:
    header = json.loads(json.dumps(header))
    names = [k for k in header if k != "__metadata__"]
    what = r.pick(
        {
            "dtype": 3,
            "shape": 3,
            "offsets": 4,
            "drop-field": 1,
            "extra-field": 1,
            "rename": 1,
            "metadata": 2,
            "order": 3,
            "top": 0.5,
            "add-tensor": 1,
            "remove-tensor": 1,
            "swap-offsets": 1,
        }
    )
    info = header[r.choice(names)] if names and isinstance(header.get(names[0]), dict) else None
    if what == "dtype" and info is not None:
        info["dtype"] = r.choice(DTYPE_NAMES) if r.chance(0.8) else gen_json_value(r)
    elif what == "shape" and info is not None:
        info["shape"] = r.choice(
            [
                [],
                [0],
                [-1],
                [2**63],
                [2**64],
                [2**64 + 1],
                [2**32, 2**32],
                [2**62, 4],
                [3, 2**61, 8],
                ["3"],
                [1.5],
                [[1]],
                None,
                "abc",
                [1] * 70,
                [gen_int(r) for _ in range(r.randint(1, 3))],
                [
                    max(1, s) * r.choice([1, 2])
                    for s in (info.get("shape") if isinstance(info.get("shape"), list) else [])
                    if isinstance(s, int)
                ],
            ]
        )
    elif what == "offsets" and info is not None:
        off = info.get("data_offsets")
        b, e = (
            off
            if (isinstance(off, list) and len(off) == 2 and all(isinstance(v, int) for v in off))
            else (0, 0)
        )
        info["data_offsets"] = r.choice(
            [
                [e, b],
                [b, e + 1],
                [b, e - 1],
                [b + 1, e],
                [b - 1, e],
                [0, 2**64 - 1],
                [2**64, 2**64 + 8],
                [2**63, 2**63 + 4],
                [-1, e],
                [b],
                [b, e, 0],
                [],
                "x",
                [1.5, 2.0],
                [0, e],
                [b, b],
                [e, e + (e - b)],
                None,
                [gen_int(r), gen_int(r)],
            ]
        )
    elif what == "drop-field" and info is not None:
        info.pop(r.choice(["dtype", "shape", "data_offsets"]), None)
    elif what == "extra-field" and info is not None:
        info[r.choice(["extra", "dtype2", ""])] = gen_json_value(r)
    elif what == "rename" and names:
        old = r.choice(names)
        header[r.choice(["", "__metadata__", "a" * 10000, "\ud800", "x\x00y", "w", old + "."])] = (
            header.pop(old)
        )
    elif what == "metadata":
        header["__metadata__"] = r.choice(
            [
                None,
                [],
                "x",
                {"k": 5},
                {"k": None},
                {"k": [1]},
                {"lincore.order": 5},
                {str(i): "v" for i in range(50)},
                gen_json_value(r),
            ]
        )
    elif what == "order":
        order = r.choice(
            [
                "not json",
                "[",
                "null",
                "5",
                '"str"',
                "{}",
                json.dumps(names * 2),
                json.dumps(names[::-1]),
                json.dumps(names + ["ghost"]),
                json.dumps(names[1:]),
                json.dumps([1] * len(names)),
                json.dumps([[n] for n in names]),
                "[" * r.choice([100, 1000, 10**5]) + "]" * r.choice([0, 100, 1000, 10**5]),
                '["' + "9" * 5000 + '"]',
                "[" + "9" * 5000 + "]",
                "\ud800",
                json.dumps(names).replace('"', "'"),
                json.dumps(names) + " trailing",
            ]
        )
        meta = header.get("__metadata__")
        header["__metadata__"] = meta if isinstance(meta, dict) else {}
        header["__metadata__"]["lincore.order"] = order
    elif what == "top":
        return r.choice([[], "s", 5, None, [header]])  # type: ignore[return-value]
    elif what == "add-tensor":
        end = max(
            [
                i["data_offsets"][1]
                for i in header.values()
                if isinstance(i, dict)
                and isinstance(i.get("data_offsets"), list)
                and len(i["data_offsets"]) == 2
                and isinstance(i["data_offsets"][1], int)
            ]
            or [0]
        )
        header[f"new{r.randint(0, 9)}"] = {
            "dtype": r.choice(DTYPE_NAMES[:6]),
            "shape": [r.randint(0, 3)],
            "data_offsets": [end, end + r.choice([0, 4, 8, 16])],
        }
    elif what == "remove-tensor" and names:
        header.pop(r.choice(names))
    elif what == "swap-offsets" and len(names) >= 2:
        a, b = r.choice(names), r.choice(names)
        if isinstance(header[a], dict) and isinstance(header[b], dict):
            header[a]["data_offsets"], header[b]["data_offsets"] = (
                header[b].get("data_offsets"),
                header[a].get("data_offsets"),
            )
    return header


def serialize(r: Rand, header, data: bytes) -> bytes:
    style = r.pick({"compact": 3, "spaced": 1, "ascii-off": 1, "padded": 2, "dup-key": 0.5})
    if style == "compact":
        text = json.dumps(header, separators=(",", ":")).encode()
    elif style == "spaced":
        text = json.dumps(header, indent=r.randint(0, 3)).encode()
    elif style == "ascii-off":
        text = json.dumps(header, ensure_ascii=False).encode("utf-8", "surrogatepass")
    elif style == "dup-key" and isinstance(header, dict) and header:
        k = next(iter(header))
        text = json.dumps(header).encode()
        text = (
            text[:-1]
            + b", "
            + json.dumps(k).encode()
            + b": "
            + json.dumps(header[k]).encode()
            + b"}"
        )
    else:
        text = json.dumps(header).encode()
        text += b" " * ((-len(text)) % 8)
    n = len(text)
    if r.chance(0.15):
        n = r.choice([n - 1, n + 1, 0, len(text) + len(data), 2**63, 2**64 - 1, 100_000_001])
    return (n % 2**64).to_bytes(8, "little") + text + data


def mutate_bytes(r: Rand, data: bytearray, seeds: list[bytes]) -> bytearray:
    op = r.pick(
        {
            "flip": 4,
            "set": 3,
            "insert": 2,
            "delete": 2,
            "dup": 1,
            "truncate": 2,
            "append": 1,
            "header-len": 3,
            "splice": 1,
            "header-byte": 3,
        }
    )
    n = len(data)
    if op == "flip" and n:
        i = r.randint(0, n - 1)
        data[i] ^= 1 << r.randint(0, 7)
    elif op == "set" and n:
        data[r.randint(0, n - 1)] = r.choice(
            [0, 0xFF, 0x7F, 0x80, 0x22, 0x5B, 0x5D, 0x7B, 0x7D, 0x2C, 0x3A, 0x30, 0x39, 0x2D, 0x20]
        )
    elif op == "insert":
        i = r.randint(0, n)
        data[i:i] = r.randbytes(r.randint(1, 16))
    elif op == "delete" and n:
        i = r.randint(0, n - 1)
        del data[i : i + r.randint(1, 16)]
    elif op == "dup" and n:
        i = r.randint(0, n - 1)
        j = r.randint(i, min(n, i + 64))
        data[j:j] = data[i:j]
    elif op == "truncate":
        del data[r.randint(0, n) :]
    elif op == "append":
        data += r.randbytes(r.randint(1, 64))
    elif op == "header-len" and n >= 8:
        cur = int.from_bytes(data[:8], "little")
        v = r.choice(
            [
                0,
                1,
                7,
                8,
                cur - 1,
                cur + 1,
                cur + 8,
                n - 8,
                n - 7,
                n,
                2**31,
                2**32,
                2**63 - 1,
                2**63,
                2**64 - 1,
                100_000_000,
                100_000_001,
                cur * 2,
            ]
        )
        data[:8] = (v % 2**64).to_bytes(8, "little")
    elif op == "splice":
        other = r.choice(seeds)
        i, j = r.randint(0, n), r.randint(0, len(other))
        data[i:] = other[j:]
    elif op == "header-byte" and n > 8:
        hl = min(int.from_bytes(data[:8], "little"), n - 8)
        if hl > 0:
            i = 8 + r.randint(0, hl - 1)
            data[i] = r.choice(b'"{}[],:0123456789-.eE tfn\\\x00\xff\xc3')
    return data


def gen_load_input(r: Rand, skip: frozenset = frozenset()):
    """(label, bytes) for the load target."""
    seeds = seed_files()
    labels = {
        "valid": 0.5,
        "bytes": 5,
        "header": 5,
        "header+bytes": 3,
        "random": 0.5,
        "tiny": 0.3,
        "reader": 0.2,
    }
    labels = {k: v for k, v in labels.items() if k not in skip} or {"valid": 1}
    label = r.pick(labels)
    base = r.choice(seeds)
    if label == "valid":
        return label, base
    if label == "random":
        return label, r.randbytes(r.randint(0, 256))
    if label == "tiny":
        return label, r.randbytes(r.randint(0, 16))
    data = base
    if label in ("header", "header+bytes", "reader"):
        header, body = split_file(base)
        if header is not None:
            for _ in range(1 + (r.bits(3) == 0) + (r.bits(4) == 0)):
                header = mutate_header(r, header) if isinstance(header, dict) else header
            if r.chance(0.2):
                body = (
                    body[: r.randint(0, len(body))]
                    if r.chance(0.5)
                    else body + r.randbytes(r.randint(1, 32))
                )
            data = serialize(r, header, body)
    if label in ("bytes", "header+bytes"):
        buf = bytearray(data)
        for _ in range(r.choice([1, 1, 1, 2, 3, 5, 10])):
            buf = mutate_bytes(r, buf, seeds)
        data = bytes(buf)
    return label, data


# =============================================================================================
# Running one input
# =============================================================================================

# What tensor() may raise: PyTorch's kinds of error, MemoryError for sizes beyond memory,
# RecursionError (a RuntimeError) for absurd nesting, and whatever the input object raises.
TENSOR_ALLOWED = (
    ValueError,
    TypeError,
    RuntimeError,
    OverflowError,
    IndexError,
    MemoryError,
    FuzzError,
)


class Violation(Exception):
    """A contract broken without a crash (see the module docstring); fails only with --strict."""


def _same(a, b) -> bool:
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return np.array_equal(np.isnan(a), np.isnan(b)) and np.array_equal(
            a[~np.isnan(a)].view(np.uint8 if a.itemsize == 1 else f"u{a.itemsize}"),
            b[~np.isnan(b)].view(np.uint8 if b.itemsize == 1 else f"u{b.itemsize}"),
        )
    return np.array_equal(a, b)


def _expected_numeric(obj):
    """numpy's value for a rectangular nesting of Python numbers under PyTorch's dtype rules,
    or None when not applicable (not rectangular, other leaves, out of range)."""
    import numpy as np

    def shape_of(node):
        if type(node) in (list, tuple):
            subs = [shape_of(c) for c in node]
            if not subs:
                return (0,)
            if any(s is None or s != subs[0] for s in subs):
                return None
            return (len(node),) + subs[0]
        return () if type(node) in (int, float, bool) else None

    shape = shape_of(obj)
    if shape is None:
        return None
    flat: list = []

    def walk(node):
        if type(node) in (list, tuple):
            for c in node:
                walk(c)
        else:
            flat.append(node)

    walk(obj)
    if not flat:
        return np.zeros(shape, np.float32)
    kind = max(0 if type(v) is bool else 1 if type(v) is int else 2 for v in flat)
    if kind == 1 and any(not -(2**63) <= v < 2**63 for v in flat):
        return None
    try:
        with np.errstate(all="ignore"):
            arr = np.array(
                [float(v) for v in flat] if kind == 2 else flat,
                dtype=(np.bool_, np.int64, np.float64)[kind],
            )
            return arr.astype((np.bool_, np.int64, np.float32)[kind]).reshape(shape)
    except OverflowError:
        return None


def run_tensor_input(label: str, obj, r: Rand) -> str:
    import numpy as np
    import lincore
    import lincore.nn.functional as F

    fn = r.pick({"tensor": 5, "as_tensor": 3, "from_numpy": 1})
    dtype = None
    if fn != "from_numpy" and r.chance(0.25):
        dtype = r.choice(
            [lincore.float32, lincore.float64, lincore.int64, lincore.bool, "float32", np.float32]
        )
    requires_grad = fn == "tensor" and r.chance(0.05)
    try:
        if fn == "tensor":
            t = lincore.tensor(obj, dtype=dtype, requires_grad=requires_grad)
        elif fn == "as_tensor":
            t = lincore.as_tensor(obj, dtype=dtype)
        else:
            t = lincore.from_numpy(obj)
    except TENSOR_ALLOWED as e:
        return f"{fn}:{type(e).__name__}"
    except Exception as e:
        raise Violation(f"{fn}() raised {type(e).__name__}: {e}") from e
    # The tensor exists: everything below must work.
    try:
        if not isinstance(t, lincore.Tensor) or t.dtype not in (
            lincore.float32,
            lincore.float64,
            lincore.int64,
            lincore.bool,
        ):
            raise Violation(f"{fn}() returned {type(t).__name__} {getattr(t, 'dtype', None)}")
        if label == "nested-numeric" and dtype is None and fn != "from_numpy":
            expected = _expected_numeric(obj)
            if expected is not None and not _same(np.asarray(t.detach()), expected):
                raise Violation(f"{fn}() of nested numbers differs from numpy's values")
        if t.numel() <= 4096:
            d = t.detach()
            arr = np.asarray(d)
            repr(t)
            d.tolist()
            d.sum()
            d.contiguous()
            if d.dtype.is_floating_point and d.dim() >= 1 and d.shape[-1] <= 256:
                w = lincore.ones(3, d.shape[-1], dtype=d.dtype)
                y = F.linear(d, w)
                y_ref = F.linear(lincore.tensor(arr.copy()), w)
                if not _same(y, y_ref):
                    raise Violation("Linear on a strided tensor differs from a contiguous copy")
    except Violation:
        raise
    except MemoryError:
        return f"{fn}:ok-then-MemoryError"
    except Exception as e:
        raise Violation(f"a tensor from {fn}() failed afterwards: {type(e).__name__}: {e}") from e
    return f"{fn}:ok"


_LOAD_PATH: str | None = None


def _load_path() -> str:
    global _LOAD_PATH
    if _LOAD_PATH is None:
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        fd, _LOAD_PATH = tempfile.mkstemp(prefix="lincore-fuzz-", suffix=".safetensors", dir=base)
        os.close(fd)
    return _LOAD_PATH


class BadReader:
    def __init__(self, value) -> None:
        self.value = value

    def read(self):
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


def run_load_input(label: str, data: bytes, r: Rand) -> str:
    import numpy as np
    import safetensors
    import safetensors.numpy
    import lincore

    how = "reader" if label == "reader" else r.pick({"path": 4, "bytesio": 1})
    if how == "reader":
        src = BadReader(
            r.choice(["text", None, 5, FuzzError("read raised"), bytearray(data), memoryview(data)])
        )
    elif how == "bytesio":
        src = io.BytesIO(data)
    else:
        src = _load_path()
        with open(src, "wb") as f:
            f.write(data)
    try:
        out = lincore.load(src)
        outcome = "ok"
    except ValueError:
        out, outcome = None, "ValueError"
    except (TypeError, FuzzError) as e:
        if how != "reader":
            raise Violation(f"load raised {type(e).__name__} (not ValueError): {e}") from e
        return f"reader:{type(e).__name__}"
    except Exception as e:
        raise Violation(f"load raised {type(e).__name__} (not ValueError): {e}") from e
    if how == "reader":
        return "reader:ok"
    # Differential check against the reference parser (safetensors.numpy).
    try:
        ref = safetensors.numpy.load(data)
    except Exception:
        ref = None
    if out is None:
        if ref is not None and all(
            a.dtype in (np.float32, np.float64, np.int64, np.bool_) for a in ref.values()
        ):
            raise Violation(
                "lincore.load refused a file that safetensors.numpy.load reads, "
                "with only lincore's dtypes"
            )
        return outcome
    if ref is None:
        raise Violation("lincore.load accepted a file that safetensors.numpy.load refuses")
    if sorted(out) != sorted(ref):
        raise Violation("lincore.load and safetensors.numpy.load give different names")
    for k, t in out.items():
        a = np.asarray(t)
        b = ref[k]
        if b.dtype == np.bool_:
            b = np.frombuffer(b.tobytes(), np.uint8).reshape(b.shape) != 0
        if not _same(a, b.astype(b.dtype.newbyteorder("="))):
            raise Violation(f"tensor {k!r}: lincore.load and safetensors.numpy.load differ")
        if t.numel() <= 4096:
            repr(t)
    # What loads must survive save -> load bitwise, in the same order.
    f = io.BytesIO()
    lincore.save(out, f)
    again = lincore.load(io.BytesIO(f.getvalue()))
    if list(again) != list(out) or not all(_same(again[k], out[k]) for k in out):
        raise Violation("save(load(file)) does not load back the same tensors")
    return outcome


# =============================================================================================
# Inputs for lincore.onnx.load
# =============================================================================================

_ONNX_SEEDS: list[bytes] | None = None


def onnx_seed_files() -> list[bytes]:
    """Valid ONNX models, built deterministically with onnx.helper: a Gemm MLP with softmax, a
    MatMul+Add MLP on 3-D input with the Erf form of GELU, a scikit-learn-style classifier (Cast,
    ArgMax, ArrayFeatureExtractor, Reshape, ZipMap, Sub/Concat), Flatten/Reshape/Dropout."""
    global _ONNX_SEEDS
    if _ONNX_SEEDS is not None:
        return _ONNX_SEEDS
    import numpy as np
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)

    def arr(name, *shape):
        return nh.from_array(rng.standard_normal(shape).astype(np.float32), name)

    def model(nodes, inputs, outputs, inits, opset=17, ml=False):
        ops = [h.make_opsetid("", opset)] + ([h.make_opsetid("ai.onnx.ml", 1)] if ml else [])
        g = h.make_graph(nodes, "seed", inputs, outputs, initializer=inits)
        return h.make_model(g, opset_imports=ops).SerializeToString()

    x2 = [h.make_tensor_value_info("x", T.FLOAT, ["n", 6])]
    files = [
        model(
            [
                h.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1, alpha=0.5),
                h.make_node("LeakyRelu", ["h"], ["a"], alpha=0.1),
                h.make_node("Gemm", ["a", "W2", "b2"], ["z"]),
                h.make_node("Softmax", ["z"], ["y"], axis=-1),
            ],
            x2,
            [h.make_tensor_value_info("y", T.FLOAT, ["n", 3])],
            [arr("W1", 5, 6), arr("b1", 5), arr("W2", 5, 3), arr("b2", 1, 3)],
        ),
        model(
            [
                h.make_node("MatMul", ["x", "W"], ["m"]),
                h.make_node("Add", ["m", "b"], ["p"]),
                h.make_node("Div", ["p", "sqrt2"], ["d"]),
                h.make_node("Erf", ["d"], ["e"]),
                h.make_node("Add", ["e", "one"], ["e1"]),
                h.make_node("Mul", ["p", "e1"], ["pe"]),
                h.make_node("Mul", ["pe", "half"], ["g"]),
                h.make_node("Tanh", ["g"], ["y"]),
            ],
            [h.make_tensor_value_info("x", T.FLOAT, ["n", 2, 4])],
            [h.make_tensor_value_info("y", T.FLOAT, ["n", 2, 3])],
            [
                arr("W", 4, 3),
                arr("b", 3),
                nh.from_array(np.array(np.sqrt(2), np.float32), "sqrt2"),
                nh.from_array(np.array(1, np.float32), "one"),
                nh.from_array(np.array(0.5, np.float32), "half"),
            ],
        ),
        model(
            [
                h.make_node("Cast", ["x"], ["c"], to=T.FLOAT),
                h.make_node("MatMul", ["c", "W"], ["m"]),
                h.make_node("Add", ["m", "b"], ["z"]),
                h.make_node("Sigmoid", ["z"], ["p1"]),
                h.make_node("Sub", ["one", "p1"], ["p0"]),
                h.make_node("Concat", ["p0", "p1"], ["probs"], axis=1),
                h.make_node("ArgMax", ["probs"], ["am"], axis=1),
                h.make_node(
                    "ArrayFeatureExtractor", ["classes", "am"], ["lab"], domain="ai.onnx.ml"
                ),
                h.make_node("Reshape", ["lab", "flat"], ["label"]),
                h.make_node(
                    "ZipMap", ["probs"], ["zm"], classlabels_int64s=[3, 7], domain="ai.onnx.ml"
                ),
            ],
            x2,
            [
                h.make_tensor_value_info("label", T.INT64, ["n"]),
                h.make_tensor_value_info("probs", T.FLOAT, ["n", 2]),
                h.make_value_info(
                    "zm",
                    h.make_sequence_type_proto(
                        h.make_map_type_proto(T.INT64, h.make_tensor_type_proto(T.FLOAT, None))
                    ),
                ),
            ],
            [
                arr("W", 6, 1),
                arr("b", 1, 1),
                nh.from_array(np.ones((1, 1), np.float32), "one"),
                nh.from_array(np.array([3, 7], np.int64), "classes"),
                nh.from_array(np.array([-1], np.int64), "flat"),
            ],
            opset=13,
            ml=True,
        ),
        model(
            [
                h.make_node("Flatten", ["x"], ["f"], axis=1),
                h.make_node("Reshape", ["f", "shape"], ["r"]),
                h.make_node("Dropout", ["r"], ["d"]),
                h.make_node("Identity", ["d"], ["i"]),
                h.make_node("Gemm", ["i", "W"], ["z"], transB=1),
                h.make_node("Gelu", ["z"], ["g"], approximate="tanh"),
                h.make_node("LogSoftmax", ["g"], ["y"], axis=1),
            ],
            [h.make_tensor_value_info("x", T.FLOAT, ["n", 2, 3])],
            [h.make_tensor_value_info("y", T.FLOAT, ["n", 4])],
            [arr("W", 4, 6), nh.from_array(np.array([0, 6], np.int64), "shape")],
            opset=20,
        ),
    ]
    _ONNX_SEEDS = files
    return files


# Values that hit the loader's size, sign and type checks.
_ONNX_DIMS = [0, 1, 2, 3, -1, -(2**63), 2**31, 2**32 + 1, 2**40, 2**62, 2**63 - 1]


def mutate_onnx(r: Rand, m) -> None:
    """One structural change of a ModelProto, in place."""
    from onnx import AttributeProto, TensorProto
    from onnx import helper as h

    g = m.graph
    op = r.pick(
        {
            "dims": 3,
            "dtype": 2,
            "raw": 2,
            "external": 1,
            "attr-type": 2,
            "attr-value": 2,
            "op-type": 2,
            "rewire": 3,
            "drop-node": 1,
            "drop-init": 1,
            "opset": 1,
            "input-type": 1,
            "dup-output": 1,
        }
    )
    inits, nodes = list(g.initializer), list(g.node)
    if op == "dims" and inits:
        t = r.choice(inits)
        dims = list(t.dims)
        if dims and r.chance(0.7):
            dims[r.randint(0, len(dims) - 1)] = r.choice(_ONNX_DIMS)
        else:
            dims.append(r.choice(_ONNX_DIMS))
        del t.dims[:]
        t.dims.extend(max(min(d, 2**63 - 1), -(2**63)) for d in dims)
    elif op == "dtype" and inits:
        r.choice(inits).data_type = r.choice([0, 2, 3, 5, 6, 8, 9, 10, 11, 16, 17, 23, 99, -1])
    elif op == "raw" and inits:
        t = r.choice(inits)
        raw = bytes(t.raw_data)
        t.raw_data = raw[: r.randint(0, len(raw))] if r.chance(0.5) else raw + r.randbytes(8)
    elif op == "external" and inits:
        t = r.choice(inits)
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value=r.choice(["/etc/passwd", "../w.bin", "w.bin"]))
    elif op == "attr-type" and nodes:
        n = r.choice(nodes)
        name = r.choice(["alpha", "beta", "transB", "axis", "to", "approximate", "perm", "value"])
        kind = r.choice(["f", "i", "s", "ints", "floats"])
        value = {"f": 1.5, "i": 7, "s": "x", "ints": [1, 2], "floats": [0.5]}[kind]
        n.attribute.append(h.make_attribute(name, value))
    elif op == "attr-value" and nodes:
        n = r.choice(nodes)
        if len(n.attribute):
            a = r.choice(list(n.attribute))
            if a.type == AttributeProto.INT:
                a.i = r.choice([-(2**63), -2, -1, 0, 1, 5, 2**31, 2**63 - 1])
            elif a.type == AttributeProto.FLOAT:
                a.f = r.choice([0.0, -1.0, float("nan"), float("inf"), 1e38])
            elif a.type == AttributeProto.INTS:
                a.ints.append(r.choice([-1, 0, 2**40]))
    elif op == "op-type" and nodes:
        r.choice(nodes).op_type = r.choice(
            [
                "Gemm",
                "MatMul",
                "Add",
                "Relu",
                "Softmax",
                "Flatten",
                "Reshape",
                "Cast",
                "ZipMap",
                "ArgMax",
                "Concat",
                "Dropout",
                "Gelu",
                "Conv",
                "If",
                "Loop",
                "",
            ]
        )
    elif op == "rewire" and nodes:
        n = r.choice(nodes)
        names = [v for x in nodes for v in list(x.input) + list(x.output)] + ["", "nowhere"]
        if len(n.input) and r.chance(0.7):
            n.input[r.randint(0, len(n.input) - 1)] = r.choice(names)
        elif len(n.output):
            n.output[r.randint(0, len(n.output) - 1)] = r.choice(names)
    elif op == "drop-node" and nodes:
        del g.node[r.randint(0, len(nodes) - 1)]
    elif op == "drop-init" and inits:
        del g.initializer[r.randint(0, len(inits) - 1)]
    elif op == "opset" and len(m.opset_import):
        m.opset_import[0].version = r.choice([0, 1, 6, 11, 12, 13, 20, 99, 2**40])
    elif op == "input-type" and len(g.input):
        tt = g.input[0].type.tensor_type
        if r.chance(0.5):
            tt.elem_type = r.choice([0, 2, 7, 8, 10, 16, 99])
        else:
            for d in tt.shape.dim:
                d.dim_value = r.choice([0, 1, 2**40, 2**62])
    elif op == "dup-output" and len(nodes) >= 2:
        a, b = r.choice(nodes), r.choice(nodes)
        if len(a.output) and len(b.output):
            b.output[0] = a.output[0]


def gen_onnx_input(r: Rand, skip: frozenset = frozenset()):
    """(label, bytes) for the onnx target."""
    import onnx

    seeds = onnx_seed_files()
    labels = {"valid": 0.5, "structure": 6, "bytes": 3, "structure+bytes": 2, "random": 0.5}
    labels = {k: v for k, v in labels.items() if k not in skip} or {"valid": 1}
    label = r.pick(labels)
    data = r.choice(seeds)
    if label == "random":
        return label, r.randbytes(r.randint(0, 256))
    if label in ("structure", "structure+bytes"):
        m = onnx.ModelProto()
        m.ParseFromString(data)
        for _ in range(r.choice([1, 1, 2, 3, 5])):
            mutate_onnx(r, m)
        data = m.SerializeToString()
    if label in ("bytes", "structure+bytes"):
        buf = bytearray(data)
        for _ in range(r.choice([1, 1, 2, 4])):
            buf = mutate_bytes(r, buf, seeds)
        data = bytes(buf)
    return label, data


def run_onnx_input(label: str, data: bytes, r: Rand) -> str:
    """load must give a model or a ValueError; a model then runs on inputs of its declared
    type (batch 0 to 3) or raises ValueError, TypeError, RuntimeError, IndexError (PyTorch's
    error for a dim out of range) or MemoryError."""
    import numpy as np

    import lincore.onnx

    try:
        model = lincore.onnx.load(data)
    except ValueError:
        return "ValueError"
    except Exception as e:
        raise Violation(f"onnx.load raised {type(e).__name__} (not ValueError): {e}") from e
    batch = r.randint(0, 3)
    inputs = []
    for _ in model.input_names:
        shape = [batch] + [1 + r.randint(0, 6) for _ in range(r.randint(0, 2))]
        dtype = r.choice([np.float32, np.float32, np.float64, np.int64])
        inputs.append(np.ones(shape, dtype))
    try:
        model(*inputs)
        return "ran"
    except (ValueError, TypeError, RuntimeError, IndexError, MemoryError) as e:
        return f"run:{type(e).__name__}"
    except Exception as e:
        raise Violation(f"a loaded model raised {type(e).__name__} when run: {e}") from e


GENERATORS = {"tensor": gen_tensor_input, "load": gen_load_input, "onnx": gen_onnx_input}
RUNNERS = {"tensor": run_tensor_input, "load": run_load_input, "onnx": run_onnx_input}
SEEDS = {"load": seed_files, "onnx": onnx_seed_files}


# =============================================================================================
# The child: the fuzzing loop, a single replay, or writing a reproducer
# =============================================================================================


def child_setup(memory_mb: int, inject: str | None = None) -> None:
    if inject:
        what, at = inject.split(":")
        INJECT.update(what=what, at=int(at))
    import faulthandler
    import warnings

    warnings.simplefilter("ignore")
    faulthandler.enable(all_threads=True)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if memory_mb > 0:
        try:
            import resource

            limit = memory_mb * 2**20
            if os.environ.get("LINCORE_SANITIZED") == "1":
                # AddressSanitizer (.ci/sanitize) has already reserved terabytes of shadow address
                # space, so an absolute cap would only make its next mmap fail at start-up: cap
                # the growth from here instead.
                with open("/proc/self/statm") as f:
                    limit += int(f.read().split()[0]) * resource.getpagesize()
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):
            pass
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 3000))


def make_input(target: str, seed: int, index: int, skip: frozenset):
    r = input_rand(target, seed, index)
    label, obj = GENERATORS[target](r, skip)
    return label, obj, r


INJECT: dict = {}


def run_input(target: str, label: str, obj, r: Rand, index: int = -1) -> str:
    if INJECT and index == INJECT["at"]:  # --inject: the harness's own test (test_fuzz_smoke)
        if INJECT["what"] == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif INJECT["what"] == "abort":
            os.abort()
        elif INJECT["what"] == "hang":
            while True:
                time.sleep(1)
    return RUNNERS[target](label, obj, r)


class Progress:
    def __init__(self, path: str, create: bool = False) -> None:
        if create:
            with open(path, "wb") as f:
                f.write(PROGRESS.pack(-1, time.time(), b""))
        self.f = open(path, "r+b")
        self.mm = mmap.mmap(self.f.fileno(), PROGRESS.size)

    def write(self, index: int, label: str) -> None:
        self.mm[: PROGRESS.size] = PROGRESS.pack(index, time.time(), label.encode()[:64])

    def read(self) -> tuple[int, str]:
        index, _, label = PROGRESS.unpack(self.mm[: PROGRESS.size])
        return index, label.rstrip(b"\0").decode(errors="replace")


def violation_record(target, seed, index, label, message, skip) -> dict:
    return {
        "target": target,
        "seed": seed,
        "index": index,
        "label": label,
        "message": message[:500],
        "skip": sorted(skip),
        "replay": replay_command(target, seed, index, skip),
    }


def signature(message: str) -> str:
    import re

    return re.sub(r"\d+", "N", message.split(":")[0] + ":" + message)[:120]


def child_fuzz(args) -> int:
    child_setup(args.memory_mb, args.inject)
    target, seed, skip = args.target, args.seed, frozenset(args.skip)
    progress = Progress(args.progress)
    deadline = time.monotonic() + args.seconds
    stats = {
        "inputs": 0,
        "exceptions": collections.Counter(),
        "labels": collections.Counter(),
        "violations": 0,
    }
    seen: set[str] = set()
    vpath = os.path.join(args.out, f"violations-{target}.jsonl")
    flushed = time.monotonic()
    if target in FILE_SUFFIX:
        SEEDS[target]()
    import lincore  # noqa: F401  (imported before the clock matters)

    def flush() -> None:
        with open(args.stats, "w") as f:
            json.dump(
                {**stats, "exceptions": dict(stats["exceptions"]), "labels": dict(stats["labels"])},
                f,
            )

    index = args.start
    while time.monotonic() < deadline:
        progress.write(index, "?")
        try:
            label, obj, r = make_input(target, seed, index, skip)
        except Exception as e:  # a bug of the harness's generators, not of lincore
            key = f"harness:generator-{type(e).__name__}"
            if not stats["exceptions"][key]:
                sys.stderr.write(f"generator error on input {index}:\n{traceback.format_exc()}")
            stats["exceptions"][key] += 1
            index += 1
            continue
        progress.write(index, label)
        stats["labels"][label] += 1
        try:
            stats["exceptions"][run_input(target, label, obj, r, index)] += 1
        except Violation as v:
            stats["violations"] += 1
            msg = str(v)
            stats["exceptions"]["Violation"] += 1
            sig = signature(msg)
            if sig not in seen and len(seen) < 100:
                seen.add(sig)
                rec = violation_record(target, seed, index, label, msg, skip)
                if target in FILE_SUFFIX:
                    rec["file"] = os.path.join(
                        args.out, f"violation-{target}-seed{seed}-i{index}{FILE_SUFFIX[target]}"
                    )
                    with open(rec["file"], "wb") as f:
                        f.write(obj)
                else:
                    rec["input"] = safe_repr(obj, 2000)
                with open(vpath, "a") as f:
                    f.write(json.dumps(rec) + "\n")
        except BaseException as e:  # an exception the run_* helpers let through: a harness bug
            if isinstance(e, KeyboardInterrupt):
                raise
            stats["exceptions"][f"harness:{type(e).__name__}"] += 1
            sys.stderr.write(f"harness error on input {index}:\n{traceback.format_exc()}\n")
        stats["inputs"] += 1
        del obj
        index += 1
        now = time.monotonic()
        if now - flushed > 1.0:
            flush()
            flushed = now
    progress.write(index, "done")
    flush()
    if _LOAD_PATH:
        os.unlink(_LOAD_PATH)
    return 0


def child_atheris(args) -> int:
    """libFuzzer-driven (coverage-guided) fuzzing over the same generators and runners."""
    import atheris

    child_setup(args.memory_mb)
    target, skip = args.target, frozenset(args.skip)
    with atheris.instrument_imports():
        import lincore  # noqa: F401
        import lincore._creation  # noqa: F401
        import lincore.serialization  # noqa: F401
    progress = Progress(args.progress)
    corpus = os.path.join(args.out, f"corpus-{target}")
    os.makedirs(corpus, exist_ok=True)
    if target in FILE_SUFFIX:
        for i, data in enumerate(SEEDS[target]()):
            with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
                f.write(data)
    counter = [args.start]
    vpath = os.path.join(args.out, f"violations-{target}-atheris.jsonl")
    seen: set[str] = set()

    def one(data: bytes) -> None:
        counter[0] += 1
        progress.write(counter[0], "atheris")
        r = BytesRand(data)
        if target == "tensor":
            label, obj = gen_tensor_input(r, skip)
        else:
            label, obj = ("bytes", data) if r.chance(0.5) else GENERATORS[target](r, skip)
        try:
            run_input(target, label, obj, r)
        except Violation as v:
            if args.strict:
                raise
            sig = signature(str(v))
            if sig not in seen and len(seen) < 100:  # the first input of each kind
                seen.add(sig)
                with open(vpath, "a") as f:
                    f.write(
                        json.dumps(
                            {
                                "label": label,
                                "message": str(v)[:500],
                                "input_hex": data[:4096].hex(),
                            }
                        )
                        + "\n"
                    )

    atheris.Setup(
        [
            sys.argv[0],
            f"-max_total_time={max(1, int(args.seconds))}",
            f"-seed={args.seed % 2**31 + 1}",
            f"-timeout={int(args.timeout)}",
            f"-rss_limit_mb={args.memory_mb or 2048}",
            "-print_final_stats=1",
            f"-artifact_prefix={args.out}{os.sep}",
            corpus,
        ],
        one,
    )
    atheris.Fuzz()
    return 0


def child_replay(args) -> int:
    """Runs one input (by seed and index, or from a reproducer file) and reports the outcome."""
    child_setup(args.memory_mb, args.inject)
    target, skip = args.target, frozenset(args.skip)
    if args.replay_file:
        with open(args.replay_file, "rb") as f:
            raw = f.read()
        if args.engine == "atheris":
            r = BytesRand(raw)
            label, obj = GENERATORS[target](r, skip)
        elif target in FILE_SUFFIX:
            label, obj, r = "bytes", raw, input_rand(target, 0, 0)
        else:
            import pickle

            label, obj = pickle.loads(raw)
            r = input_rand(target, 0, 0)
    else:
        label, obj, r = make_input(target, args.seed, args.index, skip)
    print(f"input ({target}, {label}): {safe_repr(obj, 1000)}", flush=True)
    try:
        run_input(target, label, obj, r, -1 if args.replay_file else args.index)
        print("outcome: ok (no crash, no hang; any exception was an allowed one)")
        return 0
    except Violation as v:
        traceback.print_exc()
        print(f"outcome: contract violation: {v}")
        return 3


def child_dump(args) -> int:
    """Writes the reproducer files of one input (never runs it)."""
    child_setup(args.memory_mb)
    label, obj, _ = make_input(args.target, args.seed, args.index, frozenset(args.skip))
    prefix = args.dump_prefix
    if args.target in FILE_SUFFIX:
        with open(prefix + FILE_SUFFIX[args.target], "wb") as f:
            f.write(obj)
    else:
        with open(prefix + ".repr.txt", "w") as f:
            f.write(safe_repr(obj, 200_000) + "\n")
        try:
            import pickle

            blob = pickle.dumps((label, obj), protocol=pickle.HIGHEST_PROTOCOL)
            with open(prefix + ".pickle", "wb") as f:
                f.write(blob)
        except Exception as e:  # noqa: BLE001  (objects that cannot pickle: repr only)
            with open(prefix + ".repr.txt", "a") as f:
                f.write(f"(not picklable: {type(e).__name__}: {e})\n")
    print(label)
    return 0


def safe_repr(obj, limit: int) -> str:
    """A bounded repr that survives cycles, deep nesting and objects whose repr raises."""
    out: list[str] = []
    size = [0]
    active: set[int] = set()

    def emit(s: str) -> None:
        if size[0] < limit:
            out.append(s)
        size[0] += len(s)

    def walk(x, depth: int) -> None:
        if size[0] >= limit:
            return
        if type(x) in (list, tuple) or isinstance(x, (LyingList, LyingTuple)):
            if id(x) in active:
                emit("<cycle>")
                return
            if depth > 50:
                emit("<...deeper...>")
                return
            active.add(id(x))
            opener, closer = ("[", "]") if isinstance(x, list) else ("(", ")")
            if type(x) not in (list, tuple):
                emit(f"{type(x).__name__}(mode={getattr(x, 'mode', '?')!r})")
            emit(opener)
            for i, c in enumerate(list.__iter__(x) if isinstance(x, list) else tuple.__iter__(x)):
                if i:
                    emit(", ")
                walk(c, depth + 1)
            emit(closer)
            active.discard(id(x))
            return
        try:
            import numpy as np

            if isinstance(x, np.ndarray):
                emit(
                    f"np.ndarray(dtype={x.dtype.str!r}, shape={x.shape}, strides={x.strides}, "
                    f"aligned={x.flags.aligned}, writeable={x.flags.writeable}, "
                    f"first values={np.array2string(np.asarray(x.flat[:50]), threshold=50)[:2000]})"
                )
                return
            s = repr(x)
        except Exception as e:  # noqa: BLE001
            s = f"<{type(x).__name__} whose repr raised {type(e).__name__}>"
        emit(s[:5000])

    walk(obj, 0)
    text = "".join(out)
    return text if size[0] <= limit else text[:limit] + f"... ({size[0]} chars)"


# =============================================================================================
# The parent: runs children under the watchdog, writes reproducers, reports
# =============================================================================================


def replay_command(target: str, seed: int, index: int, skip) -> str:
    extra = "".join(f" --skip {s}" for s in sorted(skip))
    return f"python3 tools/fuzz_harness.py --replay {target}:{seed}:{index}{extra}"


def child_cmd(args, mode: str, target: str, **kw) -> list[str]:
    cmd = [
        sys.executable,
        HERE,
        "--child",
        mode,
        "--target",
        target,
        "--seed",
        str(args.seed),
        "--memory-mb",
        str(args.memory_mb),
        "--out",
        args.out,
        "--timeout",
        str(args.timeout),
        "--engine",
        args.engine,
    ]
    skip = kw.pop("skip_list", None) or ()
    for k, v in kw.items():
        if v is not None:
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    for s in sorted(skip):
        cmd += ["--skip", s]
    if args.strict:
        cmd.append("--strict")
    if args.inject:
        cmd += ["--inject", args.inject]
    return cmd


def watch(
    cmd: list[str],
    progress_path: str,
    timeout: float,
    log_path: str,
    startup: float = 120.0,
    limit: float | None = None,
) -> dict:
    """Runs cmd; returns {"status": ok|crash|exit|hang, "rc", "signal", "index", "label"}."""
    progress = Progress(progress_path, create=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    began = last_change = time.monotonic()
    last = None
    result: dict = {}
    try:
        while True:
            rc = proc.poll()
            index, label = progress.read()
            if rc is not None:
                result = {"rc": rc, "index": index, "label": label}
                if rc == 0:
                    result["status"] = "ok"
                elif rc < 0:
                    result["status"] = "crash"
                    result["signal"] = signal.Signals(-rc).name
                else:
                    result["status"] = "exit"
                return result
            now = time.monotonic()
            if (index, label) != last:
                last, last_change = (index, label), now
            allowed = startup if index < 0 else timeout
            if now - last_change > allowed or (limit is not None and now - began > limit):
                try:
                    proc.send_signal(signal.SIGUSR1)  # faulthandler: the Python stacks
                    time.sleep(1.0)
                finally:
                    proc.kill()
                    proc.wait()
                return {
                    "status": "hang",
                    "rc": None,
                    "index": index,
                    "label": label,
                    "stalled_s": round(now - last_change, 1),
                }
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def tail(path: str, n: int = 6000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def record_finding(args, target: str, res: dict, skip: frozenset, log_path: str) -> dict:
    index = res["index"]
    kind = res["status"]  # crash (a signal), hang, or exit (an abnormal exit code)
    prefix = os.path.join(args.out, f"{target}-{kind}-seed{args.seed}-i{index}")
    replay = replay_command(target, args.seed, index, skip)
    finding = {
        "target": target,
        "kind": kind,
        "index": index,
        "label": res.get("label"),
        "signal": res.get("signal"),
        "rc": res.get("rc"),
        "seed": args.seed,
        "skip": sorted(skip),
        "replay": replay,
        "report": prefix + ".txt",
    }
    if args.engine == "random" and index >= 0:
        # The reproducer files, written by a separate process (the input is regenerated).
        dump = child_cmd(args, "dump", target, index=index, dump_prefix=prefix, skip_list=skip)
        try:
            subprocess.run(dump, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pass
        # Does the input crash / hang on its own, in a fresh process?
        rlog = prefix + ".replay.log"
        rep = watch(
            child_cmd(
                args, "replay", target, index=index, progress=prefix + ".prog", skip_list=skip
            ),
            prefix + ".prog",
            args.timeout,
            rlog,
            limit=args.timeout + 60,
        )
        os.unlink(prefix + ".prog")
        finding["alone"] = {
            "ok": "no crash or hang alone (state from earlier inputs?)",
            "crash": f"crashes alone ({rep.get('signal')})",
            "exit": f"exits with code {rep.get('rc')} alone",
            "hang": "hangs alone",
        }[rep["status"]]
        if rep["status"] == "exit" and rep.get("rc") == 3:
            finding["alone"] = "raises a contract violation alone"
    files = sorted(
        p
        for p in os.listdir(args.out)
        if p.startswith(os.path.basename(prefix)) and p != os.path.basename(prefix) + ".txt"
    )
    finding["files"] = [os.path.join(args.out, p) for p in files]
    with open(prefix + ".txt", "w") as f:
        f.write(f"lincore fuzz finding: {kind} in target {target!r}\n")
        for k in ("label", "signal", "rc", "seed", "index", "skip", "alone", "files"):
            f.write(f"{k}: {finding.get(k)}\n")
        if res.get("stalled_s"):
            f.write(f"no progress for {res['stalled_s']} s (watchdog --timeout {args.timeout})\n")
        f.write(f"replay: {replay}\n\n--- child output (faulthandler stacks) ---\n")
        f.write(tail(log_path))
    return finding


def run_target(args, target: str) -> dict:
    start_time = time.monotonic()
    deadline = start_time + args.seconds
    skip = frozenset(args.skip)
    start, segment = 0, 0
    summary = {
        "target": target,
        "inputs": 0,
        "findings": [],
        "exceptions": collections.Counter(),
        "labels": collections.Counter(),
        "violations": 0,
    }
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0.5 and segment > 0:
            break
        segment += 1
        prog = os.path.join(args.out, f".progress-{target}")
        stats = os.path.join(args.out, f".stats-{target}-{segment}.json")
        log = os.path.join(args.out, f"child-{target}-{segment}.log")
        mode = "atheris" if args.engine == "atheris" else "fuzz"
        cmd = child_cmd(
            args,
            mode,
            target,
            start=start,
            seconds=f"{max(remaining, 1):.2f}",
            progress=prog,
            stats=stats,
            skip_list=skip,
        )
        res = watch(
            cmd,
            prog,
            args.timeout + (10 if mode == "atheris" else 0),
            log,
            limit=max(remaining, 1) + args.timeout + 120,
        )
        try:
            with open(stats) as f:
                st = json.load(f)
            os.unlink(stats)
            summary["inputs"] += st["inputs"]
            summary["violations"] += st["violations"]
            summary["exceptions"].update(st["exceptions"])
            summary["labels"].update(st["labels"])
        except (OSError, ValueError):
            st = {"inputs": 0}
        if mode == "fuzz" and res["status"] != "ok" and res.get("index", -1) >= start:
            summary["inputs"] += max(0, res["index"] - start - st["inputs"])
        if mode == "atheris":
            summary["inputs"] = max(summary["inputs"], res.get("index", 0))
            try:  # distinct violations (the libFuzzer child keeps no other statistics)
                with open(os.path.join(args.out, f"violations-{target}-atheris.jsonl")) as f:
                    summary["violations"] = sum(1 for _ in f)
            except OSError:
                pass
            arts = [
                p
                for p in os.listdir(args.out)
                if p.startswith(("crash-", "timeout-", "oom-", "leak-"))
            ]
            if res["status"] != "ok" or arts:
                summary["findings"].append(
                    {
                        "target": target,
                        "kind": res["status"],
                        "signal": res.get("signal"),
                        "rc": res.get("rc"),
                        "artifacts": [os.path.join(args.out, a) for a in arts],
                        "log": log,
                    }
                )
            break
        if res["status"] == "ok":
            if os.path.getsize(log) == 0:
                os.unlink(log)
            break
        if res.get("index", -1) < 0:
            print(
                f"[{target}] the fuzzing process failed before its first input "
                f"({res}):\n{tail(log)}",
                flush=True,
            )
            summary["findings"].append({"target": target, "kind": "startup", "log": log})
            break
        finding = record_finding(args, target, res, skip, log)
        summary["findings"].append(finding)
        print(
            f"[{target}] {finding['kind'].upper()} at input {finding['index']} "
            f"({finding['label']}, {finding.get('signal') or finding.get('rc') or ''}): "
            f"{finding.get('alone', '')}; report {finding['report']}",
            flush=True,
        )
        if len(summary["findings"]) >= args.max_findings:
            print(f"[{target}] stopping after {args.max_findings} findings", flush=True)
            break
        # Go on after the offending input, without that kind of input (it would recur).
        if finding.get("label") and finding["label"] not in ("?", "done"):
            skip = skip | {finding["label"]}
        start = max(res["index"], start) + 1
    summary["seconds"] = round(time.monotonic() - start_time, 1)
    summary["rate"] = round(summary["inputs"] / max(summary["seconds"], 1e-9), 1)
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring for details.",
    )
    p.add_argument("--seconds", type=float, default=60.0, help="fuzzing time per target")
    p.add_argument("--target", default="all", choices=TARGETS + ("all",))
    p.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    p.add_argument("--out", default=None, help="reproducers and logs (default: a new temp dir)")
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds without progress on one input that count as a hang",
    )
    p.add_argument(
        "--memory-mb",
        type=int,
        default=4096,
        help="address-space limit of the fuzzing process (0: none)",
    )
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        help="a generator label or array layout not to produce, e.g. a known and "
        "reported bug (self-ref, huge-broadcast)",
    )
    p.add_argument("--strict", action="store_true", help="contract violations also fail")
    p.add_argument("--max-findings", type=int, default=5, help="per target")
    p.add_argument("--engine", default="random", choices=("random", "atheris"))
    p.add_argument("--replay", default=None, metavar="TARGET:SEED:INDEX")
    p.add_argument("--replay-file", default=None, metavar="FILE")
    # Internal (the child process).
    p.add_argument(
        "--child",
        default=None,
        choices=("fuzz", "atheris", "replay", "dump"),
        help=argparse.SUPPRESS,
    )
    for name in ("--start", "--index"):
        p.add_argument(name, type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument(
        "--inject",
        default=None,
        metavar="WHAT:INDEX",
        help="crash|abort|hang on input INDEX: tests the harness itself",
    )
    for name in ("--progress", "--stats", "--dump-prefix"):
        p.add_argument(name, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        if args.child == "replay" and args.progress:
            Progress(args.progress).write(0, "replay")
        return {
            "fuzz": child_fuzz,
            "atheris": child_atheris,
            "replay": child_replay,
            "dump": child_dump,
        }[args.child](args)

    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "little")
    args.out = os.path.abspath(args.out or tempfile.mkdtemp(prefix="lincore-fuzz-"))
    os.makedirs(args.out, exist_ok=True)

    if args.replay or args.replay_file:
        if args.replay:
            try:
                target, seed, index = args.replay.split(":")
                args.target, args.seed, args.index = target, int(seed), int(index)
            except ValueError:
                p.error("--replay takes TARGET:SEED:INDEX, e.g. tensor:1:4242")
        elif args.target == "all":
            by_suffix = {v: k for k, v in FILE_SUFFIX.items()}
            args.target = by_suffix.get(os.path.splitext(args.replay_file)[1], "tensor")
        prog = os.path.join(args.out, ".progress-replay")
        cmd = child_cmd(
            args,
            "replay",
            args.target,
            index=args.index,
            progress=prog,
            replay_file=os.path.abspath(args.replay_file) if args.replay_file else None,
            skip_list=frozenset(args.skip),
        )
        log = os.path.join(args.out, "replay.log")
        res = watch(cmd, prog, args.timeout, log, limit=args.timeout + 60)
        sys.stdout.write(tail(log, 20000))
        verdict = {
            "ok": "no crash, no hang",
            "crash": f"CRASH ({res.get('signal')})",
            "hang": f"HANG (no progress for {res.get('stalled_s')} s)",
            "exit": f"exit code {res.get('rc')}",
        }[res["status"]]
        print(f"\nreplay verdict: {verdict}")
        return (
            0
            if res["status"] == "ok"
            or (res["status"] == "exit" and res["rc"] == 3 and not args.strict)
            else 1
        )

    if args.engine == "atheris":
        try:
            import atheris  # noqa: F401
        except ImportError:
            p.error("--engine atheris needs `pip install atheris`")
    targets = TARGETS if args.target == "all" else (args.target,)
    if args.target == "all" and importlib.util.find_spec("onnx") is None:
        targets = tuple(t for t in targets if t != "onnx")  # the onnx target needs onnx
    print(
        f"lincore fuzz: targets={','.join(targets)} seconds/target={args.seconds:g} "
        f"seed={args.seed} engine={args.engine} timeout={args.timeout:g}s out={args.out}",
        flush=True,
    )
    summaries = [run_target(args, t) for t in targets]
    failed = False
    for s in summaries:
        top = ", ".join(f"{k} {v}" for k, v in s["exceptions"].most_common(8))
        print(
            f"[{s['target']}] {s['inputs']} inputs in {s['seconds']} s ({s['rate']}/s); "
            f"{len(s['findings'])} crash/hang findings; {s['violations']} contract "
            f"violations; outcomes: {top}",
            flush=True,
        )
        for f in s["findings"]:
            print(f"    {f['kind']}: {json.dumps(f)}")
        if s["violations"]:
            print(f"    violations: {os.path.join(args.out, 'violations-' + s['target'])}*.jsonl")
        failed |= bool(s["findings"]) or (args.strict and s["violations"] > 0)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(
            [
                {**s, "exceptions": dict(s["exceptions"]), "labels": dict(s["labels"])}
                for s in summaries
            ],
            f,
            indent=1,
        )
    if failed:
        print(
            f"FAIL: crashes, hangs{' or contract violations' if args.strict else ''} found; "
            f"reproducers in {args.out}",
            flush=True,
        )
        return 1
    print("OK: no crash, no hang", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
