# Writes print_goldens.json beside this file: tensors and what PyTorch prints for them, the oracle
# that tests/test_printing.py holds lincore._printing to without importing torch itself.
# Run: python tests/data/make_print_goldens.py (needs torch==2.13.0, the version pinned in
# pyproject.toml; another version may print differently and should not overwrite the goldens).

import json
import math
import pathlib

import torch
import torch.nn.functional as F

OUT_PATH = pathlib.Path(__file__).with_name("print_goldens.json")


def encode_values(tensor):
    # float.hex keeps nan, inf, -0.0 and every float32 value exact through JSON.
    flat = tensor.detach().reshape(-1).tolist()
    if tensor.dtype.is_floating_point:
        return [float.hex(value) for value in flat]
    return flat


def make_case(name, tensor, *, options=None):
    grad_fn = type(tensor.grad_fn).__name__ if tensor.grad_fn is not None else None
    if options is not None:
        torch.set_printoptions(**options)
    try:
        expected = repr(tensor).replace("torch.", "lincore.")
    finally:
        # The default profile also puts sci_mode back to None.
        torch.set_printoptions(profile="default")
    case = {
        "name": name,
        "dtype": str(tensor.dtype).removeprefix("torch."),
        "shape": list(tensor.shape),
        "values": encode_values(tensor),
        "requires_grad": tensor.requires_grad,
        "grad_fn": grad_fn,
        "expected": expected,
    }
    if options is not None:
        case["options"] = options
    return case


def build_cases():
    torch.manual_seed(0)
    nan, inf = math.nan, math.inf
    f64 = torch.float64
    cases = []

    def add(name, tensor, **kwargs):
        cases.append(make_case(name, tensor, **kwargs))

    # The seed notebook: an int matrix, a float row, a Linear's parameters and its output.
    add("notebook-int-matrix", torch.tensor([[1, 2, 3], [4, 5, 6]]))
    add("notebook-float-row", torch.tensor([[-0.5322, 0.1088]]))
    linear = torch.nn.Linear(3, 2)
    weight = linear.weight.detach().clone().requires_grad_(True)
    bias = linear.bias.detach().clone().requires_grad_(True)
    add("notebook-weight-requires-grad", weight)
    add("notebook-bias-requires-grad", bias)
    output = F.linear(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), weight, bias)
    add("notebook-output-grad-fn", output)
    add("notebook-sum-grad-fn", output.sum())

    # Every dtype.
    add("float32-vector", torch.randn(5))
    add("float64-vector", torch.randn(5, dtype=f64))
    add("int64-vector", torch.tensor([3, -1, 42, 0, 7]))
    add("bool-vector", torch.tensor([True, False, True]))

    # 0-d.
    add("scalar-float32-integer", torch.tensor(3.0))
    add("scalar-float32", torch.tensor(3.14159))
    add("scalar-float64", torch.tensor(2.5, dtype=f64))
    add("scalar-int64", torch.tensor(-7))
    add("scalar-bool", torch.tensor(True))
    add("scalar-nan", torch.tensor(nan))
    add("scalar-negative-zero", torch.tensor(-0.0))
    add("scalar-sci", torch.tensor(1.5e-7))

    # Empty shapes.
    add("empty-float32-0", torch.zeros(0))
    add("empty-float32-0x3", torch.zeros(0, 3))
    add("empty-int64-0", torch.zeros(0, dtype=torch.int64))
    add("empty-int64-0x3", torch.zeros(0, 3, dtype=torch.int64))
    add("empty-float64-2x0x4", torch.zeros(2, 0, 4, dtype=f64))
    add("empty-bool-0", torch.zeros(0, dtype=torch.bool))

    # How floats are formatted: int mode, fixed, scientific, non-finite values and zeros.
    add("integer-valued-floats", torch.tensor([[1.0, 2.0], [-30.0, 400.0]]))
    add("integer-valued-with-nonfinite", torch.tensor([1.0, nan, inf, -inf, -12.0]))
    add("sci-tiny-value", torch.tensor([1e-5, 0.5, -0.25]))
    add("sci-huge-value", torch.tensor([1e9, 1.5, -2.0]))
    add("sci-ratio-over-1000", torch.tensor([0.001, 2.5]))
    add("sci-integer-valued", torch.tensor([1e10, 2.0, -3.0]))
    add("ratio-exactly-1000-float64", torch.tensor([1.5, 1500.0], dtype=f64))
    add("ratio-just-over-1000-float64", torch.tensor([1.5, 1500.5], dtype=f64))
    add("max-exactly-1e8", torch.tensor([1e8, 2e7], dtype=f64))
    add("nan-inf-mixed", torch.tensor([1.5, nan, -inf, inf, -2.25]))
    add("nan-inf-mixed-sci", torch.tensor([[1e-6, nan], [-inf, 3.0]]))
    add("all-nan", torch.tensor([nan, nan, nan]))
    add("all-nonfinite", torch.tensor([inf, -inf, nan]))
    add("zeros", torch.zeros(2, 3))
    add("negative-zero-fixed", torch.tensor([0.0, -0.0, 1.5]))
    add("negative-zero-int-mode", torch.tensor([-0.0, 1.0, 20.0]))
    add("negative-zero-sci", torch.tensor([-0.0, 1e-6]))
    add("float32-rounding", torch.tensor([0.12345, 0.99995, 1.00005, -0.56785]))
    add("float64-thirds", torch.tensor([[1 / 3, -2 / 3], [1.0, 10 / 3]], dtype=f64))

    # Integers and bools.
    add("large-ints", torch.tensor([2**62, -(2**63), 0, 1]))
    add("negative-ints-matrix", torch.arange(-4, 5).reshape(3, 3))
    add("bool-matrix", torch.tensor([[True, False, False], [False, True, True]]))

    # Wrapping at 80 columns, and suffixes that move to a line of their own.
    add("float32-vector-wraps", torch.randn(30))
    add("int64-vector-wraps", torch.arange(40) * 1000)
    add("float64-vector-wraps-dtype", torch.randn(20, dtype=f64))
    add("requires-grad-suffix-wraps", torch.randn(8).requires_grad_(True))
    add("float64-dtype-and-grad-suffixes", torch.randn(3, 8, dtype=f64).requires_grad_(True))
    # 81 columns as lincore spells the dtype but 79 as torch does, so torch keeps it on one line.
    add(
        "suffix-wrap-measured-as-torch-spells-it",
        torch.tensor([1634192.0, -98645.0, 2278739.0], dtype=f64).requires_grad_(True),
    )
    add("float64-scalar-grad-suffix", torch.tensor(1.25, dtype=f64).requires_grad_(True))

    # Higher ranks.
    add("matrix-3x4", torch.randn(3, 4))
    add("tensor-3d", torch.randn(2, 3, 4))
    add("tensor-4d", torch.randn(2, 2, 2, 3))
    add("int64-tensor-3d", torch.arange(24).reshape(2, 3, 4) - 12)

    # Summaries: more than 1000 elements, each dim above 2 * edgeitems cut to its edges.
    add("summarized-1d-2000", torch.randn(2000))
    add("summarized-2d-50x50", torch.randn(50, 50))
    add("summarized-3d-20x20x20", torch.randn(20, 20, 20))
    add("summarized-only-last-dim", torch.randn(4, 300))
    add("summarized-only-first-dim", torch.randn(300, 2, 2))
    add("summarized-4d", torch.randn(2, 3, 15, 15))
    add("summarized-int64", torch.arange(1001))
    add("summarized-bool", torch.arange(1200).reshape(40, 30) % 3 == 0)
    # The tiny value sits where the summary does not show it, so it must not force sci mode.
    hidden_tiny = torch.ones(1001)
    hidden_tiny[500] = 1e-8
    add("summarized-hidden-tiny-value", hidden_tiny)

    # Print options, each applied for one repr and then reset to the default profile.
    add("options-precision-2", torch.randn(4), options={"precision": 2})
    add("options-precision-8-float64", torch.randn(3, dtype=f64), options={"precision": 8})
    add("options-threshold-5", torch.arange(10), options={"threshold": 5})
    add("options-edgeitems-1", torch.randn(40, 30), options={"edgeitems": 1})
    add("options-edgeitems-0-1d", torch.randn(1001), options={"edgeitems": 0})
    add("options-edgeitems-0-2d", torch.randn(40, 30), options={"edgeitems": 0})
    add("options-edgeitems-0-small", torch.randn(2, 3), options={"edgeitems": 0})
    add("options-linewidth-40", torch.randn(12), options={"linewidth": 40})
    add(
        "options-linewidth-40-grad",
        torch.randn(4).requires_grad_(True),
        options={"linewidth": 40},
    )
    add("options-sci-mode-true", torch.tensor([1.5, 2.5]), options={"sci_mode": True})
    add("options-sci-mode-false", torch.tensor([1e-5, 1e9]), options={"sci_mode": False})
    add("options-profile-short", torch.randn(3, 3), options={"profile": "short"})
    add("options-profile-short-summarized", torch.randn(35, 30), options={"profile": "short"})
    add("options-profile-full", torch.randn(30, 40), options={"profile": "full"})
    add(
        "options-profile-full-precision-2",
        torch.randn(5),
        options={"profile": "full", "precision": 2},
    )
    return cases


def main():
    cases = build_cases()
    names = [case["name"] for case in cases]
    if len(names) != len(set(names)):
        raise SystemExit("duplicate case names")
    # One case per line keeps the file diffable without a line per value.
    lines = ",\n".join(json.dumps(case) for case in cases)
    OUT_PATH.write_text("[\n" + lines + "\n]\n")
    print(f"wrote {len(cases)} cases to {OUT_PATH}")


if __name__ == "__main__":
    main()
