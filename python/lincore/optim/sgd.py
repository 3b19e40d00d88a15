"""SGD: stochastic gradient descent with optional momentum, dampening, Nesterov momentum, weight
decay and maximize; torch.optim.SGD's defaults and single-tensor update, op for op:

    g = -grad if maximize else grad
    g = g + weight_decay * p                                  (if weight_decay != 0)
    buf = clone(g) on the first step, else buf * momentum + (1 - dampening) * g
    g = g + momentum * buf if nesterov else buf               (if momentum != 0)
    p = p - lr * g
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Mapping


from .. import _core
from .._creation import empty_like
from .optimizer import Optimizer, Tensor, check_real


class SGD(Optimizer):
    """Implements stochastic gradient descent (optionally with momentum)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        # foreach only picks torch's implementation (and torch picks the for-loop one on the
        # CPU); differentiable and fused have no lincore counterpart. They are kept in the groups
        # so that reprs and state_dicts read like torch's.
        if differentiable:
            raise ValueError("SGD(differentiable=True) is not supported by lincore")
        if fused:
            raise ValueError("SGD(fused=True) is not supported by lincore")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        self._check_hyperparameters(defaults)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: Mapping[str, Any]) -> None:
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            check_real(name, group[name])
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if group["nesterov"] and (momentum <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            group.setdefault("fused", False)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Performs a single optimization step; closure re-evaluates the model and returns the
        loss. Parameters whose .grad is None are skipped."""
        return self._run_step(closure, self._update)

    def _update(self) -> None:
        if len(self.param_groups) == 1 and self._update_group_at_once(self.param_groups[0]):
            return
        work = self._params_with_grads()
        for group, found in work:
            if group["momentum"] != 0:
                for index, p, _ in found:
                    if self.state.get(p, {}).get("momentum_buffer") is not None:
                        self._check_state_tensor(index, p, "momentum_buffer")
        # Everything is checked: from here on nothing raises (short of running out of memory).
        for group, found in work:
            for _, p, grad in found:
                state = self.state[p] if group["momentum"] != 0 else None
                buf = _sgd_update(
                    p,
                    grad,
                    None if state is None else state.get("momentum_buffer"),
                    lr=group["lr"],
                    weight_decay=group["weight_decay"],
                    momentum=group["momentum"],
                    dampening=group["dampening"],
                    nesterov=group["nesterov"],
                    maximize=group["maximize"],
                )
                if state is not None:
                    state["momentum_buffer"] = buf

    def _update_group_at_once(self, group: Dict[str, Any]) -> bool:
        """The common case in one C++ call (csrc/nn/sgd.h: sgd_step_group), which checks every
        parameter before changing any. False, with nothing changed, when it refuses one: then
        the step above runs, and its checks say which parameter is wrong and how."""
        params = group["params"]
        grads = [p._grad for p in params]
        momentum = group["momentum"]
        state = self.state
        if momentum != 0:
            bufs = [
                state[p].get("momentum_buffer") if g is not None and p in state else None
                for p, g in zip(params, grads)
            ]
        else:
            bufs = [None] * len(params)
        out = _core.sgd_step_group(
            params,
            grads,
            bufs,
            float(group["lr"]),
            float(group["weight_decay"]),
            float(momentum),
            float(group["dampening"]),
            bool(group["nesterov"]),
            bool(group["maximize"]),
        )
        if out is None:
            return False
        if momentum != 0:
            for p, g, buf in zip(params, grads, out):
                if g is not None:
                    state[p]["momentum_buffer"] = buf
        return True


def _sgd_update(
    param: Tensor,
    grad: Tensor,
    buf: Tensor | None,
    *,
    lr: float,
    weight_decay: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    maximize: bool,
) -> Tensor | None:
    """One parameter's update, in place, in its dtype, in one C++ pass (csrc/nn/sgd.h); returns
    the momentum buffer (created on the first step)."""
    first = momentum != 0 and buf is None
    if first:
        buf = empty_like(param)
    _core.sgd_step(
        param,
        grad,
        buf if momentum != 0 else None,
        first,
        float(lr),
        float(weight_decay),
        float(momentum),
        float(dampening),
        bool(nesterov),
        bool(maximize),
    )
    return buf if momentum != 0 else None
