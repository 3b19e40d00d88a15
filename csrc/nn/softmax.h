// softmax and log_softmax along one dimension of a tensor, and their backward passes.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace lincore {

// softmax(x, dim) (log: log_softmax) as a new contiguous tensor of x's shape and dtype (float32
// or float64; NotImplementedError otherwise). dim may be negative (IndexError out of range). Each
// line along dim is computed stably (its max subtracted first), in double, and rounded once.
Tensor softmax(const Tensor& x, std::int64_t dim, bool log);

// dL/dx for y = softmax(x, dim) (log: log_softmax) given dy and the forward's output y.
Tensor softmax_backward(const Tensor& dy, const Tensor& y, std::int64_t dim, bool log);

}  // namespace lincore
