#include "nn/dropout.h"

#include <string>
#include <vector>

#include "runtime/random.h"
#include "runtime/thread_pool.h"
#include "tensor/errors.h"

namespace lincore {
namespace {

// Elements per thread below which a second thread does not pay (as in activation.cpp).
constexpr std::int64_t kParallelGrain = 1 << 15;

template <class T>
void multiply(const T* a, const T* b, T* out, std::int64_t n) {
  parallel_for(n, kParallelGrain, [=](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) out[i] = a[i] * b[i];
  });
}

template <class T>
void apply(const Tensor& x, const std::vector<std::uint8_t>& keep, double p, DropoutOut& out) {
  // PyTorch's scale: 1 / (1 - p), and 0 for p = 1 (so x * 0 keeps x's sign, as there).
  const T scale = p >= 1 ? T(0) : T(1.0 / (1.0 - p));
  T* m = out.mask.data<T>();
  const std::uint8_t* k = keep.data();
  parallel_for(x.numel(), kParallelGrain, [=](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) m[i] = k[i] ? scale : T(0);
  });
  multiply<T>(x.data<T>(), m, out.y.data<T>(), x.numel());
}

}  // namespace

DropoutOut dropout(const Tensor& x, double p) {
  if (!(p >= 0 && p <= 1)) {
    throw std::invalid_argument("dropout probability has to be between 0 and 1, but got " +
                                std::to_string(p));
  }
  if (!is_floating_point(x.dtype())) {
    throw std::runtime_error(std::string("result type Float can't be cast to the desired output "
                                         "type ") +
                             dtype_short_name(x.dtype()));
  }
  if (x.dtype() == DType::bfloat16) {  // in fp32, rounded once (PyTorch's bf16 rule)
    DropoutOut wide = dropout(x.to(DType::float32), p);
    return DropoutOut{wide.y.to(DType::bfloat16), wide.mask.to(DType::bfloat16)};
  }
  Tensor xc = x.contiguous();
  DropoutOut out{Tensor::empty(x.shape(), x.dtype()), Tensor::empty(x.shape(), x.dtype())};
  std::vector<std::uint8_t> keep(static_cast<std::size_t>(x.numel()));
  bernoulli(keep.data(), x.numel(), 1.0 - p);
  if (x.dtype() == DType::float32)
    apply<float>(xc, keep, p, out);
  else
    apply<double>(xc, keep, p, out);
  return out;
}

Tensor dropout_backward(const Tensor& dy, const Tensor& mask) {
  if (dy.shape() != mask.shape() || dy.dtype() != mask.dtype() || !is_floating_point(dy.dtype())) {
    throw std::invalid_argument("dropout_backward: gradient " + shape_str(dy.shape()) +
                                " does not match mask " + shape_str(mask.shape()));
  }
  if (!has_float_kernel(dy.dtype())) throw not_implemented("dropout_backward", dy.dtype());
  Tensor dc = dy.contiguous(), mc = mask.contiguous();
  Tensor dx = Tensor::empty(dy.shape(), dy.dtype());
  if (dy.dtype() == DType::float32)
    multiply<float>(dc.data<float>(), mc.data<float>(), dx.data<float>(), dy.numel());
  else
    multiply<double>(dc.data<double>(), mc.data<double>(), dx.data<double>(), dy.numel());
  return dx;
}

}  // namespace lincore
