#include "nn/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "runtime/thread_pool.h"
#include "tensor/errors.h"

namespace lincore {
namespace {

// Lines up to this long keep their exps on the stack in softmax_line.
constexpr std::int64_t kStackLine = 256;

// Room for a longer line's exps, per thread, kept across calls.
double* long_line_scratch(std::int64_t n) {
  thread_local std::vector<double> buffer;
  if (buffer.size() < static_cast<std::size_t>(n)) buffer.resize(static_cast<std::size_t>(n));
  return buffer.data();
}

// Elements per thread below which a second thread does not pay (as in activation.cpp).
constexpr std::int64_t kParallelGrain = 1 << 15;

// x viewed as (outer, n, inner) around dim: a line is the n elements at one (outer, inner)
// position, `inner` apart. Lines are independent, so the result does not depend on threads.
struct Lines {
  std::int64_t outer = 1, n = 1, inner = 1;
};

Lines lines_of(const Tensor& x, std::int64_t dim) {
  Lines l;
  const std::int64_t d = x.wrap_dim(dim);  // IndexError in PyTorch's words
  if (x.dim() == 0) return l;              // a scalar is one line of one element
  for (std::int64_t i = 0; i < d; ++i) l.outer *= x.shape()[i];
  l.n = x.shape()[d];
  for (std::int64_t i = d + 1; i < x.dim(); ++i) l.inner *= x.shape()[i];
  return l;
}

// fn(base) for the first element of every line, on the thread pool.
template <class F>
void for_lines(const Lines& l, F fn) {
  const std::int64_t count = l.outer * l.inner;
  const std::int64_t grain =
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(1, l.n));
  parallel_for(count, grain, [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) fn((i / l.inner) * l.n * l.inner + i % l.inner);
  });
}

template <class T>
void forward(const T* x, T* y, const Lines& l, bool log) {
  const std::int64_t n = l.n, s = l.inner;
  for_lines(l, [=](std::int64_t b) { softmax_line(x + b, y + b, n, s, log); });
}

// softmax: dx = y (dy - sum(dy y)); log_softmax: dx = dy - exp(y) sum(dy).
template <class T>
void backward(const T* dy, const T* y, T* dx, const Lines& l, bool log) {
  const std::int64_t n = l.n, s = l.inner;
  for_lines(l, [=](std::int64_t b) {
    double dot = 0;
    for (std::int64_t j = 0; j < n; ++j) {
      const std::int64_t k = b + j * s;
      dot += log ? double(dy[k]) : double(dy[k]) * double(y[k]);
    }
    for (std::int64_t j = 0; j < n; ++j) {
      const std::int64_t k = b + j * s;
      dx[k] = log ? T(double(dy[k]) - std::exp(double(y[k])) * dot)
                  : T(double(y[k]) * (double(dy[k]) - dot));
    }
  });
}

const char* kernel_name(bool log) {
  return log ? "log_softmax_lastdim_kernel_impl" : "softmax_lastdim_kernel_impl";
}

}  // namespace

template <class T>
void softmax_line(const T* x, T* y, std::int64_t n, std::int64_t s, bool log) {
  // The max skips NaN (it compares false); a NaN then poisons the sum, as in PyTorch.
  double mx = -std::numeric_limits<double>::infinity();
  for (std::int64_t j = 0; j < n; ++j) mx = x[j * s] > mx ? x[j * s] : mx;
  double sum = 0;
  if (log) {
    for (std::int64_t j = 0; j < n; ++j) sum += std::exp(double(x[j * s]) - mx);
    const double lse = std::log(sum);
    for (std::int64_t j = 0; j < n; ++j) y[j * s] = T((double(x[j * s]) - mx) - lse);
    return;
  }
  // Each exp once, kept in double for the scaling: the same values as computing it twice, and
  // glibc's exp (~5 ns) is most of a narrow softmax's time (1024 rows of 5: 52 -> 28 us). Short
  // lines keep them on the stack (a thread_local's lookup cost a quarter of that).
  double local[kStackLine];
  double* e = n > kStackLine ? long_line_scratch(n) : local;
  for (std::int64_t j = 0; j < n; ++j) sum += e[j] = std::exp(double(x[j * s]) - mx);
  const double inv = 1.0 / sum;
  for (std::int64_t j = 0; j < n; ++j) y[j * s] = T(e[j] * inv);
}

template void softmax_line<float>(const float*, float*, std::int64_t, std::int64_t, bool);
template void softmax_line<double>(const double*, double*, std::int64_t, std::int64_t, bool);

Tensor softmax(const Tensor& x, std::int64_t dim, bool log) {
  if (!is_floating_point(x.dtype())) {
    throw not_implemented_error(std::string("\"") + kernel_name(log) + "\" not implemented for '" +
                                dtype_short_name(x.dtype()) + "'");
  }
  if (x.dtype() == DType::bfloat16) {  // in fp32, rounded once (PyTorch's bf16 rule)
    return softmax(x.to(DType::float32), dim, log).to(DType::bfloat16);
  }
  const Lines l = lines_of(x, dim);
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  if (x.numel() == 0) return y;
  if (x.dtype() == DType::float32)
    forward<float>(xc.data<float>(), y.data<float>(), l, log);
  else
    forward<double>(xc.data<double>(), y.data<double>(), l, log);
  return y;
}

Tensor softmax_backward(const Tensor& dy, const Tensor& y, std::int64_t dim, bool log) {
  if (dy.shape() != y.shape() || dy.dtype() != y.dtype() || !is_floating_point(y.dtype())) {
    throw std::invalid_argument(std::string(log ? "log_softmax" : "softmax") +
                                "_backward: gradient " + shape_str(dy.shape()) +
                                " does not match output " + shape_str(y.shape()));
  }
  if (!has_float_kernel(y.dtype())) throw not_implemented("softmax_backward", y.dtype());
  const Lines l = lines_of(y, dim);
  Tensor dc = dy.contiguous(), yc = y.contiguous();
  Tensor dx = Tensor::empty(y.shape(), y.dtype());
  if (y.numel() == 0) return dx;
  if (y.dtype() == DType::float32)
    backward<float>(dc.data<float>(), yc.data<float>(), dx.data<float>(), l, log);
  else
    backward<double>(dc.data<double>(), yc.data<double>(), dx.data<double>(), l, log);
  return dx;
}

}  // namespace lincore
