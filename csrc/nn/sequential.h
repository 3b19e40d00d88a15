// A stack of layers run as one C++ call: Linear, quantized Linear, activations, Flatten, Identity,
// softmax, log_softmax, LayerNorm and Dropout (training mode). A Linear followed by an activation
// is fused into one kernel call (the activation at the final store).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nn/linear.h"
#include "nn/qlinear.h"

namespace lincore {

struct Step {
  enum class Kind {
    linear,
    activation,
    flatten,
    identity,
    softmax,
    log_softmax,
    layer_norm,
    dropout,
    qlinear  // a dynamically quantized (int8) Linear: qweight
  };
  Kind kind = Kind::identity;
  std::string name;  // how errors name the layer, e.g. "2 (Linear(in_features=18, ...))"
  Tensor weight;
  std::optional<Tensor> bias;
  std::shared_ptr<PackCache> cache;
  std::shared_ptr<const QPackedWeight> qweight;  // qlinear
  Epilogue ep;
  std::int64_t start_dim = 1, end_dim = -1;  // flatten
  std::int64_t dim = -1;                     // softmax, log_softmax
  double p = 0;                              // dropout
  Shape normalized_shape;                    // layer_norm, with its optional affine parameters
  std::optional<Tensor> norm_weight, norm_bias;
  double eps = 0;
};

// What a recorded forward keeps for its backward: per step, the step's input and, for a Linear
// followed by an activation, the output before the activation (z) or, when the activation's
// derivative follows from its output (backward_from_output), the output after it (y: the
// activation then runs fused in the Linear's kernel).
struct Tape {
  struct Entry {
    std::size_t step;         // index into the Sequential's steps
    Tensor input;             // what the step received (its shape, for Flatten)
    std::optional<Tensor> z;  // Linear + activation: the Linear's output before the activation
    std::optional<Tensor> y;  // ... or the output after it
    Epilogue ep;              // that activation
    // softmax, log_softmax: the output; dropout: the mask; layer_norm: the (mean, rstd) stats.
    std::optional<Tensor> saved = std::nullopt;
  };
  std::vector<Entry> entries;
};

// Gradients of a recorded forward: dx for the input (when asked), and per parameter step (Linear
// and LayerNorm, in step order) its weight's and bias's gradient (empty where not asked for, or
// for no such parameter).
struct StackGrads {
  std::optional<Tensor> dx;
  std::vector<std::optional<Tensor>> dw, db;
};

// forward runs stacks of Linear, activation and Identity steps, softmax / log_softmax along the
// last dim and LayerNorm over it, on float data as one whole-stack call (row blocks through every
// layer, intermediates in per-thread scratch that persists across calls); any other stack (a
// Flatten, a Dropout in training mode, ...) runs layer by layer.
class Sequential {
 public:
  explicit Sequential(std::vector<Step> steps) : steps_(std::move(steps)) {}
  Tensor forward(const Tensor& x) const;
  // The training forward: the same result as forward (layer by layer), recording in tape what
  // backward needs. backward runs the whole stack's backward in one call; need_params holds a
  // (weight, bias) pair of flags per Linear step, in order.
  Tensor forward_train(const Tensor& x, Tape& tape) const;
  StackGrads backward(const Tape& tape, const Tensor& dy, bool need_dx,
                      const std::vector<bool>& need_params) const;
  const std::vector<Step>& steps() const { return steps_; }

 private:
  template <class T>
  bool forward_fused(const Tensor& x, std::optional<Tensor>& out) const;

  std::vector<Step> steps_;
};

}  // namespace lincore
