"""Adam and AdamW, with torch.optim's defaults and single-tensor ("for-loop") update, op for op,
in the parameter's dtype (t = the parameter's step count, kept as a float32 tensor like torch's):

    g = -grad if maximize else grad
    p = p * (1 - lr * weight_decay)              (AdamW: decoupled weight decay)
    g = g + weight_decay * p                     (Adam: L2 penalty)
    m = m.lerp(g, 1 - beta1)
    v = v * beta2 + (1 - beta2) * g * g
    v_max = max(v_max, v)                        (amsgrad; then used instead of v)
    denom = sqrt(v) / sqrt(1 - beta2^t) + eps
    p = p + (-lr / (1 - beta1^t)) * m / denom
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, Iterable, Mapping, Tuple

import numpy as np

from .._creation import tensor as _new_tensor
from .._creation import zeros_like
from .._dtype import float32
from .optimizer import Optimizer, Tensor, check_real, fma


class Adam(Optimizer):
    """Implements the Adam algorithm (with decoupled_weight_decay=True: AdamW)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        # foreach only picks torch's implementation (and torch picks the for-loop one on the
        # CPU); capturable, differentiable and fused have no lincore counterpart. They are kept
        # in the groups so that reprs and state_dicts read like torch's.
        name = type(self).__name__
        for flag, value in (
            ("capturable", capturable),
            ("differentiable", differentiable),
            ("fused", fused),
        ):
            if value:
                raise ValueError(f"{name}({flag}=True) is not supported by lincore")
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"betas must be a pair of floats, but got {betas!r}")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        self._check_hyperparameters(defaults)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: Mapping[str, Any]) -> None:
        lr, betas, eps = group["lr"], group["betas"], group["eps"]
        weight_decay = group["weight_decay"]
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"betas must be a pair of floats, but got {betas!r}")
        for name, value in (
            ("lr", lr),
            ("eps", eps),
            ("betas[0]", betas[0]),
            ("betas[1]", betas[1]),
            ("weight_decay", weight_decay),
        ):
            check_real(name, value)
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("fused", None)
            for p in group["params"]:
                p_state = self.state.get(p)
                # Old checkpoints hold the step as a number; torch turns it into a tensor.
                if p_state and isinstance(p_state.get("step"), numbers.Real):
                    p_state["step"] = _new_tensor(float(p_state["step"]), dtype=float32)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Performs a single optimization step; closure re-evaluates the model and returns the
        loss. Parameters whose .grad is None are skipped."""
        return self._run_step(closure, self._update)

    def _update(self) -> None:
        work = self._params_with_grads()
        for group, found in work:
            keys = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])
            for index, p, _ in found:
                state = self.state.get(p)
                if not state:
                    continue
                step = state.get("step")
                if (
                    not isinstance(step, Tensor)
                    or step.numel() != 1
                    or not step.dtype.is_floating_point
                ):
                    raise RuntimeError(
                        f"the optimizer state 'step' of parameter {index} must be a one-element "
                        f"floating point tensor, but got {step!r}"
                    )
                for key in keys:
                    self._check_state_tensor(index, p, key)
        # Everything is checked: from here on nothing raises (short of running out of memory).
        for group, found in work:
            beta1, beta2 = group["betas"]
            for _, p, grad in found:
                state = self.state[p]
                if len(state) == 0:
                    # torch keeps the step count on the CPU as a float32 scalar tensor.
                    state["step"] = _new_tensor(0.0, dtype=float32)
                    state["exp_avg"] = zeros_like(p)
                    state["exp_avg_sq"] = zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = zeros_like(p)
                _adam_update(
                    p,
                    grad,
                    state,
                    lr=group["lr"],
                    beta1=beta1,
                    beta2=beta2,
                    eps=group["eps"],
                    weight_decay=group["weight_decay"],
                    amsgrad=group["amsgrad"],
                    maximize=group["maximize"],
                    decoupled_weight_decay=group["decoupled_weight_decay"],
                )


class AdamW(Adam):
    """Implements AdamW: Adam with decoupled weight decay (default 1e-2)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

    def __setstate__(self, state: Dict[str, Any]) -> None:
        # As torch: whatever was loaded, AdamW always decouples its weight decay.
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


def _adam_update(
    param: Tensor,
    grad: Tensor,
    state: Dict[str, Any],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> None:
    """One parameter's update and its state's, in place, in its dtype. The Python-float scalars
    (bias corrections, step size) are computed in double and cast to the dtype at use, as torch
    does. The numpy views live only as long as this call."""
    p = np.asarray(param)
    dt = p.dtype.type
    g = np.asarray(grad)
    exp_avg = np.asarray(state["exp_avg"])
    exp_avg_sq = np.asarray(state["exp_avg_sq"])
    step_t = np.asarray(state["step"])
    with np.errstate(all="ignore"):
        step_t[...] = step_t + step_t.dtype.type(1)
        step = float(step_t.reshape(()))
        if maximize:
            g = -g
        if weight_decay != 0:
            if decoupled_weight_decay:
                p *= dt(1 - lr * weight_decay)
            else:
                g = fma(p, dt(weight_decay), g, dt)  # grad.add(param, alpha=weight_decay)

        # exp_avg.lerp_(g, w): torch's vectorized lerp is fma(w, g - m, m) for |w| < 0.5, else
        # fma(w - 1, g - m, g).
        w = dt(1 - beta1)
        diff = g - exp_avg
        if abs(w) < 0.5:
            exp_avg[...] = fma(diff, w, exp_avg, dt)
        else:
            exp_avg[...] = fma(diff, w - dt(1), g, dt)
        # exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2): v + ((1 - beta2) * g) * g.
        exp_avg_sq *= dt(beta2)
        exp_avg_sq[...] = fma(dt(1 - beta2) * g, g, exp_avg_sq, dt)

        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        if amsgrad:
            max_exp_avg_sq = np.asarray(state["max_exp_avg_sq"])
            np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            second = max_exp_avg_sq
        else:
            second = exp_avg_sq
        denom = np.sqrt(second) / dt(bias_correction2_sqrt)
        denom += dt(eps)
        # param.addcdiv_(exp_avg, denom, value=-step_size): p + (value * m) / denom.
        p[...] = p + (dt(-step_size) * exp_avg) / denom
