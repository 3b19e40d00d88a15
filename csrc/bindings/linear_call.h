// The Linear forward as Python reaches it, one path for every entry point: F.linear
// (_core.linear_forward) and nn.Linear, whose Python class derives from _core.LinearBase (its
// weight, bias and pack cache as typed fields, its __call__ and forward in C, see
// linear_call.cpp).
#pragma once

#include <pybind11/pybind11.h>

#include "nn/linear.h"

namespace lincore::bindings {

// x @ weight.T + bias (bias may be None), computed with the GIL released and, under grad mode
// when an input requires grad, recorded in the graph: the output's grad_fn is
// nodes[has_bias][node_index_by_dims(x.dim())](x, weight, bias), the node classes that
// _core.set_linear_nodes registered (nested as kLinearNodeNames, record.h). A TypeError names
// the argument that is not a Tensor.
pybind11::object linear_apply(pybind11::handle x, pybind11::handle weight, pybind11::handle bias,
                              PackCache* cache);

}  // namespace lincore::bindings
