// A Tensor object's autograd state, and the bookkeeping of the hot recorded calls (a Linear, a
// whole Sequential stack) done in the same C++ call as the forward: at batch 1 the forward costs
// about a microsecond, and the same bookkeeping in Python (lincore/_autograd.py's record()) costs
// half as much again.
//
// The state is typed fields of the Python Tensor object, after pybind11's own instance layout
// (add_autograd_fields puts them there when the type is made). C++ reads and writes them here;
// Python through member descriptors on lincore.Tensor: grad_fn (read-only), _grad_fn, _grad,
// _requires_grad and _accumulate (lincore/_autograd.py, lincore/_tensor/grad.py). A Tensor
// object made by a copy (detach, Tensor(t)) starts with none of it, as a fresh object should.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>

namespace lincore::bindings {

struct AutogradFields {
  PyObject* grad_fn;     // the node of the recorded op that made this tensor; NULL for a leaf
  PyObject* grad;        // .grad; NULL for None
  PyObject* accumulate;  // a leaf's AccumulateGrad node, made by its first recorded use
  char requires_grad;
};

// Appends AutogradFields to the Tensor type's instances and binds their member descriptors; run
// in the type's custom_type_setup (before PyType_Ready).
void add_autograd_fields(PyHeapTypeObject* heap_type);

// The fields of t, a lincore Tensor (or subclass) object; nullptr for anything else.
AutogradFields* autograd_fields(pybind11::handle t);

// Whether t (a lincore Tensor, or None) requires grad.
inline bool requires_grad(pybind11::handle t) {
  const AutogradFields* f = autograd_fields(t);
  return f != nullptr && f->requires_grad != 0;
}

// Marks y, a fresh Tensor output, as the result of the recorded op `node`.
void set_grad_fn(pybind11::handle y, const pybind11::object& node);

// Where the node class for an output of `dims` dimensions sits in a run of three (for 1, 2 and
// 3+ dimensions): PyTorch names a Linear's node by them (AddmmBackward0 for 2-D, ...).
inline std::size_t node_index_by_dims(std::int64_t dims) {
  return static_cast<std::size_t>(dims <= 1 ? 0 : dims == 2 ? 1 : 2);
}

// PyTorch's node names for F.linear's output (and so for a run of layers that ends in a Linear),
// the one table of them: [has bias][node_index_by_dims(output dims)]. Exported as
// _core.LINEAR_NODE_NAMES; Python makes a node class per name, in the same nesting, and hands
// them back once through _core.set_linear_nodes.
inline constexpr const char* kLinearNodeNames[2][3] = {
    {"SqueezeBackward4", "MmBackward0", "UnsafeViewBackward0"},  // no bias
    {"ViewBackward0", "AddmmBackward0", "ViewBackward0"},        // with bias
};

}  // namespace lincore::bindings
