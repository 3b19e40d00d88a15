"""lincore.Tensor: construction and PyTorch's dtype rules, properties, views, indexing,
arithmetic with broadcasting and type promotion, reductions, and zero-copy numpy interop."""

from __future__ import annotations

import numpy as np
import pytest

import lincore


@pytest.mark.parametrize(
    "data,dtype,shape",
    [
        ([[1, 2, 3], [4, 5, 6]], lincore.int64, (2, 3)),
        ([[0.3471, 0.4547, -0.2356]], lincore.float32, (1, 3)),
        ([True, False], lincore.bool, (2,)),
        ([1, 2.5], lincore.float32, (2,)),
        ([True, 2], lincore.int64, (2,)),
        (3, lincore.int64, ()),
        (2.0, lincore.float32, ()),
        (False, lincore.bool, ()),
        ([], lincore.float32, (0,)),
        ([[], []], lincore.float32, (2, 0)),
        (((1, 2), (3, 4)), lincore.int64, (2, 2)),
        # A leaf with a 64-bit float type of its own makes the whole tensor float64 (PyTorch
        # 2.13: torch.tensor([1, np.float64(2.5)]).dtype is torch.float64); other numpy scalars
        # go to their closest lincore type, and Python floats stay float32.
        ([1, np.float64(2.5)], lincore.float64, (2,)),
        ([[np.float64(1)], [2.0]], lincore.float64, (2, 1)),
        ([True, np.float64(2)], lincore.float64, (2,)),
        ([np.float32(1.5), 2], lincore.float32, (2,)),
        ([np.int32(1), 2.5], lincore.float32, (2,)),
        ([np.float16(1)], lincore.float32, (1,)),
        ([np.int64(3), np.int32(4)], lincore.int64, (2,)),
        ([np.bool_(True)], lincore.bool, (1,)),
    ],
    ids=[
        "ints",
        "floats",
        "bools",
        "mixed_float",
        "bool_int",
        "int_scalar",
        "float_scalar",
        "bool_scalar",
        "empty",
        "empty_rows",
        "tuples",
        "np_f64_leaf",
        "np_f64_nested",
        "bool_np_f64",
        "np_f32_leaf",
        "np_i32_float",
        "np_f16",
        "np_ints",
        "np_bool",
    ],
)
def test_tensor_dtype_inference_like_torch(data, dtype, shape):
    t = lincore.tensor(data)
    assert t.dtype is dtype
    assert t.shape == shape and isinstance(t.shape, lincore.Size)
    assert np.array_equal(t.numpy(), np.array(data, dtype=dtype._np).reshape(shape))


@pytest.mark.parametrize("np_dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_tensor_from_numpy_keeps_dtype_and_copies(np_dtype):
    a = np.arange(6).reshape(2, 3).astype(np_dtype)
    t = lincore.tensor(a)
    assert t.dtype._np == np.dtype(np_dtype)
    np.asarray(t)[0, 0] = 1
    assert a[0, 0] == 0  # tensor() copies


def test_tensor_of_float64_tensor_leaves_is_float64():
    # torch.tensor([torch.tensor(1., dtype=torch.float64)]).dtype is torch.float64
    leaves = [lincore.tensor(1.5, dtype=lincore.float64), 2.0]
    assert lincore.tensor(leaves).dtype is lincore.float64
    assert lincore.tensor([lincore.tensor(1.5), 2.0]).dtype is lincore.float32


def test_tensor_explicit_dtype_converts():
    assert lincore.tensor([1, 2], dtype=lincore.float64).dtype is lincore.float64
    assert lincore.tensor([1.7, -1.7], dtype=lincore.int64).tolist() == [1, -1]
    assert lincore.tensor([0, 2], dtype=lincore.bool).tolist() == [False, True]


def test_tensor_properties():
    t = lincore.tensor([[1, 2, 3], [4, 5, 6]])
    assert t.ndim == 2 and t.dim() == 2 and t.numel() == 6
    assert t.size() == lincore.Size([2, 3]) and t.size(1) == 3 and t.size(-1) == 3
    assert repr(t.shape) == "lincore.Size([2, 3])"
    assert repr(t.dtype) == "lincore.int64"
    assert t.shape.numel() == 6
    assert lincore.tensor(7).item() == 7 and isinstance(lincore.tensor(7).item(), int)
    assert t.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_tensor_repr_matches_notebook():
    assert repr(lincore.tensor([[1, 2, 3], [4, 5, 6]])) == "tensor([[1, 2, 3],\n        [4, 5, 6]])"
    assert repr(lincore.tensor([[-0.5322, 0.1088]])) == "tensor([[-0.5322,  0.1088]])"
    p = lincore.nn.Parameter(lincore.tensor([-0.4080, 0.1236]))
    assert (
        repr(p) == str(p) == "Parameter containing:\ntensor([-0.4080,  0.1236], requires_grad=True)"
    )
    assert (
        repr(lincore.tensor([1.0, 2.0], dtype=lincore.float64))
        == "tensor([1., 2.], dtype=lincore.float64)"
    )


def test_tensor_numpy_shares_memory_both_ways():
    a = np.zeros((3, 4), np.float32)
    t = lincore.from_numpy(a)
    a[1, 2] = 5
    assert t[1, 2].item() == 5
    t[0, 0] = 7
    assert a[0, 0] == 7
    b = t.numpy()
    b[2, 3] = 9
    assert a[2, 3] == 9 and np.shares_memory(a, b)
    arr = np.asarray(t)  # buffer protocol
    arr[2, 0] = 4
    assert t[2, 0].item() == 4
    assert np.shares_memory(np.array(t, copy=False), a)
    assert not np.shares_memory(np.array(t, copy=True), a)
    assert memoryview(t).shape == (3, 4)


def test_tensor_array_copy_false_refuses_conversion():
    t = lincore.zeros(2)
    with pytest.raises(ValueError):
        t.__array__(np.float64, copy=False)
    assert t.__array__(np.float64).dtype == np.float64


def test_tensor_from_numpy_strided_and_read_only():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    t = lincore.from_numpy(a[::-1, ::2])
    assert t.tolist() == a[::-1, ::2].tolist()
    ro = a.copy()
    ro.flags.writeable = False
    tr = lincore.from_numpy(ro)
    assert not np.asarray(tr).flags.writeable
    with pytest.raises(ValueError):
        tr[0, 0] = 1
    with pytest.raises(ValueError):
        tr.fill_(1.0)


def test_tensor_views_share_storage():
    t = lincore.arange(12).reshape(3, 4)
    v = t.view(4, 3)
    v[0, 0] = 100
    assert t[0, 0].item() == 100
    tt = t.T
    assert tt.shape == (4, 3) and not tt.is_contiguous()
    assert tt.contiguous().is_contiguous()
    expected = np.arange(12).reshape(3, 4)
    expected[0, 0] = 100
    assert tt.reshape(12).tolist() == expected.T.reshape(12).tolist()  # a copy: not a view
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        tt.view(12)
    assert t.flatten().shape == (12,) and t.reshape(-1, 6).shape == (2, 6)
    assert t.transpose(0, 1).shape == (4, 3)


def test_tensor_indexing_basic_and_advanced():
    a = np.arange(24).reshape(2, 3, 4)
    t = lincore.tensor(a)
    for key in [
        0,
        -1,
        (1, 2),
        (slice(None), 1),
        (Ellipsis, 0),
        (None, 0),
        slice(0, 1),
        (0, slice(None, None, 2)),
        (slice(-5, 99), -2),
        1,
    ]:
        assert t[key].tolist() == a[key].tolist()
    assert t[lincore.tensor([1, 0])].tolist() == a[[1, 0]].tolist()
    assert t[t > 20].tolist() == a[a > 20].tolist()
    with pytest.raises(IndexError):
        t[2]
    with pytest.raises(IndexError):
        t[0, 0, 0, 0]


def test_tensor_iteration_and_len():
    t = lincore.tensor([[1, 2], [3, 4]])
    assert len(t) == 2
    assert [row.tolist() for row in t] == [[1, 2], [3, 4]]
    with pytest.raises(TypeError):
        len(lincore.tensor(1))


@pytest.mark.parametrize(
    "a,b,expected",
    [
        (lincore.int64, 1.5, lincore.float32),
        (lincore.int64, 2, lincore.int64),
        (lincore.bool, 1, lincore.int64),
        (lincore.float32, 2, lincore.float32),
        (lincore.float64, 2.5, lincore.float64),
    ],
)
def test_tensor_scalar_type_promotion(a, b, expected):
    t = lincore.ones(3, dtype=a)
    assert (t + b).dtype is expected and (b + t).dtype is expected and (t * b).dtype is expected


def test_tensor_tensor_promotion_and_broadcasting():
    f = lincore.ones(2, 3)
    d = lincore.ones(3, dtype=lincore.float64)
    i = lincore.arange(3)
    assert (f + d).dtype is lincore.float64 and (f + d).shape == (2, 3)
    assert (f + i).dtype is lincore.float32
    assert (i / 2).dtype is lincore.float32 and (i / 2).tolist() == [0, 0.5, 1]
    assert (i - 1).tolist() == [-1, 0, 1] and (1 - i).tolist() == [1, 0, -1]
    assert (-f).tolist() == [[-1.0] * 3] * 2
    with pytest.raises(RuntimeError, match="must match the size"):
        lincore.ones(2) + lincore.ones(3)


def test_tensor_inplace_ops_keep_identity_and_dtype():
    t = lincore.zeros(3)
    before = id(t)
    t += 1
    t *= lincore.tensor([1.0, 2.0, 3.0])
    assert id(t) == before and t.tolist() == [1, 2, 3]
    i = lincore.zeros(2, dtype=lincore.int64)
    with pytest.raises(RuntimeError, match="can't be cast"):
        i += 1.5
    assert i.tolist() == [0, 0]


def test_tensor_matmul_follows_torch_shapes(rng):
    a = rng.standard_normal((4, 5)).astype(np.float32)
    b = rng.standard_normal((5, 3)).astype(np.float32)
    v = rng.standard_normal(5).astype(np.float32)
    ta, tb, tv = lincore.tensor(a), lincore.tensor(b), lincore.tensor(v)
    from conftest import assert_linear_close

    assert_linear_close(np.asarray(ta @ tb), a, b.T)
    assert (ta @ tv).shape == (4,) and (tv @ tb).shape == (3,) and (tv @ tv).shape == ()
    batched = lincore.tensor(rng.standard_normal((2, 4, 5)).astype(np.float32)) @ tb
    assert batched.shape == (2, 4, 3)
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        ta @ ta


def test_tensor_reductions():
    a = np.array([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]], np.float32)
    t = lincore.tensor(a)
    assert t.sum().item() == 21 and t.sum(0).tolist() == [5, 7, 9]
    assert t.sum(dim=1, keepdim=True).shape == (2, 1)
    assert t.mean().item() == 3.5 and t.mean(1).tolist() == [3, 4]
    assert t.max().item() == 6
    values, indices = t.max(dim=1)
    assert values.tolist() == [5, 6] and indices.tolist() == [1, 2]
    assert t.argmax().item() == 5 and t.argmax(dim=0).tolist() == [1, 0, 1]
    assert lincore.tensor([1, 2]).sum().dtype is lincore.int64
    assert lincore.tensor([True, True]).sum().item() == 2
    with pytest.raises(RuntimeError, match="mean"):
        lincore.tensor([1, 2]).mean()
    with pytest.raises(IndexError, match="Dimension out of range"):
        t.sum(2)
    with pytest.raises(RuntimeError, match="numel"):
        lincore.zeros(0).max()


def test_tensor_conversions():
    t = lincore.tensor([1.5, -2.5])
    assert t.to(lincore.float64).dtype is lincore.float64
    assert t.double().dtype is lincore.float64 and t.long().tolist() == [1, -2]
    assert t.float() is t
    assert t.long().float().dtype is lincore.float32


def test_tensor_factories():
    assert lincore.zeros(2, 3).tolist() == [[0] * 3] * 2
    assert lincore.ones((2,), dtype=lincore.int64).tolist() == [1, 1]
    assert lincore.full((2,), 7).dtype is lincore.int64
    assert lincore.full((2,), 0.5).tolist() == [0.5, 0.5]
    assert lincore.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert lincore.arange(1, 2, 0.25).tolist() == [1, 1.25, 1.5, 1.75]
    assert lincore.arange(1, 2, 0.25).dtype is lincore.float32
    assert lincore.empty(3, 0).shape == (3, 0)
    assert lincore.zeros_like(lincore.ones(2, dtype=lincore.float64)).dtype is lincore.float64
    r = lincore.rand(1000)
    assert 0 <= r.min().item() and r.max().item() < 1
    assert lincore.randn(2, 3).shape == (2, 3)


def test_tensor_manual_seed_reproducible():
    lincore.manual_seed(42)
    a, b = lincore.rand(5), lincore.randn(5)
    lincore.manual_seed(42)
    assert lincore.rand(5).tolist() == a.tolist() and lincore.randn(5).tolist() == b.tolist()
    assert lincore.initial_seed() == 42


def test_tensor_randn_statistics():
    lincore.manual_seed(0)
    x = np.asarray(lincore.randn(200_000, dtype=lincore.float64))
    # Mean and variance of 2e5 standard normals: 6-sigma bounds, never flaky in practice.
    assert abs(x.mean()) < 6 / np.sqrt(x.size)
    assert abs(x.var() - 1) < 6 * np.sqrt(2 / x.size)


def test_tensor_bool_and_scalar_conversions():
    assert bool(lincore.tensor([1.0])) and float(lincore.tensor(2.5)) == 2.5
    assert int(lincore.tensor(3)) == 3 and [10, 20, 30][lincore.tensor(1)] == 20
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(lincore.ones(2))


def test_tensor_requires_grad_flags():
    t = lincore.ones(2)
    assert not t.requires_grad and t.grad is None and t.is_leaf
    t.requires_grad_()
    assert t.requires_grad and "requires_grad=True" in repr(t)
    with pytest.raises(RuntimeError, match="detach"):
        t.numpy()
    assert not t.detach().requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        lincore.ones(2, dtype=lincore.int64).requires_grad_()


@pytest.mark.parametrize("make", ["empty", "zeros", "linear output", "copy of a view"])
@pytest.mark.parametrize("numel", [0, 1, 3, 15, 16, 17, 1000, 70_000])
def test_lincore_memory_is_64_byte_aligned(make, numel):
    """Storage aligns its malloc'ed blocks by hand (storage.cpp): every tensor lincore allocates
    starts on a cache line, whatever the size, and its bytes are all usable."""
    tensors = []
    for _ in range(8):  # several, so that malloc hands out blocks at different offsets
        if make == "empty":
            t = lincore.empty(numel)
        elif make == "zeros":
            t = lincore.zeros(numel)
        elif make == "linear output":
            lin = lincore.nn.Linear(2, numel) if numel else lincore.nn.Linear(2, 0)
            with lincore.no_grad():
                t = lin(lincore.ones(2))
        else:
            t = lincore.arange(2 * numel, dtype=lincore.float32)[::2].contiguous()
        tensors.append(t)
        a = np.asarray(memoryview(t))
        if numel:
            assert a.ctypes.data % 64 == 0
        a[...] = 7  # the whole extent is writable memory (ASan checks the bounds)
        assert (np.asarray(memoryview(t)) == 7).all()
