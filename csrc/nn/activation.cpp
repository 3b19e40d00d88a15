#include "nn/activation.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "runtime/thread_pool.h"
#include "tensor/errors.h"

namespace lincore {
namespace {

// Bit-mask selects for ReLU and LeakyReLU: no branch to mispredict on random signs, and the
// compiler vectorizes them. select(c, a, b) is a when c, else b, bit for bit.
template <class T>
using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;

template <class T>
inline T select(bool c, T a, T b) {
  Bits<T> ba, bb;
  std::memcpy(&ba, &a, sizeof a);
  std::memcpy(&bb, &b, sizeof b);
  const Bits<T> mask = Bits<T>(0) - static_cast<Bits<T>>(c);
  const Bits<T> r = (ba & mask) | (bb & ~mask);
  T out;
  std::memcpy(&out, &r, sizeof out);
  return out;
}

// Elements per thread below which a second thread does not pay.
constexpr std::int64_t kParallelGrain = 1 << 15;

// fn(i0, i1) over [0, n) on the thread pool: each element is independent.
template <class F>
void elementwise(std::int64_t n, F fn) {
  parallel_for(n, kParallelGrain, fn);
}

template <class T>
void apply(const Tensor& x, Tensor& y, Epilogue ep) {
  const T* src = x.data<T>();
  T* dst = y.data<T>();
  const T slope = static_cast<T>(ep.negative_slope);
  // v < 0 ? 0 : v keeps NaN (it does not compare below 0), as activate() does.
  elementwise(x.numel(), [=](std::int64_t i0, std::int64_t i1) {
    if (ep.act == Activation::relu) {
      for (std::int64_t i = i0; i < i1; ++i) dst[i] = select(src[i] < T(0), T(0), src[i]);
    } else if (ep.act == Activation::leaky_relu) {
      for (std::int64_t i = i0; i < i1; ++i) dst[i] = select(src[i] < T(0), src[i] * slope, src[i]);
    } else {
      for (std::int64_t i = i0; i < i1; ++i) dst[i] = activate(src[i], ep);
    }
  });
}

template <class T>
void apply_backward(const Tensor& dy, const Tensor& z, Tensor& dz, Epilogue ep) {
  const T* d = dy.data<T>();
  const T* zp = z.data<T>();
  T* out = dz.data<T>();
  const T slope = static_cast<T>(ep.negative_slope);
  // ReLU gives d or 0 (0, not 0 * inf = NaN, as PyTorch's threshold_backward, which also
  // passes d through where z is NaN: only z <= 0 zeroes it); LeakyReLU gives d * (1 or slope).
  elementwise(dz.numel(), [=](std::int64_t i0, std::int64_t i1) {
    if (ep.act == Activation::relu) {
      for (std::int64_t i = i0; i < i1; ++i) out[i] = select(zp[i] <= T(0), T(0), d[i]);
    } else if (ep.act == Activation::leaky_relu) {
      for (std::int64_t i = i0; i < i1; ++i) out[i] = d[i] * select(zp[i] > T(0), T(1), slope);
    } else {
      for (std::int64_t i = i0; i < i1; ++i) out[i] = d[i] * activation_derivative(zp[i], ep);
    }
  });
}

// The same products as apply_backward, with act(z) given instead of z.
template <class T>
void apply_backward_from_output(const Tensor& dy, const Tensor& y, Tensor& dz, Epilogue ep) {
  if (!backward_from_output(ep)) {
    throw std::logic_error("activation_backward_from_output: needs z for this activation");
  }
  const T* d = dy.data<T>();
  const T* yp = y.data<T>();
  T* out = dz.data<T>();
  const T slope = static_cast<T>(ep.negative_slope);
  elementwise(dz.numel(), [=](std::int64_t i0, std::int64_t i1) {
    switch (ep.act) {
      case Activation::relu:
        for (std::int64_t i = i0; i < i1; ++i) out[i] = select(yp[i] <= T(0), T(0), d[i]);
        break;
      case Activation::leaky_relu:
        for (std::int64_t i = i0; i < i1; ++i) out[i] = d[i] * select(yp[i] > T(0), T(1), slope);
        break;
      case Activation::sigmoid:
        for (std::int64_t i = i0; i < i1; ++i) out[i] = d[i] * (yp[i] * (T(1) - yp[i]));
        break;
      default:  // tanh
        for (std::int64_t i = i0; i < i1; ++i) out[i] = d[i] * (T(1) - yp[i] * yp[i]);
        break;
    }
  });
}

}  // namespace

bool backward_from_output(Epilogue ep) {
  switch (ep.act) {
    case Activation::relu:
    case Activation::sigmoid:
    case Activation::tanh:
      return true;
    case Activation::leaky_relu:
      return ep.negative_slope >= 0;  // false for NaN too
    default:
      return false;
  }
}

Tensor activation_backward_from_output(const Tensor& dy, const Tensor& y, Epilogue ep) {
  if (dy.shape() != y.shape() || dy.dtype() != y.dtype() || !is_floating_point(y.dtype())) {
    throw std::invalid_argument("activation_backward: gradient " + shape_str(dy.shape()) +
                                " does not match output " + shape_str(y.shape()));
  }
  if (!has_float_kernel(y.dtype())) throw not_implemented("activation_backward", y.dtype());
  Tensor dc = dy.contiguous(), yc = y.contiguous();
  Tensor dz = Tensor::empty(y.shape(), y.dtype());
  if (y.dtype() == DType::float32)
    apply_backward_from_output<float>(dc, yc, dz, ep);
  else
    apply_backward_from_output<double>(dc, yc, dz, ep);
  return dz;
}

template <class T>
T activation_derivative(T z, Epilogue ep) {
  switch (ep.act) {
    case Activation::none:
      return T(1);
    case Activation::relu:
      return z <= T(0) ? T(0) : T(1);  // NaN passes the gradient, as PyTorch's
    case Activation::leaky_relu:
      return z > T(0) ? T(1) : static_cast<T>(ep.negative_slope);
    case Activation::sigmoid: {
      const T s = activate(z, ep);
      return s * (T(1) - s);
    }
    case Activation::tanh: {
      const T t = std::tanh(z);
      return T(1) - t * t;
    }
    case Activation::gelu: {
      const T cdf = T(0.5) * (T(1) + std::erf(z * T(0.70710678118654752440)));
      const T pdf = std::exp(T(-0.5) * z * z) * T(0.39894228040143267794);  // 1/sqrt(2 pi)
      return cdf + z * pdf;
    }
    case Activation::gelu_tanh: {
      const T c = T(0.79788456080286535588), a = T(0.044715);
      const T inner = c * (z + a * z * z * z);
      const T t = std::tanh(inner);
      return T(0.5) * (T(1) + t) + T(0.5) * z * (T(1) - t * t) * c * (T(1) + T(3) * a * z * z);
    }
  }
  return T(1);
}

template float activation_derivative<float>(float, Epilogue);
template double activation_derivative<double>(double, Epilogue);

Tensor activation_backward(const Tensor& dy, const Tensor& z, Epilogue ep) {
  if (dy.shape() != z.shape() || dy.dtype() != z.dtype() || !is_floating_point(z.dtype())) {
    throw std::invalid_argument("activation_backward: gradient " + shape_str(dy.shape()) +
                                " does not match input " + shape_str(z.shape()));
  }
  if (!has_float_kernel(z.dtype())) throw not_implemented("activation_backward", z.dtype());
  Tensor dc = dy.contiguous(), zc = z.contiguous();
  Tensor dz = Tensor::empty(z.shape(), z.dtype());
  if (z.dtype() == DType::float32)
    apply_backward<float>(dc, zc, dz, ep);
  else
    apply_backward<double>(dc, zc, dz, ep);
  return dz;
}

Tensor activation(const Tensor& x, Epilogue ep) {
  if (!is_floating_point(x.dtype())) {
    throw type_error(std::string("\"") + activation_name(ep.act) + "\" not implemented for '" +
                     dtype_short_name(x.dtype()) + "'");
  }
  if (x.dtype() == DType::bfloat16) {  // in fp32, rounded once (PyTorch's bf16 rule)
    return activation(x.to(DType::float32), ep).to(DType::bfloat16);
  }
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  if (x.dtype() == DType::float32)
    apply<float>(xc, y, ep);
  else
    apply<double>(xc, y, ep);
  return y;
}

}  // namespace lincore
