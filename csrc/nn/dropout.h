// Dropout in training mode: zeroes elements with probability p and scales the rest by
// 1 / (1 - p), the mask drawn from lincore's generator (runtime/random.h).
#pragma once

#include "tensor/tensor.h"

namespace lincore {

// y = x * mask, with mask (x's shape and dtype) holding 1 / (1 - p) where an element is kept and
// 0 where it is dropped (all 0 for p = 1, as in PyTorch): backward is dy * mask. Draws one value
// per element, in x's row-major order. float32 or float64 (RuntimeError otherwise, PyTorch's).
struct DropoutOut {
  Tensor y;
  Tensor mask;
};
DropoutOut dropout(const Tensor& x, double p);

// dy * mask, elementwise (the mask of dropout()).
Tensor dropout_backward(const Tensor& dy, const Tensor& mask);

}  // namespace lincore
