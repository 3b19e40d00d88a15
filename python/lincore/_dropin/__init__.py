"""The drop-in backend for PyTorch code: lincore.optimize, lincore.restore, lincore.optimize_report
and the torch.compile backend "lincore" (docs/dropin.md). torch is imported by these functions
when called, never by `import lincore`."""

from __future__ import annotations

from typing import Any


def optimize(
    model: Any, *, inplace: bool = False, verbose: bool = False, quantize: Any = None
) -> Any:
    """model, a torch.nn.Module, with every maximal run of supported layers (Linear, ReLU,
    LeakyReLU, Sigmoid, Tanh, GELU, Identity, Flatten, Dropout, Softmax, LogSoftmax, LayerNorm)
    run as one lincore call each: inside every nn.Sequential, and inside custom modules whose
    forward torch.fx can trace. A deep copy unless inplace=True; verbose=True prints what was
    swapped (see optimize_report).

    The model keeps its children, names, parameters (torch's own nn.Parameters), state_dict,
    repr, hooks and train/eval behaviour; inputs and outputs stay torch tensors, shared, never
    copied; autograd and torch's optimizers work as before. A call lincore cannot run (another
    device or dtype, a hook on a fused layer) runs the original torch code. restore(model)
    undoes it. Raises TypeError for a non-Module or a bad option and ValueError for a model
    off the CPU, changing nothing.

    quantize='int8' (or torch.qint8): the fused runs' float32 Linear layers run as lincore's
    dynamically quantized ones (lincore.quantize_dynamic's arithmetic: int8 weights per output
    channel, the input quantized per row; docs/quantization.md), made from the torch weights
    and made again whenever those change; the torch model's own weights stay float32.
    Inference only: the output of a quantized run records no gradient, and an input that
    requires grad raises."""
    from .swap import optimize as _optimize

    return _optimize(model, inplace=inplace, verbose=verbose, quantize=quantize)


def restore(model: Any) -> Any:
    """model with every module that optimize swapped given back its torch class (in place;
    returned for convenience)."""
    from .swap import restore as _restore

    return _restore(model)


def optimize_report(model: Any) -> Any:
    """What optimize swapped in model: per swapped container, the runs fused into one lincore
    call (layer names) and the layers left to torch, with why; print it for a summary."""
    from .swap import report

    return report(model)
