# Training parity with PyTorch: random MLPs (1-4 Linear layers, widths 1/7/32/65, every
# activation or none, MSE/L1/CrossEntropy/BCEWithLogits, batches (1, in), (8, in), (33, in) and
# for MSE (2, 5, in)) built in torch, their weights copied into lincore with load_state_dict, fed
# the same fixed numpy batches, trained 20 steps with SGD (plain, momentum, Nesterov + weight
# decay), Adam (plain, weight decay) or AdamW. Compared, in float32 and in float64:
#
# 1. The first step's loss and every parameter gradient, against torch in float64 on the same
#    (float32-representable) weights and data, with the tolerance rule of docs/testing.md composed
#    through the network: test_autograd.ChainBound propagates the rule's per-dot-product bound
#    gamma(K+2) * (|x| |W|^T + |b|) layer by layer (inputs that already carry an error bound pass
#    it on through |W|, activations through their Lipschitz constant plus their own rounding,
#    ReLU-like derivatives flip where the bound straddles 0), and loss_bound() below adds the
#    loss's own terms (each reduction is a length-n sum: gamma(n + small)). The bound is for
#    |computed - exact|; against torch's float64 the tolerance is bound(dtype) + bound(float64).
#    PyTorch's own float32 run is checked against the same tolerance, which confirms the bound is
#    one that a correct float32 implementation meets, not one tuned to lincore.
# 2. After 20 steps, every parameter and the loss of every step. Over many steps no cheap sound
#    bound exists (parameter errors feed back through the Hessian, Adam divides by sqrt(v)), so
#    the yardstick is PyTorch's own float32 run on the same trajectory: D32 = max |torch32 -
#    torch64| over all parameters (the drift a correct float32 implementation shows here).
#    float32: |lincore - torch64| <= 4 D32 + 2 T u32 P, where P = max |parameter| and 2 T u P
#    covers T roundings of the stored parameters in each library. float64: the same yardstick
#    scaled to float64's unit roundoff (errors are first order in u while lr is small):
#    |lincore64 - torch64| <= 4 D32 (u64 / u32) + 4 T u64 P. Losses: the same form with
#    D = max over steps of |loss_torch32 - loss_torch64| and P = |loss|. Small learning rates
#    (1e-2 SGD, 1e-3 Adam) keep 20 steps far from chaos; every run checks that the parameters
#    moved by far more than the tolerance, so the comparison is not vacuous.
#    L1 targets sit at least 0.5 away from the initial outputs, so sign(y - t) has no ties.

import warnings
import zlib

import numpy as np
import pytest

import lincore
import lincore.nn as lnn
from conftest import UNIT_ROUNDOFF
from test_autograd import ACTIVATIONS, ChainBound, assert_within, chain_layers, gamma

torch = pytest.importorskip("torch")

STEPS = 20
N_BATCHES = 4
U32, U64 = UNIT_ROUNDOFF[np.dtype(np.float32)], UNIT_ROUNDOFF[np.dtype(np.float64)]
TORCH_DTYPE = {"f32": torch.float32, "f64": torch.float64}
LC_DTYPE = {"f32": lincore.float32, "f64": lincore.float64}
NP_DTYPE = {"f32": np.float32, "f64": np.float64}

ACTS = {
    "relu": "relu",
    "leaky_relu": "leaky0.01",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "gelu": "gelu",
    "none": None,
}
LOSSES = {
    "mse": ("MSELoss", "MSELoss"),
    "l1": ("L1Loss", "L1Loss"),
    "ce": ("CrossEntropyLoss", "CrossEntropyLoss"),
    "bce": ("BCEWithLogitsLoss", "BCEWithLogitsLoss"),
}
OPTIMIZERS = {
    "sgd": ("SGD", {"lr": 1e-2}),
    "sgd-momentum": ("SGD", {"lr": 1e-2, "momentum": 0.9}),
    "sgd-nesterov-wd": (
        "SGD",
        {"lr": 1e-2, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
    ),
    "adam": ("Adam", {"lr": 1e-3}),
    "adam-wd": ("Adam", {"lr": 1e-3, "weight_decay": 1e-2}),
    "adamw": ("AdamW", {"lr": 1e-3}),
}
WIDTHS = (1, 7, 32, 65)
BATCHES = [(1,), (8,), (33,)]


def make_configs():
    """Every activation with every loss in float32 (depth, widths, batch and optimizer rotating
    through their lists), MSE with (2, 5, in) batches, and a float64 set that covers every
    optimizer, loss and activation."""
    configs = []
    opts, acts = list(OPTIMIZERS), list(ACTS)
    for i, (act, loss) in enumerate((a, lo) for a in ACTS for lo in LOSSES):
        depth = 1 + i % 4
        widths = [WIDTHS[(i + 2 * j) % 4] for j in range(depth + 1)]
        if loss == "ce" and widths[-1] == 1:
            widths[-1] = 7  # one class would make every gradient zero
        configs.append((act, loss, tuple(widths), BATCHES[i % 3], opts[i % 6], "f32"))
    configs.append(("relu", "mse", (7, 32, 1), (2, 5), "adam", "f32"))
    configs.append(("gelu", "mse", (65, 7, 32, 7, 1), (2, 5), "sgd-nesterov-wd", "f32"))
    configs.append(("tanh", "mse", (1, 1), (33,), "sgd-momentum", "f32"))
    for i, loss in enumerate(list(LOSSES) * 2):
        depth = 1 + (i + 1) % 4
        widths = [WIDTHS[(3 * i + j) % 4] for j in range(depth + 1)]
        if loss == "ce" and widths[-1] == 1:
            widths[-1] = 7
        batch = (2, 5) if loss == "mse" and i >= 4 else BATCHES[i % 3]
        configs.append((acts[i % 6], loss, tuple(widths), batch, opts[(i + 1) % 6], "f64"))
    return configs


def config_id(c):
    act, loss, widths, batch, opt, dt = c
    return f"{act}-{loss}-{'x'.join(map(str, widths))}-b{'x'.join(map(str, batch))}-{opt}-{dt}"


CONFIGS = make_configs()


def build(widths, act, lib, dt):
    mods = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        if lib == "torch":
            mods.append(torch.nn.Linear(a, b, dtype=TORCH_DTYPE[dt]))
        else:
            mods.append(lnn.Linear(a, b, dtype=LC_DTYPE[dt]))
        if act != "none" and i < len(widths) - 2:
            spec = ACTIVATIONS[ACTS[act]]
            mods.append(spec.th(torch.nn) if lib == "torch" else spec.lc())
    return (torch.nn.Sequential if lib == "torch" else lnn.Sequential)(*mods)


def make_batches(rng, loss, widths, batch, reference_model):
    """N_BATCHES fixed (x, target) pairs, float32-representable; the L1 targets lie 0.5 to 1.5
    away from the reference model's initial outputs (no ties for sign(y - t))."""
    out = []
    n_out = widths[-1]
    for _ in range(N_BATCHES):
        x = rng.standard_normal(batch + (widths[0],)).astype(np.float32)
        if loss == "ce":
            t = rng.integers(0, n_out, batch).astype(np.int64)
        elif loss == "bce":
            t = rng.uniform(0.0, 1.0, batch + (n_out,)).astype(np.float32)
        elif loss == "l1":
            with torch.no_grad():
                y0 = reference_model(torch.tensor(x, dtype=torch.float64)).numpy()
            side = np.where(rng.random(y0.shape) < 0.5, -1.0, 1.0)
            t = (y0 + side * rng.uniform(0.5, 1.5, y0.shape)).astype(np.float32)
        else:
            t = rng.standard_normal(batch + (n_out,)).astype(np.float32)
        out.append((x, t))
    return out


def train(model, lib, dt, loss, opt, batches):
    """STEPS steps; returns the first step's (loss, gradients), every step's loss and the final
    parameters (float64 copies)."""
    name, kw = OPTIMIZERS[opt]
    if lib == "torch":
        optimizer = getattr(torch.optim, name)(model.parameters(), **kw)
        criterion = getattr(torch.nn, LOSSES[loss][1])()
    else:
        optimizer = getattr(lincore.optim, name)(model.parameters(), **kw)
        criterion = getattr(lnn, LOSSES[loss][0])()
    losses, first = [], None
    for step in range(STEPS):
        x, t = batches[step % len(batches)]
        x = x.astype(NP_DTYPE[dt])
        if loss != "ce":
            t = t.astype(NP_DTYPE[dt])
        optimizer.zero_grad()
        if lib == "torch":
            value = criterion(model(torch.tensor(x)), torch.tensor(t))
        else:
            value = criterion(model(lincore.tensor(x)), lincore.tensor(t))
        value.backward()
        losses.append(float(value.item()))
        if step == 0:
            first = (
                losses[0],
                [np.array(p.grad.detach().numpy(), np.float64) for p in model.parameters()],
            )
        optimizer.step()
    params = [np.array(p.detach().numpy(), np.float64) for p in model.parameters()]
    return first, np.array(losses), params


# --- the loss's part of the first-step bound ---------------------------------------------------


def _sigmoid(v):
    return 0.5 * (1.0 + np.tanh(0.5 * v))


def loss_bound(loss, y, ey, t, u):
    """For the mean-reduced loss of outputs y (elementwise error bound ey) against targets t, in
    a dtype with unit roundoff u: (L, E_L, G, E_G), the loss, its bound, dL/dy and its bound.
    MSE: L = sum d^2 / n (d = y - t): E_L = sum(2|d| ey + ey^2) / n + gamma(n+3) L;
      G = 2d/n: E_G = 2 ey / n + 4u |G|.
    L1: L = sum |d| / n: E_L = sum ey / n + gamma(n+2) L; G = sign(d)/n: E_G = 2/n where
      |d| <= ey (the sign may differ), else u |G|.
    CE (N rows, C classes): l_i = lse_i - y_i,t_i moves by at most 2 max_j ey_ij, and its
      evaluation rounds within 8 ulps of (|max| + |lse| + |y_t| + 1) + gamma(C+2) (the sum under
      the log); L = mean: + gamma(N+2) mean |l|. G = (softmax - onehot)/N, softmax relatively
      within expm1(2 max ey) + 8 ulps of (2 + |y - max| + |lse - max|) + gamma(C+2).
    BCE with logits: l = (1-t) y + softplus(-y) is 1-Lipschitz in y (|dl/dy| = |sigmoid(y) - t|
      <= 1): E_l = ey + 8 ulps of (|y| + |(1-t) y| + softplus(-y) + 1); G = (sigmoid(y) - t)/n,
      sigmoid 1/4-Lipschitz: E_G = (ey / 4 + 8u (sigmoid + |t|)) / n + u |G|."""
    if loss in ("mse", "l1", "bce"):
        n = y.size
        t = np.asarray(t, np.float64)
        if loss == "mse":
            d = y - t
            big_l = (d * d).sum() / n
            e_l = (2 * np.abs(d) * ey + ey * ey).sum() / n + gamma(n + 3, u) * big_l
            g = 2 * d / n
            e_g = 2 * ey / n + 4 * u * np.abs(g)
        elif loss == "l1":
            d = y - t
            big_l = np.abs(d).sum() / n
            e_l = ey.sum() / n + gamma(n + 2, u) * big_l
            g = np.sign(d) / n
            e_g = np.where(np.abs(d) <= ey, 2.0 / n, 0.0) + u * np.abs(g)
        else:
            sp = np.logaddexp(0.0, -y)
            li = (1 - t) * y + sp
            e_li = ey + 8 * u * (np.abs(y) + np.abs((1 - t) * y) + sp + 1)
            big_l = li.mean()
            e_l = e_li.mean() + gamma(n + 2, u) * np.abs(li).mean()
            s = _sigmoid(y)
            g = (s - t) / n
            e_g = (ey / 4 + 8 * u * (s + np.abs(t))) / n + u * np.abs(g)
        return big_l, e_l, g, e_g
    n_rows, n_cls = y.shape
    rows = np.arange(n_rows)
    m = y.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(y - m).sum(axis=1, keepdims=True))
    p = np.exp(y - lse)
    li = lse[:, 0] - y[rows, t]
    emax = ey.max(axis=1)
    e_li = (
        2 * emax
        + 8 * u * (np.abs(m[:, 0]) + np.abs(lse[:, 0]) + np.abs(y[rows, t]) + 1)
        + gamma(n_cls + 2, u)
    )
    big_l = li.mean()
    e_l = e_li.mean() + gamma(n_rows + 2, u) * np.abs(li).mean()
    onehot = np.zeros_like(y)
    onehot[rows, t] = 1.0
    g = (p - onehot) / n_rows
    e_p = p * (
        np.expm1(2 * emax)[:, None]
        + 8 * u * (2 + np.abs(y - m) + np.abs(lse - m))
        + gamma(n_cls + 2, u)
    )
    e_g = e_p / n_rows + 2 * u * np.abs(g)
    return big_l, e_l, g, e_g


def first_step_tolerances(lmodel, loss, x, t, dt):
    """Float64 reference loss and gradients (for the float32-representable weights and data)
    and their tolerances for a computation in dt: bound(dt) + bound(float64)."""
    layers = chain_layers(list(lmodel))
    total = None
    for u_dtype in (NP_DTYPE[dt], np.float64):
        cb = ChainBound(x, layers, u_dtype)
        big_l, e_l, g, e_g = loss_bound(loss, cb.y, cb.ey, t, cb.u)
        if total is None:
            ref_g = g
        _, _, params = cb.backward(ref_g, e_g)
        tols = [e_l]
        for _, edw, db, edb in params:
            tols.append(edw)
            if db is not None:
                tols.append(edb)
        total = tols if total is None else [a + b for a, b in zip(total, tols)]
        if u_dtype is NP_DTYPE[dt]:
            ref_l = big_l
            refs = [p for dw, _, db, _ in params for p in ((dw,) if db is None else (dw, db))]
    return ref_l, total[0], refs, total[1:]


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_training_matches_torch(config):
    act, loss, widths, batch, opt, dt = config
    rng = np.random.default_rng(zlib.crc32(config_id(config).encode()))
    torch.manual_seed(zlib.crc32(config_id(config).encode()) % 2**31)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about zero-element inits (none here)
        t64 = build(widths, act, "torch", "f64")
        t32 = build(widths, act, "torch", "f32")
    # float32-representable weights for every run
    state32 = {k: v.detach().to(torch.float32) for k, v in t64.state_dict().items()}
    t32.load_state_dict(state32)
    t64.load_state_dict({k: v.to(torch.float64) for k, v in state32.items()})
    lmodel = build(widths, act, "lincore", dt)
    lmodel.load_state_dict(
        {k: v.detach().numpy() for k, v in (t32 if dt == "f32" else t64).state_dict().items()}
    )
    batches = make_batches(rng, loss, widths, batch, t64)

    first64, losses64, params64 = train(t64, "torch", "f64", loss, opt, batches)
    first32, losses32, params32 = train(t32, "torch", "f32", loss, opt, batches)

    # the bound needs the untrained weights: taken from lincore before it trains
    x0 = batches[0][0].astype(np.float64)
    t0 = batches[0][1] if loss == "ce" else batches[0][1].astype(np.float64)
    ref_l, tol_l, ref_grads, tol_grads = first_step_tolerances(lmodel, loss, x0, t0, dt)
    params0 = [np.array(p.detach().numpy(), np.float64) for p in lmodel.parameters()]
    first_lc, losses_lc, params_lc = train(lmodel, "lincore", dt, loss, opt, batches)

    # 1. first step: loss and every gradient, against torch float64, with the derived bound
    runs = [("lincore", first_lc)] + ([("torch float32", first32)] if dt == "f32" else [])
    # the bound's own float64 evaluation is the same function as torch's
    assert_within(np.float64(ref_l), first64[0], tol_l, "ChainBound's reference loss")
    for i, (mine, want, tol) in enumerate(zip(ref_grads, first64[1], tol_grads)):
        assert_within(mine, want, tol, f"ChainBound's reference gradient {i}")
    for who, (value, grads) in runs:
        assert_within(np.float64(value), first64[0], tol_l, f"{who} first loss")
        assert len(grads) == len(first64[1]) == len(tol_grads)
        for i, (got, want, tol) in enumerate(zip(grads, first64[1], tol_grads)):
            assert_within(got, want, tol, f"{who} first-step gradient {i}")

    # 2. after STEPS steps: every parameter and every step's loss
    drift32 = max(
        (float(np.max(np.abs(a - b))) for a, b in zip(params32, params64) if a.size), default=0.0
    )
    loss_drift32 = float(np.max(np.abs(losses32 - losses64)))
    p_max = max((float(np.max(np.abs(p))) for p in params64 if p.size), default=0.0)
    if dt == "f32":
        tol_p = 4 * drift32 + 2 * STEPS * U32 * p_max
        tol_losses = 4 * loss_drift32 + 2 * STEPS * U32 * np.abs(losses64)
    else:
        tol_p = 4 * drift32 * (U64 / U32) + 4 * STEPS * U64 * p_max
        tol_losses = 4 * loss_drift32 * (U64 / U32) + 4 * STEPS * U64 * np.abs(losses64)
    for i, (got, want) in enumerate(zip(params_lc, params64)):
        assert got.shape == want.shape
        assert_within(got, want, tol_p, f"parameter {i} after {STEPS} steps")
    assert_within(losses_lc, losses64, tol_losses, "losses of every step")
    moved = max(
        (float(np.max(np.abs(a - b))) for a, b in zip(params_lc, params0) if a.size), default=0.0
    )
    assert moved > 10 * tol_p, (moved, tol_p)


def test_configs_cover_the_grid():
    acts = {c[0] for c in CONFIGS}
    losses = {c[1] for c in CONFIGS}
    depths = {len(c[2]) - 1 for c in CONFIGS}
    widths = {w for c in CONFIGS for w in c[2]}
    batches = {c[3] for c in CONFIGS}
    opts = {c[4] for c in CONFIGS}
    assert acts == set(ACTS) and losses == set(LOSSES) and opts == set(OPTIMIZERS)
    assert depths == {1, 2, 3, 4} and set(WIDTHS) <= widths
    assert batches == {(1,), (8,), (33,), (2, 5)}
    assert {(c[0], c[1]) for c in CONFIGS if c[5] == "f32"} == {
        (a, lo) for a in ACTS for lo in LOSSES
    }
    f64 = [c for c in CONFIGS if c[5] == "f64"]
    assert {c[1] for c in f64} == set(LOSSES) and {c[4] for c in f64} == set(OPTIMIZERS)
    assert {c[0] for c in f64} == set(ACTS)
