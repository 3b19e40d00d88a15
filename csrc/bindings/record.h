// The autograd bookkeeping of the hot recorded calls (a Linear, a whole Sequential stack), done
// in the same C++ call as the forward: at batch 1 the forward costs about a microsecond, and the
// same bookkeeping in Python (lincore/_autograd.py's record()) costs half as much again.
//
// The state is the one the Python side keeps: a tensor requires grad when its instance dict
// holds a true "_requires_grad", and a recorded output gets "grad_fn" (a Python node object)
// and "_requires_grad" = True in its dict.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>

namespace lincore::bindings {

// Whether t (a lincore Tensor, or None) requires grad.
bool requires_grad(pybind11::handle t);

// Marks y, a fresh output, as the result of the recorded op `node`.
void set_grad_fn(pybind11::handle y, const pybind11::object& node);

// Where the node class for an output of `dims` dimensions sits in a run of three (for 1, 2 and
// 3+ dimensions): PyTorch names a Linear's node by them (AddmmBackward0 for 2-D, ...).
inline std::size_t node_index_by_dims(std::int64_t dims) {
  return static_cast<std::size_t>(dims <= 1 ? 0 : dims == 2 ? 1 : 2);
}

// PyTorch's node names for F.linear's output (and so for a run of layers that ends in a Linear),
// the one table of them: [has bias][node_index_by_dims(output dims)]. Exported as
// _core.LINEAR_NODE_NAMES; Python makes a node class per name, in the same nesting, and hands
// them back as the `nodes` that the recorded calls pick from.
inline constexpr const char* kLinearNodeNames[2][3] = {
    {"SqueezeBackward4", "MmBackward0", "UnsafeViewBackward0"},  // no bias
    {"ViewBackward0", "AddmmBackward0", "ViewBackward0"},        // with bias
};

}  // namespace lincore::bindings
