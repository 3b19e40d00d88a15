// Layer normalization over the trailing dimensions of a tensor, and its backward pass.
#pragma once

#include <optional>

#include "tensor/tensor.h"

namespace lincore {

// y = (x - mean) / sqrt(var + eps) * weight + bias over the last normalized_shape.size() dims
// (var biased, as in PyTorch), weight and bias of shape normalized_shape or absent. stats holds
// (mean, 1 / sqrt(var + eps)) per normalized row, shape (rows, 2), float64: what backward needs.
// Each row is computed in double (two passes: the mean, then the variance about it) and rounded
// once. Shape and dtype errors are RuntimeErrors in PyTorch's words.
struct LayerNormOut {
  Tensor y;
  Tensor stats;
};
LayerNormOut layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor* weight,
                        const Tensor* bias, double eps);

// One row of n elements: what layer_norm() computes for each (a compiled Sequential run calls it
// per row, bitwise the same); w and b may be null; stats gets (mean, rstd).
template <class T>
void layer_norm_row(const T* x, const T* w, const T* b, T* y, std::int64_t n, double eps,
                    double* stats);

// dL/dx, dL/dweight and dL/dbias of layer_norm given dy and the forward's input and stats;
// each only when asked for (dweight and dbias need a weight and bias to exist).
struct LayerNormGrads {
  std::optional<Tensor> dx, dweight, dbias;
};
LayerNormGrads layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& stats,
                                   const Shape& normalized_shape, const Tensor* weight,
                                   bool need_dx, bool need_dweight, bool need_dbias);

}  // namespace lincore
