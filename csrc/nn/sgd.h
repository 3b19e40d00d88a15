// One SGD step on one parameter, in place and in its dtype: torch.optim.SGD's single-tensor
// update, op for op (a multiply and an add where torch fuses them into one FMA):
//   g = maximize ? -grad : grad;              if weight_decay: g = g + weight_decay * p
//   if momentum: buf = first ? g : buf * momentum + (1 - dampening) * g
//                g = nesterov ? g + momentum * buf : buf
//   p = p + (-lr) * g
// Scalars are rounded to the parameter's dtype first, as torch does. One pass over memory.
#pragma once

#include <optional>
#include <vector>

#include "tensor/tensor.h"

namespace lincore {

struct SgdOptions {
  double lr = 1e-3, weight_decay = 0, momentum = 0, dampening = 0;
  bool nesterov = false, maximize = false;
};

// p, grad (and buf, when momentum != 0) of one shape and floating dtype; buf is written on the
// first step (first = true) and read after. Throws before changing anything on bad input.
void sgd_step(Tensor& p, const Tensor& grad, Tensor* buf, bool first, const SgdOptions& o);

// One step on each parameter of a group (an optimizer's param group, in one call), all checked
// before any changes: when sgd_step would refuse any item, nothing is changed and the result is
// false (the caller then reports which, and why). An item's buf, when null and momentum != 0, is
// its first step: a buffer is created for it.
struct SgdItem {
  Tensor param, grad;
  std::optional<Tensor> buf;
};
bool sgd_step_group(std::vector<SgdItem>& items, const SgdOptions& o);

}  // namespace lincore
