// A stack of layers run as one C++ call: Linear, activations, Flatten, Identity. A Linear
// followed by an activation is fused into one kernel call (the activation at the final store).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nn/linear.h"

namespace lincore {

struct Step {
  enum class Kind { linear, activation, flatten, identity };
  Kind kind = Kind::identity;
  std::string name;  // how errors name the layer, e.g. "2 (Linear(in_features=18, ...))"
  Tensor weight;
  std::optional<Tensor> bias;
  std::shared_ptr<PackCache> cache;
  Epilogue ep;
  std::int64_t start_dim = 1, end_dim = -1;  // flatten
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
  };
  std::vector<Entry> entries;
};

// Gradients of a recorded forward: dx for the input (when asked), and per Linear step (in step
// order) dW and db (empty where not asked for, or for no bias).
struct StackGrads {
  std::optional<Tensor> dx;
  std::vector<std::optional<Tensor>> dw, db;
};

// forward runs stacks of Linear, activation and Identity steps on float data as one whole-stack
// call (row blocks through every layer, intermediates in per-thread scratch that persists across
// calls); any other stack runs layer by layer.
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
