// softmax and log_softmax along one dimension of a tensor, and their backward passes.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace lincore {

// softmax(x, dim) (log: log_softmax) as a new contiguous tensor of x's shape and dtype (float32
// or float64; NotImplementedError otherwise). dim may be negative (IndexError out of range). Each
// line along dim is computed stably (its max subtracted first), in double, and rounded once.
Tensor softmax(const Tensor& x, std::int64_t dim, bool log);

// One line of n elements, `stride` apart in x and in y: what softmax() computes for each line (a
// compiled Sequential run calls it per row, bitwise the same).
template <class T>
void softmax_line(const T* x, T* y, std::int64_t n, std::int64_t stride, bool log);

// dL/dx for y = softmax(x, dim) (log: log_softmax) given dy and the forward's output y.
Tensor softmax_backward(const Tensor& dy, const Tensor& y, std::int64_t dim, bool log);

}  // namespace lincore
