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

// act'(z) for one value: the derivative every backward pass uses.
template <class T>
T activation_derivative(T z, Epilogue ep);

}  // namespace lincore
