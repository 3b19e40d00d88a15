// Cross-entropy of logits against class indices or probabilities, with its gradient, in one pass
// per row.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace lincore {

enum class Reduction { none, mean, sum };

// logits: (n, c) or (n, c, s) float32 or float64 (s: the K extra dims of a K-dimensional input,
// flattened); target: class indices, int64 of shape (n) or (n, s), each in [0, c) or equal to
// ignore_index (std::out_of_range, naming the first bad one, otherwise), or class probabilities
// of the logits' shape and dtype. With log p = log_softmax(z) over the classes, w the class
// weights (1 without weight), eps the label smoothing and q the probabilities:
//   indices:       loss = (1 - eps) * w_t * -log p_t + eps / c * sum_j w_j * -log p_j
//                  (0 for an ignored target); mean divides by the sum of w_t over the targets
//                  not ignored (NaN when that is 0).
//   probabilities: loss = sum_j w_j * q'_j * -log p_j, q' = (1 - eps) * q + eps / c;
//                  mean divides by n * s (NaN for no rows).
// These are PyTorch's definitions (cross_entropy_loss_label_smoothing, _prob_target).
// The max is subtracted before exp; the plain case (2-D, indices, no weight, no smoothing)
// computes each exp(z_ij - max) in the logits' dtype (float32: a vectorizable polynomial within
// 2 ulp; float64: std::exp), the rest in double; every other case in double, rounded once.
// loss: (n) or (n, s) for none, else a 0-d tensor. With need_grad, grad is d(loss)/d(logits)
// for an upstream gradient of 1 (divided by the mean's denominator for mean; for none: per row,
// to be scaled by each row's upstream); with need_target_grad (probabilities only), target_grad
// is d(loss)/d(target) likewise.
struct CrossEntropy {
  Tensor loss;
  Tensor grad;         // empty unless asked for
  Tensor target_grad;  // empty unless asked for
};
struct CrossEntropyOptions {
  const Tensor* weight = nullptr;  // (c) in the logits' dtype, or none
  std::int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  bool need_target_grad = false;
};
CrossEntropy cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction,
                           bool need_grad, const CrossEntropyOptions& options = {});

}  // namespace lincore
