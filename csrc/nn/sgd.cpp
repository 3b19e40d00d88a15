#include "nn/sgd.h"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>
#include <utility>

#include "nn/linear.h"
#include "runtime/thread_pool.h"
#include "tensor/errors.h"

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

// The update loop for these options, with its scalars.
template <class T>
struct Update {
  UpdateFn<T> fn;
  Scalars<T> c;
  void operator()(T* p, const T* grad, T* buf, std::int64_t i0, std::int64_t i1) const {
    fn(p, grad, buf, i0, i1, c);
  }
};

template <class T>
Update<T> update_for(bool first, const SgdOptions& o) {
  static constexpr auto table = update_table<T>(std::make_integer_sequence<int, 32>{});
  const Scalars<T> c{static_cast<T>(o.lr), static_cast<T>(o.weight_decay),
                     static_cast<T>(o.momentum), static_cast<T>(1 - o.dampening)};
  const int flags = (o.maximize ? kMaximize : 0) | (o.weight_decay != 0 ? kDecay : 0) |
                    (o.momentum != 0 ? kMomentum : 0) | (o.nesterov ? kNesterov : 0) |
                    (first ? kFirst : 0);
  return {table[flags], c};
}

template <class T>
void step(T* p, const T* grad, T* buf, std::int64_t n, bool first, const SgdOptions& o) {
  const Update<T> u = update_for<T>(first, o);
  // Memory-bound: each thread updates its own contiguous range (more cores, more bandwidth).
  parallel_for(n, kParallelGrain,
               [=](std::int64_t i0, std::int64_t i1) { u(p, grad, buf, i0, i1); });
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
                                dtype_name(p.dtype()) + " tensor of shape " + shape_str(p.shape()) +
                                ", got " + dtype_name(t.dtype()) + " " + shape_str(t.shape()));
  }
}

// Whether sgd_step(p, grad, buf, ...) would run without throwing (buf null: a first step, for
// which a fresh buffer is made).
bool accepts(const Tensor& p, const Tensor& grad, const Tensor* buf, const SgdOptions& o) {
  const auto same = [&](const Tensor& t) {
    return t.shape() == p.shape() && t.dtype() == p.dtype();
  };
  if (!has_float_kernel(p.dtype()) || !p.is_contiguous() || !p.writable() || !same(grad)) {
    return false;
  }
  if (o.momentum == 0 || !buf) return true;
  return same(*buf) && buf->is_contiguous() && !overlaps(*buf, p) && !overlaps(*buf, grad);
}

// The gradient as the update loop reads it: contiguous, and a copy when it views the
// parameter's own memory (p.grad = p.detach()), as the loop assumes no overlap (restrict).
Tensor readable_grad(const Tensor& grad, const Tensor& p) {
  Tensor g = grad.contiguous();
  if (overlaps(g, p)) g = g.clone();
  return g;
}

// An item (already accepted) whose weight `cache` packs: stepped strip by strip, each strip
// packed right after its update (PackCache::rewrite_and_pack). False, with nothing changed, when
// the cache's pack is not the current one of this weight.
template <class T>
bool step_and_pack(SgdItem& it, PackCache& cache, const Tensor* bias, bool first,
                   const SgdOptions& o) {
  const Tensor g = readable_grad(it.grad, it.param);
  Tensor* buf = o.momentum != 0 ? &*it.buf : nullptr;
  const Update<T> u = update_for<T>(first, o);
  const std::int64_t k = it.param.size(1);
  T* p = it.param.data<T>();
  const T* gp = g.data<T>();
  T* bp = buf ? buf->data<T>() : nullptr;
  const RowWriter write = [=](std::int64_t j0, std::int64_t j1) { u(p, gp, bp, j0 * k, j1 * k); };
  if (!cache.rewrite_and_pack<T>(it.param, bias, write)) return false;
  if (buf) buf->storage()->bump_version();
  return true;
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
  std::sort(by_address.begin(), by_address.end(),
            [](const Tensor* a, const Tensor* b) { return a->raw_data() < b->raw_data(); });
  for (std::size_t i = 1; i < by_address.size(); ++i) {
    if (overlaps(*by_address[i - 1], *by_address[i])) return false;
  }
  // A weight that a layer packed (its storage names the cache) is stepped last, with its pack
  // rebuilt in the same pass, after the other items: its bias among them, which the pack holds.
  // The next forward then finds a current pack instead of repacking from memory (measured:
  // 2-4 ms of a 1024x4 MLP's 20 ms forward at batch 256, on one thread).
  std::vector<bool> firsts(items.size());
  std::vector<std::pair<std::size_t, std::shared_ptr<PackCache>>> packed;
  for (std::size_t i = 0; i < items.size(); ++i) {
    SgdItem& it = items[i];
    firsts[i] = o.momentum != 0 && !it.buf;
    if (firsts[i]) it.buf = Tensor::empty(it.param.shape(), it.param.dtype());
    // Only PackCache::install sets a storage's packer, so the cast is to its own type.
    auto cache = it.param.dim() == 2 && it.param.numel() > 0
                     ? std::static_pointer_cast<PackCache>(it.param.storage()->packer())
                     : nullptr;
    if (cache) {
      packed.emplace_back(i, std::move(cache));
      continue;
    }
    sgd_step(it.param, it.grad, o.momentum != 0 ? &*it.buf : nullptr, firsts[i], o);
  }
  for (auto& [i, cache] : packed) {
    SgdItem& it = items[i];
    // The pack's bias must be an item of this group (stepped above); otherwise, or when the
    // pack is not current, the weight is stepped alone and repacked by its next forward.
    const void* bias_data = cache->bias_data();
    const Tensor* bias = nullptr;
    for (const SgdItem& other : items) {
      if (bias_data && other.param.dim() == 1 && other.param.raw_data() == bias_data) {
        bias = &other.param;
      }
    }
    const bool fused = (bias_data == nullptr || bias != nullptr) &&
                       (it.param.dtype() == DType::float32
                            ? step_and_pack<float>(it, *cache, bias, firsts[i], o)
                            : step_and_pack<double>(it, *cache, bias, firsts[i], o));
    if (!fused) sgd_step(it.param, it.grad, o.momentum != 0 ? &*it.buf : nullptr, firsts[i], o);
  }
  return true;
}

void sgd_step(Tensor& p, const Tensor& grad, Tensor* buf, bool first, const SgdOptions& o) {
  if (p.dtype() == DType::bfloat16) throw not_implemented("sgd", p.dtype());
  if (!is_floating_point(p.dtype()) || !p.is_contiguous()) {
    throw std::invalid_argument(
        "sgd_step: the parameter must be a contiguous floating point "
        "tensor");
  }
  p.check_writable("sgd_step");
  const Tensor g = readable_grad(grad, p);
  check(g, p, "grad");
  if (o.momentum != 0) {
    if (!buf) throw std::invalid_argument("sgd_step: momentum needs a buffer");
    check(*buf, p, "the momentum buffer");
    if (overlaps(*buf, p) || overlaps(*buf, g)) {
      throw std::invalid_argument(
          "sgd_step: the momentum buffer shares memory with the "
          "parameter or its gradient");
    }
  }
  if (p.dtype() == DType::float32) {
    step<float>(p.data<float>(), g.data<float>(), buf ? buf->data<float>() : nullptr, p.numel(),
                first, o);
  } else {
    step<double>(p.data<double>(), g.data<double>(), buf ? buf->data<double>() : nullptr, p.numel(),
                 first, o);
  }
  p.storage()->bump_version();
  if (buf) buf->storage()->bump_version();
}

}  // namespace lincore
