#include "nn/sgd.h"

#include <stdexcept>
#include <string>

#include "runtime/thread_pool.h"

namespace lincore {
namespace {

// Elements per thread below which a second thread does not pay (about 0.1 MiB of each array).
constexpr std::int64_t kParallelGrain = 1 << 15;

template <class T>
void step(T* p, const T* grad, T* buf, std::int64_t n, bool first, const SgdOptions& o) {
  const T lr = static_cast<T>(o.lr), wd = static_cast<T>(o.weight_decay);
  const T mom = static_cast<T>(o.momentum), keep = static_cast<T>(1 - o.dampening);
  const bool maximize = o.maximize, decay = o.weight_decay != 0, momentum = o.momentum != 0;
  const bool nesterov = o.nesterov;
  // Memory-bound: each thread updates its own contiguous range (more cores, more bandwidth).
  parallel_for(n, kParallelGrain, [=](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) {
      T g = maximize ? -grad[i] : grad[i];
      if (decay) g = p[i] * wd + g;
      if (momentum) {
        const T b = first ? g : buf[i] * mom + g * keep;
        buf[i] = b;
        g = nesterov ? b * mom + g : b;
      }
      p[i] = g * -lr + p[i];
    }
  });
}

void check(const Tensor& t, const Tensor& p, const char* what) {
  if (t.shape() != p.shape() || t.dtype() != p.dtype() || !t.is_contiguous()) {
    throw std::invalid_argument(std::string("sgd_step: ") + what + " must be a contiguous " +
                                dtype_name(p.dtype()) + " tensor of shape " +
                                shape_str(p.shape()) + ", got " + dtype_name(t.dtype()) + " " +
                                shape_str(t.shape()));
  }
}

}  // namespace

void sgd_step(Tensor& p, const Tensor& grad, Tensor* buf, bool first, const SgdOptions& o) {
  if (!is_floating_point(p.dtype()) || !p.is_contiguous()) {
    throw std::invalid_argument("sgd_step: the parameter must be a contiguous floating point "
                                "tensor");
  }
  p.check_writable("sgd_step");
  Tensor g = grad.contiguous();
  check(g, p, "grad");
  if (o.momentum != 0) {
    if (!buf) throw std::invalid_argument("sgd_step: momentum needs a buffer");
    check(*buf, p, "the momentum buffer");
  }
  if (p.dtype() == DType::float32) {
    step<float>(p.data<float>(), g.data<float>(), buf ? buf->data<float>() : nullptr, p.numel(),
                first, o);
  } else {
    step<double>(p.data<double>(), g.data<double>(), buf ? buf->data<double>() : nullptr,
                 p.numel(), first, o);
  }
  p.storage()->bump_version();
  if (buf) buf->storage()->bump_version();
}

}  // namespace lincore
