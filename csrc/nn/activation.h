// Elementwise activations on whole tensors (the same scalar definitions as the kernels' fused
// epilogues, see kernels/gemm.h).
#pragma once

#include "kernels/gemm.h"
#include "tensor/tensor.h"

namespace lincore {

// Returns act(x) as a new contiguous tensor of x's shape and dtype (float32 or float64).
Tensor activation(const Tensor& x, Epilogue ep);

}  // namespace lincore
