#include "nn/layer_norm.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "runtime/thread_pool.h"
#include "tensor/errors.h"

namespace lincore {
namespace {

// Elements per thread below which a second thread does not pay (as in activation.cpp).
constexpr std::int64_t kParallelGrain = 1 << 15;

std::string dims_str(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// The number of normalized rows, after PyTorch's checks of x, weight and bias.
std::int64_t check(const Tensor& x, const Shape& ns, const Tensor* weight, const Tensor* bias) {
  for (const Tensor* t : {weight, bias}) {
    if (t && t->shape() != ns) {
      throw std::runtime_error(std::string("Expected ") + (t == weight ? "weight" : "bias") +
                               " to be of same shape as normalized_shape, but got " +
                               (t == weight ? "weight" : "bias") + " of shape " +
                               dims_str(t->shape()) + " and normalized_shape = " + dims_str(ns));
    }
  }
  const std::int64_t nd = static_cast<std::int64_t>(ns.size());
  bool fits = x.dim() >= nd && nd >= 1;
  for (std::int64_t i = 0; fits && i < nd; ++i) fits = x.shape()[x.dim() - nd + i] == ns[i];
  if (!fits) {
    std::string star = "[*";
    for (std::int64_t v : ns) star += ", " + std::to_string(v);
    throw std::runtime_error("Given normalized_shape=" + dims_str(ns) +
                             ", expected input with shape " + star + "], but got input of size" +
                             dims_str(x.shape()));
  }
  if (!is_floating_point(x.dtype()) || (weight && weight->dtype() != x.dtype()) ||
      (bias && bias->dtype() != x.dtype())) {
    throw std::runtime_error(is_floating_point(x.dtype())
                                 ? "mixed dtype (CPU): all inputs must share same datatype."
                                 : std::string("\"LayerNormKernelImpl\" not implemented for '") +
                                       dtype_short_name(x.dtype()) + "'");
  }
  std::int64_t rows = 1;
  for (std::int64_t i = 0; i < x.dim() - nd; ++i) rows *= x.shape()[i];
  return rows;
}

template <class F>
void for_rows(std::int64_t rows, std::int64_t n, F fn) {
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(1, n));
  parallel_for(rows, grain, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) fn(r);
  });
}

template <class T>
void forward(const T* x, const T* w, const T* b, T* y, double* stats, std::int64_t rows,
             std::int64_t n, double eps) {
  for_rows(rows, n, [=](std::int64_t r) {
    layer_norm_row(x + r * n, w, b, y + r * n, n, eps, stats + 2 * r);
  });
}

// Per row, with z = (x - mean) rstd and a = dy w: dx = rstd (a - mean(a) - z mean(a z)).
template <class T>
void backward_dx(const T* dy, const T* x, const double* stats, const T* w, T* dx, std::int64_t rows,
                 std::int64_t n) {
  for_rows(rows, n, [=](std::int64_t r) {
    const T *dyr = dy + r * n, *xr = x + r * n;
    const double mean = stats[2 * r], rstd = stats[2 * r + 1];
    double sa = 0, saz = 0;
    for (std::int64_t j = 0; j < n; ++j) {
      const double a = w ? double(dyr[j]) * double(w[j]) : double(dyr[j]);
      sa += a;
      saz += a * ((xr[j] - mean) * rstd);
    }
    sa /= double(n);
    saz /= double(n);
    for (std::int64_t j = 0; j < n; ++j) {
      const double a = w ? double(dyr[j]) * double(w[j]) : double(dyr[j]);
      dx[r * n + j] = T(rstd * (a - sa - (xr[j] - mean) * rstd * saz));
    }
  });
}

// dweight_j = sum over rows of dy z, dbias_j = sum of dy: each column sums its rows in order,
// the columns split over the threads (so the sums do not depend on the thread count).
template <class T>
void backward_params(const T* dy, const T* x, const double* stats, T* dw, T* db, std::int64_t rows,
                     std::int64_t n) {
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(1, rows));
  parallel_for(n, grain, [=](std::int64_t j0, std::int64_t j1) {
    std::vector<double> sw(static_cast<std::size_t>(j1 - j0)), sb(sw.size());
    for (std::int64_t r = 0; r < rows; ++r) {
      const double mean = stats[2 * r], rstd = stats[2 * r + 1];
      for (std::int64_t j = j0; j < j1; ++j) {
        const double g = dy[r * n + j];
        sw[j - j0] += g * ((x[r * n + j] - mean) * rstd);
        sb[j - j0] += g;
      }
    }
    for (std::int64_t j = j0; j < j1; ++j) {
      if (dw) dw[j] = T(sw[j - j0]);
      if (db) db[j] = T(sb[j - j0]);
    }
  });
}

template <class T>
const T* data_or_null(const Tensor& t) {
  return t.numel() ? t.data<T>() : nullptr;
}

}  // namespace

template <class T>
void layer_norm_row(const T* x, const T* w, const T* b, T* y, std::int64_t n, double eps,
                    double* stats) {
  double sum = 0;
  for (std::int64_t j = 0; j < n; ++j) sum += x[j];
  const double mean = sum / double(n);
  double sq = 0;
  for (std::int64_t j = 0; j < n; ++j) sq += (x[j] - mean) * (x[j] - mean);
  const double rstd = 1.0 / std::sqrt(sq / double(n) + eps);
  for (std::int64_t j = 0; j < n; ++j) {
    double v = (x[j] - mean) * rstd;
    if (w) v *= double(w[j]);
    if (b) v += double(b[j]);
    y[j] = T(v);
  }
  stats[0] = mean;
  stats[1] = rstd;
}

template void layer_norm_row<float>(const float*, const float*, const float*, float*, std::int64_t,
                                    double, double*);
template void layer_norm_row<double>(const double*, const double*, const double*, double*,
                                     std::int64_t, double, double*);

LayerNormOut layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor* weight,
                        const Tensor* bias, double eps) {
  const std::int64_t rows = check(x, normalized_shape, weight, bias);
  if (x.dtype() == DType::bfloat16) {  // in fp32, rounded once (PyTorch's bf16 rule)
    std::optional<Tensor> w32, b32;
    if (weight) w32 = weight->to(DType::float32);
    if (bias) b32 = bias->to(DType::float32);
    LayerNormOut wide = layer_norm(x.to(DType::float32), normalized_shape, w32 ? &*w32 : nullptr,
                                   b32 ? &*b32 : nullptr, eps);
    return LayerNormOut{wide.y.to(DType::bfloat16), wide.stats};
  }
  const std::int64_t n = checked_numel(normalized_shape);
  Tensor xc = x.contiguous();
  std::optional<Tensor> wc, bc;
  if (weight) wc = weight->contiguous();
  if (bias) bc = bias->contiguous();
  LayerNormOut out{Tensor::empty(x.shape(), x.dtype()), Tensor::empty({rows, 2}, DType::float64)};
  if (x.numel() == 0) return out;
  if (x.dtype() == DType::float32) {
    forward<float>(xc.data<float>(), wc ? wc->data<float>() : nullptr,
                   bc ? bc->data<float>() : nullptr, out.y.data<float>(), out.stats.data<double>(),
                   rows, n, eps);
  } else {
    forward<double>(xc.data<double>(), wc ? wc->data<double>() : nullptr,
                    bc ? bc->data<double>() : nullptr, out.y.data<double>(),
                    out.stats.data<double>(), rows, n, eps);
  }
  return out;
}

LayerNormGrads layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& stats,
                                   const Shape& normalized_shape, const Tensor* weight,
                                   bool need_dx, bool need_dweight, bool need_dbias) {
  if (dy.shape() != x.shape() || dy.dtype() != x.dtype()) {
    throw std::invalid_argument("layer_norm_backward: gradient " + shape_str(dy.shape()) +
                                " does not match input " + shape_str(x.shape()));
  }
  const std::int64_t rows = check(x, normalized_shape, weight, nullptr);
  if (!has_float_kernel(x.dtype())) throw not_implemented("layer_norm_backward", x.dtype());
  const std::int64_t n = checked_numel(normalized_shape);
  if (stats.dtype() != DType::float64 || stats.shape() != Shape{rows, 2}) {
    throw std::invalid_argument("layer_norm_backward: stats of shape " + shape_str(stats.shape()) +
                                ", expected [" + std::to_string(rows) + ", 2]");
  }
  Tensor dc = dy.contiguous(), xc = x.contiguous(), sc = stats.contiguous();
  std::optional<Tensor> wc;
  if (weight) wc = weight->contiguous();
  LayerNormGrads g;
  const DType dt = x.dtype();
  if (need_dx) g.dx = Tensor::empty(x.shape(), dt);
  if (need_dweight) g.dweight = Tensor::empty(normalized_shape, dt);
  if (need_dbias) g.dbias = Tensor::empty(normalized_shape, dt);
  const auto run = [&](auto tag) {
    using T = decltype(tag);
    const double* s = data_or_null<double>(sc);
    if (g.dx && x.numel())
      backward_dx<T>(dc.data<T>(), xc.data<T>(), s, wc ? data_or_null<T>(*wc) : nullptr,
                     g.dx->data<T>(), rows, n);
    if ((g.dweight || g.dbias) && n)
      backward_params<T>(data_or_null<T>(dc), data_or_null<T>(xc), s,
                         g.dweight ? g.dweight->data<T>() : nullptr,
                         g.dbias ? g.dbias->data<T>() : nullptr, rows, n);
  };
  if (dt == DType::float32)
    run(float{});
  else
    run(double{});
  return g;
}

}  // namespace lincore
