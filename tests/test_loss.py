"""Cross-entropy (csrc/nn/loss.h) against a float64 reference: values and gradients over batch and
class counts (0, 1, odd), extreme and non-finite logits, every reduction, and its errors.

Bound: the kernel computes d_j = z_j - max in the logits' dtype (one rounding each, relative u)
and e_j = exp(d_j) in that dtype within 2 ulp (float32's polynomial; float64's std::exp is
better), then the sum, log, loss and reduction in double, rounded once. So a row's log-sum-exp
is within E = u * sum_j p_j |d_j| + 2u + (c + 2) u_double (1 + |lse|) of the exact value, its loss
within u * |z_t - max| + E + u * |loss|, and each gradient entry p_j = e_j / sum within
p_j * (u |d_j| + 2u + E) + u * |g|. The tests use twice that."""

from __future__ import annotations

import numpy as np
import pytest

import lincore
import lincore.nn.functional as F

DTYPES = {"f32": np.float32, "f64": np.float64}
U = {np.float32: 2.0**-24, np.float64: 2.0**-53}


def reference(z: np.ndarray, t: np.ndarray):
    """Per-row losses, softmax - onehot, and the error bounds of both (see above)."""
    z64 = z.astype(np.float64)
    with np.errstate(invalid="ignore"):  # -inf logits: 0 * inf where p = 0 is taken as 0 below
        return _reference(z64, t, z.dtype.type)


def _reference(z64, t, dt):
    d = z64 - z64.max(axis=1, keepdims=True)
    lse = np.log(np.exp(d).sum(axis=1))
    rows = np.arange(len(z64))
    loss = lse - d[rows, t]
    p = np.exp(d - lse[:, None])
    grad = p.copy()
    grad[rows, t] -= 1
    u, ud, c = U[dt], U[np.float64], z64.shape[1]
    pd = np.where(p > 0, p * np.abs(d), 0.0)
    # the dtype's rounding of d, plus the double arithmetic (exp, c-term sum, log) after it
    lse_err = u * pd.sum(axis=1) + 2 * u + (c + 2) * ud * (1 + np.abs(lse))
    loss_tol = 2 * (u * np.abs(d[rows, t]) + lse_err + u * np.abs(loss)) + 1e-300
    grad_tol = (
        2
        * (
            u * pd
            + p * (2 * u + lse_err[:, None] + ud * np.abs(lse)[:, None])
            + ud * pd
            + u * np.abs(grad)
        )
        + 1e-300
    )
    return loss, grad, loss_tol, grad_tol


def run(z: np.ndarray, t: np.ndarray, reduction: str):
    lz = lincore.tensor(z, dtype=lincore.float32 if z.dtype == np.float32 else lincore.float64)
    lz.requires_grad_()
    loss = F.cross_entropy(lz, lincore.tensor(t), reduction=reduction)
    if reduction == "none":
        loss.sum().backward()
    else:
        loss.backward()
    return np.asarray(loss.detach()), np.asarray(lz.grad)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(
    "n,c", [(1, 1), (1, 2), (5, 3), (64, 10), (3, 1000), (33, 17)], ids=lambda v: str(v)
)
def test_cross_entropy_matches_float64_reference(rng, dt, reduction, n, c):
    z = (rng.standard_normal((n, c)) * 4).astype(DTYPES[dt])
    t = rng.integers(0, c, n)
    loss, grad = run(z, t, reduction)
    ref, gref, ltol, gtol = reference(z, t)
    scale = 1 / n if reduction == "mean" else 1.0
    if reduction == "none":
        assert loss.shape == (n,)
        assert (np.abs(loss - ref) <= ltol).all()
    else:
        assert loss.shape == ()
        total = ref.sum() * scale
        assert abs(float(loss) - total) <= ltol.sum() * scale + U[DTYPES[dt]] * abs(total)
    assert grad.shape == (n, c) and grad.dtype == DTYPES[dt]
    assert (np.abs(grad - gref * scale) <= gtol * scale).all()


@pytest.mark.parametrize("dt", DTYPES)
def test_cross_entropy_is_stable_for_huge_logits(dt):
    z = np.array([[1e4, -1e4, 0.0], [3e4, 3e4 - 1, 3e4 - 2]], DTYPES[dt])
    loss, grad = run(z, np.array([0, 2]), "none")
    ref, gref, ltol, gtol = reference(z, np.array([0, 2]))
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    assert (np.abs(loss - ref) <= ltol).all() and (np.abs(grad - gref) <= gtol).all()


def test_cross_entropy_non_finite_logits():
    z = np.array([[0.0, -np.inf, 1.0], [-np.inf, 0.0, 1.0], [np.nan, 0.0, 1.0]], np.float32)
    loss, grad = run(z, np.array([0, 0, 1]), "none")
    # -inf at another class is an exp of 0; at the target the loss is +inf; NaN poisons its row.
    ref, _, ltol, _ = reference(z[:1], np.array([0]))
    assert abs(loss[0] - ref[0]) <= ltol[0] and grad[0, 1] == 0
    assert loss[1] == np.inf
    assert np.isnan(loss[2]) and np.isnan(grad[2]).all()


def test_cross_entropy_empty_batch():
    z = np.zeros((0, 4), np.float32)
    t = np.zeros(0, np.int64)
    assert np.isnan(run(z, t, "mean")[0])  # as torch: mean over no rows
    assert run(z, t, "sum")[0] == 0
    assert run(z, t, "none")[0].shape == (0,)


def test_cross_entropy_one_sample_of_class_logits():
    z = np.array([0.5, -1.0, 2.0], np.float64)
    lz = lincore.tensor(z, dtype=lincore.float64).requires_grad_()
    loss = F.cross_entropy(lz, lincore.tensor(np.array(2)))
    loss.backward()
    ref, gref, ltol, gtol = reference(z[None], np.array([2]))
    assert loss.shape == () and abs(float(loss) - ref[0]) <= ltol[0]
    assert np.asarray(lz.grad).shape == (3,)
    assert (np.abs(np.asarray(lz.grad) - gref[0]) <= gtol[0]).all()


def test_cross_entropy_upstream_gradient_scales(rng):
    z = rng.standard_normal((6, 4)).astype(np.float32)
    t = rng.integers(0, 4, 6)
    lz = lincore.tensor(z).requires_grad_()
    F.cross_entropy(lz, lincore.tensor(t), reduction="sum").backward(lincore.tensor(np.float32(3)))
    _, gref, _, gtol = reference(z, t)
    assert (np.abs(np.asarray(lz.grad) - 3 * gref) <= 3 * gtol + 2**-24 * 3 * np.abs(gref)).all()
    lz.grad = None
    g = rng.standard_normal(6).astype(np.float32)
    F.cross_entropy(lz, lincore.tensor(t), reduction="none").backward(lincore.tensor(g))
    want = gref * g[:, None]
    assert (
        np.abs(np.asarray(lz.grad) - want) <= (gtol + 2**-24 * np.abs(gref)) * np.abs(g[:, None])
    ).all()


@pytest.mark.parametrize("bad", [4, -1, 100])
def test_cross_entropy_target_out_of_bounds(bad):
    z = lincore.zeros(3, 4)
    with pytest.raises(IndexError, match=f"^Target {bad} is out of bounds.$"):
        F.cross_entropy(z, lincore.tensor([0, bad, 1]))
    with pytest.raises(IndexError, match="^Target 0 is out of bounds.$"):
        F.cross_entropy(lincore.zeros(2, 0), lincore.tensor([0, 0]))


def test_cross_entropy_no_grad_records_nothing(rng):
    z = lincore.tensor(rng.standard_normal((4, 3)).astype(np.float32)).requires_grad_()
    with lincore.no_grad():
        loss = F.cross_entropy(z, lincore.tensor([0, 1, 2, 0]))
    assert loss.grad_fn is None and not loss.requires_grad
