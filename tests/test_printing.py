# Tensor printing against PyTorch's own output, stored in data/print_goldens.json by
# data/make_print_goldens.py; torch is not imported here, the goldens are the oracle.

import json
import math
import pathlib

import numpy as np
import pytest

from lincore._printing import format_tensor, get_printoptions, set_printoptions

GOLDENS_PATH = pathlib.Path(__file__).parent / "data" / "print_goldens.json"
CASES = json.loads(GOLDENS_PATH.read_text())
PLAIN_CASES = [case for case in CASES if "options" not in case]
OPTION_CASES = [case for case in CASES if "options" in case]
DEFAULT_OPTIONS = {
    "precision": 4,
    "threshold": 1000,
    "edgeitems": 3,
    "linewidth": 80,
    "sci_mode": None,
}


def decode_values(case):
    dtype = np.dtype(case["dtype"])
    values = case["values"]
    if dtype.kind == "f":
        values = [float.fromhex(value) for value in values]
    return np.array(values, dtype=dtype).reshape(case["shape"])


def format_case(case, values):
    return format_tensor(values, requires_grad=case["requires_grad"], grad_fn=case["grad_fn"])


def other_layouts(values):
    """The same logical values, laid out in memory the ways a caller may hand them over."""
    # Every element sits twice as far apart, so no view below is contiguous.
    spread = np.zeros(values.shape + (2,), dtype=values.dtype)
    spread[..., 0] = values
    yield "sliced", spread[..., 0]
    # Not np.asfortranarray / np.ascontiguousarray: they turn a 0-d array into a 1-d one.
    yield "fortran-order", np.array(values, order="F")
    yield "transposed", values.T.copy().T
    yield "negative-strides", np.flip(np.flip(values).copy())
    yield "big-endian", values.astype(values.dtype.newbyteorder(">"))
    yield "read-only", np.frombuffer(values.tobytes(), dtype=values.dtype).reshape(values.shape)


@pytest.fixture
def restore_printoptions():
    saved = get_printoptions()
    try:
        yield
    finally:
        set_printoptions(**saved)


@pytest.mark.parametrize("case", PLAIN_CASES, ids=[case["name"] for case in PLAIN_CASES])
def test_printing_matches_torch(case):
    assert format_case(case, decode_values(case)) == case["expected"]


@pytest.mark.parametrize("case", PLAIN_CASES, ids=[case["name"] for case in PLAIN_CASES])
def test_printing_ignores_memory_layout(case):
    for layout, values in other_layouts(decode_values(case)):
        assert format_case(case, values) == case["expected"], layout


@pytest.mark.parametrize("case", OPTION_CASES, ids=[case["name"] for case in OPTION_CASES])
def test_printing_options_match_torch(case, restore_printoptions):
    set_printoptions(**case["options"])
    assert format_case(case, decode_values(case)) == case["expected"]


def test_printing_options_default():
    assert get_printoptions() == DEFAULT_OPTIONS


def test_printing_options_profiles(restore_printoptions):
    set_printoptions(profile="short")
    assert get_printoptions() == {**DEFAULT_OPTIONS, "precision": 2, "edgeitems": 2}
    set_printoptions(profile="full", precision=6)
    assert get_printoptions() == {**DEFAULT_OPTIONS, "precision": 6, "threshold": math.inf}
    set_printoptions(profile="default")
    assert get_printoptions() == DEFAULT_OPTIONS


def test_printing_options_sci_mode_resets_when_omitted(restore_printoptions):
    # torch assigns sci_mode on every call, so an unrelated change puts it back to None.
    set_printoptions(sci_mode=True)
    assert get_printoptions()["sci_mode"] is True
    set_printoptions(precision=3)
    assert get_printoptions() == {**DEFAULT_OPTIONS, "precision": 3}


def test_printing_options_restore_round_trips(restore_printoptions):
    set_printoptions(precision=7, threshold=10, edgeitems=1, linewidth=50, sci_mode=False)
    saved = get_printoptions()
    set_printoptions(profile="default")
    set_printoptions(**saved)
    assert get_printoptions() == saved


def test_printing_rejects_unsupported_dtype():
    with pytest.raises(TypeError, match="float32, float64, int64 or bool.*int32"):
        format_tensor(np.zeros(3, dtype=np.int32))
