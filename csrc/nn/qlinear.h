// The dynamically quantized Linear (int8 weights packed once, x quantized per call; the rule in
// kernels/qgemm.h): its forward, and building its packed weight from fp32 or from saved codes.
#pragma once

#include <memory>
#include <optional>

#include "kernels/qgemm.h"
#include "tensor/tensor.h"

namespace lincore {

// Quantizes a float32 weight (out_features x in_features) per output channel and packs it with
// the bias (float32, out_features, or null). std::invalid_argument for a NaN or Inf weight, a
// wrong dtype or shape, or more than kQMaxK input features.
std::shared_ptr<QPackedWeight> qlinear_quantize(const Tensor& weight, const Tensor* bias);

// (*, in_features) float32 -> (*, out_features) float32: act(x . W^T + b) by the int8 rule.
Tensor qlinear(const Tensor& x, const QPackedWeight& w, Epilogue ep);

}  // namespace lincore
