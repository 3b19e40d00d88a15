#include "nn/sgd.h"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <utility>
#include <string>

#include "runtime/thread_pool.h"

namespace lincore {
namespace {

// Elements per thread below which a second thread does not pay (about 0.1 MiB of each array).
constexpr std::int64_t kParallelGrain = 1 << 15;

enum : int { kMaximize = 1, kDecay = 2, kMomentum = 4, kNesterov = 8, kFirst = 16 };

template <class T>
struct Scalars {
  T lr, wd, mom, keep;
};

// Elements [i0, i1) for one combination of options, known at compile time so that the loop has
// no branches and vectorizes (the arrays never overlap: restrict).
template <class T, int F>
void update(T* __restrict p, const T* __restrict grad, T* __restrict buf, std::int64_t i0,
            std::int64_t i1, Scalars<T> c) {
  for (std::int64_t i = i0; i < i1; ++i) {
    T g = (F & kMaximize) ? -grad[i] : grad[i];
    if constexpr ((F & kDecay) != 0) g = p[i] * c.wd + g;
    if constexpr ((F & kMomentum) != 0) {
      const T b = (F & kFirst) ? g : buf[i] * c.mom + g * c.keep;
      buf[i] = b;
      g = (F & kNesterov) ? b * c.mom + g : b;
    }
    p[i] = g * -c.lr + p[i];
  }
}

template <class T>
using UpdateFn = void (*)(T*, const T*, T*, std::int64_t, std::int64_t, Scalars<T>);

template <class T, int... F>
constexpr std::array<UpdateFn<T>, sizeof...(F)> update_table(std::integer_sequence<int, F...>) {
  return {&update<T, F>...};
}

template <class T>
void step(T* p, const T* grad, T* buf, std::int64_t n, bool first, const SgdOptions& o) {
  static constexpr auto table = update_table<T>(std::make_integer_sequence<int, 32>{});
  const Scalars<T> c{static_cast<T>(o.lr), static_cast<T>(o.weight_decay),
                     static_cast<T>(o.momentum), static_cast<T>(1 - o.dampening)};
  const int flags = (o.maximize ? kMaximize : 0) | (o.weight_decay != 0 ? kDecay : 0) |
                    (o.momentum != 0 ? kMomentum : 0) | (o.nesterov ? kNesterov : 0) |
                    (first ? kFirst : 0);
  const UpdateFn<T> fn = table[flags];
  // Memory-bound: each thread updates its own contiguous range (more cores, more bandwidth).
  parallel_for(n, kParallelGrain,
               [=](std::int64_t i0, std::int64_t i1) { fn(p, grad, buf, i0, i1, c); });
}

bool overlaps(const Tensor& a, const Tensor& b) {
  const auto* a0 = static_cast<const char*>(a.raw_data());
  const auto* b0 = static_cast<const char*>(b.raw_data());
  const auto bytes = [](const Tensor& t) {
    return static_cast<std::size_t>(t.numel()) * itemsize(t.dtype());
  };
  return a0 < b0 + bytes(b) && b0 < a0 + bytes(a) && bytes(a) > 0 && bytes(b) > 0;
}

void check(const Tensor& t, const Tensor& p, const char* what) {
  if (t.shape() != p.shape() || t.dtype() != p.dtype() || !t.is_contiguous()) {
    throw std::invalid_argument(std::string("sgd_step: ") + what + " must be a contiguous " +
                                dtype_name(p.dtype()) + " tensor of shape " +
                                shape_str(p.shape()) + ", got " + dtype_name(t.dtype()) + " " +
                                shape_str(t.shape()));
  }
}

// Whether sgd_step(p, grad, buf, ...) would run without throwing (buf null: a first step, for
// which a fresh buffer is made).
bool accepts(const Tensor& p, const Tensor& grad, const Tensor* buf, const SgdOptions& o) {
  const auto same = [&](const Tensor& t) { return t.shape() == p.shape() && t.dtype() == p.dtype(); };
  if (!is_floating_point(p.dtype()) || !p.is_contiguous() || !p.writable() || !same(grad)) {
    return false;
  }
  if (o.momentum == 0 || !buf) return true;
  return same(*buf) && buf->is_contiguous() && !overlaps(*buf, p) && !overlaps(*buf, grad);
}

}  // namespace

bool sgd_step_group(std::vector<SgdItem>& items, const SgdOptions& o) {
  for (const SgdItem& it : items) {
    if (!accepts(it.param, it.grad, it.buf ? &*it.buf : nullptr, o)) return false;
  }
  // Two items sharing memory would be updated twice, the second against the first's result.
  std::vector<const Tensor*> by_address;
  for (const SgdItem& it : items) {
    if (it.param.numel() > 0) by_address.push_back(&it.param);  // (an empty one changes nothing)
  }
  std::sort(by_address.begin(), by_address.end(), [](const Tensor* a, const Tensor* b) {
    return a->raw_data() < b->raw_data();
  });
  for (std::size_t i = 1; i < by_address.size(); ++i) {
    if (overlaps(*by_address[i - 1], *by_address[i])) return false;
  }
  for (SgdItem& it : items) {
    const bool first = o.momentum != 0 && !it.buf;
    if (first) it.buf = Tensor::empty(it.param.shape(), it.param.dtype());
    sgd_step(it.param, it.grad, o.momentum != 0 ? &*it.buf : nullptr, first, o);
  }
  return true;
}

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
    if (overlaps(*buf, p) || overlaps(*buf, g)) {
      throw std::invalid_argument("sgd_step: the momentum buffer shares memory with the "
                                  "parameter or its gradient");
    }
  }
  // The update loop assumes its arrays do not overlap (restrict): a gradient that views the
  // parameter's own memory (p.grad = p.detach()) is read from a copy.
  if (overlaps(g, p)) g = g.clone();
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
