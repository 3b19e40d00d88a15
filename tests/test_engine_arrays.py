"""Arrays as distributed engines hand them over (issue #23, requirement 5): pickle protocol 5
with out-of-band buffers, and Dask's way of packing several frames into one message, give
arrays that are read-only (over bytes) and/or not aligned to their element size. lincore takes
what torch.from_numpy takes: it shares memory where the data is aligned (read-only stays
read-only, and writes are refused) and copies misaligned data once into aligned memory."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from conftest import assert_linear_close

import lincore
from lincore import nn

try:
    import torch
except ImportError:  # the torch comparisons below skip
    torch = None

SHAPES = [(0, 3), (1, 1), (5, 7), (33, 17), (128, 257)]
DTYPES = [np.float32, np.float64, np.int64, np.bool_]


def _values(shape, dtype, rng):
    v = rng.standard_normal(shape) * 8
    return (v > 0) if dtype is np.bool_ else v.astype(dtype)


def pickle5_frames(arr):
    """(header, [raw buffers]) as pickle protocol 5 sends an array out of band."""
    buffers = []
    header = pickle.dumps(arr, protocol=5, buffer_callback=buffers.append)
    return header, [bytes(b.raw()) for b in buffers]


def in_one_message(frames, offset, writable):
    """The frames laid end to end in one message after `offset` bytes of header (as a transport
    receives them), each handed back as a memoryview slice of it: bytes give read-only views, a
    bytearray writable ones; an offset that is not a multiple of the element size misaligns."""
    blob = b"\x00" * offset + b"".join(frames)
    msg = memoryview(bytearray(blob) if writable else blob)
    out, at = [], offset
    for f in frames:
        out.append(msg[at : at + len(f)])
        at += len(f)
    return out


def engine_array(values, offset, writable):
    """values after a trip through pickle protocol 5 with its buffer inside one message."""
    header, frames = pickle5_frames(values)
    arr = pickle.loads(header, buffers=in_one_message(frames, offset, writable))
    assert np.array_equal(arr, values)
    assert arr.flags.writeable == writable
    return arr


# (offset in the message, writable): aligned and misaligned, read-only and writable.
LAYOUTS = [(0, False), (0, True), (1, False), (1, True), (3, False), (4, True), (12, False)]


@pytest.mark.parametrize("offset, writable", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_from_numpy_takes_pickle5_arrays(shape, dtype, offset, writable, rng):
    values = _values(shape, dtype, rng)
    arr = engine_array(values, offset, writable)
    aligned = arr.ctypes.data % arr.itemsize == 0
    t = lincore.from_numpy(arr)
    assert t.shape == arr.shape and np.dtype(t.dtype._np) == arr.dtype
    assert np.array_equal(np.asarray(t), values)
    # Read-only stays read-only, whether the memory is shared or copied.
    assert t._writable == writable
    if arr.size:
        # Shared where aligned (the same address, as torch.from_numpy); else an aligned copy.
        assert (t.data_ptr() == arr.ctypes.data) == aligned
        assert t.data_ptr() % arr.itemsize == 0
    if torch is not None and arr.size:
        with warnings.catch_warnings():  # torch warns on read-only arrays
            warnings.simplefilter("ignore", UserWarning)
            expected = torch.from_numpy(arr)
        assert np.array_equal(np.asarray(t), expected.numpy())
    as_t = lincore.as_tensor(arr)
    assert np.array_equal(np.asarray(as_t), values)


@pytest.mark.parametrize("offset, writable", LAYOUTS)
def test_shared_writable_memory_sees_writes_both_ways(offset, writable, rng):
    arr = engine_array(_values((6, 5), np.float32, rng), offset, writable)
    t = lincore.from_numpy(arr)
    if not writable:
        before = arr.copy()
        for write in (
            lambda: t.fill_(1.0),
            lambda: t.zero_(),
            lambda: t.copy_(lincore.ones(6, 5)),
            lambda: t.__setitem__(0, 2.0),
            lambda: t.uniform_(),
        ):
            with pytest.raises(ValueError, match="shares memory with a read-only buffer"):
                write()
        assert np.array_equal(arr, before)  # nothing half-written
        return
    t[0, 0] = 42.0
    if arr.ctypes.data % arr.itemsize == 0:
        assert arr[0, 0] == 42.0  # shared memory
        arr[1, 1] = -1.0
        assert float(t[1, 1]) == -1.0
    else:
        assert arr[0, 0] != 42.0  # the documented copy: writes stay in the tensor


@pytest.mark.parametrize("offset, writable", LAYOUTS)
@pytest.mark.parametrize("rows", [1, 7, 64, 131])
def test_model_output_on_engine_arrays_is_bitwise_the_contiguous_one(rows, offset, writable, rng):
    lincore.manual_seed(23)
    model = nn.Sequential(nn.Linear(33, 40), nn.ReLU(), nn.Linear(40, 9))
    x = _values((rows, 33), np.float32, rng)
    arr = engine_array(x, offset, writable)
    with lincore.no_grad():
        expected = np.asarray(model(lincore.tensor(x)))
        for given in (arr, lincore.from_numpy(arr), lincore.as_tensor(arr)):
            assert np.array_equal(np.asarray(model(given)), expected)
        layer = model[0]
        y = np.asarray(layer(arr))
    assert_linear_close(y, x, np.asarray(layer.weight), np.asarray(layer.bias))
    assert np.array_equal(arr, x)  # the input is never written


def test_misaligned_strided_views_keep_their_layout(rng):
    x = _values((8, 6), np.float64, rng)
    arr = engine_array(x, 3, True)[::2, ::-3]  # stepped, reversed, misaligned
    t = lincore.from_numpy(arr)
    assert np.array_equal(np.asarray(t), x[::2, ::-3])


def test_errors_torch_also_gives_stay(rng):
    x = _values((4, 4), np.float32, rng)
    # Strides that are not whole elements: torch.from_numpy refuses these too.
    raw = np.zeros(4 * 4 * 5, np.uint8)
    odd = np.lib.stride_tricks.as_strided(raw.view(np.float32), (4, 4), (17, 4))
    with pytest.raises(ValueError, match="strides not a multiple of the element byte size"):
        lincore.from_numpy(odd)
    with pytest.raises(ValueError, match="byte order"):
        lincore.from_numpy(x.astype(">f4"))
    # as_tensor copies both, as torch.as_tensor does.
    assert np.array_equal(np.asarray(lincore.as_tensor(x.astype(">f4"))), x)


def test_dask_style_dataframe_partition(rng):
    """A pandas partition that Dask deserialized: to_numpy() of a read-only, misaligned block."""
    pd = pytest.importorskip("pandas", reason="pandas is not installed (it comes with dask)")
    x = _values((50, 12), np.float32, rng)
    block = engine_array(np.ascontiguousarray(x.T), 5, False)  # pandas keeps columns as rows
    frame = pd.DataFrame(block.T, copy=False)
    arr = frame.to_numpy()
    assert not arr.flags.writeable and arr.ctypes.data % 4
    t = lincore.from_numpy(arr)
    assert np.array_equal(np.asarray(t), x) and not t._writable


def test_import_lincore_imports_no_engine():
    """Ray and Dask are optional extras: `import lincore` loads neither (nor pandas/pyarrow)."""
    import subprocess
    import sys

    code = (
        "import sys, lincore; "
        "print(sorted(m for m in ('ray', 'dask', 'distributed', 'pyarrow', 'pandas') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
