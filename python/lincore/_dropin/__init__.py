"""The drop-in backend for PyTorch code: lincore.optimize, lincore.restore, lincore.optimize_report
and the torch.compile backend "lincore". torch is imported by these functions when called, never
by `import lincore`."""

from __future__ import annotations

from typing import Any


def optimize(model: Any, *, inplace: bool = False, verbose: bool = False) -> Any:
    from .swap import optimize as _optimize

    return _optimize(model, inplace=inplace, verbose=verbose)


def restore(model: Any) -> Any:
    from .swap import restore as _restore

    return _restore(model)


def optimize_report(model: Any) -> Any:
    from .swap import report

    return report(model)


for _public, _impl in ((optimize, "optimize"), (restore, "restore"), (optimize_report, "report")):
    _public.__doc__ = "See lincore._dropin.swap." + _impl + " (imports torch)."
