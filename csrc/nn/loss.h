// Cross-entropy of logits against class indices, with its gradient, in one pass per row.
#pragma once

#include "tensor/tensor.h"

namespace lincore {

enum class Reduction { none, mean, sum };

// logits: (n, c) float32 or float64; target: (n,) int64 class indices in [0, c)
// (std::out_of_range, naming the first bad one, otherwise).
//   loss_i = log(sum_j exp(z_ij)) - z_i,t_i, computed stably (the row max subtracted): each
//   exp(z_ij - max) in the logits' dtype (float32: a vectorizable polynomial within 2 ulp;
//   float64: std::exp), the sum, the log and the reduction in double, rounded once.
// loss: (n,) for none, else a 0-d tensor (mean of no rows is NaN, as in PyTorch). With
// need_grad, grad is d(loss)/d(logits) for an upstream gradient of 1: softmax(z_i) - onehot(t_i),
// divided by n for mean (for none: the per-row gradient, to be scaled by each row's upstream).
struct CrossEntropy {
  Tensor loss;
  Tensor grad;  // empty unless asked for
};
CrossEntropy cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction,
                           bool need_grad);

}  // namespace lincore
