// One SGD step on one parameter, in place and in its dtype: torch.optim.SGD's single-tensor
// update, op for op (a multiply and an add where torch fuses them into one FMA):
//   g = maximize ? -grad : grad;              if weight_decay: g = g + weight_decay * p
//   if momentum: buf = first ? g : buf * momentum + (1 - dampening) * g
//                g = nesterov ? g + momentum * buf : buf
//   p = p + (-lr) * g
// Scalars are rounded to the parameter's dtype first, as torch does. One pass over memory.
#pragma once

#include "tensor/tensor.h"

namespace lincore {

struct SgdOptions {
  double lr = 1e-3, weight_decay = 0, momentum = 0, dampening = 0;
  bool nesterov = false, maximize = false;
};

// p, grad (and buf, when momentum != 0) of one shape and floating dtype; buf is written on the
// first step (first = true) and read after. Throws before changing anything on bad input.
void sgd_step(Tensor& p, const Tensor& grad, Tensor* buf, bool first, const SgdOptions& o);

}  // namespace lincore
