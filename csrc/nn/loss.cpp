#include "nn/loss.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "tensor/errors.h"

namespace lincore {
namespace {

template <class T>
void rows(const Tensor& logits, const std::int64_t* t, Reduction reduction, T* losses, T* grad,
          double& total) {
  const std::int64_t n = logits.size(0), c = logits.size(1);
  const T* z = logits.data<T>();
  const double scale = reduction == Reduction::mean ? 1.0 / static_cast<double>(n) : 1.0;
  total = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const T* zi = z + i * c;
    // The max of the row (NaN is skipped here and poisons the sum below, as in PyTorch).
    T mx = -std::numeric_limits<T>::infinity();
    for (std::int64_t j = 0; j < c; ++j) mx = zi[j] > mx ? zi[j] : mx;
    double s = 0;
    for (std::int64_t j = 0; j < c; ++j) s += std::exp(static_cast<double>(zi[j] - mx));
    const double lse = std::log(s);
    const double loss = lse - static_cast<double>(zi[t[i]] - mx);
    total += loss;
    if (losses) losses[i] = static_cast<T>(loss);
    if (grad) {
      T* gi = grad + i * c;
      for (std::int64_t j = 0; j < c; ++j) {
        const double p = std::exp(static_cast<double>(zi[j] - mx) - lse);
        gi[j] = static_cast<T>((j == t[i] ? p - 1.0 : p) * scale);
      }
    }
  }
}

}  // namespace

CrossEntropy cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction,
                           bool need_grad) {
  if (logits.dim() != 2 || !is_floating_point(logits.dtype())) {
    throw std::invalid_argument("cross_entropy: expected 2-D floating point logits, got " +
                                std::string(dtype_name(logits.dtype())) + " " +
                                shape_str(logits.shape()));
  }
  if (target.dim() != 1 || target.dtype() != DType::int64 || target.size(0) != logits.size(0)) {
    throw std::invalid_argument("cross_entropy: expected " + std::to_string(logits.size(0)) +
                                " int64 class indices, got " + dtype_name(target.dtype()) + " " +
                                shape_str(target.shape()));
  }
  const std::int64_t n = logits.size(0), c = logits.size(1);
  Tensor z = logits.contiguous(), tc = target.contiguous();
  const std::int64_t* t = tc.data<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i) {
    if (t[i] < 0 || t[i] >= c) {
      throw std::out_of_range("Target " + std::to_string(t[i]) + " is out of bounds.");
    }
  }
  CrossEntropy out;
  out.loss = reduction == Reduction::none ? Tensor::empty({n}, z.dtype())
                                          : Tensor::empty({}, z.dtype());
  if (need_grad) out.grad = Tensor::empty({n, c}, z.dtype());
  double total = 0;
  if (z.dtype() == DType::float32) {
    rows<float>(z, t, reduction, reduction == Reduction::none ? out.loss.data<float>() : nullptr,
                need_grad ? out.grad.data<float>() : nullptr, total);
  } else {
    rows<double>(z, t, reduction,
                 reduction == Reduction::none ? out.loss.data<double>() : nullptr,
                 need_grad ? out.grad.data<double>() : nullptr, total);
  }
  if (reduction != Reduction::none) {
    const double v = reduction == Reduction::mean
                         ? (n > 0 ? total / static_cast<double>(n)
                                  : std::numeric_limits<double>::quiet_NaN())
                         : total;
    out.loss.fill(v);
  }
  return out;
}

}  // namespace lincore
