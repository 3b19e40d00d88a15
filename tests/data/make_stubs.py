"""Regenerates the Python-installed part of python/lincore/_core.pyi (the Tensor methods that
python/lincore/_tensor/, _pickle.py and _interop.py attach to the compiled class) from their
live signatures.

    python3 tests/data/make_stubs.py      # then check: python3 -m pytest tests/test_stubs.py
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import lincore
from lincore import _core

STUB = Path(__file__).resolve().parents[2] / "python" / "lincore" / "_core.pyi"
START = "    # Installed at import by python/lincore/_tensor/, _pickle.py, _interop.py.\n"
END = "class PackCache:"


def stub_line(name: str, value: object) -> str:
    if isinstance(value, property):
        ann = inspect.signature(value.fget).return_annotation
        ann = ann if isinstance(ann, str) else "Any"
        ann = ann.replace("dtype", "_dtype.dtype") if ann == "dtype" else ann
        ann = "_dtype.Size" if ann == "Size" else ann
        text = f"    @property\n    def {name}(self) -> {ann}: ..."
        if value.fset is not None:
            text += f"\n    @{name}.setter\n    def {name}(self, value: Any) -> None: ..."
        return text
    if value is None or inspect.ismemberdescriptor(value):  # grad_fn: a compiled slot
        return f"    {name}: Any"
    if isinstance(value, bool):
        return f"    {name}: builtins.bool"
    if name == "__hash__":
        return "    def __hash__(self) -> int: ..."
    sig = str(inspect.signature(value)).replace("'", "")
    sig = re.sub(r"\bself: Tensor\b", "self", sig)
    sig = sig.replace("np.ndarray", "Any").replace("Callable[..., Any]", "Any")
    sig = re.sub(r"\bbool\b", "builtins.bool", sig)
    sig = re.sub(r"\bfloat\b", "builtins.float", sig)
    sig = sig.replace("-> dtype", "-> _dtype.dtype").replace(": dtype", ": _dtype.dtype")
    sig = sig.replace("-> Size", "-> _dtype.Size")
    if sig.endswith(")"):
        sig += " -> Any"
    ignore = "  # type: ignore[override]" if name in ("__eq__", "__ne__") else ""
    return f"    def {name}{sig}: ...{ignore}"


def installed_methods() -> list:
    """(name, value) of every class attribute of lincore.Tensor that Python code installed."""
    out = []
    for name, value in vars(_core.Tensor).items():
        fn = value.fget if isinstance(value, property) else value
        module = getattr(fn, "__module__", None) or ""
        python_defined = module.startswith("lincore.") and module != "lincore._core"
        if python_defined or name in ("grad_fn", "__array_ufunc__", "__hash__"):
            out.append((name, value))
    return out


def main() -> None:
    assert lincore.Tensor is _core.Tensor
    text = STUB.read_text()
    head, rest = text.split(START)
    tail = rest[rest.index(END) :]
    body = "\n".join(stub_line(n, v) for n, v in installed_methods())
    STUB.write_text(head + START + body + "\n\n" + tail)


if __name__ == "__main__":
    main()
