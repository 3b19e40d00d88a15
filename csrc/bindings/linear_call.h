// The Linear forward as Python calls it: plain, recorded in the autograd graph, and as
// nn.Linear's own __call__ (a C-level method, see linear_call.cpp).
#pragma once

#include <pybind11/pybind11.h>

#include "nn/linear.h"

namespace lincore::bindings {

// x @ weight.T + bias (bias may be None), computed with the GIL released.
pybind11::object linear_forward(pybind11::handle x, pybind11::handle weight, pybind11::handle bias,
                                PackCache* cache);

// The same, recorded in the graph when an input requires grad: the output's grad_fn is
// nodes[has_bias][node_index_by_dims(x.dim())](x, weight, bias), nodes nested as
// kLinearNodeNames (record.h).
pybind11::object linear_forward_recorded(pybind11::handle x, pybind11::handle weight,
                                         pybind11::handle bias, PackCache* cache,
                                         const pybind11::tuple& nodes);

}  // namespace lincore::bindings
