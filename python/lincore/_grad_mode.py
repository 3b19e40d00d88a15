"""Grad-mode switches (no_grad, enable_grad, inference_mode). The flag itself is the C++ core's
(csrc/bindings/grad_mode.h), thread-local like PyTorch's, where the recorded forwards read it."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from . import _core

_F = TypeVar("_F", bound=Callable[..., Any])

is_grad_enabled = _core.is_grad_enabled
set_grad_enabled_flag = _core._set_grad_enabled


class _GradMode:
    """A context manager and decorator that sets grad mode, restoring the previous on exit."""

    _mode = True

    def __enter__(self) -> None:
        self._prev = is_grad_enabled()
        set_grad_enabled_flag(self._mode)

    def __exit__(self, *exc: object) -> None:
        set_grad_enabled_flag(self._prev)

    def __call__(self, fn: _F) -> _F:
        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prev = is_grad_enabled()
            set_grad_enabled_flag(mode)
            try:
                return fn(*args, **kwargs)
            finally:
                set_grad_enabled_flag(prev)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):
    """Disables gradient recording inside the block: ``with lincore.no_grad(): ...``."""

    _mode = False


class enable_grad(_GradMode):
    """Enables gradient recording inside the block."""

    _mode = True


class inference_mode(_GradMode):
    """Like no_grad (lincore has no separate inference tensors); ``mode=False`` changes nothing."""

    def __init__(self, mode: bool = True) -> None:
        self._enabled = bool(mode)

    def __enter__(self) -> None:
        self._prev = is_grad_enabled()
        if self._enabled:
            set_grad_enabled_flag(False)

    def __call__(self, fn: _F) -> _F:
        ctx = self

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(ctx)(ctx._enabled):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class set_grad_enabled(_GradMode):
    """Sets grad mode on or off, as a function call or as a context manager."""

    def __init__(self, mode: bool) -> None:
        self._prev = is_grad_enabled()
        self._mode = bool(mode)
        set_grad_enabled_flag(self._mode)

    def __enter__(self) -> None:
        pass
