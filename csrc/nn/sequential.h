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

// forward runs stacks of Linear, activation and Identity steps on float data as one whole-stack
// call (row blocks through every layer, intermediates in per-thread scratch that persists across
// calls); any other stack runs layer by layer.
class Sequential {
 public:
  explicit Sequential(std::vector<Step> steps) : steps_(std::move(steps)) {}
  Tensor forward(const Tensor& x) const;
  const std::vector<Step>& steps() const { return steps_; }

 private:
  template <class T>
  bool forward_fused(const Tensor& x, Tensor& out) const;

  std::vector<Step> steps_;
};

}  // namespace lincore
