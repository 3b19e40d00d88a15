#include "nn/qlinear.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/errors.h"

namespace lincore {

std::shared_ptr<QPackedWeight> qlinear_quantize(const Tensor& weight, const Tensor* bias) {
  if (weight.dtype() != DType::float32) {
    throw type_error(std::string("quantize_dynamic: int8 quantization takes float32 weights, "
                                 "but got ") +
                     dtype_name(weight.dtype()));
  }
  if (weight.dim() != 2) {
    throw std::invalid_argument("quantize_dynamic: expected a 2-D weight, but got shape " +
                                shape_str(weight.shape()));
  }
  const std::int64_t n = weight.size(0), k = weight.size(1);
  if (bias && (bias->dtype() != DType::float32 || bias->dim() != 1 || bias->size(0) != n)) {
    throw std::invalid_argument("quantize_dynamic: expected a float32 bias of shape [" +
                                std::to_string(n) + "], but got " + dtype_name(bias->dtype()) +
                                " " + shape_str(bias->shape()));
  }
  if (k > kQMaxK) {
    throw std::invalid_argument("quantize_dynamic: int8 layers take at most " +
                                std::to_string(kQMaxK) + " input features, got " +
                                std::to_string(k));
  }
  const Tensor w = weight.contiguous();
  std::optional<Tensor> b;
  if (bias) b = bias->contiguous();
  if (b) {
    const float* bp = b->data<float>();
    for (std::int64_t j = 0; j < n; ++j)
      if (!(bp[j] - bp[j] == 0.0f)) {
        throw std::invalid_argument("quantize_dynamic: bias[" + std::to_string(j) +
                                    "] is not finite");
      }
  }
  std::vector<std::int8_t> codes(static_cast<std::size_t>(n * k));
  std::vector<float> scales(static_cast<std::size_t>(n));
  try {
    quantize_rows(n, k, w.data<float>(), k, codes.data(), k, scales.data(), true);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("quantize_dynamic: weight ") + e.what());
  }
  return std::make_shared<QPackedWeight>(
      qgemm_pack(n, k, codes.data(), k, scales.data(), b ? b->data<float>() : nullptr));
}

Tensor qlinear(const Tensor& x, const QPackedWeight& w, Epilogue ep) {
  if (x.dim() == 0) {
    throw std::runtime_error(
        "both arguments to linear need to be at least 1D, but they are 0D "
        "and 2D");
  }
  if (x.dtype() != DType::float32) {
    throw std::runtime_error(std::string("quantized Linear: expected a float32 input, but got ") +
                             dtype_name(x.dtype()));
  }
  const std::int64_t k = x.size(-1);
  std::int64_t m = 1;
  for (std::int64_t d = 0; d + 1 < x.dim(); ++d) m *= x.shape()[d];
  if (k != w.k) {
    throw std::runtime_error("mat1 and mat2 shapes cannot be multiplied (" + std::to_string(m) +
                             "x" + std::to_string(k) + " and " + std::to_string(w.k) + "x" +
                             std::to_string(w.n) + ")");
  }
  Shape out_shape(x.shape());
  out_shape.back() = w.n;
  Tensor y = Tensor::empty(out_shape, DType::float32);
  if (y.numel() == 0) return y;
  Tensor x2 = x.reshape({m, k});
  if (k > 1 && x2.strides()[1] != 1) x2 = x2.contiguous();
  qgemm_run(m, x2.data<float>(), x2.strides()[0], w, y.data<float>(), w.n, ep);
  return y;
}

}  // namespace lincore
