// The reference kernel (the oracle) and the scalar definition of every activation.
#include <cmath>

#include "kernels/gemm.h"

namespace lincore {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::none:
      return "none";
    case Activation::relu:
      return "relu";
    case Activation::leaky_relu:
      return "leaky_relu";
    case Activation::sigmoid:
      return "sigmoid";
    case Activation::tanh:
      return "tanh";
    case Activation::gelu:
      return "gelu";
    case Activation::gelu_tanh:
      return "gelu_tanh";
  }
  return "?";
}

template <class T>
T activate(T v, Epilogue ep) {
  switch (ep.act) {
    case Activation::none:
      return v;
    // v > 0 ? v : 0 keeps NaN as NaN, like torch.relu.
    case Activation::relu:
      return v < T(0) ? T(0) : v;
    case Activation::leaky_relu:
      return v < T(0) ? v * T(ep.negative_slope) : v;
    case Activation::sigmoid:
      return T(1) / (T(1) + std::exp(-v));
    case Activation::tanh:
      return std::tanh(v);
    case Activation::gelu:
      return T(0.5) * v * (T(1) + std::erf(v * T(0.70710678118654752440)));
    case Activation::gelu_tanh: {
      const T c = T(0.79788456080286535588);  // sqrt(2 / pi)
      return T(0.5) * v * (T(1) + std::tanh(c * (v + T(0.044715) * v * v * v)));
    }
  }
  return v;
}

template <class T>
void gemm_ref(std::int64_t m, std::int64_t n, std::int64_t k, const T* x, std::int64_t ldx,
              const T* w, std::int64_t ldw, const T* b, T* y, std::int64_t ldy, Epilogue ep) {
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = b ? static_cast<double>(b[j]) : 0.0;
      for (std::int64_t p = 0; p < k; ++p) {
        acc += static_cast<double>(x[i * ldx + p]) * static_cast<double>(w[j * ldw + p]);
      }
      y[i * ldy + j] = activate(static_cast<T>(acc), ep);
    }
  }
}

template float activate<float>(float, Epilogue);
template double activate<double>(double, Epilogue);
template void gemm_ref<float>(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                              const float*, std::int64_t, const float*, float*, std::int64_t,
                              Epilogue);
template void gemm_ref<double>(std::int64_t, std::int64_t, std::int64_t, const double*,
                               std::int64_t, const double*, std::int64_t, const double*, double*,
                               std::int64_t, Epilogue);

}  // namespace lincore
