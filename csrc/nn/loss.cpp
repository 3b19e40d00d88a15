#include "nn/loss.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/thread_pool.h"
#include "tensor/errors.h"

namespace lincore {
namespace {

// Four floats in a GCC vector: an SSE2 register on any x86-64, NEON or scalar code elsewhere.
// Floating point reductions do not auto-vectorize (they would reorder the sum), so the row loops
// below are written in vectors, in a fixed order: results depend on c only.
typedef float F4 __attribute__((vector_size(16)));
typedef std::int32_t I4 __attribute__((vector_size(16)));
typedef double D2 __attribute__((vector_size(16)));

inline F4 splat(float v) { return F4{v, v, v, v}; }
inline F4 load4(const float* p) {
  F4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(float* p, F4 v) { std::memcpy(p, &v, sizeof v); }

// exp(x) for x <= 0 (or NaN), within 2 ulp: x = n ln2 + r with |r| <= ln2/2 (Cody-Waite, ln2 in
// two parts), e^r by its Taylor polynomial to r^7 (truncation < 0.05 ulp), times 2^n built in
// the exponent bits, in two factors so that results in the subnormal range round once. x < -104
// gives 0 (e^-104 is below half the smallest subnormal); NaN gives NaN.
inline F4 exp_nonpositive(F4 x) {
  const I4 nan = x != x;
  F4 v = x < splat(-104.0f) ? splat(-104.0f) : x;
  v = v > splat(0.0f) ? splat(0.0f) : v;
  // n = round(v / ln2): adding and subtracting 1.5 * 2^23 rounds to an integer (|v / ln2| <
  // 2^22) without a rounding instruction, which SSE2 lacks.
  const F4 fn = (v * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const F4 r = (v - fn * 0.693145751953125f) - fn * 1.428606765330187045e-06f;
  F4 p = splat(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const I4 n = __builtin_convertvector(fn, I4);          // in [-150, 0]
  const I4 n1 = n / 2, n2 = n - n1;                      // each >= -75: normal scales
  const F4 s1 = reinterpret_cast<F4>((n1 + 127) << 23);  // the bits of 2^n1
  const F4 s2 = reinterpret_cast<F4>((n2 + 127) << 23);
  const F4 e = p * s1 * s2;
  return nan ? x : e;
}

inline float exp_nonpositive(float x) { return exp_nonpositive(splat(x))[0]; }

// e_j = exp(z_j - max) for a row (float32: the vectorized polynomial; the sum in double, in a
// fixed order); returns the max, s the sum. NaN is skipped by the max and poisons the sum, as in
// PyTorch.
float exps(const float* z, std::int64_t c, float* e, double& s) {
  const std::int64_t c4 = c / 4 * 4;
  float mx = -std::numeric_limits<float>::infinity();
  F4 m4 = splat(mx);
  for (std::int64_t j = 0; j < c4; j += 4) {
    const F4 v = load4(z + j);
    m4 = v > m4 ? v : m4;
  }
  for (int l = 0; l < 4; ++l) mx = m4[l] > mx ? m4[l] : mx;
  for (std::int64_t j = c4; j < c; ++j) mx = z[j] > mx ? z[j] : mx;
  D2 s_lo = {0, 0}, s_hi = s_lo;
  for (std::int64_t j = 0; j < c4; j += 4) {
    const F4 ej = exp_nonpositive(load4(z + j) - mx);
    store4(e + j, ej);
    s_lo += D2{ej[0], ej[1]};
    s_hi += D2{ej[2], ej[3]};
  }
  s = (s_lo[0] + s_lo[1]) + (s_hi[0] + s_hi[1]);
  for (std::int64_t j = c4; j < c; ++j) {
    e[j] = exp_nonpositive(z[j] - mx);
    s += static_cast<double>(e[j]);
  }
  return mx;
}

double exps(const double* z, std::int64_t c, double* e, double& s) {
  double mx = -std::numeric_limits<double>::infinity();
  for (std::int64_t j = 0; j < c; ++j) mx = z[j] > mx ? z[j] : mx;
  s = 0;
  for (std::int64_t j = 0; j < c; ++j) {
    e[j] = std::exp(z[j] - mx);
    s += e[j];
  }
  return mx;
}

// One row: the loss (in double) and, when grad is not null, softmax - onehot times scale.
// e_j = exp(z_j - max) is computed once: the sum (in double), then p_j = e_j / sum. `e` is where
// the e_j go: grad, or a scratch row.
double row(const float* z, std::int64_t c, std::int64_t target, float* e, bool grad, double scale) {
  double s;
  const float mx = exps(z, c, e, s);
  const double loss = std::log(s) - static_cast<double>(z[target] - mx);
  if (grad) {
    const double inv = 1.0 / s;
    const float factor = static_cast<float>(inv * scale);
    const double e_target = static_cast<double>(e[target]);
    for (std::int64_t j = 0; j < c; ++j) e[j] *= factor;
    e[target] = static_cast<float>((e_target * inv - 1.0) * scale);
  }
  return loss;
}

double row(const double* z, std::int64_t c, std::int64_t target, double* e, bool grad,
           double scale) {
  double s;
  const double mx = exps(z, c, e, s);
  const double loss = std::log(s) - (z[target] - mx);
  if (grad) {
    const double inv = 1.0 / s, e_target = e[target];
    for (std::int64_t j = 0; j < c; ++j) e[j] = e[j] * inv * scale;
    e[target] = (e_target * inv - 1.0) * scale;
  }
  return loss;
}

// Rows are independent: threads take ranges of them; the reduction adds the per-row losses in
// row order afterwards, so the result does not depend on the thread count.
template <class T>
void rows(const Tensor& logits, const std::int64_t* t, Reduction reduction, T* losses, T* grad,
          double& total) {
  const std::int64_t n = logits.size(0), c = logits.size(1);
  const T* z = logits.data<T>();
  const double scale = reduction == Reduction::mean ? 1.0 / static_cast<double>(n) : 1.0;
  std::vector<double> per_row(static_cast<std::size_t>(n));
  double* out = per_row.data();
  const std::int64_t grain = std::max<std::int64_t>(1, (1 << 15) / std::max<std::int64_t>(c, 1));
  parallel_for(n, grain, [=](std::int64_t i0, std::int64_t i1) {
    std::vector<T> scratch(grad ? 0 : static_cast<std::size_t>(c));
    for (std::int64_t i = i0; i < i1; ++i) {
      T* e = grad ? grad + i * c : scratch.data();
      out[i] = row(z + i * c, c, t[i], e, grad != nullptr, scale);
      if (losses) losses[i] = static_cast<T>(out[i]);
    }
  });
  total = 0;
  for (double v : per_row) total += v;
}

// The general case, one row (sample n, position k) at a time: the row's logits gathered from
// stride s (the classes of a K-dimensional input are s apart), their exps as in the plain case,
// then log p_j = z_j - max - log(sum exp(z_j - max)), the loss and the gradient in double
// (loss.h), each result rounded once.
template <class T>
struct General {
  const T* z;
  const std::int64_t* ti;  // class indices, or null
  const T* q;              // probabilities, or null
  const T* w;              // class weights, or null
  std::int64_t n, c, s, ignore_index;
  double eps;
  T* losses;  // per row (reduction none), or null
  T* grad;    // d/dlogits, or null
  T* tgrad;   // d/dtarget, or null
  double* row_loss;
  double* row_denom;

  void rows(std::int64_t r0, std::int64_t r1, double scale) const {
    // zt: the row's logits, contiguous; e: exp(z_j - max) (exps above: float32's vectorized
    // polynomial, float64's std::exp), then p_j = e_j / sum and log p_j = z_j - lse in double.
    std::vector<T> zt(static_cast<std::size_t>(c)), e(zt.size());
    const double eps_c = c > 0 ? eps / static_cast<double>(c) : 0.0;
    double wsum = 0;
    for (std::int64_t j = 0; j < c; ++j) wsum += w ? static_cast<double>(w[j]) : 1.0;
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t i = r / s, k = r % s, base = i * c * s + k;
      const T* zr = z + base;
      if (s != 1) {
        for (std::int64_t j = 0; j < c; ++j) zt[j] = z[base + j * s];
        zr = zt.data();
      }
      double sum;
      const double mx = static_cast<double>(exps(zr, c, e.data(), sum));
      const double lse = mx + std::log(sum), inv = 1.0 / sum;
      double loss = 0, denom = 1, a = 0, wt = 0;  // grad_j = a * p_j - b_j
      const std::int64_t t = ti ? ti[i * s + k] : -1;
      const bool ignored = ti && t == ignore_index;
      if (ignored) {
        denom = 0;
      } else if (ti) {
        wt = w ? static_cast<double>(w[t]) : 1.0;
        double smooth = 0;
        if (eps != 0) {
          for (std::int64_t j = 0; j < c; ++j) {
            smooth -= (w ? static_cast<double>(w[j]) : 1.0) * (static_cast<double>(zr[j]) - lse);
          }
        }
        loss = -(1 - eps) * wt * (static_cast<double>(zr[t]) - lse) + eps_c * smooth;
        denom = wt;
        a = (1 - eps) * wt + eps_c * wsum;
      } else {
        for (std::int64_t j = 0; j < c; ++j) {
          const double wj = w ? static_cast<double>(w[j]) : 1.0;
          const double qj = (1 - eps) * static_cast<double>(q[base + j * s]) + eps_c;
          loss -= wj * qj * (static_cast<double>(zr[j]) - lse);
          a += wj * qj;
        }
      }
      row_loss[r] = loss;
      row_denom[r] = denom;
      if (losses) losses[r] = static_cast<T>(loss);
      if (grad) {
        T* g = grad + base;
        const double ap = a * inv * scale;  // a * p_j * scale = ap * e_j
        if (ignored) {
          for (std::int64_t j = 0; j < c; ++j) g[j * s] = T(0);
        } else if (ti) {
          // b_j = eps / c * w_j, and (1 - eps) * w_t more at the target
          const double bs = eps_c * scale;
          if (w) {
            for (std::int64_t j = 0; j < c; ++j) {
              g[j * s] =
                  static_cast<T>(ap * static_cast<double>(e[j]) - bs * static_cast<double>(w[j]));
            }
          } else {
            for (std::int64_t j = 0; j < c; ++j) {
              g[j * s] = static_cast<T>(ap * static_cast<double>(e[j]) - bs);
            }
          }
          const double wt_j = w ? static_cast<double>(w[t]) : 1.0;
          g[t * s] =
              static_cast<T>(ap * static_cast<double>(e[t]) - bs * wt_j - (1 - eps) * wt * scale);
        } else {
          for (std::int64_t j = 0; j < c; ++j) {
            const double wj = w ? static_cast<double>(w[j]) : 1.0;
            const double qj = (1 - eps) * static_cast<double>(q[base + j * s]) + eps_c;
            g[j * s] = static_cast<T>(ap * static_cast<double>(e[j]) - wj * qj * scale);
          }
        }
      }
      if (tgrad) {
        for (std::int64_t j = 0; j < c; ++j) {
          const double wj = w ? static_cast<double>(w[j]) : 1.0;
          tgrad[base + j * s] =
              static_cast<T>(-(1 - eps) * wj * (static_cast<double>(zr[j]) - lse) * scale);
        }
      }
    }
  }
};

template <class T>
void general(const Tensor& z, const Tensor& target, const Tensor* weight, Reduction reduction,
             const CrossEntropyOptions& o, bool need_grad, CrossEntropy& out, double& total) {
  const std::int64_t n = z.size(0), c = z.size(1), s = z.dim() == 3 ? z.size(2) : 1;
  const std::int64_t rows_n = n * s;
  std::vector<double> row_loss(static_cast<std::size_t>(rows_n)), row_denom(row_loss.size());
  const bool indices = target.dtype() == DType::int64;
  General<T> g{z.data<T>(),
               indices ? target.data<std::int64_t>() : nullptr,
               indices ? nullptr : target.data<T>(),
               weight ? weight->data<T>() : nullptr,
               n,
               c,
               s,
               o.ignore_index,
               o.label_smoothing,
               reduction == Reduction::none ? out.loss.data<T>() : nullptr,
               need_grad ? out.grad.data<T>() : nullptr,
               o.need_target_grad && !indices ? out.target_grad.data<T>() : nullptr,
               row_loss.data(),
               row_denom.data()};
  // The mean's denominator is needed before the gradient is scaled: a first pass finds it
  // (weights of the targets not ignored, or the row count for probabilities).
  double denom = static_cast<double>(rows_n);
  if (indices) {
    denom = 0;
    for (std::int64_t r = 0; r < rows_n; ++r) {
      const std::int64_t t = g.ti[r];
      if (t != o.ignore_index) denom += g.w ? static_cast<double>(g.w[t]) : 1.0;
    }
  }
  const double scale = reduction == Reduction::mean ? 1.0 / denom : 1.0;
  const std::int64_t grain = std::max<std::int64_t>(1, (1 << 13) / std::max<std::int64_t>(c, 1));
  parallel_for(rows_n, grain, [&](std::int64_t r0, std::int64_t r1) { g.rows(r0, r1, scale); });
  total = 0;
  for (double v : row_loss) total += v;
  if (reduction == Reduction::mean) total /= denom;  // 0 / 0 = NaN, as in PyTorch
}

}  // namespace

// bfloat16 logits: in fp32 (probabilities and weight of the logits' dtype widened with them, or
// refused as a mismatch when they are not bf16), the results rounded once.
CrossEntropy cross_entropy_bf16(const Tensor& logits, const Tensor& target, Reduction reduction,
                                bool need_grad, const CrossEntropyOptions& o) {
  const auto widen = [&](const Tensor& t) {
    if (t.dtype() != logits.dtype()) {
      throw std::invalid_argument(
          "cross_entropy: expected the target probabilities and weight "
          "in the logits' dtype bfloat16, got " +
          std::string(dtype_name(t.dtype())));
    }
    return t.to(DType::float32);
  };
  const Tensor t32 = target.dtype() == DType::int64 ? target : widen(target);
  std::optional<Tensor> w32;
  if (o.weight) w32 = widen(*o.weight);
  CrossEntropyOptions o32 = o;
  o32.weight = w32 ? &*w32 : nullptr;
  CrossEntropy out = cross_entropy(logits.to(DType::float32), t32, reduction, need_grad, o32);
  out.loss = out.loss.to(DType::bfloat16);
  if (need_grad) out.grad = out.grad.to(DType::bfloat16);
  if (o.need_target_grad && target.dtype() != DType::int64) {
    out.target_grad = out.target_grad.to(DType::bfloat16);
  }
  return out;
}

CrossEntropy cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction,
                           bool need_grad, const CrossEntropyOptions& o) {
  if (logits.dim() < 2 || logits.dim() > 3 || !is_floating_point(logits.dtype())) {
    throw std::invalid_argument("cross_entropy: expected 2-D or 3-D floating point logits, got " +
                                std::string(dtype_name(logits.dtype())) + " " +
                                shape_str(logits.shape()));
  }
  if (logits.dtype() == DType::bfloat16)
    return cross_entropy_bf16(logits, target, reduction, need_grad, o);
  const std::int64_t n = logits.size(0), c = logits.size(1);
  const std::int64_t s = logits.dim() == 3 ? logits.size(2) : 1;
  const bool indices = target.dtype() == DType::int64;
  std::vector<std::int64_t> row_shape{n};
  if (logits.dim() == 3) row_shape.push_back(s);
  if (indices ? target.shape() != row_shape
              : (target.shape() != logits.shape() || target.dtype() != logits.dtype())) {
    throw std::invalid_argument("cross_entropy: expected int64 class indices of shape " +
                                shape_str(row_shape) + " or probabilities of shape " +
                                shape_str(logits.shape()) + ", got " + dtype_name(target.dtype()) +
                                " " + shape_str(target.shape()));
  }
  const Tensor* weight = o.weight;
  if (weight &&
      (weight->shape() != std::vector<std::int64_t>{c} || weight->dtype() != logits.dtype())) {
    throw std::invalid_argument("cross_entropy: expected a weight of " + std::to_string(c) +
                                " elements in the logits' dtype, got " +
                                dtype_name(weight->dtype()) + " " + shape_str(weight->shape()));
  }
  if (!(o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0)) {
    throw std::invalid_argument("label_smoothing must be between 0.0 and 1.0. Got: " +
                                std::to_string(o.label_smoothing));
  }
  Tensor z = logits.contiguous(), tc = target.contiguous();
  Tensor wc = weight ? weight->contiguous() : Tensor();
  bool plain = logits.dim() == 2 && indices && !weight && o.label_smoothing == 0.0;
  if (indices) {
    const std::int64_t* t = tc.data<std::int64_t>();
    for (std::int64_t r = 0, rows_n = n * s; r < rows_n; ++r) {
      if (t[r] == o.ignore_index) {
        plain = false;
      } else if (t[r] < 0 || t[r] >= c) {
        throw std::out_of_range("Target " + std::to_string(t[r]) + " is out of bounds.");
      }
    }
  }
  CrossEntropy out;
  out.loss = reduction == Reduction::none ? Tensor::empty(row_shape, z.dtype())
                                          : Tensor::empty({}, z.dtype());
  if (need_grad) out.grad = Tensor::empty(z.shape(), z.dtype());
  if (o.need_target_grad && !indices) out.target_grad = Tensor::empty(z.shape(), z.dtype());
  double total = 0;
  if (plain) {
    const std::int64_t* t = tc.data<std::int64_t>();
    if (z.dtype() == DType::float32) {
      rows<float>(z, t, reduction, reduction == Reduction::none ? out.loss.data<float>() : nullptr,
                  need_grad ? out.grad.data<float>() : nullptr, total);
    } else {
      rows<double>(z, t, reduction,
                   reduction == Reduction::none ? out.loss.data<double>() : nullptr,
                   need_grad ? out.grad.data<double>() : nullptr, total);
    }
    if (reduction == Reduction::mean) {
      total = n > 0 ? total / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
    }
  } else if (z.dtype() == DType::float32) {
    general<float>(z, tc, weight ? &wc : nullptr, reduction, o, need_grad, out, total);
  } else {
    general<double>(z, tc, weight ? &wc : nullptr, reduction, o, need_grad, out, total);
  }
  if (reduction != Reduction::none) out.loss.fill(total);
  return out;
}

}  // namespace lincore
