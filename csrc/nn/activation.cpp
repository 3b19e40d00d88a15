#include "nn/activation.h"

#include <string>

#include "tensor/errors.h"

namespace lincore {
namespace {

template <class T>
void apply(const Tensor& x, Tensor& y, Epilogue ep) {
  const T* src = x.data<T>();
  T* dst = y.data<T>();
  for (std::int64_t i = 0; i < x.numel(); ++i) dst[i] = activate(src[i], ep);
}

}  // namespace

Tensor activation(const Tensor& x, Epilogue ep) {
  if (!is_floating_point(x.dtype())) {
    throw type_error(std::string("\"") + activation_name(ep.act) + "\" not implemented for '" +
                     dtype_short_name(x.dtype()) + "'");
  }
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  if (x.dtype() == DType::float32) apply<float>(xc, y, ep); else apply<double>(xc, y, ep);
  return y;
}

}  // namespace lincore
