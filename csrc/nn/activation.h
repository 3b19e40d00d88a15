// Elementwise activations on whole tensors (the same scalar definitions as the kernels' fused
// epilogues, see kernels/gemm.h).
#pragma once

#include "kernels/gemm.h"
#include "tensor/tensor.h"

namespace lincore {

// Returns act(x) as a new contiguous tensor of x's shape and dtype (float32 or float64).
Tensor activation(const Tensor& x, Epilogue ep);

// dL/dz = dL/dy * act'(z) for y = act(z), elementwise; dy and z of one shape and dtype.
Tensor activation_backward(const Tensor& dy, const Tensor& z, Epilogue ep);

// Whether dL/dz can be computed from the output y = act(z) alone, bit for bit as from z: ReLU,
// LeakyReLU with a slope >= 0 (then y > 0 exactly when z > 0), sigmoid (s' = s (1 - s)) and tanh
// (t' = 1 - t^2), whose derivatives are computed from act(z) anyway. A training forward can then
// fuse the activation into the Linear's kernel and keep only y.
bool backward_from_output(Epilogue ep);

// dL/dz given dy and y = act(z), for an ep with backward_from_output(ep); bitwise equal to
// activation_backward(dy, z, ep).
Tensor activation_backward_from_output(const Tensor& dy, const Tensor& y, Epilogue ep);

// act'(z) for one value: the derivative every backward pass uses.
template <class T>
T activation_derivative(T z, Epilogue ep);

}  // namespace lincore
