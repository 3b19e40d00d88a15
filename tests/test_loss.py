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
from conftest import assert_within_bound

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


# --- the options: weight, ignore_index, label_smoothing, class probabilities, K extra dims -------
# These run in the general path (csrc/nn/loss.cpp, General): every step in double from the
# logits as given, each result rounded once to the dtype. Reference: PyTorch's definitions
# (csrc/nn/loss.h) in float64 numpy. Bound: assert_within_bound with n = c + 8 roundings relative
# to G = the sum of the magnitudes of the terms (for float32 outputs that is far looser than the
# double arithmetic needs, and never tighter than the final rounding).


def options_reference(z, t, w, ignore_index, eps, probs):
    """z (N, C, S) float64; t (N, S) int or (N, C, S) float. Per-row losses, the mean's
    denominator, the unit gradient (upstream 1 per row) and the magnitudes G of both."""
    n, c, s = z.shape
    wv = np.ones(c) if w is None else w.astype(np.float64)
    d = z - z.max(axis=1, keepdims=True)
    logp = d - np.log(np.exp(d).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    # p = exp(z - lse) carries the absolute error of z - lse: relative u (|d| + |log p| + 2)
    pmag = p * (2 + np.abs(d) + np.abs(logp))
    # log p = z - max - log(sum): each term's error is relative to all three
    lmag = 2 + np.abs(z) + np.abs(z.max(axis=1, keepdims=True)) + np.abs(logp)
    wb = wv[None, :, None]
    if probs:
        q = (1 - eps) * t.astype(np.float64) + eps / c
        terms = wb * q * lmag
        loss = -(wb * q * logp).sum(axis=1)
        a = (wb * q).sum(axis=1, keepdims=True)
        grad, gmag = a * p - wb * q, a * pmag + wb * q
        denom = float(n * s)
    else:
        mask = t != ignore_index
        tt = np.where(mask, t, 0)
        onehot = np.zeros_like(z)
        np.put_along_axis(onehot, tt[:, None, :], 1.0, axis=1)
        wt = wv[tt] * mask
        nll = -(logp * onehot).sum(axis=1) * wt
        terms = (eps / c * wb * mask[:, None, :] + (1 - eps) * onehot * wt[:, None]) * lmag
        loss = (1 - eps) * nll + eps / c * -(logp * wb).sum(axis=1) * mask
        a = ((1 - eps) * wt + eps / c * wv.sum() * mask)[:, None, :]
        b = (1 - eps) * wt[:, None, :] * onehot + eps / c * wb * mask[:, None, :]
        grad, gmag = a * p - b, a * pmag + b
        denom = float(wt.sum())
    return loss, denom, grad, np.abs(terms).sum(axis=1) + np.abs(loss), gmag


OPTION_CASES = {
    "weight": dict(weight=True),
    "ignore_index": dict(ignore_index=1),
    "label_smoothing": dict(label_smoothing=0.2),
    "all": dict(weight=True, ignore_index=2, label_smoothing=0.15),
    "probs": dict(probs=True),
    "probs_weight_smoothing": dict(probs=True, weight=True, label_smoothing=0.3),
}


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("extra", [(), (3, 2)], ids=["2d", "4d"])
@pytest.mark.parametrize("case", OPTION_CASES)
def test_cross_entropy_options_match_float64_reference(rng, dt, reduction, extra, case):
    o = OPTION_CASES[case]
    n, c = 5, 4
    npdt = DTYPES[dt]
    z = (rng.standard_normal((n, c) + extra) * 3).astype(npdt)
    if o.get("probs"):
        t = rng.dirichlet(np.ones(c), (n,) + extra).astype(npdt)
        t = np.moveaxis(t, -1, 1)
    else:
        t = rng.integers(0, c, (n,) + extra)
    w = rng.uniform(0.5, 2, c).astype(npdt) if o.get("weight") else None
    ii, eps = o.get("ignore_index", -100), o.get("label_smoothing", 0.0)
    lz = lincore.tensor(z).requires_grad_()
    loss = F.cross_entropy(
        lz,
        lincore.tensor(t),
        None if w is None else lincore.tensor(w),
        ignore_index=ii,
        reduction=reduction,
        label_smoothing=eps,
    )
    g = rng.standard_normal(tuple(loss.shape)).astype(npdt)
    loss.backward(lincore.tensor(g))
    s = int(np.prod(extra))
    z3 = z.reshape(n, c, s).astype(np.float64)
    t3 = t.reshape(n, c, s) if o.get("probs") else t.reshape(n, s)
    ref, denom, gref, lmag, gmag = options_reference(z3, t3, w, ii, eps, o.get("probs", False))
    g64 = g.astype(np.float64)
    if reduction == "none":
        assert loss.shape == (n,) + extra
        assert_within_bound(
            np.asarray(loss.detach()), ref.reshape(loss.shape), lmag.reshape(loss.shape), c + 8
        )
        gfull = g64.reshape(n, 1, s)
    else:
        scale = 1 / denom if reduction == "mean" else 1.0
        total = ref.sum() * scale
        assert_within_bound(np.asarray(loss.detach()), total, lmag.sum() * scale, c + n * s + 8)
        gfull = g64 * scale
    want = (gref * gfull).reshape(z.shape)
    mag = (gmag * np.abs(gfull)).reshape(z.shape)
    assert np.asarray(lz.grad).dtype == npdt
    assert_within_bound(np.asarray(lz.grad), want, mag, c + 8)


def test_cross_entropy_all_ignored_mean_is_nan():
    z = lincore.zeros(3, 4, requires_grad=True)
    loss = F.cross_entropy(z, lincore.tensor([1, 1, 1]), ignore_index=1)
    assert np.isnan(float(loss))
    loss.backward()
    assert (np.asarray(z.grad) == 0).all()  # as PyTorch: ignored rows get no gradient


def test_cross_entropy_option_errors():
    z = lincore.zeros(2, 3)
    with pytest.raises(RuntimeError, match="weight tensor should be defined either for all 3"):
        F.cross_entropy(z, lincore.tensor([0, 1]), lincore.ones(2))
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0"):
        F.cross_entropy(z, lincore.tensor([0, 1]), label_smoothing=1.5)
    with pytest.raises(RuntimeError, match="ignore_index is not supported for floating point"):
        F.cross_entropy(z, lincore.zeros(2, 3), ignore_index=1)
    with pytest.raises(RuntimeError, match="Expected floating point type for target with class"):
        F.cross_entropy(z, lincore.zeros(2, 3, dtype=lincore.int64))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(2\) to match target"):
        F.cross_entropy(z, lincore.tensor([0, 1, 2]))
    with pytest.raises(RuntimeError, match=r"Expected target size \[2, 5\], got \[2, 4\]"):
        F.cross_entropy(lincore.zeros(2, 3, 5), lincore.zeros(2, 4, dtype=lincore.int64))


def test_loss_positional_signatures_and_legacy_reduction():
    # PyTorch's: (input, target, weight, size_average, ignore_index, reduce, reduction, ...)
    z, t = lincore.zeros(2, 3), lincore.tensor([0, 1])
    w = lincore.tensor([1.0, 2.0, 3.0])
    a = F.cross_entropy(z, t, w, None, -100, None, "sum")
    assert float(a) == pytest.approx(3 * np.log(3))
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        b = F.mse_loss(lincore.ones(3), lincore.zeros(3), False)
    assert float(b) == 3.0
    with pytest.warns(UserWarning, match="reduction='none'"):
        m = lincore.nn.L1Loss(None, False)
    assert m.reduction == "none"
    bce = lincore.nn.BCEWithLogitsLoss(lincore.tensor([2.0]))
    x, y = lincore.zeros(4), lincore.ones(4)
    assert float(bce(x, y)) == pytest.approx(2 * np.log(2))


def test_mse_and_l1_broadcast_a_target_of_another_shape_with_a_warning():
    x = lincore.tensor(np.arange(20.0, dtype=np.float32).reshape(5, 4), requires_grad=True)
    t = lincore.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    with pytest.warns(UserWarning, match="Using a target size"):
        loss = F.mse_loss(x, t, reduction="sum")
    d = np.arange(20.0).reshape(5, 4) - np.arange(1.0, 5.0)
    assert float(loss) == pytest.approx((d * d).sum())
    loss.backward()
    assert np.allclose(np.asarray(x.grad), 2 * d) and np.allclose(np.asarray(t.grad), -2 * d.sum(0))
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="must match the size"):
        F.l1_loss(lincore.zeros(5, 4), lincore.zeros(5))
    with pytest.raises(ValueError, match="must be the same as input size"):
        F.binary_cross_entropy_with_logits(lincore.zeros(5, 4), lincore.zeros(4))
